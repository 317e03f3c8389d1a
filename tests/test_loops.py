"""Loops unrolled at compile time: `for t in 1..T:`, slices `x[t]` and the values `h[t]` a loop
names (issue 15, item 4).

The unrolled graph is the graph written out by hand; its gradients agree with central
differences and with HIPS autograd (tests/adref.py) in float64; every mistake is reported at
its own line and column; a long loop compiles with work linear in its length, no recursion.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from adref import Reference
from helpers import ROOT, assert_grads_match, numeric_grad, run_cli
from test_linear_passes import LIMIT, work

import gdsl
from gdsl import limits
from gdsl.errors import GdslDataError, GdslError
from gdsl.lang.fmt import format_text
from gdsl.tools import data as D
from gdsl.views.view import teaching_view

HEAD = """input x[3, 4, n]
param Wx[m, 4] ~ normal(0, 0.5)
param Wh[m, m] ~ normal(0, 0.5)
param b[m, 1]
param h0[m, 1]
param W[2, m]
input y[2, n]
"""
TAIL = "s = W @ h[3]\nJ = xent(softmax(s), y)\nloss J\n"
LOOPED = HEAD + """h[0] = h0
for t in 1..3:
    h[t] = tanh(Wx @ x[t] + Wh @ h[t - 1] + b)
""" + TAIL
BY_HAND = HEAD + """h[1] = tanh(Wx @ x[1] + Wh @ h0 + b)
h[2] = tanh(Wx @ x[2] + Wh @ h[1] + b)
h[3] = tanh(Wx @ x[3] + Wh @ h[2] + b)
""" + TAIL


def arrays(rng, m=5, n=7, d=4):
    return {"x": rng.normal(size=(3, d, n)), "Wx": rng.normal(size=(m, d)) * 0.5,
            "Wh": rng.normal(size=(m, m)) * 0.5, "b": rng.normal(size=(m, 1)),
            "h0": rng.normal(size=(m, 1)), "W": rng.normal(size=(2, m)),
            "y": rng.integers(0, 2, size=n)}


def same_graph(a, b) -> bool:
    def match(u, v):
        return u["op"] == v["op"] and u["attrs"] == v["attrs"] and u["shape"] == v["shape"] \
            and u.get("value") == v.get("value")
    return nx.is_isomorphic(a, b, node_match=match)


# -- the loop is the model written out ----------------------------------------------------------

@pytest.mark.parametrize("optimize", [True, False], ids=["O1", "O0"])
def test_unrolling_is_the_hand_written_model(optimize, rng):
    looped = gdsl.compile(LOOPED, optimize=optimize)
    by_hand = gdsl.compile(BY_HAND, optimize=optimize)
    assert same_graph(looped.graph, by_hand.graph)
    a = arrays(rng)
    loss, grads = looped.value_and_grad(**a)
    loss2, grads2 = by_hand.value_and_grad(**a)
    assert loss == loss2
    for k in grads:
        np.testing.assert_array_equal(grads[k], grads2[k])


def test_a_loop_of_dims_and_its_variable_as_a_number():
    """`for t in 1..T` with `dim T`; `t` in an expression is the step's number."""
    looped = gdsl.compile("dim T = 4\ninput x[T]\nc[0] = 0\nfor t in 1..T: c[t] = c[t - 1] + t * x[t]\n"
                          "J = c[T]")
    x = np.array([1.0, 10.0, 100.0, 1000.0])
    assert looped.forward(x=x)["J"] == 1 * 1 + 2 * 10 + 3 * 100 + 4 * 1000
    with pytest.raises(GdslError, match="axis 0 must be 4"):      # T is fixed at compile time
        looped.forward(x=np.ones(5))


def test_nested_loops_and_the_one_line_form():
    text = ("input x[2, 3]\ns[0] = 0\nfor i in 1..2:\n    r[i] = x[i]\n    for j in 1..3: "
            "s[3 * (i - 1) + j] = s[3 * (i - 1) + j - 1] + sum(r[i]) * j\nJ = s[6]\n")
    x = np.arange(6.0).reshape(2, 3) + 1
    assert gdsl.compile(text).forward(x=x)["J"] == float(np.sum(x) * (1 + 2 + 3))


# -- gradients ----------------------------------------------------------------------------------

def test_gradients_against_central_differences(rng):
    assert_grads_match(gdsl.compile(LOOPED), arrays(rng), rtol=1e-6, atol=1e-9)


def test_gradients_and_hvp_against_autograd(rng):
    model = gdsl.compile(LOOPED)
    a = arrays(rng)
    ref = Reference(model, a)
    loss, grads = model.value_and_grad(**a)
    assert np.isclose(loss, ref.loss(), rtol=1e-12)
    for k, g in ref.grad().items():
        np.testing.assert_allclose(grads[k], g, rtol=1e-9, atol=1e-12, err_msg=k)
    v = {k: rng.normal(size=np.shape(a[k])) for k in model.wrt}
    for k, hv in ref.hvp(v).items():
        np.testing.assert_allclose(model.hvp(v, **a)[k], hv, rtol=1e-8, atol=1e-11, err_msg=k)


def test_the_gradient_of_a_sliced_param(rng):
    """x[t] of a param: its gradient puts each slice's gradient back in place (take_grad)."""
    model = gdsl.compile("param P[4, 3]\ninput u[3]\nfor t in 1..4: q[t] = sum(P[t] * u * t)\n"
                         "J = q[1] * q[2] + q[3] * q[4]", wrt=["P"])
    assert_grads_match(model, {"P": rng.normal(size=(4, 3)), "u": rng.normal(size=3)})


# -- mistakes, each at its place ----------------------------------------------------------------

BAD = {
    # name: (model text, (line, column), words of the message)
    "backwards_range": ("input x[3]\nfor t in 3..1: h[t] = x[t]\nJ = h[1]", (2, 10),
                        "the loop runs no step"),
    "fractional_end": ("input x[3]\nfor t in 1..2.5: h[t] = x[t]\nJ = h[1]", (2, 13),
                       "the end of a loop is a whole number"),
    "end_is_a_value": ("input x[3]\nfor t in 1..x: h[t] = x[t]\nJ = h[1]", (2, 13),
                       "the end of a loop is a whole number"),
    "index_past_the_end": (("input x[3, n]\nh[0] = 0\nfor t in 1..4:\n    h[t] = h[t - 1] + x[t]\n"
                           "J = sum(h[4])"), (4, 23), "index 4 is out of range in `x[4]`"),
    "index_zero": ("input x[3]\nJ = x[0]", (2, 5), "index 0 is out of range"),
    "used_before_defined": ("input x[3]\nfor t in 1..3:\n    h[t] = h[t - 1] + x[t]\nJ = h[3]",
                            (3, 12), "`h[0]` is used before its definition"),
    "too_long": ((f"input x\nh[0] = x\nfor t in 1..{limits.MAX_LOOP_STEPS + 1}: h[t] = h[t - 1]\n"
                 "J = h[1]"), (3, 1), "more than the limit"),
    "too_long_nested": (("input x\nh[0] = x\nfor i in 1..1000:\n    for j in 1..1000: "
                        "h[i * 1000 + j] = x\nJ = h[1001]"), (4, 5), "unrolls into 1000000 steps"),
    "plain_name_in_a_loop": ("input x[3]\nfor t in 1..3:\n    z = x[t]\nJ = z", (3, 5),
                             "`z` would be defined again at each step"),
    "defined_twice": ("input x[3]\nfor t in 1..3: h[t] = x[t]\nh[3] = x[1]\nJ = h[3]", (3, 1),
                      "`h[3]` is already defined"),
    "declaration_in_a_loop": ("for t in 1..3:\n    param W[3]\nJ = 1", (2, 5),
                              "a loop's body holds assignments and loops only"),
    "no_body": ("input x[3]\nfor t in 1..3:\nJ = sum(x)", (2, 1), "the loop has no body"),
    "uneven_indent": ("input x[3]\nfor t in 1..3:\n    h[t] = x[t]\n  g[t] = x[t]\nJ = h[1]",
                      (4, 3), "matches no loop's body"),
    "unexpected_indent": ("input x[3]\nfor t in 1..3: h[t] = x[t]\n    g = h[1]\nJ = g", (3, 5),
                          "unexpected indent"),
    "unindexed_family": ("input x[3]\nfor t in 1..3: h[t] = x[t]\nJ = sum(h)", (3, 9),
                         "`h` names indexed values"),
    "variable_is_a_name": ("input t[3]\nfor t in 1..3: h[t] = t[1]\nJ = h[1]", (2, 5),
                           "the loop's variable `t` is already a name"),
    "same_variable_nested": ("input x[3]\nfor t in 1..3:\n    for t in 1..2: h[t] = x[t]\nJ = h[1]",
                             (3, 9), "already the variable of an enclosing loop"),
    "index_of_a_scalar": ("input x[3]\nJ = x[1][1]", (2, 9), "unexpected `[`"),
    "loop_after_a_loops_colon": ("for i in 1..2: for j in 1..3:\nJ = 1", (1, 16),
                                 "the loop has no body"),
    "missing_colon": ("input x[3]\nfor t in 1..3 h[t] = x[t]", (2, 15), "unexpected `h`"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_mistake_at_its_line_and_column(name):
    text, where, words = BAD[name]
    with pytest.raises(GdslError) as e:
        gdsl.compile(text)
    if where is not None:
        assert (e.value.line, e.value.column) == where, e.value.render()
        assert words in e.value.message, e.value.render()


def test_an_error_in_a_step_names_the_step():
    with pytest.raises(GdslError) as e:
        gdsl.compile("input x[3, n]\nh[0] = 0\nfor t in 1..4: h[t] = h[t - 1] + x[t]\nJ = sum(h[4])")
    assert any("at t = 4 of the loop at 3:1" in note for note in e.value.notes), e.value.render()


def test_the_command_line_reports_a_loop_mistake_without_a_traceback(tmp_path):
    path = tmp_path / "bad.gdsl"
    path.write_text("input x[3]\nfor t in 3..1: h[t] = x[t]\nJ = h[1]\n")
    r = run_cli("compile", str(path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"{path}:2:10: error: the loop runs no step")


# -- long loops: linear work, no recursion --------------------------------------------------------

def long_loop(n):
    return ["param W[3,3]", "input x[3,4]", "h[0] = x",
            f"for t in 1..{n}:", "    h[t] = tanh(W @ h[t - 1])", f"J = sum(h[{n}])"], None


def test_a_long_loop_compiles_with_linear_work():
    small, large = work(long_loop, 500), work(long_loop, 1000)
    slow = {s: round(large[s] / max(small[s], 1), 2) for s in small
            if large[s] / max(small[s], 1) > LIMIT}
    assert not slow, f"doubling the loop multiplies the work of {slow}"


def test_a_long_loop_needs_no_recursion(rng):
    import sys
    lines, _ = long_loop(20_000)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(250)          # a recursive unroller would fail well before 20,000
    try:
        model = gdsl.compile("\n".join(lines), wrt=["W"])
    finally:
        sys.setrecursionlimit(old)
    a = {"W": np.eye(3) * 0.5, "x": rng.normal(size=(3, 4))}
    h = a["x"]
    for _ in range(20_000):
        h = np.tanh(a["W"] @ h)
    assert np.isclose(model.forward(**a)["J"], h.sum(), rtol=1e-12, atol=1e-300)


# -- the model, its data, its drawing, its layout --------------------------------------------------

def test_a_tables_features_fill_a_declared_multi_axis_input():
    X = np.arange(2 * 64.0).reshape(2, 64)         # two examples of 64 features
    out = D.to_model(D.Table(X=X, y=np.array([0, 1])), {"x": (8, 8, "n"), "y": ("C", "n")},
                     ["y"], "digits")
    x = out["x"]
    assert x.shape == (8, 8, 2)
    # row-major: feature 8 r + c of example j is x[r, c, j]
    assert x[0, 0, 1] == 64 and x[0, 7, 0] == 7 and x[1, 0, 0] == 8 and x[7, 7, 1] == 127


@pytest.mark.parametrize("declared, words", [((8, 7, "n"), ("8 x 7 = 56 features an example, but "
                                               "the data has 64")),
                                              (("T", 8, "n"), "axes of known sizes only")])
def test_a_feature_count_that_does_not_fit_is_refused(declared, words):
    with pytest.raises(GdslDataError) as e:
        D.to_model(D.Table(X=np.zeros((3, 64)), y=np.zeros(3, int)), {"x": declared, "y": ("C", "n")},
                   ["y"], "digits")
    assert words in e.value.message and "`x`" in e.value.message


def test_the_rnn_reads_the_digits_row_by_row():
    """models/rnn_digits.gdsl trains briefly on the digits, read as 8 rows of 8: the loss falls."""
    from gdsl.tools.train import train
    r = train(str(ROOT / "models" / "rnn_digits.gdsl"), epochs=2, seed=0)
    assert r.n_train + r.n_val == 1797
    # (before the last epoch only the cost is reported for the training set: its batches' mean)
    assert r.history[-1]["train_cost"] < r.history[0]["train_cost"]


def test_the_loop_is_drawn_folded_and_explained_unrolled():
    text = (ROOT / "models" / "rnn_digits.gdsl").read_text()
    drawn = teaching_view(text)
    assert {"x[t]", "h[t]", "h[t - 1]"} <= set(drawn.name.values())
    assert not any(n.startswith("h[") and n[2].isdigit() for n in drawn.name.values())
    assert "W · h[t]" in drawn.label.values()
    explained = teaching_view(text, folded=False)
    assert {f"h[{t}]" for t in range(1, 9)} <= set(explained.name.values())


def test_gdsl_fmt_indents_a_loop_body():
    text = "h[0]=x\nfor t in 1 .. 3 :\n  h[t]=tanh(h[t-1])\nJ=sum(h[3])\n"
    assert format_text(text) == ("h[0] = x\nfor t in 1..3:\n    h[t] = tanh(h[t - 1])\n"
                                 "J = sum(h[3])\n")
    assert same_graph(gdsl.compile(format_text(text)).graph, gdsl.compile(text).graph)


def test_numeric_gradient_of_the_slice_itself(rng):
    """take and its vjp on one slice, against central differences (x[2] of a [3, 2, 2] input)."""
    model = gdsl.compile("input a[3, 2, 2]\nJ = sum(a[2] * a[2]) + sum(a[3])", wrt=["a"])
    a = rng.normal(size=(3, 2, 2))
    _, grads = model.value_and_grad(a=a)
    num = numeric_grad(lambda **kw: float(model.forward(**kw)["J"]), {"a": a}, "a")
    np.testing.assert_allclose(grads["a"], num, rtol=1e-7, atol=1e-9)
    expected = np.zeros_like(a)
    expected[1], expected[2] = 2 * a[1], 1.0
    np.testing.assert_allclose(grads["a"], expected, rtol=1e-13)


def test_a_drawing_checks_the_loop_step_by_step_and_draws_its_variable():
    with pytest.raises(GdslError, match="index 4 is out of range"):
        teaching_view("input x[3]\nfor t in 1..4: h[t] = x[t] * t\nJ = sum(h[4])")
    view = teaching_view("input x[3]\nc[0] = 0\nfor t in 1..3: c[t] = c[t - 1] + x[t] * t\nJ = c[3]")
    assert {"x[t]", "t", "c[t - 1]", "c[t]"} <= set(view.name.values())


def test_an_index_past_the_loop_says_which_are_defined():
    """`h[9]` after a loop that ends at 8: the message lists what the loop defined."""
    text = ("input x[d, n]\nparam W[d, d]\nh[0] = x\nfor t in 1..8: h[t] = W @ h[t-1]\n"
            "J = sum(h[9])")
    with pytest.raises(GdslError, match=r"`h\[9\]` is used before its definition") as e:
        gdsl.compile(text)
    assert "defined so far: h[0] to h[8]" in e.value.notes
    with pytest.raises(GdslError) as e:
        gdsl.compile("input x[d, n]\nh[0] = x\nh[2] = x\nJ = sum(h[1])")
    assert "defined so far: h[0], h[2]" in e.value.notes

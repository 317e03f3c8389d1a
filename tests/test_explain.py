"""gdsl explain / model.explain: the lecture's forward and backward order and Jacobians."""

from pathlib import Path

import pytest
from helpers import run_cli

import gdsl
from gdsl.views.explain import Lesson, jacobian_check
from gdsl.views.view import View, teaching_model

ROOT = Path(__file__).resolve().parents[1]
LECTURE = ROOT / "models" / "linear_softmax.gdsl"
MODELS = sorted((ROOT / "models").glob("*.gdsl"))

# every formula the lecture writes for this graph
FORMULAS = ["∂J/∂r = λ", "∂r/∂W = 2W", "∂l/∂p = −yᵀ/(yᵀp)", "∂p/∂s = diag(p) − ppᵀ",
            "∂s/∂b = I", "∂s/∂z = I", "∂z/∂vec(W) = I ⊗ xᵀ", "∂J/∂l = 1", "∂J/∂J = 1",
            "∂J/∂W = gᵀxᵀ + 2λW", "∂J/∂b = g", "g = −yᵀ/(yᵀp) (diag(p) − ppᵀ)"]


@pytest.fixture(scope="module")
def lecture():
    return gdsl.compile_file(LECTURE)


@pytest.fixture(scope="module")
def lesson(lecture):
    return Lesson(View(teaching_model(lecture)))


def names(lesson, order):
    return [lesson.view.name[n] for n in order]


def test_forward_order_is_topological_and_matches_the_slides(lesson):
    v = lesson.view
    computed = [n for n in v.nodes if v.kind[n] == "op"]
    assert names(lesson, computed) == ["z", "s", "p", "l", "r", "J"]
    seen = {n for n in v.nodes if v.kind[n] != "op"}
    for n in computed:                     # every value after everything it uses
        assert set(v.visible_args(n)) <= seen
        seen.add(n)
    order = names(lesson, computed)
    assert order.index("z") < order.index("s") < order.index("p") < order.index("l") < \
        order.index("J") and order.index("r") < order.index("J")


def test_backward_order_is_the_lectures_backop(lesson):
    order = names(lesson, lesson.backward_order)
    assert order == ["J", "r", "l", "p", "s", "b", "z", "W"]    # as on the slides
    assert order[0] == "J" and set(order[1:3]) == {"r", "l"}
    assert order[-1] == "W"                                     # after both z and r
    done = set()
    for n in lesson.backward_order:        # a gradient completes after all its children's
        assert set(lesson.children[n]) <= done
        done.add(n)
    assert "x" not in order and "y" not in order                # nobody asked for them


def test_every_lecture_formula_appears(lecture):
    text = lecture.explain()
    for f in FORMULAS:
        assert f in text, f


def test_formulas_come_from_the_op_table(lecture, monkeypatch):
    import dataclasses

    from gdsl.ir import ops
    softmax = ops.OPS["softmax"]
    monkeypatch.setitem(ops.OPS, "softmax", dataclasses.replace(softmax, jacobian=("S({ans})",)))
    assert "∂p/∂s = S(p)" in lecture.explain()


@pytest.mark.parametrize("fmt", ["markdown", "latex"])
def test_other_formats(lecture, fmt):
    text = lecture.explain(format=fmt, jacobians=True)
    if fmt == "markdown":
        assert text.startswith("# ") and "`∂p/∂s = diag(p) − ppᵀ`" in text
    else:
        assert r"\frac{\partial p}{\partial s} = \operatorname{diag}(p) - pp^{\top}" in text
        assert r"\otimes" in text and r"2\lambda W" in text
        assert "λ" not in text and "∂" not in text


def test_unknown_format_is_a_usage_error(lecture):
    with pytest.raises(gdsl.GdslUsageError):
        lecture.explain(format="html")


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_chained_jacobians_agree_with_value_and_grad(path):
    m = gdsl.compile_file(path)
    check = jacobian_check(m)
    assert set(check.diffs) == set(m.wrt)
    assert check.max_diff <= 1e-7          # finite-difference Jacobians, chained
    assert check.rules_max <= 1e-7         # each rule's Jacobian against finite differences
    assert abs(check.loss - check.ref_loss) <= 1e-10
    text = m.explain(jacobians=True)
    assert "max abs difference" in text and "agree to 1e-07" in text


@pytest.mark.parametrize("loss", ["xent(softmax(W @ x + b), y)", "svm(W @ x + b, y)"])
def test_integer_labels_are_drawn_as_class_numbers(tmp_path, loss):
    # labels declared y[n] (class numbers, as the README allows) were drawn as a one-hot
    # vector of floats, and --trace and --jacobians failed inside the emitted code
    text = f"input x[d, n]\ninput y[n]\nparam W[C, d]\nparam b[C, 1]\nJ = {loss}\n"
    m = gdsl.compile(text)
    check = jacobian_check(m)
    y = check.arrays["y"]
    assert y.dtype.kind == "i" and 0 <= y.min() and y.max() < check.arrays["W"].shape[0]
    assert check.max_diff <= 1e-7 and check.rules_max <= 1e-7
    path = tmp_path / "int_labels.gdsl"
    path.write_text(text)
    r = _cli("explain", str(path), "--trace", "--dims", "n=3")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "value_and_grad agree to" in r.stdout


def test_chained_jacobians_match_finite_differences(lecture):
    check = jacobian_check(lecture, seed=3)
    arrays = dict(check.arrays)
    W = arrays["W"]
    h = 1e-6
    for idx in [(0, 0), (2, 3)]:
        up, down = W.copy(), W.copy()
        up[idx] += h
        down[idx] -= h
        fd = (lecture.forward(**{**arrays, "W": up})["J"]
              - lecture.forward(**{**arrays, "W": down})["J"]) / (2 * h)
        chained = check.grad[lecture.model.names["W"]].reshape(W.shape)[idx]
        assert abs(fd - chained) < 1e-7


def test_a_wrong_local_jacobian_is_caught(lecture, monkeypatch):
    # negative control: spoil one op's vector-Jacobian product and the check must disagree,
    # both where the rule's Jacobian meets the finite differences and, compiled with the
    # wrong rule, where the chained finite differences meet value_and_grad
    import dataclasses

    from gdsl.ir import ops
    sq = ops.OPS["sqnorm"]
    monkeypatch.setitem(ops.OPS, "sqnorm",
                        dataclasses.replace(sq, vjp=(lambda g, ans, x, **at: x * (3 * g),)))
    check = jacobian_check(lecture)
    assert check.rules_max > 1e-6 and check.max_diff <= 1e-7   # the compiled code is right
    wrong = gdsl.compile_file(LECTURE)
    check = jacobian_check(wrong)
    assert check.max_diff > 1e-6                               # independent of the rule
    assert "DISAGREE" in wrong.explain(jacobians=True)


def test_single_example_shapes_for_a_model_without_declarations():
    m = gdsl.compile_file(ROOT / "models" / "oneliner.gdsl")
    check = jacobian_check(m)
    shapes = {m.model.node(n)["name"]: s for n, s in check.shapes.items()
              if m.model.node(n)["op"] == "input"}
    assert shapes["x"][-1] == 1 and shapes["W"] == (3, 4) and shapes["lam"] == ()


def test_mlp_names_its_gradients_per_layer():
    text = gdsl.compile_file(ROOT / "models" / "mlp2.gdsl").explain()
    assert "∂J/∂W2 = gₛᵀ · hᵀ + 2λW2" in text and "∂J/∂b2 = gₛ" in text
    assert "∂h/∂s1 = diag([s1 > 0])" in text and "gₛ₁ = gₛ · W2 · diag([s1 > 0])" in text


_cli = run_cli


def test_cli_explain(tmp_path):
    r = _cli("explain", str(LECTURE))
    assert r.returncode == 0, r.stderr
    for f in FORMULAS:
        assert f in r.stdout
    r = _cli("explain", str(LECTURE), "--jacobians", "--format", "markdown")
    assert r.returncode == 0 and "max abs difference" in r.stdout
    out = tmp_path / "notes.tex"
    r = _cli("explain", str(LECTURE), "--format", "latex", "-o", str(out))
    assert r.returncode == 0 and r"\frac" in out.read_text(encoding="utf-8")
    r = _cli("explain", str(LECTURE), "--format", "pdf")
    assert r.returncode == 2 and "Traceback" not in r.stderr

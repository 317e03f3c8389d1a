"""One fixed test per rewrite rule: each identity of the op table, each op constant folding
folds, CSE, dead code, the fusions, and the identities the graph builder folds while it
builds the backward pass.

Every case is a small model that exercises its rule. The test asserts that the rewrite
happened (the pattern is in the -O0 graph and gone from the optimised one, or the folded
form is built directly), and that the optimised and the -O0 model agree on forward and
value_and_grad to rtol 1e-12 in float64 and with central finite differences.
test_every_simplify_rule_has_a_case fails when a rule is added without a case here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import assert_grads_match

import gdsl
from gdsl.ir.ops import OPS

# the optimiser's identities and the ops constant folding computes, as the op table gives them
RULES = [(op, pattern, replace) for op, row in OPS.items() for pattern, replace in row.identities]
FOLDABLE = {op for op, row in OPS.items() if row.foldable}

# -- shared checks ------------------------------------------------------------------------------


def compile_both(text: str, wrt=None):
    """(optimised, -O0) compiled models of the text."""
    return (gdsl.compile(text, wrt=wrt, optimize=True),
            gdsl.compile(text, wrt=wrt, optimize=False))


def arrays_for(model, seed: int = 0) -> dict:
    """Arrays for the declared inputs and params, away from 0 (divisions, kinks); labels
    as integer classes."""
    rng = np.random.default_rng(seed)
    out = {}
    for table in (model.inputs, model.params):
        for name, shape in table.items():
            if name in model.labels:
                out[name] = rng.integers(0, shape[0], shape[-1])
                continue
            size = tuple(shape)
            out[name] = rng.uniform(0.5, 1.5, size) * rng.choice([-1.0, 1.0], size)
    return out


def assert_same_values(fast, slow, arrays: dict) -> None:
    """The optimised and the -O0 model agree on every output, the loss and each gradient."""
    fo, so = fast.forward(**arrays), slow.forward(**arrays)
    assert fo.keys() == so.keys()
    for k in fo:
        np.testing.assert_allclose(fo[k], so[k], rtol=1e-12, atol=1e-15, err_msg=f"forward {k}")
    (jf, gf), (js, gs) = fast.value_and_grad(**arrays), slow.value_and_grad(**arrays)
    np.testing.assert_allclose(jf, js, rtol=1e-12, atol=1e-15, err_msg="loss")
    assert gf.keys() == gs.keys()
    for k in gf:
        assert np.asarray(gf[k]).dtype == np.float64, k
        np.testing.assert_allclose(gf[k], gs[k], rtol=1e-12, atol=1e-15, err_msg=f"gradient of {k}")


def assert_correct(text: str, wrt=None) -> tuple:
    """Compile at both levels, compare them and the gradients with finite differences."""
    fast, slow = compile_both(text, wrt)
    arrays = arrays_for(fast)
    assert_same_values(fast, slow, arrays)
    assert_grads_match(fast, arrays)
    return fast, slow


def literal(model, n, see_through_neg=False):
    """A literal node's value; with see_through_neg, -v for -(v) too (as fold makes it)."""
    d = model.node(n)
    if d["op"] == "literal":
        return d["value"]
    if see_through_neg and d["op"] == "neg":
        inner = model.node(d["args"][0])
        if inner["op"] == "literal":
            return -inner["value"]
    return None


def nodes_matching(model, op, i, what, see_through_neg=False, backward_only=False):
    """Nodes that match a simplify pattern: op, with argument i a literal of value ``what``
    (a number) or the result of op ``what`` (a name)."""
    found = []
    for n, d in model.G.nodes(data=True):
        if d["op"] != op or len(d["args"]) <= i or (backward_only and not d.get("backward")):
            continue
        a = d["args"][i]
        if isinstance(what, str):
            if model.node(a)["op"] == what:
                found.append(n)
        elif literal(model, a, see_through_neg) == what:
            found.append(n)
    return found


def rewrites_on_line(model, line: int) -> list[str]:
    return [r for r in model.rewrites if r.startswith(f"{line}:")]


# -- simplify.RULES: one case per row, keyed by the row's (op, pattern) ---------------------

# (op, (i, what)) -> model text; the pattern is on the last line, the line the rewrite names
SIMPLIFY_CASES = {
    ("mul", (1, 1)): "input x[3]\ninput y[3]\nJ = sum(x * 1 * y)",                 # x * 1 -> x
    ("mul", (0, 1)): "input x[3]\ninput y[3]\nJ = sum(1 * x * y)",                 # 1 * x -> x
    ("add", (1, 0)): "input x[3]\ninput y[3]\nJ = sum((x + 0) * y)",               # x + 0 -> x
    ("add", (0, 0)): "input x[3]\ninput y[3]\nJ = sum((0 + x) * y)",               # 0 + x -> x
    ("sub", (1, 0)): "input x[3]\ninput y[3]\nJ = sum((x - 0) * y)",               # x - 0 -> x
    ("sub", (0, 0)): "input x[3]\ninput y[3]\nJ = sum((0 - x) * y)",               # 0 - x -> -x
    ("div", (1, 1)): "input x[3]\ninput y[3]\nJ = sum(x / 1 * y)",                 # x / 1 -> x
    ("pow", (1, 1)): "input x[3]\ninput y[3]\nJ = sum(x ** 1 * y)",                # x ** 1 -> x
    ("mul", (1, -1)): "input x[3]\ninput y[3]\nJ = sum(x * -1 * y)",               # x * -1 -> -x
    ("mul", (0, -1)): "input x[3]\ninput y[3]\nJ = sum(-1 * x * y)",               # -1 * x -> -x
    ("neg", (0, "neg")): "input x[3]\ninput y[3]\nJ = sum(-(-x) * y)",             # --x -> x
    ("transpose", (0, "transpose")): "input x[3, 2]\ninput y[3, 2]\nJ = sum((x.T).T * y)",
    ("add", (1, "neg")): "input x[3]\ninput y[3]\nJ = sum(x * y + -y)",            # x + -y -> x - y
    ("add", (0, "neg")): "input x[3]\ninput y[3]\nJ = sum(-x + x * y)",            # -x + y -> y - x
    ("sub", (1, "neg")): "input x[3]\ninput y[3]\nJ = sum(x * y - -y)",            # x - -y -> x + y
}


def rule_key(row) -> tuple:
    op, pattern, _replace = row
    return (op, pattern)


def test_every_simplify_rule_has_a_case():
    """A row added to simplify.RULES needs a case in SIMPLIFY_CASES (and one removed, its
    case taken out)."""
    keys = [rule_key(row) for row in RULES]
    missing = [k for k in keys if k not in SIMPLIFY_CASES]
    assert not missing, f"rules of gdsl/passes/simplify.py without a test case: {missing}"
    stale = [k for k in SIMPLIFY_CASES if k not in keys]
    assert not stale, f"test cases for rules that no longer exist: {stale}"


@pytest.mark.parametrize("key", list(SIMPLIFY_CASES), ids=lambda k: f"{k[0]}-{k[1][0]}-{k[1][1]}")
def test_simplify_rule(key):
    op, (i, what) = key
    text = SIMPLIFY_CASES[key]
    fast, slow = assert_correct(text)
    # the pattern is there as written (at -O0, -1 is still -(1)) ...
    assert nodes_matching(slow.model, op, i, what, see_through_neg=True), \
        f"the case does not contain the pattern {key}"
    # ... and nowhere after optimising, forward or backward, and the rewrite is reported
    assert not nodes_matching(fast.model, op, i, what), f"{key} was not rewritten"
    line = text.count("\n") + 1
    assert any(" -> " in r for r in rewrites_on_line(fast.model, line)), fast.model.rewrites


@pytest.mark.parametrize("text, want", [
    # ((x * 1 + 0)ᵀ)ᵀ - -(-y) -> x - y: each rewrite gives the next its pattern
    ("input x[3, 2]\ninput y[3, 2]\nJ = sum((((x * 1 + 0).T).T - -(-y)) * x)", "(x - y)"),
    # -x - -y -> -x + y (a new node) -> y - x: the node a rule builds is looked at again
    ("input x[3]\ninput y[3]\nJ = sum((-x - -y) * x)", "(y - x)"),
], ids=["chain", "built-node"])
def test_simplify_runs_to_a_fixed_point(text, want):
    fast, _ = assert_correct(text)
    m = fast.model
    ops = {m.node(n)["op"] for n in m.forward_order}
    assert "transpose" not in ops and "neg" not in ops
    for row in RULES:
        op, (i, what) = rule_key(row)
        assert not nodes_matching(m, op, i, what), row
    forward = fast.source[fast.source.index("def forward"):fast.source.index("def value_and_grad")]
    assert f"J = ({want} * x).sum()" in forward


# -- constant folding (passes/fold.py): one case per op it folds -----------------------------

# op -> an expression of literals only, folded to one literal
FOLD_CASES = {
    "add": "2 + 3", "sub": "5 - 3", "mul": "2 * 3", "div": "3 / 4", "pow": "2 ** 3",
    "neg": "-(1.5)", "exp": "exp(0.5)", "log": "log(2)", "tanh": "tanh(0.5)",
    "sigmoid": "sigmoid(0.5)", "relu": "relu(2)", "abs": "abs(-2)", "sqrt": "sqrt(2)",
    "square": "square(3)", "maximum": "maximum(2, 3)", "minimum": "minimum(2, 3)",
    "sign": "sign(-2)", "softplus": "softplus(0.5)", "sin": "sin(0.5)", "cos": "cos(0.5)",
}


def test_every_foldable_op_has_a_case():
    missing = sorted(set(FOLDABLE) - set(FOLD_CASES))
    assert not missing, f"ops that gdsl/passes/fold.py folds without a test case: {missing}"
    stale = sorted(set(FOLD_CASES) - set(FOLDABLE))
    assert not stale, f"fold cases for ops that are no longer folded: {stale}"


def _all_literal_nodes_of(model, op, see_through_neg=False):
    return [n for n, d in model.G.nodes(data=True)
            if d["op"] == op and d["args"]
            and all(literal(model, a, see_through_neg) is not None for a in d["args"])]


@pytest.mark.parametrize("op", list(FOLD_CASES))
def test_constant_folding(op):
    text = f"input x[3]\ninput y[3]\nJ = sum(x * y * ({FOLD_CASES[op]}))"
    fast, slow = assert_correct(text)
    assert _all_literal_nodes_of(slow.model, op, see_through_neg=True), f"no {op} of literals"
    assert not _all_literal_nodes_of(fast.model, op), f"{op} of literals was not folded"
    assert any("folded" in r for r in fast.model.rewrites), fast.model.rewrites


def test_fold_feeds_simplify():
    """x * (3 - 2): folded to x * 1.0, then x."""
    fast, _ = assert_correct("input x[3]\ninput y[3]\nJ = sum(x * (3 - 2) * y)")
    m = fast.model
    assert not [n for n, d in m.G.nodes(data=True) if d["op"] == "literal" and d["value"] == 1.0
                and any(m.node(u)["op"] == "mul" for u in m.G.successors(n))]


def test_non_finite_results_are_not_folded():
    fast = gdsl.compile("input x[3]\nJ = sum(x * exp(log(0) + 2))")
    assert [n for n, d in fast.model.G.nodes(data=True) if d["op"] == "log"]
    assert not any("log" in r and "folded" in r for r in fast.model.rewrites)


def test_consts_are_not_folded():
    """A const can be overridden at call time: c * 3 stays a product."""
    text = "const c = 2\ninput x[3]\nJ = sum(x * (c * 3))"
    fast, slow = assert_correct(text)
    assert [n for n, d in fast.model.G.nodes(data=True) if d["op"] == "mul"
            and fast.model.node(d["args"][0])["op"] == "const"]
    x = np.array([1.0, 2.0, -0.5])
    for m in (fast, slow):
        assert math.isclose(m.forward(x=x, c=5.0)["J"], 2.5 * 15)
        np.testing.assert_allclose(m.value_and_grad(x=x, c=5.0)[1]["x"], [15.0] * 3)


# -- common subexpressions (passes/cse.py) ------------------------------------------------------

def _count(model, op, backward=False):
    return sum(1 for _, d in model.G.nodes(data=True)
               if d["op"] == op and bool(d.get("backward")) == backward)


def test_cse_merges_a_repeated_expression():
    text = "input x[3]\ninput y[3]\na = x * y\nb = x * y\nJ = sum(a * b)"
    fast, slow = assert_correct(text)
    assert _count(slow.model, "mul") == 3 and _count(fast.model, "mul") == 2
    assert fast.model.names["a"] == fast.model.names["b"]
    assert any("same value as" in r for r in fast.model.rewrites)


def test_cse_keeps_apart_what_attributes_tell_apart():
    text = "input x[3, 3]\nJ = sum(sum(x, axis=0) * sum(x, axis=1)) + sum(x * x)"
    fast, _ = assert_correct(text)
    assert _count(fast.model, "sum") == 4


def test_cse_merges_what_simplify_made_equal():
    """a = x * 1 + y and b = x + y become one add after the identities (the second CSE)."""
    text = "input x[3]\ninput y[3]\na = x * 1 + y\nb = x + y\nJ = sum(a * b)"
    fast, slow = assert_correct(text)
    assert _count(slow.model, "add") == 2 and _count(fast.model, "add") == 1


def test_a_value_merged_with_its_own_gradient():
    """g_v = v for J = sqnorm(v)/2; with v = (-W).T the gradient of -W is (v).T = -W, which the
    merge makes one node with -W: it must not be named the gradient of itself (the optimiser
    recursed without end describing it; found by the hvp test's random models)."""
    text = "param W[3, 2]\nv = (-W).T\nJ = 0.5 * sqnorm(v)"
    fast, _ = assert_correct(text, wrt=["W"])
    W = arrays_for(fast)["W"]
    np.testing.assert_allclose(fast.value_and_grad(W=W)[1]["W"], W)


def test_equal_literals_are_one_node():
    """(The model builder and the graph builder share literals already, so CSE's literal key
    has nothing left to merge here; this pins the result.)"""
    text = "input x[3]\ninput y[3]\nJ = sum(x * 2.5 + y * 2.5)"
    fast, _ = assert_correct(text)
    m = fast.model
    literals = [n for n, d in m.G.nodes(data=True) if d["op"] == "literal" and d["value"] == 2.5]
    assert len(literals) == 1


# -- dead code (passes/dce.py) ------------------------------------------------------------------

def test_dce_removes_and_reports_an_unused_value():
    text = "input x[3]\nq = exp(x)\nJ = sum(x * x)"
    fast, slow = assert_correct(text)
    assert _count(slow.model, "exp") == 1 and _count(fast.model, "exp") == 0
    assert any("removed `q`, which nothing uses" in r for r in fast.model.rewrites)


def test_dce_removes_what_rewrites_left_unused():
    """After x * 1 -> x nothing reads the literal 1 or the product."""
    fast, _ = assert_correct("input x[3]\nJ = sum(x * 1 * x)")
    m = fast.model
    assert not [n for n, d in m.G.nodes(data=True) if d["op"] == "literal" and d["value"] == 1.0
                and not any(True for _ in m.G.successors(n))]
    assert all(m.G.out_degree(n) or n in m.roots() for n, d in m.G.nodes(data=True)
               if d["op"] not in ("input", "param", "const"))


def test_dce_keeps_the_interface():
    """Unused inputs, params and consts stay: they are the module's interface."""
    text = "input x[3]\ninput z[3]\nparam w[3]\nparam u[3]\nconst k = 2\nJ = sum(x * w)"
    fast, _ = compile_both(text)
    assert set(fast.inputs) == {"x", "z"} and set(fast.params) == {"w", "u"}
    assert set(fast.consts) == {"k"}


# -- fusions (passes/fuse.py) -------------------------------------------------------------------

FUSE_CASES = {
    # xent(softmax(s), y) -> log-sum-exp cross-entropy, one exp for p and the loss
    "xent_logits": ("input s[3, 5]\ninput y[3, 5]\nJ = xent(softmax(s), y)",
                    {"xent_logits"}, {"xent", "softmax"}, "log-sum-exp"),
    # log(softmax(s)) -> logsoftmax(s)
    "logsoftmax": ("input s[3, 5]\ninput y[3, 5]\nJ = -sum(log(softmax(s)) * y)",
                   {"logsoftmax"}, {"log", "softmax"}, "logsoftmax"),
    "logsoftmax_axis1": ("input s[3, 5]\ninput y[3, 5]\nJ = -sum(log(softmax(s, axis=1)) * y)",
                         {"logsoftmax"}, {"log", "softmax"}, "logsoftmax"),
    # svm(s, y) -> hinge loss of margins computed once
    "svm_hinge": ("input s[3, 5]\ninput y[3, 5]\nJ = svm(s, y)",
                  {"svm_hinge", "svm_margins"}, {"svm"}, "hinge"),
    # xent(p, y) of something else than softmax along axis 0: labels made one-hot once
    "onehot_once": ("input s[3, 5]\ninput y[3, 5]\nJ = xent(softmax(s, axis=1), y)",
                    {"xent", "onehot"}, {"xent_logits"}, None),
}


@pytest.mark.parametrize("name", list(FUSE_CASES))
def test_fusion(name):
    text, present, gone, reported = FUSE_CASES[name]
    fast, slow = assert_correct(text)
    m = fast.model
    ops = {m.node(n)["op"] for n in m.forward_order}
    assert present <= ops, f"{name}: missing {present - ops}"
    assert not gone & ops, f"{name}: still in the forward pass {gone & ops}"
    if reported:
        assert any(reported in r for r in fast.model.rewrites), fast.model.rewrites
    if "y" not in fast.labels:
        return
    # both label forms, integer classes and one-hot columns, give the same values
    arrays = arrays_for(fast, seed=3)
    one_hot = {**arrays, "y": np.eye(3)[arrays["y"]].T}
    for m in (fast, slow):
        (j1, g1), (j2, g2) = m.value_and_grad(**arrays), m.value_and_grad(**one_hot)
        np.testing.assert_allclose(j1, j2, rtol=1e-14)
        np.testing.assert_allclose(g1["s"], g2["s"], rtol=1e-14)
    assert_same_values(fast, slow, one_hot)


@pytest.mark.parametrize("name", ["xent_logits", "svm_hinge", "onehot_once"])
def test_labels_are_made_one_hot_once(name):
    """One onehot node, read by the loss and by its gradient: `_onehot(` once in the code."""
    fast, _ = compile_both(FUSE_CASES[name][0])
    m = fast.model
    onehots = [n for n, d in m.G.nodes(data=True) if d["op"] == "onehot"]
    assert len(onehots) == 1
    readers = [m.node(u) for u in m.G.successors(onehots[0])]
    assert any(not d.get("backward") for d in readers) and any(d.get("backward") for d in readers)
    vag = fast.source[fast.source.index("def value_and_grad"):]
    assert vag.count("_onehot(") == 1


def test_xent_of_softmax_shares_one_exp():
    fast, _ = compile_both(FUSE_CASES["xent_logits"][0])
    vag = fast.source[fast.source.index("def value_and_grad"):]
    assert vag.count("np.exp(") == 1


# -- identities folded by the graph builder while it builds the backward pass ------------------
# (grad.Builder._fold and _fold_literal; they act at -O0 too, so the -O0 graph is inspected)

def _mul_by_reciprocal(model, n):
    d = model.node(n)
    if d["op"] != "mul":
        return False
    y = model.node(d["args"][1])
    return y["op"] == "div" and literal(model, y["args"][0]) == 1


def _all_literal(op):
    return lambda m, n: (m.node(n)["op"] == op
                         and all(literal(m, a) is not None for a in m.node(n)["args"]))


def _pattern(op, i, what):
    def match(m, n):
        d = m.node(n)
        if d["op"] != op:
            return False
        a = d["args"][i]
        return m.node(a)["op"] == what if isinstance(what, str) else literal(m, a) == what
    return match


# name -> (model text, predicate of a backward node the fold must not leave, optimize)
BUILDER_CASES = {
    "1*x -> x": ("input a[]\ninput b[]\nJ = a * b", _pattern("mul", 0, 1), False),
    "x*1 -> x": ("input x[3]\nJ = sum(x * 1)", _pattern("mul", 1, 1), False),
    "x/1 -> x": ("input x[3]\nJ = sum(x / 1)", _pattern("div", 1, 1), False),
    "x**1 -> x": ("input x[3]\nJ = sum(x ** 2)", _pattern("pow", 1, 1), False),
    "0+x -> x": ("input a[]\nJ = a * a + a * 0", _pattern("add", 0, 0), False),
    "x+0 -> x": ("input a[]\nJ = a * 0 + a * a", _pattern("add", 1, 0), False),
    "-1*x -> -x": ("input a[]\ninput b[]\nJ = -(a * b)", _pattern("mul", 0, -1), False),
    "--x -> x": ("input x[3]\nJ = sum(-(-x) * x)", _pattern("neg", 0, "neg"), False),
    "-(v) -> -v": ("input a[]\nJ = -a", _pattern("neg", 0, "literal"), False),
    "v+w -> literal": ("input a[]\nJ = a + a", _all_literal("add"), False),
    "v-w -> literal": ("input x[3]\nJ = sum(x ** 3)", _all_literal("sub"), False),
    "v*w -> literal": ("input a[]\nJ = 2 * (3 * a)", _all_literal("mul"), False),
    "v/w -> literal": ("input a[]\nJ = a / 4", _all_literal("div"), False),
    "x*(1/y) -> x/y": ("input x[3]\ninput y[3]\nJ = sum(x * (1 / y))", _mul_by_reciprocal, False),
    "onehot(onehot(y)) -> onehot(y)": (
        "input s[3, 5]\ninput y[3, 5]\nJ = xent(softmax(s, axis=1), y)",
        _pattern("onehot", 0, "onehot"), True),
}


@pytest.mark.parametrize("name", list(BUILDER_CASES))
def test_builder_folds_while_building_the_backward_pass(name):
    text, unfolded, optimize = BUILDER_CASES[name]
    fast, slow = assert_correct(text)
    m = (fast if optimize else slow).model
    left = [n for n, d in m.G.nodes(data=True) if d.get("backward") and unfolded(m, n)]
    assert not left, f"{name}: left {[m.label(n) for n in left]}"


@pytest.fixture
def builder():
    """A graph builder on a small model, and its x and y as builder values."""
    from gdsl.ir.builder import Builder, V
    m = gdsl.pipeline.run_pipeline("input x[3]\ninput y[3]\nJ = sum(x * y)", optimize=False).model
    b = Builder(m)
    return b, V(b, m.names["x"]), V(b, m.names["y"])


def _form(b, v):
    """What a builder value is: 'x', 'y', a literal's value, or (op, forms of its args)."""
    d = b.m.node(v.id)
    if d["op"] == "literal":
        return d["value"]
    if d["name"] in ("x", "y"):
        return d["name"]
    from gdsl.ir.builder import V
    return (d["op"], *[_form(b, V(b, a)) for a in d["args"]])


# every identity of the builder, including those no model reaches (x - 0, v ** w), and the
# folds that do not happen: 1 / 0 and an overflowing power stay as they are (emitted as
# np.float64(1.0) / 0.0, computed as NumPy computes them: see test_safety_net)
BUILDER_UNITS = [
    ("mul", ("x", 1.0), "x"),
    ("mul", (1.0, "x"), "x"),
    ("div", ("x", 1.0), "x"),
    ("pow", ("x", 1.0), "x"),
    ("add", (0.0, "x"), "x"),
    ("add", ("x", 0.0), "x"),
    ("sub", ("x", 0.0), "x"),
    ("mul", (-1.0, "x"), ("neg", "x")),
    ("add", (2.0, 3.0), 5.0),
    ("sub", (2.0, 3.0), -1.0),
    ("mul", (2.0, 3.0), 6.0),
    ("div", (3.0, 4.0), 0.75),
    ("pow", (2.0, 3.0), 8.0),
    ("div", (1.0, 0.0), ("div", 1.0, 0.0)),
    ("pow", (10.0, 400.0), ("pow", 10.0, 400.0)),
    ("sub", (0.0, "x"), ("sub", 0.0, "x")),
    ("mul", ("x", 2.0), ("mul", "x", 2.0)),
]


@pytest.mark.parametrize("op, args, want", BUILDER_UNITS,
                         ids=[f"{op}{args}" for op, args, _ in BUILDER_UNITS])
def test_builder_identity(builder, op, args, want):
    b, x, y = builder
    vals = [{"x": x, "y": y}.get(a, a) for a in args]
    assert _form(b, b.op(op, *vals)) == want


def test_builder_folds_negations(builder):
    b, x, y = builder
    assert _form(b, b.op("neg", b.op("neg", x))) == "x"
    assert _form(b, b.op("neg", 2.0)) == -2.0
    assert _form(b, x * (1.0 / y)) == ("div", "x", "y")
    Y = b.op("onehot", y, x)
    assert b.op("onehot", Y, x).id == Y.id


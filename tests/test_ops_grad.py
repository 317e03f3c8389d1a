"""Every differentiable op's backward pass against central differences in float64.

One parametrised test walks the op table over shape groups with broadcasting,
as JAX's lax_autodiff_test and autograd's numpy tests do.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_grads_match, numeric_grad

import gdsl
from gdsl.ir.ops import OPS, defop

BROADCAST_GROUPS = [
    [(), (3, 4)], [(3, 4), ()], [(3, 4), (3, 4)], [(3, 4), (3, 1)], [(3, 1), (3, 4)],
    [(3, 4), (1, 4)], [(1, 4), (3, 1)], [(2, 3, 4), (2, 1, 4)], [(4,), (3, 4)], [(), ()],
]
UNARY_SHAPES = [(), (3, 4), (2, 3, 4)]


def decl(name, shape):
    return f"input {name}[{', '.join(map(str, shape))}]"


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, size=shape)


def away_from_zero(rng, shape):
    x = rng.normal(size=shape)
    return np.where(np.abs(x) < 0.1, 0.5, x)


# op -> (expression, domain of the arguments)
BINARY = {
    "add": ("a + b", None), "sub": ("a - b", None), "mul": ("a * b", None),
    "div": ("a / b", "b_positive"), "pow": ("a ** b", "a_positive"),
    "maximum": ("maximum(a, b)", "distinct"), "minimum": ("minimum(a, b)", "distinct"),
}
UNARY = {
    "neg": "-a", "exp": "exp(a)", "log": "log(a)", "tanh": "tanh(a)", "sigmoid": "sigmoid(a)",
    "relu": "relu(a)", "abs": "abs(a)", "sqrt": "sqrt(a)", "square": "square(a)",
    "transpose": "a.T", "sqnorm": "sqnorm(a)", "softplus": "softplus(a)",
    "sin": "sin(a)", "cos": "cos(a)",
}
POSITIVE = {"log", "sqrt"}
KINKED = {"relu", "abs"}


def check(text, arrays, wrt):
    m = gdsl.compile(text, wrt=wrt)
    assert_grads_match(m, arrays)
    return m


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("shapes", BROADCAST_GROUPS, ids=str)
@pytest.mark.parametrize("declared", [True, False], ids=["declared", "free"])
def test_binary_ops(op, shapes, declared, rng):
    expr, domain = BINARY[op]
    sa, sb = shapes
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    if domain == "b_positive":
        b = positive(rng, sb)
    if domain == "a_positive":
        a = positive(rng, sa)
    if domain == "distinct":   # keep a - b away from the kink at a == b
        b = a.mean() + np.where(rng.random(sb) < 0.5, -1, 1) * rng.uniform(0.2, 1, sb) if sb else np.float64(0.3)
    out = np.broadcast_shapes(sa, sb)
    G = rng.normal(size=out)
    decls = [decl("a", sa), decl("b", sb), decl("G", out)] if declared else []
    check("\n".join(decls + [f"J = sum(({expr}) * G)"]), {"a": a, "b": b, "G": G}, ["a", "b"])


@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
def test_unary_ops(op, shape, rng):
    a = positive(rng, shape) if op in POSITIVE else (
        away_from_zero(rng, shape) if op in KINKED else rng.normal(size=shape))
    out = shape[::-1] if op == "transpose" else (() if op == "sqnorm" else shape)
    G = rng.normal(size=out)
    text = "\n".join([decl("a", shape), decl("G", out), f"J = sum(({UNARY[op]}) * G)"])
    check(text, {"a": a, "G": G}, ["a"])


MATMUL_SHAPES = [((3, 4), (4, 5)), ((3, 4), (4,)), ((4,), (4, 5)), ((4,), (4,)), ((1, 4), (4, 1))]


@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES, ids=str)
@pytest.mark.parametrize("declared", [True, False], ids=["declared", "free"])
def test_matmul(sa, sb, declared, rng):
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    out = np.empty(sa)[..., :] @ np.empty(sb)
    G = rng.normal(size=np.shape(out))
    decls = [decl("a", sa), decl("b", sb), decl("G", np.shape(out))] if declared else []
    check("\n".join(decls + ["J = sum((a @ b) * G)"]), {"a": a, "b": b, "G": G}, ["a", "b"])


REDUCTIONS = [(None, False), (0, False), (1, False), (-1, False), (0, True), (1, True), (None, True)]


@pytest.mark.parametrize("fn", ["sum", "mean", "max"])
@pytest.mark.parametrize("axis, keepdims", REDUCTIONS, ids=str)
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4)], ids=str)
def test_reductions(fn, axis, keepdims, shape, rng):
    a = rng.permutation(np.arange(np.prod(shape), dtype=float)).reshape(shape) / 7   # no ties
    ref = getattr(np, fn)(a, axis=axis, keepdims=keepdims)
    G = rng.normal(size=np.shape(ref))
    kw = f", axis={axis}" if axis is not None else ""
    kw += ", keepdims=True" if keepdims else ""
    text = "\n".join([decl("a", shape), decl("G", np.shape(ref)), f"v = {fn}(a{kw})", "J = sum(v * G)"])
    m = check(text, {"a": a, "G": G}, ["a"])
    np.testing.assert_allclose(m.forward(a=a, G=G)["J"], np.sum(ref * G))


@pytest.mark.parametrize("axis, keepdims", [(0, False), (1, False), (-1, True), (None, False)],
                         ids=str)
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4)], ids=str)
def test_logsumexp(axis, keepdims, shape, rng):
    a = rng.normal(size=shape) * 3
    ref = np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims))
    G = rng.normal(size=np.shape(ref))
    kw = f"axis={axis}" + (", keepdims=True" if keepdims else "")
    text = "\n".join([decl("a", shape), decl("G", np.shape(ref)), f"J = sum(logsumexp(a, {kw}) * G)"])
    m = check(text, {"a": a, "G": G}, ["a"])
    np.testing.assert_allclose(m.forward(a=a, G=G)["J"], np.sum(ref * G))
    big = m.forward(a=a + 1000.0, G=G)["J"]          # no overflow: log Σ exp(a + 1000)
    np.testing.assert_allclose(big, np.sum((ref + 1000.0) * G))


@pytest.mark.parametrize("fn", ["softmax", "logsoftmax"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax(fn, axis, rng):
    s = rng.normal(size=(4, 5)) * 3
    G = rng.normal(size=(4, 5))
    text = f"input s[4, 5]\ninput G[4, 5]\nJ = sum({fn}(s, axis={axis}) * G)"
    m = check(text, {"s": s, "G": G}, ["s"])
    e = np.exp(s - s.max(axis=axis, keepdims=True))
    p = e / e.sum(axis=axis, keepdims=True)
    want = p if fn == "softmax" else np.log(p)
    np.testing.assert_allclose(m.forward(s=s, G=G)["J"], np.sum(want * G))


def scores_and_labels(rng, C: int, n: int, labels: str):
    """Random scores [C, n], the true classes k, and the labels as one-hot [C, n] or k."""
    k = rng.integers(0, C, size=n)
    return rng.normal(size=(C, n)), k, np.eye(C)[k].T if labels == "onehot" else k


@pytest.mark.parametrize("labels", ["onehot", "integer"])
@pytest.mark.parametrize("optimize", [True, False], ids=["fused", "unfused"])
def test_xent(labels, optimize, rng):
    C, n = 4, 6
    s, k, y = scores_and_labels(rng, C, n, labels)
    m = gdsl.compile(f"input s[{C}, {n}]\ninput y[{C}, {n}]\nJ = xent(softmax(s), y)",
                     wrt=["s"], optimize=optimize)
    assert_grads_match(m, {"s": s, "y": y})
    p = np.exp(s) / np.exp(s).sum(0)
    np.testing.assert_allclose(m.forward(s=s, y=y)["J"], -np.mean(np.log(p[k, np.arange(n)])))
    # the lecture's closed form: dl/ds = (P - Y) / n
    _, g = m.value_and_grad(s=s, y=y)
    np.testing.assert_allclose(g["s"], (p - np.eye(C)[k].T) / n, atol=1e-12)


def test_xent_of_probabilities(rng):
    C, n = 3, 5
    p = rng.uniform(0.1, 1, size=(C, n))
    y = np.eye(C)[rng.integers(0, C, n)].T
    m = gdsl.compile(f"input p[{C}, {n}]\ninput y[{C}, {n}]\nJ = xent(p, y)", wrt=["p"])
    assert_grads_match(m, {"p": p, "y": y})
    np.testing.assert_allclose(m.forward(p=p, y=y)["J"], -np.mean(np.log((y * p).sum(0))))


@pytest.mark.parametrize("labels", ["onehot", "integer"])
@pytest.mark.parametrize("optimize", [True, False], ids=["fused", "unfused"])
def test_svm(labels, optimize, rng):
    C, n = 4, 7
    s, k, y = scores_and_labels(rng, C, n, labels)
    m = gdsl.compile(f"input s[{C}, {n}]\ninput y[{C}, {n}]\nJ = svm(s, y)", wrt=["s"],
                     optimize=optimize)
    margins = s - s[k, np.arange(n)] + 1
    assert np.min(np.abs(margins)) > 1e-3          # away from the hinge
    assert_grads_match(m, {"s": s, "y": y})
    want = np.sum(np.maximum(0, margins) * (1 - np.eye(C)[k].T)) / n
    np.testing.assert_allclose(m.forward(s=s, y=y)["J"], want)
    # the lecture's closed form: dl/ds_j = [margin_j > 0] / n, dl/ds_y = -Σ_j≠y [margin_j > 0] / n
    _, g = m.value_and_grad(s=s, y=y)
    active = (margins > 0) * (1 - np.eye(C)[k].T)
    np.testing.assert_allclose(g["s"], (active - np.eye(C)[k].T * active.sum(0)) / n, rtol=1e-15)


# losses of predictions (or logits) p and targets y: the same shape, or p [1, n] with y [n]
TARGET_LOSSES = {
    # op -> (expression, reference in NumPy of the residual-free arguments)
    "bce": ("bce(a, b)", lambda a, b: np.mean(np.logaddexp(0, a) - b * a)),
    "mse": ("mse(a, b)", lambda a, b: np.mean((a - b) ** 2)),
    "mae": ("mae(a, b)", lambda a, b: np.mean(np.abs(a - b))),
    "huber": ("huber(a, b, delta=0.7)", lambda a, b: np.mean(np.where(
        np.abs(a - b) <= 0.7, 0.5 * (a - b) ** 2, 0.7 * (np.abs(a - b) - 0.35)))),
}
TARGET_GROUPS = [[(), ()], [(5,), (5,)], [(1, 5), (5,)], [(5,), (1, 5)], [(3, 5), (3, 5)],
                 [(1, 5), (1, 5)], [(2, 3, 4), (2, 3, 4)]]


@pytest.mark.parametrize("op", sorted(TARGET_LOSSES))
@pytest.mark.parametrize("shapes", TARGET_GROUPS, ids=str)
@pytest.mark.parametrize("declared", [True, False], ids=["declared", "free"])
def test_target_losses(op, shapes, declared, rng):
    expr, reference = TARGET_LOSSES[op]
    sa, sb = shapes
    b = rng.uniform(0, 1, size=sb) if op == "bce" else rng.normal(size=sb)
    out = np.broadcast_shapes(sa, sb)
    # residuals a - b away from the kinks: 0 (mae), ±delta (huber)
    size = rng.choice([0.2, 1.0, 1.5], size=out) + rng.uniform(-0.1, 0.1, size=out)
    r = rng.choice([-1.0, 1.0], size=out) * size
    a = (np.broadcast_to(b, out) + r).reshape(sa)
    decls = [decl("a", sa), decl("b", sb)] if declared else []
    m = check("\n".join(decls + [f"J = {expr}"]), {"a": a, "b": b}, ["a", "b"])
    np.testing.assert_allclose(m.forward(a=a, b=b)["J"], reference(a, b), rtol=1e-13)


def test_every_differentiable_user_op_is_covered():
    covered = set(BINARY) | set(UNARY) | {"matmul", "sum", "mean", "max", "softmax", "logsoftmax", "logsumexp",
                                          "xent", "svm"} | set(TARGET_LOSSES) | \
        {"conv2d", "maxpool", "flatten", "unflatten"}         # (tests/test_conv.py)
    differentiable = {name for name, op in OPS.items() if op.vjp and any(op.vjp)
                      and (op.user or name in {"add", "sub", "mul", "div", "pow", "neg",
                                               "matmul", "transpose"})}
    assert differentiable <= covered, differentiable - covered


def test_a_wrong_derivative_fails_the_check(rng):
    """Negative control: an op whose vjp is off by a factor must not pass the comparison."""
    defop("bad_square", 1, lambda dims, s, at: s[0], OPS["square"].emit["numpy"],
          lambda g, ans, x, **at: 3 * g * x)              # d x² = 2x, not 3x
    try:
        m = gdsl.compile("input a[3]\nJ = sum(bad_square(a))", wrt=["a"])
        a = rng.normal(size=3)
        with pytest.raises(AssertionError):
            assert_grads_match(m, {"a": a})
        # and the finite differences agree with the true derivative
        num = numeric_grad(lambda **kw: m.forward(**kw)["J"], {"a": a}, "a")
        np.testing.assert_allclose(num, 2 * a, rtol=1e-6)
    finally:
        del OPS["bad_square"]


@pytest.mark.parametrize("shape", [(3,), (3, 4), (2, 3, 4)], ids=str)
def test_take(shape, rng):
    """x[t], a slice along axis 0 (the `take` row) and its vjp `take_grad`, each slice once."""
    t = shape[0]
    expr = " + ".join(f"sum(a[{k}] * a[{k}] * {k})" for k in range(1, t + 1))
    check(f"{decl('a', shape)}\nJ = {expr}", {"a": rng.normal(size=shape)}, ["a"])

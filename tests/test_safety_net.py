"""Fixed tests for two faults that the suite once missed when they were seeded, and for the
bugs found while writing them.

1. Gradients that add several bare comparison masks. A mask (`s > 0`, `a >= b`) is a NumPy
   bool array; True + True is True and -True raises, so where masks are summed the emitted
   code must cast them (emit._bool_arrays_to_cast). When the gradient arriving at a relu or
   maximum is the scalar seed 1 (the loss is the relu itself, not a sum of it), each
   contribution is the bare mask. Every gradient must be a float array equal to finite
   differences, at -O0 and by default.
2. Training must shuffle the training set every epoch: each epoch visits every training row
   exactly once, in an order of its own.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import numeric_grad

import gdsl
from gdsl.tools.train import prepare, train

# -- 1. gradients that sum mask-valued contributions --------------------------------------------

# id -> (model text, wrt). "scalar g": the gradient reaching the masks is the seed 1 itself,
# so the masks arrive bare (each of these fails when the masks are not cast); "array g": it is
# an array, and g * mask is already a float (these guard the paths around the cast).
MASK_CASES = {
    "scalar g: relu + maximum": ("input a[]\nJ = relu(a) + maximum(a, 0.0)", None),
    "scalar g: relu twice": ("input a[]\nJ = relu(a) + relu(a)", None),
    "scalar g: four masks, two inputs": (
        "input a[]\ninput b[]\nJ = relu(a) + relu(b) + maximum(a, b) + minimum(b, a)", None),
    "scalar g: relu of relu": ("input a[]\nJ = relu(relu(a)) + maximum(a, 0.0)", None),
    "scalar g: masks subtracted": (
        "input a[]\nJ = relu(a) + relu(-a) + maximum(a, 0.0) - minimum(a, 0.0)", None),
    "scalar g: masks negated": ("input a[]\nJ = -relu(a) - maximum(a, 0.0)", None),
    "scalar g: shared sum": (
        "input a[]\ninput b[]\nJ = relu(a + b) + maximum(a, b) + relu(a)", None),
    "scalar g: param": ("param w[] ~ zeros\ninput x[3]\nJ = relu(w) + relu(w) + sum(x)", None),
    "scalar g: const": (
        "const c = 0.5\ninput x[3]\nJ = sum(x) + relu(c) + maximum(c, 0.25) + relu(c)", ["c", "x"]),
    "scalar g: reduced value": ("input s[3, 4]\nh = sum(s)\nJ = relu(h) + maximum(h, 0.0)", None),
    "scalar g: max of an array": (
        "input s[3, 4]\nh = max(s)\nJ = relu(h) + relu(h) + minimum(h, 5.0)", None),
    "scalar g: mean along an axis": (
        "input s[3, 4]\nh = sum(mean(s, axis=1))\nJ = relu(h) + maximum(h, -1.0) + relu(h)", None),
    "array g: undeclared shapes, g from _sum_to": (
        "J = relu(a) + maximum(a, 0.0) + relu(a)", None),
    "array g: same shape": ("input s[3, 4]\nJ = sum(relu(s) + maximum(s, 0.0))", None),
    "array g: weighted": (
        "input s[3, 4]\ninput w[4]\nJ = sum((relu(s) + maximum(s, 0.0)) * w)", ["s"]),
    "array g: broadcasting": (
        "input a[3, 1]\ninput b[1, 4]\nJ = sum(relu(a) + relu(b) + maximum(a, b) + minimum(b, a))",
        None),
    "array g: scalar broadcast into an array": (
        "input a[]\ninput x[3]\nJ = relu(a) + maximum(a, 0.0) + sum(relu(x * a) + maximum(x, a))",
        None),
    "array g: means along axes": (
        ("input s[3, 4]\nu = mean(relu(s) + maximum(s, 0.0), axis=1)\n"
         "v = mean(relu(s), axis=0, keepdims=True)\nJ = sum(u * v.T)"), None),
}

UNDECLARED_SHAPES = {"a": ()}


def draws(model, positive: bool, seed: int = 0) -> dict:
    """Arrays away from every kink: all positive (each mask true at once: the masks add up
    to more than 1) or of mixed sign."""
    rng = np.random.default_rng(seed)
    out = {}
    for table in (model.inputs, model.params):
        for name, shape in table.items():
            shape = UNDECLARED_SHAPES[name] if shape is None else tuple(shape)
            size = rng.uniform(0.3, 1.5, shape)
            out[name] = size if positive else size * rng.choice([-1.0, 1.0], shape)
    for name in model.wrt:
        if name in model.consts:
            out[name] = 0.7 if positive else -0.4
    return out


@pytest.mark.parametrize("positive", [True, False], ids=["positive", "mixed"])
@pytest.mark.parametrize("optimize", [True, False], ids=["default", "O0"])
@pytest.mark.parametrize("case", list(MASK_CASES),
                         ids=[k.replace(": ", "/").replace(" ", "_") for k in MASK_CASES])
def test_gradients_summing_masks_are_floats_equal_to_finite_differences(case, optimize, positive):
    text, wrt = MASK_CASES[case]
    m = gdsl.compile(text, wrt=wrt, optimize=optimize)
    arrays = draws(m, positive)
    loss, grads = m.value_and_grad(**arrays)

    def f(**kw):
        return float(m.forward(**kw)[m.loss])

    assert np.isclose(loss, f(**arrays))
    assert set(grads) == set(m.wrt)
    for name, g in grads.items():
        g = np.asarray(g)
        assert g.dtype.kind == "f", f"gradient of {name} has dtype {g.dtype}: {g!r}"
        assert g.shape == np.shape(arrays[name]), name
        np.testing.assert_allclose(g, numeric_grad(f, arrays, name), rtol=1e-6, atol=1e-8,
                                   err_msg=f"gradient of {name}")


def test_two_true_masks_count_twice():
    """The plainest form of the fault: d/da (relu(a) + maximum(a, 0)) at a > 0 is 2, not True."""
    for optimize in (True, False):
        m = gdsl.compile("input a[]\nJ = relu(a) + maximum(a, 0.0)", optimize=optimize)
        _, g = m.value_and_grad(a=0.5)
        assert np.asarray(g["a"]).dtype == np.float64 and g["a"] == 2.0


# -- 2. training shuffles the training set every epoch -----------------------------------------

MODEL = """input x[d, n]
input y[C, n]
param W[C, d] ~ normal(0, 0.1)
param b[C, 1] ~ zeros
J = xent(softmax(W @ x + b), y)
"""
N = 23      # not a multiple of the batch size: the last batch of each epoch is short


def data(n: int = N) -> dict:
    """Three features; the first is the row's number / n, so a batch says which rows it holds."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, n))
    x[0] = np.arange(n) / n
    return {"x": x, "y": rng.integers(0, 3, n)}


def spy_on_batches(monkeypatch, tm, n: int = N) -> list[list[list[int]]]:
    """epochs[e][k]: the rows of the k-th batch of epoch e, as training takes them."""
    epochs: list[list[list[int]]] = [[]]
    step = tm.compiled.value_and_grad

    def value_and_grad(**arrays):
        epochs[-1].append(np.rint(arrays["x"][0] * n).astype(int).tolist())
        return step(**arrays)

    monkeypatch.setattr(tm.compiled, "value_and_grad", value_and_grad)
    return epochs


def run(monkeypatch, seed=0, epochs=5, **settings):
    tm = prepare(MODEL)
    seen = spy_on_batches(monkeypatch, tm)
    result = train(tm, data(), epochs=epochs, batch_size=5, lr=0.1, seed=seed,
                   on_epoch=lambda record: seen.append([]), **settings)
    assert seen[-1] == []       # nothing after the last epoch
    return seen[:-1], result


def test_each_epoch_visits_every_row_once_in_a_new_order(monkeypatch):
    epochs, result = run(monkeypatch, val_fraction=0)
    assert len(epochs) == 5 and len(result.history) == 5
    orders = []
    for e, batches in enumerate(epochs, 1):
        assert [len(b) for b in batches] == [5, 5, 5, 5, 3], f"epoch {e}"
        order = [row for batch in batches for row in batch]
        assert sorted(order) == list(range(N)), f"epoch {e} does not visit each row once: {order}"
        orders.append(tuple(order))
    assert len(set(orders)) == len(orders), f"epochs repeat an order: {orders}"
    assert tuple(range(N)) not in orders, "an epoch in the data's own order: not shuffled"


def test_with_a_validation_split_each_epoch_visits_the_training_rows_once(monkeypatch):
    epochs, result = run(monkeypatch, val_fraction=0.2)
    rows = None
    orders = set()
    for batches in epochs:
        order = [row for batch in batches for row in batch]
        assert len(order) == len(set(order)) == result.n_train
        rows = rows or set(order)
        assert set(order) == rows            # the same training rows, never a validation row
        orders.add(tuple(order))
    assert len(rows) == N - result.n_val and len(orders) == len(epochs)


def test_shuffling_is_deterministic_per_seed(monkeypatch):
    first, _ = run(monkeypatch, seed=3, epochs=3, val_fraction=0)
    again, _ = run(monkeypatch, seed=3, epochs=3, val_fraction=0)
    other, _ = run(monkeypatch, seed=4, epochs=3, val_fraction=0)
    assert first == again
    assert first != other


# -- bugs found while writing these tests ---------------------------------------------------------

@pytest.mark.parametrize("optimize", [True, False], ids=["default", "O0"])
def test_transpose_of_a_scalar_loss_term(optimize):
    m = gdsl.compile("input x[3]\nJ = sum(x).T", optimize=optimize)
    _, g = m.value_and_grad(x=np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(g["x"], [1.0, 1.0, 1.0])


def test_division_by_a_literal_zero_has_a_gradient_like_its_value():
    m = gdsl.compile("input a[]\nJ = a / 0")
    with np.errstate(divide="ignore"):
        assert m.forward(a=2.0)["J"] == np.inf
        _, g = m.value_and_grad(a=2.0)
    assert g["a"] == np.inf


def test_comments_quote_declarations_whole():
    src = gdsl.compile("param w[C, n]\nJ = sum(w * w) + mean(w)").source
    comments = [line.strip() for line in src.splitlines() if "grad of: param" in line]
    assert comments and all(c.endswith("]") for c in comments), comments


# -- a gradient is an array of the caller's own ------------------------------------------------
# Where the gradient is a number, a param itself or a broadcast view, the NumPy module used to
# return it as it was: `g["W"] *= lr` then raised (read-only) or, for J = 0.5 ||W||², scaled W
# itself; one array that is two names' gradient was returned for both (scaling one scaled the
# other). Each case: the model, its arrays, the gradients by hand.

OWN_CASES = {
    "half-sqnorm": ("param W[3]\nJ = 0.5 * sqnorm(W)", {"W": [1.0, -2.0, 3.0]},
                    {"W": [1.0, -2.0, 3.0]}),
    "sum": ("param W[2, 3]\nJ = sum(W)", {"W": np.arange(6.0).reshape(2, 3)},
            {"W": np.ones((2, 3))}),
    "mean": ("param W[4]\nJ = mean(W)", {"W": [1.0, 2.0, 3.0, 4.0]}, {"W": [0.25] * 4}),
    "sum-transpose": ("param W[2, 3]\nJ = sum(W.T)", {"W": np.ones((2, 3))},
                      {"W": np.ones((2, 3))}),
    "number": ("param W[3]\nparam b\nJ = sum(W) + 2 * b", {"W": [1.0, 2.0, 3.0], "b": 0.5},
               {"W": [1.0, 1.0, 1.0], "b": 2.0}),
    "two-names": ("param W[3]\nparam V[3]\ninput x[3]\nJ = sum((W + V) * x)",     # one node
                  {"W": [1.0, 1.0, 1.0], "V": [2.0, 2.0, 2.0], "x": [0.0, 1.0, 2.0]},
                  {"W": [0.0, 1.0, 2.0], "V": [0.0, 1.0, 2.0]}),
    "half-sqnorm-flat": ("param W[2, 3]\nJ = 0.5 * sqnorm(flatten(W))",
                         {"W": np.arange(6.0).reshape(2, 3)}, {"W": np.arange(6.0).reshape(2, 3)}),
}


@pytest.mark.parametrize("target", ["numpy", "numba", "array_api"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("optimize", [True, False], ids=["default", "O0"])
@pytest.mark.parametrize("case", list(OWN_CASES))
def test_a_gradient_is_an_array_of_its_own(case, optimize, dtype, target):
    text, params, expected = OWN_CASES[case]
    m = gdsl.compile(text, optimize=optimize, target=target)
    arrays = {k: np.array(v, dtype) for k, v in params.items()}
    kept = {k: a.copy() for k, a in arrays.items()}
    for fn in (m.value_and_grad, m.module.value_and_grad):     # the model, and its module
        _, g = fn(**arrays)
        for k, want in expected.items():
            got = g[k]
            assert np.asarray(got).dtype == dtype and np.shape(got) == arrays[k].shape, k
            if arrays[k].shape:             # (a number may come back as a NumPy scalar)
                assert isinstance(got, np.ndarray) and got.flags.writeable, k
            np.testing.assert_allclose(got, want)
            got *= 10.0                     # an in-place update of the gradient ...
        for k, a in arrays.items():         # ... changes no param
            np.testing.assert_array_equal(a, kept[k])


def test_a_hessian_vector_product_is_an_array_of_its_own():
    m = gdsl.compile("param W[3]\nJ = 0.5 * sqnorm(W)")       # H = I: H v is v
    W, v = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])
    hv = m.hvp({"W": v}, W=W)["W"]
    np.testing.assert_array_equal(hv, [0.5, -1.0, 2.0])
    hv *= 10.0
    np.testing.assert_array_equal(v, [0.5, -1.0, 2.0])

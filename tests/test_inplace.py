"""Results computed in a dead argument's array: less memory, the same numbers, and no array
the caller can see (an input, a returned value, a view of one) is ever written."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from helpers import MODELS, assert_grads_match

import gdsl

FREE = {"W": ("C", "d"), "x": ("d", "n"), "b": ("C", 1), "y": ("C", "n"), "lam": ()}  # oneliner


def _arrays(m, rng, dims):
    """Random inputs and parameters for a compiled model (labels one-hot)."""
    a = m.init_params(dims, seed=1) if m.params else {}
    for name, shape in m.inputs.items():
        shape = FREE[name] if shape is None else shape
        a[name] = rng.normal(size=tuple(dims.get(d, d) for d in shape))
    for name in m.module.LABELS:
        C, *rest = a[name].shape
        a[name] = np.eye(C)[rng.integers(0, C, size=rest)].T
    a.update(m.init_state(dims))        # (batch norm's running statistics: never written either)
    return a


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_inputs_are_never_written_and_gradients_share_no_memory(path, rng):
    m = gdsl.compile_file(path)
    arrays = _arrays(m, rng, {"n": 7, "d": 5, "C": 3, "m": 4})
    before = {k: v.copy() for k, v in arrays.items()}
    out = m.forward(**arrays)
    _loss, grads, *state = m.value_and_grad(**arrays)    # (a model with state: its new values)
    for k, v in arrays.items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    values = [*grads.values(), *(v for v in out.values() if np.ndim(v)), *arrays.values(),
              *(v for new in state for v in new.values())]
    for i, a in enumerate(values):
        for b in values[:i]:
            assert not np.shares_memory(a, b)
    plain = gdsl.compile_file(path, optimize=False)
    _, want, *_ = plain.value_and_grad(**arrays)
    for k in grads:
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-10, atol=1e-12, err_msg=k)


def test_a_view_of_an_array_keeps_it_from_being_reused(rng):
    # g_e = t.T is a view of t = Σ_n u ∘ (...): g_c = t * (a < c) must not be written into t
    text = """input a[1, 1]
input c[C, 1]
input e[1, C]
input u[C, n]
J = sum(u * (maximum(a, c) + e.T))"""
    m = gdsl.compile(text, wrt=["c", "e"])
    arrays = {"a": np.array([[0.1]]), "c": rng.normal(size=(4, 1)), "e": rng.normal(size=(1, 4)),
              "u": rng.normal(size=(4, 5))}
    assert_grads_match(m, arrays)
    _, g = m.value_and_grad(**arrays)
    np.testing.assert_allclose(g["e"], arrays["u"].sum(axis=1)[None, :])


def test_the_lecture_model_computes_softmax_and_its_gradient_in_the_scores_array():
    body = gdsl.compile_file("models/linear_softmax.gdsl").source.split("def value_and_grad")[1]
    for line in ["s = np.add(z, b, out=z)", "ys = np.vdot(Y, s)", "e = np.subtract(s, m, out=s)",
                 "np.exp(e, out=e)", "p = np.divide(e, Z, out=e)", "g_s = np.subtract(p, Y, out=p)",
                 "g_s /= s.shape[1]", "g_W = g_s @ x.T", "g_W += W * (2.0 * lam)"]:
        assert "    " + line + "\n" in body, line
    plain = gdsl.compile_file("models/linear_softmax.gdsl", optimize=False).source
    assert "out=" not in plain and "+=" not in plain and "    s = z + b\n" in plain


def test_relu_is_computed_in_its_argument_and_its_mask_reads_the_result():
    body = gdsl.compile_file("models/mlp2.gdsl").source.split("def value_and_grad")[1]
    assert "    np.maximum(h, 0, out=h)\n" in body and "h > 0" in body


def _peak(f) -> int:
    f()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    f()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def test_one_step_of_the_lecture_model_holds_one_array_of_scores(rng):
    # hand-written NumPy keeps one C x n array (the scores, then p, then p - Y) and the
    # gradients; every value in an array of its own would hold about four at once
    C, d, n = 10, 20, 20_000
    m = gdsl.compile_file("models/linear_softmax.gdsl")
    a = {"x": rng.normal(size=(d, n)), "y": np.eye(C)[rng.integers(0, C, n)].T.copy(),
         "W": rng.normal(size=(C, d)) * 0.01, "b": np.zeros((C, 1))}
    scores = C * n * 8
    peak = _peak(lambda: m.module.value_and_grad(**a))
    assert peak < 1.5 * scores
    plain = gdsl.compile_file("models/linear_softmax.gdsl", optimize=False)
    assert _peak(lambda: plain.module.value_and_grad(**a)) > 2 * scores

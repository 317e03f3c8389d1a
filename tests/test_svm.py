"""The multi-class SVM (hinge) loss: its margins computed once, the subgradient at the hinge,
extreme logits and float32, fused (svm_hinge on the cached margins) and unfused."""

from __future__ import annotations

import numpy as np
import pytest

import gdsl

TEXT = "input s[C, n]\ninput y[C, n]\nJ = svm(s, y)"
OPTIMIZE = pytest.mark.parametrize("optimize", [True, False], ids=["fused", "unfused"])


def reference(s, k):
    """Loss and gradient written out from the lecture: l = Σ_{j≠y} max(0, s_j - s_y + 1) / n."""
    C, n = s.shape
    Y = np.eye(C)[k].T
    margins = s - s[k, np.arange(n)] + 1
    active = (margins > 0) * (1 - Y)
    return np.sum(np.maximum(0, margins) * (1 - Y)) / n, (active - Y * active.sum(0)) / n


def test_the_margins_are_computed_once():
    m = gdsl.compile_file("models/linear_svm.gdsl")
    vg = m.source[m.source.index("def value_and_grad"):]
    assert vg.count("_svm_margins(") == 1, vg
    assert "_svm(" not in vg and "1 - Y" not in m.source
    assert vg.count("_onehot(") == 1            # integer labels become one-hot once


@OPTIMIZE
def test_the_subgradient_is_zero_exactly_at_the_hinge(optimize):
    # s_j - s_y + 1 == 0 exactly for class 1 of the first example and class 2 of the second;
    # the third violates two margins, by 2 and 1.5
    s = np.array([[2.0, 0.5, 1.0], [1.0, 3.0, 0.0], [-4.0, 2.0, 0.5]])
    k = np.array([0, 1, 1])
    m = gdsl.compile(TEXT, wrt=["s"], optimize=optimize)
    J, g = m.value_and_grad(s=s, y=k)
    want_J, want_g = reference(s, k)
    assert J == want_J == 3.5 / 3
    np.testing.assert_array_equal(g["s"], want_g)
    np.testing.assert_array_equal(g["s"][:, :2], 0)
    np.testing.assert_array_equal(g["s"][:, 2] * 3, [1, -2, 1])


@OPTIMIZE
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_extreme_logits(optimize, scale, rng):
    C, n = 5, 8
    s = rng.normal(size=(C, n)) * scale
    k = rng.integers(0, C, n)
    m = gdsl.compile(TEXT, wrt=["s"], optimize=optimize)
    J, g = m.value_and_grad(s=s, y=k)
    want_J, want_g = reference(s, k)
    assert np.isfinite(J) and np.isclose(J, want_J, rtol=1e-14)
    np.testing.assert_array_equal(g["s"], want_g)


@OPTIMIZE
def test_a_small_loss_keeps_its_digits(optimize):
    # one margin violated by 1e-12: Σ max(0, ·) must not add the true class's 1 and take it away
    s = np.array([[0.0, 5.0], [-1.0 + 1e-12, 0.0]])
    k = np.array([0, 0])
    J, _ = gdsl.compile(TEXT, wrt=["s"], optimize=optimize).value_and_grad(s=s, y=k)
    assert np.isclose(J, reference(s, k)[0], rtol=1e-9, atol=0)


@OPTIMIZE
def test_float32_stays_float32(optimize, rng):
    C, d, n = 4, 6, 9
    A = {"x": rng.normal(size=(d, n)).astype(np.float32), "y": rng.integers(0, C, n),
         "W": rng.normal(size=(C, d)).astype(np.float32), "b": np.zeros((C, 1), np.float32)}
    m = gdsl.compile_file("models/linear_svm.gdsl", optimize=optimize)
    J, g = m.module.value_and_grad(**A)
    assert g["W"].dtype == g["b"].dtype == np.float32
    A64 = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in A.items()}
    J64, g64 = m.module.value_and_grad(**A64)
    np.testing.assert_allclose(J, J64, rtol=1e-5)
    np.testing.assert_allclose(g["W"], g64["W"], rtol=1e-4, atol=1e-6)


def test_labels_given_one_hot_or_as_integers_agree(rng):
    C, n = 3, 6
    s = rng.normal(size=(C, n))
    k = rng.integers(0, C, n)
    m = gdsl.compile(TEXT, wrt=["s"])
    J1, g1 = m.value_and_grad(s=s, y=k)
    J2, g2 = m.value_and_grad(s=s, y=np.eye(C)[k].T)
    assert J1 == J2
    np.testing.assert_array_equal(g1["s"], g2["s"])

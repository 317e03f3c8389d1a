"""Convolution and pooling (issue 15, item 5): conv2d, maxpool, flatten and unflatten.

Forward values against references written here (direct loops, and SciPy's correlate), first
derivatives against central differences in float64, second derivatives (Hessian-vector
products) against HIPS autograd (tests/adref.py) and central differences of the gradient,
the backward-only rows' own rules, the other targets (array API, numba, ONNX) against the
NumPy one, and the user's mistakes at the model's line and column.
"""

from __future__ import annotations

import numpy as np
import pytest
from adref import Reference
from helpers import ROOT, assert_grads_match, run_cli

import gdsl
from gdsl.errors import GdslError

# (images [C, H, W, n], kernels [F, C, kh, kw], stride, padding)
CONV_CASES = [
    ((1, 5, 5, 2), (2, 1, 3, 3), 1, 0),
    ((2, 6, 5, 3), (3, 2, 3, 2), 1, 1),
    ((2, 7, 6, 2), (2, 2, 3, 3), 2, 0),
    ((3, 7, 7, 2), (2, 3, 2, 3), 2, 1),     # (rows the last window does not reach)
    ((2, 5, 6, 1), (1, 2, 1, 1), 3, 2),
    ((1, 4, 4, 3), (2, 1, 4, 4), 1, 0),     # one output place
]


def conv_reference(x, K, stride, padding):
    """y[f, i, j, e] = Σ_{c,a,b} K[f, c, a, b] xp[c, s i + a, s j + b, e], by loops."""
    C, H, W, n = x.shape
    F, _, kh, kw = K.shape
    xp = np.zeros((C, H + 2 * padding, W + 2 * padding, n))
    xp[:, padding:padding + H, padding:padding + W] = x
    Ho, Wo = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    y = np.zeros((F, Ho, Wo, n))
    for f in range(F):
        for i in range(Ho):
            for j in range(Wo):
                for e in range(n):
                    window = xp[:, stride * i:stride * i + kh, stride * j:stride * j + kw, e]
                    y[f, i, j, e] = np.sum(K[f] * window)
    return y


def pool_reference(x, size):
    C, H, W, n = x.shape
    out = np.zeros((C, H // size, W // size, n))
    for c, i, j, e in np.ndindex(out.shape):
        out[c, i, j, e] = x[c, size * i:size * i + size, size * j:size * j + size, e].max()
    return out


def shape_decl(name, shape):
    return f"input {name}[{', '.join(map(str, shape))}]"


def conv_text(sx, sK, stride, padding, extra=""):
    return "\n".join([shape_decl("x", sx), shape_decl("K", sK),
                      f"y = conv2d(x, K, stride={stride}, padding={padding}){extra}"])


def distinct(rng, shape):
    """Entries with no ties, at least 1/7 apart (max and maxpool away from their kinks)."""
    return rng.permutation(np.arange(np.prod(shape), dtype=float)).reshape(shape) / 7


# -- forward values -------------------------------------------------------------------------------

@pytest.mark.parametrize("sx, sK, stride, padding", CONV_CASES, ids=str)
def test_conv2d_forward_against_loops(sx, sK, stride, padding, rng):
    x, K = rng.normal(size=sx), rng.normal(size=sK)
    m = gdsl.compile(conv_text(sx, sK, stride, padding) + "\nJ = sum(y)\noutput y")
    y = m.forward(x=x, K=K)["y"]
    np.testing.assert_allclose(y, conv_reference(x, K, stride, padding), rtol=1e-12, atol=1e-12)


def test_conv2d_is_scipys_correlate(rng):
    """One channel, one filter, stride 1, no padding: SciPy's 'valid' cross-correlation."""
    signal = pytest.importorskip("scipy.signal")
    x, K = rng.normal(size=(1, 8, 7, 3)), rng.normal(size=(1, 1, 3, 2))
    y = gdsl.compile(conv_text(x.shape, K.shape, 1, 0) + "\nJ = sum(y)\noutput y") \
        .forward(x=x, K=K)["y"]
    for e in range(3):
        want = signal.correlate(x[0, :, :, e], K[0, 0], mode="valid")
        np.testing.assert_allclose(y[0, :, :, e], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, size", [((2, 4, 4, 3), 2), ((3, 7, 5, 2), 2), ((1, 6, 6, 2), 3),
                                         ((2, 3, 3, 1), 1)], ids=str)
def test_maxpool_forward_against_loops(shape, size, rng):
    x = rng.normal(size=shape)
    m = gdsl.compile(f"{shape_decl('x', shape)}\ny = maxpool(x, size={size})\nJ = sum(y)\noutput y")
    np.testing.assert_array_equal(m.forward(x=x)["y"], pool_reference(x, size))


def test_flatten_and_unflatten_move_entries_in_c_order(rng):
    x = rng.normal(size=(12, 5))
    m = gdsl.compile("input x[12, n]\nimg = unflatten(x, height=2, width=3)\n"
                     "back = flatten(img)\nJ = sum(back)\noutput img, back")
    out = m.forward(x=x)
    assert out["img"].shape == (2, 2, 3, 5)
    for e in range(5):      # each column (one example) is a C-order image of its own
        np.testing.assert_array_equal(out["img"][..., e], x[:, e].reshape(2, 2, 3))
    np.testing.assert_array_equal(out["back"], x)


# -- first derivatives -----------------------------------------------------------------------------

@pytest.mark.parametrize("sx, sK, stride, padding", CONV_CASES, ids=str)
@pytest.mark.parametrize("optimize", [True, False], ids=["O1", "O0"])
def test_conv2d_gradients(sx, sK, stride, padding, optimize, rng):
    x, K = rng.normal(size=sx), rng.normal(size=sK)
    out = conv_reference(x, K, stride, padding).shape
    G = rng.normal(size=out)
    text = conv_text(sx, sK, stride, padding) + f"\n{shape_decl('G', out)}\nJ = sum(y * G)"
    m = gdsl.compile(text, wrt=["x", "K"], optimize=optimize)
    assert_grads_match(m, {"x": x, "K": K, "G": G})


@pytest.mark.parametrize("shape, size", [((2, 4, 4, 3), 2), ((3, 7, 5, 2), 2), ((1, 6, 6, 2), 3)],
                         ids=str)
def test_maxpool_gradient(shape, size, rng):
    x = distinct(rng, shape)
    out = pool_reference(x, size).shape
    G = rng.normal(size=out)
    m = gdsl.compile(f"{shape_decl('x', shape)}\n{shape_decl('G', out)}\n"
                     f"J = sum(maxpool(x, size={size}) * G)", wrt=["x"])
    assert_grads_match(m, {"x": x, "G": G})
    # each window's max takes its g, the rest (and rows no window covers) nothing
    g = m.value_and_grad(x=x, G=G)[1]["x"]
    assert np.count_nonzero(g) == np.count_nonzero(G) and np.isclose(g.sum(), G.sum())


def test_maxpool_ties_share_the_gradient_equally():
    x = np.zeros((1, 2, 2, 1))
    x[0, 0, 0, 0] = x[0, 1, 1, 0] = 1.0      # two maxima in the one window
    m = gdsl.compile("input x[1, 2, 2, 1]\nJ = sum(maxpool(x))", wrt=["x"])
    g = m.value_and_grad(x=x)[1]["x"]
    np.testing.assert_array_equal(g[0, :, :, 0], [[0.5, 0.0], [0.0, 0.5]])


def test_reshapes_pass_the_gradient_back(rng):
    x, G = rng.normal(size=(12, 4)), rng.normal(size=(2, 2, 3, 4))
    m = gdsl.compile("input x[12, n]\ninput G[2, 2, 3, n]\n"
                     "J = sum(unflatten(x, height=2, width=3) * G) + sum(flatten(G) * x * x)",
                     wrt=["x", "G"])
    assert_grads_match(m, {"x": x, "G": G})


def test_a_small_cnn_gradients_against_autograd(rng):
    text = ("input x[16, n]\ninput y[3, n]\nparam K[2, 1, 3, 3]\nparam c[2, 1, 1, 1]\n"
            "param W[3, 2]\nparam b[3, 1]\n"
            "a = tanh(conv2d(unflatten(x, height=4, width=4), K, padding=1) + c)\n"
            "h = flatten(maxpool(a, size=4))\nJ = xent(softmax(W @ h + b), y)")
    m = gdsl.compile(text)
    arrays = {"x": rng.normal(size=(16, 5)), "y": rng.integers(0, 3, size=5),
              "K": rng.normal(size=(2, 1, 3, 3)), "c": rng.normal(size=(2, 1, 1, 1)),
              "W": rng.normal(size=(3, 2)), "b": rng.normal(size=(3, 1))}
    loss, grads = m.value_and_grad(**arrays)
    ref = Reference(m, arrays)
    assert np.isclose(loss, ref.loss(), rtol=1e-12)
    for k, g in ref.grad().items():
        np.testing.assert_allclose(grads[k], g, rtol=1e-10, atol=1e-12, err_msg=k)


# -- second derivatives ----------------------------------------------------------------------------

def central_hvp(grad, arrays, v, eps=1e-5):
    plus = grad({k: a + eps * v[k] if k in v else a for k, a in arrays.items()})
    minus = grad({k: a - eps * v[k] if k in v else a for k, a in arrays.items()})
    return {k: (plus[k] - minus[k]) / (2 * eps) for k in v}


@pytest.mark.parametrize("sx, sK, stride, padding", CONV_CASES[1:4], ids=str)
def test_conv2d_hvp(sx, sK, stride, padding, rng):
    out = conv_reference(np.zeros(sx), np.zeros(sK), stride, padding).shape
    text = conv_text(sx, sK, stride, padding) + \
        f"\n{shape_decl('G', out)}\nJ = sum(G * tanh(y)) + sqnorm(y) / 2"
    arrays = {"x": rng.normal(size=sx), "K": rng.normal(size=sK) / 2, "G": rng.normal(size=out)}
    v = {"x": rng.normal(size=sx), "K": rng.normal(size=sK)}
    for optimize in (True, False):
        m = gdsl.compile(text, wrt=["x", "K"], optimize=optimize)
        ours = m.hvp(v, **arrays)
        theirs = Reference(m, arrays).hvp(v)
        central = central_hvp(lambda a, m=m: m.value_and_grad(**a)[1], arrays, v)
        for k in v:
            np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-9, atol=1e-10, err_msg=k)
            np.testing.assert_allclose(ours[k], central[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_maxpool_hvp(rng):
    text = "input x[2, 5, 4, 3]\ninput G[2, 2, 2, 3]\nJ = sum(G * maxpool(x)) + sqnorm(maxpool(x)) / 2"
    arrays = {"x": distinct(rng, (2, 5, 4, 3)), "G": rng.normal(size=(2, 2, 2, 3))}
    v = {"x": rng.normal(size=(2, 5, 4, 3))}
    m = gdsl.compile(text, wrt=["x"])
    ours = m.hvp(v, **arrays)
    np.testing.assert_allclose(ours["x"], Reference(m, arrays).hvp(v)["x"], rtol=1e-10, atol=1e-12)
    central = central_hvp(lambda a: m.value_and_grad(**a)[1], arrays, v)
    np.testing.assert_allclose(ours["x"], central["x"], rtol=1e-6, atol=1e-8)


# -- the backward-only rows ------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["conv2d_grad_x", "conv2d_grad_K"])
@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1)], ids=str)
def test_conv_backward_rows_against_finite_differences(op, stride, padding, rng):
    """Their own vjps (what a second derivative runs), each against finite differences."""
    from gdsl.tools.check import local_errors
    sx, sK = (2, 5, 6, 2), (3, 2, 3, 2)
    out = conv_reference(np.zeros(sx), np.zeros(sK), stride, padding).shape
    args = [rng.normal(size=out), rng.normal(size=sx), rng.normal(size=sK)]
    errors = local_errors(op, {"stride": stride, "padding": padding}, args, rng)
    assert errors and max(errors.values()) < 1e-7, errors


def test_backward_rows_are_adjoint(rng):
    """<c, f(g)> = <f*(c), g>: conv2d_grad_x and conv2d are adjoint in x, conv2d_grad_K and
    conv2d in K, maxpool_grad and maxpool_pick in g, reshape_to and itself."""
    from gdsl.ir.evaluate import evaluate_node
    at = {"stride": 2, "padding": 1}
    x, K = rng.normal(size=(2, 7, 6, 3)), rng.normal(size=(4, 2, 3, 3))
    y = evaluate_node("conv2d", at, [x, K])
    g = rng.normal(size=y.shape)
    assert np.isclose(np.vdot(evaluate_node("conv2d_grad_x", at, [g, x, K]), x), np.vdot(g, y))
    assert np.isclose(np.vdot(evaluate_node("conv2d_grad_K", at, [g, x, K]), K), np.vdot(g, y))
    x = distinct(rng, (2, 5, 4, 3))
    m = evaluate_node("maxpool", {"size": 2}, [x])
    g, c = rng.normal(size=m.shape), rng.normal(size=x.shape)
    left = np.vdot(c, evaluate_node("maxpool_grad", {"size": 2}, [g, x, m]))
    assert np.isclose(left, np.vdot(evaluate_node("maxpool_pick", {"size": 2}, [c, x, m]), g))
    g, like = rng.normal(size=(6, 4)), np.zeros((2, 3, 4))
    c = rng.normal(size=like.shape)
    assert np.isclose(np.vdot(c, evaluate_node("reshape_to", {}, [g, like])),
                      np.vdot(evaluate_node("reshape_to", {}, [c, g]), g))


# -- the other targets -----------------------------------------------------------------------------

SNIPPET = ("input x[{C}, {H}, {W}, n]\ninput K[{F}, {C}, {kh}, {kw}]\ninput G[{F}, {P}, {Q}, n]\n"
           "a = relu(conv2d(x, K, stride={s}, padding={p}))\n"
           "J = sum(G * maxpool(a, size=2)) + sum(flatten(a) * flatten(a)) / 2")


def snippet(rng, sx, sK, stride, padding):
    y = conv_reference(np.zeros(sx), np.zeros(sK), stride, padding)
    P, Q = y.shape[1] // 2, y.shape[2] // 2
    text = SNIPPET.format(C=sx[0], H=sx[1], W=sx[2], F=sK[0], kh=sK[2], kw=sK[3], P=P, Q=Q,
                          s=stride, p=padding)
    arrays = {"x": rng.normal(size=sx), "K": rng.normal(size=sK),
              "G": rng.normal(size=(sK[0], P, Q, sx[3]))}
    return text, arrays


TARGET_CASES = [((2, 6, 6, 3), (3, 2, 3, 3), 1, 0), ((2, 7, 6, 2), (2, 2, 3, 2), 2, 1)]


@pytest.mark.parametrize("target", ["array-api", "numba"])
@pytest.mark.parametrize("sx, sK, stride, padding", TARGET_CASES, ids=str)
def test_targets_agree_with_numpy(target, sx, sK, stride, padding, rng, tmp_path, monkeypatch):
    pytest.importorskip("array_api_compat" if target == "array-api" else "numba")
    monkeypatch.setenv("GDSL_CACHE", str(tmp_path))
    text, arrays = snippet(rng, sx, sK, stride, padding)
    want_J, want = gdsl.compile(text, wrt=["x", "K"]).value_and_grad(**arrays)
    got_J, got = gdsl.compile(text, wrt=["x", "K"], target=target).value_and_grad(**arrays)
    assert np.isclose(float(got_J), want_J, rtol=1e-12)
    for k in want:
        np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-11, atol=1e-11, err_msg=k)


@pytest.mark.parametrize("sx, sK, stride, padding", TARGET_CASES, ids=str)
def test_onnx_agrees_with_numpy(sx, sK, stride, padding, rng):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    from gdsl.backend import onnx_target
    text, arrays = snippet(rng, sx, sK, stride, padding)
    m = gdsl.compile(text, wrt=["x", "K"])
    want_J, want = m.value_and_grad(**arrays)
    proto = onnx_target.export(m.model, with_grad=True)
    onnx.checker.check_model(proto, full_check=True)
    names = [o.name for o in proto.graph.output]
    got = dict(zip(names, ReferenceEvaluator(proto).run(None, arrays)))
    assert np.isclose(got["J"], want_J, rtol=1e-12)
    for k in want:
        np.testing.assert_allclose(got[f"{k}_grad"], want[k], rtol=1e-11, atol=1e-11, err_msg=k)


# -- the user's mistakes ---------------------------------------------------------------------------

MISTAKES = [
    ("input x[2, 5, 5, 3]\ninput K[4, 3, 3, 3]\nJ = sum(conv2d(x, K))",
     ("m.gdsl:3:9: error: shape mismatch in `conv2d(x, K)`: channels of the kernels and of the "
     "images: 3 and 2 differ")),
    ("input x[25, n]\ninput K[4, 1, 3, 3]\nJ = sum(conv2d(x, K))",
     "m.gdsl:3:9: error: shape mismatch in `conv2d(x, K)`: conv2d takes images [C, H, W, n]"),
    ("input x[1, 5, 5, n]\ninput K[4, 1, 8, 3]\nJ = sum(conv2d(x, K, padding=1))",
     ("m.gdsl:3:9: error: shape mismatch in `conv2d(x, K, padding=1)`: kernels of 8x3 do not fit "
     "in images of 5x5 padded by 1")),
    ("input x[1, h, 5, n]\ninput K[4, 1, 3, 3]\nJ = sum(conv2d(x, K))",
     ("m.gdsl:3:9: error: shape mismatch in `conv2d(x, K)`: the images must have a height and "
     "width known when compiled")),
    ("input x[1, 5, 5, n]\ninput K[4, 1, 3, 3]\nJ = sum(conv2d(x, K, stride=0))",
     "m.gdsl:3:29: error: `stride=` of `conv2d` takes a whole number of at least 1"),
    ("input x[1, 5, 5, n]\ninput K[4, 1, 3, 3]\nJ = sum(conv2d(x, K, padding=1.5))",
     "m.gdsl:3:30: error: `padding=` of `conv2d` takes a whole number (0 or more)"),
    ("input x[1, 3, 3, n]\nJ = sum(maxpool(x, size=4))",
     ("m.gdsl:2:9: error: shape mismatch in `maxpool(x, size=4)`: windows of 4x4 do not fit in "
     "images of 3x3")),
    ("input x[64, n]\nJ = sum(unflatten(x, height=8))",
     "m.gdsl:2:9: error: `unflatten` needs `width=`"),
    ("input x[60, n]\nJ = sum(unflatten(x, height=8, width=8))",
     ("m.gdsl:2:9: error: shape mismatch in `unflatten(x, height=8, width=8)`: 60 features do not "
     "make images of 8x8")),
    ("input x[d, n]\nJ = sum(unflatten(x, height=8, width=8))",
     ("m.gdsl:2:9: error: shape mismatch in `unflatten(x, height=8, width=8)`: unflatten needs the "
     "number of features known when compiled")),
    ("input x[3]\nJ = sum(flatten(x))",
     ("m.gdsl:2:9: error: shape mismatch in `flatten(x)`: flatten takes a value with an examples "
     "axis")),
]


@pytest.mark.parametrize("text, message", MISTAKES, ids=range(len(MISTAKES)))
def test_mistakes_are_named_at_their_place(text, message):
    with pytest.raises(GdslError) as e:
        gdsl.compile(text + "\n", filename="m.gdsl")
    assert str(e.value).startswith(message), str(e.value)


# -- the model -------------------------------------------------------------------------------------

def test_gdsl_check_passes_on_the_cnn():
    """Its thousands of kinks (ReLUs, pooling windows) are cleared with a smaller step."""
    r = run_cli("check", str(ROOT / "models" / "cnn_digits.gdsl"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed" in r.stdout and "K      [16, 1, 3, 3]" in r.stdout

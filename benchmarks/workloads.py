"""The benchmark workloads: gdsl model texts, data, and the same loss+gradient written by hand
in NumPy (columns and rows layout), in HIPS autograd, PyTorch eager and JAX.

Convention (as gdsl): X is d×n with one example per column, one-hot Y is C×n, the loss is
averaged over the examples, J = loss + lam*||W||^2. Every implementation returns
(loss, [gradients in PARAM order]); the peers return their own array types, `to_numpy`
converts them (only for the agreement check, never inside a timed call).
"""

from __future__ import annotations

import re

import numpy as np

# -- the models, as gdsl text (kept here so the workloads stay fixed while models/ evolves) ----

W1_TEXT = """\
# W1: linear scores, softmax, cross-entropy, L2 on W (models/linear_softmax.gdsl)
input x[d, n]
input y[C, n]
param W[C, d]
param b[C, 1]
const lam = 0.01
z = W @ x
s = z + b
p = softmax(s)
J = xent(p, y) + lam * sqnorm(W)
loss J
"""

W2_TEXT = """\
# W2: two-layer ReLU MLP, m hidden units, softmax + cross-entropy, L2 on both weights
input x[d, n]
input y[C, n]
param W1[m, d]
param b1[m, 1]
param W2[C, m]
param b2[C, 1]
const lam = 0.0005
h = relu(W1 @ x + b1)
s = W2 @ h + b2
p = softmax(s)
J = xent(p, y) + lam * (sqnorm(W1) + sqnorm(W2))
loss J
"""

W3_TEXT = """\
# W3: linear scores, multi-class SVM (hinge, margin 1), L2 on W (models/linear_svm.gdsl)
input x[d, n]
input y[C, n]
param W[C, d]
param b[C, 1]
const lam = 0.001
s = W @ x + b
J = svm(s, y) + lam * sqnorm(W)
loss J
"""

TEXTS = {"W1": W1_TEXT, "W2": W2_TEXT, "W3": W3_TEXT}

# The same models as one-liners (no declarations: every free name an input, shapes bound at
# call time; W1's is the README's), differentiated with respect to the params, and each one's
# declared twin: the same line with its inputs declared, which compiles to the code the
# one-liner is specialised to at its first call.
ONELINERS = {
    "W1": "z = W @ x; s = z + b; J = xent(softmax(s), y) + lam*sqnorm(W)\n",
    "W2": "h = relu(W1 @ x + b1); s = W2 @ h + b2; J = xent(softmax(s), y) + lam*(sqnorm(W1) + "
          "sqnorm(W2))\n",
    "W3": "s = W @ x + b; J = svm(s, y) + lam*sqnorm(W)\n",
}
_DECLARED = {"x": "d, n", "y": "C, n", "W": "C, d", "b": "C, 1", "W1": "m, d", "b1": "m, 1",
             "W2": "C, m", "b2": "C, 1", "lam": ""}
LAM = {"W1": 0.01, "W2": 0.0005, "W3": 0.001}
PARAMS = {"W1": ("W", "b"), "W2": ("W1", "b1", "W2", "b2"), "W3": ("W", "b")}
TITLES = {"W1": "linear softmax + L2", "W2": "2-layer ReLU MLP + L2", "W3": "multi-class SVM + L2"}
TWINS = {kind: "".join(f"input {k}[{_DECLARED[k]}]\n"       # in the order the line uses them
                       for k in dict.fromkeys(re.findall(r"[A-Za-z_]\w*", text)) if k in _DECLARED)
         + text for kind, text in ONELINERS.items()}


def make_data(kind: str, dims: dict, dtype, seed: int = 0) -> dict:
    """Random CIFAR-sized data and parameters: x, y (one-hot), the params, all of `dtype`."""
    rng = np.random.default_rng(seed)
    d, C, n = dims["d"], dims["C"], dims["n"]
    x = rng.standard_normal((d, n))
    labels = rng.integers(C, size=n)
    y = np.zeros((C, n))
    y[labels, np.arange(n)] = 1.0
    if kind == "W2":
        m = dims["m"]
        arrays = {"W1": rng.standard_normal((m, d)) * np.sqrt(2.0 / d),
                      "b1": 0.01 * rng.standard_normal((m, 1)),
                      "W2": rng.standard_normal((C, m)) * np.sqrt(2.0 / m),
                      "b2": 0.01 * rng.standard_normal((C, 1))}
    else:
        arrays = {"W": 0.01 * rng.standard_normal((C, d)), "b": 0.01 * rng.standard_normal((C, 1))}
    arrays.update(x=x, y=y)
    return {k: np.ascontiguousarray(v, dtype=dtype) for k, v in arrays.items()}


# -- hand-written NumPy, examples as columns: what an expert writes ----------------------------

def _softmax_xent_cols(S, Y):
    """In place on S (C×n logits): returns (mean cross-entropy, G = (softmax(S) - Y)/n in S)."""
    n = S.shape[1]
    S -= S.max(axis=0, keepdims=True)
    ys = np.vdot(Y, S)                       # Σ_i s_{y_i, i} (after the shift)
    np.exp(S, out=S)
    Z = S.sum(axis=0, keepdims=True)
    loss = (np.log(Z).sum() - ys) / n
    S /= Z
    S -= Y
    S *= 1.0 / n
    return loss, S


def numpy_w1(W, b, x, y, lam):
    S = W @ x
    S += b
    loss, G = _softmax_xent_cols(S, y)
    gW = G @ x.T
    gW += (2 * lam) * W
    return loss + lam * np.vdot(W, W), [gW, G.sum(axis=1, keepdims=True)]


def numpy_w2(W1, b1, W2, b2, x, y, lam):
    H = W1 @ x
    H += b1
    np.maximum(H, 0, out=H)
    S = W2 @ H
    S += b2
    loss, G = _softmax_xent_cols(S, y)
    gW2 = G @ H.T
    gW2 += (2 * lam) * W2
    dH = W2.T @ G
    dH *= H > 0
    gW1 = dH @ x.T
    gW1 += (2 * lam) * W1
    J = loss + lam * (np.vdot(W1, W1) + np.vdot(W2, W2))
    return J, [gW1, dH.sum(axis=1, keepdims=True), gW2, G.sum(axis=1, keepdims=True)]


def numpy_w3(W, b, x, y, lam):
    n = x.shape[1]
    S = W @ x
    S += b
    S -= (y * S).sum(axis=0, keepdims=True)  # s_j - s_y
    S += 1
    np.maximum(S, 0, out=S)                  # the correct class contributes exactly 1
    loss = (S.sum() - n) / n
    A = (S > 0).astype(S.dtype)
    A -= y * A.sum(axis=0, keepdims=True)    # correct class: -(number of violated margins)
    A *= 1.0 / n
    gW = A @ x.T
    gW += (2 * lam) * W
    return loss + lam * np.vdot(W, W), [gW, A.sum(axis=1, keepdims=True)]


# -- hand-written NumPy, examples as rows (xr = x.T, n×d contiguous; yr = y.T, n×C) ---------

def _softmax_xent_rows(S, Y):
    n = S.shape[0]
    S -= S.max(axis=1, keepdims=True)
    ys = np.vdot(Y, S)
    np.exp(S, out=S)
    Z = S.sum(axis=1, keepdims=True)
    loss = (np.log(Z).sum() - ys) / n
    S /= Z
    S -= Y
    S *= 1.0 / n
    return loss, S


def numpy_rows_w1(W, b, xr, yr, lam):
    S = xr @ W.T
    S += b.T
    loss, G = _softmax_xent_rows(S, yr)
    gW = G.T @ xr
    gW += (2 * lam) * W
    return loss + lam * np.vdot(W, W), [gW, G.sum(axis=0)[:, None]]


def numpy_rows_w2(W1, b1, W2, b2, xr, yr, lam):
    H = xr @ W1.T
    H += b1.T
    np.maximum(H, 0, out=H)
    S = H @ W2.T
    S += b2.T
    loss, G = _softmax_xent_rows(S, yr)
    gW2 = G.T @ H
    gW2 += (2 * lam) * W2
    dH = G @ W2
    dH *= H > 0
    gW1 = dH.T @ xr
    gW1 += (2 * lam) * W1
    J = loss + lam * (np.vdot(W1, W1) + np.vdot(W2, W2))
    return J, [gW1, dH.sum(axis=0)[:, None], gW2, G.sum(axis=0)[:, None]]


def numpy_rows_w3(W, b, xr, yr, lam):
    n = xr.shape[0]
    S = xr @ W.T
    S += b.T
    S -= (yr * S).sum(axis=1, keepdims=True)
    S += 1
    np.maximum(S, 0, out=S)
    loss = (S.sum() - n) / n
    A = (S > 0).astype(S.dtype)
    A -= yr * A.sum(axis=1, keepdims=True)
    A *= 1.0 / n
    gW = A.T @ xr
    gW += (2 * lam) * W
    return loss + lam * np.vdot(W, W), [gW, A.sum(axis=0)[:, None]]


NUMPY = {"W1": numpy_w1, "W2": numpy_w2, "W3": numpy_w3}
NUMPY_ROWS = {"W1": numpy_rows_w1, "W2": numpy_rows_w2, "W3": numpy_rows_w3}


# -- hand-written NumPy, rows, in chunks of B examples: one pass over X instead of two ------
# The loss is a sum over examples and each example's gradient needs only its own scores, so
# the forward and backward pass can run block by block while the block of X is in cache:
# gW accumulates G_blk.T @ X_blk. At n=10000, X (245 MB in float64) is otherwise streamed
# from memory twice, once for S = X @ W.T and once for gW = G.T @ X.

CHUNK = 256


def chunked_w1(W, b, xr, yr, lam, B=CHUNK):
    n = xr.shape[0]
    gW, gb, loss = np.zeros_like(W), np.zeros((1, W.shape[0]), W.dtype), 0.0
    for i in range(0, n, B):
        xb = xr[i:i + B]
        S = xb @ W.T
        S += b.T
        lb, G = _softmax_xent_rows(S, yr[i:i + B])   # G is divided by the block size
        loss += lb * len(xb)
        G *= len(xb) / n
        gW += G.T @ xb
        gb += G.sum(axis=0)
    gW += (2 * lam) * W
    return loss / n + lam * np.vdot(W, W), [gW, gb.T]


def chunked_w2(W1, b1, W2, b2, xr, yr, lam, B=CHUNK):
    n = xr.shape[0]
    gW1, gW2 = np.zeros_like(W1), np.zeros_like(W2)
    gb1, gb2, loss = np.zeros((1, W1.shape[0]), W1.dtype), np.zeros((1, W2.shape[0]), W2.dtype), 0.0
    for i in range(0, n, B):
        xb = xr[i:i + B]
        H = xb @ W1.T
        H += b1.T
        np.maximum(H, 0, out=H)
        S = H @ W2.T
        S += b2.T
        lb, G = _softmax_xent_rows(S, yr[i:i + B])
        loss += lb * len(xb)
        G *= len(xb) / n
        gW2 += G.T @ H
        gb2 += G.sum(axis=0)
        dH = G @ W2
        dH *= H > 0
        gW1 += dH.T @ xb
        gb1 += dH.sum(axis=0)
    gW1 += (2 * lam) * W1
    gW2 += (2 * lam) * W2
    J = loss / n + lam * (np.vdot(W1, W1) + np.vdot(W2, W2))
    return J, [gW1, gb1.T, gW2, gb2.T]


def chunked_w3(W, b, xr, yr, lam, B=CHUNK):
    n = xr.shape[0]
    gW, gb, loss = np.zeros_like(W), np.zeros((1, W.shape[0]), W.dtype), 0.0
    for i in range(0, n, B):
        xb, yb = xr[i:i + B], yr[i:i + B]
        S = xb @ W.T
        S += b.T
        S -= (yb * S).sum(axis=1, keepdims=True)
        S += 1
        np.maximum(S, 0, out=S)
        loss += S.sum() - len(xb)
        A = (S > 0).astype(S.dtype)
        A -= yb * A.sum(axis=1, keepdims=True)
        A *= 1.0 / n
        gW += A.T @ xb
        gb += A.sum(axis=0)
    gW += (2 * lam) * W
    return loss / n + lam * np.vdot(W, W), [gW, gb.T]


NUMPY_CHUNKED = {"W1": chunked_w1, "W2": chunked_w2, "W3": chunked_w3}


def blas_floor(kind: str, a: dict):
    """Only the matrix products of the columns version (on preallocated operands): the time
    no NumPy-emitting compiler can go below without changing the BLAS calls."""
    x = a["x"]
    if kind == "W2":
        W1, W2 = a["W1"], a["W2"]
        H = np.maximum(W1 @ x, 0)
        G = np.ones((W2.shape[0], x.shape[1]), x.dtype)

        def floor():
            W1 @ x
            W2 @ H
            G @ H.T
            dH = W2.T @ G
            dH @ x.T
        return floor
    W = a["W"]
    G = np.ones((W.shape[0], x.shape[1]), x.dtype)

    def floor():
        W @ x
        G @ x.T
    return floor


# -- HIPS autograd --------------------------------------------------------------------------

def autograd_impl(kind: str, a: dict, lam: float):
    import autograd.numpy as anp
    from autograd import value_and_grad
    from autograd.scipy.special import logsumexp

    x, y = a["x"], a["y"]
    n = x.shape[1]

    def xent(S):
        return (anp.sum(logsumexp(S, axis=0)) - anp.sum(y * S)) / n

    if kind == "W1":
        def f(p):
            W, b = p
            return xent(anp.dot(W, x) + b) + lam * anp.sum(W * W)
    elif kind == "W2":
        def f(p):
            W1, b1, W2, b2 = p
            H = anp.maximum(anp.dot(W1, x) + b1, 0)
            return xent(anp.dot(W2, H) + b2) + lam * (anp.sum(W1 * W1) + anp.sum(W2 * W2))
    else:
        def f(p):
            W, b = p
            S = anp.dot(W, x) + b
            M = anp.maximum(S - anp.sum(y * S, axis=0, keepdims=True) + 1, 0) * (1 - y)
            return anp.sum(M) / n + lam * anp.sum(W * W)

    vg = value_and_grad(f)
    params = tuple(a[k] for k in PARAMS[kind])

    def step():
        return vg(params)
    return step, lambda r: (np.asarray(r[0]), [np.asarray(g) for g in r[1]])


# -- PyTorch eager autograd -----------------------------------------------------------------

def torch_impl(kind: str, a: dict, lam: float):
    import torch

    t = {k: torch.from_numpy(v) for k, v in a.items()}
    params = [t[k].requires_grad_() for k in PARAMS[kind]]
    x, y = t["x"], t["y"]
    n = x.shape[1]

    def xent(S):
        return (torch.logsumexp(S, 0).sum() - (y * S).sum()) / n

    if kind == "W1":
        W, b = params

        def loss():
            return xent(W @ x + b) + lam * (W * W).sum()
    elif kind == "W2":
        W1, b1, W2, b2 = params

        def loss():
            H = torch.relu(W1 @ x + b1)
            return xent(W2 @ H + b2) + lam * ((W1 * W1).sum() + (W2 * W2).sum())
    else:
        W, b = params

        def loss():
            S = W @ x + b
            M = torch.relu(S - (y * S).sum(0, keepdim=True) + 1) * (1 - y)
            return M.sum() / n + lam * (W * W).sum()

    def step():
        J = loss()
        return J.detach(), torch.autograd.grad(J, params)
    return step, lambda r: (r[0].numpy(), [g.numpy() for g in r[1]])


# -- JAX jit(value_and_grad) ----------------------------------------------------------------

def jax_impl(kind: str, a: dict, lam: float):
    import jax
    jax.config.update("jax_enable_x64", True)     # else float64 arrays silently become float32
    import jax.numpy as jnp
    from jax.nn import logsumexp

    x, y = jax.device_put(a["x"]), jax.device_put(a["y"])
    n = a["x"].shape[1]

    def xent(S, y):
        return (jnp.sum(logsumexp(S, axis=0)) - jnp.sum(y * S)) / n

    if kind == "W1":
        def f(W, b, x, y):
            return xent(W @ x + b, y) + lam * jnp.sum(W * W)
    elif kind == "W2":
        def f(W1, b1, W2, b2, x, y):
            H = jnp.maximum(W1 @ x + b1, 0)
            return xent(W2 @ H + b2, y) + lam * (jnp.sum(W1 * W1) + jnp.sum(W2 * W2))
    else:
        def f(W, b, x, y):
            S = W @ x + b
            M = jnp.maximum(S - jnp.sum(y * S, axis=0, keepdims=True) + 1, 0) * (1 - y)
            return jnp.sum(M) / n + lam * jnp.sum(W * W)

    k = len(PARAMS[kind])
    vg = jax.jit(jax.value_and_grad(f, argnums=tuple(range(k))))
    params = [jax.device_put(a[p]) for p in PARAMS[kind]]

    def step():
        return jax.block_until_ready(vg(*params, x, y))
    return step, lambda r: (np.asarray(r[0]), [np.asarray(g) for g in r[1]])


# -- PyTensor, compiled in its numba mode -----------------------------------------------------

def pytensor_impl(kind: str, a: dict, lam: float):
    """PyTensor's graph of the same loss, its gradients by pytensor.grad, compiled with
    mode="NUMBA" (one numba function for the whole graph); called with trust_input=True, so
    that PyTensor does not check the arrays on each call."""
    import pytensor
    import pytensor.tensor as pt

    dt = a["x"].dtype.name
    n = a["x"].shape[1]
    x, y = pt.matrix("x", dtype=dt), pt.matrix("y", dtype=dt)
    params = [pt.matrix(k, dtype=dt, shape=(None, 1) if k.startswith("b") else (None, None))
              for k in PARAMS[kind]]

    def xent(S):
        return (pt.sum(pt.logsumexp(S, axis=0)) - pt.sum(y * S)) / n

    if kind == "W1":
        W, b = params
        J = xent(W @ x + b) + lam * pt.sum(W * W)
    elif kind == "W2":
        W1, b1, W2, b2 = params
        H = pt.maximum(W1 @ x + b1, 0)
        J = xent(W2 @ H + b2) + lam * (pt.sum(W1 * W1) + pt.sum(W2 * W2))
    else:
        W, b = params
        S = W @ x + b
        M = pt.maximum(S - pt.sum(y * S, axis=0, keepdims=True) + 1, 0) * (1 - y)
        J = pt.sum(M) / n + lam * pt.sum(W * W)
    f = pytensor.function([*params, x, y], [J, *pytensor.grad(J, params)], mode="NUMBA")
    f.trust_input = True
    values = [a[k] for k in PARAMS[kind]] + [a["x"], a["y"]]

    def step():
        return f(*values)
    return step, lambda r: (np.asarray(r[0]), [np.asarray(g) for g in r[1:]])

"""An independent reference for a compiled model's loss, gradient and Hessian: the graph as
written (CompiledModel.graph: after shapes, before fusion and differentiation) interpreted op
by op on HIPS autograd's numpy, with its own implementation of each op written here. gdsl's
derivative rules, optimiser and emitted code take no part; autograd differentiates (twice).

    ref = Reference(compiled, arrays)       # arrays: inputs, params, consts of one call
    ref.loss(), ref.grad(), ref.hvp(v), ref.hessian()
"""

from __future__ import annotations

import numpy as np


def _raw(v):
    from autograd.tracer import getval
    return np.asarray(getval(v))


def _onehot(y, like):
    y = np.asarray(y)
    if y.shape == np.shape(like):
        return y.astype(np.float64)
    labels = y.reshape(np.shape(like)[1:])
    Y = np.zeros(np.shape(like))
    np.put_along_axis(Y, labels[None], 1.0, axis=0)
    return Y


def _axis(at, default=None):
    return at.get("axis", default)


def _n_examples(p):
    return int(np.prod(np.shape(p)[1:]))


def _fit(p, y):
    """Predictions and targets of target losses, as gdsl takes them: [1, n] beside [n]."""
    if np.ndim(p) == np.ndim(y) + 1 and np.shape(p)[0] == 1:
        return p, y[None]
    if np.ndim(y) == np.ndim(p) + 1 and np.shape(y)[0] == 1:
        return p[None], y
    return p, y


def ops():
    import autograd.numpy as anp

    def softmax(x, axis):
        z = anp.exp(x - _raw(x).max(axis=axis, keepdims=True))
        return z / anp.sum(z, axis=axis, keepdims=True)

    def logsumexp(x, axis, keepdims):
        m = _raw(x).max(axis=axis, keepdims=True)
        out = m + anp.log(anp.sum(anp.exp(x - m), axis=axis, keepdims=True))
        return out if keepdims else anp.squeeze(out, axis=axis)

    def matmul(x, y):
        return anp.matmul(x, y) if np.ndim(_raw(x)) > 1 and np.ndim(_raw(y)) > 1 else anp.dot(x, y)

    def pick(x, y, first):
        return anp.where(first, x + 0 * y, y + 0 * x)

    def xent(p, y):
        Y = _onehot(_raw(y), _raw(p))
        return -anp.sum(anp.log(anp.sum(Y * p, axis=0))) / _n_examples(_raw(p))

    def svm(s, y):
        Y = _onehot(_raw(y), _raw(s))
        margins = s - anp.sum(Y * s, axis=0, keepdims=True) + 1
        return anp.sum(anp.maximum(margins, 0) * (1 - Y)) / _n_examples(_raw(s))

    def huber(p, y, delta):
        r = anp.subtract(*_fit(p, y))
        a = r * np.sign(_raw(r))
        return anp.mean(anp.where(_raw(a) <= delta, 0.5 * r * r, delta * (a - 0.5 * delta)))

    def conv2d(x, K, stride, padding):
        # Σ over the places (a, b) of a window: K[:, :, a, b] times x shifted by (a, b)
        if padding:
            C, H, W, n = np.shape(_raw(x))
            zr = np.zeros((C, padding, W, n))
            x = anp.concatenate([zr, x, zr], axis=1)
            zc = np.zeros((C, H + 2 * padding, padding, n))
            x = anp.concatenate([zc, x, zc], axis=2)
        _F, C, kh, kw = np.shape(_raw(K))
        H, W = np.shape(_raw(x))[1:3]
        Ho, Wo = (H - kh) // stride + 1, (W - kw) // stride + 1
        out = 0
        for a in range(kh):
            for b in range(kw):
                patch = x[:, a:a + stride * (Ho - 1) + 1:stride, b:b + stride * (Wo - 1) + 1:stride]
                out = out + anp.einsum("fc,cijn->fijn", K[:, :, a, b], patch)
        return out

    def maxpool(x, size):
        C, H, W, n = np.shape(_raw(x))
        Hp, Wp = H // size, W // size
        w = anp.reshape(x[:, :Hp * size, :Wp * size], (C, Hp, size, Wp, size, n))
        return anp.max(w, axis=(2, 4))         # (ties share the gradient, as gdsl's)

    return {
        "conv2d": lambda x, K, **at: conv2d(x, K, at["stride"], at["padding"]),
        "maxpool": lambda x, **at: maxpool(x, at["size"]),
        "flatten": lambda x, **at: anp.reshape(x, (-1, np.shape(_raw(x))[-1])),
        "unflatten": lambda x, **at: anp.reshape(x, (-1, at["height"], at["width"],
                                                     np.shape(_raw(x))[-1])),
        "add": lambda x, y, **at: x + y,
        "sub": lambda x, y, **at: x - y,
        "mul": lambda x, y, **at: x * y,
        "div": lambda x, y, **at: x / y,
        "pow": lambda x, y, **at: x ** y,
        "neg": lambda x, **at: -x,
        "matmul": lambda x, y, **at: matmul(x, y),
        "transpose": lambda x, **at: anp.transpose(x),
        "exp": lambda x, **at: anp.exp(x),
        "log": lambda x, **at: anp.log(x),
        "tanh": lambda x, **at: anp.tanh(x),
        "sigmoid": lambda x, **at: 1 / (1 + anp.exp(-x)),
        "relu": lambda x, **at: x * (_raw(x) > 0),
        "abs": lambda x, **at: x * np.sign(_raw(x)),
        "sqrt": lambda x, **at: anp.sqrt(x),
        "square": lambda x, **at: x * x,
        "softplus": lambda x, **at: anp.logaddexp(0.0, x),
        "sin": lambda x, **at: anp.sin(x),
        "cos": lambda x, **at: anp.cos(x),
        "maximum": lambda x, y, **at: pick(x, y, _raw(x) >= _raw(y)),
        "minimum": lambda x, y, **at: pick(x, y, _raw(x) <= _raw(y)),
        "sum": lambda x, **at: anp.sum(x, axis=_axis(at), keepdims=bool(at.get("keepdims"))),
        "mean": lambda x, **at: anp.mean(x, axis=_axis(at), keepdims=bool(at.get("keepdims"))),
        "max": lambda x, **at: anp.max(x, axis=_axis(at), keepdims=bool(at.get("keepdims"))),
        "softmax": lambda x, **at: softmax(x, _axis(at, 0)),
        "logsoftmax": lambda x, **at: anp.log(softmax(x, _axis(at, 0))),
        "logsumexp": lambda x, **at: logsumexp(x, _axis(at, 0), bool(at.get("keepdims"))),
        "sqnorm": lambda x, **at: anp.sum(x * x),
        "xent": lambda p, y, **at: xent(p, y),
        "svm": lambda s, y, **at: svm(s, y),
        "bce": lambda s, y, **at: anp.mean(anp.logaddexp(0.0, _fit(s, y)[0]) - anp.multiply(
            *_fit(s, y)[::-1])),
        "mse": lambda p, y, **at: anp.mean(anp.subtract(*_fit(p, y)) ** 2),
        "mae": lambda p, y, **at: anp.mean(anp.subtract(*_fit(p, y))
                                           * np.sign(_raw(anp.subtract(*_fit(p, y))))),
        "huber": lambda p, y, **at: huber(p, y, at.get("delta", 1.0)),
        "sign": lambda x, **at: np.sign(_raw(x)),
        "argmax": lambda x, **at: np.argmax(_raw(x), axis=_axis(at, 0)),
        "take": lambda x, **at: x[at["index"]],
    }


class Reference:
    """A model's loss on autograd, as a function of its wrt values (flattened)."""

    def __init__(self, compiled, arrays: dict):
        self.m = compiled
        self.G = compiled.graph
        self.arrays = {k: (v if k in compiled.labels else np.asarray(v, dtype=np.float64))
                       for k, v in arrays.items()}
        for k, v in compiled.consts.items():
            self.arrays.setdefault(k, np.float64(v))
        self.wrt = list(compiled.wrt)
        self.shapes = [np.shape(self.arrays[k]) for k in self.wrt]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.ops = ops()
        self.order = list(self._order())

    def _order(self):
        import networkx as nx
        # what the loss needs (not a state's update: training computes it beside the loss)
        loss = next(n for n in self.G.nodes if self.G.nodes[n].get("name") == self.m.loss)
        return nx.lexicographical_topological_sort(
            self.G.subgraph(nx.ancestors(self.G, loss) | {loss}))

    def flat(self, values: dict | None = None) -> np.ndarray:
        values = values if values is not None else self.arrays
        return np.concatenate([np.reshape(np.asarray(values[k], dtype=np.float64), -1)
                               for k in self.wrt])

    def unflat(self, theta) -> dict:
        out, i = {}, 0
        for k, shape, size in zip(self.wrt, self.shapes, self.sizes):
            out[k] = np.reshape(theta[i:i + size], shape)
            i += size
        return out

    def value(self, theta):
        env = dict(self.arrays)
        env.update(self.unflat(theta))
        vals = {}
        for n in self.order:
            d = self.G.nodes[n]
            op = d["op"]
            if op == "literal":
                vals[n] = d["value"]
            elif op in ("input", "param", "const", "state"):
                vals[n] = env[d["name"]]
            else:
                vals[n] = self.ops[op](*[vals[a] for a in d["args"]], **d["attrs"])
        loss = next(n for n in self.G.nodes if self.G.nodes[n].get("name") == self.m.loss)
        return vals[loss]

    def loss(self) -> float:
        return float(np.sum(_raw(self.value(self.flat()))))

    def _scalar(self, theta):
        import autograd.numpy as anp
        return anp.sum(self.value(theta))

    def grad(self) -> dict:
        import autograd
        return self.unflat(autograd.grad(self._scalar)(self.flat()))

    def hvp(self, v: dict) -> dict:
        import autograd
        return self.unflat(autograd.hessian_vector_product(self._scalar)(self.flat(), self.flat(v)))

    def hessian(self) -> np.ndarray:
        import autograd
        return np.asarray(autograd.hessian(self._scalar)(self.flat()))

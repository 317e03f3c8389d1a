"""Random well-formed gdsl models, and an independent interpreter for them on HIPS autograd.

A model is generated as a tree of this module's own expression classes, then rendered to gdsl
text with the fewest parentheses Python's precedence allows (and a few redundant ones). The
interpreter evaluates the same tree with autograd.numpy; gdsl's parser, IR and emitted code
are not involved, so the two sides share nothing but the model's meaning.

The generator is type-directed: it picks the shape a value must have, then an op that makes
that shape (broadcasting between [C, n], [C, 1], [1, n], 1-D and scalars; matmul over a shared
dim; transposes; sum/mean/max with axis and keepdims; softmax/logsoftmax along either axis;
xent/svm/sqnorm to scalars). Named statements are reused by later ones (values used several
times) and subexpressions are repeated inside a statement (shared subexpressions). Domains are
kept safe by construction (log, sqrt, / and fractional ** see values made positive by
exp(tanh(.)), square(.) + 1, sigmoid or softmax) and kinks (relu, abs, maximum, minimum, max,
svm's hinge, sign, argmax) are kept away from by rejecting inputs that come within KINK of one
(exact ties are kept where both sides follow the same documented rule).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

KINK = 1e-6          # inputs closer than this to a kink are redrawn
BIG = 1e4            # ... and so are inputs that make any value larger than this

# -- expressions --------------------------------------------------------------------------------
# precedence, as in Python and in grammars/gdsl.lark
SUM, PRODUCT, UNARY, POWER, POSTFIX, ATOM = range(1, 7)
BIN_LEVEL = {"+": SUM, "-": SUM, "*": PRODUCT, "/": PRODUCT, "@": PRODUCT, "**": POWER}


@dataclass(eq=False)
class E:
    kind: str                 # leaf | lit | neg | bin | call | T
    shape: tuple
    op: str = ""
    args: tuple = ()
    kw: dict = field(default_factory=dict)
    value: float = 0.0
    name: str = ""
    style: str = ""           # transpose style, or how a literal is written
    parens: bool = False      # redundant parentheses when rendered


def level(e: E) -> int:
    if e.kind == "bin":
        return BIN_LEVEL[e.op]
    if e.kind == "neg" or (e.kind == "lit" and e.value < 0):
        return UNARY
    if e.kind == "T":
        return POSTFIX
    return ATOM


def render(e: E) -> str:
    """gdsl text for e, parenthesised only where precedence needs it (and where e.parens)."""
    def sub(x: E, need: int) -> str:
        t = render(x)
        return f"({t})" if level(x) < need and not x.parens else t

    if e.kind in ("leaf",):
        t = e.name
    elif e.kind == "lit":
        t = e.style or repr(e.value)
    elif e.kind == "neg":
        t = "-" + sub(e.args[0], UNARY)
    elif e.kind == "T":
        t = sub(e.args[0], POSTFIX) + e.style
    elif e.kind == "bin":
        lv = BIN_LEVEL[e.op]
        if e.op == "**":
            t = f"{sub(e.args[0], POSTFIX)} ** {sub(e.args[1], UNARY)}"
        else:
            t = f"{sub(e.args[0], lv)} {e.op} {sub(e.args[1], lv + 1)}"
    else:
        parts = [render(a) for a in e.args] + [f"{k}={v}" for k, v in e.kw.items()]
        t = f"{e.op}({', '.join(parts)})"
    return f"({t})" if e.parens else t


# -- the interpreter (autograd) -----------------------------------------------------------------

class Rejected(Exception):
    """The inputs come too close to a kink or out of the safe range: draw new ones."""


def _raw(v):
    from autograd.tracer import getval
    return np.asarray(getval(v))


def onehot(y, C: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2:
        return y.astype(np.float64)
    Y = np.zeros((C, y.shape[0]))
    Y[y, np.arange(y.shape[0])] = 1.0
    return Y


class Interpreter:
    """Evaluates expression trees with autograd.numpy; checks kinks and ranges as it goes."""

    def __init__(self, env: dict, C: int):
        import autograd.numpy as anp
        self.np, self.env, self.C = anp, env, C
        self.memo: dict[int, object] = {}

    def near(self, gap, what, exact_ok=True):
        """Reject values within KINK of a kink. An exact tie is kept where both sides resolve it
        by the same documented rule (ties of maximum/minimum go to the first argument, of max
        are shared equally, relu'(0) = abs'(0) = 0): relu(x) makes many exact zeros."""
        g = np.abs(_raw(gap))
        near = (g < KINK) & (g > 0) if exact_ok else (g < KINK)
        if np.any(near):
            raise Rejected(what)

    def check(self, v):
        r = _raw(v)
        if not np.all(np.isfinite(r)) or (r.size and np.abs(r).max() > BIG):
            raise Rejected("range")
        return v

    def positive(self, v, what):
        r = _raw(v)
        if r.size and r.min() < 1e-3:
            raise Rejected(what)

    def eval(self, e: E):
        if id(e) not in self.memo:
            self.memo[id(e)] = self.check(self._eval(e))
        return self.memo[id(e)]

    def _eval(self, e: E):
        anp = self.np
        if e.kind == "leaf":
            return self.env[e.name]
        if e.kind == "lit":
            return e.value
        a = [self.eval(x) for x in e.args]
        if e.kind == "neg":
            return -a[0]
        if e.kind == "T":
            return anp.transpose(a[0])
        if e.kind == "bin":
            x, y = a
            if e.op == "+":
                return x + y
            if e.op == "-":
                return x - y
            if e.op == "*":
                return x * y
            if e.op == "/":
                self.positive(y, "/")
                return x / y
            if e.op == "@":
                return anp.matmul(x, y) if np.ndim(_raw(x)) and np.ndim(_raw(y)) > 1 else anp.dot(x, y)
            if e.op == "**":
                ry = _raw(y)
                if not np.all(ry == np.round(ry)):      # a fractional power needs a positive base
                    self.positive(x, "**")
                return x ** y
        op, kw = e.op, e.kw
        x = a[0]
        if op == "exp":
            return anp.exp(x)
        if op == "log":
            self.positive(x, "log")
            return anp.log(x)
        if op == "sqrt":
            self.positive(x, "sqrt")
            return anp.sqrt(x)
        if op == "tanh":
            return anp.tanh(x)
        if op == "sigmoid":
            return 1 / (1 + anp.exp(-x))
        if op == "relu":
            self.near(x, "relu")
            return x * (_raw(x) > 0)
        if op == "abs":
            self.near(x, "abs")
            return x * np.sign(_raw(x))
        if op == "square":
            return x * x
        if op in ("maximum", "minimum"):
            y = a[1]
            self.near(x - y, op)
            pick = (_raw(x) >= _raw(y)) if op == "maximum" else (_raw(x) <= _raw(y))
            return anp.where(pick, x + 0 * y, y + 0 * x)
        axis = kw.get("axis")
        axis = None if axis in (None, "None") else int(axis)
        keep = kw.get("keepdims") == "True"
        if op == "sum":
            return anp.sum(x, axis=axis, keepdims=keep)
        if op == "mean":
            return anp.mean(x, axis=axis, keepdims=keep)
        if op == "max":
            r = _raw(x)
            srt = np.sort(r.reshape(-1) if axis is None else r, axis=0 if axis is None else axis)
            if (srt.size and srt.shape[0 if axis is None else axis] > 1):
                top = np.take(srt, -1, axis=0 if axis is None else axis)
                second = np.take(srt, -2, axis=0 if axis is None else axis)
                self.near(top - second, "max")
            return anp.max(x, axis=axis, keepdims=keep)
        if op in ("softmax", "logsoftmax"):
            ax = 0 if axis is None else axis
            z = anp.exp(x - _raw(x).max(axis=ax, keepdims=True))   # shift-invariant: exact
            total = anp.sum(z, axis=ax, keepdims=True)
            shift = _raw(x).max(axis=ax, keepdims=True)
            return z / total if op == "softmax" else x - shift - anp.log(total)
        if op == "sqnorm":
            return anp.sum(x * x)
        if op in ("xent", "svm"):
            Y = onehot(_raw(a[1]), self.C)
            n = Y.shape[1]
            if op == "xent":
                py = anp.sum(Y * x, axis=0)
                self.positive(py, "xent")
                return -anp.sum(anp.log(py)) / n
            margins = x - anp.sum(Y * x, axis=0, keepdims=True) + 1
            self.near(_raw(margins)[Y == 0], "svm", exact_ok=False)
            return anp.sum(anp.maximum(margins, 0) * (1 - Y)) / n
        if op == "sign":
            self.near(x, "sign")
            return np.sign(_raw(x))
        if op == "argmax":
            r = _raw(x)
            ax = 0 if axis is None else axis
            srt = np.sort(r, axis=ax)
            if r.shape[ax] > 1:
                # an exact tie too: computed another way (a target, a rewrite), its rounding
                # may break it the other way, as logsoftmax(x) - x's equal entries do
                self.near(np.take(srt, -1, axis=ax) - np.take(srt, -2, axis=ax), "argmax",
                          exact_ok=False)
            return np.argmax(r, axis=ax)
        raise AssertionError(f"no rule for {op}")


# -- the generator ------------------------------------------------------------------------------

DIFFERENTIABLE = ["add", "sub", "mul", "div", "pow", "neg", "matmul", "transpose", "exp", "log",
                  "tanh", "sigmoid", "relu", "abs", "sqrt", "square", "maximum", "minimum", "sum",
                  "mean", "max", "softmax", "logsoftmax", "xent", "svm", "sqnorm"]
BIN_NAME = {"+": "add", "-": "sub", "*": "mul", "/": "div", "@": "matmul", "**": "pow"}
SYMS = ("C", "n", "d")


@dataclass
class Model:
    text: str
    sizes: dict                  # dim symbol -> size
    leaves: dict                 # name -> (kind, shape); kind input | param | label | const
    consts: dict                 # name -> default value
    statements: list             # (name, E)
    loss: str
    outputs: list
    wrt: list | None             # names passed to gdsl.compile(wrt=...), or None for the params
    ops: set                     # gdsl op names used
    declared: bool = True        # False: no declarations, every free name an input (shapes at call time)

    def arrays(self, rng: np.random.Generator, int_labels: bool) -> dict:
        out = {}
        for name, (kind, shape) in self.leaves.items():
            dims = tuple(self.sizes[d] if isinstance(d, str) else d for d in shape)
            if kind == "label":
                C, n = self.sizes["C"], self.sizes["n"]
                labels = rng.integers(0, C, size=n)
                out[name] = labels if len(shape) == 1 else onehot(labels, C)
            elif kind == "const":
                if not self.declared:
                    out[name] = self.consts[name]
                elif rng.random() < 0.3:
                    out[name] = float(rng.uniform(-1, 1))
            else:
                out[name] = rng.normal(0, 0.7, size=dims)
        return out

    def evaluate(self, arrays: dict):
        """(loss, {wrt name: gradient}, {output: value}) by autograd, or raise Rejected."""
        import autograd

        wrt = self.wrt if self.wrt is not None else [k for k, (kind, _) in self.leaves.items()
                                                    if kind == "param"]
        env0 = {k: v for k, v in arrays.items()}
        for k, v in self.consts.items():
            env0.setdefault(k, v)
        outputs: dict = {}

        def run(*ws):
            env = dict(env0)
            env.update(zip(wrt, ws))
            it = Interpreter(env, self.sizes["C"])
            for name, e in self.statements:
                env[name] = it.eval(e)
            for name in self.outputs:
                outputs[name] = _raw(env[name])
            return env[self.loss]

        if not wrt:
            return float(run()), {}, outputs
        value_and_grad = autograd.value_and_grad(run, argnum=list(range(len(wrt))))
        loss, grads = value_and_grad(*[np.asarray(env0[w], dtype=np.float64) for w in wrt])
        return float(loss), dict(zip(wrt, grads)), outputs


class Generator:
    def __init__(self, rnd: random.Random):
        self.r = rnd
        self.leaves: dict = {}
        self.consts: dict = {}
        self.pool: list = []            # (name, E-leaf referring to a statement) usable by later statements
        self.ops: set = set()
        self.nleaf = 0
        self.labels = None

    # leaves ----------------------------------------------------------------------------------
    def leaf(self, shape) -> E:
        r = self.r
        same = [n for n, (k, s) in self.leaves.items() if s == shape and k in ("input", "param")]
        if same and r.random() < 0.6:
            return E("leaf", shape, name=r.choice(same))
        self.nleaf += 1
        kind = "param" if r.random() < 0.6 else "input"
        name = f"{'W' if kind == 'param' else 'x'}{self.nleaf}"
        self.leaves[name] = (kind, shape)
        return E("leaf", shape, name=name)

    def literal(self) -> E:
        v = self.r.choice([2.0, 0.5, 3.0, 1.5, 0.25, 1e-1, -1.0, -0.5, 10.0])
        style = {1e-1: "1e-1", 0.25: self.r.choice([".25", "2.5E-1", "0.25"]),
                 2.0: self.r.choice(["2", "2.0", "2."])}
        e = E("lit", (), value=v, style=style.get(v, ""))
        if v < 0:
            e = E("neg", (), args=(E("lit", (), value=-v),))
            self.ops.add("neg")
        return e

    def const(self) -> E:
        if not self.consts or self.r.random() < 0.3:
            name = f"k{len(self.consts) + 1}"
            self.consts[name] = self.r.choice([0.5, 0.01, -0.3, 1.0, 2.0])
            self.leaves[name] = ("const", ())
            return E("leaf", (), name=name)
        return E("leaf", (), name=self.r.choice(list(self.consts)))

    def label(self) -> E:
        if self.labels is None:
            self.labels = "y"
            self.leaves["y"] = ("label", ("C", "n") if self.r.random() < 0.5 else ("n",))
        return E("leaf", self.leaves["y"][1], name="y")

    # expressions -----------------------------------------------------------------------------
    def node(self, kind, shape, op="", args=(), **kw) -> E:
        name = BIN_NAME.get(op, op) if kind == "bin" else (op or kind)
        if kind == "T":
            name = "transpose"
        self.ops.add(name)
        e = E(kind, shape, op=op, args=tuple(args), kw=kw)
        if kind == "T":
            e.style = self.r.choice([".T", "'"])
        if self.r.random() < 0.05:
            e.parens = True
        return e

    def positive(self, shape, depth, x: E | None = None) -> E:
        """A value known to be positive (and not tiny): x, or a new expression, made positive."""
        r = self.r
        x = x if x is not None else self.expr(shape, depth)
        k = r.randrange(5)
        if k == 0:
            return self.node("call", shape, "exp", [self.node("call", shape, "tanh", [x])])
        if k == 1:
            return self.node("bin", shape, "+", [self.node("call", shape, "square", [x]), self.literal_pos()])
        if k == 2:
            return self.node("bin", shape, "+", [self.node("call", shape, "sigmoid", [x]), self.literal_pos()])
        if k == 3 and len(shape) >= 1:
            ax = r.choice([None, 0, len(shape) - 1])
            kw = {} if ax is None else {"axis": str(ax)}
            return self.node("bin", shape, "+", [self.node("call", shape, "softmax", [x], **kw), self.literal_pos()])
        return self.node("call", shape, "exp", [self.node("bin", shape, "*", [self.literal_small(), x])])

    def literal_pos(self) -> E:
        v = self.r.choice([1.0, 0.5, 2.0])
        return E("lit", (), value=v)

    def literal_small(self) -> E:
        return E("lit", (), value=self.r.choice([0.5, 0.25, 0.1]))

    def broadcast_parts(self, shape):
        """Two shapes that broadcast to `shape`."""
        r = self.r

        def smaller(s):
            k = r.randrange(6)
            if k == 0:
                return ()
            if k == 1 and len(s) == 2:
                return (s[0], 1)
            if k == 2 and len(s) == 2:
                return (1, s[1])
            if k == 3 and len(s) >= 1:
                return s[1:]               # a trailing 1-D, e.g. [n] with [C, n]
            return s
        a, b = shape, smaller(shape)
        if r.random() < 0.5:
            a, b = b, a
        if len(shape) == 2 and r.random() < 0.15 and shape[0] != 1 and shape[1] != 1:
            a, b = (shape[0], 1), (1, shape[1])      # [C, 1] with [1, n] -> [C, n]
        return a, b

    def expr(self, shape, depth) -> E:
        r = self.r
        if depth <= 0 or r.random() < 0.15:
            refs = [e for e in self.pool if e.shape == shape]
            if shape == () and r.random() < 0.3:
                return self.const() if r.random() < 0.5 else self.literal()
            if refs and r.random() < 0.7:
                return r.choice(refs)
            return self.leaf(shape)
        if self.shared and r.random() < 0.12:
            same = [e for e in self.shared if e.shape == shape]
            if same:
                return r.choice(same)        # a shared subexpression, written out again
        e = self._op(shape, depth - 1)
        self.shared.append(e)
        return e

    def _op(self, shape, depth) -> E:
        r = self.r
        nd = len(shape)
        choices = ["unary", "unary", "binary", "binary", "binary", "maxmin", "pow", "div", "logsqrt", "neg"]
        if nd == 2:
            choices += ["matmul", "matmul", "transpose", "softmax", "reduce_keep"]
        if nd == 1:
            choices += ["matvec", "softmax", "reduce"]
        if nd == 0:
            choices += ["reduce", "reduce", "sqnorm", "loss", "dot"]
        if nd <= 1 or shape[-1] == 1 or shape[0] == 1:
            choices += ["reduce_keep"] if nd == 2 else []
        k = r.choice(choices)
        if k == "unary":
            op = r.choice(["exp", "tanh", "sigmoid", "relu", "abs", "square"])
            x = self.expr(shape, depth)
            if op == "exp":
                x = self.node("call", shape, "tanh", [x])
            return self.node("call", shape, op, [x])
        if k == "neg":
            return self.node("neg", shape, args=[self.expr(shape, depth)])
        if k == "binary":
            a, b = self.broadcast_parts(shape)
            op = r.choice("+-*")
            return self.node("bin", shape, op, [self.expr(a, depth), self.expr(b, depth)])
        if k == "maxmin":
            a, b = self.broadcast_parts(shape)
            return self.node("call", shape, r.choice(["maximum", "minimum"]),
                             [self.expr(a, depth), self.expr(b, depth)])
        if k == "div":
            a, b = self.broadcast_parts(shape)
            return self.node("bin", shape, "/", [self.expr(a, depth), self.positive(b, depth)])
        if k == "pow":
            if r.random() < 0.5:
                base = self.expr(shape, depth)
                return self.node("bin", shape, "**", [base, E("lit", (), value=r.choice([2.0, 3.0]))])
            a, b = self.broadcast_parts(shape)
            if r.random() < 0.5:
                ex = E("lit", (), value=r.choice([0.5, 1.5, -1.0, -0.5]))
                ex = self.node("neg", (), args=[E("lit", (), value=-ex.value)]) if ex.value < 0 else ex
                return self.node("bin", shape, "**", [self.positive(shape, depth), ex])
            ex = self.node("call", b, "tanh", [self.expr(b, depth)])
            return self.node("bin", shape, "**", [self.positive(a, depth), ex])
        if k == "logsqrt":
            return self.node("call", shape, r.choice(["log", "sqrt"]), [self.positive(shape, depth)])
        if k == "matmul":
            inner = r.choice(SYMS)
            return self.node("bin", shape, "@", [self.expr((shape[0], inner), depth),
                                                 self.expr((inner, shape[1]), depth)])
        if k == "matvec":
            inner = r.choice(SYMS)
            if r.random() < 0.5:
                return self.node("bin", shape, "@", [self.expr((shape[0], inner), depth),
                                                     self.expr((inner,), depth)])
            return self.node("bin", shape, "@", [self.expr((inner,), depth),
                                                 self.expr((inner, shape[0]), depth)])
        if k == "dot":
            inner = r.choice(SYMS)
            return self.node("bin", shape, "@", [self.expr((inner,), depth), self.expr((inner,), depth)])
        if k == "transpose":
            return self.node("T", shape, args=[self.expr((shape[1], shape[0]), depth)])
        if k == "softmax":
            op = r.choice(["softmax", "logsoftmax"])
            ax = r.choice([None, 0, nd - 1, -1])
            kw = {} if ax is None else {"axis": str(ax)}
            return self.node("call", shape, op, [self.expr(shape, depth)], **kw)
        if k == "sqnorm":
            s = r.choice([("C", "n"), ("C", 1), ("d",), ()])
            return self.node("call", (), "sqnorm", [self.expr(s, depth)])
        if k == "loss":
            return self.loss_term(depth)
        op = r.choice(["sum", "mean", "max"])
        if k == "reduce":
            if nd == 0:
                src = r.choice([("C", "n"), ("n",), ("C", 1), (1, "n")])
                kw = r.choice([{}, {"axis": "None"}])
                return self.node("call", (), op, [self.expr(src, depth)], **kw)
            # 1-D result from a 2-D value: reduce the other axis
            other = r.choice(SYMS)
            if r.random() < 0.5:
                return self.node("call", shape, op, [self.expr((other, shape[0]), depth)], axis="0")
            return self.node("call", shape, op, [self.expr((shape[0], other), depth)],
                             axis=r.choice(["1", "-1"]))
        # reduce_keep: a 2-D result with a 1 along the reduced axis
        if nd == 2 and shape[1] == 1:
            return self.node("call", shape, op, [self.expr((shape[0], r.choice(SYMS)), depth)],
                             axis=r.choice(["1", "-1"]), keepdims="True")
        if nd == 2 and shape[0] == 1:
            return self.node("call", shape, op, [self.expr((r.choice(SYMS), shape[1]), depth)],
                             axis="0", keepdims="True")
        if nd == 2 and shape == (1, 1):
            return self.node("call", shape, op, [self.expr(("C", "n"), depth)], keepdims="True")
        return self.node("call", shape, "square", [self.expr(shape, depth)])

    def loss_term(self, depth) -> E:
        r = self.r
        s = self.expr(("C", "n"), depth)
        y = self.label()
        if r.random() < 0.4:
            return self.node("call", (), "svm", [s, y])
        if r.random() < 0.6:
            kw = r.choice([{}, {"axis": "0"}])
            p = self.node("call", ("C", "n"), "softmax", [s], **kw)
        else:
            p = self.positive(("C", "n"), depth, s)
        return self.node("call", (), "xent", [p, y])

    # a whole model -----------------------------------------------------------------------------
    def model(self) -> Model:
        r = self.r
        shapes = [("C", "n"), ("C", 1), (1, "n"), ("n", "C"), ("C", "d"), ("d", "n"), ("n",),
                  ("C",), (), ("d", 1)]
        statements = []
        for i in range(r.randint(2, 6)):
            self.shared = []
            shape = r.choice(shapes)
            e = self.expr(shape, r.randint(1, 4))
            name = f"v{i + 1}"
            statements.append((name, e))
            self.pool.append(E("leaf", shape, name=name))
        # the loss: a sum of scalar terms over (most of) the statements
        self.shared = []
        terms = []
        for name, e in statements:
            if r.random() < 0.85 or not terms:
                ref = E("leaf", e.shape, name=name)
                red = r.choice(["sum", "mean", "sqnorm", "max", "sum"])
                t = self.node("call", (), red, [ref]) if e.shape != () or red == "sqnorm" else ref
                if r.random() < 0.3:
                    t = self.node("bin", (), "*", [self.const() if r.random() < 0.5 else self.literal(), t])
                terms.append(t)
        if r.random() < 0.5:
            terms.append(self.loss_term(2))
        J = terms[0]
        for t in terms[1:]:
            J = self.node("bin", (), r.choice("+-"), [J, t])
        statements.append(("J", J))
        # outputs: some statements, and decisions that have no gradient
        outputs = [n for n, e in statements[:-1] if r.random() < 0.3]
        extra = []
        for n, e in statements[:-1]:
            if len(e.shape) >= 1 and r.random() < 0.2:
                ref = E("leaf", e.shape, name=n)
                if r.random() < 0.5:
                    extra.append((f"o{len(extra) + 1}", self.node("call", e.shape, "sign", [ref])))
                else:
                    ax = r.randrange(len(e.shape))
                    red = tuple(d for i, d in enumerate(e.shape) if i != ax)
                    extra.append((f"o{len(extra) + 1}",
                                  self.node("call", red, "argmax", [ref], axis=str(ax))))
        statements += extra
        outputs += [n for n, _ in extra]
        # differentiate with respect to the params, or a chosen mix of params and inputs
        params = [k for k, (kind, _) in self.leaves.items() if kind == "param"]
        inputs = [k for k, (kind, _) in self.leaves.items() if kind == "input"]
        wrt = None
        if inputs and r.random() < 0.25:
            wrt = sorted(set(r.sample(inputs, r.randint(1, len(inputs)))) | set(params[:1]))
        if not params and wrt is None:
            wrt = inputs[:1] or None
        declared = r.random() < 0.75
        if not declared:                # free names are inputs: say which to differentiate
            wrt = wrt or params or inputs[:1]
        text = self.render(statements, outputs, declared)
        sizes = dict(zip(SYMS, r.sample([2, 3, 4, 5], 3)))
        return Model(text, sizes, dict(self.leaves), dict(self.consts), statements, "J", outputs,
                     wrt, set(self.ops), declared)

    def render(self, statements, outputs, declared: bool = True) -> str:
        r = self.r
        lines = ["# a random model from tests/randmodel.py"]
        for name, (kind, shape) in self.leaves.items() if declared else ():
            dims = ", ".join(str(d) for d in shape)
            if kind == "const":
                lines.append(f"const {name} = {self.consts[name]}")
            elif kind == "param":
                lines.append(f"param {name}[{dims}] ~ normal(0, 1)")
            else:
                lines.append(f"input {name}[{dims}]")
        sep = "; " if r.random() < 0.2 else "\n"
        lines.append(sep.join(f"{name} = {render(e)}" for name, e in statements))
        lines.append("loss J")
        if outputs:
            lines.append("output " + ", ".join(outputs))
        return "\n".join(lines) + "\n"


def random_model(seed: int) -> Model:
    return Generator(random.Random(seed)).model()

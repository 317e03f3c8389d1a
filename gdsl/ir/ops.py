"""The op table: one row per op, so adding an op touches one place.

Each row gives
    arity      how many positional arguments
    keywords   the keyword arguments it takes, with defaults
    shape      the shape rule: (dims, arg_shapes, attrs) -> shape
    emit       the NumPy emission: (arg_exprs, attrs, arg_shapes) -> a Python ast expression
    vjp        one vector-Jacobian product per argument, or None where the op has no
               derivative in that argument. A rule gets the incoming gradient g, the
               op's value ans and its arguments as graph values (gdsl.grad.V) and
               returns a graph value: the backward pass is built in the same IR.
    broadcasts whether arguments broadcast (the backward pass then sums g back
               over broadcast axes, one `unbroadcast` for every such op)
    flops      the cost model of `gdsl stats`: FLOPs per output element, or a rule
    fresh      whether the result is a new float array the emitted code may update in place
    shape_only the arguments the emission reads only for their shape (n = s.shape[1]): their
               arrays may be reused (updated in place) before it
    floats     True if the result is a float array whatever the arguments (/, exp), False if it
               never is (masks, indices, counts); None: float when a value argument is
    jacobian   for teaching: the local Jacobian of the op in the lecture's notation,
               one per argument ({x}, {y}, {ans} are the argument and result names)
    helpers    module-level NumPy helpers the emission calls (see HELPERS)
    caches     for an op whose last arguments are values it could compute itself from the
               others (the fused cross-entropy takes p = softmax(s) so that one exp serves
               both): the rule that builds them. They carry no gradient of their own; a
               check of the op perturbs the others and rebuilds the caches.

Conventions, as in the lecture: classes along axis 0 and examples along the
remaining axes (X is d x n, one-hot Y is C x n); losses average over examples.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field

from . import shapes as sh
from .shapes import Mismatch


@dataclass(frozen=True)
class Op:
    name: str
    arity: int
    shape: Callable
    emit: Callable
    vjp: tuple | None = None
    keywords: dict = field(default_factory=dict)
    broadcasts: bool = False
    jacobian: tuple[str, ...] = ()
    helpers: tuple[str, ...] = ()
    user: bool = True          # callable by name from a model file
    doc: str = ""
    caches: Callable | None = None   # builds the trailing cache arguments from the others
    cached: int = 0                  # how many trailing arguments are caches
    constant: bool = False           # piecewise constant (masks, counts, one-hot): gradient 0
    flops: Callable | int = 1        # FLOPs per output element, or (arg_sizes, out_size, shapes) -> FLOPs
    fresh: bool = True               # returns a new float array (not a view, an input or a mask)
    shape_only: tuple[int, ...] = ()  # arguments read only for their shape
    floats: bool | None = None       # result always float / never float / as its value arguments
    loss: bool = False               # a data loss averaged over the examples (gdsl run reports it)


OPS: dict[str, Op] = {}
BINARY_OPERATORS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "@": "matmul", "**": "pow"}


def defop(name, arity, shape, emit, *vjp, **kw) -> Op:
    op = Op(name, arity, shape, emit, tuple(vjp) if vjp else None, **kw)
    OPS[name] = op
    return op


# -- building Python ast for the emission --------------------------------------------------

# One instance of each context and operator, shared by every node, as Python's own parser
# does: a large model builds hundreds of thousands of nodes.
LOAD, STORE = ast.Load(), ast.Store()

def const(v) -> ast.expr:
    # floats stay floats (1.0, not 1): an int literal times a mask would make an int array
    if isinstance(v, tuple):
        return ast.Tuple([const(x) for x in v], LOAD)
    if isinstance(v, (int, float)) and v < 0:
        return ast.UnaryOp(ast.USub(), ast.Constant(-v))
    return ast.Constant(v)


def _kw(kw):
    return [ast.keyword(k, const(v)) for k, v in kw.items()]


def np_(fn: str, *args, **kw) -> ast.expr:
    return ast.Call(ast.Attribute(ast.Name("np", LOAD), fn, LOAD), list(args), _kw(kw))


def meth(obj, fn: str, *args, **kw) -> ast.expr:
    return ast.Call(ast.Attribute(obj, fn, LOAD), list(args), _kw(kw))


def attr(obj, name: str) -> ast.expr:
    return ast.Attribute(obj, name, LOAD)


def helper(fn: str, *args, **kw) -> ast.expr:
    return ast.Call(ast.Name(fn, LOAD), list(args), _kw(kw))


_BIN = {"+": ast.Add(), "-": ast.Sub(), "*": ast.Mult(), "/": ast.Div(), "@": ast.MatMult(),
        "**": ast.Pow(), ">": ast.Gt(), ">=": ast.GtE(), "<": ast.Lt(), "<=": ast.LtE(), "==": ast.Eq()}


def bin_(a, op: str, b) -> ast.expr:
    if op in (">", ">=", "<", "<=", "=="):
        return ast.Compare(a, [_BIN[op]], [b])
    return ast.BinOp(a, _BIN[op], b)


def reduce_kw(at) -> dict:
    kw = {}
    if at.get("axis") is not None:
        kw["axis"] = at["axis"]
    if at.get("keepdims"):
        kw["keepdims"] = True
    return kw


# -- shape rules -----------------------------------------------------------------------------

def same(dims, s, at):
    return s[0]


def bcast(dims, s, at):
    return sh.broadcast(dims, *s)


def scalar(dims, s, at):
    return ()


def reduced(dims, s, at):
    return sh.reduce(s[0], at.get("axis"), at.get("keepdims", False))


def along_axis(dims, s, at):
    if s[0] is not None:
        if len(s[0]) == 0:
            raise Mismatch("needs at least one axis, not a scalar")
        sh.normalize_axis(at.get("axis"), len(s[0]))
    return s[0]


def loss_shape(dims, s, at):
    sh.labels_like(dims, s[0], s[1])
    return ()


def like_second(dims, s, at):
    return s[1]


def transposed(dims, s, at):
    return None if s[0] is None else tuple(reversed(s[0]))


# -- the ops ---------------------------------------------------------------------------------
# Rules are written with graph values: g * ans builds a 'mul' node. `call` builds any op.

def call(name, *args, **attrs):
    """The op `name` of graph values (gdsl.ir.builder.V) and numbers, built in their graph."""
    b = next(a.b for a in args if hasattr(a, "b"))
    return b.op(name, *args, **attrs)


# elementwise, broadcasting

defop("add", 2, bcast, lambda a, at, s: bin_(a[0], "+", a[1]),
      lambda g, ans, x, y, **at: g,
      lambda g, ans, x, y, **at: g,
      broadcasts=True, user=False, jacobian=("I", "I"))
defop("sub", 2, bcast, lambda a, at, s: bin_(a[0], "-", a[1]),
      lambda g, ans, x, y, **at: g,
      lambda g, ans, x, y, **at: -g,
      broadcasts=True, user=False, jacobian=("I", "−I"))
defop("mul", 2, bcast, lambda a, at, s: bin_(a[0], "*", a[1]),
      lambda g, ans, x, y, **at: g * y,
      lambda g, ans, x, y, **at: g * x,
      broadcasts=True, user=False, jacobian=("diag({y})", "diag({x})"))
defop("div", 2, bcast, lambda a, at, s: bin_(a[0], "/", a[1]),
      lambda g, ans, x, y, **at: g / y,
      lambda g, ans, x, y, **at: -(g * ans) / y,          # d(x/y)/dy = -x/y² = -ans/y
      broadcasts=True, user=False, jacobian=("diag(1/{y})", "−diag({x}/{y}²)"), floats=True)
defop("pow", 2, bcast, lambda a, at, s: bin_(a[0], "**", a[1]),
      lambda g, ans, x, y, **at: g * y * x ** (y - 1),
      lambda g, ans, x, y, **at: g * ans * call("log", x),
      broadcasts=True, user=False, jacobian=("diag({y} {x}^({y}−1))", "diag(log({x}) {ans})"))
defop("maximum", 2, bcast, lambda a, at, s: np_("maximum", *a),
      # subgradient at ties: all of g goes to the first argument
      lambda g, ans, x, y, **at: g * call("ge", x, y),
      lambda g, ans, x, y, **at: g * call("lt", x, y),
      broadcasts=True, jacobian=("diag([{x} >= {y}])", "diag([{x} < {y}])"),
      doc="elementwise maximum (at ties the gradient goes to the first argument)")
defop("minimum", 2, bcast, lambda a, at, s: np_("minimum", *a),
      lambda g, ans, x, y, **at: g * call("le", x, y),
      lambda g, ans, x, y, **at: g * call("gt", x, y),
      broadcasts=True, jacobian=("diag([{x} <= {y}])", "diag([{x} > {y}])"),
      doc="elementwise minimum (at ties the gradient goes to the first argument)")

# comparisons: masks for the backward pass, no derivative of their own
for _name, _sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
    defop(_name, 2, bcast, lambda a, at, s, _sym=_sym: bin_(a[0], _sym, a[1]), None, None,
          user=False, constant=True, fresh=False, floats=False)
defop("step", 1, same, lambda a, at, s: bin_(a[0], ">", const(0)), None, user=False, constant=True,
      fresh=False, floats=False)

# elementwise, one argument

defop("neg", 1, same, lambda a, at, s: ast.UnaryOp(ast.USub(), a[0]),
      lambda g, ans, x, **at: -g, user=False, jacobian=("−I",))
defop("exp", 1, same, lambda a, at, s: np_("exp", a[0]),
      lambda g, ans, x, **at: g * ans, jacobian=("diag(exp({x}))",), floats=True)
defop("log", 1, same, lambda a, at, s: np_("log", a[0]),
      lambda g, ans, x, **at: g / x, jacobian=("diag(1/{x})",), floats=True)
defop("tanh", 1, same, lambda a, at, s: np_("tanh", a[0]),
      lambda g, ans, x, **at: g * (1 - ans * ans), jacobian=("diag(1 − tanh²({x}))",), floats=True)
# sigmoid(x) = (1 + tanh(x/2)) / 2: stable for large |x|, one ufunc pass
defop("sigmoid", 1, same,
      lambda a, at, s: bin_(const(0.5), "+", bin_(const(0.5), "*", np_("tanh", bin_(const(0.5), "*", a[0])))),
      lambda g, ans, x, **at: g * ans * (1 - ans), jacobian=("diag(σ({x})(1 − σ({x})))",), floats=True)
defop("relu", 1, same, lambda a, at, s: np_("maximum", a[0], const(0)),
      # subgradient at 0 is 0
      # relu(x) > 0 exactly where x > 0: the mask reads the result, so x can die (in place)
      lambda g, ans, x, **at: g * call("step", ans), jacobian=("diag([{x} > 0])",),
      doc="max(x, 0); its gradient at 0 is taken as 0")
defop("abs", 1, same, lambda a, at, s: np_("abs", a[0]),
      lambda g, ans, x, **at: g * call("sign", x), jacobian=("diag(sign({x}))",),
      doc="absolute value; its gradient at 0 is taken as 0")
defop("sqrt", 1, same, lambda a, at, s: np_("sqrt", a[0]),
      lambda g, ans, x, **at: 0.5 * g / ans, jacobian=("diag(1/(2√{x}))",), floats=True)
defop("square", 1, same, lambda a, at, s: np_("square", a[0]),
      lambda g, ans, x, **at: 2 * g * x, jacobian=("diag(2{x})",))
defop("sign", 1, same, lambda a, at, s: np_("sign", a[0]), None,
      doc="elementwise sign (not differentiable)")

# linear algebra


def _mm_vjp_x(g, ans, x, y, **at):
    sx, sy = x.shape, y.shape
    if sx is not None and sy is not None and len(sx) == 2 and len(sy) == 2:
        return g @ y.T                       # ∂J/∂x = g yᵀ
    return call("mm_grad_x", g, x, y)


def _mm_vjp_y(g, ans, x, y, **at):
    sx, sy = x.shape, y.shape
    if sx is not None and sy is not None and len(sx) == 2 and len(sy) == 2:
        return x.T @ g                       # ∂J/∂y = xᵀ g
    return call("mm_grad_y", g, x, y)


def _matmul_flops(sizes, out, shapes):
    return 2 * out * (shapes[0][-1] if shapes[0] else 1)      # a multiply and an add per term


defop("matmul", 2, lambda dims, s, at: sh.matmul(dims, *s), lambda a, at, s: bin_(a[0], "@", a[1]),
      _mm_vjp_x, _mm_vjp_y, user=False, jacobian=("I ⊗ {y}ᵀ", "{x} ⊗ I"), flops=_matmul_flops)
defop("mm_grad_x", 3, lambda dims, s, at: s[1], lambda a, at, s: helper("_mm_grad_x", *a), None,
      user=False, helpers=("_mm_grad_x",))
defop("mm_grad_y", 3, lambda dims, s, at: s[2], lambda a, at, s: helper("_mm_grad_y", *a), None,
      user=False, helpers=("_mm_grad_y",))
defop("transpose", 1, transposed, lambda a, at, s: attr(a[0], "T"),
      lambda g, ans, x, **at: g.T, jacobian=("the permutation vec({x}) -> vec({x}ᵀ)",), flops=0,
      fresh=False)

# reductions

_RED = {"axis": None, "keepdims": False}


def _sum_vjp(g, ans, x, **at):
    return call("expand_to", g, x, **at)


def _mean_vjp(g, ans, x, **at):
    return call("expand_to", g / call("count", x, axis=at.get("axis")), x, **at)


def _per_input(sizes, out, shapes):
    return sizes[0]


defop("sum", 1, reduced, lambda a, at, s: meth(a[0], "sum", **reduce_kw(at)), _sum_vjp,
      keywords=_RED, jacobian=("1ᵀ",), flops=_per_input)
defop("mean", 1, reduced, lambda a, at, s: meth(a[0], "mean", **reduce_kw(at)), _mean_vjp,
      keywords=_RED, jacobian=("1ᵀ/n",), flops=_per_input, floats=True)
defop("max", 1, reduced, lambda a, at, s: meth(a[0], "max", **reduce_kw(at)),
      lambda g, ans, x, **at: call("max_grad", g, x, ans, **at),
      keywords=_RED, jacobian=("[{x} = max {x}]ᵀ",), helpers=("_max_grad",), flops=_per_input,
      doc="maximum along an axis; ties share the gradient equally")
defop("max_grad", 3, like_second,
      lambda a, at, s: helper("_max_grad", *a, const(at.get("axis")), const(bool(at.get("keepdims")))),
      None, user=False, keywords=_RED, helpers=("_max_grad",), floats=True)
defop("argmax", 1, reduced, lambda a, at, s: np_("argmax", a[0], axis=at.get("axis", 0)), None,
      fresh=False,
      keywords={"axis": 0}, doc="index of the largest entry along an axis (not differentiable)", floats=False)


def _expand_emit(a, at, s):
    g, x = a
    if at.get("axis") is not None and not at.get("keepdims"):
        g = np_("expand_dims", g, const(at["axis"]))
    return np_("broadcast_to", g, attr(x, "shape"))


# g of a reduced shape, broadcast back over the reduced axes (a view, nothing copied)
defop("expand_to", 2, like_second, _expand_emit,
      lambda g, ans, gx, x, **at: call("sum", g, **at), None, user=False, keywords=_RED, flops=0,
      fresh=False, shape_only=(1,))


def _count_emit(a, at, s):
    axis, _shape = at.get("axis"), s[0]
    if axis is None:
        return attr(a[0], "size")
    return ast.Subscript(attr(a[0], "shape"), const(axis), LOAD)


defop("count", 1, scalar, _count_emit, None, user=False, keywords={"axis": None}, constant=True,
      flops=0, shape_only=(0,), floats=False)


def _examples_emit(a, at, s):
    # examples are every axis but the class axis: n = p.shape[1] for a C x n matrix
    if s[0] is not None and len(s[0]) == 2:
        return ast.Subscript(attr(a[0], "shape"), const(1), LOAD)
    return attr(ast.Subscript(a[0], const(0), LOAD), "size")


defop("examples", 1, scalar, _examples_emit, None, user=False, constant=True, flops=0,
      shape_only=(0,), floats=False)


def _sum_to_emit(a, at, s):
    return helper("_sum_to", a[0], attr(a[1], "shape"))


# g summed back to the shape of x where shapes are known only at call time
defop("sum_to", 2, like_second, _sum_to_emit, None, user=False, helpers=("_sum_to",), fresh=False,
      shape_only=(1,))
defop("zeros_like", 1, same, lambda a, at, s: np_("zeros_like", a[0]), None, user=False,
      constant=True, shape_only=(0,), floats=True)

# softmax and losses: classes along axis 0


def _softmax_vjp(g, ans, x, **at):
    # d softmax: p * (g - sum(g * p))
    return ans * (g - call("sum", g * ans, axis=at["axis"], keepdims=True))


def _logsoftmax_vjp(g, ans, x, **at):
    # d logsoftmax: g - softmax(x) * sum(g)
    return g - call("softmax", x, axis=at["axis"]) * call("sum", g, axis=at["axis"], keepdims=True)


defop("softmax", 1, along_axis, lambda a, at, s: helper("_softmax", a[0], axis=at["axis"]),
      _softmax_vjp, keywords={"axis": 0}, helpers=("_softmax",), flops=4,
      jacobian=("diag({ans}) − {ans}{ans}ᵀ",), doc="exp(s) / 1ᵀexp(s) along an axis (stable)", floats=True)
defop("logsoftmax", 1, along_axis, lambda a, at, s: helper("_logsoftmax", a[0], axis=at["axis"]),
      _logsoftmax_vjp, keywords={"axis": 0}, helpers=("_logsoftmax",), flops=4,
      jacobian=("I − 1softmax({x})ᵀ",), doc="log(softmax(s)) along an axis (stable)", floats=True)


def _xent_vjp(g, ans, p, y, **at):
    # ∂l/∂p = -yᵀ / (yᵀp), averaged over the examples
    Y = call("onehot", y, p)
    return -(Y / call("sum", Y * p, axis=0, keepdims=True)) * (g / call("examples", p))


def _xent_logits_vjp(g, ans, s, Y, m, Z, ys, **at):
    # fused softmax + cross-entropy: ∂l/∂s = (p - y) / n, with p = exp(s - m) / Z
    return (call("exp", s - m) / Z - Y) * (g / call("examples", s))


def _xent_logits_caches(s, Y):
    # m = max(s) and Z = Σ exp(s - m), per example: what softmax(s) = exp(s - m) / Z is made of;
    # ys = Σ yᵀs, taken before the exp (so that s - m can be computed in s's own array)
    m = call("max", s, axis=0, keepdims=True)
    ys = call("vdot", Y, s)
    return [m, call("sum", call("exp", s - m), axis=0, keepdims=True), ys]


def _xent_logits_emit(a, at, s):
    # l = Σ (log Z + m) - yᵀs over the examples, / n: log Σ exp(s) without overflow, no log(0)
    st, _Y, m, Z, ys = a
    total = bin_(bin_(meth(np_("log", Z), "sum"), "+", meth(m, "sum")), "-", ys)
    return bin_(total, "/", _examples_emit([st], {}, s[:1]))


defop("xent", 2, loss_shape, lambda a, at, s: helper("_xent", *a), _xent_vjp, None, flops=lambda z, o, s: 3 * z[0], loss=True,
      helpers=("_xent", "_onehot"), jacobian=("−{y}ᵀ/({y}ᵀ{x})",),
      doc="cross-entropy -log(yᵀp) of probabilities p [C, n] and labels (one-hot [C, n] or "
          "integers [n]), averaged over examples", floats=True)
defop("xent_logits", 5, loss_shape, _xent_logits_emit,
      _xent_logits_vjp, None, None, None, None, user=False, caches=_xent_logits_caches, cached=3,
      shape_only=(0,),
      flops=lambda z, o, s: 2 * z[0], jacobian=("softmax({x})ᵀ − {y}ᵀ",),
      doc="cross-entropy of softmax(s) for labels Y whose columns sum to 1: "
          "Σ log Σ exp(s) − yᵀs over the examples, averaged; m, Z and Σ yᵀs are its caches", floats=True)
def onehot_shape(dims, s, at):
    sh.labels_like(dims, s[1], s[0])
    return s[1]


defop("onehot", 2, onehot_shape, lambda a, at, s: helper("_onehot", *a), None, None, user=False,
      helpers=("_onehot",), constant=True, fresh=False, shape_only=(1,), floats=True)
# The multi-class hinge loss works from its margins M = max(0, s_j - s_y + 1), 0 for the true
# class y: the loss is ΣM / n and the gradient needs only [M > 0]. The fuse pass computes M
# once, as the cache argument of svm_hinge; unfused, svm's gradient computes it again.


def _svm_vjp(g, ans, s, y, **at):
    Y = call("onehot", y, s)
    return call("svm_grad", g, call("svm_margins", s, Y), Y)


def _svm_margins_caches(s, Y):
    return [call("svm_margins", s, Y)]


def _svm_hinge_emit(a, at, s):
    # l = Σ M over the examples, / n
    return bin_(meth(a[2], "sum"), "/", _examples_emit(a[:1], {}, s[:1]))


def margins_shape(dims, s, at):
    sh.labels_like(dims, s[0], s[1])
    return s[0]


SVM_JACOBIAN = "Σⱼ≠y [{x}ⱼ − {x}_y + 1 > 0](eⱼ − e_y)ᵀ"
defop("svm", 2, loss_shape, lambda a, at, s: helper("_svm", *a), _svm_vjp, None, loss=True,
      helpers=("_svm",), flops=lambda z, o, s: 5 * z[0], jacobian=(SVM_JACOBIAN,),
      doc="multi-class hinge loss Σ_{j≠y} max(0, s_j - s_y + 1), averaged over examples "
          "(subgradient 0 exactly at the hinge)", floats=True)
defop("svm_margins", 2, margins_shape, lambda a, at, s: helper("_svm_margins", *a), None, None,
      user=False, helpers=("_svm_margins",), flops=5, floats=True)
defop("svm_hinge", 3, loss_shape, _svm_hinge_emit,
      lambda g, ans, s, Y, M, **at: call("svm_grad", g, M, Y), None, None, user=False,
      caches=_svm_margins_caches, cached=1, shape_only=(0,), flops=lambda z, o, s: z[2],
      jacobian=(SVM_JACOBIAN,),
      doc="multi-class hinge loss of scores s for one-hot labels Y, from its margins M "
          "(the cache): Σ M / n", floats=True)
defop("svm_grad", 3, like_second, lambda a, at, s: helper("_svm_grad", *a), None, None, None,
      user=False, helpers=("_svm_grad",), flops=5, floats=True)
# only a cache argument (of xent_logits), through which no gradient flows
defop("vdot", 2, scalar, lambda a, at, s: np_("vdot", *a), None, None, user=False,
      flops=lambda z, o, s: 2 * z[0], doc="Σ x y over every entry (the yᵀs of the fused cross-entropy)")
defop("sqnorm", 1, scalar, lambda a, at, s: np_("vdot", a[0], a[0]),
      lambda g, ans, x, **at: x * (2 * g), jacobian=("2{x}",), flops=lambda z, o, s: 2 * z[0],
      doc="squared Frobenius norm ‖W‖² = Σ W²")


# -- helpers defined once in each emitted module that needs them ------------------------------
# They are plain NumPy, written here by hand: nothing from a model file reaches them.

HELPERS = {
    "_onehot": '''
def _onehot(y, like):
    """Labels as one-hot columns shaped like `like` (classes along axis 0)."""
    y = np.asarray(y)
    if y.shape == like.shape:
        return y if y.dtype == like.dtype else y.astype(like.dtype)
    if y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers or one-hot of shape {like.shape}, got {y.dtype} {y.shape}")
    labels = y.reshape(like.shape[1:])
    if labels.size and (labels.min() < 0 or labels.max() >= like.shape[0]):
        raise ValueError(f"labels must lie in 0..{like.shape[0] - 1}, got {labels.min()}..{labels.max()}")
    Y = np.zeros(like.shape, like.dtype)
    np.put_along_axis(Y, labels[None], 1, axis=0)
    return Y
''',
    "_softmax": '''
def _softmax(s, axis):
    e = np.exp(s - s.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
''',
    "_logsoftmax": '''
def _logsoftmax(s, axis):
    t = s - s.max(axis=axis, keepdims=True)
    return t - np.log(np.exp(t).sum(axis=axis, keepdims=True))
''',
    "_xent": '''
def _xent(p, y):
    """Cross-entropy -log(yᵀp), averaged over the examples."""
    Y = _onehot(y, p)
    return -np.log((Y * p).sum(axis=0)).sum() / p[0].size
''',
    "_svm": '''
def _svm(s, y):
    """Multi-class hinge loss Σ_{j≠y} max(0, s_j - s_y + 1), averaged over the examples."""
    return _svm_margins(s, _onehot(y, s)).sum() / s[0].size
''',
    "_svm_margins": '''
def _svm_margins(s, Y):
    """max(0, s_j - s_y + 1) for each class j, and 0 for the true class y (one-hot Y)."""
    M = s - (Y * s).sum(axis=0, keepdims=True)
    M += 1
    M -= Y          # the true class: 1 - 1 = 0 exactly, so ΣM needs no (1 - Y) mask
    np.maximum(M, 0, out=M)
    return M
''',
    "_svm_grad": '''
def _svm_grad(g, M, Y):
    """∂l/∂s from the margins: each violated margin (M > 0, so 0 at the hinge) pulls s_j up
    and s_y down, averaged over the examples."""
    A = (M > 0).astype(M.dtype)
    A -= Y * A.sum(axis=0, keepdims=True)
    A *= g / M[0].size
    return A
''',
    "_max_grad": '''
def _max_grad(g, x, m, axis, keepdims):
    if axis is not None and not keepdims:
        g, m = np.expand_dims(g, axis), np.expand_dims(m, axis)
    mask = x == m
    return g * mask / mask.sum(axis=axis, keepdims=True)
''',
    "_sum_to": '''
def _sum_to(g, shape):
    """Sum g over the axes along which an array of `shape` was broadcast."""
    g = np.asarray(g)
    lead = g.ndim - len(shape)
    if lead > 0:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g
''',
    "_mm_grad_x": '''
def _mm_grad_x(g, x, y):
    if y.ndim == 1:
        return np.multiply.outer(g, y) if x.ndim == 2 else g * y
    return g @ y.T if x.ndim == 2 else y @ g
''',
    "_mm_grad_y": '''
def _mm_grad_y(g, x, y):
    if x.ndim == 1:
        return np.multiply.outer(x, g) if y.ndim == 2 else g * x
    return x.T @ g
''',
}

# helpers that call other helpers
HELPER_DEPS = {"_xent": ("_onehot",), "_svm": ("_onehot", "_svm_margins")}


def user_functions() -> list[str]:
    return sorted(name for name, op in OPS.items() if op.user)

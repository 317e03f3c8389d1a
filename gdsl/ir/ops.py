"""The op table: one row per op, and every fact about an op in its row.

Adding an op is adding a row (and its test entries); no other module names an op (a test
reads them all to be sure). A row gives:

    arity        how many positional arguments; keywords: the keyword arguments, with defaults;
                 whole: those that take a whole number, with the least it may be (a default of
                 None: the model must give it)
    shape        the shape rule: (dims, arg_shapes, attrs) -> shape
    emit         the emission per target: {"numpy": (arg_exprs, attrs, arg_shapes) -> a Python
                 ast expression}; the NumPy one is also how gdsl.ir.evaluate computes the op
    helpers      module-level NumPy helpers the NumPy emission calls (see HELPERS)
    vjp          one vector-Jacobian product per argument, or None where the op has no
                 derivative in that argument. A rule gets the incoming gradient g, the op's
                 value ans and its arguments as graph values (gdsl.ir.builder.V) and returns a
                 graph value: the backward pass is built in the same IR.
    broadcasts   whether arguments broadcast (the backward pass then sums g back over broadcast
                 axes: one `unbroadcast` for every such op)
    kink         gdsl check: how far the arguments are from the op's kinks, (args, attrs) ->
                 distance; None for a smooth op. Every differentiable op says which it is.
    constant     piecewise constant (masks, counts, one-hot): no gradient flows through it
    mask         its result is a boolean mask (x > 0); keeps_mask: a mask through it keeps its
                 0/1 meaning (a product, a sum), so the emitted code need not cast it to float
    labels       the position of the argument that takes class labels (xent, svm), and scores:
                 that of the scores they go with
    loss         a data loss averaged over the examples (gdsl run reports it)
    target       the position of the argument that takes real-valued targets (mse, bce): the
                 input gdsl run binds a table's label column to, as it does for `labels`
    target_range the values those targets may take (bce: 0..1); gdsl run checks the data
    metrics      what gdsl run reports for a model whose data loss this is (accuracy; rmse ...)
    probability  its values are probabilities: a binary decision thresholds them at 1/2 (logits
                 and scores at 0)
    caches       for an op whose last `cached` arguments are values it could compute from the
                 others (the fused cross-entropy takes max and Σexp of s so that one exp serves
                 p and the loss): the rule that builds them. No gradient flows through them.
    fold         the graph builder's simplification of a new node (g * 1 -> g), or None
    identities   the optimiser's rewrites of this op as (pattern, replacement) rows; a pattern
                 is (i, what): argument i is a literal of that value, or the result of that op
    fuse         the stable fusion of this op with its argument (xent of a softmax), or None
    zero_unsafe  (argument, "log of"): compile-time warning when that argument can be exactly 0;
    zero_able    the result can be exactly 0 (relu, exp underflowing); zero_help: what to do
    zero_from    the arguments whose zeros the result keeps (a product is 0 where a factor is):
                 what can be 0 is followed through them
    flops        the cost model of `gdsl stats`: FLOPs per output element, or a rule
    fresh        the result is a new float array the emitted code may update in place
    readonly     the NumPy form is a read-only view (np.broadcast_to): a gradient returned
                 as it is would fail an in-place update (the NumPy target copies it)
    shape_only   the arguments the emission reads only for their shape (n = s.shape[1])
    floats       True: the result is float whatever the arguments (/, exp); False: never
                 (masks, indices, counts); None: float when a value argument is
    jacobian     for teaching: the local Jacobian per argument in the lecture's notation
                 ({x}, {y}, {ans}: the argument and result names), or a rule (t) -> text for
                 one that depends on them: t.x, t.y, t.ans are their texts, t.literal(key) a
                 number's value, t.rows/t.cols/t.vector/t.scalar(key) their shapes for one
                 example, t.diag(text) diag(text) but for scalars (d x²/dx = 2x, not 2 x^(2−1))
    notation     how the slides write the op: (args) -> (text, precedence)
    linear       for teaching: the sign (+1, -1) with which the op passes a gradient on, or
                 SCALED when it scales it by its other argument (x * λ); grad_form: the
                 gradient of each argument written in its own shape (∂J/∂W = gᵀxᵀ)
    scalar_factor the argument positions a scalar multiple can sit in, folded into the label
                 of its user when drawn (J = l + λr)
    teach_name   the lecture's name for an unnamed value of this op (z = Wx, p, r = ‖W‖²),
                 or a rule (a) -> name or None reading a.kind(i) (input, param, const, op; seen
                 through a transpose) and a.base(i) (the lecture's name of an argument)
    written      how the slides write this op with others: patterns (op, arg, ...) whose leaves
                 are this op's argument positions (xent: −log(yᵀp) is neg(log(yᵀ @ p)))
    units        the neuron-level figure (gdsl graph --neurons): "dense" (one edge per weight,
                 w_{j,i}) or "one" (unit j to unit j); elementwise ops are "one"
    curve        the loss-function slide's plot of a loss: title, axes, range and its
                 arguments as a function of t (gdsl graph --loss-curve)
    hint         a name for the emitted value from its arguments' names (the lecture's Y for y)
    doc          what it computes, for `help` and error messages; user: callable by name

Conventions, as in the lecture: classes along axis 0 and examples along the
remaining axes (X is d x n, one-hot Y is C x n); losses average over examples.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import shapes as sh
from .shapes import Mismatch

UNSET = "unset"        # (a differentiable row must say whether it has kinks: see `kink`)
SCALED = "scaled"      # (`linear`: the gradient is scaled by the other argument)


@dataclass(frozen=True)
class Op:
    name: str
    arity: int
    shape: Callable
    emit: dict
    vjp: tuple | None = None
    keywords: dict = field(default_factory=dict)
    whole: dict = field(default_factory=dict)
    broadcasts: bool = False
    kink: Callable | None | str = UNSET
    constant: bool = False
    mask: bool = False
    keeps_mask: bool = False
    labels: int | None = None
    scores: int = 0
    loss: bool = False
    target: int | None = None
    target_range: tuple[float, float] | None = None
    metrics: tuple[str, ...] = ()
    probability: bool = False
    caches: Callable | None = None
    cached: int = 0
    fold: Callable | None = None
    identities: tuple = ()
    fuse: Callable | None = None
    zero_unsafe: tuple | None = None
    zero_able: bool = False
    zero_help: str | None = None
    zero_from: tuple[int, ...] = ()
    flops: Callable | int = 1
    fresh: bool = True
    readonly: bool = False
    shape_only: tuple[int, ...] = ()
    floats: bool | None = None
    helpers: tuple[str, ...] = ()
    jacobian: tuple[str | Callable, ...] = ()
    notation: Callable | None = None
    linear: Callable | None = None
    grad_form: tuple[str, ...] = ()
    scalar_factor: tuple[int, ...] = ()
    teach_name: Callable | str | None = None
    written: tuple = ()
    units: str | None = None
    curve: dict | None = None
    hint: Callable | None = None
    # data-parallel training (gdsl run --workers, gdsl/tools/distributed.py): a batch split
    # into shards gives the batch's value as the example-weighted mean of the shards' values
    # where the examples axis is reduced by an op that `averages` over it (mean, the losses),
    # and through an op that is jointly `affine` in the arguments at one of these sets of
    # positions (the others fixed: x + y, c * x, x / c, sum(x), transpose)
    averages: bool = False
    affine: tuple[tuple[int, ...], ...] = ()
    user: bool = True
    doc: str = ""

    @property
    def elementwise(self) -> bool:
        """Each entry of the result from the same entries of the arguments (broadcast)."""
        return self.shape in (same, bcast)

    @property
    def foldable(self) -> bool:
        """Constant folding may compute it from literal arguments."""
        return self.elementwise and not self.constant


OPS: dict[str, Op] = {}


def defop(name, arity, shape, emit, *vjp, **kw) -> Op:
    """Add a row; ``emit`` is the NumPy emission (other targets' go in ``targets={...}``)."""
    targets = kw.pop("targets", {})
    vjp = tuple(vjp) if any(rule is not None for rule in vjp) else None    # None: no derivative
    op = Op(name, arity, shape, {"numpy": emit, **targets}, vjp, **kw)
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


def xp_(fn: str, *args, **kw) -> ast.expr:
    """A function of the array API standard, from the namespace the array-API target's code
    takes from its arguments (xp)."""
    return ast.Call(ast.Attribute(ast.Name("xp", LOAD), fn, LOAD), list(args), _kw(kw))


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


def target_shape(dims, s, at):
    """A loss of predictions p and targets y: the same shape, or one of them with a leading 1
    (p [1, n] with y [n]); the loss is a scalar."""
    p, y = s[0], s[1]
    if p is not None and y is not None:
        a, b = (p, y) if len(p) >= len(y) else (y, p)
        if len(a) == len(b) + 1 and dims.resolve(a[0]) == 1:
            a = a[1:]
        if len(a) != len(b):
            raise Mismatch(f"targets of shape {sh.show_shape(y)} do not fit predictions of "
                           f"shape {sh.show_shape(p)}")
        for u, v in zip(a, b):
            dims.equal(u, v, "predictions and targets")
    return ()


def like_second(dims, s, at):
    return s[1]


def transposed(dims, s, at):
    return None if s[0] is None else tuple(reversed(s[0]))


# -- kinks: how far a batch is from where a non-smooth op has no derivative (gdsl check) ------

def _kink_at_zero(args, at):
    return float(np.min(np.abs(args[0]), initial=np.inf))


def _kink_at_ties(args, at):
    return float(np.min(np.abs(np.subtract(args[0], args[1])), initial=np.inf))


def _kink_huber(args, at):
    # the residual's magnitude meets delta (the second derivative jumps there)
    r = np.abs(np.subtract(args[0], args[1]))
    return float(np.min(np.abs(r - at["delta"]), initial=np.inf))


def _kink_top_two(args, at):
    x = np.asarray(args[0], dtype=np.float64)
    axis = at.get("axis")
    if axis is None:
        x = x.reshape(-1)
        axis = 0
    if x.shape[axis] < 2:
        return np.inf
    top = -np.sort(-x, axis=axis)
    return float(np.min(np.take(top, 0, axis) - np.take(top, 1, axis), initial=np.inf))


def _kink_hinge(args, at):
    s = np.asarray(args[0], dtype=np.float64)
    y = np.asarray(args[1])
    if y.shape == s.shape:
        Y = y
    else:       # integer labels: one-hot along the class axis
        Y = np.arange(s.shape[0]).reshape((-1,) + (1,) * y.ndim) == y.reshape(s.shape[1:])
    margins = s - (Y * s).sum(axis=0, keepdims=True) + 1
    return float(np.min(np.abs(margins[Y == 0]), initial=np.inf))


# -- the lecture's notation (gdsl.views.view) ---------------------------------------------------
# A rule gets the arguments as a Notation (gdsl.views.view): t.p(i, level) is argument i,
# parenthesised when it binds looser than level; t.text(i), t.is_scalar(i), t.is_literal(i).

ATOM, PRODUCT, SUM = 3, 2, 1        # precedence of a written expression


def _word(text: str, last: bool) -> str:
    """The name a factor of a product ends (or starts) with: W1 of 2W1, λ of 2λ, x of xᵀ."""
    t = text.rstrip("ᵀ²³") if last else text
    word = ""
    for ch in (reversed(t) if last else t):
        if not (ch.isalnum() or ch == "_") or ch in "ᵀ²³":
            break
        word += ch
    word = word[::-1] if last else word
    return word.lstrip("0123456789.")          # a number before a name: 2λ


def juxt(a: str, b: str) -> str:
    """a b written side by side (Wx, λr, 2λW, gᵀxᵀ), with a dot where that would be ambiguous:
    before a number (g · 2x), after or before a name of several characters (W1 · x, g_s · h)."""
    if not a or not b or b[0] in "ᵀ²³":
        return a + b
    first, last = _word(b, False), _word(a, True)
    indexed = first[:1].isalpha() and first[1:].isdigit()          # 2λW1, but W1 · x
    if b[0].isdigit() or (len(last) > 1 and not last.isdigit()) or \
            a.rstrip("ᵀ²³").endswith(("}", "]")) or b[len(first):].startswith("[") or \
            (len(first) > 1 and not indexed):          # (W · h[t]: Wh[t] would read as Wh)
        return f"{a} · {b}"
    return a + b


def _power(k) -> str:
    k = int(k) if float(k).is_integer() else k
    return {2: "²", 3: "³"}.get(k, f"^{k}" if isinstance(k, int) and k >= 0 else f"^({k})")


def _pow_jacobian(t):
    # d xᵏ/dx = k xᵏ⁻¹, the exponent worked out when it is a number: d x²/dx = 2x
    k = t.literal("y")
    if k is None:
        return t.diag(f"{t.y} {t.x}^({t.y}−1)")
    k = int(k) if float(k).is_integer() else k
    if k == 1:
        return t.diag("1")
    return t.diag(juxt(str(k), t.x + ("" if k == 2 else _power(k - 1))))


def _mul_notation(t):
    s0, s1 = t.is_scalar(0), t.is_scalar(1)
    if s1 and not s0:
        return juxt(t.p(1, ATOM), t.p(0, PRODUCT)), PRODUCT
    if s0:
        return juxt(t.p(0, ATOM), t.p(1, PRODUCT)), PRODUCT
    return f"{t.p(0, PRODUCT)} ⊙ {t.p(1, PRODUCT)}", PRODUCT


def _pow_notation(t):
    if t.is_literal(1) and t.text(1) in ("2", "3"):
        return t.p(0, ATOM) + {"2": "²", "3": "³"}[t.text(1)], ATOM
    return f"{t.p(0, ATOM)}^{t.p(1, ATOM)}", ATOM


# -- the graph builder's folds (gdsl.ir.builder): what a rule would otherwise leave behind ------

def _value(d: dict):
    """A literal node's value; None for any other node."""
    return d["value"] if d["op"] == "literal" else None


def _binary_fold(compute, *identities):
    """Numbers computed at once (if the result is a float); then identities as (test on the
    literal values lx, ly, what to return: "x", "y", or a function (b, x, y) -> value)."""
    def fold(b, ids, nodes):
        x, y = ids
        lx, ly = _value(nodes[x]), _value(nodes[y])
        if lx is None and ly is None:
            return None
        if lx is not None and ly is not None:
            try:
                value = compute(lx, ly)
            except (ZeroDivisionError, OverflowError, ValueError):
                value = None
            if isinstance(value, float):
                return b.lit(value)
        for test, result in identities:
            if test(lx, ly):
                return (b.value(x) if result == "x" else b.value(y) if result == "y"
                        else result(b, x, y))
        return None
    return fold


_mul_literals = _binary_fold(
    lambda a, b: a * b,
    (lambda lx, ly: lx == 1, "y"),                                       # 1*x -> x
    (lambda lx, ly: ly == 1, "x"),                                       # x*1 -> x
    (lambda lx, ly: lx == -1, lambda b, x, y: b.op("neg", b.value(y))))  # -1*x -> -x


def _mul_fold(b, ids, nodes):
    folded = _mul_literals(b, ids, nodes)
    if folded is not None:
        return folded
    x, y = ids
    second = nodes[y]
    if second["op"] == "div" and _value(nodes[second["args"][0]]) == 1:
        return b.op("div", b.value(x), b.value(second["args"][1]))      # x * (1/y) -> x / y
    return None


def _neg_fold(b, ids, nodes):
    first = nodes[ids[0]]
    if first["op"] == "neg":        # --x -> x
        return b.value(first["args"][0])
    return b.lit(-first["value"]) if first["op"] == "literal" else None


def _transpose_fold(b, ids, nodes):
    # a scalar is its own transpose (and 1.0.T is no Python)
    return b.value(ids[0]) if nodes[ids[0]]["shape"] == () else None


def _onehot_fold(b, ids, nodes):
    return b.value(ids[0]) if nodes[ids[0]]["op"] == "onehot" else None     # already one-hot


# -- identities of the optimiser (gdsl.passes.simplify) ------------------------------------------
# An identity is ((i, what), replace): argument i is a literal of that value (a number) or the
# result of that op (a name); replace(b, *args) returns the node that takes the node's place.
# Every row keeps the shape: literals are scalars, so x * 1 has x's shape.

def _arg(model, n, i=0) -> int:
    return model.node(n)["args"][i]


def _neg_of(b, n):
    return b.op("neg", b.value(n)).id


def _op_of(name):
    def build(b, x, y):
        return b.op(name, b.value(x), b.value(y)).id
    return build


# -- the fusions (gdsl.passes.fuse) ---------------------------------------------------------------

def _fuse_log(b, model, n):
    d = model.node(n)
    src = model.node(d["args"][0])
    if src["op"] == "softmax":      # log(softmax(s)) -> logsoftmax(s): never log(0) = -inf
        d["op"] = "logsoftmax"
        d["attrs"] = dict(src["attrs"])
        model.set_args(n, (src["args"][0],))
        model.rewrites.append(f"{d['span']}: log(softmax(s)) -> logsoftmax(s)")
    elif src["op"] == "sigmoid":    # log(sigmoid(s)) -> -softplus(-s): σ(s) underflows to 0
        _become_neg(model, n, b.op("softplus", -b.value(src["args"][0])))
        model.rewrites.append(f"{d['span']}: log(sigmoid(s)) -> -softplus(-s)")
    elif src["op"] == "sub" and _value(model.node(src["args"][0])) == 1 and \
            model.node(src["args"][1])["op"] == "sigmoid":
        # log(1 - sigmoid(s)) -> -softplus(s): 1 - σ(s) is 0 once s > 37
        s = model.node(src["args"][1])["args"][0]
        _become_neg(model, n, b.op("softplus", b.value(s)))
        model.rewrites.append(f"{d['span']}: log(1 - sigmoid(s)) -> -softplus(s)")


def _become_neg(model, n, x):
    """Node n becomes -x (it keeps its name, span and users)."""
    d = model.node(n)
    d["op"], d["attrs"] = "neg", {}
    model.set_args(n, (x.id,))


def _loss_inputs(b, model, n, scores_id):
    """(scores, one-hot labels) of a loss node, the labels made one-hot once for both passes."""
    scores = b.value(scores_id)
    labels = b.value(model.node(n)["args"][1])
    if model.node(labels.id)["op"] == "onehot":
        return scores, labels
    return scores, b.op("onehot", labels, scores)


def _fuse_xent(b, model, n):
    """xent(softmax(s), y) -> p = e / Z, l = xent_logits(s, Y, m, Z, ys) with m = max(s),
    e = exp(s - m), Z = Σ e per example, ys = Σ yᵀs: one exp serves p and the loss
    (log Z + m - yᵀs), and the gradient is (p - Y) / n. Otherwise: labels one-hot once."""
    d = model.node(n)
    src = model.node(d["args"][0])
    fused = src["op"] == "softmax" and src["attrs"].get("axis") == 0
    s, Y = _loss_inputs(b, model, n, src["args"][0] if fused else d["args"][0])
    if not fused:
        model.set_args(n, (s.id, Y.id))
        return
    p = d["args"][0]
    b.extra = {"span": src["span"], "line": src["line"]}
    m, Z, ys = OPS["xent_logits"].caches(s, Y)
    e = b.op("exp", s - m)
    for v, hint in ((m, "m"), (e, "e"), (Z, "Z"), (ys, "ys")):     # the lecture-style names
        model.node(v.id).setdefault("hint", hint)
    model.node(p).update(op="div", attrs={})
    model.set_args(p, (e.id, Z.id))
    d["op"] = "xent_logits"
    model.set_args(n, (s.id, Y.id, m.id, Z.id, ys.id))
    model.rewrites.append(f"{d['span']}: xent(softmax(s), y) -> log-sum-exp cross-entropy")


def _fuse_svm(b, model, n):
    """svm(s, y) -> svm_hinge(s, Y, M) with M = svm_margins(s, Y) = max(0, s - s_y + 1), 0 for
    the true class: the loss is ΣM / n and the gradient [M > 0]."""
    d = model.node(n)
    s, Y = _loss_inputs(b, model, n, d["args"][0])
    (M,) = OPS["svm_hinge"].caches(s, Y)
    model.node(M.id).setdefault("hint", "M")
    d["op"] = "svm_hinge"
    model.set_args(n, (s.id, Y.id, M.id))
    model.rewrites.append(f"{d['span']}: svm(s, y) -> hinge loss of margins computed once")


# -- the ONNX forms (gdsl.backend.onnx_target) ------------------------------------------------------
# A row's ONNX form (targets={"onnx": ...}) gets the target's Emitter e, the arguments' tensor
# names, the attributes and the arguments' shapes, and returns the result's tensor: e.op("Add",
# x, y) adds a node and returns its output (see onnx_target.Emitter for e.lit, e.reduce ...).
# The subgraphs below compute what the NumPy helpers compute, step for step, so that both give
# the same numbers.

def _onnx_reduce(op_type):
    return lambda e, a, at, s: e.reduce(op_type, a[0], at.get("axis"), at.get("keepdims"))


def _onnx_keep_axis(e, x, at):
    """x with the axis a reduction dropped put back (np.expand_dims), unless it kept it."""
    axis = at.get("axis")
    if axis is None or at.get("keepdims"):
        return x
    return e.op("Unsqueeze", x, e.ints(*(axis if isinstance(axis, tuple) else (axis,))))


def _onnx_examples(e, x, shape):
    # x[0].size: n for a C x n matrix
    return e.count(x, shape, tuple(range(1, len(shape))))


def _onnx_outer(e, u, v):
    return e.op("Mul", e.op("Unsqueeze", u, e.ints(1)), e.op("Unsqueeze", v, e.ints(0)))


def _onnx_matmul(e, x, y, sx, sy):
    if len(sx) == 2 and len(sy) == 1:
        # a matrix times a vector, as a matrix times a column: onnxruntime (1.32) computes a
        # Transpose it fuses into a MatMul wrongly when the second operand is 1-D
        column = e.op("MatMul", x, e.op("Unsqueeze", y, e.ints(1)))
        return e.op("Squeeze", column, e.ints(1))
    return e.op("MatMul", x, y)


def _onnx_mm_grad_x(e, a, at, s):
    # as _mm_grad_x
    g, _x, y = a
    if len(s[2]) == 1:
        return _onnx_outer(e, g, y) if len(s[1]) == 2 else e.op("Mul", g, y)
    if len(s[1]) == 2:
        return e.op("MatMul", g, e.op("Transpose", y))
    return _onnx_matmul(e, y, g, s[2], s[0])


def _onnx_mm_grad_y(e, a, at, s):
    # as _mm_grad_y
    g, x, _y = a
    if len(s[1]) == 1:
        return _onnx_outer(e, x, g) if len(s[2]) == 2 else e.op("Mul", g, x)
    return _onnx_matmul(e, e.op("Transpose", x), g, s[1][::-1], s[0])


def _onnx_sigmoid(e, a, at, s):
    # 0.5 + 0.5 tanh(0.5 x), as the NumPy form
    half = e.lit(0.5)
    return e.op("Add", half, e.op("Mul", half, e.op("Tanh", e.op("Mul", half, a[0]))))


def _onnx_softplus(e, a, at, s):
    # np.logaddexp(0, x) = max(x, 0) + log1p(exp(-|x|)); log1p(u) = log(w) u / (w - 1) with
    # w = 1 + u, and u where w rounds to 1: log(1 + u) alone would lose u below 1e-16
    u = e.op("Exp", e.op("Neg", e.op("Abs", a[0])))
    w = e.op("Add", e.lit(1), u)
    d = e.op("Sub", w, e.lit(1))
    tiny = e.op("Equal", d, e.lit(0))
    ratio = e.op("Div", u, e.op("Where", tiny, e.lit(1), d))
    return e.op("Add", e.op("Relu", a[0]),
                e.op("Where", tiny, u, e.op("Mul", e.op("Log", w), ratio)))


def _onnx_max_grad(e, a, at, s):
    # g where x is the max, shared equally among ties, as _max_grad
    g, x, m = a
    mask = e.float(e.op("Equal", x, _onnx_keep_axis(e, m, at)))
    count = e.reduce("ReduceSum", mask, at.get("axis"), keepdims=True)
    return e.op("Div", e.op("Mul", _onnx_keep_axis(e, g, at), mask), count)


def _onnx_argmax(e, a, at, s):
    axis = at.get("axis", 0)
    if axis is None:        # the index into x flattened
        return e.op("ArgMax", e.op("Reshape", a[0], e.ints(-1)), axis=0, keepdims=0)
    return e.op("ArgMax", a[0], axis=axis, keepdims=0)


def _onnx_sum_to(e, a, at, s):
    # g summed over the axes along which x was broadcast, as _sum_to
    g, (gs, xs) = a[0], s
    lead = len(gs) - len(xs)
    if lead > 0:
        g = e.reduce("ReduceSum", g, tuple(range(lead)))
    axes = tuple(i for i, (xd, gd) in enumerate(zip(xs, gs[lead:])) if xd == 1 and gd != 1)
    return e.reduce("ReduceSum", g, axes, keepdims=True) if axes else g


def _onnx_expand_to(e, a, at, s):
    return e.op("Expand", _onnx_keep_axis(e, a[0], at), e.op("Shape", a[1]))


def _onnx_zeros_like(e, a, at, s):
    return e.op("ConstantOfShape", e.op("Shape", a[0]), value=e.value(0))


def _onnx_softmax(e, a, at, s):
    # exp(s - max s) / Σ, as _softmax
    m = e.reduce("ReduceMax", a[0], at["axis"], keepdims=True)
    x = e.op("Exp", e.op("Sub", a[0], m))
    return e.op("Div", x, e.reduce("ReduceSum", x, at["axis"], keepdims=True))


def _onnx_logsoftmax(e, a, at, s):
    t = e.op("Sub", a[0], e.reduce("ReduceMax", a[0], at["axis"], keepdims=True))
    total = e.reduce("ReduceSum", e.op("Exp", t), at["axis"], keepdims=True)
    return e.op("Sub", t, e.op("Log", total))


def _onnx_logsumexp(e, a, at, s):
    axis = at["axis"]
    m = e.reduce("ReduceMax", a[0], axis, keepdims=True)
    total = e.reduce("ReduceSum", e.op("Exp", e.op("Sub", a[0], m)), axis, keepdims=True)
    out = e.op("Add", m, e.op("Log", total))
    if at["keepdims"]:
        return out
    return e.op("Squeeze", out) if axis is None else e.op("Squeeze", out, e.ints(axis))


def _onnx_onehot(e, y, like, shape):
    """_onehot: one-hot labels as they are; integer labels compared with the classes 0..C-1
    along axis 0 (one out of range gives a column of zeros: ONNX has no error to raise)."""
    if not e.is_int(y):
        return e.float(y)
    classes = e.op("Range", e.int(0), e.op("Gather", e.op("Shape", like), e.int(0)), e.int(1))
    if len(shape) > 1:
        classes = e.op("Unsqueeze", classes, e.ints(*range(1, len(shape))))
    labels = e.op("Reshape", y, e.op("Shape", like, start=1))
    return e.float(e.op("Equal", classes, labels))


def _onnx_xent(e, a, at, s):
    # -Σ log(yᵀp) / n, as _xent
    Y = _onnx_onehot(e, a[1], a[0], s[0])
    yp = e.reduce("ReduceSum", e.op("Mul", Y, a[0]), 0)
    total = e.op("Neg", e.reduce("ReduceSum", e.op("Log", yp)))
    return e.op("Div", total, _onnx_examples(e, a[0], s[0]))


def _onnx_xent_logits(e, a, at, s):
    # (Σ log Z + Σ m - yᵀs) / n
    st, _Y, m, Z, ys = a
    total = e.op("Add", e.reduce("ReduceSum", e.op("Log", Z)), e.reduce("ReduceSum", m))
    return e.op("Div", e.op("Sub", total, ys), _onnx_examples(e, st, s[0]))


def _onnx_svm_margins(e, a, at, s):
    # M = s - yᵀs + 1 - Y, then max(M, 0), as _svm_margins
    x, Y = a[0], _onnx_onehot(e, a[1], a[0], s[0])
    M = e.op("Sub", x, e.reduce("ReduceSum", e.op("Mul", Y, x), 0, keepdims=True))
    M = e.op("Sub", e.op("Add", M, e.lit(1)), Y)
    return e.op("Max", M, e.lit(0))


def _onnx_svm(e, a, at, s):
    M = _onnx_svm_margins(e, a, at, s)
    return e.op("Div", e.reduce("ReduceSum", M), _onnx_examples(e, a[0], s[0]))


def _onnx_svm_hinge(e, a, at, s):
    return e.op("Div", e.reduce("ReduceSum", a[2]), _onnx_examples(e, a[0], s[0]))


def _onnx_svm_grad(e, a, at, s):
    # A = [M > 0] - Y Σ[M > 0], times g / n, as _svm_grad
    g, M, Y = a
    A = e.float(e.op("Greater", M, e.lit(0)))
    A = e.op("Sub", A, e.op("Mul", Y, e.reduce("ReduceSum", A, 0, keepdims=True)))
    return e.op("Mul", A, e.op("Div", g, _onnx_examples(e, M, s[1])))


def _onnx_vdot(e, a, at, s):
    # np.vdot: one dot product of both flattened
    flat = {v: e.op("Reshape", v, e.ints(-1)) for v in dict.fromkeys(a)}   # (sqnorm: x·x)
    return e.op("MatMul", flat[a[0]], flat[a[1]])


def _onnx_bce(e, a, at, s):
    # mean(softplus(s) - y s), as the NumPy form
    softplus = _onnx_softplus(e, a[:1], at, s)
    return e.reduce("ReduceMean", e.op("Sub", softplus, e.op("Mul", a[1], a[0])))


def _onnx_mse(e, a, at, s):
    r = e.op("Sub", *a)
    return e.reduce("ReduceMean", e.op("Mul", r, r))


def _onnx_huber(e, a, at, s):
    # r²/2 within delta, delta (|r| - delta/2) beyond, averaged, as _huber
    r = e.op("Sub", *a)
    size, delta = e.op("Abs", r), float(at["delta"])
    near = e.op("Mul", e.op("Mul", e.lit(0.5), r), r)
    far = e.op("Mul", e.lit(delta), e.op("Sub", size, e.lit(0.5 * delta)))
    within = e.op("LessOrEqual", size, e.lit(delta))
    return e.reduce("ReduceMean", e.op("Where", within, near, far))


# -- the numba forms (gdsl.backend.numba_target) ---------------------------------------------------
# An elementwise op needs none: its NumPy emission applied to numbers is the entry of its loop.
# Any other op's numba form (targets={"numba": ...}) gets the target's Kernel k, the arguments
# (values of the step), the attributes and the arguments' shapes, and builds its result from
# k.map (elementwise, fused into the loop that reads it), k.reduce (with a Reduction below),
# k.argmax, k.dot (BLAS), k.transpose, k.reshape (axes of size 1), k.count, k.call (a helper of
# NUMBA_HELPERS) and k.op (another row's form). The loops compute what the NumPy helpers
# compute, in the same order of operations, so that both give the same numbers.

@dataclass(frozen=True)
class Reduction:
    """A reduction as a loop writes it: the accumulator's start, and update(acc, x)."""

    init: float
    update: Callable


SUM_LOOP = Reduction(0.0, lambda acc, x: bin_(acc, "+", x))
MAX_LOOP = Reduction(-np.inf, lambda acc, x: np_("maximum", acc, x))


def _nb_mul(x, y):
    return bin_(x, "*", y)


def _nb_reduce(red):
    return lambda k, a, at, s: k.reduce(red, a[0], at.get("axis"), at.get("keepdims"))


def _nb_mean(k, a, at, s):
    total = k.reduce(SUM_LOOP, a[0], at.get("axis"), at.get("keepdims"))
    return k.map(lambda t, c: bin_(t, "/", c), total, k.count(a[0], at.get("axis")))


def _nb_max_grad(k, a, at, s):
    g, x, m = a
    axis = at.get("axis")
    if axis is not None and not at.get("keepdims"):     # (np.expand_dims of g and m)
        kept = sh.reduce(k.shape(x), axis, True)
        g, m = k.reshape(g, kept), k.reshape(m, kept)
    mask = k.map(lambda u, v: bin_(u, "==", v), x, m)
    ties = k.reduce(SUM_LOOP, mask, axis, True)
    return k.map(lambda u, v, c: bin_(bin_(u, "*", v), "/", c), g, mask, ties)


def _nb_expand(k, a, at, s):
    g, x = a
    if at.get("axis") is not None and not at.get("keepdims"):
        g = k.reshape(g, sh.reduce(k.shape(x), at["axis"], True))
    return k.map(lambda v: v, g, shape=k.shape(x))


def _nb_examples(k, a, at, s):
    # p[0].size: n for a C x n matrix
    return k.count(a[0], tuple(range(1, len(s[0]))))


def _nb_softmax(k, a, at, s):
    x, axis = a[0], at["axis"]
    e = k.map(lambda v, m: np_("exp", bin_(v, "-", m)), x, k.reduce(MAX_LOOP, x, axis, True))
    return k.map(lambda v, z: bin_(v, "/", z), e, k.reduce(SUM_LOOP, e, axis, True))


def _nb_logsoftmax(k, a, at, s):
    x, axis = a[0], at["axis"]
    t = k.map(lambda v, m: bin_(v, "-", m), x, k.reduce(MAX_LOOP, x, axis, True))
    z = k.reduce(SUM_LOOP, k.map(lambda v: np_("exp", v), t), axis, True)
    return k.map(lambda v, w: bin_(v, "-", np_("log", w)), t, z)


def _nb_logsumexp(k, a, at, s):
    x, axis = a[0], at["axis"]
    m = k.reduce(MAX_LOOP, x, axis, True)
    z = k.reduce(SUM_LOOP, k.map(lambda v, u: np_("exp", bin_(v, "-", u)), x, m), axis, True)
    out = k.map(lambda u, w: bin_(u, "+", np_("log", w)), m, z)
    return out if at["keepdims"] else k.reshape(out, sh.reduce(k.shape(x), axis, False))


def _nb_onehot(k, a, at, s):
    y, like = a
    if not k.given(y) and s[0] == s[1]:
        return y                        # already one-hot
    if len(s[1]) != 2:
        k.refuse(f"labels for scores of {len(s[1])} axes (it takes [C, n])")
    # labels given to the model may come as integers [n], a row [1, n] or one-hot [C, n]
    return k.call("_onehot_labels", y, shape=s[1],
                  extra=(k.dim(like, 0), k.dim(like, 1), k.dtype))


def _nb_xent(k, a, at, s):
    p, y = a
    Y = k.op("onehot", y, p)
    t = k.reduce(SUM_LOOP, k.map(_nb_mul, Y, p), 0)           # yᵀp per example
    total = k.reduce(SUM_LOOP, k.map(lambda v: ast.UnaryOp(ast.USub(), np_("log", v)), t))
    return k.map(lambda v, n: bin_(v, "/", n), total, k.op("examples", p))


def _nb_xent_logits(k, a, at, s):
    st, _Y, m, Z, ys = a
    logs = k.reduce(SUM_LOOP, k.map(lambda v: np_("log", v), Z))
    return k.map(lambda u, v, w, n: bin_(bin_(bin_(u, "+", v), "-", w), "/", n),
                 logs, k.reduce(SUM_LOOP, m), ys, k.op("examples", st))


def _nb_svm(k, a, at, s):
    sc, y = a
    M = k.op("svm_margins", sc, k.op("onehot", y, sc))
    return k.map(lambda v, n: bin_(v, "/", n), k.reduce(SUM_LOOP, M), k.op("examples", sc))


def _nb_svm_margins(k, a, at, s):
    sc, Y = a
    ys = k.reduce(SUM_LOOP, k.map(_nb_mul, Y, sc), 0, True)
    # max(0, s - s_y + 1 - Y), as the helper computes it: M = s - ys; M += 1; M -= Y
    return k.map(lambda v, t, u: np_("maximum", bin_(bin_(bin_(v, "-", t), "+", const(1.0)),
                                                     "-", u), const(0.0)), sc, ys, Y)


def _nb_svm_hinge(k, a, at, s):
    return k.map(lambda v, n: bin_(v, "/", n), k.reduce(SUM_LOOP, a[2]), k.op("examples", a[0]))


def _nb_svm_grad(k, a, at, s):
    g, M, Y = a
    A = k.map(lambda v: bin_(v, ">", const(0.0)), M)
    violated = k.reduce(SUM_LOOP, A, 0, True)
    scale = k.map(lambda v, n: bin_(v, "/", n), g, k.op("examples", M))
    return k.map(lambda u, y, c, f: bin_(bin_(u, "-", bin_(y, "*", c)), "*", f),
                 A, Y, violated, scale)


def _nb_mean_of(entry):
    """A loss averaged over every entry of entry(p, y, attrs), p and y broadcast."""
    def form(k, a, at, s):
        e = k.map(lambda u, v: entry(u, v, at), *a)
        return k.map(lambda t, c: bin_(t, "/", c), k.reduce(SUM_LOOP, e), k.count(e))
    return form


def _nb_huber(r, at):
    # r²/2 within delta, delta (|r| - delta/2) beyond, as the helper computes it
    delta = const(float(at["delta"]))
    return ast.IfExp(bin_(np_("abs", r), "<=", delta), bin_(bin_(const(0.5), "*", r), "*", r),
                     bin_(delta, "*", bin_(np_("abs", r), "-", bin_(const(0.5), "*", delta))))


# the losses of predictions p and targets y, averaged over every entry
_nb_bce = _nb_mean_of(lambda s, y, at: bin_(np_("logaddexp", const(0.0), s), "-", bin_(y, "*", s)))
_nb_mse = _nb_mean_of(lambda p, y, at: np_("square", bin_(p, "-", y)))
_nb_mae = _nb_mean_of(lambda p, y, at: np_("abs", bin_(p, "-", y)))
_nb_huber_loss = _nb_mean_of(lambda p, y, at: _nb_huber(bin_(p, "-", y), at))


def _nb_vdot(k, a, at, s):
    return k.reduce(SUM_LOOP, k.map(_nb_mul, *a))


def _nb_sqnorm(k, a, at, s):
    return k.reduce(SUM_LOOP, k.map(lambda v: _nb_mul(v, v), a[0]))


def _nb_mm_grad_x(k, a, at, s):
    g, _x, y = a
    if len(s[2]) == 1:          # g yᵀ of a vector y: an outer product, or g * y
        return k.map(_nb_mul, k.reshape(g, (*s[0], 1)), y) if len(s[1]) == 2 \
            else k.map(_nb_mul, g, y)
    return k.dot(g, k.transpose(y)) if len(s[1]) == 2 else k.dot(y, g)


def _nb_mm_grad_y(k, a, at, s):
    g, x, _y = a
    if len(s[1]) == 1:          # xᵀ g of a vector x: an outer product, or g * x
        return k.map(_nb_mul, k.reshape(x, (*s[1], 1)), g) if len(s[2]) == 2 \
            else k.map(_nb_mul, g, x)
    return k.dot(k.transpose(x), g)


# -- convolution and pooling: the NumPy target's last-axis dims, the ONNX and numba forms ----------

def _last_dim(x) -> ast.expr:
    return ast.Subscript(attr(x, "shape"), const(-1), LOAD)      # x.shape[-1]: n


def _onnx_reshape(e, x, lead):
    """x reshaped to [*lead, n], n its last axis's size."""
    return e.op("Reshape", x, e.op("Concat", e.ints(*lead), e.op("Shape", x, start=-1), axis=0))


def _onnx_pad(e, x, p):
    """Images [C, H, W, n] with p rows and columns of zeros around them."""
    return x if not p else e.op("Pad", x, e.ints(0, p, p, 0, 0, p, p, 0))


def _onnx_window(e, x, a, b, count_h, count_w, stride):
    """x[:, a : a + stride count_h : stride, b : ... : stride]: one place of every window."""
    return e.op("Slice", x, e.ints(a, b), e.ints(a + stride * (count_h - 1) + 1,
                                                 b + stride * (count_w - 1) + 1),
                e.ints(1, 2), e.ints(stride, stride))


def _onnx_windows(e, x, sx, kh, kw, at):
    """im2col, as _windows: the windows of x [C, H, W, n] as [C, kh, kw, H', W', n]."""
    stride, p = at["stride"], at["padding"]
    H, W = sx[1] + 2 * p, sx[2] + 2 * p
    Ho, Wo = (H - kh) // stride + 1, (W - kw) // stride + 1
    x = _onnx_pad(e, x, p)
    places = [e.op("Unsqueeze", _onnx_window(e, x, a, b, Ho, Wo, stride), e.ints(1))
              for a in range(kh) for b in range(kw)]
    cols = places[0] if len(places) == 1 else e.op("Concat", *places, axis=1)
    return e.op("Reshape", cols, e.op("Concat", e.ints(0, kh, kw, Ho, Wo),
                                      e.op("Shape", x, start=-1), axis=0))


def _onnx_conv2d(e, a, at, s):
    # y[f, i, j, n] = Σ K[f, c, a, b] x[c, s i + a, s j + b, n]: the windows as columns
    x, K = a
    F, C, kh, kw = s[1]
    _, Ho, Wo, _ = conv_shape(sh.Dims(), s, at)
    cols = _onnx_windows(e, x, s[0], kh, kw, at)        # [C, kh, kw, H', W', n]
    y = e.op("MatMul", e.op("Reshape", K, e.ints(F, -1)),
             e.op("Reshape", cols, e.ints(C * kh * kw, -1)))
    return e.op("Reshape", y, e.op("Concat", e.ints(F, Ho, Wo), e.op("Shape", x, start=-1),
                                   axis=0))


def _onnx_conv2d_grad_K(e, a, at, s):
    # ∂J/∂K[f, c, a, b] = Σ g[f, i, j, n] x[c, s i + a, s j + b, n]
    g, x, _K = a
    F, C, kh, kw = s[2]
    cols = _onnx_windows(e, x, s[1], kh, kw, at)        # [C, kh, kw, H', W', n]
    cols = e.op("Transpose", e.op("Reshape", cols, e.ints(C * kh * kw, -1)))
    out = e.op("MatMul", e.op("Reshape", g, e.ints(F, -1)), cols)
    return e.op("Reshape", out, e.ints(F, C, kh, kw))


def _onnx_conv2d_grad_x(e, a, at, s):
    # Kᵀ g [C, kh, kw, H', W', n], each place of the windows added back where it came from
    g, _x, K = a
    F, C, kh, kw = s[2]
    _, Ho, Wo = s[0][:3]
    stride, p = at["stride"], at["padding"]
    H, W = s[1][1] + 2 * p, s[1][2] + 2 * p
    cols = e.op("MatMul", e.op("Transpose", e.op("Reshape", K, e.ints(F, -1))),
                e.op("Reshape", g, e.ints(F, -1)))
    cols = e.op("Reshape", cols, e.op("Concat", e.ints(C, kh, kw, Ho, Wo),
                                      e.op("Shape", g, start=-1), axis=0))
    out = None
    for i in range(kh):
        for j in range(kw):
            part = e.op("Squeeze", e.op("Slice", cols, e.ints(i, j), e.ints(i + 1, j + 1),
                                        e.ints(1, 2)), e.ints(1, 2))
            if stride > 1:      # stride - 1 zeros after each row and column
                part = _onnx_spread(e, part, stride, C, Ho, Wo)
            rows, columns = stride * (Ho - 1) + 1, stride * (Wo - 1) + 1
            part = e.op("Pad", part, e.ints(0, i, j, 0, 0, H - i - rows, W - j - columns, 0))
            out = part if out is None else e.op("Add", out, part)
    if p:
        out = e.op("Slice", out, e.ints(p, p), e.ints(H - p, W - p), e.ints(1, 2))
    return out


def _onnx_spread(e, t, stride, C, Ho, Wo):
    """t [C, H', W', n] with stride - 1 zeros after each row and column but the last."""
    t = e.op("Unsqueeze", t, e.ints(2, 4))                 # [C, H', 1, W', 1, n]
    for axis in (2, 4):
        zeros = e.op("ConstantOfShape", e.op("Shape", t), value=e.value(0))
        t = e.op("Concat", t, *[zeros] * (stride - 1), axis=axis)
    t = e.op("Reshape", t, e.op("Concat", e.ints(C, Ho * stride, Wo * stride),
                                e.op("Shape", t, start=-1), axis=0))
    return e.op("Slice", t, e.ints(0, 0), e.ints(stride * (Ho - 1) + 1, stride * (Wo - 1) + 1),
                e.ints(1, 2))


def _onnx_pool_windows(e, x, sx, size):
    """The windows of x [C, H, W, n] as [C, H', size, W', size, n], as the NumPy helper."""
    C, H, W = sx[:3]
    Hp, Wp = H // size, W // size
    x = e.op("Slice", x, e.ints(0, 0), e.ints(Hp * size, Wp * size), e.ints(1, 2))
    return e.op("Reshape", x, e.op("Concat", e.ints(C, Hp, size, Wp, size),
                                   e.op("Shape", x, start=-1), axis=0))


def _onnx_maxpool(e, a, at, s):
    return e.reduce("ReduceMax", _onnx_pool_windows(e, a[0], s[0], at["size"]), (2, 4))


def _onnx_pool_mask(e, x, m, sx, size):
    w = _onnx_pool_windows(e, x, sx, size)
    mask = e.float(e.op("Equal", w, e.op("Unsqueeze", m, e.ints(2, 4))))
    return mask, e.reduce("ReduceSum", mask, (2, 4), keepdims=True)


def _onnx_maxpool_grad(e, a, at, s):
    # g shared among each window's maxima, the rows and columns left over 0, as _maxpool_grad
    g, x, m = a
    size, (C, H, W) = at["size"], s[1][:3]
    Hp, Wp = s[2][1], s[2][2]
    mask, count = _onnx_pool_mask(e, x, m, s[1], size)
    share = e.op("Div", e.op("Mul", e.op("Unsqueeze", g, e.ints(2, 4)), mask), count)
    share = e.op("Reshape", share, e.op("Concat", e.ints(C, Hp * size, Wp * size),
                                        e.op("Shape", g, start=-1), axis=0))
    if (Hp * size, Wp * size) == (H, W):
        return share
    return e.op("Pad", share, e.ints(0, 0, 0, 0, 0, H - Hp * size, W - Wp * size, 0))


def _onnx_maxpool_pick(e, a, at, s):
    h, x, m = a
    size = at["size"]
    mask, count = _onnx_pool_mask(e, x, m, s[1], size)
    hw = _onnx_pool_windows(e, h, s[0], size)
    picked = e.reduce("ReduceSum", e.op("Mul", hw, mask), (2, 4), keepdims=True)
    return e.op("Squeeze", e.op("Div", picked, count), e.ints(2, 4))


def _nb_conv(k, helper_name, a, at, shape):
    return k.call(helper_name, *a, shape=shape,
                  extra=(const(at["stride"]), const(at["padding"])))


def _nb_pool(k, helper_name, a, at, shape):
    return k.call(helper_name, *a, shape=shape, extra=(const(at["size"]),))


def _nb_reshape(k, x, shape):
    return k.call("_nb_reshape", x, shape=shape, view=True,
                  extra=(ast.Tuple([k.size(d) for d in shape], LOAD),))


# -- the ops ---------------------------------------------------------------------------------
# Rules are written with graph values: g * ans builds a 'mul' node. `call` builds any op.

def call(name, *args, **attrs):
    """The op `name` of graph values (gdsl.ir.builder.V) and numbers, built in their graph."""
    b = next(a.b for a in args if hasattr(a, "b"))
    return b.op(name, *args, **attrs)


def nothing(g, ans, *args, **at):
    """The vjp for an argument an op is piecewise constant in, or reads only for its shape
    (the x of max_grad, the margins of svm_grad): 0, so differentiation adds no term. The
    backward-only ops need it for second derivatives, where those arguments move too."""
    return


# elementwise, broadcasting

defop("add", 2, bcast, lambda a, at, s: bin_(a[0], "+", a[1]),
      lambda g, ans, x, y, **at: g,
      lambda g, ans, x, y, **at: g,
      broadcasts=True, user=False, kink=None, jacobian=("I", "I"),
      fold=_binary_fold(lambda a, b: a + b,
                        (lambda lx, ly: lx == 0, "y"),              # 0+x -> x
                        (lambda lx, ly: ly == 0, "x")),             # x+0 -> x
      teach_name=lambda a: ("s" if {a.base(0), a.kind(1)} == {"z", "param"}   # s = z + b
                            or {a.kind(0), a.base(1)} == {"param", "z"} else
                            "r" if a.base(0) == a.base(1) == "r" else None),     # r = r1 + r2
      affine=((0, 1),),
      identities=(((1, 0), lambda b, x, y: x),                      # x + 0 -> x
                  ((0, 0), lambda b, x, y: y),                      # 0 + x -> x
                  ((1, "neg"), lambda b, x, y: _op_of("sub")(b, x, _arg(b.m, y))),   # x + -y -> x - y
                  ((0, "neg"), lambda b, x, y: _op_of("sub")(b, y, _arg(b.m, x)))),  # -x + y -> y - x
      notation=lambda t: (f"{t.p(0, SUM)} + {t.p(1, SUM)}", SUM),
      linear=lambda pos: 1, targets={"onnx": lambda e, a, at, s: e.op("Add", *a)})
defop("sub", 2, bcast, lambda a, at, s: bin_(a[0], "-", a[1]),
      lambda g, ans, x, y, **at: g,
      lambda g, ans, x, y, **at: -g,
      broadcasts=True, user=False, kink=None, jacobian=("I", "−I"),
      zero_able=True,       # (a difference is 0 where its terms meet: 1 − σ(s) once s > 37)
      zero_help="for log(1 − sigmoid(s)) write −softplus(s) (gdsl rewrites it so), or use "
                "bce(s, y); else keep it away from 0, e.g. add a small constant (+ 1e-12)",
      fold=_binary_fold(lambda a, b: a - b,
                        (lambda lx, ly: ly == 0, "x")),             # x-0 -> x
      identities=(((1, 0), lambda b, x, y: x),                      # x - 0 -> x
                  ((0, 0), lambda b, x, y: _neg_of(b, y)),          # 0 - x -> -x
                  ((1, "neg"), lambda b, x, y: _op_of("add")(b, x, _arg(b.m, y)))),  # x - -y -> x + y
      notation=lambda t: (f"{t.p(0, SUM)} − {t.p(1, PRODUCT)}", SUM),
      linear=lambda pos: -1 if pos else 1, affine=((0, 1),),
      targets={"onnx": lambda e, a, at, s: e.op("Sub", *a)})
defop("mul", 2, bcast, lambda a, at, s: bin_(a[0], "*", a[1]),
      lambda g, ans, x, y, **at: g * y,
      lambda g, ans, x, y, **at: g * x,
      broadcasts=True, user=False, kink=None, jacobian=("diag({y})", "diag({x})"),
      keeps_mask=True, fold=_mul_fold, zero_from=(0, 1),
      identities=(((1, 1), lambda b, x, y: x),                      # x * 1 -> x
                  ((0, 1), lambda b, x, y: y),                      # 1 * x -> x
                  ((1, -1), lambda b, x, y: _neg_of(b, x)),         # x * -1 -> -x
                  ((0, -1), lambda b, x, y: _neg_of(b, y))),        # -1 * x -> -x
      notation=_mul_notation, linear=lambda pos: SCALED, scalar_factor=(0, 1), affine=((0,), (1,)),
      targets={"onnx": lambda e, a, at, s: e.op("Mul", *a)})
defop("div", 2, bcast, lambda a, at, s: bin_(a[0], "/", a[1]),
      lambda g, ans, x, y, **at: g / y,
      lambda g, ans, x, y, **at: -(g * ans) / y,          # d(x/y)/dy = -x/y² = -ans/y
      broadcasts=True, user=False, kink=None, jacobian=("diag(1/{y})", "−diag({x}/{y}²)"),
      floats=True, keeps_mask=True, zero_unsafe=(1, "division by"), zero_from=(0,),
      fold=_binary_fold(lambda a, b: a / b,
                        (lambda lx, ly: ly == 1, "x")),             # x/1 -> x
      identities=(((1, 1), lambda b, x, y: x),),                    # x / 1 -> x
      notation=lambda t: (f"{t.p(0, PRODUCT)}/{t.p(1, ATOM)}", PRODUCT), scalar_factor=(1,),
      affine=((0,),),
      targets={"onnx": lambda e, a, at, s: e.op("Div", *a)})
defop("pow", 2, bcast, lambda a, at, s: bin_(a[0], "**", a[1]),
      lambda g, ans, x, y, **at: g * y * x ** (y - 1),
      lambda g, ans, x, y, **at: g * ans * call("log", x),
      broadcasts=True, user=False, kink=None, zero_from=(0,),
      jacobian=(_pow_jacobian, "diag(log({x}) {ans})"),
      fold=_binary_fold(lambda a, b: a ** b,
                        (lambda lx, ly: ly == 1, "x")),             # x**1 -> x
      identities=(((1, 1), lambda b, x, y: x),),                    # x ** 1 -> x
      notation=_pow_notation, targets={"onnx": lambda e, a, at, s: e.op("Pow", *a)})
defop("maximum", 2, bcast, lambda a, at, s: np_("maximum", *a),
      # subgradient at ties: all of g goes to the first argument
      lambda g, ans, x, y, **at: g * call("ge", x, y),
      lambda g, ans, x, y, **at: g * call("lt", x, y),
      broadcasts=True, kink=_kink_at_ties, jacobian=("diag([{x} >= {y}])", "diag([{x} < {y}])"),
      doc="elementwise maximum (at ties the gradient goes to the first argument)",
      targets={"onnx": lambda e, a, at, s: e.op("Max", *a)})
defop("minimum", 2, bcast, lambda a, at, s: np_("minimum", *a),
      lambda g, ans, x, y, **at: g * call("le", x, y),
      lambda g, ans, x, y, **at: g * call("gt", x, y),
      broadcasts=True, kink=_kink_at_ties, jacobian=("diag([{x} <= {y}])", "diag([{x} > {y}])"),
      zero_from=(0, 1),
      doc="elementwise minimum (at ties the gradient goes to the first argument)",
      targets={"onnx": lambda e, a, at, s: e.op("Min", *a)})

# comparisons: masks for the backward pass, no derivative of their own
for _name, _sym, _onnx in (("gt", ">", "Greater"), ("ge", ">=", "GreaterOrEqual"),
                           ("lt", "<", "Less"), ("le", "<=", "LessOrEqual")):
    defop(_name, 2, bcast, lambda a, at, s, _sym=_sym: bin_(a[0], _sym, a[1]), None, None,
          user=False, constant=True, mask=True, fresh=False, floats=False, kink=_kink_at_ties,
          targets={"onnx": lambda e, a, at, s, _onnx=_onnx: e.op(_onnx, *a)})
defop("step", 1, same, lambda a, at, s: bin_(a[0], ">", const(0)), None, user=False, constant=True,
      mask=True, fresh=False, floats=False, kink=_kink_at_zero,
      targets={"onnx": lambda e, a, at, s: e.op("Greater", a[0], e.lit(0))})

# elementwise, one argument

defop("neg", 1, same, lambda a, at, s: ast.UnaryOp(ast.USub(), a[0]),
      lambda g, ans, x, **at: -g, user=False, kink=None, jacobian=("−I",), fold=_neg_fold,
      zero_from=(0,),
      identities=(((0, "neg"), lambda b, x: _arg(b.m, x)),),       # --x -> x
      notation=lambda t: (f"−{t.p(0, PRODUCT)}", SUM), linear=lambda pos: -1, affine=((0,),),
      targets={"onnx": lambda e, a, at, s: e.op("Neg", a[0])})
defop("exp", 1, same, lambda a, at, s: np_("exp", a[0]),
      lambda g, ans, x, **at: g * ans, kink=None, jacobian=("diag(exp({x}))",), floats=True,
      zero_able=True,       # (it underflows)
      zero_help="work with the exponent: log(exp(a)) = a, sqrt(exp(a)) = exp(a / 2)",
      targets={"onnx": lambda e, a, at, s: e.op("Exp", a[0])})
defop("log", 1, same, lambda a, at, s: np_("log", a[0]),
      lambda g, ans, x, **at: g / x, kink=None, jacobian=("diag(1/{x})",), floats=True,
      zero_unsafe=(0, "log of"), fuse=_fuse_log,
      targets={"onnx": lambda e, a, at, s: e.op("Log", a[0])})
defop("tanh", 1, same, lambda a, at, s: np_("tanh", a[0]),
      lambda g, ans, x, **at: g * (1 - ans * ans), kink=None, jacobian=("diag(1 − tanh²({x}))",),
      floats=True, teach_name="h", targets={"onnx": lambda e, a, at, s: e.op("Tanh", a[0])})
# sigmoid(x) = (1 + tanh(x/2)) / 2: stable for large |x|, one ufunc pass
defop("sigmoid", 1, same,
      lambda a, at, s: bin_(const(0.5), "+", bin_(const(0.5), "*", np_("tanh", bin_(const(0.5), "*", a[0])))),
      lambda g, ans, x, **at: g * ans * (1 - ans), kink=None,
      jacobian=("diag(σ({x})(1 − σ({x})))",), teach_name="h", floats=True, zero_able=True,
      probability=True,
      zero_help="for log(sigmoid(s)) write −softplus(−s) (gdsl rewrites it so), or use bce(s, y)",
      targets={"onnx": _onnx_sigmoid})
defop("relu", 1, same, lambda a, at, s: np_("maximum", a[0], const(0)),
      # subgradient at 0 is 0
      # relu(x) > 0 exactly where x > 0: the mask reads the result, so x can die (in place)
      lambda g, ans, x, **at: g * call("step", ans), kink=_kink_at_zero,
      jacobian=("diag([{x} > 0])",), zero_able=True, teach_name="h",
      targets={"onnx": lambda e, a, at, s: e.op("Relu", a[0])},
      doc="max(x, 0); its gradient at 0 is taken as 0")
defop("abs", 1, same, lambda a, at, s: np_("abs", a[0]),
      lambda g, ans, x, **at: g * call("signum", x), kink=_kink_at_zero,
      jacobian=("diag(sign({x}))",), zero_able=True,
      doc="absolute value; its gradient at 0 is taken as 0",
      targets={"onnx": lambda e, a, at, s: e.op("Abs", a[0])})
defop("sqrt", 1, same, lambda a, at, s: np_("sqrt", a[0]),
      lambda g, ans, x, **at: 0.5 * g / ans, kink=None, jacobian=("diag(1/(2√{x}))",),
      floats=True, zero_unsafe=(0, "sqrt of"),
      notation=lambda t: (f"√{t.p(0, ATOM)}", ATOM),
      targets={"onnx": lambda e, a, at, s: e.op("Sqrt", a[0])})
defop("square", 1, same, lambda a, at, s: np_("square", a[0]),
      lambda g, ans, x, **at: 2 * g * x, kink=None, jacobian=("diag(2{x})",), zero_able=True,
      notation=lambda t: (t.p(0, ATOM) + "²", ATOM),
      targets={"onnx": lambda e, a, at, s: e.op("Mul", a[0], a[0])})
defop("sign", 1, same, lambda a, at, s: np_("sign", a[0]), None, kink=_kink_at_zero,
      doc="elementwise sign (not differentiable)",
      targets={"onnx": lambda e, a, at, s: e.op("Sign", a[0])})
# sign as the backward pass uses it (abs', mae'): piecewise constant, so a second derivative
# through it is 0; a model's own sign stays not differentiable (refused on the loss's path)
defop("signum", 1, same, lambda a, at, s: np_("sign", a[0]), None, user=False, constant=True,
      kink=_kink_at_zero, targets={"onnx": lambda e, a, at, s: e.op("Sign", a[0])})
# softplus(x) = log(1 + exp(x)), as log(exp(0) + exp(x)): no overflow for large x
defop("softplus", 1, same, lambda a, at, s: np_("logaddexp", const(0.0), a[0]),
      lambda g, ans, x, **at: g * call("sigmoid", x), kink=None, jacobian=("diag(σ({x}))",),
      floats=True, zero_able=True, doc="log(1 + exp(x)), computed without overflow",
      targets={"onnx": _onnx_softplus})
# the chain-rule slides' sin(x²): d sin(y)/dy = cos(y)
defop("sin", 1, same, lambda a, at, s: np_("sin", a[0]),
      lambda g, ans, x, **at: g * call("cos", x), kink=None, jacobian=("diag(cos({x}))",),
      floats=True, zero_able=True, doc="elementwise sine (of radians)",
      targets={"onnx": lambda e, a, at, s: e.op("Sin", a[0])})
defop("cos", 1, same, lambda a, at, s: np_("cos", a[0]),
      lambda g, ans, x, **at: -(g * call("sin", x)), kink=None, jacobian=("−diag(sin({x}))",),
      floats=True, zero_able=True, doc="elementwise cosine (of radians)",
      targets={"onnx": lambda e, a, at, s: e.op("Cos", a[0])})

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
      _mm_vjp_x, _mm_vjp_y, user=False, kink=None,
      # z = Wx = (I ⊗ xᵀ) vec(W); one output (s = wᵀx): I₁ ⊗ xᵀ = xᵀ; one example: W ⊗ I₁ = W
      jacobian=(lambda t: f"{t.y}ᵀ" if t.rows("ans") == 1 else f"I ⊗ {t.y}ᵀ",
                lambda t: t.x if t.cols("ans") == 1 else f"{t.x} ⊗ I"),
      teach_name=lambda a: "z" if a.kind(0) == "param" else None, units="dense",
      flops=_matmul_flops, notation=lambda t: (juxt(t.p(0, ATOM), t.p(1, ATOM)), PRODUCT),
      grad_form=("{g}ᵀ{y}ᵀ", "{g}{x}"), affine=((0,), (1,)),
      targets={"numba": lambda k, a, at, s: k.dot(*a),
               "onnx": lambda e, a, at, s: _onnx_matmul(e, *a, *s)})       # z = Wx: ∂J/∂W = gᵀxᵀ, ∂J/∂x = gW
# ∂<g, x @ y>/∂x and /∂y of vectors: bilinear in (g, y) and (g, x), so with a cotangent c,
# <c, mm_grad_x(g, x, y)> = <g, c @ y> and <c, mm_grad_y(g, x, y)> = <g, x @ c>
defop("mm_grad_x", 3, lambda dims, s, at: s[1], lambda a, at, s: helper("_mm_grad_x", *a),
      lambda c, ans, g, x, y, **at: c @ y, nothing,
      lambda c, ans, g, x, y, **at: _mm_vjp_y(g, None, c, y), kink=None,
      user=False, helpers=("_mm_grad_x",), targets={"numba": _nb_mm_grad_x,
                                                    "onnx": _onnx_mm_grad_x})
defop("mm_grad_y", 3, lambda dims, s, at: s[2], lambda a, at, s: helper("_mm_grad_y", *a),
      lambda c, ans, g, x, y, **at: x @ c,
      lambda c, ans, g, x, y, **at: _mm_vjp_x(g, None, x, c), nothing, kink=None,
      user=False, helpers=("_mm_grad_y",), targets={"numba": _nb_mm_grad_y,
                                                    "onnx": _onnx_mm_grad_y})
def _transpose_xp(x, shape):
    # the standard's x.T is for two axes only: a vector or a scalar is its own transpose,
    # other ranks (or a rank known only at call time) reverse their axes
    if shape is not None and len(shape) == 2:
        return attr(x, "T")
    if shape is not None and len(shape) < 2:
        return x
    return helper("_transpose", x)


defop("transpose", 1, transposed, lambda a, at, s: attr(a[0], "T"),
      lambda g, ans, x, **at: g.T, kink=None,
      # vec(wᵀ) = vec(w) for a vector: its Jacobian is I
      jacobian=(lambda t: "I" if t.vector("x") else f"the permutation vec({t.x}) → vec({t.x}ᵀ)",),
      units="one", flops=0, fresh=False, zero_from=(0,), affine=((0,),),
      fold=_transpose_fold,
      identities=(((0, "transpose"), lambda b, x: _arg(b.m, x)),),   # (xᵀ)ᵀ -> x
      targets={"numba": lambda k, a, at, s: k.transpose(a[0]),
               "array_api": lambda a, at, s: _transpose_xp(a[0], s[0]),
               "onnx": lambda e, a, at, s: e.op("Transpose", a[0])},
      notation=lambda t: (t.p(0, ATOM) + "ᵀ", ATOM))

# slices along axis 0: x[t] of a model (the loop `for t in 1..T` reads a sequence so), and its
# vjp, g put back at that slice of zeros shaped like x. `index` counts from 0 here; the model
# text counts from 1, as the lecture's x_1 ... x_T (gdsl.passes.resolve turns one into the other)

def _take_shape(dims, s, at):
    x = s[0]
    if x is None:
        return None
    if len(x) == 0:
        raise Mismatch("a scalar has no slices to index")
    size = dims.resolve(x[0])
    if isinstance(size, int) and isinstance(at["index"], int) and not 0 <= at["index"] < size:
        raise Mismatch(f"index {at['index'] + 1} is out of range: axis 0 has {size} slices, "
                       f"1..{size}")
    return tuple(x[1:])


def _onnx_take_grad(e, a, at, s):
    # where(slice number == index, g, 0), as _take_grad
    g, x = a
    numbers = e.op("Range", e.int(0), e.op("Gather", e.op("Shape", x), e.int(0)), e.int(1))
    picked = e.op("Equal", numbers, e.int(at["index"]))
    if len(s[1]) > 1:
        picked = e.op("Unsqueeze", picked, e.ints(*range(1, len(s[1]))))
    return e.op("Where", picked, e.op("Unsqueeze", g, e.ints(0)), e.lit(0))


def _slice_text(at) -> str:
    # the index as the model writes it: from 1, or (a loop drawn folded) `t`
    index = at["index"]
    return str(index + 1) if isinstance(index, int) else index


def _take_emit(a, at, s):
    return ast.Subscript(a[0], const(at["index"]), LOAD)


defop("take", 1, _take_shape, _take_emit,
      lambda g, ans, x, **at: call("take_grad", g, x, **at),
      keywords={"index": 0}, user=False, kink=None, fresh=False, flops=0, zero_from=(0,),
      affine=((0,),), jacobian=(lambda t: f"e_{{{_slice_text(t.attrs)}}}ᵀ ⊗ I",),
      notation=lambda t: (f"{t.p(0, ATOM)}[{_slice_text(t.attrs)}]", ATOM),
      doc="the slice x[t] along axis 0 (a view)",
      targets={"numba": lambda k, a, at, s: k.slice(a[0], at["index"]),
               # (the standard indexes every axis: x[i, ...])
               "array_api": lambda a, at, s: ast.Subscript(
                   a[0], ast.Tuple([const(at["index"]), ast.Constant(...)], LOAD), LOAD),
               "onnx": lambda e, a, at, s: e.op("Gather", a[0], e.int(at["index"]), axis=0)})
# linear in g: its adjoint is the slice again
defop("take_grad", 2, like_second,
      lambda a, at, s: helper("_take_grad", *a, const(at["index"])),
      lambda c, ans, g, x, **at: call("take", c, **at), nothing,
      keywords={"index": 0}, user=False, kink=None, helpers=("_take_grad",), flops=0,
      shape_only=(1,), floats=True, affine=((0,),),
      targets={"numba": lambda k, a, at, s: k.call("_take_grad", *a, shape=s[1],
                                                   extra=(const(at["index"]),)),
               "onnx": _onnx_take_grad})

# reductions

_RED = {"axis": None, "keepdims": False}


def _sum_vjp(g, ans, x, **at):
    return call("expand_to", g, x, **at)


def _mean_vjp(g, ans, x, **at):
    return call("expand_to", g / call("count", x, axis=at.get("axis")), x, **at)


def _per_input(sizes, out, shapes):
    return sizes[0]


defop("sum", 1, reduced, lambda a, at, s: meth(a[0], "sum", **reduce_kw(at)), _sum_vjp,
      keywords=_RED, kink=None, jacobian=("1ᵀ",), flops=_per_input, keeps_mask=True,
      affine=((0,),),
      targets={"numba": _nb_reduce(SUM_LOOP),
               "onnx": _onnx_reduce("ReduceSum")})
defop("mean", 1, reduced, lambda a, at, s: meth(a[0], "mean", **reduce_kw(at)), _mean_vjp,
      keywords=_RED, kink=None, jacobian=("1ᵀ/n",), flops=_per_input, floats=True,
      averages=True, affine=((0,),),
      keeps_mask=True, targets={"numba": _nb_mean,
                                "onnx": _onnx_reduce("ReduceMean")})
defop("max", 1, reduced, lambda a, at, s: meth(a[0], "max", **reduce_kw(at)),
      lambda g, ans, x, **at: call("max_grad", g, x, ans, **at),
      keywords=_RED, kink=_kink_top_two, jacobian=("[{x} = max {x}]ᵀ",), helpers=("_max_grad",),
      flops=_per_input, doc="maximum along an axis; ties share the gradient equally",
      targets={"numba": _nb_reduce(MAX_LOOP),
               "onnx": _onnx_reduce("ReduceMax")})
defop("max_grad", 3, like_second,
      lambda a, at, s: helper("_max_grad", *a, const(at.get("axis")), const(bool(at.get("keepdims")))),
      lambda c, ans, g, x, m, **at: call("max_pick", c, x, m, **at), nothing, nothing, kink=None,
      user=False, keywords=_RED, helpers=("_max_grad",), floats=True,
      targets={"numba": _nb_max_grad,
               "onnx": _onnx_max_grad})
defop("argmax", 1, reduced, lambda a, at, s: np_("argmax", a[0], axis=at.get("axis", 0)), None,
      fresh=False,
      keywords={"axis": 0}, doc="index of the largest entry along an axis (not differentiable)", floats=False,
      notation=lambda t: (f"argmax_{{j}} {t.p(0, ATOM)}_{{j}}", ATOM),    # g(x) = argmax_j s_j
      targets={"numba": lambda k, a, at, s: k.argmax(a[0], at.get("axis", 0)),
               "onnx": _onnx_argmax})


# the adjoint of max_grad: c summed over each max's ties, shared as max_grad shares g (the
# second derivative of max is 0, but its gradient's own gradient in g is this)
defop("max_pick", 3, lambda dims, s, at: s[2],
      lambda a, at, s: helper("_max_pick", *a, const(at.get("axis")), const(bool(at.get("keepdims")))),
      lambda c, ans, h, x, m, **at: call("max_grad", c, x, m, **at), nothing, nothing, kink=None,
      user=False, keywords=_RED, helpers=("_max_pick",), floats=True)


# convolution and pooling: images [C, H, W, n] (channels, height, width, examples: the
# examples along the last axis, as everywhere in gdsl), kernels [F, C, kh, kw]

_CONV = {"stride": 1, "padding": 0}
_CONV_LEAST = {"stride": 1, "padding": 0}      # (whole numbers, at least these)


def _spatial(dims, s, what, first=1):
    """The height and width of images (axes 1, 2) or kernels (2, 3) s, as numbers."""
    hw = [dims.resolve(d) for d in s[first:first + 2]]
    if not all(isinstance(d, int) for d in hw):
        raise Mismatch(f"{what} must have a height and width known when compiled, not "
                       f"{sh.show_shape(s)}: declare them as numbers, e.g. x[1, 8, 8, n]")
    return hw


def conv_shape(dims, s, at):
    x, K = s
    if x is None or K is None:
        return None
    if len(x) != 4:
        raise Mismatch(f"conv2d takes images [C, H, W, n] (channels, height, width, examples), "
                       f"not a {len(x)}-D value")
    if len(K) != 4:
        raise Mismatch(f"conv2d takes kernels [F, C, kh, kw] (filters, channels, height, "
                       f"width), not a {len(K)}-D value")
    dims.equal(K[1], x[0], "channels of the kernels and of the images")
    (H, W), (kh, kw) = _spatial(dims, x, "the images"), _spatial(dims, K, "the kernels", 2)
    stride, padding = at["stride"], at["padding"]
    if H + 2 * padding < kh or W + 2 * padding < kw:
        raise Mismatch(f"kernels of {kh}x{kw} do not fit in images of {H}x{W} padded by "
                       f"{padding}")
    return (dims.resolve(K[0]), (H + 2 * padding - kh) // stride + 1,
            (W + 2 * padding - kw) // stride + 1, dims.resolve(x[3]))


def pool_shape(dims, s, at):
    x, size = s[0], at["size"]
    if x is None:
        return None
    if len(x) != 4:
        raise Mismatch(f"maxpool takes images [C, H, W, n] (channels, height, width, "
                       f"examples), not a {len(x)}-D value")
    H, W = _spatial(dims, x, "the images")
    if H < size or W < size:
        raise Mismatch(f"windows of {size}x{size} do not fit in images of {H}x{W}")
    return (dims.resolve(x[0]), H // size, W // size, dims.resolve(x[3]))


def flat_shape(dims, s, at):
    x = s[0]
    if x is None:
        return None
    if len(x) < 2:
        raise Mismatch(f"flatten takes a value with an examples axis (the last), not a "
                       f"{len(x)}-D value")
    lead = [dims.resolve(d) for d in x[:-1]]
    if len(lead) == 1:
        return (lead[0], dims.resolve(x[-1]))
    if not all(isinstance(d, int) for d in lead):
        raise Mismatch(f"flatten needs the sizes of every axis but the last known when "
                       f"compiled, not {sh.show_shape(x)}")
    return (int(np.prod(lead)), dims.resolve(x[-1]))


def unflat_shape(dims, s, at):
    x, h, w = s[0], at["height"], at["width"]
    if x is None:
        return None
    if len(x) != 2:
        raise Mismatch(f"unflatten takes features [F, n] (features, examples), not a "
                       f"{len(x)}-D value")
    F = dims.resolve(x[0])
    if not isinstance(F, int):
        raise Mismatch(f"unflatten needs the number of features known when compiled, not "
                       f"{F}: declare it as a number, e.g. x[64, n]")
    if F % (h * w):
        raise Mismatch(f"{F} features do not make images of {h}x{w} ({F} is not a multiple "
                       f"of {h * w})")
    return (F // (h * w), h, w, dims.resolve(x[1]))


def _conv_emit(name):
    return lambda a, at, s: helper(name, *a, const(at["stride"]), const(at["padding"]))


def _pool_emit(name):
    return lambda a, at, s: helper(name, *a, const(at["size"]))


def _conv_flops(sizes, out, shapes):
    # a multiply and an add per kernel entry of each output (of each entry of g, backward)
    K = shapes[1] if len(shapes) == 2 else shapes[2]
    g = out if len(shapes) == 2 else sizes[0]
    return 2 * g * int(np.prod(K[1:])) if K else 0


def _kink_pool(args, at):
    # ties for the largest entry of a window: the top two of each window apart
    x, size = np.asarray(args[0], dtype=np.float64), at["size"]
    C, H, W = x.shape[:3]
    Hp, Wp = H // size, W // size
    w = x[:, :Hp * size, :Wp * size].reshape(C, Hp, size, Wp, size, *x.shape[3:])
    w = np.moveaxis(w, (2, 4), (-2, -1))          # [C, H', W', n, size, size]
    return _kink_top_two([w.reshape(*w.shape[:-2], size * size)], {"axis": -1})


def _conv_notation(t):
    # K ⋆ x, the cross-correlation that deep learning calls convolution
    at = {k: v for k, v in t.attrs.items() if _CONV.get(k) != v}
    extra = "".join(f", {k}={v}" for k, v in sorted(at.items()))
    return f"{t.p(1, ATOM)} ⋆ {t.p(0, ATOM)}" + (f" ({extra[2:]})" if extra else ""), PRODUCT


# y = conv2d(x, K) is linear in x and in K: y = K̃ im2col(x), with K̃ the kernels as a matrix
# [F, C kh kw] and im2col(x) the windows of x as columns; so, as for z = Wx, ∂J/∂K is g
# times the windows and ∂J/∂x is K̃ᵀ g put back where each window came from
defop("conv2d", 2, conv_shape, _conv_emit("_conv2d"),
      lambda g, ans, x, K, **at: call("conv2d_grad_x", g, x, K, **at),
      lambda g, ans, x, K, **at: call("conv2d_grad_K", g, x, K, **at),
      keywords=_CONV, whole=_CONV_LEAST, kink=None, helpers=("_conv2d", "_windows"),
      flops=_conv_flops,
      jacobian=("({y} ⊗ I) ∂im2col({x})", "I ⊗ im2col({x})ᵀ"), notation=_conv_notation,
      affine=((0,), (1,)),
      doc="2-D convolution (cross-correlation, as in deep learning) of images x [C, H, W, n] "
          "with kernels K [F, C, kh, kw]: [F, H', W', n]; stride= and padding= (zeros) as in "
          "PyTorch, H' = (H + 2 padding − kh) // stride + 1",
      targets={"numba": lambda k, a, at, s: _nb_conv(k, "_nb_conv2d", a, at, conv_shape(
                   sh.Dims(), s, at)),
               "onnx": _onnx_conv2d})
# ∂<g, conv2d(x, K)>/∂x and /∂K: bilinear in (g, K) and (g, x); with a cotangent c,
# <c, conv2d_grad_x(g, x, K)> = <conv2d(c, K), g> and <c, conv2d_grad_K(g, x, K)> =
# <conv2d(x, c), g>; x and K are read for their shape where they do not move the result
defop("conv2d_grad_x", 3, lambda dims, s, at: s[1], _conv_emit("_conv2d_grad_x"),
      lambda c, ans, g, x, K, **at: call("conv2d", c, K, **at), nothing,
      lambda c, ans, g, x, K, **at: call("conv2d_grad_K", g, c, K, **at),
      keywords=_CONV, whole=_CONV_LEAST, kink=None, user=False, helpers=("_conv2d_grad_x",), shape_only=(1,),
      flops=_conv_flops, floats=True,
      targets={"numba": lambda k, a, at, s: _nb_conv(k, "_nb_conv2d_grad_x", a, at, s[1]),
               "onnx": _onnx_conv2d_grad_x})
defop("conv2d_grad_K", 3, lambda dims, s, at: s[2], _conv_emit("_conv2d_grad_K"),
      lambda c, ans, g, x, K, **at: call("conv2d", x, c, **at),
      lambda c, ans, g, x, K, **at: call("conv2d_grad_x", g, x, c, **at), nothing,
      keywords=_CONV, whole=_CONV_LEAST, kink=None, user=False, helpers=("_conv2d_grad_K", "_windows"),
      shape_only=(2,), flops=_conv_flops, floats=True,
      targets={"numba": lambda k, a, at, s: _nb_conv(k, "_nb_conv2d_grad_K", a, at, s[2]),
               "onnx": _onnx_conv2d_grad_K})

_POOL = {"size": 2}
_POOL_LEAST = {"size": 1}
defop("maxpool", 1, pool_shape, _pool_emit("_maxpool"),
      lambda g, ans, x, **at: call("maxpool_grad", g, x, ans, **at),
      keywords=_POOL, whole=_POOL_LEAST, kink=_kink_pool, helpers=("_maxpool",), flops=_per_input,
      jacobian=("[{x} = max of its window]ᵀ",),
      doc="the largest entry of each size x size window of images x [C, H, W, n] (windows "
          "side by side; rows and columns left over are dropped): [C, H // size, W // size, n]; "
          "ties share the gradient equally",
      targets={"numba": lambda k, a, at, s: _nb_pool(k, "_nb_maxpool", a, at,
                                                     pool_shape(sh.Dims(), s, at)),
               "onnx": _onnx_maxpool})
# g to the entries that are the max of their window, shared among ties (as max_grad), and
# its adjoint: c summed over each window's ties (as max_pick)
defop("maxpool_grad", 3, like_second, _pool_emit("_maxpool_grad"),
      lambda c, ans, g, x, m, **at: call("maxpool_pick", c, x, m, **at), nothing, nothing,
      kink=None, user=False, keywords=_POOL, whole=_POOL_LEAST, helpers=("_maxpool_grad",), floats=True,
      targets={"numba": lambda k, a, at, s: _nb_pool(k, "_nb_maxpool_grad", a, at, s[1]),
               "onnx": _onnx_maxpool_grad})
defop("maxpool_pick", 3, lambda dims, s, at: s[2], _pool_emit("_maxpool_pick"),
      lambda c, ans, h, x, m, **at: call("maxpool_grad", c, x, m, **at), nothing, nothing,
      kink=None, user=False, keywords=_POOL, whole=_POOL_LEAST, helpers=("_maxpool_pick",), floats=True,
      targets={"numba": lambda k, a, at, s: _nb_pool(k, "_nb_maxpool_pick", a, at, s[2]),
               "onnx": _onnx_maxpool_pick})

# reshapes between features [F, n] and images [C, H, W, n] (C order, examples last): the
# entries move, their values do not, so the gradient is g reshaped back
defop("flatten", 1, flat_shape,
      lambda a, at, s: np_("reshape", a[0], ast.Tuple([const(-1), _last_dim(a[0])], LOAD)),
      lambda g, ans, x, **at: call("reshape_to", g, x), kink=None, flops=0, fresh=False,
      zero_from=(0,), affine=((0,),),
      jacobian=(lambda t: f"the permutation vec({t.x}) → vec({t.ans})",),
      doc="every axis but the examples axis (the last) made one: images [C, H, W, n] as "
          "features [C·H·W, n], in C order",
      targets={"numba": lambda k, a, at, s: _nb_reshape(k, a[0], flat_shape(sh.Dims(), s, at)),
               "onnx": lambda e, a, at, s: _onnx_reshape(e, a[0], (-1,))})
defop("unflatten", 1, unflat_shape,
      lambda a, at, s: np_("reshape", a[0], ast.Tuple(
          [const(-1), const(at["height"]), const(at["width"]), _last_dim(a[0])], LOAD)),
      lambda g, ans, x, **at: call("reshape_to", g, x), kink=None, flops=0, fresh=False,
      keywords={"height": None, "width": None}, whole={"height": 1, "width": 1}, zero_from=(0,), affine=((0,),),
      jacobian=(lambda t: f"the permutation vec({t.x}) → vec({t.ans})",),
      doc="features [F, n] as images [F / (height·width), height, width, n] (C order): "
          "unflatten(x, height=8, width=8) makes the 64 pixels of a digit an 8x8 image",
      targets={"numba": lambda k, a, at, s: _nb_reshape(k, a[0],
                                                        unflat_shape(sh.Dims(), s, at)),
               "onnx": lambda e, a, at, s: _onnx_reshape(e, a[0],
                                                         (-1, at["height"], at["width"]))})
# g reshaped to the shape of x (the gradient of a reshape); its adjoint reshapes back
defop("reshape_to", 2, like_second, lambda a, at, s: np_("reshape", a[0], attr(a[1], "shape")),
      lambda c, ans, g, x, **at: call("reshape_to", c, g), nothing, kink=None, user=False,
      flops=0, fresh=False, shape_only=(1,),
      targets={"numba": lambda k, a, at, s: _nb_reshape(k, a[0], s[1]),
               "onnx": lambda e, a, at, s: e.op("Reshape", a[0], e.op("Shape", a[1]))})


def _expand_vjp(c, ans, g, x, **at):
    # back over the broadcast axes: the reduced ones (of sum, mean), or any (of sum_to)
    if at.get("axis") is None and g.shape != ():
        return c.b.unbroadcast(c, g)
    return call("sum", c, **at)


def _expand_emit(a, at, s):
    g, x = a
    if s[0] == ():      # a number (the loss's seed 1.0, 1/n of a mean) takes x's dtype: a
        g = np_("asarray", g, attr(x, "dtype"))     # float64 array would promote float32 ones
    if at.get("axis") is not None and not at.get("keepdims"):
        g = np_("expand_dims", g, const(at["axis"]))
    return np_("broadcast_to", g, attr(x, "shape"))


def _expand_xp(a, at, s):
    # x's shape may be unknown until computed (Dask): the target's helpers put the axis back
    # and broadcast to x's shape then
    g, x = a
    if at.get("axis") is not None and not at.get("keepdims"):
        g = helper("_expand_dims", g, const(at["axis"]), attr(x, "ndim"))
    return helper("_broadcast_to", g, x)


# g of a reduced shape, broadcast back over the reduced axes (a view, nothing copied)
defop("expand_to", 2, like_second, _expand_emit,
      _expand_vjp, nothing, user=False, keywords=_RED, flops=0,
      fresh=False, readonly=True, shape_only=(1,), kink=None, targets={"numba": _nb_expand,
                                                        "array_api": _expand_xp,
                                                        "onnx": _onnx_expand_to})


def _count_emit(a, at, s):
    axis, _shape = at.get("axis"), s[0]
    if axis is None:
        return attr(a[0], "size")
    return ast.Subscript(attr(a[0], "shape"), const(axis), LOAD)


defop("count", 1, scalar, _count_emit, None, user=False, keywords={"axis": None}, constant=True,
      flops=0, shape_only=(0,), floats=False,
      targets={"numba": lambda k, a, at, s: k.count(a[0], at.get("axis")),
               "onnx": lambda e, a, at, s: e.count(a[0], s[0], at.get("axis"))})


def _examples_emit(a, at, s):
    # examples are every axis but the class axis: n = p.shape[1] for a C x n matrix
    if s[0] is not None and len(s[0]) == 2:
        return ast.Subscript(attr(a[0], "shape"), const(1), LOAD)
    return attr(ast.Subscript(a[0], const(0), LOAD), "size")


defop("examples", 1, scalar, _examples_emit, None, user=False, constant=True, flops=0,
      shape_only=(0,), floats=False,
      targets={"numba": _nb_examples,
               "onnx": lambda e, a, at, s: _onnx_examples(e, a[0], s[0])})


def _sum_to_emit(a, at, s):
    return helper("_sum_to", a[0], attr(a[1], "shape"))


# g summed back to the shape of x where shapes are known only at call time
defop("sum_to", 2, like_second, _sum_to_emit,
      lambda c, ans, g, x, **at: call("expand_to", c, g), nothing, kink=None,
      user=False, helpers=("_sum_to",), fresh=False,
      shape_only=(1,), targets={"onnx": _onnx_sum_to})
defop("zeros_like", 1, same, lambda a, at, s: np_("zeros_like", a[0]), None, user=False,
      constant=True, shape_only=(0,), floats=True,
      targets={"numba": lambda k, a, at, s: k.map(lambda: const(0.0), shape=s[0]),
               "onnx": _onnx_zeros_like})

# softmax and losses: classes along axis 0


def _softmax_vjp(g, ans, x, **at):
    # d softmax: p * (g - sum(g * p))
    return ans * (g - call("sum", g * ans, axis=at["axis"], keepdims=True))


def _logsoftmax_vjp(g, ans, x, **at):
    # d logsoftmax: g - softmax(x) * sum(g)
    return g - call("softmax", x, axis=at["axis"]) * call("sum", g, axis=at["axis"], keepdims=True)


defop("softmax", 1, along_axis, lambda a, at, s: helper("_softmax", a[0], axis=at["axis"]),
      _softmax_vjp, keywords={"axis": 0}, helpers=("_softmax",), flops=4, kink=None,
      jacobian=("diag({ans}) − {ans}{ans}ᵀ",), teach_name="p", units="one",
      doc="exp(s) / 1ᵀexp(s) along an axis (stable)",
      floats=True, zero_able=True,
      zero_help="gdsl computes xent(softmax(s), y) and log(softmax(s)) stably unless -O0 "
                "turns its fusions off: compile without -O0, or write logsoftmax(s)",
      targets={"numba": _nb_softmax,
               "onnx": _onnx_softmax})
defop("logsoftmax", 1, along_axis, lambda a, at, s: helper("_logsoftmax", a[0], axis=at["axis"]),
      _logsoftmax_vjp, keywords={"axis": 0}, helpers=("_logsoftmax",), flops=4, kink=None,
      jacobian=("I − 1softmax({x})ᵀ",), units="one",
      doc="log(softmax(s)) along an axis (stable)", floats=True,
      targets={"numba": _nb_logsoftmax,
               "onnx": _onnx_logsoftmax})



def _logsumexp_vjp(g, ans, x, **at):
    # d log Σ exp(x): softmax(x), with g broadcast back over the reduced axis
    return call("expand_to", g, x, **at) * call("softmax", x, axis=at["axis"])


defop("logsumexp", 1, reduced,
      lambda a, at, s: helper("_logsumexp", a[0], axis=at["axis"], keepdims=bool(at["keepdims"])),
      _logsumexp_vjp, keywords={"axis": 0, "keepdims": False}, helpers=("_logsumexp",), flops=4,
      kink=None, jacobian=("softmax({x})ᵀ",), floats=True,
      doc="log Σ exp(s) along an axis (classes: axis 0), computed without overflow",
      targets={"numba": _nb_logsumexp,
               "onnx": _onnx_logsumexp})


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


defop("xent", 2, loss_shape, lambda a, at, s: helper("_xent", *a), _xent_vjp, None,
      flops=lambda z, o, s: 3 * z[0], loss=True, labels=1, kink=None, metrics=("accuracy",),
      averages=True,
      helpers=("_xent", "_onehot"), jacobian=("−{y}ᵀ/({y}ᵀ{x})",),
      zero_unsafe=(0, "cross-entropy −log(yᵀp) of"), fuse=_fuse_xent,
      notation=lambda t: (f"−log({t.p(1, ATOM)}ᵀ{t.p(0, ATOM)})", SUM),
      # the slide's l = −log(yᵀp) typed literally (and as the sum of that one number)
      written=(("neg", ("log", ("matmul", ("transpose", 1), 0))),
               ("sum", ("neg", ("log", ("matmul", ("transpose", 1), 0))))),
      curve={"title": "Cross-entropy loss", "x": "p_{y}", "y": "−log(p_{y})", "range": (0.02, 1.0),
             "args": lambda t: ([[t], [1 - t]], [[1.0], [0.0]])},     # p = (p_y, 1 − p_y), y = 0
      doc="cross-entropy -log(yᵀp) of probabilities p [C, n] and labels (one-hot [C, n] or "
          "integers [n]), averaged over examples", floats=True, targets={"numba": _nb_xent,
                                                                         "onnx": _onnx_xent})
defop("xent_logits", 5, loss_shape, _xent_logits_emit,
      _xent_logits_vjp, None, None, None, None, user=False, caches=_xent_logits_caches, cached=3,
      shape_only=(0,), labels=1, kink=None, averages=True,
      flops=lambda z, o, s: 2 * z[0], jacobian=("softmax({x})ᵀ − {y}ᵀ",),
      notation=lambda t: (f"−log({t.p(1, ATOM)}ᵀsoftmax({t.text(0)}))", SUM),
      doc="cross-entropy of softmax(s) for labels Y whose columns sum to 1: "
          "Σ log Σ exp(s) − yᵀs over the examples, averaged; m, Z and Σ yᵀs are its caches", floats=True,
      targets={"numba": _nb_xent_logits,
               "onnx": _onnx_xent_logits})


def onehot_shape(dims, s, at):
    sh.labels_like(dims, s[1], s[0])
    return s[1]


def _label_name(names):
    """The lecture's Y for labels y (one-hot of y), else y_onehot."""
    label = names[0]
    if not label:
        return None
    return label.upper() if label.islower() and label.isalpha() else label + "_onehot"


defop("onehot", 2, onehot_shape, lambda a, at, s: helper("_onehot", *a), None, None, user=False,
      helpers=("_onehot",), constant=True, fresh=False, shape_only=(1,), floats=True,
      labels=0, scores=1, fold=_onehot_fold, hint=_label_name,
      targets={"numba": _nb_onehot,
               "onnx": lambda e, a, at, s: _onnx_onehot(e, a[0], a[1], s[1])})
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


SVM_JACOBIAN = "Σ_{j≠y} [{x}_{j} − {x}_{y} + 1 > 0](e_{j} − e_{y})ᵀ"    # _{...}: a subscript
defop("svm", 2, loss_shape, lambda a, at, s: helper("_svm", *a), _svm_vjp, None, loss=True,
      labels=1, kink=_kink_hinge, fuse=_fuse_svm, metrics=("accuracy",), averages=True,
      helpers=("_svm",), flops=lambda z, o, s: 5 * z[0], jacobian=(SVM_JACOBIAN,),
      curve={"title": "Multi-class SVM loss", "x": "s_{j} − s_{y}", "y": "max(0, s_{j} − s_{y} + 1)",
             "range": (-3.0, 2.0), "args": lambda t: ([[0.0], [t]], [[1.0], [0.0]])},
      doc="multi-class hinge loss Σ_{j≠y} max(0, s_j - s_y + 1), averaged over examples "
          "(subgradient 0 exactly at the hinge)", floats=True, targets={"numba": _nb_svm,
                                                                        "onnx": _onnx_svm})
defop("svm_margins", 2, margins_shape, lambda a, at, s: helper("_svm_margins", *a), None, None,
      user=False, helpers=("_svm_margins",), flops=5, floats=True, labels=1, kink=_kink_hinge,
      targets={"numba": _nb_svm_margins,
               "onnx": _onnx_svm_margins})
defop("svm_hinge", 3, loss_shape, _svm_hinge_emit,
      lambda g, ans, s, Y, M, **at: call("svm_grad", g, M, Y), None, None, user=False,
      caches=_svm_margins_caches, cached=1, shape_only=(0,), flops=lambda z, o, s: z[2],
      jacobian=(SVM_JACOBIAN,), labels=1, kink=_kink_hinge, averages=True,
      doc="multi-class hinge loss of scores s for one-hot labels Y, from its margins M "
          "(the cache): Σ M / n", floats=True, targets={"numba": _nb_svm_hinge,
                                                         "onnx": _onnx_svm_hinge})
# linear in the loss's cotangent g (a number): its adjoint is <c, svm_grad(1, M, Y)>
defop("svm_grad", 3, like_second, lambda a, at, s: helper("_svm_grad", *a),
      lambda c, ans, g, M, Y, **at: call("vdot", c, call("svm_grad", 1.0, M, Y)), nothing,
      nothing, kink=None, user=False, helpers=("_svm_grad",), flops=5, floats=True, targets={"numba": _nb_svm_grad,
                                                                                             "onnx": _onnx_svm_grad})
# Binary and regression losses: predictions (or logits) p and targets y of the same shape (or
# p [1, n] with y [n]), averaged over every entry, as scikit-learn's metrics and Keras average
# them. Their gradients divide by N, the entries of p - y; their teaching Jacobians are those
# of one example with one target, as the lecture's are for one example.

def _entries(r):
    return call("count", r)


def _bce_vjp_s(g, ans, s, y, **at):
    # d/ds mean(softplus(s) - y s) = (σ(s) - y) / N
    r = call("sigmoid", s) - y
    return r * (g / _entries(r))


def _bce_vjp_y(g, ans, s, y, **at):
    # d/dy = -s / N, in the shape s and y broadcast to (then summed back to y's)
    r = call("sigmoid", s) - y
    return call("expand_to", -(s * (g / _entries(r))), r)


def _bce_emit(a, at, s):
    # -[y log σ(s) + (1 - y) log(1 - σ(s))] = softplus(s) - y s, with softplus(s) as
    # log(exp(0) + exp(s)): finite for every s
    s_, y = a
    return meth(bin_(np_("logaddexp", const(0.0), s_), "-", bin_(y, "*", s_)), "mean")


def _mse_vjp_p(g, ans, p, y, **at):
    r = p - y               # d/dp mean((p - y)²) = 2 (p - y) / N
    return r * (2 * g / _entries(r))


def _mae_vjp_p(g, ans, p, y, **at):
    r = p - y               # d/dp mean(|p - y|) = sign(p - y) / N (0 where p = y)
    return call("signum", r) * (g / _entries(r))


def _huber_vjp_p(g, ans, p, y, **at):
    r = p - y               # the residual clipped to [-δ, δ], / N
    delta = at["delta"]
    return call("minimum", call("maximum", r, -delta), delta) * (g / _entries(r))


def _negated(rule):
    """The rule for y of a loss of p - y: the rule for p, negated."""
    return lambda g, ans, p, y, **at: -rule(g, ans, p, y, **at)


_TARGET_LOSS = {"loss": True, "target": 1, "broadcasts": True, "floats": True, "averages": True,
                "flops": lambda z, o, s: 3 * max(z[0], z[1])}
_REGRESSION = ("rmse", "mae", "r2")

defop("bce", 2, target_shape, _bce_emit, _bce_vjp_s, _bce_vjp_y, kink=None,
      metrics=("accuracy", "auc"), target_range=(0.0, 1.0),
      jacobian=("(σ({x}) − {y})ᵀ", "−{x}ᵀ"),
      doc="binary cross-entropy of logits s and targets y in 0..1, averaged: "
          "−[y log σ(s) + (1 − y) log(1 − σ(s))] = softplus(s) − y s, stable for any s",
      **_TARGET_LOSS, targets={"numba": _nb_bce,
                               "onnx": _onnx_bce})
defop("mse", 2, target_shape,
      lambda a, at, s: meth(np_("square", bin_(a[0], "-", a[1])), "mean"),
      _mse_vjp_p, _negated(_mse_vjp_p), kink=None, metrics=_REGRESSION,
      jacobian=("2({x} − {y})ᵀ", "−2({x} − {y})ᵀ"),
      doc="mean squared error of predictions p and targets y, averaged over every entry",
      **_TARGET_LOSS,
      targets={"numba": _nb_mse,
               "onnx": _onnx_mse})
defop("mae", 2, target_shape,
      lambda a, at, s: meth(np_("abs", bin_(a[0], "-", a[1])), "mean"),
      _mae_vjp_p, _negated(_mae_vjp_p), kink=_kink_at_ties, metrics=_REGRESSION,
      jacobian=("sign({x} − {y})ᵀ", "−sign({x} − {y})ᵀ"),
      doc="mean absolute error of predictions p and targets y (its gradient at p = y is 0)",
      **_TARGET_LOSS,
      targets={"numba": _nb_mae,
               "onnx": lambda e, a, at, s: e.reduce("ReduceMean", e.op("Abs", e.op("Sub", *a)))})
defop("huber", 2, target_shape,
      lambda a, at, s: helper("_huber", bin_(a[0], "-", a[1]), const(float(at["delta"]))),
      _huber_vjp_p, _negated(_huber_vjp_p), kink=_kink_huber, metrics=_REGRESSION,
      keywords={"delta": 1.0}, helpers=("_huber",),
      jacobian=("clip({x} − {y}, −δ, δ)ᵀ", "−clip({x} − {y}, −δ, δ)ᵀ"),
      doc="Huber loss of p − y, averaged: r²/2 where |r| ≤ delta, delta (|r| − delta/2) beyond "
          "(delta=1 by default): squared near the target, absolute far from it",
      **_TARGET_LOSS,
      targets={"numba": _nb_huber_loss,
               "onnx": _onnx_huber})

# a cache argument of xent_logits (no gradient flows through those), and the Σ_w <g_w, v_w>
# that the Hessian-vector product differentiates (np.vdot is not in the array API standard:
# Σ x y there)
defop("vdot", 2, scalar, lambda a, at, s: np_("vdot", *a),
      lambda c, ans, x, y, **at: c * y, lambda c, ans, x, y, **at: c * x, kink=None, user=False,
      targets={"numba": _nb_vdot,
               "array_api": lambda a, at, s: xp_("sum", bin_(a[0], "*", a[1])), "onnx": _onnx_vdot},
      flops=lambda z, o, s: 2 * z[0], doc="Σ x y over every entry (the yᵀs of the fused cross-entropy)")
defop("sqnorm", 1, scalar, lambda a, at, s: np_("vdot", a[0], a[0]),
      lambda g, ans, x, **at: x * (2 * g), kink=None, jacobian=("2{x}",),
      targets={"numba": _nb_sqnorm,
               "array_api": lambda a, at, s: xp_("sum", bin_(a[0], "*", a[0])),
               "onnx": lambda e, a, at, s: _onnx_vdot(e, [a[0], a[0]], at, s)},
      flops=lambda z, o, s: 2 * z[0], zero_able=True,
      notation=lambda t: (f"‖{t.text(0)}‖²", ATOM), teach_name="r",
      grad_form=("2{c}{x}",),             # r = ‖W‖²: ∂J/∂W = 2(∂J/∂r)W, ∂J/∂r a scalar
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
    "_logsumexp": '''
def _logsumexp(s, axis, keepdims):
    m = s.max(axis=axis, keepdims=True)
    out = m + np.log(np.exp(s - m).sum(axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)
''',
    "_xent": '''
def _xent(p, y):
    """Cross-entropy -log(yᵀp), averaged over the examples."""
    Y = _onehot(y, p)
    return -np.log((Y * p).sum(axis=0)).sum() / p[0].size
''',
    "_huber": '''
def _huber(r, delta):
    """Huber loss of residuals r, averaged: r²/2 within delta, delta (|r| - delta/2) beyond."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta)).mean()
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
    return g * mask / mask.sum(axis=axis, keepdims=True, dtype=x.dtype)
''',
    "_max_pick": '''
def _max_pick(h, x, m, axis, keepdims):
    """Σ h over the entries where x is its max, shared among ties: max_grad's adjoint."""
    mk = np.expand_dims(m, axis) if axis is not None and not keepdims else m
    mask = x == mk
    picked = (h * mask).sum(axis=axis, keepdims=True) / mask.sum(axis=axis, keepdims=True,
                                                                 dtype=x.dtype)
    return picked.reshape(np.shape(m))
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
    "_windows": '''
def _windows(x, kh, kw, stride, padding):
    """im2col's windows: x [C, H, W, n] padded with zeros, its kh x kw windows stride apart
    as a view [C, H', W', n, kh, kw] (copied into columns by the product that reads it)."""
    if padding:
        x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    w = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    return w[:, ::stride, ::stride]
''',
    "_conv2d": '''
def _conv2d(x, K, stride, padding):
    """y[f, i, j, n] = Σ_{c,a,b} K[f, c, a, b] x[c, s i + a, s j + b, n]: one BLAS product of
    the kernels [F, C kh kw] and the windows as columns (im2col)."""
    w = _windows(x, K.shape[2], K.shape[3], stride, padding)
    return np.tensordot(K, w, axes=([1, 2, 3], [0, 4, 5]))
''',
    "_conv2d_grad_K": '''
def _conv2d_grad_K(g, x, K, stride, padding):
    """∂J/∂K[f, c, a, b] = Σ_{i,j,n} g[f, i, j, n] x[c, s i + a, s j + b, n]: g times the
    windows, as ∂J/∂W = g xᵀ of z = Wx."""
    w = _windows(x, K.shape[2], K.shape[3], stride, padding)
    return np.tensordot(g, w, axes=([1, 2, 3], [1, 2, 3]))
''',
    "_conv2d_grad_x": '''
def _conv2d_grad_x(g, x, K, stride, padding):
    """∂J/∂x: Kᵀ g [C, kh, kw, H', W', n], each place (a, b) of the windows added back where
    it came from (col2im), the padding cut off."""
    C, H, W = x.shape[:3]
    kh, kw = K.shape[2], K.shape[3]
    Ho, Wo = g.shape[1], g.shape[2]
    cols = np.tensordot(K, g, axes=([0], [0]))
    out = np.zeros((C, H + 2 * padding, W + 2 * padding) + g.shape[3:], cols.dtype)
    for a in range(kh):
        for b in range(kw):
            out[:, a:a + stride * (Ho - 1) + 1:stride, b:b + stride * (Wo - 1) + 1:stride] += cols[:, a, b]
    return out[:, padding:padding + H, padding:padding + W]
''',
    "_maxpool": '''
def _maxpool(x, size):
    """The max of each size x size window of x [C, H, W, n]: [C, H // size, W // size, n]."""
    C, Hp, Wp = x.shape[0], x.shape[1] // size, x.shape[2] // size
    w = x[:, :Hp * size, :Wp * size].reshape((C, Hp, size, Wp, size) + x.shape[3:])
    return w.max(axis=(2, 4))
''',
    "_maxpool_grad": '''
def _maxpool_grad(g, x, m, size):
    """g to the entries that are the max m of their window, shared equally among ties; 0 for
    the rows and columns no window covers."""
    C, Hp, Wp = m.shape[:3]
    w = x[:, :Hp * size, :Wp * size].reshape((C, Hp, size, Wp, size) + x.shape[3:])
    mask = w == m[:, :, None, :, None]
    share = g[:, :, None, :, None] * mask / mask.sum(axis=(2, 4), keepdims=True, dtype=x.dtype)
    out = np.zeros(x.shape, share.dtype)
    out[:, :Hp * size, :Wp * size] = share.reshape((C, Hp * size, Wp * size) + x.shape[3:])
    return out
''',
    "_maxpool_pick": '''
def _maxpool_pick(h, x, m, size):
    """Σ h over the entries of each window that are its max, shared among ties: the adjoint of
    maxpool's gradient in g."""
    C, Hp, Wp = m.shape[:3]
    w = x[:, :Hp * size, :Wp * size].reshape((C, Hp, size, Wp, size) + x.shape[3:])
    hw = h[:, :Hp * size, :Wp * size].reshape(w.shape)
    mask = w == m[:, :, None, :, None]
    return (hw * mask).sum(axis=(2, 4)) / mask.sum(axis=(2, 4), dtype=x.dtype)
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
    "_take_grad": '''
def _take_grad(g, x, index):
    """g put at x[index] in zeros shaped like x: the gradient of the slice x[index]."""
    out = np.zeros(x.shape, np.result_type(g, x))
    out[index] = g
    return out
''',
}

# helpers that call other helpers
HELPER_DEPS = {"_xent": ("_onehot",), "_svm": ("_onehot", "_svm_margins"),
               "_conv2d": ("_windows",), "_conv2d_grad_K": ("_windows",)}

# helpers of the numba target, compiled with @numba.njit in each module that needs them
NUMBA_HELPERS = {
    "_onehot_labels": '''
def _onehot_labels(y, C, n, dt):
    """Labels as one-hot columns [C, n]: integers [n] or a row [1, n], or one-hot already."""
    Y = np.zeros((C, n), dt)
    if y.ndim == 2 and y.shape[0] == C and y.shape[1] == n:
        for c in range(C):
            for j in range(n):
                Y[c, j] = y[c, j]
        return Y
    labels = y.ravel()
    if labels.size != n:
        raise ValueError("labels must be integers [n] or one-hot [C, n]")
    for j in range(n):
        c = int(labels[j])
        if c < 0 or c >= C or c != labels[j]:
            raise ValueError("labels must be integers in 0..C-1 (C: the classes, along axis 0)")
        Y[c, j] = 1.0
    return Y
''',
    # convolution and pooling, as loops over images [C, H, W, n] and kernels [F, C, kh, kw];
    # the same sums as the NumPy helpers', term by term (in another order: to rounding)
    "_nb_conv2d": '''
def _nb_conv2d(x, K, stride, padding):
    C, H, W, n = x.shape
    F, _, kh, kw = K.shape
    Ho, Wo = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    y = np.zeros((F, Ho, Wo, n), x.dtype)
    for f in range(F):
        for c in range(C):
            for a in range(kh):
                for b in range(kw):
                    k = K[f, c, a, b]
                    for i in range(Ho):
                        r = stride * i + a - padding
                        if r < 0 or r >= H:
                            continue
                        for j in range(Wo):
                            q = stride * j + b - padding
                            if q < 0 or q >= W:
                                continue
                            for e in range(n):
                                y[f, i, j, e] += k * x[c, r, q, e]
    return y
''',
    "_nb_conv2d_grad_K": '''
def _nb_conv2d_grad_K(g, x, K, stride, padding):
    C, H, W, n = x.shape
    F, _, kh, kw = K.shape
    Ho, Wo = g.shape[1], g.shape[2]
    out = np.zeros((F, C, kh, kw), g.dtype)
    for f in range(F):
        for c in range(C):
            for a in range(kh):
                for b in range(kw):
                    total = 0.0
                    for i in range(Ho):
                        r = stride * i + a - padding
                        if r < 0 or r >= H:
                            continue
                        for j in range(Wo):
                            q = stride * j + b - padding
                            if q < 0 or q >= W:
                                continue
                            for e in range(n):
                                total += g[f, i, j, e] * x[c, r, q, e]
                    out[f, c, a, b] = total
    return out
''',
    "_nb_conv2d_grad_x": '''
def _nb_conv2d_grad_x(g, x, K, stride, padding):
    C, H, W, n = x.shape
    F, _, kh, kw = K.shape
    Ho, Wo = g.shape[1], g.shape[2]
    out = np.zeros((C, H, W, n), g.dtype)
    for f in range(F):
        for c in range(C):
            for a in range(kh):
                for b in range(kw):
                    k = K[f, c, a, b]
                    for i in range(Ho):
                        r = stride * i + a - padding
                        if r < 0 or r >= H:
                            continue
                        for j in range(Wo):
                            q = stride * j + b - padding
                            if q < 0 or q >= W:
                                continue
                            for e in range(n):
                                out[c, r, q, e] += k * g[f, i, j, e]
    return out
''',
    "_nb_maxpool": '''
def _nb_maxpool(x, size):
    C, H, W, n = x.shape
    Hp, Wp = H // size, W // size
    m = np.full((C, Hp, Wp, n), -np.inf, x.dtype)
    for c in range(C):
        for i in range(Hp):
            for j in range(Wp):
                for a in range(size):
                    for b in range(size):
                        for e in range(n):
                            m[c, i, j, e] = max(m[c, i, j, e], x[c, size * i + a, size * j + b, e])
    return m
''',
    "_nb_maxpool_grad": '''
def _nb_maxpool_grad(g, x, m, size):
    C, H, W, n = x.shape
    Hp, Wp = m.shape[1], m.shape[2]
    out = np.zeros((C, H, W, n), g.dtype)
    for c in range(C):
        for i in range(Hp):
            for j in range(Wp):
                for e in range(n):
                    ties = 0
                    for a in range(size):
                        for b in range(size):
                            if x[c, size * i + a, size * j + b, e] == m[c, i, j, e]:
                                ties += 1
                    for a in range(size):
                        for b in range(size):
                            if x[c, size * i + a, size * j + b, e] == m[c, i, j, e]:
                                out[c, size * i + a, size * j + b, e] = g[c, i, j, e] / ties
    return out
''',
    "_nb_maxpool_pick": '''
def _nb_maxpool_pick(h, x, m, size):
    C, Hp, Wp, n = m.shape
    out = np.zeros((C, Hp, Wp, n), h.dtype)
    for c in range(C):
        for i in range(Hp):
            for j in range(Wp):
                for e in range(n):
                    ties, total = 0, 0.0
                    for a in range(size):
                        for b in range(size):
                            if x[c, size * i + a, size * j + b, e] == m[c, i, j, e]:
                                ties += 1
                                total += h[c, size * i + a, size * j + b, e]
                    out[c, i, j, e] = total / ties
    return out
''',
    "_nb_reshape": '''
def _nb_reshape(x, shape):
    return np.ascontiguousarray(x).reshape(shape)
''',
    "_take_grad": '''
def _take_grad(g, x, index):
    """g put at x[index] in zeros shaped like x."""
    out = np.zeros_like(x)
    out[index] = g
    return out
''',
}


# -- the names the rest of the compiler builds by -------------------------------------------------

# operators of the language (and of graph values, gdsl.ir.builder.V)
BINARY_OPERATORS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "@": "matmul", "**": "pow"}
NEG_OP, TRANSPOSE_OP = "neg", "transpose"           # -x, x.T
# what the machinery itself builds: sums back over broadcast axes (unbroadcast), the sum of a
# cotangent times an op (gdsl.ir.builder.vjp_model), the gradient of what the loss ignores
SUM_OP, SUM_TO_OP, ZEROS_LIKE_OP = "sum", "sum_to", "zeros_like"
EXPAND_OP = "expand_to"     # dJ/dJ = 1 for a loss of shape [1, 1] (the lecture's −log(yᵀp))
VDOT_OP = "vdot"            # Σ_w <g_w, v_w>, whose gradient is the Hessian-vector product
TAKE_OP = "take"            # x[t]: a slice along axis 0 (its `index` attribute counts from 0)
COUNT_OP = "count"          # a dimension's name in an expression: its size (n = x.shape[1])


def written(name: str, args: list[str]) -> str:
    """How the op of these argument texts is written in a model file: `x * 1`, `-x`, `x.T`."""
    symbol = {op: s for s, op in BINARY_OPERATORS.items()}.get(name)
    if symbol:
        return f"{args[0]} {symbol} {args[1]}"
    if name == NEG_OP:
        return f"-{args[0]}"
    if name == TRANSPOSE_OP:
        return f"{args[0]}.T"
    return f"{name}({', '.join(args)})"


def user_functions() -> list[str]:
    return sorted(name for name, op in OPS.items() if op.user)

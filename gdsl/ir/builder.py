"""Building graph values: arithmetic on a V adds a node, and the builder reuses an identical
node where one exists (hash-consing) and folds what a rule would otherwise leave behind
(g * 1, 0 + g: each op's `fold` in the op table). The op table's derivative rules and the
passes build with it.
"""

from __future__ import annotations

from ..errors import GdslShapeError
from .graph import LEAVES, Model
from .ops import BINARY_OPERATORS, NEG_OP, OPS, SUM_OP, SUM_TO_OP, TRANSPOSE_OP
from .shapes import Mismatch

ADD, SUB, MUL, DIV, MATMUL, POW = (BINARY_OPERATORS[s] for s in ("+", "-", "*", "/", "@", "**"))


class V:
    """A value in the graph under construction; arithmetic on it adds nodes."""

    __slots__ = ("b", "id")

    def __init__(self, b: Builder, id: int):
        self.b = b
        self.id = id

    @property
    def shape(self):
        return self.b.m.dims.shape(self.b.m.node(self.id)["shape"])

    @property
    def T(self):
        return self.b.op(TRANSPOSE_OP, self)

    def __add__(self, o): return self.b.op(ADD, self, o)
    def __radd__(self, o): return self.b.op(ADD, o, self)
    def __sub__(self, o): return self.b.op(SUB, self, o)
    def __rsub__(self, o): return self.b.op(SUB, o, self)
    def __mul__(self, o): return self.b.op(MUL, self, o)
    def __rmul__(self, o): return self.b.op(MUL, o, self)
    def __truediv__(self, o): return self.b.op(DIV, self, o)
    def __rtruediv__(self, o): return self.b.op(DIV, o, self)
    def __matmul__(self, o): return self.b.op(MATMUL, self, o)
    def __pow__(self, o): return self.b.op(POW, self, o)
    def __neg__(self): return self.b.op(NEG_OP, self)


class Builder:
    """Adds nodes to a model, reusing an identical node where one exists (hash-consing)
    and folding what a rule would otherwise leave behind (g * 1, 0 + g)."""

    def __init__(self, model, **node_extra):
        self.m = model
        self.extra = node_extra
        self._memo: dict | None = None

    @property
    def memo(self) -> dict:
        """(op, args, attrs) -> node for the graph's nodes, found when first needed (a pass
        that builds nothing never scans the graph)."""
        if self._memo is None:
            memo = self._memo = {}
            for n, d in self.m.nodes.items():
                op, attrs = d["op"], d["attrs"]
                if op == "literal":
                    memo.setdefault(("literal", d["value"]), n)
                elif op not in LEAVES:      # the key that op() makes
                    memo.setdefault((op, d["args"], tuple(sorted(attrs.items())) if attrs else ()), n)
        return self._memo

    def value(self, n: int) -> V:
        """Node n as a value to build with."""
        return V(self, n)

    def lit(self, value: float) -> V:
        value = float(value)
        key = ("literal", value)
        memo = self.memo
        n = memo.get(key)
        if n not in self.m.nodes:     # new, or optimised away since
            n = memo[key] = self.m.add("literal", value=value, shape=(), **self.extra)
        return V(self, n)

    def op(self, name: str, *args, **attrs) -> V:
        nodes = self.m.nodes
        ids = tuple([a.id if isinstance(a, V) else self.lit(a).id for a in args])
        row = OPS[name]
        if row.fold is not None:
            folded = row.fold(self, ids, nodes)
            if folded is not None:
                return folded
        key = (name, ids, tuple(sorted(attrs.items())) if attrs else ())
        memo = self.memo
        n = memo.get(key)
        if n not in nodes:      # new, or optimised away since
            m = self.m
            try:
                shape = row.shape(m.dims, [nodes[a]["shape"] for a in ids], attrs)
            except Mismatch as e:   # the seed dJ/dJ = 1 is a scalar: a loss that is not one ends here
                raise GdslShapeError(f"cannot build the backward pass here: {e}", self.extra.get("span"),
                                     help="the loss must be a scalar: reduce it, e.g. `J = sum(...)`, "
                                     "and name it with `loss J`") from None
            n = memo[key] = m.add(name, ids, attrs=attrs, shape=shape, **self.extra)
        return V(self, n)

    def unbroadcast(self, g: V, x: V) -> V:
        """Sum g back over the axes along which x was broadcast."""
        nodes = self.m.nodes
        if nodes[g.id]["shape"] == nodes[x.id]["shape"] is not None:   # (the common case)
            return g
        gs, xs = g.shape, x.shape
        if gs is None or xs is None:
            return self.op(SUM_TO_OP, g, x)
        if gs == xs:
            return g
        lead = len(gs) - len(xs)
        if lead > 0:
            g = self.op(SUM_OP, g, axis=lead - 1 if lead == 1 else tuple(range(lead)))
        axes = tuple(i for i, (a, b) in enumerate(zip(xs, gs[lead:])) if a == 1 and b != 1)
        if axes:
            g = self.op(SUM_OP, g, axis=axes[0] if len(axes) == 1 else axes, keepdims=True)
        return g


def vjp_model(op: str, attrs: dict, shapes: list[tuple], out_shape: tuple, wrt: list[int],
              labels: list[int] = ()) -> Model:
    """The tiny model L = sum(g * op(a0, a1, ...)) of one op, with inputs a0, a1, ... and a
    cotangent g: its gradient with respect to a_i is the op's vector-Jacobian product
    g·∂op/∂a_i (gdsl check compares it with finite differences; gdsl explain builds the
    explicit Jacobian from it, row by row). The inputs at ``labels`` are class labels. An
    op's cache arguments (Op.cached) are computed from the others, as the fusion does."""
    row = OPS[op]
    mini = Model(source="", filename=f"<{op}>")
    ids = []
    for i, shape in enumerate(shapes[:row.arity - row.cached]):
        name = f"a{i}"
        n = mini.add("input", name=name, shape=tuple(shape), declared=True)
        mini.inputs[name] = mini.names[name] = n
        ids.append(n)
        if i in labels:
            mini.labels.add(name)
    if row.cached:
        b = Builder(mini)
        ids += [c.id for c in row.caches(*(V(b, n) for n in ids))]
    ans = mini.add(op, tuple(ids), attrs=dict(attrs), name="ans", shape=tuple(out_shape))
    g = mini.add("input", name="g", shape=tuple(out_shape), declared=True)
    mini.inputs["g"] = mini.names["g"] = g
    prod = mini.add(MUL, (ans, g), name="gans", shape=tuple(out_shape))
    loss = mini.add(SUM_OP, (prod,), attrs={"axis": None, "keepdims": False}, name="L", shape=())
    mini.names.update(ans=ans, gans=prod, L=loss)
    mini.loss, mini.loss_name, mini.wrt = loss, "L", [f"a{i}" for i in wrt]
    return mini


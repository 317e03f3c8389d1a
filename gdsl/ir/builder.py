"""Building graph values: arithmetic on a V adds a node, and the builder reuses an identical
node where one exists (hash-consing) and folds the identities a rule would otherwise leave
behind (g * 1, 0 + g). The op table's derivative rules and the passes build with it.
"""

from __future__ import annotations

from ..errors import GdslShapeError
from .graph import LEAVES
from .ops import OPS
from .shapes import Mismatch


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
        return self.b.op("transpose", self)

    def __add__(self, o): return self.b.op("add", self, o)
    def __radd__(self, o): return self.b.op("add", o, self)
    def __sub__(self, o): return self.b.op("sub", self, o)
    def __rsub__(self, o): return self.b.op("sub", o, self)
    def __mul__(self, o): return self.b.op("mul", self, o)
    def __rmul__(self, o): return self.b.op("mul", o, self)
    def __truediv__(self, o): return self.b.op("div", self, o)
    def __rtruediv__(self, o): return self.b.op("div", o, self)
    def __matmul__(self, o): return self.b.op("matmul", self, o)
    def __pow__(self, o): return self.b.op("pow", self, o)
    def __neg__(self): return self.b.op("neg", self)


ARITHMETIC = ("add", "sub", "mul", "div", "pow")
FOLDABLE = {"onehot", "neg", "transpose", *ARITHMETIC}      # the ops that Builder._fold looks at


def _value(d: dict):
    """A literal node's value; None for any other node."""
    return d["value"] if d["op"] == "literal" else None


class Builder:
    """Adds nodes to a model, reusing an identical node where one exists (hash-consing)
    and folding the identities a rule would otherwise leave behind (g * 1, 0 + g)."""

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
        if name in FOLDABLE:
            folded = self._fold(name, ids, nodes)
            if folded is not None:
                return folded
        key = (name, ids, tuple(sorted(attrs.items())) if attrs else ())
        memo = self.memo
        n = memo.get(key)
        if n not in nodes:      # new, or optimised away since
            m = self.m
            try:
                shape = OPS[name].shape(m.dims, [nodes[a]["shape"] for a in ids], attrs)
            except Mismatch as e:   # the seed dJ/dJ = 1 is a scalar: a loss that is not one ends here
                raise GdslShapeError(f"cannot build the backward pass here: {e}", self.extra.get("span"),
                                     help="the loss must be a scalar: reduce it, e.g. `J = sum(...)`, "
                                     "and name it with `loss J`") from None
            n = memo[key] = m.add(name, ids, attrs=attrs, shape=shape, **self.extra)
        return V(self, n)

    def _fold(self, name, ids, nodes):
        """What op(name, *ids) simplifies to, or None."""
        first = nodes[ids[0]]
        if name == "transpose":     # a scalar is its own transpose (and 1.0.T is no Python)
            return V(self, ids[0]) if first["shape"] == () else None
        if name == "onehot":
            return V(self, ids[0]) if first["op"] == "onehot" else None     # already one-hot
        if name == "neg":
            if first["op"] == "neg":        # --x -> x
                return V(self, first["args"][0])
            return self.lit(-first["value"]) if first["op"] == "literal" else None
        x, y = ids
        second = nodes[y]
        lx, ly = _value(first), _value(second)
        if lx is not None or ly is not None:
            folded = self._fold_literal(name, x, y, lx, ly)
            if folded is not None:
                return folded
        if name == "mul" and second["op"] == "div" and _value(nodes[second["args"][0]]) == 1:
            return self.op("div", V(self, x), V(self, second["args"][1]))      # x * (1/y) -> x / y
        return None

    def _fold_literal(self, name, x, y, lx, ly):
        if lx is not None and ly is not None:
            try:
                value = {"add": lambda: lx + ly, "sub": lambda: lx - ly, "mul": lambda: lx * ly,
                         "div": lambda: lx / ly, "pow": lambda: lx ** ly}[name]()
            except (ZeroDivisionError, OverflowError, ValueError):
                value = None
            if isinstance(value, float):
                return self.lit(value)
        if name == "mul" and lx == 1:       # 1*x -> x
            return V(self, y)
        if name in ("mul", "div", "pow") and ly == 1:    # x*1, x/1, x**1 -> x
            return V(self, x)
        if name == "add" and lx == 0:       # 0+x -> x
            return V(self, y)
        if name in ("add", "sub") and ly == 0:           # x+0, x-0 -> x
            return V(self, x)
        if name == "mul" and lx == -1:      # -1*x -> -x
            return self.op("neg", V(self, y))
        return None

    def unbroadcast(self, g: V, x: V) -> V:
        """Sum g back over the axes along which x was broadcast."""
        nodes = self.m.nodes
        if nodes[g.id]["shape"] == nodes[x.id]["shape"] is not None:   # (the common case)
            return g
        gs, xs = g.shape, x.shape
        if gs is None or xs is None:
            return self.op("sum_to", g, x)
        if gs == xs:
            return g
        lead = len(gs) - len(xs)
        if lead > 0:
            g = self.op("sum", g, axis=lead - 1 if lead == 1 else tuple(range(lead)))
        axes = tuple(i for i, (a, b) in enumerate(zip(xs, gs[lead:])) if a == 1 and b != 1)
        if axes:
            g = self.op("sum", g, axis=axes[0] if len(axes) == 1 else axes, keepdims=True)
        return g

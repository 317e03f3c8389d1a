"""The cost of one forward + backward step at given sizes: FLOPs per node, and the bytes of
forward values the backward pass keeps alive. `gdsl stats` prints it."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

from ..errors import GdslUsageError
from ..ir.graph import LEAVES
from ..ir.ops import OPS


@dataclass
class NodeCost:
    node: int
    text: str          # the node as the model writes it, or its op
    op: str
    shape: tuple
    flops: int
    kept_bytes: int    # bytes of this forward value the backward pass still needs
    backward: bool


@dataclass
class Cost:
    rows: list[NodeCost] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)   # gradients not computed

    @property
    def forward_flops(self) -> int:
        return sum(r.flops for r in self.rows if not r.backward)

    @property
    def backward_flops(self) -> int:
        return sum(r.flops for r in self.rows if r.backward)

    @property
    def kept_bytes(self) -> int:
        return sum(r.kept_bytes for r in self.rows)


def cost(compiled, dims: dict[str, int], itemsize: int = 8) -> Cost:
    """FLOPs and kept bytes of value_and_grad, with the symbolic dims bound by ``dims``."""
    m = compiled.model

    def concrete(shape, n):
        if shape is None:
            raise GdslUsageError(f"the shape of `{m.label(n)}` is known only at call time; "
                                 "declare the model's inputs and params with shapes")
        out = []
        for d in shape:
            d = m.dims.resolve(d)
            if isinstance(d, str):
                if d not in dims:
                    raise GdslUsageError(f"give a size for dim `{d}`, e.g. --dims {d}=100")
                d = dims[d]
            out.append(d)
        return tuple(out)

    order = m.backward_order or m.forward_order
    shapes = {n: concrete(m.node(n)["shape"], n) for n in order if m.node(n)["op"] != "literal"}
    kept = {a for n in order if m.node(n).get("backward") for a in m.node(n)["args"]
            if not m.node(a).get("backward") and m.node(a)["op"] not in ("literal", "const")}
    result = Cost()
    for n in order:
        d = m.node(n)
        if d["op"] in LEAVES:
            continue
        op = OPS[d["op"]]
        sizes = [prod(shapes.get(a, ())) for a in d["args"]]
        out = prod(shapes[n])
        flops = op.flops if isinstance(op.flops, int) else None
        flops = out * flops if flops is not None else op.flops(sizes, out, [shapes.get(a, ()) for a in d["args"]])
        result.rows.append(NodeCost(n, m.describe(n), d["op"], shapes[n], int(flops),
                                    out * itemsize if n in kept else 0, bool(d.get("backward"))))
    for name, n in {**m.inputs, **m.consts}.items():
        if name not in m.wrt and n in m.needed([m.loss]):
            result.pruned.append(name)
    return result


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _num(x) -> str:
    for unit, k in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= k:
            return f"{x / k:.3g}{unit}"
    return str(x)


def report(compiled, dims: dict[str, int], itemsize: int = 8) -> str:
    c = cost(compiled, dims, itemsize)
    num = _num

    lines = [f"{'value':<28} {'op':<12} {'shape':<16} {'FLOPs':>8} {'kept':>8}"]
    for pass_name, backward in (("forward", False), ("backward", True)):
        lines.append(f"-- {pass_name}")
        for r in c.rows:
            if r.backward == backward:
                kept = num(r.kept_bytes) + "B" if r.kept_bytes else ""
                lines.append(f"{_cut(r.text, 28):<28} {r.op:<12} {list(r.shape)!s:<16} "
                             f"{num(r.flops):>8} {kept:>8}")
    lines.append(f"total: forward {num(c.forward_flops)} FLOPs, backward {num(c.backward_flops)} "
                 f"FLOPs, {num(c.kept_bytes)}B of forward values kept for the backward pass")
    if c.pruned:
        lines.append("gradients not computed (nobody asked for them): "
                     + ", ".join(f"∂{compiled.loss}/∂{p}" for p in c.pruned))
    return "\n".join(lines) + "\n"

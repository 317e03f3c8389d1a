"""Compile-time warnings about values that can be zero where zero is fatal.

log(0) = -inf, sqrt'(0) = inf and x/0 poison a whole training run. After the
stable fusions (fuse.py) have run, warn where an op's argument must not be 0
(Op.zero_unsafe: log, sqrt, division, the unfused cross-entropy -log(yᵀp)) and is
the result of an op that can be exactly 0 (Op.zero_able: relu, abs, square,
sqnorm, sigmoid or exp, which underflow, and a softmax not fused into a
log-sum-exp form).
"""

from __future__ import annotations

from ..errors import GdslError
from ..ir.ops import OPS


class GdslWarning(GdslError):
    kind = "warning"


def warn_unstable(model) -> None:
    nodes = model.nodes
    for n in model.topo():
        d = nodes[n]
        row = OPS.get(d["op"])
        if row is None or row.zero_unsafe is None or d.get("backward"):
            continue
        position, what = row.zero_unsafe
        arg = nodes[d["args"][position]]
        source = OPS.get(arg["op"])
        if source is None or not source.zero_able:
            continue
        a = "an" if arg["op"][0] in "aeiou" else "a"
        who = f"`{arg['name']}`, {a} {arg['op']}" if arg["name"] else f"{a} {arg['op']}"
        help = source.zero_help or "keep it away from 0, e.g. add a small constant (+ 1e-12)"
        model.warnings.append(GdslWarning(
            f"{what} {who}, which can be exactly 0: the result can be infinite",
            d["span"], help=help))

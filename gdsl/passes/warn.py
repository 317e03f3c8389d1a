"""Compile-time warnings about values that can be zero where zero is fatal.

log(0) = -inf, sqrt'(0) = inf and x/0 poison a whole training run. After the
stable fusions (fuse.py) have run, warn about log, sqrt, division and the
unfused cross-entropy -log(yᵀp) applied to a value that can be exactly zero:
the output of relu, abs, square, sqnorm, sigmoid or exp (which underflow), or
of a softmax that was not fused into a log-sum-exp form.
"""

from __future__ import annotations

from ..errors import GdslError

CAN_BE_ZERO = {"relu", "abs", "square", "sqnorm", "sigmoid", "exp", "softmax"}
WATCHED = {"log": 0, "sqrt": 0, "div": 1, "xent": 0}     # op -> the argument that must not be 0


class GdslWarning(GdslError):
    kind = "warning"


def warn_unstable(model) -> None:
    nodes = model.nodes
    for n in model.topo():
        d = nodes[n]
        op = d["op"]
        if op not in WATCHED or d.get("backward"):
            continue
        arg = nodes[d["args"][WATCHED[op]]]
        if arg["op"] not in CAN_BE_ZERO:
            continue
        what = {"log": "log of", "sqrt": "sqrt of", "div": "division by",
                "xent": "cross-entropy −log(yᵀp) of"}[op]
        a = "an" if arg["op"][0] in "aeiou" else "a"
        who = f"`{arg['name']}`, {a} {arg['op']}" if arg["name"] else f"{a} {arg['op']}"
        help = {"softmax": "use xent(softmax(s), y) or logsoftmax(s): gdsl computes those stably",
                "exp": "work with the exponent: log(exp(a)) = a, sqrt(exp(a)) = exp(a / 2)"}.get(
            arg["op"], "keep it away from 0, e.g. add a small constant (+ 1e-12)")
        model.warnings.append(GdslWarning(
            f"{what} {who}, which can be exactly 0: the result can be infinite",
            d["span"], help=help))

"""Stable fusions, and labels turned one-hot once: each op's `fuse` rule in the op table.

    xent(softmax(s), y) -> p = e / Z, l = xent_logits(s, Y, m, Z, ys): one exp serves p and
                          the loss (log Z + m - yᵀs); the gradient is (p - Y) / n
    log(softmax(s))     -> logsoftmax(s)          # never log(0) = -inf
    svm(s, y)           -> svm_hinge(s, Y, M): the margins M computed once
    xent(p, y)          -> xent(p, Y)             # each loss's Y = onehot(y, ...) computed once
                                                   # for the forward and the backward pass
"""

from __future__ import annotations

from ..ir.builder import Builder
from ..ir.ops import OPS


def fuse(model) -> None:
    b = Builder(model)
    for n in list(model.G.nodes):
        d = model.node(n)
        row = OPS.get(d["op"])
        if row is None or row.fuse is None:
            continue
        b.extra = {"span": d["span"], "line": d["line"]}
        row.fuse(b, model, n)

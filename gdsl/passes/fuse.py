"""Stable fusions, and labels turned one-hot once.

    xent(softmax(s), y) -> xent_logits(s, Y, p)   # log Σ exp(s) from p's own max: one exp
                                                   # for both; gradient (p - Y) / n
    log(softmax(s))     -> logsoftmax(s)          # never log(0) = -inf
    xent(p, y), svm(s, y) -> xent(p, Y), svm(s, Y) with Y = onehot(y, ...) computed once
                                                   # for the forward and the backward pass

The softmax node p stays the value the user named; the fused loss reads it
as a cache argument (see the op table), so it is computed once.
"""

from __future__ import annotations

from ..grad import Builder, V
from ..ops import OPS


def fuse(model) -> None:
    b = Builder(model)
    for n in list(model.G.nodes):
        d = model.node(n)
        if d["op"] not in ("xent", "log", "svm"):
            continue
        b.extra = dict(span=d["span"], line=d["line"])
        src = model.node(d["args"][0])
        if d["op"] == "log":
            if src["op"] == "softmax":
                d["op"] = "logsoftmax"
                d["attrs"] = dict(src["attrs"])
                model.set_args(n, (src["args"][0],))
                model.rewrites.append(f"{d['span']}: log(softmax(s)) -> logsoftmax(s)")
            continue
        scores, labels = V(b, d["args"][0]), V(b, d["args"][1])
        Y = b.op("onehot", labels, scores) if model.node(labels.id)["op"] != "onehot" else labels
        if d["op"] == "xent" and src["op"] == "softmax" and src["attrs"].get("axis") == 0:
            s = V(b, src["args"][0])
            Y = b.op("onehot", labels, s)
            caches = OPS["xent_logits"].caches(s, Y)
            d["op"] = "xent_logits"
            model.set_args(n, (s.id, Y.id, *(c.id for c in caches)))
            model.rewrites.append(f"{d['span']}: xent(softmax(s), y) -> log-sum-exp cross-entropy")
        else:
            model.set_args(n, (scores.id, Y.id))

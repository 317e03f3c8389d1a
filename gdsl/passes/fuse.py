"""Stable fusions: softmax with cross-entropy, log with softmax.

    xent(softmax(s), y) -> xent_logits(s, y)   # log-sum-exp; gradient (p - y) / n
    log(softmax(s))     -> logsoftmax(s)       # never log(0) = -inf

The softmax node stays in the graph for whoever else uses it (an output,
say); when nobody does, scheduling leaves it out.
"""

from __future__ import annotations


def fuse(model) -> None:
    for n in list(model.G.nodes):
        d = model.node(n)
        if d["op"] not in ("xent", "log"):
            continue
        src = model.node(d["args"][0])
        if src["op"] != "softmax":
            continue
        s = src["args"][0]
        if d["op"] == "xent" and src["attrs"].get("axis") == 0:
            d["op"] = "xent_logits"
            model.set_args(n, (s, d["args"][1]))
            model.rewrites.append(f"{d['span']}: xent(softmax(s), y) -> log-sum-exp cross-entropy")
        elif d["op"] == "log":
            d["op"] = "logsoftmax"
            d["attrs"] = dict(src["attrs"])
            model.set_args(n, (s,))
            model.rewrites.append(f"{d['span']}: log(softmax(s)) -> logsoftmax(s)")

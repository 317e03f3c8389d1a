"""Stable fusions, and labels turned one-hot once.

    xent(softmax(s), y) -> p = e / Z, l = xent_logits(s, Y, m, Z, ys)
                          with m = max(s), e = exp(s - m), Z = Σ e per example, ys = Σ yᵀs: one exp
                          serves p and the loss (log Z + m - yᵀs); the gradient is (p - Y) / n
    log(softmax(s))     -> logsoftmax(s)          # never log(0) = -inf
    svm(s, y)           -> svm_hinge(s, Y, M) with M = svm_margins(s, Y) = max(0, s - s_y + 1),
                          0 for the true class: the loss is ΣM / n and the gradient [M > 0]
    xent(p, y)          -> xent(p, Y)             # with each loss's Y = onehot(y, ...) computed
                                                   # once for the forward and the backward pass

The softmax node p keeps its name and becomes e / Z; the fused losses read m, Z and ys,
or M, as cache arguments (see the op table), so nothing is computed twice.
"""

from __future__ import annotations

from ..ir.builder import Builder, V
from ..ir.ops import OPS


def fuse(model) -> None:
    b = Builder(model)
    for n in list(model.G.nodes):
        d = model.node(n)
        if d["op"] not in ("xent", "log", "svm"):
            continue
        b.extra = {"span": d["span"], "line": d["line"]}
        src = model.node(d["args"][0])
        if d["op"] == "log":
            if src["op"] == "softmax":
                d["op"] = "logsoftmax"
                d["attrs"] = dict(src["attrs"])
                model.set_args(n, (src["args"][0],))
                model.rewrites.append(f"{d['span']}: log(softmax(s)) -> logsoftmax(s)")
            continue
        fused = d["op"] == "xent" and src["op"] == "softmax" and src["attrs"].get("axis") == 0
        scores = V(b, src["args"][0] if fused else d["args"][0])    # s, for xent(softmax(s))
        labels = V(b, d["args"][1])
        Y = b.op("onehot", labels, scores) if model.node(labels.id)["op"] != "onehot" else labels
        if fused:
            s = scores
            p = d["args"][0]
            b.extra = {"span": src["span"], "line": src["line"]}
            m, Z, ys = OPS["xent_logits"].caches(s, Y)
            e = b.op("exp", s - m)
            for v, hint in ((m, "m"), (e, "e"), (Z, "Z"), (ys, "ys")):  # the lecture-style names
                model.node(v.id).setdefault("hint", hint)
            model.node(p).update(op="div", attrs={})
            model.set_args(p, (e.id, Z.id))
            d["op"] = "xent_logits"
            model.set_args(n, (s.id, Y.id, m.id, Z.id, ys.id))
            model.rewrites.append(f"{d['span']}: xent(softmax(s), y) -> log-sum-exp cross-entropy")
        elif d["op"] == "svm":
            (M,) = OPS["svm_hinge"].caches(scores, Y)
            model.node(M.id).setdefault("hint", "M")
            d["op"] = "svm_hinge"
            model.set_args(n, (scores.id, Y.id, M.id))
            model.rewrites.append(f"{d['span']}: svm(s, y) -> hinge loss of margins computed once")
        else:
            model.set_args(n, (scores.id, Y.id))

"""The data loss, exposed for training reports: each loss term (xent, svm: the ops the op
table marks as `loss`) and the scores the first one is given become forward outputs, named
`data_loss` and `scores` where the model left them unnamed. `gdsl run` reports their values
(loss, accuracy) beside the objective."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir.graph import LEAVES
from ..ir.ops import OPS


@dataclass
class Losses:
    terms: list[str] = field(default_factory=list)   # output names of the loss terms
    scores: str | None = None      # what the first term is given (probabilities or scores)
    label: str | None = None       # the input given to it as labels


def _unique(m, base: str) -> str:
    name, k = base, 1
    while name in m.names:
        k += 1
        name = f"{base}{k}"
    return name


def expose_losses(m) -> Losses:
    found = Losses()
    for n in m.topo():
        d = m.node(n)
        row = OPS.get(d["op"])
        if row is None or not row.loss:
            continue
        if d["name"] is None:
            d["name"] = _unique(m, "data_loss")
            m.names[d["name"]] = n
        m.outputs.setdefault(d["name"], n)
        found.terms.append(d["name"])
        if found.scores is None:
            s_node, y_node = d["args"][:2]
            sd = m.node(s_node)
            if sd["name"] is None:
                sd["name"] = _unique(m, "scores")
                m.names[sd["name"]] = s_node
            if sd["op"] not in LEAVES:
                m.outputs.setdefault(sd["name"], s_node)
            found.scores = sd["name"]
            if m.node(y_node)["op"] == "input":
                found.label = m.node(y_node)["name"]
    return found

"""Constant folding: an elementwise op (Op.foldable) whose arguments are all literals becomes
a literal, computed by the IR's evaluator.

    2 * 3 -> 6;  exp(0) -> 1;  -(1.5) -> -1.5
Consts (`const lam = 0.01`) are not folded: they can be overridden at call time.
"""

from __future__ import annotations

import math

import numpy as np

from ..ir.builder import Builder
from ..ir.evaluate import evaluate_node
from ..ir.ops import OPS
from .cse import merge


def fold(model) -> None:
    b = Builder(model)
    nodes = model.nodes
    literals = {n for n, d in nodes.items() if d["op"] == "literal"}
    for n in model.topo():
        d = nodes[n]
        row = OPS.get(d["op"])
        if row is None or not row.foldable or not literals.issuperset(d["args"]):
            continue
        with np.errstate(all="ignore"):
            value = float(evaluate_node(d["op"], d["attrs"],
                                        [np.float64(nodes[a]["value"]) for a in d["args"]]))
        if not math.isfinite(value):
            continue
        lit = b.lit(value).id
        literals.add(lit)
        model.rewrites.append(f"{d['span'] or '-'}: folded `{model.describe(n)}` to {value!r}")
        merge(model, n, lit, None)

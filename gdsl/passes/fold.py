"""Constant folding: an op whose arguments are all literals becomes a literal.

    2 * 3 -> 6;  exp(0) -> 1;  -(1.5) -> -1.5
Consts (`const lam = 0.01`) are not folded: they can be overridden at call time.
"""

from __future__ import annotations

import ast
import math

import numpy as np

from ..ir.ops import OPS
from .cse import merge

FOLDABLE = {"add", "sub", "mul", "div", "pow", "neg", "exp", "log", "tanh", "sigmoid", "relu",
            "abs", "sqrt", "square", "maximum", "minimum", "sign"}


def _evaluate(op: str, attrs: dict, values: list[float]):
    """The op table's own NumPy emission, evaluated on the literal values."""
    names = [ast.Name(f"a{i}", ast.Load()) for i in range(len(values))]
    expr = ast.fix_missing_locations(ast.Expression(OPS[op].emit(names, attrs, [()] * len(values))))
    env = {f"a{i}": np.float64(v) for i, v in enumerate(values)}
    with np.errstate(all="ignore"):
        return eval(compile(expr, f"<fold {op}>", "eval"), {"np": np}, env)


def fold(model) -> None:
    from ..ir.builder import Builder
    b = Builder(model)
    nodes = model.nodes
    literals = {n for n, d in nodes.items() if d["op"] == "literal"}
    for n in model.topo():
        d = nodes[n]
        if d["op"] not in FOLDABLE or not literals.issuperset(d["args"]):
            continue
        value = float(_evaluate(d["op"], d["attrs"], [nodes[a]["value"] for a in d["args"]]))
        if not math.isfinite(value):
            continue
        lit = b.lit(value).id
        literals.add(lit)
        model.rewrites.append(f"{d['span'] or '-'}: folded `{model.describe(n)}` to {value!r}")
        merge(model, n, lit, None)

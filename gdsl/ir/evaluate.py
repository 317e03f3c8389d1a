"""The reference interpreter of the IR: each node computed with NumPy, one at a time.

An op is computed by its own NumPy emission from the op table (the expression the emitted
module runs), compiled once per op and attributes. Constant folding, `gdsl check` (every
forward value of a random batch) and `gdsl explain --jacobians` (explicit Jacobians) all
evaluate the IR here.
"""

from __future__ import annotations

import ast

import numpy as np

from .graph import GIVEN
from .ops import HELPERS, OPS

_NAMESPACE: dict = {}
_CODE: dict = {}


def namespace() -> dict:
    """NumPy and the op table's helpers (_onehot, _softmax, ...): what emitted code sees."""
    if not _NAMESPACE:
        ns = {"np": np}
        for source in HELPERS.values():
            exec(compile(source, "<gdsl helpers>", "exec"), ns)  # noqa: S102 (gdsl.ir.ops.HELPERS: written by hand, no model text)
        _NAMESPACE.update(ns)
    return _NAMESPACE


def evaluate_node(op: str, attrs: dict, args: list):
    """One op applied to values (arrays or numbers), through the op table's NumPy emission."""
    shapes = [np.shape(a) for a in args]
    key = (op, tuple(sorted(attrs.items())), tuple(len(s) for s in shapes))
    code = _CODE.get(key)
    if code is None:
        names = [ast.Name(f"a{i}", ast.Load()) for i in range(len(args))]
        expr = ast.Expression(OPS[op].emit["numpy"](names, attrs, shapes))
        code = _CODE[key] = compile(ast.fix_missing_locations(expr), f"<gdsl op {op}>", "eval")
    return eval(code, namespace(), {f"a{i}": a for i, a in enumerate(args)})


def evaluate(model, order, values: dict) -> dict:
    """The value of every node in ``order``, given the values of the inputs and params it
    needs (node -> array); a const takes its default unless given. Fills in ``values``."""
    nodes = model.nodes
    with np.errstate(all="ignore"):
        for n in order:
            if n in values:
                continue
            d = nodes[n]
            op = d["op"]
            if op == "literal" or op == "const":
                values[n] = np.float64(d["value"]) if d["value"] is not None else None
            elif op not in GIVEN:
                values[n] = evaluate_node(op, d["attrs"], [values[a] for a in d["args"]])
    return values

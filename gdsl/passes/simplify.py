"""Algebraic identities, as (op, pattern, replacement) rows, run to a fixed point.

A pattern looks at the node's arguments; a replacement returns the value that
takes the node's place (an existing node, or one built with the graph builder).
Every row keeps the shape: literals are scalars, so x * 1 has x's shape.
"""

from __future__ import annotations

from ..grad import Builder, V
from .cse import merge


def _lit(model, n, value) -> bool:
    d = model.node(n)
    return d["op"] == "literal" and d["value"] == value


def _op(model, n, name) -> bool:
    return model.node(n)["op"] == name


def _arg(model, n, i=0) -> int:
    return model.node(n)["args"][i]


RULES = [
    # x * 1 -> x
    ("mul", lambda m, x, y: _lit(m, y, 1), lambda b, x, y: x),
    # 1 * x -> x
    ("mul", lambda m, x, y: _lit(m, x, 1), lambda b, x, y: y),
    # x + 0 -> x
    ("add", lambda m, x, y: _lit(m, y, 0), lambda b, x, y: x),
    # 0 + x -> x
    ("add", lambda m, x, y: _lit(m, x, 0), lambda b, x, y: y),
    # x - 0 -> x
    ("sub", lambda m, x, y: _lit(m, y, 0), lambda b, x, y: x),
    # 0 - x -> -x
    ("sub", lambda m, x, y: _lit(m, x, 0), lambda b, x, y: b.op("neg", V(b, y)).id),
    # x / 1 -> x
    ("div", lambda m, x, y: _lit(m, y, 1), lambda b, x, y: x),
    # x ** 1 -> x
    ("pow", lambda m, x, y: _lit(m, y, 1), lambda b, x, y: x),
    # x * -1 -> -x
    ("mul", lambda m, x, y: _lit(m, y, -1), lambda b, x, y: b.op("neg", V(b, x)).id),
    # -1 * x -> -x
    ("mul", lambda m, x, y: _lit(m, x, -1), lambda b, x, y: b.op("neg", V(b, y)).id),
    # --x -> x
    ("neg", lambda m, x: _op(m, x, "neg"), lambda b, x: _arg(b.m, x)),
    # (xᵀ)ᵀ -> x
    ("transpose", lambda m, x: _op(m, x, "transpose"), lambda b, x: _arg(b.m, x)),
    # x + -y -> x - y
    ("add", lambda m, x, y: _op(m, y, "neg"), lambda b, x, y: b.op("sub", V(b, x), V(b, _arg(b.m, y))).id),
    # -x + y -> y - x
    ("add", lambda m, x, y: _op(m, x, "neg"), lambda b, x, y: b.op("sub", V(b, y), V(b, _arg(b.m, x))).id),
    # x - -y -> x + y
    ("sub", lambda m, x, y: _op(m, y, "neg"), lambda b, x, y: b.op("add", V(b, x), V(b, _arg(b.m, y))).id),
]


def _show(model, n) -> str:
    """A node as a small expression: `x * 1`, `-(-x)`."""
    d = model.node(n)
    if d["name"] or d["op"] in ("literal", "input", "param", "const"):
        return model.label(n)
    args = [model.label(a) for a in d["args"]]
    sym = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}.get(d["op"])
    if sym:
        return f"{args[0]} {sym} {args[1]}"
    return {"neg": f"-{args[0]}", "transpose": f"{args[0]}.T"}.get(d["op"], f"{d['op']}({', '.join(args)})")


def simplify(model) -> None:
    changed = True
    while changed:
        changed = False
        b = Builder(model)
        for n in model.topo():
            if n not in model.G:
                continue
            d = model.node(n)
            for op, matches, replace in RULES:
                if d["op"] != op or len(d["args"]) != replace.__code__.co_argcount - 1:
                    continue
                if not matches(model, *d["args"]):
                    continue
                b.extra = dict(span=d["span"], line=d["line"], backward=d.get("backward", False))
                new = replace(b, *d["args"])
                if new == n:
                    continue
                model.rewrites.append(f"{d['span'] or '-'}: {_show(model, n)} -> {_show(model, new)}")
                merge(model, n, new, None)
                changed = True
                break

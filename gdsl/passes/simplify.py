"""Algebraic identities, as (op, pattern, replacement) rows, run to a fixed point.

A pattern looks at the node's arguments; a replacement returns the value that
takes the node's place (an existing node, or one built with the graph builder).
Every row keeps the shape: literals are scalars, so x * 1 has x's shape.
"""

from __future__ import annotations

from collections import deque

from ..grad import Builder, V
from .cse import merge


def _lit(model, n, value) -> bool:
    d = model.G._node[n]
    return d["op"] == "literal" and d["value"] == value


def _op(model, n, name) -> bool:
    return model.G._node[n]["op"] == name


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
    """Apply the rules with a worklist: every node once in order, then again whenever one of
    its arguments was rewritten, until nothing matches."""
    rules: dict[str, list] = {}
    for op, matches, replace in RULES:
        rules.setdefault(op, []).append((matches, replace, replace.__code__.co_argcount - 1))
    b = Builder(model)
    work = deque(model.topo())
    queued = set(work)
    nodes = model.G._node
    while work:
        n = work.popleft()
        queued.discard(n)
        d = nodes.get(n)
        if d is None:       # merged away
            continue
        for matches, replace, arity in rules.get(d["op"], ()):
            if len(d["args"]) != arity or not matches(model, *d["args"]):
                continue
            b.extra = {"span": d["span"], "line": d["line"], "backward": d.get("backward", False)}
            new = replace(b, *d["args"])
            if new == n:
                continue
            model.rewrites.append(f"{d['span'] or '-'}: {_show(model, n)} -> {_show(model, new)}")
            users = list(model.G.successors(n))
            merge(model, n, new, None)
            for u in (*users, new):
                if u not in queued:
                    work.append(u)
                    queued.add(u)
            break

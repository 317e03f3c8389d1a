"""Algebraic identities, as (op, pattern, replacement) rows, run to a fixed point.

A pattern is (i, what): argument i must be a literal of that value (a number) or
the result of that op (a name). A replacement returns the value that takes the
node's place (an existing node, or one built with the graph builder). Every row
keeps the shape: literals are scalars, so x * 1 has x's shape.
"""

from __future__ import annotations

from collections import deque

from ..ir.builder import Builder, V
from ..ir.graph import LEAVES
from .cse import merge


def _arg(model, n, i=0) -> int:
    return model.node(n)["args"][i]


RULES = [
    # x * 1 -> x
    ("mul", (1, 1), lambda b, x, y: x),
    # 1 * x -> x
    ("mul", (0, 1), lambda b, x, y: y),
    # x + 0 -> x
    ("add", (1, 0), lambda b, x, y: x),
    # 0 + x -> x
    ("add", (0, 0), lambda b, x, y: y),
    # x - 0 -> x
    ("sub", (1, 0), lambda b, x, y: x),
    # 0 - x -> -x
    ("sub", (0, 0), lambda b, x, y: b.op("neg", V(b, y)).id),
    # x / 1 -> x
    ("div", (1, 1), lambda b, x, y: x),
    # x ** 1 -> x
    ("pow", (1, 1), lambda b, x, y: x),
    # x * -1 -> -x
    ("mul", (1, -1), lambda b, x, y: b.op("neg", V(b, x)).id),
    # -1 * x -> -x
    ("mul", (0, -1), lambda b, x, y: b.op("neg", V(b, y)).id),
    # --x -> x
    ("neg", (0, "neg"), lambda b, x: _arg(b.m, x)),
    # (xᵀ)ᵀ -> x
    ("transpose", (0, "transpose"), lambda b, x: _arg(b.m, x)),
    # x + -y -> x - y
    ("add", (1, "neg"), lambda b, x, y: b.op("sub", V(b, x), V(b, _arg(b.m, y))).id),
    # -x + y -> y - x
    ("add", (0, "neg"), lambda b, x, y: b.op("sub", V(b, y), V(b, _arg(b.m, x))).id),
    # x - -y -> x + y
    ("sub", (1, "neg"), lambda b, x, y: b.op("add", V(b, x), V(b, _arg(b.m, y))).id),
]


def _show(model, n) -> str:
    """A node as a small expression: `x * 1`, `-(-x)`."""
    d = model.node(n)
    if d["name"] or d["op"] in LEAVES:
        return model.label(n)
    args = [model.label(a) for a in d["args"]]
    sym = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}.get(d["op"])
    if sym:
        return f"{args[0]} {sym} {args[1]}"
    return {"neg": f"-{args[0]}", "transpose": f"{args[0]}.T"}.get(d["op"], f"{d['op']}({', '.join(args)})")


def simplify(model) -> None:
    """Apply the rules with a worklist: every node once in order, then again whenever one of
    its arguments was rewritten, until nothing matches."""
    rules: dict[str, list] = {}     # op -> (i, op of argument i, literal value or None, ...)
    for op, (i, what), replace in RULES:
        kind, value = (what, None) if isinstance(what, str) else ("literal", what)
        rules.setdefault(op, []).append((i, kind, value, replace, replace.__code__.co_argcount - 1))
    wanted: dict[str, set] = {}     # op -> the (op, literal value or None) its patterns look for
    for op, candidates in rules.items():
        wanted[op] = {(kind, value) for _, kind, value, *_ in candidates}
    nodes = model.nodes
    b = Builder(model)
    work = deque(model.topo())
    queued = set(work)
    while work:
        n = work.popleft()
        queued.discard(n)
        d = nodes.get(n)
        if d is None:       # merged away
            continue
        wants = wanted.get(d["op"])
        if wants is None:
            continue
        args = d["args"]
        for a in args:
            kind = nodes[a]["op"]
            if (kind, nodes[a]["value"] if kind == "literal" else None) in wants:
                break
        else:       # no argument that any pattern looks for (g * 0.5 has none)
            continue
        candidates = rules[d["op"]]
        for i, kind, value, replace, arity in candidates:
            if len(args) != arity:
                continue
            a = nodes[args[i]]
            if a["op"] != kind or value is not None and a["value"] != value:
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

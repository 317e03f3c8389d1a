"""Algebraic identities, run to a fixed point: each op's `identities` in the op table,
(pattern, replacement) rows such as `# x * 1 -> x`.

A pattern is (i, what): argument i must be a literal of that value (a number) or
the result of that op (a name). A replacement returns the value that takes the
node's place (an existing node, or one built with the graph builder). Every row
keeps the shape: literals are scalars, so x * 1 has x's shape.
"""

from __future__ import annotations

from collections import deque

from ..ir.builder import Builder
from ..ir.graph import LEAVES
from ..ir.ops import OPS, written
from .cse import merge


def _show(model, n) -> str:
    """A node as a small expression of what the user wrote: `x * 1`, `-(-x)`, `(W @ x).T`."""
    d = model.node(n)
    if d["name"] or d["op"] in LEAVES:
        return model.describe(n)
    args = [model.describe(a) for a in d["args"]]
    return written(d["op"], [a if a.isidentifier() or model.node(b)["op"] in LEAVES else f"({a})"
                             for a, b in zip(args, d["args"])])


def simplify(model) -> None:
    """Apply the rules with a worklist: every node once in order, then again whenever one of
    its arguments was rewritten, until nothing matches."""
    rules: dict[str, list] = {}     # op -> (i, op of argument i, literal value or None, ...)
    for op, row in OPS.items():
        for (i, what), replace in row.identities:
            kind, value = (what, None) if isinstance(what, str) else ("literal", what)
            rules.setdefault(op, []).append((i, kind, value, replace,
                                             replace.__code__.co_argcount - 1))
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

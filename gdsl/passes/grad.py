"""Reverse-mode differentiation, built as nodes of the same IR.

This is the lecture's generic backward pass. Visiting nodes in reverse
topological order, a node's gradient g is the sum over its children of
child-gradient times local Jacobian (BackOp), each term a vector-Jacobian
product from the op table; no Jacobian is ever materialised. Only nodes on a
path from a differentiated variable to the loss get a gradient, so nobody's
unasked-for gradient (the data x, the labels y) is computed.
"""

from __future__ import annotations

from ..errors import GdslTypeError
from ..ir.builder import Builder, V
from ..ir.graph import LEAVES
from ..ir.ops import EXPAND_OP, OPS, ZEROS_LIKE_OP


def differentiate(model) -> None:
    """Add the backward pass to the model: model.grads maps each wrt name to its gradient node."""
    if model.loss is None or not model.wrt:
        return
    wrt_nodes = [model.names[w] for w in model.wrt]
    active = model.needed([model.loss]) & _reachable_from(model, wrt_nodes)
    first_backward = model._next
    b = Builder(model, backward=True)
    extra = b.extra
    seed = b.lit(1.0)                                               # set g = 1
    if model.nodes[model.loss]["shape"]:        # a [1, 1] loss: g = 1 of that shape
        seed = b.op(EXPAND_OP, seed, V(b, model.loss))
    contributions: dict[int, list[V]] = {model.loss: [seed]}
    grad_of: dict[int, V] = {}
    for n in reversed(model.topo(active)):
        d = model.nodes[n]
        extra["span"], extra["line"] = d["span"], d["line"]
        parts = contributions.pop(n, None)
        if parts is None:       # reaches the loss only as a cache argument: no gradient
            continue
        g = parts[0]
        for p in parts[1:]:
            g = g + p                   # a node used several times: sum over its children
        grad_of[n] = g
        gd = model.nodes[g.id]
        if g.id >= first_backward and gd.get("grad_of") is None and gd["op"] != "literal":
            gd["grad_of"] = n
        if d["op"] in LEAVES:
            continue
        op = OPS[d["op"]]
        args = [V(b, a) for a in d["args"]]
        ans = V(b, n)
        for i, a in enumerate(d["args"]):
            if a not in active or _is_cache(op, i):
                continue
            rule = op.vjp[i] if op.vjp else None
            if rule is None:
                raise GdslTypeError(
                    f"`{d['op']}` is not differentiable in argument {i + 1}, but "
                    f"{', '.join(model.wrt)} reach{'es' if len(model.wrt) == 1 else ''} "
                    f"the loss {model.label(model.loss)} through it", d["span"],
                    help="use it in an `output` or a metric, not on the path to the loss")
            c = rule(g, ans, *args, **d["attrs"])
            if op.broadcasts:
                c = b.unbroadcast(c, args[i])
            contributions.setdefault(a, []).append(c)
    model.grads = {}
    for name, w in zip(model.wrt, wrt_nodes):
        if w in grad_of:
            model.grads[name] = grad_of[w].id
        else:   # the loss does not depend on w
            model.grads[name] = b.op(ZEROS_LIKE_OP, V(b, w)).id
            model.nodes[model.grads[name]]["grad_of"] = w


def _is_cache(op, i: int) -> bool:
    return i >= op.arity - op.cached


CONSTANT = {name for name, op in OPS.items() if op.constant}


def _reachable_from(model, nodes) -> set[int]:
    """Nodes that depend on the given ones through something with a derivative
    (a mask, a count or a one-hot of them is piecewise constant: no gradient)."""
    users, attrs = model.G.succ, model.nodes
    seen = set(nodes)
    stack = list(seen)
    while stack:
        for u in users[stack.pop()]:
            if u not in seen and attrs[u]["op"] not in CONSTANT:
                seen.add(u)
                stack.append(u)
    return seen

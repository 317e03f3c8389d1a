"""Reverse-mode differentiation, built as nodes of the same IR.

This is the lecture's generic backward pass. Visiting nodes in reverse
topological order, a node's gradient g is the sum over its children of
child-gradient times local Jacobian (BackOp), each term a vector-Jacobian
product from the op table; no Jacobian is ever materialised. Only nodes on a
path from a differentiated variable to the loss get a gradient, so nobody's
unasked-for gradient (the data x, the labels y) is computed.

Second derivatives are the same pass run again (reverse over reverse): the backward
pass is made of ops of the table, each with its own vector-Jacobian products, so

    L2 = Σ_w <g_w, v_w>          (g_w = ∂J/∂w, v_w a direction given at call time)

is an ordinary scalar node of the graph, and its gradient with respect to the params is
the Hessian-vector product H v. Forward over reverse would need a second rule per op (a
Jacobian-vector product for every row, backward-only ones included); reverse over reverse
reuses the rules the gradient already trusts, and the optimiser and the emitter treat the
result like any other pass. On the way the second pass computes, as the adjoint of each
gradient g_z, the tangent dz = (∂z/∂θ) v: forward mode falls out of reverse over reverse.
"""

from __future__ import annotations

from ..errors import GdslTypeError
from ..ir.builder import Builder, V
from ..ir.graph import LEAVES
from ..ir.ops import EXPAND_OP, OPS, VDOT_OP, ZEROS_LIKE_OP


def differentiate(model) -> None:
    """Add the backward pass to the model: model.grads maps each wrt name to its gradient node."""
    if model.loss is None or not model.wrt:
        return
    wrt_nodes = [model.names[w] for w in model.wrt]
    b = Builder(model, backward=True)
    first = model._next

    def mark(n: int, g: V) -> None:     # the gradient of n, as emitted code names it: g_n
        gd = model.nodes[g.id]
        if g.id >= first and gd.get("grad_of") is None and gd["op"] != "literal":
            gd["grad_of"] = n

    grads = backprop(model, model.loss, wrt_nodes, b, mark)
    model.grads = {}
    for name, w, g in zip(model.wrt, wrt_nodes, grads):
        if g is None:   # the loss does not depend on w
            g = b.op(ZEROS_LIKE_OP, V(b, w)).id
            model.nodes[g]["grad_of"] = w
        model.grads[name] = g


def hessian_vector(model) -> None:
    """Add H·v to the model, reverse over reverse: a direction leaf v_w per wrt name
    (model.directions), L2 = Σ_w vdot(g_w, v_w), and model.hvps[w] = ∂L2/∂w."""
    if model.loss is None or not model.wrt or not model.grads:
        return
    wrt_nodes = [model.names[w] for w in model.wrt]
    b = Builder(model, backward=True)
    model.directions = {}
    L2 = None
    for name, w in zip(model.wrt, wrt_nodes):
        d = model.nodes[w]
        v = model.add("input", name=f"d{name}", shape=d["shape"], span=d["span"],
                      line=d["line"], declared=d.get("declared", False), direction_of=name)
        model.directions[name] = v
        term = b.op(VDOT_OP, V(b, model.grads[name]), V(b, v))
        L2 = term if L2 is None else L2 + term
    first = model._next
    names = {n: d["name"] for n, d in model.nodes.items() if d["name"]}

    def mark(n: int, g: V) -> None:
        # the adjoint of a gradient g_z is the tangent dz = (∂z/∂θ)v; that of a forward
        # value z is (Hv)_z
        gd = model.nodes[g.id]
        if g.id < first or gd["op"] == "literal" or gd.get("hint"):
            return
        of = model.nodes[n].get("grad_of")
        if of is not None and names.get(of):
            gd["hint"] = "d" + names[of]
        elif names.get(n) and not model.nodes[n].get("backward"):
            gd["hint"] = "hv_" + names[n]

    hv = backprop(model, L2.id, wrt_nodes, b, mark)
    model.hvps = {name: h if h is not None else b.op(ZEROS_LIKE_OP, V(b, w)).id
                  for name, w, h in zip(model.wrt, wrt_nodes, hv)}


def backprop(model, root: int, wrt_nodes: list[int], b: Builder, mark) -> list[int | None]:
    """The gradient of the scalar node ``root`` with respect to each of ``wrt_nodes``, built
    as new nodes by ``b`` (None where the root does not depend on it); ``mark(n, g)`` is
    told each node's whole gradient g."""
    active = model.needed([root]) & _reachable_from(model, wrt_nodes)
    extra = b.extra
    seed = b.lit(1.0)                                               # set g = 1
    if model.nodes[root]["shape"]:        # a [1, 1] loss: g = 1 of that shape
        seed = b.op(EXPAND_OP, seed, V(b, root))
    contributions: dict[int, list[V]] = {root: [seed]}
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
        mark(n, g)
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
            if c is None:       # piecewise constant in this argument (a mask's inputs): 0
                continue
            if op.broadcasts:
                c = b.unbroadcast(c, args[i])
            contributions.setdefault(a, []).append(c)
    return [grad_of[w].id if w in grad_of else None for w in wrt_nodes]


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

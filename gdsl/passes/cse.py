"""Common subexpressions: one node per distinct (op, arguments, attributes).

    a = x * y; b = x * y      ->  b is a      # computed once
"""

from __future__ import annotations

from ..ir.graph import GIVEN


def cse(model) -> None:
    seen: dict = {}
    nodes = model.nodes
    for n in model.topo():
        d = nodes[n]
        op = d["op"]
        if op in GIVEN:
            continue
        attrs = d["attrs"]
        key = (("literal", d["value"]) if op == "literal"
               else (op, d["args"], tuple(sorted(attrs.items())) if attrs else ()))
        keep = seen.setdefault(key, n)
        if keep != n:
            merge(model, n, keep, "is computed once: the same value as")


def merge(model, old: int, keep: int, why: str | None) -> None:
    """Replace node ``old`` by ``keep`` everywhere and drop it, keeping what names it had;
    ``why`` (if given) goes into the report of rewrites."""
    od, kd = model.node(old), model.node(keep)
    if why is not None and od["op"] != "literal":
        where = f" at {kd['span']}" if kd["span"] and kd["span"] != od["span"] else ""
        model.rewrites.append(f"{od['span'] or '-'}: `{model.describe(old)}` {why} "
                              f"`{model.describe(keep)}`{where}")
    if kd["name"] is None and od["name"] is not None:
        kd["name"], kd["line"] = od["name"], od["line"]
    if kd.get("grad_of") is None and od.get("grad_of") is not None and \
            not _gradient_of(model, od["grad_of"], keep):
        kd["grad_of"] = od["grad_of"]
        _grad_users(model).setdefault(od["grad_of"], []).append(keep)
    for n in _grad_users(model).pop(old, ()):       # gradients named after old: after keep
        if n in model.G and model.node(n).get("grad_of") == old:
            if _gradient_of(model, keep, n):    # (g_v = v: a value that is its own gradient)
                model.node(n)["grad_of"] = None
                continue
            model.node(n)["grad_of"] = keep
            model.grad_users.setdefault(keep, []).append(n)
    model.replace_uses(old, keep)
    model.remove(old)


def _gradient_of(model, n: int, m: int) -> bool:
    """n is m, or the gradient of m, or of m's gradient ...: naming m after n would make a
    cycle (0.5 * sqnorm(v) has gradient v, which the optimiser merges with v itself)."""
    seen = set()
    while n is not None and n not in seen and n in model.G:
        if n == m:
            return True
        seen.add(n)
        n = model.node(n).get("grad_of")
    return False


def _grad_users(model) -> dict[int, list[int]]:
    """node -> the gradient nodes named after it, built once and kept up to date by merge."""
    if model.grad_users is None:
        model.grad_users = {}
        for n, d in model.G.nodes(data=True):
            if d.get("grad_of") is not None:
                model.grad_users.setdefault(d["grad_of"], []).append(n)
    return model.grad_users

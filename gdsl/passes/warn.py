"""Compile-time warnings about values that can be zero where zero is fatal.

log(0) = -inf, sqrt'(0) = inf and x/0 poison a whole training run. After the
stable fusions (fuse.py) have run, warn where an op's argument must not be 0
(Op.zero_unsafe: log, sqrt, division, the unfused cross-entropy -log(yᵀp)) and
can be exactly 0: the result of an op that can be (Op.zero_able: relu, abs,
square, sqnorm, a difference such as 1 - p, sigmoid or exp, which underflow, a
softmax not fused into a log-sum-exp form), or of one that keeps such a zero
(Op.zero_from: a product, a quotient, a power, -x, x.T ...; not a sum: Σ exp(s - m)
is at least 1).

What can be 0 is found in one pass in topological order (linear in the model).
Given values (inputs, params, consts) are not suspected: nothing is known of them.
"""

from __future__ import annotations

from ..errors import GdslError
from ..ir.ops import OPS
from ..lang.source import source_text


class GdslWarning(GdslError):
    kind = "warning"


def warn_unstable(model) -> None:
    nodes = model.nodes
    zero_from: dict[int, int] = {}      # a value that can be 0 -> the zero-able value it keeps
    # what only the states' updates need is not the loss's: the unbiased running variance's
    # n / (n - 1) is inf for a batch of one example, which training with state never takes
    only_updates = (model.needed(model.updates.values())
                    - model.needed([model.loss, *model.outputs.values()])) if model.updates else ()
    for n in model.topo():
        d = nodes[n]
        if n in only_updates:
            continue
        row = OPS.get(d["op"])
        if row is None or d.get("backward"):
            continue
        if row.zero_able:
            zero_from[n] = n
        elif row.zero_from:
            origin = next((zero_from[d["args"][i]] for i in row.zero_from
                           if d["args"][i] in zero_from), None)
            if origin is not None:
                zero_from[n] = origin
        if row.zero_unsafe is None:
            continue
        position, what = row.zero_unsafe
        arg_id = d["args"][position]
        if arg_id not in zero_from:
            continue
        model.warnings.append(_warning(model, d, what, arg_id, zero_from[arg_id]))


def _warning(model, d, what: str, arg_id: int, origin_id: int) -> GdslWarning:
    arg, origin = model.nodes[arg_id], model.nodes[origin_id]
    source = OPS[origin["op"]]
    who = _who(model, origin)
    if arg_id == origin_id:
        text = f"{what} {who}, which can be exactly 0"
    else:                   # it keeps a zero of another value: 0 where `h` is
        text = (f"{what} `{arg['name'] or _text(model, arg)}`, which can be exactly 0 "
                f"(where {who}{',' if ',' in who else ''} is 0)")
    help = source.zero_help or "keep it away from 0, e.g. add a small constant (+ 1e-12)"
    return GdslWarning(f"{text}: the result can be infinite", d["span"], help=help)


def _who(model, d) -> str:
    """`h`, a relu; a relu; or an operator's result as written: `1 - p`."""
    if not OPS[d["op"]].user:
        return f"`{_text(model, d)}`"
    a = "an" if d["op"][0] in "aeiou" else "a"
    return f"`{d['name']}`, {a} {d['op']}" if d["name"] else f"{a} {d['op']}"


def _text(model, d) -> str:
    text = source_text(model.source, d["span"]) if d.get("span") else ""
    return text or d["name"] or d["op"]

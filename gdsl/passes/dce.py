"""Dead code: drop every node that neither the loss, an output nor a gradient needs.

Model inputs, params and consts stay (they are the module's interface);
an unused named value is reported.
"""

from __future__ import annotations

from ..ir.graph import GIVEN


def dce(model) -> None:
    live = model.needed(model.roots())
    if live >= model.nodes.keys():     # nothing to remove (checked at C speed)
        return
    for n in model.topo()[::-1]:
        d = model.node(n)
        if n in live or d["op"] in GIVEN:
            continue
        if d["name"] and d["op"] != "literal" and not d.get("backward"):
            model.rewrites.append(f"{d['span'] or '-'}: removed `{d['name']}`, which nothing uses")
        model.remove(n)

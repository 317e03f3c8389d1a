"""Schedule both passes: a deterministic topological order, source order breaking ties.

forward_order holds what the loss and the outputs need; backward_order what
the loss and the requested gradients need (the forward values they use
included), both also what the state's updates need (training mode), in the
order the lecture's generic forward and backward passes visit them; hvp_order what the Hessian-vector products need (gdsl compile --hvp).
Nothing else is computed.
"""

from __future__ import annotations


def schedule(model) -> None:
    updates = list(model.updates.values())      # the state's new values: both passes return them
    fwd_roots = [model.loss, *model.outputs.values(), *updates]
    model.forward_order = model.topo(model.needed(fwd_roots))
    model.backward_order = model.topo(model.needed([model.loss, *model.grads.values(), *updates]))
    if model.hvps:
        model.hvp_order = model.topo(model.needed(model.hvps.values()))

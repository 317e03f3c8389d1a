"""Optimisation passes over the IR, each its own small module.

`optimise` runs them in this order (CSE, folding and identities to a fixed
point, CSE again if they changed anything, then dead code); `gdsl compile -O0`
skips them. The stable fusion of softmax with cross-entropy is its own stage
before differentiation (fuse.py).
"""

from __future__ import annotations

from .cse import cse
from .dce import dce
from .fold import fold
from .simplify import simplify


def optimise(model) -> None:
    with model.merging():       # (names found by node: each merge costs its node's uses)
        cse(model)              # one node per distinct (op, args, attrs)
        done = len(model.rewrites)
        fold(model)             # literals only -> a literal
        simplify(model)         # x*1, x+0, --x, (xᵀ)ᵀ, ... (rewrites as data)
        if len(model.rewrites) > done:      # each fold and identity is reported
            cse(model)          # what they made equal
    dce(model)                  # nothing that no root needs

"""Optimisation passes over the IR, each its own small module.

`optimise` runs them in this order (CSE, folding and identities to a fixed
point, then dead code); `gdsl compile -O0` skips them. The stable fusion of
softmax with cross-entropy is its own stage before differentiation (fuse.py).
"""

from __future__ import annotations

from .cse import cse
from .dce import dce
from .fold import fold
from .simplify import simplify

PASSES = [
    ("cse", cse),              # one node per distinct (op, args, attrs)
    ("fold", fold),            # literals only -> a literal
    ("simplify", simplify),    # x*1, x+0, --x, (xᵀ)ᵀ, ... (rewrites as data)
    ("cse", cse),              # what the identities made equal
    ("dce", dce),              # nothing that no root needs
]


def optimise(model) -> None:
    for _, p in PASSES:
        p(model)

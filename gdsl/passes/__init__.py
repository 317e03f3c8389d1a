"""Optimisation passes over the IR, each its own small module.

`optimise` runs them in order; `gdsl compile -O0` skips them.
"""

from __future__ import annotations

PASSES: list = []


def optimise(model) -> None:
    for p in PASSES:
        p(model)

"""Targets: what the IR is emitted as.

A target is a module of this package with a NAME and
``emit_module(model, title, in_place=True, train=None) -> (source, {line: node})``: the
module's text, and for each of its lines the IR node it computes (so that a failure inside
the emitted code is reported at the model's own line). It reads the schedule and the op
table's emission for its NAME (``Op.emit[NAME]``); a new target is one new module here, its
entry in TARGETS, and its entries in the op rows.
"""

from __future__ import annotations

from ..errors import GdslUsageError
from . import numpy_target

TARGETS = {numpy_target.NAME: numpy_target}


def get_target(name: str):
    """The target module called ``name``; raises GdslUsageError naming the choices."""
    if name not in TARGETS:
        raise GdslUsageError(f"unknown target `{name}`; the targets are: " + ", ".join(TARGETS))
    return TARGETS[name]

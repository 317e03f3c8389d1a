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
from . import array_api_target, numba_target, numpy_target, onnx_target

TARGETS = {numpy_target.NAME: numpy_target, array_api_target.NAME: array_api_target,
           onnx_target.NAME: onnx_target, numba_target.NAME: numba_target}


def get_target(name: str):
    """The target module called ``name`` (``array_api`` is ``array-api``); raises
    GdslUsageError naming the choices."""
    name = name.replace("_", "-") if isinstance(name, str) else name
    if name not in TARGETS:
        raise GdslUsageError(f"unknown target `{name}`; the targets are: " + ", ".join(TARGETS))
    return TARGETS[name]

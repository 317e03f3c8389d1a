"""One row per op: every fact about an op is a field of its row in gdsl/ir/ops.py.

No other module names an op (a string equal to an op's name anywhere else in gdsl/ is a fact
about that op outside its row), and every row has the fields its kind needs.
"""

from __future__ import annotations

import ast

import pytest
from helpers import ROOT

from gdsl.ir import ops
from gdsl.ir.ops import OPS, UNSET

# words that are ops' names but mean something else where they stand
NOT_OPS = {
    ("gdsl/ir/init.py", "mean"): "the parameter `mean` of the initialiser normal(mean, std)",
    ("gdsl/tools/train.py", "step"): "tqdm's unit of progress: a gradient step",
    ("gdsl/tools/train.py", "mae"): "the metric mean absolute error that gdsl run reports",
}
TABLE = ROOT / "gdsl" / "ir" / "ops.py"


def op_names_outside_the_table() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted((ROOT / "gdsl").rglob("*.py")):
        if path == TABLE:
            continue
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and node.value in OPS and (where, node.value) not in NOT_OPS):
                found.append((where, node.lineno, node.value))
    return found


def test_no_op_is_named_outside_the_table():
    found = op_names_outside_the_table()
    assert not found, "op names outside gdsl/ir/ops.py (make it a field of the op's row): " + \
        ", ".join(f"{w}:{line} {name!r}" for w, line, name in found)


def test_the_check_sees_op_names(monkeypatch):
    """Not vacuous: a string that names an op outside the table is found."""
    monkeypatch.delitem(NOT_OPS, ("gdsl/tools/train.py", "step"))
    assert any(where == "gdsl/tools/train.py" and name == "step"
               for where, _, name in op_names_outside_the_table())


WRITABLE = {op for op, row in OPS.items() if row.user} | set(ops.BINARY_OPERATORS.values()) | \
    {ops.NEG_OP, ops.TRANSPOSE_OP}       # the ops a model file can write


@pytest.mark.parametrize("name", sorted(OPS))
def test_each_row_has_the_fields_its_kind_needs(name):
    row = OPS[name]
    arity = row.arity
    assert row.emit.get("numpy") is not None, "every op has a NumPy emission (the reference)"
    assert set(row.helpers) <= set(ops.HELPERS), "helpers the emission calls must be defined"
    if row.vjp is not None:
        assert len(row.vjp) == arity, "one vector-Jacobian product (or None) per argument"
        assert row.kink is not UNSET, "a differentiable op says whether it has kinks (gdsl check)"
    if name in WRITABLE:
        differentiable = [i for i, rule in enumerate(row.vjp or ()) if rule is not None]
        assert len(row.jacobian) >= (max(differentiable) + 1 if differentiable else 0), \
            "an op a model writes gives its teaching Jacobian for each differentiable argument"
        assert row.kink is not UNSET or row.vjp is None
    if row.loss:
        assert (row.labels is not None and row.shape is ops.loss_shape
                or row.target is not None and row.shape is ops.target_shape), \
            "a loss takes labels or targets (the position gdsl run binds the data's labels to) " \
            "and is a scalar"
    if row.target is not None:
        assert 0 <= row.target < arity and row.loss
    if row.loss:
        assert row.averages, "a loss averages over the examples (gdsl run --workers takes a " \
            "batch's loss as the example-weighted mean of its shards')"
    assert set(row.whole) <= set(row.keywords), "a whole-number keyword is a keyword"
    for positions in row.affine:
        assert positions and all(0 <= i < arity for i in positions)
    if row.cached:
        assert row.caches is not None and row.cached < arity, "cache arguments need their rule"
    if row.zero_unsafe is not None:
        assert 0 <= row.zero_unsafe[0] < arity and row.zero_unsafe[1]
    if row.mask:
        assert row.constant and row.floats is False, "a mask is piecewise constant, not float"
    for (i, what), replace in row.identities:
        assert 0 <= i < arity and (what in OPS or isinstance(what, (int, float)))
        assert replace.__code__.co_argcount == 1 + arity
    for position in row.scalar_factor:
        assert 0 <= position < arity
    if row.labels is not None:
        assert 0 <= row.labels < arity and 0 <= row.scores < arity

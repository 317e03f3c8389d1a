"""The abstract syntax of gdsl: frozen dataclasses that carry their source span.

The grammar's ``-> alias`` names map onto these classes in gdsl/parse.py.
Equality is by identity (``eq=False``): expressions can nest thousands deep,
and a structural ``__eq__`` or ``__repr__`` would recurse that deep.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Span

Dim = int | str


@dataclass(frozen=True, eq=False)
class Num:
    value: float
    text: str
    span: Span


@dataclass(frozen=True, eq=False)
class Name:
    id: str
    span: Span


@dataclass(frozen=True, eq=False)
class BinOp:
    op: str  # one of + - * / @ **
    left: Expr
    right: Expr
    span: Span
    op_span: Span


@dataclass(frozen=True, eq=False)
class Unary:
    op: str  # + or -
    operand: Expr
    span: Span


@dataclass(frozen=True, eq=False)
class Transpose:
    operand: Expr
    span: Span


@dataclass(frozen=True, eq=False)
class Keyword:
    name: str
    value: Expr
    span: Span


@dataclass(frozen=True, eq=False)
class Call:
    func: str
    args: tuple[Expr, ...]
    keywords: tuple[Keyword, ...]
    span: Span
    func_span: Span


Expr = Num | Name | BinOp | Unary | Transpose | Call


@dataclass(frozen=True, eq=False)
class DimSpec:
    value: Dim
    span: Span


@dataclass(frozen=True, eq=False)
class Init:
    """A param initialiser: ``~ normal(0, 0.01)``, ``~ zeros``."""

    name: str
    args: tuple[float, ...]
    span: Span


@dataclass(frozen=True, eq=False)
class Assign:
    target: str
    value: Expr
    span: Span
    target_span: Span


@dataclass(frozen=True, eq=False)
class Input:
    name: str
    shape: tuple[DimSpec, ...] | None
    span: Span
    name_span: Span


@dataclass(frozen=True, eq=False)
class Param:
    name: str
    shape: tuple[DimSpec, ...] | None
    init: Init | None
    span: Span
    name_span: Span


@dataclass(frozen=True, eq=False)
class Const:
    name: str
    value: float | None
    span: Span
    name_span: Span


@dataclass(frozen=True, eq=False)
class Loss:
    name: str
    span: Span
    name_span: Span


@dataclass(frozen=True, eq=False)
class Output:
    names: tuple[Name, ...]
    span: Span


@dataclass(frozen=True, eq=False)
class Option:
    name: str
    value: float | str
    span: Span


@dataclass(frozen=True, eq=False)
class Train:
    """Training settings written in the model: ``train lr=0.1, epochs=20``."""

    options: tuple[Option, ...]
    span: Span


@dataclass(frozen=True, eq=False)
class DimDecl:
    """A named size with a default: ``dim m = 100`` (data, params or --set m=64 override it)."""

    name: str
    value: float
    span: Span
    name_span: Span
    value_span: Span


@dataclass(frozen=True, eq=False)
class Metric:
    """What gdsl run reports: ``metric rmse, r2``."""

    names: tuple[Name, ...]
    span: Span


Stmt = Assign | Input | Param | Const | Loss | Output | Train | DimDecl | Metric


@dataclass(eq=False)
class Program:
    statements: list[Stmt] = field(default_factory=list)

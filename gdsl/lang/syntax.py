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


@dataclass(frozen=True, eq=False)
class Index:
    """``x[t]``: the t-th slice of x along axis 0 (counted from 1), or ``h[t]``, a value a
    loop names; the index is a whole number, the loop's variable or a dim, with + - *."""

    name: str
    index: Expr
    span: Span
    name_span: Span


@dataclass(frozen=True, eq=False)
class Choice:
    """``a if training else b``: a in training mode, b in evaluation mode."""

    train: Expr
    eval: Expr
    span: Span


Expr = Num | Name | BinOp | Unary | Transpose | Call | Index | Choice


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
    index: Expr | None = None       # h[t] = ...: the value named h[t] (target_span: `h[t]`)


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


@dataclass(frozen=True, eq=False)
class For:
    """``for t in 1..T:`` and its body, unrolled at compile time for t = 1, 2, ..., T (both
    ends included, as the lecture's t = 1..T). The body is the statement after the `:`
    (inline) or the lines below indented further than `for`."""

    var: str
    start: Expr
    stop: Expr
    body: tuple[Stmt, ...]
    inline: bool
    span: Span          # `for t in 1..T:`
    var_span: Span


@dataclass(frozen=True, eq=False)
class State:
    """State the training loop updates, not differentiated: ``state mu[m, 1] = 0``."""

    name: str
    shape: tuple[DimSpec, ...]
    value: float
    span: Span
    name_span: Span


@dataclass(frozen=True, eq=False)
class Update:
    """A state's update in training mode: ``mu <- 0.9 * mu + 0.1 * mean(z, axis=1)``."""

    target: str
    value: Expr
    span: Span
    target_span: Span


Stmt = (Assign | Input | Param | Const | Loss | Output | Train | DimDecl | Metric | For
        | State | Update)


def walk(statements) -> list[tuple[Stmt, int]]:
    """Each statement in the order written, with how many loops it is inside; a loop's body
    written on its own line (not inline) follows the loop. No recursion: loops nest deep."""
    out: list[tuple[Stmt, int]] = []
    todo = [(st, 0) for st in reversed(statements)]
    while todo:
        st, depth = todo.pop()
        out.append((st, depth))
        if isinstance(st, For) and not st.inline:
            todo += [(b, depth + 1) for b in reversed(st.body)]
    return out


@dataclass(eq=False)
class Program:
    statements: list[Stmt] = field(default_factory=list)

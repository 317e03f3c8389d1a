"""Print the few kinds of Python ast node that emission builds, fast.

`ast.unparse` is general and spends most of a large model's emission time on
bookkeeping; the statements gdsl emits use a dozen node kinds, printed here
with Python's own precedence rules. Anything else goes to `ast.unparse`. The
tests parse every printed statement back and compare it with the ast it came
from, so this printer can only ever say what the ast says.
"""

from __future__ import annotations

import ast
import math

# Python's precedence levels, low to high (the subset gdsl emits)
CMP, ARITH, TERM, FACTOR, POWER, PRIMARY = range(6)
BINOPS = {ast.Add: ("+", ARITH), ast.Sub: ("-", ARITH), ast.Mult: ("*", TERM),
          ast.Div: ("/", TERM), ast.MatMult: ("@", TERM), ast.Pow: ("**", POWER)}
CMPOPS = {ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<=", ast.Eq: "=="}


def expr(node: ast.expr) -> tuple[str, int]:
    """(text, precedence) of an expression."""
    t = type(node)
    if t is ast.Name:
        return node.id, PRIMARY
    if t is ast.Constant:
        v = node.value
        if isinstance(v, float) and math.isinf(v):
            return "1e309", PRIMARY
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            return repr(v), FACTOR
        return repr(v), PRIMARY
    if t is ast.BinOp:
        sym, prec = BINOPS[type(node.op)]
        left, lp = expr(node.left)
        right, rp = expr(node.right)
        if prec == POWER:       # right-associative; its left operand is a primary
            if lp < PRIMARY:
                left = f"({left})"
            if rp < FACTOR:
                right = f"({right})"
        else:
            if lp < prec:
                left = f"({left})"
            if rp <= prec:
                right = f"({right})"
        return f"{left} {sym} {right}", prec
    if t is ast.UnaryOp and type(node.op) is ast.USub:
        operand, p = expr(node.operand)
        return "-" + (operand if p >= FACTOR else f"({operand})"), FACTOR
    if t is ast.Compare and len(node.ops) == 1 and type(node.ops[0]) in CMPOPS:
        left, lp = expr(node.left)
        right, rp = expr(node.comparators[0])
        left = left if lp > CMP else f"({left})"
        right = right if rp > CMP else f"({right})"
        return f"{left} {CMPOPS[type(node.ops[0])]} {right}", CMP
    if t is ast.Attribute:
        return f"{_primary(node.value)}.{node.attr}", PRIMARY
    if t is ast.Call:
        parts = [expr(a)[0] for a in node.args]
        parts += [f"{k.arg}={expr(k.value)[0]}" for k in node.keywords]
        func = node.func        # np.exp(...), the common case, without two more calls
        if type(func) is ast.Attribute and type(func.value) is ast.Name:
            return f"{func.value.id}.{func.attr}({', '.join(parts)})", PRIMARY
        return f"{_primary(func)}({', '.join(parts)})", PRIMARY
    if t is ast.Subscript:
        return f"{_primary(node.value)}[{expr(node.slice)[0]}]", PRIMARY
    if t is ast.Tuple:
        items = [expr(e)[0] for e in node.elts]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")", PRIMARY
    return ast.unparse(node), -1     # anything else: parenthesised wherever it goes


def _primary(node: ast.expr) -> str:
    text, p = expr(node)
    if p < PRIMARY or type(node) is ast.Constant and isinstance(node.value, (int, float)):
        return f"({text})"
    return text


def statement(node: ast.stmt) -> str:
    if type(node) is ast.Assign and len(node.targets) == 1 and type(node.targets[0]) is ast.Name:
        return f"{node.targets[0].id} = {expr(node.value)[0]}"
    if type(node) is ast.AugAssign and type(node.target) is ast.Name and type(node.op) in BINOPS:
        return f"{node.target.id} {BINOPS[type(node.op)][0]}= {expr(node.value)[0]}"
    if type(node) is ast.Expr:
        return expr(node.value)[0]
    if not hasattr(node, "lineno"):
        node.lineno = 1
    return ast.unparse(node)

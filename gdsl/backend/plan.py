"""The plan of one emitted function: what each value's array is, decided before any code is
written. A pass over the schedule finds who reads what and how often, which values are
boolean masks to cast, which unnamed values are read once (inlined into their reader), and
which results can be computed in a dead argument's array (`out=`, `+=`), as careful
hand-written NumPy does. The NumPy target (gdsl.backend.numpy_target) reads the plan.
"""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from ..ir.ops import BINARY_OPERATORS, LOAD, OPS


def functions(model) -> list[tuple[str, list[int], list, str]]:
    """The functions a module holds, as (name, schedule, roots, docstring): forward;
    value_and_grad for a model with a loss; hvp when asked for (model.hvps)."""
    updates = list(model.updates.values())      # training mode: the states' new values
    fwd_roots = [model.loss] if model.loss is not None else []
    out = [("forward", model.forward_order, fwd_roots + list(model.outputs.values()) + updates,
            "The forward pass: the loss, every output and the new value of each state, by name."
            if updates else "The forward pass: the loss and every output, by name.")]
    if model.loss is not None:
        out.append(("value_and_grad", model.backward_order,
                    [model.loss, *model.grads.values(), *updates],
                    "The loss and its gradient with respect to " + (", ".join(model.wrt) or
                                                                     "nothing")
                    + (", and {state: new value}" if updates else "") + "."))
    if model.hvps:
        out.append(("hvp", model.hvp_order, list(model.hvps.values()),
                    "H v: the Hessian of the loss times v = {name: direction} (one array per "
                    "name of " + ", ".join(model.wrt) + "), by name."))
    return out


@dataclass
class Plan:
    """How one function computes the nodes of ``order`` (the schedule) for its ``rooted``."""

    order: list[int]
    rooted: set[int]
    nodes: dict                              # node -> its attributes (the model's own)
    shape: dict                              # node -> its shape, dims bound
    position: dict[int, int] = field(default_factory=dict)   # node -> its place in the order
    uses: Counter = field(default_factory=Counter)           # node -> how many reads
    user: dict[int, int] = field(default_factory=dict)       # node -> its last reader
    shares: dict[int, tuple] = field(default_factory=dict)   # a view -> the arrays it views
    as_float: set[int] = field(default_factory=set)          # masks cast to float where read
    temporary: set[int] = field(default_factory=set)         # unnamed, read once
    inplace: dict[int, int] = field(default_factory=dict)    # argument -> result computed in it
    into: dict[int, int] = field(default_factory=dict)       # result -> the argument it takes
    renamed: dict[int, int] = field(default_factory=dict)    # unnamed argument -> that result
    inlinable: set[int] = field(default_factory=set)         # folded into their reader
    home: dict[int, int] = field(default_factory=dict)       # node -> whose name its array has
    clobbered: dict[int, int] = field(default_factory=dict)  # array -> where it is overwritten
    fresh: set[int] = field(default_factory=set)             # arrays of the pass's own
    readonly: set[int] = field(default_factory=set)          # read-only views (broadcast)

    def borrowed(self, n: int) -> bool:
        """n's array is not one of the pass's own that the caller may update: a leaf (the
        caller's own array: `J = 0.5 * sqnorm(W)` has the gradient W), a number, or a
        read-only view (`J = sum(W)`), or a view of one."""
        return n in self.readonly or not all(b in self.fresh for b in self.shares.get(n, (n,)))


def plan(model, order: list[int], roots, shape: dict, in_place: bool = True) -> Plan:
    """The plan of the function that computes ``roots`` by ``order``; without ``in_place``
    (-O0) every value keeps an array of its own."""
    p = Plan(order, set(roots), {n: model.node(n) for n in order}, shape)
    p.position = {n: i for i, n in enumerate(order)}
    p.inplace = _analyse(p, model.labels, in_place)
    p.into = {n: a for a, n in p.inplace.items()}
    p.renamed = {a: n for a, n in p.inplace.items() if a in p.temporary}
    # unnamed values read once may be folded into the expression that reads them
    p.inlinable = p.temporary - p.rooted - p.inplace.keys() - p.into.keys()
    # the end of each chain of results computed in one array (a -> n -> ...), found once:
    # walked backwards, a node's home is that of the result that takes its array
    for n in reversed(order):
        p.home[n] = p.home.get(p.renamed[n], p.renamed[n]) if n in p.renamed else n
    # where each array is overwritten by a result computed in it (a named argument's)
    p.clobbered = {a: p.position[n] for a, n in p.inplace.items() if a not in p.renamed}
    return p


# Comparisons (the masks of relu, maximum, ... in the backward pass) give NumPy bool arrays.
# A product keeps their 0/1 meaning (True * 2.5 = 2.5, True * True = True), and so do /, sum
# and mean; but True + True is True, -True raises, and a bool gradient is not a number.
# Where a mask reaches anything else it is cast: `(x > 0) * 1.0`.
ADD, SUB, MUL = (BINARY_OPERATORS[s] for s in "+-*")


def _bool_arrays_to_cast(boolean: set[int], user_ops: dict[int, list[str]],
                         roots: set[int]) -> set[int]:
    """The masks to cast: those returned or read by an op that does not keep their meaning
    (boolean and the ops reading each come from _analyse)."""
    return {n for n in boolean
            if n in roots or any(not OPS[op].keeps_mask for op in user_ops.get(n, ()))}


def _analyse(p: Plan, labels, in_place: bool) -> dict[int, int]:
    """One pass over the schedule: who reads what and how often (uses, user: the last
    reader), which values are masks (boolean), which are unnamed and read once
    (temporary), and the results that can be computed in a dead argument's array
    (see _in_place, which this pass collects the facts for)."""
    nodes, shape, shares, order = p.nodes, p.shape, p.shares, p.order
    arg_lists = [nodes[n]["args"] for n in order]
    p.uses = uses = Counter(chain.from_iterable(arg_lists))
    p.user = {a: n for n, args in zip(order, arg_lists) for a in args}  # the last reader
    boolean: set[int] = set()
    mask_users: dict[int, list[str]] = {}   # mask -> the ops that read it
    last_read: dict[int, int] = {}   # array -> the last node that reads its values
    p.fresh = fresh = set()          # arrays of the pass's own (reading a view reads them)
    readonly = p.readonly
    # Only a surely float array may take a result (masks x > 0, integer labels and
    # literals times them are not): see Op.floats; otherwise one that mixes in a surely
    # float value argument.
    surely_float = set()
    candidates = []                  # one ufunc of its arguments, shaped
    for n, args in zip(order, arg_lists):
        d = nodes[n]
        op = d["op"]
        row = OPS.get(op)
        if row is None:              # input, param, const, literal: no arguments
            if op in ("input", "param") and d["name"] not in labels:
                surely_float.add(n)
            continue
        if boolean and not boolean.isdisjoint(args):
            for a in args:
                if a in boolean:
                    mask_users.setdefault(a, []).append(op)
        if row.mask or op == MUL and boolean.issuperset(args):
            boolean.add(n)
        floats, shape_only = row.floats, row.shape_only
        if shape_only or shares and not shares.keys().isdisjoint(args):
            read = []                # values read: a view's base, not a shape's owner
            for i, a in enumerate(args):
                if i not in shape_only:
                    read += shares.get(a, (a,))
            values = [a for i, a in enumerate(args) if i not in shape_only]
        else:
            read = values = args
        if floats is None and not surely_float.isdisjoint(values):
            floats = True
        for b in read:
            last_read[b] = n
        if row.fresh:
            fresh.add(n)
        else:
            shares[n] = tuple(read)
            if row.readonly or not readonly.isdisjoint(values):
                readonly.add(n)
        if floats:
            surely_float.add(n)
        if not d["attrs"] and shape[n]:
            candidates.append(n)
    p.as_float = _bool_arrays_to_cast(boolean, mask_users, p.rooted)
    # unnamed values read once: inlined, or named after the result computed in their array
    p.temporary = {n for n, k in uses.items() if k == 1 and nodes[n]["name"] is None
                      and nodes[n].get("grad_of") is None}
    if not in_place:
        return {}
    for r in p.rooted:            # returned, so read after everything
        for b in shares.get(r, (r,)):
            last_read[b] = None
    return _in_place(p, candidates, last_read, fresh, surely_float)

def _in_place(p: Plan, candidates, last_read, fresh, surely_float) -> dict[int, int]:
    """Results that can be computed in a dead argument's array, as a hand-written
    `S += b; S -= S.max(0); np.exp(S, out=S)` is. Returns {argument a: result n}.

    n must be one NumPy ufunc of its arguments (a + b, np.exp(a), np.maximum(a, 0)) of
    a's shape, and a a fresh float array of the pass's own that nothing reads after n
    (reads of its shape alone, s.shape[1], do not count). An unnamed a read only by n
    takes n's name: `g_W = g_s @ x.T; g_W += W * t2`. A named a keeps its name and n
    is written into it: `e = np.subtract(s, m, out=s)` (see `statements`). The emitted
    code expects the arrays of one call to share a float dtype (CompiledModel casts).

    Other operators on an unnamed temporary (t4 * (1.0 - t3 * t3)) stay one expression:
    NumPy reuses such temporaries of 256 KiB or more itself (it elides them) and the
    line reads better; but not the result of `out=`, which NumPy cannot tell from a
    named array, nor in a call (np.exp(s - m)), where NumPy elides nothing.
    """
    nodes, position, shape, rooted = p.nodes, p.position, p.shape, p.rooted
    as_float, temporary = p.as_float, p.temporary
    out: dict[int, int] = {}
    results = set()                  # the results computed in place so far
    for n in candidates:
        if n in as_float:
            continue
        d = nodes[n]
        args, shape_n = d["args"], shape[n]
        call, operands = _ufunc_operands(OPS[d["op"]], d)
        # the operand computed last, so that the array is allocated as late as it can be
        if len(operands) == 2:
            i, j = operands
            if position[args[i]] < position[args[j]]:
                operands = (j, i)
        elif len(operands) > 2:
            operands = sorted(operands, key=lambda i: position[args[i]], reverse=True)
        for i in operands:
            a = args[i]
            if (last_read.get(a) == n and a in fresh and a in surely_float
                    and a not in rooted and a not in out and a not in as_float
                    and args.count(a) == 1 and shape[a] == shape_n
                    and (call or d["op"] == ADD or d["op"] == SUB and i == 0
                         or a in results or a not in temporary)):
                out[a] = n
                results.add(n)
                break
    return out


_UFUNC_OF = {ast.Add: np.add.__name__, ast.Sub: np.subtract.__name__,
             ast.Mult: np.multiply.__name__, ast.Div: np.divide.__name__, ast.Pow: np.power.__name__}


def as_ufunc(expr: ast.expr) -> tuple[str, list[ast.expr]] | None:
    """(name, operands) when expr is one NumPy ufunc of its operands (a + b, -a, np.exp(a),
    np.maximum(a, 0)); else None."""
    if type(expr) is ast.BinOp and type(expr.op) in _UFUNC_OF:
        return _UFUNC_OF[type(expr.op)], [expr.left, expr.right]
    if type(expr) is ast.UnaryOp and type(expr.op) is ast.USub:
        return "negative", [expr.operand]
    if (type(expr) is ast.Call and not expr.keywords and type(expr.func) is ast.Attribute
            and type(expr.func.value) is ast.Name and expr.func.value.id == "np"
            and isinstance(getattr(np, expr.func.attr, None), np.ufunc)):
        return expr.func.attr, list(expr.args)
    return None


def _ufunc_operands(op, d) -> tuple[bool, list[int]]:
    """Whether op emits as a call (np.exp(a)) rather than an operator (a + b), and the
    positions of the arguments that are operands of that one ufunc (cached by op and arity)."""
    if d["attrs"]:                      # reductions, softmax, ...: never one ufunc
        return False, ()
    key = (op.name, len(d["args"]))
    if key not in _operands_cache:
        probe = [ast.Name(f"_{i}", LOAD) for i in range(len(d["args"]))]
        expr = op.emit["numpy"](probe, d["attrs"], [None] * len(probe))
        form = as_ufunc(expr)
        _operands_cache[key] = (type(expr) is ast.Call, [
            i for i, a in enumerate(probe) if form and any(x is a for x in form[1])])
    return _operands_cache[key]


_operands_cache: dict = {}



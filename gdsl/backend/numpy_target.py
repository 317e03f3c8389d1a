"""Emit the model as a standalone NumPy module, through Python's ast module.

Every name in the emitted code comes from the Namer (model names are kept
where Python allows them and mangled where not), every number is an
ast.Constant and every op comes from the op table, so nothing in a model
file can add code of its own. Values used once and unnamed are folded into
the expression that uses them; named values, gradients and shared values
get a statement each, with the model's source line as a comment.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import unicodedata

from ..ir.ops import HELPER_DEPS, HELPERS, LOAD, OPS, STORE, const, np_
from ..lang.source import source_text
from .plan import ADD, Plan, as_ufunc, plan
from .unparse import statement

NAME = "numpy"
MAX_INLINE_DEPTH = 4
MODULE_NAMES = {"np", "arrays", "forward", "value_and_grad", "INPUTS", "PARAMS", "CONSTS", "INIT",
                "LOSS", "OUTPUTS", "WRT", "LABELS", "SHAPES", "TRAIN"}
RESERVED = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins)) | MODULE_NAMES


class Namer:
    """Gives every value one Python name: the model's own where it can, unique, never reserved."""

    def __init__(self):
        self.used: set[str] = set()
        self.names: dict[int, str] = {}
        self.temps = 0
        self.suffix: dict[str, int] = {}    # base -> the last k tried (m, m_2, m_3 ...: linear)

    def fresh(self, base: str) -> str:
        base = unicodedata.normalize("NFKC", base)
        if not base.isidentifier() or base.startswith("_") or not base.isascii() and len(base) > 64:
            base = "v_" + "".join(c if c.isalnum() and c.isascii() else "_" for c in base)[:40]
            base = base if base.isidentifier() else "v"
        base = base[:80]
        name = base
        k = self.suffix.get(base, 1)
        if k > 1:
            name = f"{base}_{k}"
        while name in RESERVED or name in self.used or keyword.iskeyword(name):
            k += 1
            name = f"{base}_{k}"
        self.suffix[base] = k
        self.used.add(name)
        return name

    def of(self, model, n: int) -> str:
        if n not in self.names:
            d = model.node(n)
            if d["name"] is not None and d.get("grad_of") is None:
                base = d["name"]
            elif _hint(model, d):
                base = _hint(model, d)
            elif _grad_of(model, d) is not None and model.node(d["grad_of"])["name"]:
                base = "g_" + model.node(d["grad_of"])["name"]
            elif d.get("hint"):
                base = d["hint"]
            else:
                self.temps += 1
                base = f"t{self.temps}"
            self.names[n] = self.fresh(base)
        return self.names[n]


def _hint(model, d) -> str | None:
    """A name for d's value from its op and its arguments' names (the lecture's Y for y)."""
    row = OPS.get(d["op"])
    if row is None or row.hint is None:
        return None
    return row.hint([model.node(a)["name"] for a in d["args"]])


def _grad_of(model, d):
    """The node d is the gradient of, if it is still in the graph (an optimisation may have
    removed it: x + -W -> x - W leaves the gradient of the gone `-W`)."""
    g = d.get("grad_of")
    return g if g is not None and g in model.G else None


def _unparse(node) -> str:
    if isinstance(node, ast.stmt):
        return statement(node)
    return ast.unparse(node)


def _name(id: str) -> ast.Name:
    return ast.Name(id, LOAD)


def _str(s: str) -> ast.Constant:
    return ast.Constant(s)


class _Function:
    """One emitted function: the nodes its roots need, in schedule order, as its plan says."""

    def __init__(self, model, namer: Namer, p: Plan):
        self.m, self.namer, self.plan = model, namer, p

    def statements(self) -> list[tuple]:
        """[(comment, ast statement, node, names it reads, the name of the array of the
        pass's own it assigns, or None)] in order."""
        m, namer, p = self.m, self.namer, self.plan
        position, nodes, shape, user, home = p.position, p.nodes, p.shape, p.user, p.home
        as_float, inlinable, into, shares, clobbered = (p.as_float, p.inlinable, p.into,
                                                         p.shares, p.clobbered)
        names = namer.names
        # node -> (expression, inlining depth, names it reads, arrays whose values it reads)
        exprs: dict[int, tuple[ast.expr, int, tuple, tuple]] = {}
        never = len(position)
        out = []
        for n in model_leaves(m):       # names Python cannot take as parameters: from **arrays
            d = m.node(n)
            name = namer.of(m, n)
            if name != d["name"] and n in position:
                if d["op"] == "const" and d.get("value") is not None:
                    value = ast.Call(ast.Attribute(_name("arrays"), "get", LOAD),
                                     [_str(d["name"]), const(d["value"])], [])
                else:
                    value = ast.Subscript(_name("arrays"), _str(d["name"]), LOAD)
                out.append((None, ast.Assign([ast.Name(name, STORE)], value), n, (), None))
            exprs[n] = (_name(name), 0, (name,), ())
        last_line = None
        for n in p.order:
            d = nodes[n]
            row = OPS.get(d["op"])
            if row is None:
                if d["op"] == "literal":
                    exprs[n] = (const(d["value"]), 0, (), ())
                continue
            args = d["args"]
            shape_only = row.shape_only
            operands, depth, reads, arrays = [], 0, (), ()
            for i, a in enumerate(args):
                e, dep, r, arr = exprs[a]
                operands.append(e)
                depth = max(depth, dep)
                reads += r
                if arr and i not in shape_only:
                    arrays += arr
            if args and all(nodes[a]["op"] == "literal" for a in args if a in nodes):
                # only numbers: computed as NumPy computes (1.0 / 0.0 is inf there, an error
                # in Python's floats); the optimiser folds the finite ones away
                operands[0] = np_("float64", operands[0])
            expr = row.emit["numpy"](operands, d["attrs"], [shape[a] for a in args])
            if n in as_float:
                expr = ast.BinOp(expr, ast.Mult(), ast.Constant(1.0))
            # inlined, n is evaluated where its user is: not after an array it reads is reused
            if (n in inlinable and depth < MAX_INLINE_DEPTH
                    and (not clobbered or all(clobbered.get(a, never) > position[user[n]]
                                              for a in arrays))):
                exprs[n] = (expr, depth + 1, reads, arrays)
                continue
            # the node whose name n's array takes: n's own, or that of the result computed
            # in its array when n is unnamed and read by that result alone
            target = names.get(home[n]) or namer.of(m, home[n])
            if n in into:
                stmt = _written_into(expr, target, exprs[into[n]][0].id)
            else:
                stmt = ast.Assign([ast.Name(target, STORE)], expr)
            comment = self._comment(d)
            if comment == last_line:
                comment = None
            else:
                last_line = comment
            own = target if type(stmt) is not ast.Expr and d["shape"] != () else None
            out.append((comment, stmt, n, reads, own))
            exprs[n] = (_name(target), 0, (target,), shares.get(n, (n,)))
        self.exprs = exprs
        return out

    def _comment(self, d) -> str | None:
        """The comment above d's statement: its line of the model (source_text caches the
        texts), or for the sum of a gradient's parts, the value it is the gradient of."""
        span = d.get("line") or d.get("span")
        if span is None:
            return None
        if d["op"] == ADD and _grad_of(self.m, d) is not None:
            return f"grad of {self.m.label(d['grad_of'])}: summed over its uses"
        text = source_text(self.m.source, span)
        if not text:
            return None
        return ("grad of: " if d.get("backward") else "") + text


def _written_into(expr: ast.expr, target: str, buffer: str) -> ast.stmt:
    """`target = expr` computed in the array named buffer: `t += b` or `np.exp(t, out=t)` when
    target is buffer, `e = np.subtract(s, m, out=s)` when not."""
    ufunc, operands = as_ufunc(expr)
    if target == buffer and type(expr) is ast.BinOp:
        left, right = expr.left, expr.right
        if type(right) is ast.Name and right.id == buffer and type(expr.op) in (ast.Add, ast.Mult):
            left, right = right, left
        if type(left) is ast.Name and left.id == buffer:
            return ast.AugAssign(ast.Name(target, STORE), expr.op, right)
    call = np_(ufunc, *operands)
    call.keywords = [ast.keyword("out", _name(buffer))]
    if target == buffer:
        return ast.Expr(call)
    return ast.Assign([ast.Name(target, STORE)], call)


def _metadata(model, train: dict) -> list[ast.stmt]:
    def shape_of(n):
        s = model.node(n)["shape"] if model.node(n).get("declared") else None
        return ast.Constant(None) if s is None else ast.Tuple([ast.Constant(d) for d in s], LOAD)

    def table(d, value):
        return ast.Dict([_str(k) for k in d], [value(k, v) for k, v in d.items()])

    from ..ir.init import DEFAULT_INIT
    rows = [
        ("INPUTS", table(model.inputs, lambda k, n: shape_of(n))),
        ("PARAMS", table(model.params, lambda k, n: shape_of(n))),
        ("CONSTS", table(model.consts, lambda k, n: const(model.node(n)["value"])
                         if model.node(n)["value"] is not None else ast.Constant(None))),
        ("INIT", table(model.params, lambda k, n: ast.Tuple(
            [_str(model.node(n).get("init", DEFAULT_INIT)[0]),
             const(tuple(float(a) for a in model.node(n).get("init", DEFAULT_INIT)[1]))], LOAD))),
        ("LOSS", ast.Constant(model.loss_name)),
        ("OUTPUTS", ast.Tuple([_str(k) for k in model.outputs], LOAD)),
        ("WRT", ast.Tuple([_str(k) for k in model.wrt], LOAD)),
        ("LABELS", ast.Tuple([_str(k) for k in sorted(model.labels)], LOAD)),
        ("TRAIN", ast.Dict([_str(k) for k in train],
                           [_str(v) if isinstance(v, str) else const(v) for v in train.values()])),
    ]
    return [ast.Assign([ast.Name(k, STORE)], v) for k, v in rows]


def model_leaves(model) -> list[int]:
    return [*model.inputs.values(), *model.params.values(), *model.consts.values()]


def _signature(model, namer: Namer, fname: str, order: list[int]) -> str:
    """``def f(*, x, y, W, b, lam=0.01):`` -- Python itself checks the names passed in.
    A model name that Python cannot take as a parameter comes in through ``**arrays``."""
    needed = set(order)
    kwonly, defaults, rest = [], [], False
    for n in model_leaves(model):
        d = model.node(n)
        if namer.of(model, n) != d["name"]:
            rest = True
            continue
        kwonly.append(ast.arg(d["name"]))
        if d["op"] == "const" and d.get("value") is not None:
            defaults.append(const(d["value"]))
        else:
            defaults.append(None if n in needed else ast.Constant(None))
    args = ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=kwonly, kw_defaults=defaults,
                         kwarg=ast.arg("arrays") if rest else None, defaults=[])
    fn = ast.FunctionDef(fname, args, [ast.Pass()], [], None, None, type_params=[])
    return _unparse(fn).split("\n")[0]


def emit_module(model, title: str, in_place: bool = True,
                train: dict | None = None) -> tuple[str, dict[int, int]]:
    """The module's source text, and a map from each emitted line to the node it computes.
    Without in_place (-O0) every value gets an array of its own: `s = z + b`."""
    namer = Namer()
    for n in sorted(n for n, name in model.G.nodes(data="name") if name is not None):
        if model.node(n)["op"] != "literal":  # model names first, in source order
            namer.of(model, n)
    lines: list[str] = []
    linemap: dict[int, int] = {}
    shape = {n: model.dims.shape(d["shape"]) for n, d in model.G.nodes(data=True)}

    def put(text: str, node: int | None = None):
        for part in text.split("\n"):
            lines.append(part)
            if node is not None:
                linemap[len(lines)] = node

    put('"""' + _doc_escape(title) + "\n\nGenerated by gdsl; needs only NumPy. Do not edit: recompile the model.\n" + '"""')
    put("import numpy as np")
    put("")
    helpers = _helpers_needed(model)
    for name in sorted(helpers):
        put("")
        put(_unparse(ast.parse(HELPERS[name].strip())))
    put("")
    for stmt in _metadata(model, train or {}):
        put(_unparse(stmt))

    fwd_roots = [model.loss, *model.outputs.values()] if model.loss is not None else list(model.outputs.values())
    sections = [("forward", model.forward_order, fwd_roots,
                 "The forward pass: the loss and every output, by name.")]
    if model.loss is not None:
        sections.append(("value_and_grad", model.backward_order, [model.loss, *model.grads.values()],
                         "The loss and its gradient with respect to " + (", ".join(model.wrt) or "nothing") + "."))
    for fname, order, roots, doc in sections:
        f = _Function(model, namer, plan(model, order, roots, shape, in_place))
        put("")
        put("")
        put(_signature(model, namer, fname, order))
        put('    """' + _doc_escape(doc) + '"""')
        body = f.statements()
        ex = f.exprs
        if fname == "forward":
            keys = ([model.loss_name] if model.loss is not None else []) + list(model.outputs)
            vals = ([model.loss] if model.loss is not None else []) + list(model.outputs.values())
            ret = ast.Return(ast.Dict([_str(k) for k in keys], [ex[v][0] for v in vals]))
        else:
            grads = ast.Dict([_str(k) for k in model.grads], [ex[v][0] for v in model.grads.values()])
            ret = ast.Return(ast.Tuple([ex[model.loss][0], grads], LOAD))
        returned = {v for n in ([model.loss, *model.grads.values()] if fname != "forward" else
                                fwd_roots) for v in ex[n][2]}
        dead_after = _liveness(body, returned)
        for i, (comment, stmt, node, _, _) in enumerate(body):
            if comment:
                lines.append("    # " + comment)
            lines.append("    " + statement(stmt))
            linemap[len(lines)] = node
            if i in dead_after:
                lines.append("    del " + ", ".join(dead_after[i]))
        put("    " + _unparse(ret))
    return "\n".join(lines) + "\n", linemap


def _liveness(body, returned: set[str]) -> dict[int, list[str]]:
    """After which statement each intermediate is used for the last time: `del` it there,
    so an array lives only as long as the rest of the pass needs it."""
    temps = {own for _, _, _, _, own in body if own is not None}
    last: dict[str, int] = {}
    for i, (_, _, _, reads, _) in enumerate(body):
        for name in reads:
            last[name] = i
    dead: dict[int, list[str]] = {}
    for name, i in last.items():
        if name in temps and name not in returned:
            dead.setdefault(i, []).append(name)
    return dead


def _doc_escape(s: str) -> str:
    return "".join(c if c.isprintable() and c not in '"\\' else "_" for c in s)


def _helpers_needed(model) -> set[str]:
    node = model.node
    ops = {node(n)["op"] for n in model.backward_order} | {node(n)["op"] for n in model.forward_order}
    need: set[str] = set()
    for op in ops:
        if op in OPS:
            need.update(OPS[op].helpers)
    for h in list(need):
        need.update(HELPER_DEPS.get(h, ()))
    return need

"""What every target that writes a Python module shares: one Namer for every name, the
metadata tables, the signature, the source-line comments, `del` after a value's last use, and
the layout of the module (docstring, imports, helpers, tables, forward, value_and_grad).

A target supplies its own header, helpers and a Function class that turns the plan of one
function (gdsl.backend.plan) into statements; see numpy_target and array_api_target.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
import unicodedata

from ..ir.ops import LOAD, OPS, STORE, const
from ..lang.source import source_text
from .plan import ADD, functions, plan
from .unparse import statement

MAX_INLINE_DEPTH = 4
# the names every emitted module defines
MODULE_NAMES = {"arrays", "forward", "value_and_grad", "INPUTS", "PARAMS", "CONSTS", "INIT",
                "LOSS", "OUTPUTS", "WRT", "LABELS", "SHAPES", "TRAIN", "STATE", "MODE"}
PYTHON_NAMES = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins))


def direction_arg(model) -> str:
    """The name of hvp's parameter of directions: v, unless the model has a value named v."""
    given = {model.node(n)["name"] for n in model_leaves(model)}
    return next(k for k in ("v", "directions", "v_directions", "hvp_directions") if k not in given)


INDEXED = re.compile(r"\[(\d+)\]")


class Namer:
    """Gives every value one Python name: the model's own where it can, unique, never reserved."""

    def __init__(self, reserved: set[str] | None = None):
        # (by default what the NumPy target's module defines)
        self.reserved = PYTHON_NAMES | MODULE_NAMES | {"np"} if reserved is None else reserved
        self.used: set[str] = set()
        self.names: dict[int, str] = {}
        self.temps = 0
        self.suffix: dict[str, int] = {}    # base -> the last k tried (m, m_2, m_3 ...: linear)

    def fresh(self, base: str) -> str:
        base = unicodedata.normalize("NFKC", base)
        base = INDEXED.sub(r"_\1", base)          # h[3], a value a loop names: h_3
        if not base.isidentifier() or base.startswith("_") or not base.isascii() and len(base) > 64:
            base = "v_" + "".join(c if c.isalnum() and c.isascii() else "_" for c in base)[:40]
            base = base if base.isidentifier() else "v"
        base = base[:80]
        name = base
        k = self.suffix.get(base, 1)
        if k > 1:
            name = f"{base}_{k}"
        while name in self.reserved or name in self.used or keyword.iskeyword(name):
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
            elif grad_of(model, d) is not None and model.node(d["grad_of"])["name"]:
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


def grad_of(model, d):
    """The node d is the gradient of, if it is still in the graph (an optimisation may have
    removed it: x + -W -> x - W leaves the gradient of the gone `-W`)."""
    g = d.get("grad_of")
    return g if g is not None and g in model.G else None


def unparse(node) -> str:
    if isinstance(node, ast.stmt):
        return statement(node)
    return ast.unparse(node)


def name(id: str) -> ast.Name:
    return ast.Name(id, LOAD)


def string(s: str) -> ast.Constant:
    return ast.Constant(s)


def comment(model, d) -> str | None:
    """The comment above d's statement: its line of the model (source_text caches the
    texts), or for the sum of a gradient's parts, the value it is the gradient of."""
    span = d.get("line") or d.get("span")
    if span is None:
        return None
    if d["op"] == ADD and grad_of(model, d) is not None:
        return f"grad of {model.label(d['grad_of'])}: summed over its uses"
    if d["op"] == ADD and d.get("hint", "").startswith("hv_"):     # (gdsl.passes.grad)
        return f"H v of {d['hint'][3:]}: summed over its uses"
    text = source_text(model.source, span)
    if not text:
        return None
    return ("grad of: " if d.get("backward") else "") + text


def leaf_statements(model, namer: Namer, position) -> tuple[list[tuple], dict]:
    """Names Python cannot take as parameters come in through ``**arrays``: a statement each
    (in the body's form, see Function), and every leaf's expression."""
    out, exprs = [], {}
    for n in model_leaves(model):
        d = model.node(n)
        nm = namer.of(model, n)
        if nm != d["name"] and n in position:
            if d["op"] == "const" and d.get("value") is not None:
                value = ast.Call(ast.Attribute(name("arrays"), "get", LOAD),
                                 [string(d["name"]), const(d["value"])], [])
            else:
                value = ast.Subscript(name("arrays"), string(d["name"]), LOAD)
            out.append((None, ast.Assign([ast.Name(nm, STORE)], value), n, (), None))
        exprs[n] = (name(nm), 0, (nm,), ())
    for key, n in model.directions.items():     # hvp's directions: dW = v['W']
        if n in position:
            nm = namer.of(model, n)
            value = ast.Subscript(name(direction_arg(model)), string(key), LOAD)
            out.append((None, ast.Assign([ast.Name(nm, STORE)], value), n, (), None))
            exprs[n] = (name(nm), 0, (nm,), ())
    return out, exprs


def metadata(model, train: dict) -> list[ast.stmt]:
    def shape_of(n):
        s = model.node(n)["shape"] if model.node(n).get("declared") else None
        return ast.Constant(None) if s is None else ast.Tuple([ast.Constant(d) for d in s], LOAD)

    def table(d, value):
        return ast.Dict([string(k) for k in d], [value(k, v) for k, v in d.items()])

    from ..ir.init import DEFAULT_INIT
    rows = [
        ("INPUTS", table(model.inputs, lambda k, n: shape_of(n))),
        ("PARAMS", table(model.params, lambda k, n: shape_of(n))),
        ("CONSTS", table(model.consts, lambda k, n: const(model.node(n)["value"])
                         if model.node(n)["value"] is not None else ast.Constant(None))),
        ("INIT", table(model.params, lambda k, n: ast.Tuple(
            [string(model.node(n).get("init", DEFAULT_INIT)[0]),
             const(tuple(float(a) for a in model.node(n).get("init", DEFAULT_INIT)[1]))], LOAD))),
        ("LOSS", ast.Constant(model.loss_name)),
        ("OUTPUTS", ast.Tuple([string(k) for k in model.outputs], LOAD)),
        ("WRT", ast.Tuple([string(k) for k in model.wrt], LOAD)),
        ("LABELS", ast.Tuple([string(k) for k in sorted(model.labels)], LOAD)),
        ("TRAIN", ast.Dict([string(k) for k in train],
                           [string(v) if isinstance(v, str) else const(v) for v in train.values()])),
    ]
    if model.states:    # (shape, initial value) of each state, and the mode compiled
        rows += [("STATE", table(model.states, lambda k, n: ast.Tuple(
                     [shape_of(n), const(model.node(n)["value"])], LOAD))),
                 ("MODE", string(model.mode))]
    return [ast.Assign([ast.Name(k, STORE)], v) for k, v in rows]


def model_leaves(model) -> list[int]:
    return [*model.inputs.values(), *model.params.values(), *model.consts.values(),
            *model.states.values()]


def _gradients(f, model, roots: dict) -> list[ast.expr]:
    """The returned gradients (or H v) of ``roots`` {name: node}, each an array of its own:
    one node that is the gradient of two names (J = sum((W + V) * x)) is returned once as
    it is, then as copies (f.gradient)."""
    seen: set[int] = set()
    out = []
    for k, n in roots.items():
        out.append(f.gradient(model.names[k], n, n in seen))
        seen.add(n)
    return out


def signature(model, namer: Namer, fname: str, order: list[int], first: tuple = ()) -> str:
    """``def f(*, x, y, W, b, lam=0.01):`` -- Python itself checks the names passed in.
    A model name that Python cannot take as a parameter comes in through ``**arrays``;
    ``first``: parameters before the model's (hvp's v)."""
    needed = set(order)
    kwonly, defaults, rest = [ast.arg(k) for k in first], [None] * len(first), False
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
    return unparse(fn).split("\n")[0]


def liveness(body, returned: set[str]) -> dict[int, list[str]]:
    """After which statement each intermediate is used for the last time: `del` it there,
    so an array lives only as long as the rest of the pass needs it."""
    temps = {own for _, _, _, _, own in body if own is not None}
    last: dict[str, int] = {}
    for i, (_, _, _, reads, _) in enumerate(body):
        for nm in reads:
            last[nm] = i
    dead: dict[int, list[str]] = {}
    for nm, i in last.items():
        if nm in temps and nm not in returned:
            dead.setdefault(i, []).append(nm)
    return dead


def doc_escape(s: str) -> str:
    return "".join(c if c.isprintable() and c not in '"\\' else "_" for c in s)


def write_module(model, title: str, *, namer: Namer, note: str, imports: list[str],
                 helpers, function, in_place: bool, train: dict | None,
                 statement=statement) -> tuple[str, dict[int, int]]:
    """The module's source text, and a map from each emitted line to the node it computes.

    ``function(model, namer, plan)`` makes the object that writes one function: its
    ``statements()`` are [(comment, ast statement, node or None, names it reads, the name of
    the array of the pass's own it assigns, or None)], after which ``exprs`` holds each
    node's (expression, depth, names read, arrays read) and ``result(node)`` the expression
    the function returns for a root. ``helpers`` are the sources of the module's helper
    functions, or a callable giving them once the functions are written."""
    if model.hvps:      # (hvp's own names)
        namer.reserved = namer.reserved | {"hvp", direction_arg(model)}
    for n in sorted(n for n, nm in model.G.nodes(data="name") if nm is not None):
        if model.node(n)["op"] != "literal":  # model names first, in source order
            namer.of(model, n)
    shape = {n: model.dims.shape(d["shape"]) for n, d in model.G.nodes(data=True)}
    lines: list[str] = []               # the functions, written first (then what goes above)
    linemap: dict[int, int] = {}

    updates = list(model.updates.values())      # training mode: the states' new values
    for fname, order, roots, doc in functions(model):
        f = function(model, namer, plan(model, order, roots, shape, in_place))
        first = (direction_arg(model),) if fname == "hvp" else ()
        lines += ["", "", signature(model, namer, fname, order, first),
                  '    """' + doc_escape(doc) + '"""']
        body = f.statements()
        ex = f.exprs
        if fname == "forward":
            keys = ([model.loss_name] if model.loss is not None else []) + list(model.outputs)
            vals = ([model.loss] if model.loss is not None else []) + list(model.outputs.values())
            keys, vals = keys + list(model.updates), vals + updates
            ret = ast.Return(ast.Dict([string(k) for k in keys], [f.result(v) for v in vals]))
        elif fname == "hvp":
            ret = ast.Return(ast.Dict([string(k) for k in model.hvps],
                                      _gradients(f, model, model.hvps)))
        else:
            grads = ast.Dict([string(k) for k in model.grads], _gradients(f, model, model.grads))
            state = [ast.Dict([string(k) for k in model.updates], [f.result(v) for v in updates])]
            ret = ast.Return(ast.Tuple([f.result(model.loss), grads] + (state if updates else []),
                                       LOAD))
        returned = {v for n in roots for v in ex[n][2]}
        dead_after = liveness(body, returned)
        for i, (text, stmt, node, _, _) in enumerate(body):
            if text:
                lines.append("    # " + text)
            lines.append("    " + statement(stmt))
            if node is not None:
                linemap[len(lines)] = node
            if i in dead_after:
                lines.append("    del " + ", ".join(dead_after[i]))
        lines.append("    " + unparse(ret))

    head = ['"""' + doc_escape(title), "", note, '"""', *imports, ""]
    for source in helpers() if callable(helpers) else helpers:
        head += ["", *unparse(ast.parse(source.strip())).split("\n")]
    head.append("")
    for stmt in metadata(model, train or {}):
        head += unparse(stmt).split("\n")
    offset = len(head)
    return "\n".join(head + lines) + "\n", {i + offset: n for i, n in linemap.items()}

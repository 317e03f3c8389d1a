"""Emit the model for numba: each pass is one ``@numba.njit(cache=True)`` step, its elementwise
chains and reductions fused into loops, its matrix products calls of BLAS (numba's np.dot).

The IR of a pass becomes a small graph of the step's values (``Val``), made by the op table:
an elementwise op is a ``Map`` whose entry is the op's NumPy emission applied to numbers (the
same expression), and any other op has a numba form in its row (``Op.emit["numba"]``, called
with the ``Kernel`` below) built from maps, reductions, views (a transpose, axes of size 1)
and calls (np.dot, the helpers of ops.NUMBA_HELPERS). A map read by one loop of its own size
gets no array: its expression is written inside that loop, so the exp(s - m) of a softmax is
summed in the loop that computes it. Every other value gets an array (or a number) of its own,
under the model's name where it has one, with the model's source line as a comment.

Every shape must be known up to its symbols: a model whose shapes are bound at call time is
emitted when it is called (CompiledModel specialises it). The module needs NumPy, numba and
SciPy (numba's np.dot calls SciPy's BLAS); the float arrays of one call share one dtype.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from ..errors import GdslShapeError, GdslTypeError
from ..ir.ops import BINARY_OPERATORS, LOAD, NUMBA_HELPERS, OPS, STORE, const, np_
from ..ir.shapes import reduce as reduced_shape
from ..lang.source import source_text
from .numpy_target import Namer, _doc_escape, _metadata, _signature, model_leaves
from .plan import functions

NAME = "numba"
NEEDS_SHAPES = True     # a model with shapes left to call time is emitted when it is called
IMPORTED = True         # its module is imported under its name (numba's cache finds it so)
ONE_DTYPE = True        # the float arrays of a call share one dtype (CompiledModel casts)
REQUIRES = ("numba", "scipy")   # to import and run the module (gdsl[numba])
HVP = False             # no hvp: model.hvp runs NumPy code, gdsl compile --hvp refuses it
STEP = {"forward": "_forward_step", "value_and_grad": "_value_and_grad_step"}
JIT = "numba.njit(cache=True, error_model='numpy')"    # NumPy's inf and nan, not exceptions
ADD = BINARY_OPERATORS["+"]


# -- the values of a step ---------------------------------------------------------------------

@dataclass(eq=False)
class Val:
    """A value of the step: its shape (sizes or symbols), its arguments, the IR node it
    computes, and once written, the variable that holds it."""

    shape: tuple
    args: tuple = ()
    node: int | None = None
    name: str | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass(eq=False)
class Given(Val):
    """A number or array the step does not compute: an argument (named), a literal or a size
    (expr)."""

    expr: ast.expr | None = None


@dataclass(eq=False)
class Map(Val):
    """Elementwise: its entry is fn(the arguments' entries, broadcast to its shape)."""

    fn: object = None


@dataclass(eq=False)
class Reduce(Val):
    """Its argument reduced over `axes` by a Reduction (ops.py: the accumulator's start and
    update), the reduced axes kept as 1 with keepdims."""

    red: object = None
    axes: tuple = ()
    keepdims: bool = False


@dataclass(eq=False)
class ArgMax(Val):
    """The index of the largest entry along one axis (None: the flat index)."""

    axis: int | None = 0


@dataclass(eq=False)
class View(Val):
    """Its argument's entries at other places (a transpose, axes of size 1 put in or taken
    out): index(idx) maps an index of it to one of the argument; array(expr) is the view as
    NumPy writes it, for np.dot or a returned value."""

    index: object = None
    array: object = None


@dataclass(eq=False)
class Call(Val):
    """An array (or number) made by one call of arrays: np.dot, a helper (``view``: one
    whose result may be a view of its first argument)."""

    build: object = None
    view: bool = False


def _borrowed(v: Val) -> bool:
    """v's array may be an argument's, the caller's own: an argument or a view of one."""
    while isinstance(v, View) or isinstance(v, Call) and v.view:
        v = v.args[0]
    return isinstance(v, Given)


def _nonunit(shape) -> list:
    return sorted((d for d in shape if d != 1), key=str)


def _axes(axis, rank: int) -> tuple:
    return tuple(sorted({a % rank for a in (axis if isinstance(axis, tuple) else (axis,))}))


def _broadcast(a: tuple, b: tuple) -> tuple:
    if len(a) < len(b):
        a, b = b, a
    out = list(a)
    for i in range(1, len(b) + 1):
        if out[-i] == 1:
            out[-i] = b[-i]
    return tuple(out)


class Kernel:
    """What a row's numba form builds with: ``Op.emit["numba"](k, args, attrs, shapes)``."""

    def __init__(self, dims: dict, dtype: ast.expr):
        self.vals: list[Val] = []
        self.dims = dims                # symbol -> the expression of its size
        self.dtype = dtype              # the expression of the call's float dtype
        self.node: int | None = None    # the IR node being built
        self.model = None
        self.helpers: set[str] = set()

    def _add(self, v: Val) -> Val:
        v.node = self.node
        self.vals.append(v)
        return v

    # what a form may ask
    def shape(self, v: Val) -> tuple:
        return v.shape

    def given(self, v: Val) -> bool:
        """Whether v is an argument of the step (an input, param or const)."""
        return isinstance(v, Given) and v.name is not None

    def size(self, d) -> ast.expr:
        return ast.Constant(d) if isinstance(d, int) else self.dims[d]

    def dim(self, v: Val, axis: int) -> ast.expr:
        """The size of one axis of v: a number, or the variable of its symbol."""
        return self.size(v.shape[axis])

    def refuse(self, why: str):
        d = self.model.node(self.node)
        raise GdslTypeError(f"the numba target cannot emit `{d['op']}` of {why}", d["span"],
                            help="compile it for the NumPy target (the default)")

    # what a form may build
    def number(self, value: float) -> Val:
        return Given((), expr=const(float(value)))

    def count(self, v: Val, axes=None) -> Val:
        """How many entries v has along `axes` (None: all), as a number."""
        dims = v.shape if axes is None else [v.shape[a] for a in _axes(axes, v.rank)] \
            if axes != () else []
        known, symbols = 1, []
        for d in dims:
            if isinstance(d, int):
                known *= d
            else:
                symbols.append(self.dims[d])
        expr = ast.Constant(known) if known != 1 or not symbols else None
        for s in symbols:
            expr = s if expr is None else ast.BinOp(expr, ast.Mult(), s)
        return Given((), expr=expr)

    def map(self, fn, *args, shape=None) -> Val:
        """Elementwise fn of the arguments' entries (numbers are constants); its shape is the
        arguments' broadcast shape unless given (a value broadcast to a larger shape)."""
        args = tuple(a if isinstance(a, Val) else self.number(a) for a in args)
        if shape is None:
            shape = ()
            for a in args:
                shape = _broadcast(shape, a.shape)
        return self._add(Map(tuple(shape), args, fn=fn))

    def reduce(self, red, v: Val, axis=None, keepdims=False) -> Val:
        axes = tuple(range(v.rank)) if axis is None else _axes(axis, v.rank)
        return self._add(Reduce(tuple(reduced_shape(v.shape, axis, bool(keepdims))), (v,),
                                red=red, axes=axes, keepdims=bool(keepdims)))

    def argmax(self, v: Val, axis) -> Val:
        if axis is None:
            return self._add(ArgMax((), (v,), axis=None))
        return self._add(ArgMax(tuple(reduced_shape(v.shape, axis, False)), (v,),
                                axis=_axes(axis, v.rank)[0]))

    def transpose(self, v: Val) -> Val:
        if v.rank < 2:
            return v
        return self._add(View(tuple(reversed(v.shape)), (v,),
                              index=lambda idx: tuple(reversed(idx)),
                              array=lambda e: ast.Attribute(e, "T", LOAD)))

    def reshape(self, v: Val, shape) -> Val:
        """v with axes of size 1 put in or taken out, its other axes in order."""
        shape = tuple(shape)
        if shape == v.shape:
            return v
        src = [i for i, d in enumerate(v.shape) if d != 1]
        dst = [i for i, d in enumerate(shape) if d != 1]
        if [v.shape[i] for i in src] != [shape[j] for j in dst]:
            raise AssertionError(f"numba target: a reshape {v.shape} -> {shape} moves entries")

        def index(idx, rank=v.rank):
            out = [ast.Constant(0)] * rank
            for i, j in zip(src, dst):
                out[i] = idx[j]
            return tuple(out)

        def array(e):
            return ast.Call(ast.Attribute(e, "reshape", LOAD),
                            [ast.Tuple([self.size(d) for d in shape], LOAD)], [])
        return self._add(View(shape, (v,), index=index, array=array))

    def slice(self, v: Val, i: int) -> Val:
        """v[i]: the slice at i along axis 0 (a view)."""
        return self._add(View(tuple(v.shape[1:]), (v,),
                              index=lambda idx: (ast.Constant(i), *idx),
                              array=lambda e: ast.Subscript(e, ast.Constant(i), LOAD)))

    def dot(self, a: Val, b: Val) -> Val:
        """The matrix (or vector) product through BLAS: np.dot."""
        return self._add(Call(tuple(a.shape[:-1]) + tuple(b.shape[1:]), (a, b),
                              build=lambda x, y: np_("dot", x, y)))

    def call(self, helper: str, *args, shape, extra=(), view: bool = False) -> Val:
        """helper (of ops.NUMBA_HELPERS) called with the arrays of args, then `extra`;
        ``view``: its result may be a view of the first."""
        self.helpers.add(helper)
        return self._add(Call(tuple(shape), tuple(args), view=view, build=lambda *xs: ast.Call(
            ast.Name(helper, LOAD), [*xs, *extra], [])))

    def op(self, name: str, *args, **attrs) -> Val:
        """The numba form of another row (the forms of the op table compose)."""
        return _form(OPS[name], None)(self, list(args), attrs, [a.shape for a in args])


def _form(row, lit):
    """A row's numba form; an elementwise op's is a map of its NumPy emission."""
    rule = row.emit.get(NAME)
    if rule is not None or not row.elementwise:
        return rule
    emit = row.emit["numpy"]

    def elementwise(k, a, at, s):
        def entry(*xs):
            xs = list(xs)
            if lit:             # only numbers: computed as NumPy computes them (1.0 / 0.0 is inf)
                xs[0] = np_("float64", xs[0])
            return emit(xs, at, s)
        return k.map(entry, *a)
    return elementwise


def _build(model, order, shape, k: Kernel, vals: dict) -> dict[int, Val]:
    """The step's value of each node of the pass, in schedule order."""
    for n in order:
        if n in vals:
            continue
        d = model.node(n)
        if d["op"] == "literal":
            vals[n] = k.number(d["value"])
            continue
        row = OPS[d["op"]]
        args = [vals[a] for a in d["args"]]
        k.node = n
        rule = _form(row, all(model.node(a)["op"] == "literal" for a in d["args"]))
        if rule is None:
            raise GdslTypeError(f"the numba target cannot emit `{d['op']}`", d["span"],
                                help="compile it for the NumPy target (the default)")
        v = rule(k, args, d["attrs"], [a.shape for a in args])
        if tuple(v.shape) != tuple(shape[n]):
            raise AssertionError(f"numba target: `{d['op']}` made {v.shape}, not {shape[n]}")
        vals[n] = v
    return vals


def _inlined(vals: list[Val], roots: list[Val]) -> set[int]:
    """The ids of the values written where they are read, not stored: a map read once by a
    loop (a map or reduction) of its own size, a number read once by a number, and a view
    read only by loops and calls whose argument is stored (or is a leaf)."""
    users: dict[int, list[Val]] = {}
    for v in vals:
        for a in v.args:
            users.setdefault(id(a), []).append(v)
    rooted = {id(r) for r in roots}
    inline: set[int] = set()
    for v in reversed(vals):
        us = users.get(id(v), [])
        if id(v) in rooted or not us:
            continue
        if isinstance(v, Map) and len(us) == 1:
            u = us[0]
            if v.rank == 0:
                if isinstance(u, Map) and u.rank == 0:
                    inline.add(id(v))
            elif isinstance(u, (Reduce, ArgMax)) or isinstance(u, Map) and \
                    _nonunit(u.shape) == _nonunit(v.shape):
                inline.add(id(v))
        elif isinstance(v, View) and all(isinstance(u, (Map, Reduce, ArgMax, Call)) for u in us):
            inline.add(id(v))
    for v in vals:              # under a view, a map is stored
        if isinstance(v, View):
            inline.discard(id(v.args[0]))
    return inline


# -- writing the step ----------------------------------------------------------------------------

def _aligned(shape: tuple, out: tuple, idx: tuple) -> tuple:
    """The index of an argument of `shape` broadcast to `out`, at out's index idx."""
    lead = len(out) - len(shape)
    return tuple(ast.Constant(0) if d == 1 and out[lead + i] != 1 else idx[lead + i]
                 for i, d in enumerate(shape))


def _sub(name: str, idx: tuple, ctx=LOAD) -> ast.expr:
    index = idx[0] if len(idx) == 1 else ast.Tuple(list(idx), LOAD)
    return ast.Subscript(ast.Name(name, LOAD), index, ctx)


def _text(node: ast.AST) -> str:
    return ast.unparse(ast.fix_missing_locations(node))


def _name(s: str, ctx=LOAD) -> ast.expr:
    return ast.Name(s, ctx)


def _assign(name: str, value: ast.expr) -> ast.stmt:
    return ast.Assign([_name(name, STORE)], value)


def _better(x: ast.expr, best: ast.expr) -> ast.expr:
    """x > best, or the first nan (np.argmax takes it)."""
    return ast.BoolOp(ast.Or(), [
        ast.Compare(x, [ast.Gt()], [best]),
        ast.BoolOp(ast.And(), [ast.Compare(x, [ast.NotEq()], [x]),
                               ast.Compare(best, [ast.Eq()], [best])])])


class _Writer:
    """Writes the step's statements: each stored value once, its arguments first."""

    def __init__(self, model, namer: Namer, k: Kernel, inline: set, results: dict,
                 index: list[str]):
        self.m, self.namer, self.k, self.inline = model, namer, k, inline
        self.results = results          # id(value) -> the IR node whose result it is
        self.index = index              # loop index names, by depth
        self.out: list[tuple] = []      # (comment, statement, node)
        self.taken: set[str] = set()

    def entry(self, v: Val, idx: tuple) -> ast.expr:
        """v's entry at index idx (one expression per axis of v)."""
        if v.name is not None:
            return _name(v.name) if v.rank == 0 else _sub(v.name, idx)
        return self.own(v, idx)

    def own(self, v: Val, idx: tuple) -> ast.expr:
        """v's entry at idx from its arguments' entries."""
        if isinstance(v, Given):
            return v.expr
        if isinstance(v, Map):
            return v.fn(*[self.entry(a, _aligned(a.shape, v.shape, idx)) for a in v.args])
        if isinstance(v, View):
            return self.entry(v.args[0], v.index(idx))
        raise AssertionError(f"numba target: {type(v).__name__} read before it is written")

    def array(self, v: Val) -> ast.expr:
        """v as a whole (an argument of a call, or returned)."""
        if v.name is None and isinstance(v, View) and id(v) in self.inline:
            return v.array(self.array(v.args[0]))
        if v.name is None and isinstance(v, Given):
            return v.expr
        self.write(v)
        return _name(v.name)

    def shape(self, shape) -> ast.expr:
        return ast.Tuple([self.k.size(d) for d in shape], LOAD)

    def loops(self, shape, body: list) -> list:
        """for i0 in range(d0): for i1 in range(d1): ... body"""
        for depth in reversed(range(len(shape))):
            body = [ast.For(_name(self.index[depth], STORE),
                            ast.Call(_name("range"), [self.k.size(shape[depth])], []), body, [])]
        return body

    def fresh(self, base: str) -> str:
        name = self.namer.fresh(base)
        self.taken.add(name)
        return name

    def name_of(self, v: Val) -> str:
        n = self.results.get(id(v))
        if n is not None:
            own = self.namer.of(self.m, n)
            if own not in self.taken:
                self.taken.add(own)
                return own
        return self.fresh("t")

    def comment(self, v: Val) -> str | None:
        if v.node is None:
            return None
        d = self.m.node(v.node)
        g = d.get("grad_of")
        if d["op"] == ADD and g is not None and g in self.m.G:
            return f"grad of {self.m.label(g)}: summed over its uses"
        span = d.get("line") or d.get("span")
        text = source_text(self.m.source, span) if span else ""
        return (("grad of: " if d.get("backward") else "") + text) if text else None

    def write(self, v: Val) -> None:
        """The statements that give v its variable (its arguments' first)."""
        if v.name is not None or isinstance(v, Given):
            return
        for a in v.args:
            if id(a) not in self.inline:
                self.write(a)
            elif isinstance(a, View):
                self.write(a.args[0])
        name = self.name_of(v)
        if isinstance(v, Map) and v.rank == 0:
            stmts = [_assign(name, self.own(v, ()))]
        elif isinstance(v, Map):
            idx = tuple(_name(i) for i in self.index[:v.rank])
            stmts = [_assign(name, np_("empty", self.shape(v.shape), self.k.dtype)),
                     *self.loops(v.shape, [ast.Assign([_sub(name, idx, STORE)],
                                                      self.own(v, idx))])]
        elif isinstance(v, View):
            stmts = [_assign(name, v.array(self.array(v.args[0])))]
        elif isinstance(v, Call):
            stmts = [_assign(name, v.build(*[self.array(a) for a in v.args]))]
        elif isinstance(v, Reduce):
            stmts = self._reduce(v, name)
        elif isinstance(v, ArgMax):
            stmts = self._argmax(v, name)
        else:
            raise AssertionError(f"numba target: cannot write {type(v).__name__}")
        v.name = name
        for i, s in enumerate(stmts):
            self.out.append((self.comment(v) if i == 0 else None, s, v.node))

    def _reduce(self, v: Reduce, name: str) -> list:
        x = v.args[0]
        idx = tuple(_name(i) for i in self.index[:x.rank])
        value = self.entry(x, idx)
        init = const(float(v.red.init))
        if len(v.axes) == x.rank:       # to one number: a scalar accumulator
            acc = self.fresh(name + "_acc") if v.keepdims else name
            stmts = [_assign(acc, init),
                     *self.loops(x.shape, [_assign(acc, v.red.update(_name(acc), value))])]
            if v.keepdims:
                stmts.append(_assign(name, np_("full", self.shape(v.shape), _name(acc),
                                               self.k.dtype)))
            return stmts
        out = tuple(ast.Constant(0) if i in v.axes else idx[i] for i in range(x.rank)
                    if i not in v.axes or v.keepdims)
        return [_assign(name, np_("full", self.shape(v.shape), init, self.k.dtype)),
                *self.loops(x.shape, [ast.Assign([_sub(name, out, STORE)],
                                                  v.red.update(_sub(name, out), value))])]

    def _argmax(self, v: ArgMax, name: str) -> list:
        x = v.args[0]
        idx = tuple(_name(i) for i in self.index[:x.rank])
        value, best, at = self.fresh(name + "_x"), self.fresh(name + "_best"), None
        if v.axis is None:      # the flat index, as np.argmax(x) gives it
            at = self.fresh(name + "_at")
            body = [_assign(value, self.entry(x, idx)),
                    ast.If(_better(_name(value), _name(best)),
                           [_assign(best, _name(value)), _assign(name, _name(at))], []),
                    ast.AugAssign(_name(at, STORE), ast.Add(), ast.Constant(1))]
            return [_assign(name, ast.Constant(0)), _assign(at, ast.Constant(0)),
                    _assign(best, const(float("-inf"))), *self.loops(x.shape, body)]
        out = tuple(idx[i] for i in range(x.rank) if i != v.axis)
        body = [_assign(value, self.entry(x, idx)),
                ast.If(_better(_name(value), _sub(best, out)),
                       [ast.Assign([_sub(best, out, STORE)], _name(value)),
                        ast.Assign([_sub(name, out, STORE)], idx[v.axis])], [])]
        shape = self.shape(v.shape)
        return [_assign(name, np_("zeros", shape, ast.Attribute(_name("np"), "intp", LOAD))),
                _assign(best, np_("full", shape, const(float("-inf")), self.k.dtype)),
                *self.loops(x.shape, body)]


# -- the module ----------------------------------------------------------------------------------

def emit_module(model, title: str, in_place: bool = True,
                train: dict | None = None) -> tuple[str, dict[int, int]]:
    """The module's source text and its line map (see gdsl.backend); ``in_place`` is the
    NumPy target's (every stored value has an array of its own here)."""
    shape = {n: model.dims.shape(d["shape"]) for n, d in model.G.nodes(data=True)}
    used = set(model.forward_order) | set(model.backward_order)
    for n in model_leaves(model):
        if shape[n] is None and n in used:
            d = model.node(n)
            raise GdslShapeError(
                f"the numba target needs the shape of every array; `{d['name']}` has none",
                d["span"], help=f"declare it (e.g. `input {d['name']}[d, n]`), or compile with "
                "gdsl.compile(text, target='numba') and call the model: it is then compiled "
                "for the shapes of each call")
    namer = Namer()
    for n in sorted(n for n, name in model.G.nodes(data="name") if name is not None):
        if model.node(n)["op"] != "literal":
            namer.of(model, n)
    lines: list[str] = []
    linemap: dict[int, int] = {}

    def put(text: str, node: int | None = None):
        for part in text.split("\n"):
            lines.append(part)
            if node is not None:
                linemap[len(lines)] = node

    put('"""' + _doc_escape(title) + "\n\nGenerated by gdsl for numba: each pass is one "
        "@numba.njit step, its elementwise chains and\nreductions fused into loops, its matrix "
        "products BLAS (np.dot). Needs NumPy, numba and SciPy;\nthe float arrays of one call "
        "share one dtype. Do not edit: recompile the model.\n" + '"""')
    put("import numba")
    put("import numpy as np")
    steps = [_step(model, namer, shape, *section) for section in functions(model)
             if section[0] != "hvp"]
    for h in sorted(set().union(*(helpers for _, _, helpers in steps))):
        put("")
        put("")
        put("@" + JIT)
        put(_text(ast.parse(NUMBA_HELPERS[h].strip())))
    put("")
    for stmt in _metadata(model, train or {}):
        put(_text(stmt))
    for step, wrapper, _ in steps:
        for part in (step, wrapper):
            put("")
            put("")
            for text, node in part:
                put(text, node)
    return "\n".join(lines) + "\n", linemap


def _local(namer: Namer) -> Namer:
    """A Namer for one function: the module's names taken, its own temporaries free."""
    local = Namer()
    local.used, local.names = set(namer.used), dict(namer.names)
    local.suffix, local.temps = dict(namer.suffix), namer.temps
    return local


def _step(model, namer: Namer, shape: dict, fname: str, order: list[int], roots: list[int],
          doc: str) -> tuple[list, list, set]:
    """The @njit step of one pass and its Python wrapper, as [(line, node)], and the helpers
    the step calls."""
    namer = _local(namer)
    needed = set(order)
    leaves = [n for n in model_leaves(model) if n in needed]
    labels = {model.names[k] for k in model.labels}
    # each symbol's size, from an argument that is not labels (labels come as [n] or [C, n])
    dims: dict = {}
    for n in leaves:
        for axis, d in enumerate(shape[n]):
            if isinstance(d, str) and d not in dims and n not in labels:
                dims[d] = (n, axis)
    for n in leaves:
        for d in shape[n]:
            if isinstance(d, str) and d not in dims:
                raise GdslShapeError(f"the numba target takes the size `{d}` from an array "
                                     "that is not labels, and none has it",
                                     model.node(n)["span"])
    dim_names = {d: namer.fresh(d) for d in dims}
    dt = namer.fresh("dt")
    k = Kernel({d: _name(v) for d, v in dim_names.items()}, _name(dt))
    k.model = model
    vals: dict[int, Val] = {}
    for n in leaves:
        vals[n] = Given(tuple(shape[n]), node=n, name=namer.of(model, n))
    vals = _build(model, order, shape, k, vals)
    root_vals = [vals[r] for r in roots]
    results = {}
    for n in order:             # (a value that is the result of two nodes keeps the first name)
        if model.node(n)["op"] not in ("literal",) and n not in leaves:
            results.setdefault(id(vals[n]), n)
    inline = _inlined(k.vals, root_vals)
    rank = max([v.rank for v in k.vals] + [len(shape[n]) for n in leaves] + [1])
    w = _Writer(model, namer, k, inline, results, [namer.fresh(f"i{j}") for j in range(rank)])
    w.taken = {vals[n].name for n in leaves}
    # the step's parameters: an array by its own name; a number (a Python float or a 0-d
    # array) through a parameter of its own, read as a number
    params = {n: namer.fresh(vals[n].name + "_in") if not shape[n] else vals[n].name
              for n in leaves}
    arrays = [n for n in leaves if shape[n] and n not in labels]
    head = [_assign(dt, ast.Attribute(_name(vals[arrays[0]].name), "dtype", LOAD)
                    if arrays else ast.Attribute(_name("np"), "float64", LOAD))]
    for n in leaves:
        if not shape[n]:
            head.append(_assign(vals[n].name, ast.Subscript(
                np_("asarray", _name(params[n])), ast.Tuple([], LOAD), LOAD)))
    for d, (n, axis) in dims.items():
        head.append(_assign(dim_names[d], ast.Subscript(
            ast.Attribute(_name(vals[n].name), "shape", LOAD), ast.Constant(axis), LOAD)))
    w.out = [(None, s, None) for s in head]
    for v in k.vals:
        if id(v) not in inline:
            w.write(v)
    # an argument returned as it is (the gradient of 0.5 ||W||² is W) or a view of one, and
    # an array returned twice (the gradient of W and of V in sum((W + V) * x)), go back as
    # copies: the caller may update what it gets in place
    returned, seen = [], set()
    for v in root_vals:
        e = w.array(v) if v.rank else w.entry(v, ())
        if v.rank and (_borrowed(v) or id(v) in seen):
            e = ast.Call(ast.Attribute(e, "copy", LOAD), [], [])
        returned.append(e)
        seen.add(id(v))
    # the step, printed with a comment per model line
    args = ast.arguments(posonlyargs=[], args=[ast.arg(params[n]) for n in leaves], vararg=None,
                         kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[])
    fn = ast.FunctionDef(STEP[fname], args, [ast.Pass()], [], None, None, type_params=[])
    step = [("@" + JIT, None), (_text(fn).split("\n")[0], None)]
    last = None
    for comment, stmt, node in w.out:
        if comment and comment != last:
            step.append(("    # " + comment, None))
            last = comment
        for j, text in enumerate(_text(stmt).split("\n")):
            step.append(("    " + text, node if j == 0 else None))
    ret = returned[0] if len(returned) == 1 else ast.Tuple(returned, LOAD)
    step.append(("    " + _text(ast.Return(ret)), None))
    # the wrapper: the model's names in; a dict of outputs, or the loss and gradients out
    wrapper = [(_signature(model, namer, fname, order), None),
               ('    """' + _doc_escape(doc) + '"""', None)]
    for n in leaves:
        d = model.node(n)
        if vals[n].name != d["name"]:       # (a name Python cannot take: from **arrays)
            if d["op"] == "const" and d.get("value") is not None:
                value = ast.Call(ast.Attribute(_name("arrays"), "get", LOAD),
                                 [ast.Constant(d["name"]), const(d["value"])], [])
            else:
                value = ast.Subscript(_name("arrays"), ast.Constant(d["name"]), LOAD)
            wrapper.append(("    " + _text(_assign(vals[n].name, value)), None))
    outs = [namer.fresh("r") for _ in roots]
    call = ast.Call(_name(STEP[fname]), [_name(vals[n].name) for n in leaves], [])
    target = _name(outs[0], STORE) if len(outs) == 1 else \
        ast.Tuple([_name(o, STORE) for o in outs], STORE)
    wrapper.append(("    " + _text(ast.Assign([target], call)), roots[0]))
    if arrays:      # numba returns a scalar as a Python float: make it one of the call's dtype,
        for o, v in zip(outs, root_vals):       # as the NumPy module's is (np.float32 ...)
            if not v.rank:
                kind = ast.Attribute(ast.Attribute(_name(vals[arrays[0]].name), "dtype", LOAD),
                                     "type", LOAD)
                wrapper.append(("    " + _text(_assign(o, ast.Call(kind, [_name(o)], []))),
                                None))
    if fname == "forward":
        keys = ([model.loss_name] if model.loss is not None else []) + list(model.outputs)
        keys += list(model.updates)
        ret = ast.Dict([ast.Constant(key) for key in keys], [_name(o) for o in outs])
    else:
        end = 1 + len(model.grads)
        parts = [_name(outs[0]), ast.Dict([ast.Constant(key) for key in model.grads],
                                          [_name(o) for o in outs[1:end]])]
        if model.updates:
            parts.append(ast.Dict([ast.Constant(key) for key in model.updates],
                                  [_name(o) for o in outs[end:]]))
        ret = ast.Tuple(parts, LOAD)
    wrapper.append(("    " + _text(ast.Return(ret)), None))
    return step, wrapper, k.helpers

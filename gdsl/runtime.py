"""The runtime: a compiled model's module imported from a real file, called with arrays by name.

``compile(text)`` runs the pipeline (gdsl.pipeline) and wraps what it emitted in a
CompiledModel, which checks the arrays of each call against the model's declarations.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import importlib.util
import keyword
import math
import numbers
import os
import sys
from pathlib import Path

import numpy as np
from numpy import ndarray

from .backend import get_target
from .errors import GdslError, GdslRuntimeError, GdslShapeError, GdslUsageError, GdslValueError
from .files import cache_dir, read_model, write_atomic
from .ir.shapes import Binding, Dims, label_shape, show_shape
from .lang.source import source_text
from .passes.infer import infer
from .pipeline import STAGES, Compilation, _no_gc, run_pipeline


def _names(names):
    """``wrt=`` or ``outputs=`` as a list: one name "W", or "W, b" as on the command line, is
    not a sequence of characters."""
    return [w.strip() for w in names.split(",") if w.strip()] if isinstance(names, str) else names


def compile(text: str, wrt: list[str] | None = None, *, filename: str | None = None,
            optimize: bool = True, outputs: list[str] | None = None,
            target: str = "numpy") -> CompiledModel:
    """Compile model text.

    Returns a CompiledModel with ``forward``, ``value_and_grad``, ``source`` (the
    emitted code) and ``graph`` (the NetworkX graph). ``wrt`` names the values to
    differentiate with respect to (default: the declared params). Raises a
    subclass of GdslError, with file, line and column, for any mistake in the text.
    ``outputs`` adds named intermediate values to what ``forward`` returns; ``target``
    says what the code is emitted as (gdsl.backend.TARGETS; NumPy by default).
    """
    if not isinstance(text, str):
        hint = "; for a file, gdsl.compile_file(path)" if isinstance(text, os.PathLike) else \
            "; decode it first" if isinstance(text, bytes) else ""
        raise TypeError(f"gdsl.compile takes the model's text as a str, not "
                        f"{type(text).__name__}{hint}")
    c = run_pipeline(text, filename=filename, wrt=_names(wrt), optimize=optimize,
                     outputs=_names(outputs), target=target, at_call=True)
    if not isinstance(c.code, str):         # ONNX: a model for another runtime, not Python
        raise GdslUsageError(f"the {target} target makes a file for another runtime, not code "
                             f"to call here; write it with `gdsl export` or `gdsl compile "
                             f"--target {target} -o FILE`")
    return CompiledModel(c)


def compile_file(path: str | os.PathLike, wrt: list[str] | None = None, *,
                 optimize: bool = True, outputs: list[str] | None = None,
                 target: str = "numpy") -> CompiledModel:
    """Compile a model file; see ``compile``. Reads at most MAX_SOURCE_BYTES of it."""
    text = read_model(str(path))
    return compile(text, wrt, filename=str(path), optimize=optimize, outputs=outputs,
                   target=target)


def load_module(code: str, stem: str = "model", register: bool = False):
    """Write emitted code to a real file (so tracebacks and pdb show it) and import it;
    ``register``: also under its name in sys.modules (numba's cache finds functions so)."""
    digest = hashlib.sha256(code.encode("utf-8")).hexdigest()[:16]
    safe = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in stem)[:40] or "model"
    path = cache_dir() / f"{safe}_{digest}.py"
    if not path.exists() or path.read_text(encoding="utf-8") != code:
        write_atomic(path, code, durable=False)     # checked against the code when read
    spec = importlib.util.spec_from_file_location(f"gdsl_generated.{safe}_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module, str(path)


_ABSENT = type("Absent", (), {"__repr__": lambda self: "<absent>"})()   # (the gate's default)
MAX_SIGNATURES = 256      # call signatures remembered per pass (then forgotten, all at once)
MAX_SPECIALISED = 32      # specialisations kept per model (then the oldest goes)

BAD_KINDS = {"O": "object", "U": "string", "S": "bytes", "V": "structured", "c": "complex",
             "M": "datetime", "m": "timedelta"}


def _as_callers(out: dict, arrays: dict) -> dict:
    """The results of a function that read none of the caller's arrays (a loss of consts
    alone: NumPy values) as arrays of the caller's library and device."""
    from array_api_compat import array_namespace, device, is_array_api_obj, is_numpy_array
    callers = [a for a in arrays.values() if is_array_api_obj(a) and not is_numpy_array(a)]
    if not callers:
        return out
    xp, dev = array_namespace(*callers), device(callers[0])
    return {k: xp.asarray(v, device=dev) if isinstance(v, (ndarray, np.generic)) else v
            for k, v in out.items()}


class CompiledModel:
    """A compiled model: call ``forward`` and ``value_and_grad`` with arrays by name.

    Attributes: ``source`` (the emitted NumPy module), ``graph`` (the NetworkX
    graph; nodes carry op, shape, name and span), ``inputs``, ``params``,
    ``consts`` (name -> symbolic shape or default), ``wrt``, ``loss``, ``outputs``.
    """

    def __init__(self, compilation: Compilation):
        self.compilation = compilation
        self.model = model = compilation.model      # the IR, backward pass included
        self.source: str = compilation.code
        self.graph = compilation.written if compilation.written is not None else model.G
        stem = Path(model.filename).stem if model.filename else "model"
        target = get_target(compilation.options.target)
        for package in getattr(target, "REQUIRES", ()):     # modules, from the extra gdsl[NAME]
            if importlib.util.find_spec(package) is None:
                raise GdslError(f"the {target.NAME} target needs {package}, which is not "
                                f"installed", help=f"pip install 'gdsl[{target.NAME}]'")
        with _no_gc():
            self.module, self.path = load_module(self.source, stem,
                                                 getattr(target, "IMPORTED", False))
        self.inputs = dict(self.module.INPUTS)
        self.params = dict(self.module.PARAMS)
        self.consts = dict(self.module.CONSTS)
        self.init = dict(self.module.INIT)
        self.wrt = list(self.module.WRT)
        self.loss = self.module.LOSS
        self.outputs = list(self.module.OUTPUTS)
        self.labels = list(self.module.LABELS)
        self.train_options = dict(self.module.TRAIN)
        # the named dimensions of the inputs' and params' shapes (`d`, `n`, `C`), sorted
        self.dim_symbols = sorted({d for shape in [*self.inputs.values(), *self.params.values()]
                                   if shape for d in shape if isinstance(d, str)})
        # state (`state mu[m, 1] = 0`): name -> (shape, initial value); the mode compiled
        self.states = dict(getattr(self.module, "STATE", {}))
        self.mode = compilation.options.mode
        self.filename = model.filename
        self._checked: dict = {}
        self._needed: dict = {}
        self._known = {**self.inputs, **self.params, **self.consts,
                       **{k: shape for k, (shape, _) in self.states.items()}}
        self._unknown = any(model.node(n)["shape"] is None
                            for n in [*model.inputs.values(), *model.params.values()])
        # the calls seen, per pass (forward, value_and_grad): call signature -> (the model
        # whose module runs it, the function's name, the arrays converted first)
        self._calls: tuple[dict, dict] = ({}, {})
        # shapes bound at call time: compiled again, as if declared, for each array signature
        self._specialised: dict = {}
        self._specialises = self._unknown and compilation.start == "parse"
        self._one_dtype = getattr(get_target(compilation.options.target), "ONE_DTYPE", False)
        # the call gates: the model's names as keyword arguments (a const's default its own)
        self._hot: list = [(None, None) + (None,) * 2 * len(self._known)] * 2
        self._gate_names = None
        if all(k.isidentifier() and not keyword.iskeyword(k) and not k.startswith("_")
               for k in self._known):
            self._gate_names = [(k, _ABSENT if k not in self.consts or self.consts[k] is None
                                 else float(self.consts[k])) for k in self._known]
            self._hot = [(None, None) + tuple(None for k, _ in self._gate_names
                                              for _ in range(1 if k in self.consts else 2))] * 2
            self.forward = self._gate(0)
            self.value_and_grad = self._gate(1)
        if getattr(get_target(compilation.options.target), "CALLER_ARRAYS", False):
            self._take_callers_arrays()         # any library's arrays, kept as they are

    def __repr__(self) -> str:
        return (f"<gdsl.CompiledModel {self.filename or '<model>'}: loss {self.loss}, "
                f"params {', '.join(self.wrt) or '-'}>")

    # -- calling ------------------------------------------------------------------------------
    # A call's signature is each array's name, shape and dtype (a number's type). The first
    # call with a signature checks everything (_prepare) and, for a model with shapes left to
    # call time, specialises it (_specialised_for); a later call with that signature only
    # converts what needs converting. The call gate (_gate), installed as the instance's own
    # forward and value_and_grad, runs a call with the signature of the last one straight
    # away, at the cost of comparing each array's type, shape and dtype.
    def forward(self, /, **arrays) -> dict:
        """The loss and every output, by name (in training mode, a model with state also
        returns each state's new value under its name; a state not given is at its initial
        value). Raises GdslError on bad arrays."""
        return self._call(0, arrays)

    def value_and_grad(self, /, **arrays) -> tuple:
        """(loss, {name: gradient}) for the wrt names; in training mode, a model with state
        returns (loss, gradients, {state: new value}). Raises GdslError on bad arrays."""
        return self._call(1, arrays)

    def specialised(self, /, **arrays) -> CompiledModel:
        """The model as it runs for arrays of these shapes and dtypes: compiled again with the
        shapes its declarations leave open bound to the arrays' (as if declared), once per
        signature, as ``jax.jit`` does. Its ``source`` is the code those calls run. A model
        whose shapes are all declared is its own specialisation. Raises GdslError on bad
        arrays, as a call would."""
        m = self.model
        order = m.backward_order if m.loss is not None and m.grads else m.forward_order
        out = self._prepare(arrays, order)
        self._call_dtype(arrays, out)
        return self._specialised_for(out) if self._specialises else self

    def _call(self, which: int, arrays: dict):
        """Pass `which` (0 forward, 1 value_and_grad) of the arrays of one call."""
        if self.states and not self.states.keys() <= arrays.keys():
            arrays = self._with_initial_state(arrays)
        key = tuple([(k, v.shape, v.dtype) if type(v) is ndarray else (k, type(v))
                     for k, v in arrays.items()])
        call = self._calls[which].get(key)
        if call is None:
            call, arrays = self._first_call(which, key, arrays)
        else:
            for k, cast in call[2]:     # (a number for an input, integers as float64 ...)
                arrays[k] = self._convert(k, arrays[k], cast=cast)
        owner, name, _, hot = call
        fn = getattr(owner.module, name)
        if hot is not None:
            self._hot[which] = (fn, owner, *hot)
        return owner._run(fn, arrays)

    def _first_call(self, which: int, key: tuple, arrays: dict) -> tuple:
        """Check a call with a new signature and specialise for it; remember it when its
        signature says all a later call's checks would (exact arrays and floats, not lists
        or Python ints). Returns the call and the arrays as checked."""
        m = self.model
        out = self._prepare(arrays, (m.forward_order, m.backward_order)[which])
        cast = self._call_dtype(arrays, out)
        owner = self._specialised_for(out) if self._specialises else self
        convert = tuple((k, cast.get(k)) for k, v in arrays.items() if out[k] is not v)
        call = (owner, ("forward", "value_and_grad")[which], convert,
                self._hot_signature(arrays) if not convert else None)
        if all(type(v) is ndarray or type(v) is float or isinstance(v, np.generic)
               for v in arrays.values()):
            calls = self._calls[which]
            if len(calls) >= MAX_SIGNATURES:
                calls.clear()
            calls[key] = call
        return call, out

    def _call_dtype(self, given: dict, arrays: dict) -> dict:
        """The call's float dtype, the common one of the float arrays given (not Python
        numbers), taken by what is not one: a Python number given for an input (weak, as in
        NumPy's arithmetic and in JAX: ``lam=0.01`` does not make a float32 call's loss
        float64), and, for a target whose code takes one float dtype per call (numba), every
        float array and a const given as a Python number (numba would type it float64).
        Casts ``arrays`` in place; returns {name: dtype} of those cast."""
        floats = {k: a for k, a in arrays.items() if type(a) is ndarray and a.dtype.kind == "f"
                  and k not in self.labels}
        strong = [a.dtype for k, a in floats.items() if type(given[k]) not in (float, int)]
        if not strong:
            return {}
        common = np.result_type(*strong)
        cast = {}
        for k, a in floats.items():
            if a.dtype != common and (self._one_dtype or type(given[k]) in (float, int)):
                arrays[k], cast[k] = a.astype(common), common
        if self._one_dtype and common != np.float64:
            for k in self.consts:
                if type(arrays.get(k)) in (float, int):
                    arrays[k], cast[k] = common.type(arrays[k]), common
        return cast

    def _hot_signature(self, arrays: dict) -> tuple | None:
        """What the call gate compares a call with to run it at once: each input's and
        param's shape and dtype and each const's type, in the gate's order; None when the
        gate cannot take this signature (a number or list for an input, a missing value)."""
        if self._gate_names is None:
            return None
        hot = []
        for name, default in self._gate_names:
            v = arrays.get(name, default)
            if name in self.consts:
                if type(v) is not float:
                    return None
                hot.append(float)
            elif type(v) is ndarray:
                hot += (v.shape, v.dtype)
            else:
                return None
        return tuple(hot)

    def _gate(self, which: int):
        """The call gate of one pass: a function with the model's own keyword arguments that
        runs a call whose arrays have the types, shapes and dtypes of the last call that was
        checked (self._hot) straight away, and passes any other to _call. Built through
        Python's ast module from the model's names (plain identifiers only, else None)."""
        names = self._gate_names
        if names is None:
            return None
        L = ast.Load()

        def name(k):
            return ast.Name(k, L)

        fn = ("forward", "value_and_grad")[which]
        hot = [ast.Name("_fn", ast.Store()), ast.Name("_owner", ast.Store())]
        test = [ast.UnaryOp(ast.Not(), name("_others"))]
        for k, _ in names:
            if k in self.consts:
                hot.append(ast.Name(f"_{k}_type", ast.Store()))
                test.append(ast.Compare(ast.Call(name("_type"), [name(k)], []), [ast.Is()],
                                        [name(f"_{k}_type")]))
            else:
                hot += [ast.Name(f"_{k}_shape", ast.Store()), ast.Name(f"_{k}_dtype", ast.Store())]
                test += [ast.Compare(ast.Call(name("_type"), [name(k)], []), [ast.Is()],
                                     [name("_ndarray")]),
                         ast.Compare(ast.Attribute(name(k), "shape", L), [ast.Eq()],
                                     [name(f"_{k}_shape")]),
                         ast.Compare(ast.Attribute(name(k), "dtype", L), [ast.Is()],
                                     [name(f"_{k}_dtype")])]
        given = [ast.keyword(k, name(k)) for k, _ in names]
        run = ast.Try(
            [ast.Return(ast.Call(name("_fn"), [], given))],
            [ast.ExceptHandler(name("_Exception"), "_e", [ast.Raise(
                ast.Call(ast.Attribute(name("_owner"), "_runtime_error", L), [name("_e")], []),
                name("_e"))])], [], [])
        body = [
            ast.Expr(ast.Constant(getattr(CompiledModel, fn).__doc__)),
            ast.Assign([ast.Tuple(hot, ast.Store())],
                       ast.Subscript(name("_hot"), ast.Constant(which), L)),
            ast.If(ast.BoolOp(ast.And(), test) if len(test) > 1 else test[0], [run], []),
            ast.Return(ast.Call(name("_miss"), [
                ast.Constant(which),
                ast.Dict([ast.Constant(k) for k, _ in names], [name(k) for k, _ in names]),
                name("_others")], [])),
        ]
        args = ast.arguments(posonlyargs=[], args=[], vararg=None,
                             kwonlyargs=[ast.arg(k) for k, _ in names],
                             kw_defaults=[name("_absent") if d is _ABSENT else ast.Constant(d)
                                          for _, d in names],
                             kwarg=ast.arg("_others"), defaults=[])
        tree = ast.Module([ast.FunctionDef(fn, args, body, [], None, None, type_params=[])], [])
        space = {"_hot": self._hot, "_miss": self._miss, "_absent": _ABSENT, "_type": type,
                 "_ndarray": ndarray, "_Exception": Exception}
        code = builtins.compile(ast.fix_missing_locations(tree), f"<gdsl call gate: {fn}>", "exec")
        exec(code, space)  # noqa: S102 (an ast of the model's names, checked plain identifiers)
        return space[fn]

    def _miss(self, which: int, given: dict, others: dict):
        """A call the gate does not run at once: checked, converted, specialised (_call)."""
        arrays = {k: v for k, v in given.items() if v is not _ABSENT}
        arrays.update(others)
        return self._call(which, arrays)

    def _specialised_for(self, arrays: dict) -> CompiledModel:
        """The model compiled with its undeclared shapes bound to those of these (checked)
        arrays; one compilation per signature of shapes and dtypes."""
        m = self.model
        leaves = {**m.inputs, **m.params}
        sig = tuple(sorted((k, a.shape, a.dtype.str) for k, a in arrays.items() if k in leaves))
        spec = self._specialised.get(sig)
        if spec is None:
            o = self.compilation.options
            shapes = {k: a.shape for k, a in arrays.items()
                      if k in leaves and m.node(leaves[k])["shape"] is None}
            spec = CompiledModel(run_pipeline(m.source, filename=m.filename, wrt=o.wrt,
                                              optimize=o.optimize, outputs=o.outputs,
                                              losses=o.losses, target=o.target, shapes=shapes,
                                              at_call=True, hvp=o.hvp, mode=o.mode))
            spec._specialises = False
            if len(self._specialised) >= MAX_SPECIALISED:   # the oldest goes, and the calls
                del self._specialised[next(iter(self._specialised))]    # that ran it
                for calls in self._calls:
                    calls.clear()
            self._specialised[sig] = spec
        return spec

    def _run(self, fn, arrays):
        try:
            return fn(**arrays)
        except Exception as e:   # a failure inside the emitted code: report it at the model's line
            raise self._runtime_error(e) from e

    def _runtime_error(self, e: Exception) -> GdslError:
        m = self.model
        tb = e.__traceback__
        node = None
        while tb is not None:
            linemap = self.compilation.linemap
            if tb.tb_frame.f_code.co_filename == self.path and tb.tb_lineno in linemap:
                node = linemap[tb.tb_lineno]
            tb = tb.tb_next
        span = m.node(node)["span"] if node is not None else None
        text = source_text(m.source, span) if span else ""
        what = f" while computing `{text}`" if text else ""
        err = GdslRuntimeError(f"{type(e).__name__}{what}: {e}", span,
                               notes=[f"in the emitted code at {self.path}"])
        return err.attach(m.source, m.filename)

    def _leaf(self, name):
        return self.model.names[name]

    def _prepare(self, arrays: dict, order: list[int]) -> dict:
        """Every check of a call: names known and none missing, arrays of real numbers, shapes
        that fit the declarations (once per signature). Returns the arrays converted."""
        m = self.model
        needed = self._needed.get(id(order))
        if needed is None:      # the leaves this pass reads, found once per pass
            needed = [n for n in order if m.node(n)["op"] in ("input", "param", "state")]
            needed += [n for n in order if m.node(n)["op"] == "const" and m.node(n)["value"] is None]
            self._needed[id(order)] = needed
        known = self._known
        for k in arrays:
            if k not in known:
                err = GdslValueError(f"unknown array `{k}`",
                                     help="the model takes: " + ", ".join(known) if known else None)
                raise err.attach(m.source, m.filename)
        for n in needed:
            name = m.node(n)["name"]
            if name not in arrays:
                kind = m.node(n)["op"]
                raise GdslValueError(f"missing array `{name}` ({kind} at {m.node(n)['span']})",
                                     m.node(n)["span"]).attach(m.source, m.filename)
        out = {k: self._convert(k, v, check=True) for k, v in arrays.items()}
        sig = (len(order),) + tuple((k, np.shape(a), np.asarray(a).dtype.kind)
                                    for k, a in sorted(out.items()))
        if sig not in self._checked:
            self._check_shapes({k: np.asarray(a) for k, a in out.items()}, order)
            self._checked[sig] = True
        return out

    def _convert(self, k: str, v, check: bool = False, cast=None):
        """An array as the emitted code takes it: a NumPy array, integers as float64 (labels
        stay integers), a const as a Python number: NumPy's weak scalar, so that lam does not
        turn float32 arrays into float64. What it does depends only on the value's type and
        dtype (a call's signature); ``check``: raise GdslError for what is not real numbers."""
        if type(v) is float and k in self.consts:
            return v if cast is None else cast.type(v)
        try:
            a = np.asarray(v)
        except Exception as e:  # noqa: BLE001 (ragged lists, objects whose __array__ fails: any error)
            m = self.model
            raise GdslValueError(f"array `{k}` is not an array of numbers: {e}",
                                 m.node(self._leaf(k))["span"]).attach(m.source, m.filename) from None
        kind = a.dtype.kind
        if check and kind in BAD_KINDS:
            m = self.model
            raise GdslValueError(f"array `{k}` has {BAD_KINDS[kind]} dtype {a.dtype}; "
                                 f"gdsl computes with real numbers",
                                 m.node(self._leaf(k))["span"]).attach(m.source, m.filename)
        if kind in "biu" and k not in self.labels:
            a = a.astype(np.float64)
        if k in self.consts and a.ndim == 0:
            return a.item()
        return a if cast is None or a.dtype == cast else a.astype(cast)

    def _check_shapes(self, arrays: dict, order: list[int]) -> None:
        """Bind the symbolic dims from the arrays; name the array and both shapes on a mismatch."""
        m = self.model
        binding = Binding(m.dims.bound)
        leaf_shapes = {}
        for k, a in arrays.items():
            n = self._leaf(k)
            d = m.node(n)
            leaf_shapes[n] = a.shape
            if d["op"] == "const":
                if a.ndim != 0:
                    raise GdslShapeError(f"const `{k}` must be a scalar, got shape {a.shape}",
                                         d["span"]).attach(m.source, m.filename)
                continue
            declared = d["shape"] if d.get("declared") else None
            if declared is None:
                continue
            if k in self.labels and len(declared) >= 1:
                if a.dtype.kind in "iu":
                    declared = label_shape(declared, a.shape)
                elif a.ndim == len(declared) - 1:
                    raise GdslValueError(
                        f"labels `{k}` of shape {a.shape} must be integers (class numbers), not "
                        f"{a.dtype}", d["span"],
                        help=f"pass {k}.astype(int), or one-hot labels of shape "
                        f"{show_shape(declared)}").attach(m.source, m.filename)
            misfit = binding.bind(declared, a.shape, k)
            if misfit is None:
                continue
            message = f"array `{k}` has shape {a.shape}, but it is declared {show_shape(declared)}"
            if misfit.axis is None:
                message += f" ({len(declared)}-D)"
            elif misfit.by is not None:
                message += f" and {misfit.want} = {misfit.bound} (from {_from(misfit.by)})"
            else:
                message += f" (axis {misfit.axis} must be {misfit.want})"
            raise GdslShapeError(message, d["span"]).attach(m.source, m.filename)
        if self._unknown:
            try:
                infer(m, Dims(binding.sizes), order, leaf_shapes)
            except GdslError as e:
                raise e.attach(m.source, m.filename) from None

    # -- second order: Hessian-vector products -------------------------------------------------
    def hvp(self, v: dict, /, **arrays) -> dict:
        """H·v: the Hessian of the loss with respect to the wrt names, at these arrays, times
        the directions ``v`` ({name: array shaped like it}, one per wrt name), by name.

        The emitted module's ``hvp`` (reverse over reverse, gdsl compile --hvp), compiled on
        the first call and kept. Raises GdslError on bad arrays or directions."""
        twin, owner, out = self._second_order_call(arrays)
        out[_direction_arg(owner.module)] = twin._directions(v, out)
        return owner._run(owner.module.hvp, out)

    def hessian(self, /, **arrays) -> ndarray:
        """The Hessian of the loss at these arrays as a dense matrix over the wrt names'
        entries, flattened (C order) and concatenated in wrt order: column i is H·e_i, one
        hvp each. For models with few params (the matrix must fit in memory). Raises
        GdslError on bad arrays."""
        from .limits import check_memory
        twin, owner, out = self._second_order_call(arrays)
        arg = _direction_arg(owner.module)
        shapes = {k: np.shape(out[k]) if k in out else () for k in twin.wrt}
        size = sum(math.prod(s) for s in shapes.values())
        check_memory([((size, size), 1, "the Hessian", None)], "the Hessian",
                     self.model.filename, self.model.source)
        H = np.zeros((size, size))
        starts = np.cumsum([0] + [math.prod(s) for s in shapes.values()])
        for i in range(size):
            e = np.zeros(size)
            e[i] = 1.0
            v = {k: e[a:b].reshape(s) for (k, s), a, b in zip(shapes.items(), starts, starts[1:])}
            hv = owner._run(owner.module.hvp, {**out, arg: v})
            H[:, i] = np.concatenate([np.reshape(hv[k], -1) for k in shapes])
        return H

    def _second_order_call(self, arrays: dict) -> tuple:
        """(the model with its hvp, the module that runs this call, the call's arrays as
        checked): the first steps of hvp and hessian."""
        twin = self._second_order()
        if self.states and not self.states.keys() <= arrays.keys():
            arrays = self._with_initial_state(arrays)
        out = twin._prepare(arrays, twin.model.backward_order)
        return twin, twin._specialised_for(out) if twin._specialises else twin, out

    def _second_order(self) -> CompiledModel:
        """This model compiled with its Hessian-vector product (once)."""
        o = self.compilation.options
        if o.hvp:
            return self
        if getattr(self, "_hvp_model", None) is None:
            m = self.model
            self._hvp_model = CompiledModel(run_pipeline(
                m.source, filename=m.filename, wrt=o.wrt, optimize=o.optimize,
                outputs=o.outputs, losses=o.losses, target=o.target, at_call=True, hvp=True,
                mode=o.mode))
        return self._hvp_model

    # -- training and evaluation modes (state, `a if training else b`) --------------------------
    def train(self) -> CompiledModel:
        """The model in training mode (`a if training else b` is a; a state's new value is
        returned by forward and value_and_grad), as nn.Module.train() puts a module. Compiled
        once and kept; a model compiled in training mode is its own."""
        return self._in_mode("train")

    def eval(self) -> CompiledModel:
        """The model in evaluation mode (`a if training else b` is b: batch norm with its
        running statistics; nothing is updated), as nn.Module.eval(). Compiled once and kept."""
        return self._in_mode("eval")

    def _in_mode(self, mode: str) -> CompiledModel:
        o = self.compilation.options
        if o.mode == mode or not self.model.modal:
            return self
        twins = self.__dict__.setdefault("_modes", {})
        if mode not in twins:
            m = self.model
            twin = CompiledModel(run_pipeline(
                m.source, filename=m.filename, wrt=o.wrt, optimize=o.optimize,
                outputs=o.outputs, losses=o.losses, target=o.target, at_call=True, hvp=o.hvp,
                mode=mode))
            twin._modes = {o.mode: self}
            twins[mode] = twin
        return twins[mode]

    def _with_initial_state(self, arrays: dict) -> dict:
        """The arrays of a call, with each state not given at its initial value (as a const
        not given takes its default): a fresh nn.BatchNorm1d's running statistics. Its dims
        come from the declared shapes of the arrays given."""
        m = self.model
        binding = Binding(m.dims.bound)
        dtype = np.float64
        for k, a in arrays.items():
            if k not in self._known or k in self.consts or k in self.labels:
                continue
            d = m.node(self._leaf(k))
            shape = np.shape(a)
            if d.get("declared") and d["shape"] is not None and len(shape) == len(d["shape"]):
                binding.bind(d["shape"], shape, k)      # (a misfit is reported by the checks)
            if k in self.params and getattr(a, "dtype", None) is not None and a.dtype.kind == "f":
                dtype = a.dtype
        given = self.init_state({**binding.sizes, **{k: v for k, v in m.dims.bound.items()}},
                                dtype)
        return {**{k: v for k, v in given.items() if k not in arrays}, **arrays}

    def init_state(self, dims: dict[str, int], dtype=np.float64) -> dict:
        """Each state's initial value (`state mu[m, 1] = 0`), with symbolic dims bound by
        ``dims``; {} for a model without state."""
        out = {}
        for name, (shape, value) in self.states.items():
            out[name] = np.full(self._sized("state", name, shape, dims), value, dtype)
        return out

    def _sized(self, kind: str, name: str, shape: tuple, dims: dict) -> tuple[int, ...]:
        """A param's or state's declared shape with its symbols sized by ``dims``, each a
        positive whole number. Raises GdslShapeError at the declaration."""
        m = self.model
        span = m.node(self._leaf(name))["span"]
        for d in (d for d in shape if isinstance(d, str)):
            if d not in dims:
                call = "init_params" if kind == "param" else "init_state"
                raise GdslShapeError(f"{kind} `{name}` needs the size of `{d}`", span,
                                     help=f"give it, e.g. {call}({{'{d}': 10}})"
                                     ).attach(m.source, m.filename)
            size = dims[d]
            if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
                raise GdslShapeError(f"{kind} `{name}` needs `{d}` to be a positive whole "
                                     f"number, got {size!r}", span).attach(m.source, m.filename)
        return tuple(int(dims[d]) if isinstance(d, str) else d for d in shape)

    def _directions(self, v, arrays: dict) -> dict:
        """The directions of an hvp call, checked: one real array per wrt name, shaped like it."""
        m = self.model
        if not isinstance(v, dict):
            raise GdslValueError(f"the directions v must be a dict {{name: array}} of "
                                 f"{', '.join(self.wrt)}, not {type(v).__name__}"
                                 ).attach(m.source, m.filename)
        missing = [k for k in self.wrt if k not in v]
        extra = [k for k in v if k not in self.wrt]
        if missing or extra:
            raise GdslValueError("the directions v " + "; ".join(filter(None, [
                missing and "lack " + ", ".join(f"`{k}`" for k in missing),
                extra and "name no differentiated value: " + ", ".join(f"`{k}`" for k in extra)])),
                help="give one array for each of " + ", ".join(self.wrt)
            ).attach(m.source, m.filename)
        out = {}
        for k in self.wrt:
            a = self._convert(k, v[k], check=True)
            a = np.asarray(a, dtype=np.result_type(a, np.float64) if a.dtype.kind != "f" else a.dtype)
            want = np.shape(arrays[k]) if k in arrays else np.shape(a)
            if np.shape(a) != want:
                raise GdslValueError(f"direction v[{k!r}] has shape {np.shape(a)}, but `{k}` has "
                                     f"shape {want}", m.node(self._leaf(k))["span"]
                                     ).attach(m.source, m.filename)
            out[k] = a
        return out

    # -- the caller's arrays (the array-API target) --------------------------------------------
    # The module takes its namespace from its arguments: a call's arrays go in as they are
    # (PyTorch tensors, JAX, Dask, CuPy arrays ...), checked like NumPy's but not converted,
    # except integers that are not labels, made floats of the call's dtype in their library.
    # A dimension may be unknown until computed (Dask): it fits any declared size.
    def _take_callers_arrays(self) -> None:
        self._specialises = False       # the module runs any rank and shape itself
        m = self.model
        # a forward pass that reads none of the caller's arrays (a loss of consts alone)
        # computes NumPy values, returned in the caller's library (_as_callers)
        forward = set(m.forward_order)
        self._numpy_forward = forward.isdisjoint([*m.inputs.values(), *m.params.values()])
        self.forward = self._forward_any
        self.value_and_grad = self._value_and_grad_any

    def _forward_any(self, /, **arrays) -> dict:
        """The loss and every output, by name, as arrays of the caller's library. Raises
        GdslError on bad arrays."""
        if self.states and not self.states.keys() <= arrays.keys():
            arrays = self._with_initial_state(arrays)
        arrays = self._prepare_any(arrays, self.model.forward_order)
        out = self._run(self.module.forward, arrays)
        return _as_callers(out, arrays) if self._numpy_forward else out

    def _value_and_grad_any(self, /, **arrays) -> tuple:
        """(loss, {name: gradient}) for the wrt names, as arrays of the caller's library.
        Raises GdslError on bad arrays."""
        if self.states and not self.states.keys() <= arrays.keys():
            arrays = self._with_initial_state(arrays)
        arrays = self._prepare_any(arrays, self.model.backward_order)
        return self._run(self.module.value_and_grad, arrays)

    def _prepare_any(self, arrays: dict, order: list[int]) -> dict:
        from array_api_compat import array_namespace, device, is_array_api_obj, is_numpy_array
        m = self.model
        for k in arrays:
            if k not in self._known:
                raise GdslValueError(f"unknown array `{k}`", help="the model takes: " + ", ".join(
                    self._known)).attach(m.source, m.filename)
        for n in order:
            d = m.node(n)
            if (d["op"] in ("input", "param") or d["op"] == "const" and d["value"] is None) \
                    and d["name"] not in arrays:
                raise GdslValueError(f"missing array `{d['name']}` ({d['op']} at {d['span']})",
                                     d["span"]).attach(m.source, m.filename)
        # NumPy arrays (and lists, numbers) among another library's arrays become its arrays,
        # on the device of the first; two libraries other than NumPy are a mistake
        foreign = {k: v for k, v in arrays.items() if is_array_api_obj(v) and not is_numpy_array(v)}
        library = {k: type(v).__module__.split(".")[0] for k, v in foreign.items()}
        if len(set(library.values())) > 1:
            k1 = next(iter(library))
            k2 = next(k for k in library if library[k] != library[k1])
            raise GdslValueError(
                f"arrays from two libraries: `{k1}` is from {library[k1]}, `{k2}` from {library[k2]}",
                help="pass every array from one library (NumPy arrays are converted to the "
                     "other library's)").attach(m.source, m.filename)
        first = next(iter(foreign.values()), None)
        xp = array_namespace(first if first is not None else np.empty(0))
        where = {} if first is None else {"device": device(first)}
        ours = foreign.values() if foreign else [v for v in arrays.values() if is_array_api_obj(v)]
        floats = [v.dtype for v in ours if _kind(xp, v.dtype) == "f"]
        out, stand_ins = {}, {}
        for k, v in arrays.items():
            span = m.node(self._leaf(k))["span"]
            if k in self.consts and isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k], stand_ins[k] = v, ((), np.float64)
                continue
            try:
                a = v if k in foreign or first is None and is_array_api_obj(v) else \
                    xp.asarray(np.asarray(v), **where)      # (a list read as NumPy reads it)
                kind = _kind(xp, a.dtype)
            except Exception as e:  # noqa: BLE001 (ragged lists, objects, strings: any error)
                raise GdslValueError(f"array `{k}` is not an array of real numbers: {e}",
                                     span).attach(m.source, m.filename) from None
            if kind not in "biuf":
                raise GdslValueError(f"array `{k}` has dtype {a.dtype}; gdsl computes with real "
                                     f"numbers", span).attach(m.source, m.filename)
            if kind in "biu" and k not in self.labels:
                a = xp.astype(a, floats[0] if floats else xp.float64)
                kind = "f"
            out[k] = a
            stand_ins[k] = (tuple(_known_dim(d) for d in a.shape),
                            {"f": np.float64, "b": np.bool_}.get(kind, np.int64))
        sig = (len(order),) + tuple(sorted(stand_ins.items()))
        if sig not in self._checked:
            self._check_shapes(_fill_unknown(m, stand_ins, arrays), order)
            self._checked[sig] = True
        return out

    # -- conveniences -----------------------------------------------------------------------
    def init_params(self, dims: dict[str, int], seed: int = 0, dtype=np.float64) -> dict:
        """Draw initial params from their `~` initialisers, with symbolic dims bound by ``dims``."""
        from .ir.init import draw
        from .limits import check_memory
        m = self.model
        shapes = {}
        for name, shape in self.params.items():
            span = m.node(self._leaf(name))["span"]
            if shape is None:
                raise GdslShapeError(f"param `{name}` has no declared shape to initialise",
                                     span).attach(m.source, m.filename)
            shapes[name] = self._sized("param", name, shape, dims)
        check_memory([(s, 1, f"param `{k}`", m.node(self._leaf(k))["span"])
                      for k, s in shapes.items()], "initialising the params", m.filename, m.source)
        rng = np.random.default_rng(seed)
        return {name: draw(self.init[name], shape, rng, dtype) for name, shape in shapes.items()}

    # -- seeing and explaining (gdsl.draw, gdsl.explain) ---------------------------------------
    def draw(self, target: str = "svg", backward: bool = False, shapes: bool = False):
        """Draw the graph as on the lecture's slides: to a file (.dot, .svg, .png; returns the
        path) or, given a bare format name, as its text (dot, svg) or bytes (png)."""
        from .views.draw import draw
        return draw(self, target, backward=backward, shapes=shapes)

    def explain(self, format: str = "text", jacobians: bool = False) -> str:
        """Forward order, BackOp order and local Jacobians in the lecture's notation
        (format 'text', 'markdown' or 'latex'); ``jacobians=True`` adds the explicit check."""
        from .views.explain import explain
        return explain(self, format, jacobians=jacobians)

    def _repr_svg_(self) -> str:
        from .views.draw import repr_svg
        return repr_svg(self)


UNKNOWN = -1        # a dimension unknown until computed (Dask's nan, the standard's None)


def _direction_arg(module) -> str:
    """The name of the emitted hvp's parameter of directions (v, unless the model has a v)."""
    import inspect
    return next(iter(inspect.signature(module.hvp).parameters))


def _known_dim(d) -> int:
    return UNKNOWN if d is None or math.isnan(d) else int(d)


def _kind(xp, dtype) -> str:
    """NumPy's dtype kind of any library's dtype: b, i, u, f, c (or NumPy's own)."""
    kind = getattr(dtype, "kind", None)
    if isinstance(kind, str):
        return kind
    for k, name in (("b", "bool"), ("i", "signed integer"), ("u", "unsigned integer"),
                    ("f", "real floating"), ("c", "complex floating")):
        if xp.isdtype(dtype, name):
            return k
    return "O"


def _fill_unknown(m, stand_ins: dict, arrays: dict) -> dict:
    """Arrays that stand in for a call's (shape, dtype) in the shape checks (no memory: one
    number, broadcast), an unknown dimension taking the size the declaration asks for, or that
    another array gives the same symbol: it fits whatever it will be."""
    sizes: dict = {}
    for k, (shape, _) in stand_ins.items():
        d = m.node(m.names[k])
        for want, got in zip(d["shape"] or () if d.get("declared") else (), shape):
            if isinstance(want, str) and got != UNKNOWN:
                sizes.setdefault(want, got)
    out = {}
    for k, (shape, dtype) in stand_ins.items():
        if UNKNOWN in shape:
            d = m.node(m.names[k])
            declared = d["shape"] if d.get("declared") and len(d["shape"]) == len(shape) else ()
            shape = tuple(got if got != UNKNOWN else want if isinstance(want, int) else
                          sizes.get(want, 1) for want, got in zip(declared or [1] * len(shape), shape))
        out[k] = np.broadcast_to(np.zeros((), dtype), shape)
    return out


def model_warnings(compiled: CompiledModel, report=None):
    """A context manager: within it, a NumPy RuntimeWarning raised inside the code emitted for
    ``compiled`` (overflow, divide by zero, invalid value) is reported at the model's own
    line, ``model.gdsl:7:5: warning: overflow encountered in exp while computing `exp(s)```
    with the line and a caret, once per kind of warning and model line, never as a place in
    the generated file. ``report(warning)`` gets each one (a GdslError subclass of kind
    "warning": ``.span``, ``.message``, ``.render()``); by default it is printed to standard
    error. Other warnings are shown as they would have been.

    One hook (warnings.catch_warnings and showwarning) serves the whole block: a call of the
    model costs nothing more. A warning is matched to the model's line by walking the frames
    up from where NumPy raised it to the emitted module's (a helper's line maps to its caller's).
    """
    import contextlib
    import inspect
    import re
    import sys
    import warnings

    from .passes.warn import GdslWarning

    def owners() -> dict:       # the model and its specialisations, by the module each runs
        found = {compiled.path: compiled}
        for spec in getattr(compiled, "_specialised", {}).values():
            found.setdefault(getattr(spec, "path", None), spec)
        return found

    def show(message, category, filename, lineno, file=None, line=None):
        models = owners() if issubclass(category, RuntimeWarning) else {}
        if filename not in models:
            return previous(message, category, filename, lineno, file, line)
        owner, node, frame = models[filename], None, inspect.currentframe()
        while frame is not None and node is None:
            o = models.get(frame.f_code.co_filename)
            if o is not None:
                owner = o
                node = o.compilation.linemap.get(frame.f_lineno)
            frame = frame.f_back
        m = owner.model
        d = m.node(node) if node is not None and node in m.nodes else None
        span = d["span"] if d is not None else None
        key = (str(message), span.line if span else None)
        if key in seen:
            return None
        seen.add(key)
        text = source_text(m.source, span) if span else ""
        where = (f" in the backward pass of `{text}`" if d.get("backward") else
                 f" while computing `{text}`") if text else ""
        w = GdslWarning(f"{message}{where}", span).attach(m.source, m.filename)
        if report is None:
            print(w.render(), file=sys.stderr)
        else:
            report(w)
        return None

    seen: set = set()

    @contextlib.contextmanager
    def hook():
        nonlocal previous
        with warnings.catch_warnings():
            previous = warnings.showwarning
            # every time from the emitted modules (the hook keeps one per kind and line)
            warnings.filterwarnings("always", category=RuntimeWarning,
                                    module=re.escape(compiled.module.__name__.split(".")[0]))
            warnings.showwarning = show
            yield

    previous = warnings.showwarning
    return hook()


def _from(who: str) -> str:
    return who if who == "the model" else f"array `{who}`"


def _debug_enabled() -> bool:
    return os.environ.get("GDSL_DEBUG", "") not in ("", "0")


__all__ = [
    "STAGES",
    "CompiledModel",
    "compile",
    "compile_file",
    "load_module",
    "run_pipeline",
    "write_atomic",
]

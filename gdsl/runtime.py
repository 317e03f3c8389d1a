"""The runtime: a compiled model's module imported from a real file, called with arrays by name.

``compile(text)`` runs the pipeline (gdsl.pipeline) and wraps what it emitted in a
CompiledModel, which checks the arrays of each call against the model's declarations.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from pathlib import Path

import numpy as np

from .backend import get_target
from .errors import GdslError, GdslRuntimeError, GdslShapeError, GdslValueError
from .files import cache_dir, read_model, write_atomic
from .ir.shapes import Binding, Dims, label_shape, show_shape
from .lang.source import source_text
from .passes.infer import infer
from .pipeline import STAGES, Compilation, _no_gc, run_pipeline


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
    return CompiledModel(run_pipeline(text, filename=filename, wrt=wrt, optimize=optimize,
                                      outputs=outputs, target=target))


def compile_file(path: str | os.PathLike, wrt: list[str] | None = None, *,
                 optimize: bool = True, outputs: list[str] | None = None,
                 target: str = "numpy") -> CompiledModel:
    """Compile a model file; see ``compile``. Reads at most MAX_SOURCE_BYTES of it."""
    text = read_model(str(path))
    return compile(text, wrt, filename=str(path), optimize=optimize, outputs=outputs,
                   target=target)


def load_module(code: str, stem: str = "model"):
    """Write emitted code to a real file (so tracebacks and pdb show it) and import it."""
    digest = hashlib.sha256(code.encode("utf-8")).hexdigest()[:16]
    safe = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in stem)[:40] or "model"
    path = cache_dir() / f"{safe}_{digest}.py"
    if not path.exists() or path.read_text(encoding="utf-8") != code:
        write_atomic(path, code, durable=False)     # checked against the code when read
    spec = importlib.util.spec_from_file_location(f"gdsl_generated.{safe}_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, str(path)


BAD_KINDS = {"O": "object", "U": "string", "S": "bytes", "V": "structured", "c": "complex",
             "M": "datetime", "m": "timedelta"}


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
        with _no_gc():
            self.module, self.path = load_module(self.source, stem)
        self.inputs = dict(self.module.INPUTS)
        self.params = dict(self.module.PARAMS)
        self.consts = dict(self.module.CONSTS)
        self.init = dict(self.module.INIT)
        self.wrt = list(self.module.WRT)
        self.loss = self.module.LOSS
        self.outputs = list(self.module.OUTPUTS)
        self.labels = list(self.module.LABELS)
        self.train_options = dict(self.module.TRAIN)
        self.filename = model.filename
        self._checked: dict = {}
        self._needed: dict = {}
        self._known = {**self.inputs, **self.params, **self.consts}
        self._unknown = any(model.node(n)["shape"] is None
                            for n in [*model.inputs.values(), *model.params.values()])
        if getattr(get_target(compilation.options.target), "CALLER_ARRAYS", False):
            self._take_callers_arrays()         # any library's arrays, kept as they are

    def __repr__(self) -> str:
        return (f"<gdsl.CompiledModel {self.filename or '<model>'}: loss {self.loss}, "
                f"params {', '.join(self.wrt) or '-'}>")

    # -- calling ------------------------------------------------------------------------------
    def forward(self, /, **arrays) -> dict:
        """The loss and every output, by name. Raises GdslError on bad arrays."""
        arrays = self._prepare(arrays, self.model.forward_order)
        return self._run(self.module.forward, arrays)

    def value_and_grad(self, /, **arrays) -> tuple:
        """(loss, {name: gradient}) for the wrt names. Raises GdslError on bad arrays."""
        arrays = self._prepare(arrays, self.model.backward_order)
        return self._run(self.module.value_and_grad, arrays)

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
        m = self.model
        needed = self._needed.get(id(order))
        if needed is None:      # the leaves this pass reads, found once per pass
            needed = [n for n in order if m.node(n)["op"] in ("input", "param")]
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
        out = {}
        for k, v in arrays.items():
            try:
                a = np.asarray(v)
            except Exception as e:  # noqa: BLE001 (ragged lists, objects whose __array__ fails: any error)
                raise GdslValueError(f"array `{k}` is not an array of numbers: {e}",
                                     m.node(self._leaf(k))["span"]).attach(m.source, m.filename) from None
            kind = a.dtype.kind
            if kind in BAD_KINDS:
                raise GdslValueError(f"array `{k}` has {BAD_KINDS[kind]} dtype {a.dtype}; "
                                     f"gdsl computes with real numbers",
                                     m.node(self._leaf(k))["span"]).attach(m.source, m.filename)
            if kind in "biu" and k not in self.labels:
                a = a.astype(np.float64)
            out[k] = a
        sig = (len(order),) + tuple((k, a.shape, a.dtype.kind) for k, a in sorted(out.items()))
        if sig not in self._checked:
            self._check_shapes(out, order)
            self._checked[sig] = True
        for k in self.consts:       # a const as a Python number: NumPy's weak scalar, so that
            if k in out:            # lam does not turn float32 arrays into float64
                out[k] = out[k].item()
        return out

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

    # -- the caller's arrays (the array-API target) --------------------------------------------
    # The module takes its namespace from its arguments: a call's arrays go in as they are
    # (PyTorch tensors, JAX, Dask, CuPy arrays ...), checked like NumPy's but not converted,
    # except integers that are not labels, made floats of the call's dtype in their library.
    # A dimension may be unknown until computed (Dask): it fits any declared size.
    def _take_callers_arrays(self) -> None:
        self._specialises = False       # the module runs any rank and shape itself
        self.forward = self._forward_any
        self.value_and_grad = self._value_and_grad_any

    def _forward_any(self, /, **arrays) -> dict:
        """The loss and every output, by name, as arrays of the caller's library. Raises
        GdslError on bad arrays."""
        arrays = self._prepare_any(arrays, self.model.forward_order)
        return self._run(self.module.forward, arrays)

    def _value_and_grad_any(self, /, **arrays) -> tuple:
        """(loss, {name: gradient}) for the wrt names, as arrays of the caller's library.
        Raises GdslError on bad arrays."""
        arrays = self._prepare_any(arrays, self.model.backward_order)
        return self._run(self.module.value_and_grad, arrays)

    def _prepare_any(self, arrays: dict, order: list[int]) -> dict:
        from array_api_compat import array_namespace, is_array_api_obj
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
        given = [v for v in arrays.values() if is_array_api_obj(v)]
        xp = array_namespace(*given) if given else array_namespace(np.empty(0))
        floats = [v.dtype for v in given if xp.isdtype(v.dtype, "real floating")]
        out, stand_ins = {}, {}
        for k, v in arrays.items():
            span = m.node(self._leaf(k))["span"]
            if k in self.consts and isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k], stand_ins[k] = v, ((), np.float64)
                continue
            try:
                a = v if is_array_api_obj(v) else xp.asarray(np.asarray(v))   # (as NumPy reads it)
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
            missing = [d for d in shape if isinstance(d, str) and d not in dims]
            if missing:
                raise GdslShapeError(f"param `{name}` needs the size of `{missing[0]}`", span,
                                     help=f"give it, e.g. init_params({{'{missing[0]}': 10}})"
                                     ).attach(m.source, m.filename)
            shapes[name] = tuple(dims[d] if isinstance(d, str) else d for d in shape)
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

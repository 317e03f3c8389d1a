"""The compiler: a flat list of named stages, with a check of the IR after each.

    text -> parse -> resolve -> shapes -> fuse -> grad -> optimise -> schedule -> emit

`gdsl compile --dump-after STAGE` prints the IR after any stage.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable
from dataclasses import dataclass

from .backend.numpy_target import emit_module
from .errors import GdslError
from .ir.graph import Model
from .lang.parse import parse
from .passes import optimise
from .passes.fuse import fuse
from .passes.grad import differentiate
from .passes.infer import infer
from .passes.resolve import build
from .passes.schedule import schedule
from .passes.warn import warn_unstable


@dataclass
class Options:
    wrt: list[str] | None = None
    optimize: bool = True
    outputs: list[str] | None = None    # extra values to return from forward, by model name


def _parse(m: Model, o: Options):
    m.program = parse(m.source)


def _resolve(m: Model, o: Options):
    build(m.program, m, o.wrt)
    m.program = None            # the graph says it all from here on
    for name in o.outputs or ():
        if name not in m.names:
            from .errors import GdslNameError
            raise GdslNameError(f"cannot output `{name}`: the model defines no such name")
        m.outputs.setdefault(name, m.names[name])


def _shapes(m: Model, o: Options):
    infer(m)
    m.written = m.copy_graph()  # the model as written, with shapes: CompiledModel.graph


def _fuse(m: Model, o: Options):
    if o.optimize:
        fuse(m)
    warn_unstable(m)


def _grad(m: Model, o: Options):
    differentiate(m)


def _optimise(m: Model, o: Options):
    if o.optimize:
        optimise(m)


def _schedule(m: Model, o: Options):
    schedule(m)


def _emit(m: Model, o: Options):
    title = f"{m.filename or 'model'}: forward and backward pass"
    m.code, m.linemap = emit_module(m, title, in_place=o.optimize)


STAGES: list[tuple[str, Callable]] = [
    ("parse", _parse),          # Lark LALR, spans kept -> AST
    ("resolve", _resolve),      # names (single assignment) -> NetworkX graph
    ("shapes", _shapes),        # symbolic dims unify; mismatches are errors here
    ("fuse", _fuse),            # softmax + cross-entropy -> log-sum-exp form
    ("grad", _grad),            # reverse mode: BackOp as vector-Jacobian products, same IR
    ("optimise", _optimise),    # CSE, folding, identities, dead code
    ("schedule", _schedule),    # deterministic topological orders for both passes
    ("emit", _emit),            # Python through the ast module
]
STAGE_NAMES = [name for name, _ in STAGES]

# Check the IR's invariants after every stage: on in the test suite and with GDSL_CHECK_IR=1,
# off by default (it costs a tenth of the compile time of a large model).
CHECK_IR = os.environ.get("GDSL_CHECK_IR", "") not in ("", "0")


def run_pipeline(text: str, *, filename: str | None = None, wrt: list[str] | None = None,
                 optimize: bool = True, after: Callable[[str, Model], None] | None = None,
                 outputs: list[str] | None = None, model: Model | None = None,
                 start: str = "parse") -> Model:
    """Run every stage from ``start``; ``after(stage, model)`` is called after each (--dump-after).

    A caller that builds the IR itself (gdsl check does, for one op at a time) passes
    ``model=`` and ``start="shapes"``.
    """
    m = model if model is not None else Model(source=text, filename=filename)
    opts = Options(wrt=wrt, optimize=optimize, outputs=outputs)
    with _no_gc():
        return _run_stages(m, opts, text, filename, start, after)


@contextlib.contextmanager
def _no_gc():
    """Python's cycle collector would walk the whole graph again and again as a large model
    allocates (the IR holds no cycles worth collecting): pause it while compiling. What the
    compile keeps then joins the oldest generation at once (gc.freeze, gc.unfreeze), instead
    of being walked by the first collection after it: 0.1 s for a 10,000-node model."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            if not gc.get_freeze_count():    # (no one else's frozen objects to thaw)
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _run_stages(m, opts, text, filename, start, after) -> Model:
    try:
        for name, stage in STAGES[STAGE_NAMES.index(start):]:
            stage(m, opts)
            if name != "parse" and CHECK_IR:
                m.check(name)
            if after is not None:
                after(name, m)
    except GdslError as e:
        raise e.attach(text, filename) from None
    return m

"""The compiler: a flat list of named stages, with a check of the IR after each.

    text -> parse -> resolve -> shapes -> fuse -> grad -> optimise -> schedule -> emit

`gdsl compile --dump-after STAGE` prints the IR after any stage.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import networkx as nx

from .backend import get_target
from .errors import GdslError, GdslNameError, GdslUsageError
from .ir.graph import Model
from .lang.parse import parse
from .lang.syntax import Program
from .passes import optimise
from .passes.expose import Losses, expose_losses
from .passes.fuse import fuse
from .passes.grad import differentiate, hessian_vector
from .passes.infer import infer
from .passes.resolve import build
from .passes.schedule import schedule
from .passes.warn import warn_unstable

MODES = ("train", "eval")      # what `a if training else b` is, and whether states update


@dataclass
class Options:
    wrt: list[str] | None = None
    optimize: bool = True
    outputs: list[str] | None = None    # extra values to return from forward, by model name
    losses: bool = False                # also return the data-loss terms and their scores
    target: str = "numpy"               # what the IR is emitted as (gdsl.backend.TARGETS)
    # specialisation (CompiledModel.specialised): the shapes of a call's arrays, by leaf name,
    # given to the leaves that declare none before shapes are inferred, as if declared
    shapes: dict[str, tuple] | None = None
    # the caller binds shapes left open at call time (CompiledModel): a target that needs every
    # shape (numba) emits the generic NumPy module of such a model until then
    at_call: bool = False
    # second order: also emit hvp(*, v, **arrays), H·v by reverse over reverse (--hvp)
    hvp: bool = False
    # each loop's body once, for a step t, rather than unrolled (drawings: gdsl graph)
    fold_loops: bool = False
    # "train": `a if training else b` is a and the states' updates are returned; "eval": b
    mode: str = "train"


@dataclass
class Compilation:
    """What the pipeline makes of one model: the IR, and what the stages produce beside it."""

    model: Model                               # the IR (gdsl.ir.graph)
    options: Options = field(default_factory=Options)
    start: str = "parse"                       # the first stage run ("shapes": an IR built by hand)
    program: Program | None = None             # the syntax tree, from parse to resolve
    train: dict = field(default_factory=dict)  # the `train` line: gdsl run's defaults
    losses: Losses | None = None               # the data-loss terms (Options.losses)
    written: nx.DiGraph | None = None          # the IR as written, with shapes (after shapes)
    code: str = ""                             # the emitted module
    linemap: dict[int, int] = field(default_factory=dict)   # its line -> the node it computes


def _parse(c: Compilation):
    c.program = parse(c.model.source)


def _resolve(c: Compilation):
    m, o = c.model, c.options
    c.train = build(c.program, m, o.wrt, fold_loops=o.fold_loops, mode=o.mode)
    c.program = None            # the graph says it all from here on
    for name in o.outputs or ():
        if name not in m.names:
            raise GdslNameError(f"cannot output `{name}`: the model defines no such name")
        m.outputs.setdefault(name, m.names[name])
    if o.losses:
        c.losses = expose_losses(m)


def _shapes(c: Compilation):
    m = c.model
    for name, shape in (c.options.shapes or {}).items():
        d = m.node(m.names[name])
        if d["shape"] is None:
            d["shape"], d["declared"] = tuple(shape), True
    infer(m)
    steps = [d for d in m.nodes.values() if "step_of" in d]
    if steps:       # a loop drawn folded: h[t - 1] has the shape of h[t] (first that of h[0])
        for d in steps:
            d["shape"] = m.node(d["step_of"])["shape"]
        infer(m)
    c.written = c.model.copy_graph()    # the model as written, with shapes: CompiledModel.graph


def _fuse(c: Compilation):
    if c.options.optimize:
        fuse(c.model)
    warn_unstable(c.model)


def _grad(c: Compilation):
    differentiate(c.model)
    if c.options.hvp:
        hessian_vector(c.model)


def _optimise(c: Compilation):
    if c.options.optimize:
        optimise(c.model)


def _schedule(c: Compilation):
    schedule(c.model)


def _emit(c: Compilation):
    m = c.model
    title = f"{m.filename or 'model'}: forward and backward pass"
    target = get_target(c.options.target)
    if c.options.at_call and getattr(target, "NEEDS_SHAPES", False) and any(
            m.node(n)["shape"] is None for n in [*m.inputs.values(), *m.params.values()]):
        target = get_target("numpy")
    if c.options.hvp and not getattr(target, "HVP", True):
        if not c.options.at_call:
            raise GdslUsageError(f"the {target.NAME} target emits no hvp; compile with --hvp "
                                 f"for numpy (the default) or array-api")
        target = get_target("numpy")    # model.hvp of a model compiled for it: NumPy code
    c.code, c.linemap = target.emit_module(m, title, in_place=c.options.optimize, train=c.train)


STAGES: list[tuple[str, Callable]] = [
    ("parse", _parse),          # Lark LALR, spans kept -> AST
    ("resolve", _resolve),      # names (single assignment) -> NetworkX graph
    ("shapes", _shapes),        # symbolic dims unify; mismatches are errors here
    ("fuse", _fuse),            # softmax + cross-entropy -> log-sum-exp form
    ("grad", _grad),            # reverse mode: BackOp as vector-Jacobian products, same IR
    #                             (and with --hvp again, of Σ <g_w, v_w>: reverse over reverse)
    ("optimise", _optimise),    # CSE, folding, identities, dead code
    ("schedule", _schedule),    # deterministic topological orders for both passes
    ("emit", _emit),            # Python through the ast module
]
STAGE_NAMES = [name for name, _ in STAGES]

# Check the IR's invariants after every stage: on in the test suite and with GDSL_CHECK_IR=1,
# off by default (it costs a tenth of the compile time of a large model).
CHECK_IR = os.environ.get("GDSL_CHECK_IR", "") not in ("", "0")


def run_pipeline(text: str, *, filename: str | None = None, wrt: list[str] | None = None,
                 optimize: bool = True, after: Callable[[str, Compilation], None] | None = None,
                 outputs: list[str] | None = None, losses: bool = False,
                 target: str = "numpy", model: Model | None = None,
                 start: str = "parse", shapes: dict[str, tuple] | None = None,
                 at_call: bool = False, hvp: bool = False,
                 fold_loops: bool = False, mode: str = "train") -> Compilation:
    """Run every stage from ``start``; ``after(stage, compilation)`` is called after each
    (--dump-after). Returns the Compilation: ``.model`` is the IR, ``.code`` the module.

    A caller that builds the IR itself (gdsl check does, for one op at a time) passes
    ``model=`` and ``start="shapes"``. ``shapes`` gives leaves that declare no shape the
    shapes of a call's arrays (CompiledModel's specialisation): compiled as if declared;
    ``at_call``: the caller does that (see Options). ``hvp``: also emit the
    Hessian-vector product ``hvp(*, v, **arrays)``. ``fold_loops``: each loop's body
    compiled once, for a step t (what a drawing shows; the module is not for running).
    Hessian-vector product ``hvp(*, v, **arrays)``. ``mode``: "train" or "eval", for a model
    with `state` or `a if training else b` (see Options).
    """
    m = model if model is not None else Model(source=text, filename=filename)
    get_target(target)          # an unknown target is an error before any work
    if mode not in MODES:
        raise GdslUsageError(f"unknown mode `{mode}`; the modes are: " + ", ".join(MODES))
    c = Compilation(m, Options(wrt=wrt, optimize=optimize, outputs=outputs, losses=losses,
                               target=target, shapes=shapes, at_call=at_call, hvp=hvp,
                               fold_loops=fold_loops, mode=mode),
                    start=start)
    with _no_gc():
        return _run_stages(c, text, filename, start, after)


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


def _run_stages(c: Compilation, text, filename, start, after) -> Compilation:
    try:
        for name, stage in STAGES[STAGE_NAMES.index(start):]:
            stage(c)
            if name != "parse" and CHECK_IR:
                c.model.check(name)
            if after is not None:
                after(name, c)
    except GdslError as e:
        raise e.attach(text, filename) from None
    return c

"""The gradient check of the course: analytic gradients against centred finite differences.

``check(model)`` draws a small random batch in float64, computes the gradient of
the loss with the compiled backward pass and numerically with the centred
five-point stencil

    g_n = (-J(x + 2h) + 8 J(x + h) - 8 J(x - h) + J(x - 2h)) / 12h

and reports, for every differentiated value, the max relative error
|g_a - g_n| / max(eps, |g_a| + |g_n|). When one exceeds the tolerance it then
looks for where: it records every forward value, and checks each node's own
backward rule (its vector-Jacobian product, through the same compiler) on
those values against finite differences, naming the first node, in forward
order, whose local gradient is wrong.

Non-smooth ops are checked away from their kinks: the random batch is redrawn
until every argument of relu/abs/sign/step is at least ``margin`` from 0, the two
arguments of maximum/minimum differ by ``margin``, the top two entries of a max
reduction differ by ``margin`` and every svm margin s_j - s_y + 1 is at least
``margin`` from 0 -- for the kinks the loss feels (kinks_felt): not those of values
that do not move with the differentiated ones, nor of caches (Op.cached) such as the
fused cross-entropy's m = max(s): log Z + m - yᵀs is smooth in s whatever m is.
Their subgradients at the kinks (where the check never looks):
relu'(0) = 0, abs'(0) = 0, maximum/minimum give a tie to the first argument,
max shares a tie equally, and the svm hinge has subgradient 0 exactly at the kink.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import GdslError, GdslShapeError, GdslValueError
from ..ir.builder import vjp_model
from ..ir.evaluate import evaluate, evaluate_node
from ..ir.graph import LEAVES, Model
from ..ir.ops import OPS
from ..ir.shapes import Dims, Mismatch
from ..limits import check_memory
from ..passes.grad import _is_cache, _reachable_from
from ..passes.infer import infer
from ..pipeline import run_pipeline
from ..runtime import CompiledModel

MAX_UNKNOWN = 8          # undeclared leaves whose rank the check searches for


@dataclass
class ParamError:
    name: str
    shape: tuple
    max_rel_error: float
    checked: int          # how many entries were compared

    def ok(self, tol: float) -> bool:
        return self.max_rel_error <= tol


@dataclass
class NodeReport:
    """A node whose own backward rule disagrees with finite differences."""

    node: int
    op: str
    argument: int          # 0-based position of the argument whose vjp is wrong
    max_rel_error: float
    line: int | None
    text: str              # the model line (or the node's label)
    span: object = None


@dataclass
class CheckResult:
    """What ``check`` found: per-param errors, the dims used, and the first wrong node."""

    errors: list[ParamError]
    tol: float
    dims: dict
    seed: int
    culprit: NodeReport | None = None
    eps: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(e.ok(self.tol) for e in self.errors)


def noise_floor(eps: float, J, h: float, tol: float) -> float:
    """The eps actually used: at least 10x the rounding noise of the stencil over tol.

    The five-point stencil divides rounding errors of size ~ε|J| by 12h/18, so entries
    smaller than that noise are compared absolutely, not relatively."""
    noise = np.finfo(np.float64).eps * max(1.0, float(np.max(np.abs(J)))) * 1.5 / h
    return max(eps, 10 * noise / tol)


def rel_error(a, n, eps: float) -> np.ndarray:
    a, n = np.asarray(a, dtype=np.float64), np.asarray(n, dtype=np.float64)
    return np.abs(a - n) / np.maximum(eps, np.abs(a) + np.abs(n))


# -- shapes for a random batch ------------------------------------------------------------------

class _Unify(Dims):
    """Dims in which two unknown symbols may meet (they become one): for undeclared leaves."""

    def resolve(self, d):
        while isinstance(d, str) and d in self.bound:
            d = self.bound[d]
        return d

    def equal(self, a, b, what):
        a, b = self.resolve(a), self.resolve(b)
        if a == b:
            return a
        if isinstance(a, str):
            self.bound[a] = b
            return b
        if isinstance(b, str):
            self.bound[b] = a
            return a
        raise Mismatch(f"{what}: {a} and {b} differ")


def _forward_nodes(m: Model) -> list[int]:
    return [n for n in m.topo() if not m.node(n).get("backward")]


def leaf_shapes(m: Model, set_dims: dict[str, int] | None = None) -> tuple[dict, dict, dict]:
    """Concrete shapes for every leaf the loss needs, the sizes chosen for the dims, and
    the concrete shape of every forward node.

    Declared shapes keep their symbols; an undeclared leaf gets the first rank (2, 1, 0)
    for which the whole model's shapes agree and the loss is a scalar.
    """
    order = _forward_nodes(m)
    need = m.needed([m.loss])
    leaves = [n for n in order if m.node(n)["op"] in ("input", "param", "const") and n in need]
    unknown = [n for n in leaves if m.node(n)["shape"] is None]
    if len(unknown) > MAX_UNKNOWN:
        raise GdslShapeError(f"{len(unknown)} values have no declared shape; declare the shapes of "
                             f"the inputs and params (input x[d, n]) to check this model")
    base = dict(m.dims.bound)
    base.update(set_dims or {})
    found = None
    for ranks in itertools.product((2, 1, 0), repeat=len(unknown)):
        dims = _Unify(base)
        shapes = {n: tuple(f"?{n}_{i}" for i in range(r)) for n, r in zip(unknown, ranks)}
        try:
            out = infer(m, dims, [n for n in order if n in need], shapes)
        except (GdslError, Mismatch):
            continue
        if all(dims.resolve(d) == 1 for d in out[m.loss] or ()):
            found = (dims, {n: out[n] for n in leaves})
            break
    if found is None:
        raise GdslShapeError("cannot find shapes for the undeclared values under which the loss "
                             "is a scalar; declare them (input x[d, n])")
    dims, shapes = found
    out_all = out
    sizes: dict = {}
    free = iter(itertools.count(3))
    for n in leaves:
        for d in shapes[n]:
            d = dims.resolve(d)
            if isinstance(d, str) and d not in sizes:
                sizes[d] = next(free)
    concrete = {n: tuple(sizes.get(dims.resolve(d), dims.resolve(d)) for d in shapes[n])
                for n in leaves}
    named = {k: v for k, v in sizes.items() if not k.startswith("?")}
    named.update({k: v for k, v in base.items() if isinstance(k, str) and not k.startswith("?")})
    every = {n: tuple(sizes.get(dims.resolve(d), dims.resolve(d)) for d in s)
             for n, s in out_all.items() if s is not None}
    return concrete, named, every


# -- every forward value, and how far it is from a kink --------------------------------------------

def record(m: Model, leaf_values: dict[int, object], nodes=None) -> dict[int, object]:
    """The value of every forward node, given the leaves' values (node -> array)."""
    return evaluate(m, nodes if nodes is not None else _forward_nodes(m), dict(leaf_values))


def kink_distance(op: str, attrs: dict, args: list) -> float:
    """How far the arguments of a non-smooth op are from its kinks (inf for smooth ops)."""
    kink = OPS[op].kink
    if not callable(kink):
        return np.inf
    with np.errstate(all="ignore"):
        return kink(args, attrs)


def read_by_loss(m: Model) -> set[int]:
    """The nodes whose values the loss reads other than as cache arguments (Op.cached): a
    cache only saves work, and no gradient flows through it."""
    nodes = m.nodes
    read, stack = {m.loss}, [m.loss]
    while stack:
        d = nodes[stack.pop()]
        op = OPS.get(d["op"])
        for i, a in enumerate(d["args"]):
            if a not in read and not _is_cache(op, i):
                read.add(a)
                stack.append(a)
    return read


def kinks_felt(m: Model, order: list[int], wrt_nodes: list[int]) -> list[int]:
    """The non-smooth nodes among ``order`` whose kinks the loss feels as the differentiated
    values move: the loss reads the node (read_by_loss) and an argument of it moves with them."""
    moving = _reachable_from(m, wrt_nodes)
    read, nodes = read_by_loss(m), m.nodes
    return [n for n in order if _kinked(nodes[n]["op"]) and n in read
            and any(a in moving for a in nodes[n]["args"])]


def _kinked(op: str) -> bool:
    row = OPS.get(op)
    return row is not None and callable(row.kink)


# -- the check ----------------------------------------------------------------------------------

def _draw(m: Model, shapes: dict, every: dict, rng, positive: bool, labels: set) -> dict:
    values = {}
    for n, shape in shapes.items():
        d = m.node(n)
        if d["op"] == "const" and d.get("value") is not None:
            continue
        if d["op"] == "input" and d["name"] in labels:
            values[n] = None            # filled once the class count is known
            continue
        a = rng.uniform(0.5, 1.5, size=shape) if positive else rng.normal(0.0, 1.0, size=shape)
        values[n] = np.asarray(a, dtype=np.float64)
    for n, v in list(values.items()):
        if v is not None:
            continue
        shape = shapes[n]
        scores = next((every.get(m.node(u)["args"][row.scores]) for u in m.G.successors(n)
                       if (row := OPS[m.node(u)["op"]]).labels is not None
                       and m.node(u)["args"][row.labels] == n), None)
        if scores and tuple(shape) == tuple(scores):       # one-hot [C, n...]
            idx = rng.integers(0, shape[0], size=shape[1:])
            Y = np.zeros(shape)
            np.put_along_axis(Y, idx[None], 1.0, axis=0)
            values[n] = Y
        else:                                             # integers [n...] in 0..C-1
            C = scores[0] if scores else 3
            values[n] = rng.integers(0, C, size=shape).astype(np.int64)
    return values


def _numeric(f, x: np.ndarray, idx, h: float) -> float:
    old = x[idx]
    vals = []
    for step in (2 * h, h, -h, -2 * h):
        x[idx] = old + step
        vals.append(float(f()))
    x[idx] = old
    return (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)


def _entries(shape, rng, limit: int):
    size = int(np.prod(shape)) if shape else 1
    flat = np.arange(size) if size <= limit else np.sort(rng.choice(size, limit, replace=False))
    return [np.unravel_index(i, shape) if shape else () for i in flat]


def check(model, *, tol: float = 1e-6, eps: float = 1e-6, h: float = 1e-3, margin: float = 0.02,
          seed: int = 0, dims: dict[str, int] | None = None, consts: dict | None = None,
          wrt: list[str] | None = None, max_entries: int = 200, locate: bool = True,
          tries: int = 200) -> CheckResult:
    """Gradient-check a model (path, text or CompiledModel) in float64.

    Returns a CheckResult with one ParamError per differentiated name (max relative
    error over up to ``max_entries`` entries) and, when the check fails and ``locate``,
    the first node whose own backward rule is wrong. ``dims`` fixes sizes of symbolic
    dims (default: small distinct sizes from 3 up), ``consts`` overrides const values.
    Raises GdslError for a model it cannot compile or find shapes for.
    """
    for name, value in (("tol", tol), ("eps", eps), ("h", h)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 < value < math.inf:
            raise GdslValueError(f"check({name}=...) takes a positive number, got {value!r}")
    compiled = _compiled(model, wrt)
    m = compiled.model
    rng = np.random.default_rng(seed)
    shapes, dim_sizes, every = leaf_shapes(m, dims)
    labels = set(compiled.labels)
    order = [n for n in _forward_nodes(m) if n in m.needed([m.loss])]
    check_memory([(every[n], 1, _what(m, n), m.node(n)["span"]) for n in order if n in every],
                 "the gradient check (every forward value kept)", compiled.filename,
                 m.source)
    const_vals = {k: float(v) for k, v in (consts or {}).items()}
    for k in const_vals:
        if k not in compiled.consts and k not in compiled.inputs:
            raise GdslValueError(f"--set {k}=...: the model has no const `{k}`",
                                 filename=compiled.filename)
    kinks = kinks_felt(m, order, [m.names[w] for w in compiled.wrt])
    values = None
    # A model with thousands of kinks (the ReLUs and pooling windows of a convolutional net)
    # rarely has them all `margin` away: then the step and the margin shrink together, ten
    # times at a time (the stencil's steps stay as far inside the margin)
    for shrink in (1, 10, 100):
        for attempt in range(tries):
            positive = attempt % 2 == 1
            leaf = _draw(m, shapes, every, rng, positive, labels)
            for k, v in const_vals.items():
                leaf[m.names[k]] = np.float64(v)
            rec = record(m, leaf, order)
            J = rec.get(m.loss)
            if J is None or not np.all(np.isfinite(J)):
                continue
            if all(kink_distance(m.node(n)["op"], m.node(n)["attrs"],
                                 [rec[a] for a in m.node(n)["args"]]) >= margin / shrink
                   for n in kinks):
                values = leaf
                break
        if values is not None or not kinks:
            break
    h = h / shrink
    if values is None:
        raise GdslValueError(f"could not draw a random batch with a finite loss away from the "
                             f"kinks of non-smooth ops in {tries} tries", filename=compiled.filename)
    arrays = {m.node(n)["name"]: v for n, v in values.items()}
    for name in compiled.wrt:       # a const differentiated at its default value
        if name not in arrays and name in compiled.consts:
            arrays[name] = np.float64(compiled.consts[name])
    arrays.update(compiled.init_state(dim_sizes))   # (what the updates read: not the loss)
    loss, grads, *_ = compiled.value_and_grad(**arrays)
    eps = noise_floor(eps, loss, h, tol)

    def f():
        return np.sum(compiled.forward(**arrays)[compiled.loss])

    errors = []
    for name in compiled.wrt:
        x = arrays[name]
        if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
            x = arrays[name] = np.array(x, dtype=np.float64)
        ga = np.broadcast_to(np.asarray(grads[name], dtype=np.float64), np.shape(x))
        worst, count = 0.0, 0
        for idx in _entries(np.shape(x), rng, max_entries):
            gn = _numeric(f, x, idx, h)
            worst = max(worst, float(rel_error(ga[idx], gn, eps)))
            count += 1
        errors.append(ParamError(name, tuple(np.shape(x)), worst, count))
    result = CheckResult(errors, tol, dim_sizes, seed, eps=eps)
    if not result.ok and locate:
        result.culprit = locate_wrong_rule(compiled, record(m, values, order), order, tol, eps, h,
                                           rng, max_entries)
    return result


def _what(m: Model, n: int) -> str:
    d = m.node(n)
    return f"{d['op']} `{d['name']}`" if d["op"] in LEAVES else f"the value `{m.label(n)}`"


def _compiled(model, wrt) -> CompiledModel:
    if isinstance(model, CompiledModel):
        return model
    from pathlib import Path
    if isinstance(model, Path) or (isinstance(model, str) and "\n" not in model
                                   and model.endswith(".gdsl")):
        from ..files import read_model
        return CompiledModel(run_pipeline(read_model(str(model)), filename=str(model), wrt=wrt))
    return CompiledModel(run_pipeline(str(model), wrt=wrt))


# -- where: each node's own backward rule ------------------------------------------------------

def local_errors(op_name: str, attrs: dict, args: list, rng, eps: float = 1e-6, h: float = 1e-3,
                 max_entries: int = 200) -> dict[int, float]:
    """Check one op's vector-Jacobian products at the given argument values.

    Builds the tiny model L = sum(g * op(a0, a1, ...)) with a random cotangent g and
    compiles it (no optimisation) so the op's own rules make the backward pass; returns
    {argument position: max relative error against finite differences}. An op's cache
    arguments (Op.cached) are computed from the others in the tiny model, as the fusion
    does, so that they move with them: the rule of xent_logits is the derivative of
    log Z(s) + m(s) - yᵀs, not of the same with Z and m held still.
    """
    op = OPS[op_name]
    given = [np.asarray(a) for a in args[:op.arity - op.cached]]
    labels = [i for i, a in enumerate(given) if a.dtype.kind in "iub"]
    wrt = [i for i in range(len(given)) if i not in labels and op.vjp and op.vjp[i] is not None]
    if not wrt:
        return {}
    out_shape = np.shape(evaluate_node(op_name, attrs, [np.asarray(a) for a in args]))
    mini = vjp_model(op_name, attrs, [a.shape for a in given], out_shape, wrt, labels)
    arrays = {f"a{i}": a for i, a in enumerate(given)}
    wrt = mini.wrt
    try:
        cm = CompiledModel(run_pipeline("", model=mini, start="shapes", optimize=False))
    except GdslError:
        return {}
    arrays["g"] = rng.normal(size=out_shape)
    arrays = {k: (np.array(v, dtype=np.float64) if k in wrt else v) for k, v in arrays.items()}
    L, grads = cm.value_and_grad(**arrays)
    eps = noise_floor(eps, L, h, 1e-6)

    def f():
        return np.sum(cm.forward(**arrays)["L"])

    out = {}
    for i, name in enumerate(f"a{i}" for i in range(op.arity - op.cached)):
        if name not in wrt:
            continue
        x = arrays[name]
        ga = np.broadcast_to(np.asarray(grads[name], dtype=np.float64), x.shape)
        worst = 0.0
        for idx in _entries(x.shape, rng, max_entries):
            worst = max(worst, float(rel_error(ga[idx], _numeric(f, x, idx, h), eps)))
        out[i] = worst
    return out


def locate_wrong_rule(compiled: CompiledModel, values: dict, order: list[int], tol: float,
                      eps: float, h: float, rng, max_entries: int = 200) -> NodeReport | None:
    """The first node, in forward order, whose own backward rule disagrees with finite
    differences on the recorded forward values; None when every rule agrees."""
    m = compiled.model
    wrt_nodes = [m.names[w] for w in compiled.wrt]
    reach = set(wrt_nodes)
    for n in order:
        if any(a in reach for a in m.node(n)["args"]):
            reach.add(n)
    read = read_by_loss(m)      # (a cache's rule makes no gradient: the loss's m = max(s))
    for n in order:
        d = m.node(n)
        if d["op"] in LEAVES or n not in reach or n not in read:
            continue
        errs = local_errors(d["op"], d["attrs"], [values[a] for a in d["args"]], rng, eps, h,
                            max_entries)
        bad = {i: e for i, e in errs.items() if e > tol and d["args"][i] in reach}
        if bad:
            i = min(bad, key=lambda k: -bad[k])
            span = d.get("line") or d.get("span")
            lines = m.source.split("\n")
            line = span.line if span else None
            text = lines[line - 1].strip() if line and line <= len(lines) else m.label(n)
            return NodeReport(n, d["op"], i, bad[i], line, text, d.get("span"))
    return None

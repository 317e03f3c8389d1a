"""Shape inference: every node's shape from its arguments', by the op table's shape rules.

At compile time shapes are stored on the nodes and symbolic dims bind as shapes meet; at call
time the arrays' shapes are checked against the same rules without changing the graph.
"""

from __future__ import annotations

from ..errors import GdslShapeError
from ..ir.graph import LEAVES
from ..ir.ops import OPS
from ..ir.shapes import Dims, Mismatch, Shape, show_shape
from ..lang.source import snippet


def infer(model, dims: Dims | None = None, order=None, leaf_shapes: dict | None = None) -> dict:
    """Give every node its shape, in topological order; a mismatch raises GdslShapeError there.

    At compile time the shapes are stored on the nodes. At call time pass the
    arrays' shapes as ``leaf_shapes`` (node -> shape): the result is returned
    and the graph is left as it was.
    """
    dims = dims if dims is not None else model.dims
    nodes = model.nodes
    out: dict = {}
    store = leaf_shapes is None
    for n in (order if order is not None else model.topo()):
        d = nodes[n]
        op = d["op"]
        if op in LEAVES:
            shape = d["shape"] if store or n not in leaf_shapes else leaf_shapes[n]
            shape = dims.shape(shape)
        else:
            try:
                shape = OPS[op].shape(dims, [out[a] for a in d["args"]], d["attrs"])
            except Mismatch as e:
                raise shape_error(model, n, str(e), dims, out) from None
        out[n] = shape
        if store:
            d["shape"] = shape
    if store:
        check_scalar_loss(model, dims)
        check_updates(model, dims)
    elif model.loss in out and any(g in out for g in model.grads.values()):
        check_scalar_loss(model, dims, out[model.loss])   # at call time, before value_and_grad
    return out


def check_scalar_loss(model, dims: Dims, shape: Shape = None) -> None:
    """Differentiation starts from dJ/dJ = 1: the loss must be one number, shape [] (or [1, 1],
    as the lecture's −log(yᵀp) of one example is)."""
    if model.loss is None or not model.wrt:
        return
    shape = dims.shape(model.G.nodes[model.loss]["shape"] if shape is None else shape)
    if shape is None or all(dim == 1 for dim in shape):
        return
    d = model.G.nodes[model.loss]
    name = model.loss_name or snippet(model, d["span"]) or "the loss"
    raise GdslShapeError(
        f"the loss `{name}` must be a scalar to differentiate, but it has shape {show_shape(shape)}",
        d["span"], notes=[f"differentiating with respect to {', '.join(model.wrt)}"],
        help="reduce it, e.g. `J = sum(...)` or `mean(...)`, and name it with `loss J`")


def check_updates(model, dims: Dims) -> None:
    """A state's update has the state's own shape (broadcasting must not grow it: the
    mean of [m, n] over axis 1 without keepdims is [m], and [m, 1] + [m] is [m, m])."""
    for name, n in model.updates.items():
        want = dims.shape(model.nodes[model.states[name]]["shape"])
        got = dims.shape(model.nodes[n]["shape"])
        if got is None or want is None:
            continue
        if len(got) == len(want) and all(dims.resolve(a) == dims.resolve(b)
                                         for a, b in zip(got, want)):
            continue
        d = model.nodes[n]
        raise GdslShapeError(
            f"the update of state `{name}` has shape {show_shape(got)}, but the state is "
            f"declared {show_shape(want)}", d["span"] or d["line"],
            notes=[f"`{name}` is declared at {model.nodes[model.states[name]]['span']}"],
            help="a reduction over the examples keeps its axis with keepdims=True, e.g. "
                 "`mean(z, axis=1, keepdims=True)` is [m, 1]")


def shape_error(model, n: int, why: str, dims: Dims, shapes: dict) -> GdslShapeError:
    d = model.nodes[n]
    text = snippet(model, d["span"])
    notes = []
    seen = set()
    for a in d["args"]:
        if a in seen:
            continue
        seen.add(a)
        ad = model.nodes[a]
        if ad["op"] == "literal":
            continue
        where = f", defined at {ad['span']}" if ad["span"] else ""
        if ad["op"] in ("input", "param"):
            where = f", declared at {ad['span']}" if ad.get("declared") else where
        who = ad["name"] or (f"`{snippet(model, ad['span'])}`" if snippet(model, ad["span"]) else model.label(a))
        notes.append(f"{who} has shape {show_shape(dims.shape(shapes[a]))}{where}")
    what = f" in `{text}`" if text else ""
    return GdslShapeError(f"shape mismatch{what}: {why}", d["span"], notes=notes)

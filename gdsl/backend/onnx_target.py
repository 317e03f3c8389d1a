"""Emit the model as an ONNX model: its forward pass, or its loss and gradients.

The backward pass is built in the IR out of the same op table as the forward one, so exporting
the gradients is exporting more nodes of the same kinds. Each op's row gives its ONNX form,
``Op.emit["onnx"]``: a function ``(e, args, attrs, arg_shapes) -> tensor name`` that adds the
nodes computing the op through the Emitter ``e`` (``e.op("Add", x, y)``), as its NumPy form
builds a Python expression. An op whose row gives none is refused before anything is built,
with a message naming the op and its line.

Two entry points: ``export(model, ...) -> onnx.ModelProto`` (what `gdsl export` writes: the
forward pass, or with ``with_grad`` the loss and its gradients; params as inputs, or as
initialisers when their values are given), and ``emit_module``, the target interface, whose
"source" is the forward pass serialised. The onnx package (``pip install 'gdsl[onnx]'``) is
imported only when one of them is called.

In the exported graph: values are float64 tensors (float32 on request); symbolic dims are named
dims (dim_param); consts are inputs with their defaults as initialisers (so a caller may leave
them out or override them); class labels are one-hot [C, n] floats or int64 [n] (``labels``).
An integer label outside 0..C-1 gives a column of zeros, where the NumPy module raises.
"""

from __future__ import annotations

import math

from ..errors import GdslDataError, GdslError, GdslShapeError
from ..ir.graph import GIVEN, LEAVES
from ..ir.ops import OPS
from ..ir.shapes import Binding, show_shape
from ..lang.source import source_text
from ..version import __version__

NAME = "onnx"
HVP = False         # the forward pass or its gradients (--with-grad): gdsl compile --hvp refuses it
OPSET = 18          # ReduceMax and ReduceMean take their axes as an input from opset 18 on
IR_VERSION = 8      # the IR version of opset 18 (onnx 1.13): what runtimes of that age read
FLOAT_TYPES = ("float64", "float32")
ONE_HOT, INTEGER = "one-hot", "int"     # the kinds of class labels
LABEL_KINDS = (ONE_HOT, INTEGER)
STATS = (".mean", ".std")     # standardisation statistics saved beside params (gdsl run --save)


def _onnx():
    try:
        import onnx
    except ImportError:
        raise GdslError("exporting to ONNX needs the onnx package, which is not installed",
                        help="pip install 'gdsl[onnx]'") from None
    return onnx


# -- the emitter: what an op row's ONNX form builds with ---------------------------------------

# the element type of a node's output, where it is not that of its first input
_BOOL = {"Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "And", "Or", "Not"}
_INT64 = {"Shape", "Size", "ArgMax", "ArgMin", "NonZero"}


class Emitter:
    """Builds the node list of one ONNX graph. An op row's ONNX form calls:

    - ``e.op(op_type, *inputs, **attributes)``: a node; returns the name of its output
    - ``e.lit(v)``: a float scalar constant; ``e.ints(*v)``: an int64 vector constant,
      ``e.int(v)`` an int64 scalar; ``e.value(v)``: a tensor attribute (ConstantOfShape)
    - ``e.float(x)``: x as the graph's float type (masks, indices); ``e.is_int(x)``
    - ``e.reduce(op_type, x, axis, keepdims)``: ReduceSum/ReduceMax/ReduceMean over an axis,
      a tuple of axes, or all of them (axis None)
    - ``e.count(x, shape, axis)``: the number of entries of x along an axis, a tuple of axes
      (none: 1) or all of them (None), as a float; a constant where the dims are numbers
    """

    def __init__(self, onnx, float_type: str = "float64"):
        self.onnx = onnx
        T = onnx.TensorProto
        self.BOOL, self.INT64 = T.BOOL, T.INT64
        self.FLOAT = T.DOUBLE if float_type == "float64" else T.FLOAT
        self.np_float = float_type
        self.nodes: list = []
        self.types: dict[str, int] = {}     # tensor -> element type
        self._memo: dict = {}               # constants, made once
        self._prefix = "t"
        self._count = 0
        self._made: set[str] = set()        # tensors made by the row being emitted
        self._first = 0                     # its first node
        self.doc: str | None = None         # the doc_string of the nodes made now

    # building
    def op(self, op_type: str, *inputs: str, **attributes) -> str:
        self._count += 1
        out = f"{self._prefix}.{self._count}"
        self.add(op_type, inputs, out, **attributes)
        self._made.add(out)
        return out

    def add(self, op_type: str, inputs, out: str, **attributes) -> str:
        node = self.onnx.helper.make_node(op_type, list(inputs), [out], **attributes)
        if self.doc:
            node.doc_string = self.doc
        self.nodes.append(node)
        if op_type in _BOOL:
            self.types[out] = self.BOOL
        elif op_type in _INT64:
            self.types[out] = self.INT64
        elif op_type == "Cast":
            self.types[out] = attributes["to"]
        elif op_type in ("Constant", "ConstantOfShape"):
            self.types[out] = attributes["value"].data_type
        elif op_type == "Where":
            self.types[out] = self.types[inputs[1]]
        else:
            self.types[out] = self.types[inputs[0]]
        return out

    def _constant(self, key, name: str, array) -> str:
        if key not in self._memo:
            doc, self.doc = self.doc, None
            self.add("Constant", (), name, value=self.onnx.numpy_helper.from_array(array, name))
            self.doc = doc
            self._memo[key] = name
        return self._memo[key]

    def lit(self, v) -> str:
        import numpy as np
        v = float(v)
        return self._constant(("f", repr(v)), f"lit({v!r})", np.array(v, dtype=self.np_float))

    def ints(self, *v: int) -> str:
        import numpy as np
        return self._constant(("i", v), f"ints({', '.join(map(str, v))})", np.array(v, np.int64))

    def int(self, v: int) -> str:
        import numpy as np
        return self._constant(("i0", v), f"int({v})", np.array(v, np.int64))

    def value(self, v):
        """A one-entry tensor of the float type (the value of ConstantOfShape)."""
        import numpy as np
        return self.onnx.numpy_helper.from_array(np.array([v], dtype=self.np_float))

    def float(self, x: str) -> str:
        return x if self.types[x] == self.FLOAT else self.op("Cast", x, to=self.FLOAT)

    def is_int(self, x: str) -> bool:
        return self.types[x] == self.INT64

    def reduce(self, op_type: str, x: str, axis=None, keepdims: bool = False) -> str:
        if axis is None:
            return self.op(op_type, x, keepdims=int(bool(keepdims)))
        axes = axis if isinstance(axis, (tuple, list)) else (axis,)
        return self.op(op_type, x, self.ints(*axes), keepdims=int(bool(keepdims)))

    def count(self, x: str, shape, axis=None) -> str:
        rank = len(shape)
        axes = axis if isinstance(axis, (tuple, list)) else (axis,)
        axes = range(rank) if axis is None else [a % rank for a in axes]
        dims = [shape[a] for a in axes]
        if all(isinstance(d, int) for d in dims):
            return self.lit(math.prod(dims))
        if len(dims) == rank:
            n = self.op("Size", x)
        elif len(axes) == 1:
            n = self.op("Gather", self.op("Shape", x), self.int(axes[0]))
        else:
            n = self.reduce("ReduceProd", self.op("Gather", self.op("Shape", x), self.ints(*axes)))
        return self.float(n)

    # one row at a time
    def begin(self, name: str, doc: str | None) -> None:
        """The nodes made from here on compute the IR value that will be called ``name``."""
        self._prefix, self._count, self.doc = name, 0, doc
        self._made = set()
        self._first = len(self.nodes)

    def finish(self, out: str, name: str) -> str:
        """The row returned ``out``: named ``name`` if the row made it, else the row passed an
        existing tensor on (labels already one-hot): that tensor is its value."""
        if out not in self._made:
            return out
        for node in self.nodes[self._first:]:
            for field in (node.input, node.output):
                for i, t in enumerate(field):
                    if t == out:
                        field[i] = name
        self.types[name] = self.types.pop(out)
        return name


# -- names -------------------------------------------------------------------------------------

class _Names:
    """Tensor names: the model's own for its inputs and outputs, unique readable ones inside."""

    def __init__(self, reserved):
        self.used = set(reserved)

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name


def _named(model, n: int) -> bool:
    d = model.node(n)
    return bool(d["name"]) and d.get("grad_of") is None


def _base_name(model, n: int) -> str:
    d = model.node(n)
    if _named(model, n):
        return d["name"]
    row = OPS.get(d["op"])
    if row is not None and row.hint is not None:
        hint = row.hint([model.node(a)["name"] for a in d["args"]])
        if hint:
            return hint
    g = d.get("grad_of")
    if g is not None and g in model.G and model.node(g)["name"]:
        return "g_" + model.node(g)["name"]
    return d.get("hint") or f"t{n}"


def _doc(model, d) -> str | None:
    """A node's doc_string: its line of the model, as the NumPy module's comments give it."""
    span = d.get("line") or d.get("span")
    text = source_text(model.source, span) if span is not None and model.source else ""
    if not text:
        return None
    return ("grad of: " if d.get("backward") else "") + text


# -- checks before anything is built -------------------------------------------------------------

def _refuse(model, order) -> None:
    """Every op of the pass has an ONNX form and every input a shape, or a GdslError."""
    for n in order:
        d = model.node(n)
        op = d["op"]
        if op in GIVEN:
            if d["shape"] is None:
                name = d["name"]
                raise GdslShapeError(
                    f"`{name}` has no declared shape, and an input of an ONNX model needs one",
                    d["span"], help=f"declare it in the model, or give it to gdsl export: "
                    f"--shape {name}=DIMS, e.g. {name}=d,n ({name}= for a scalar)")
            continue
        row = OPS.get(op)
        if row is not None and row.emit.get(NAME) is None:
            where = " (in the backward pass of this line)" if d.get("backward") else ""
            raise GdslError(f"`{op}` has no ONNX form, so this model cannot be exported "
                            f"to ONNX{where}", d["span"],
                            help="the ops with an ONNX form: " + ", ".join(sorted(
                                name for name, r in OPS.items() if r.emit.get(NAME) and r.user)))


def _label_kinds(model, order, labels: str | None, shape: dict) -> dict[int, tuple[str, tuple]]:
    """For each class-label input of the pass: (kind, ONNX shape), kind "one-hot" (floats shaped
    like the scores) or "int" (int64, the scores' shape without the class axis). By default
    labels come as declared; ``labels`` asks for one kind."""
    used = set(order)
    scores: dict[int, tuple] = {}
    other_use: dict[int, str] = {}
    for n in order:
        d = model.node(n)
        row = OPS.get(d["op"])
        for i, a in enumerate(d["args"]):
            if model.node(a)["op"] != "input" or model.node(a)["name"] not in model.labels:
                continue
            if row is not None and row.labels == i:
                scores.setdefault(a, shape[d["args"][row.scores]])
            elif row is None or i not in row.shape_only:
                other_use.setdefault(a, d["op"])
    out = {}
    for name in sorted(model.labels):
        n = model.names.get(name)
        if n is None or n not in used or n not in scores:
            continue
        like, declared = scores[n], shape[n]
        as_declared = ONE_HOT if len(declared) == len(like) else INTEGER
        kind = labels or as_declared
        if kind != as_declared and n in other_use:
            raise GdslShapeError(
                f"the labels `{name}` cannot be exported as {kind} labels: the model also uses "
                f"them as data", model.node(n)["span"],
                help="export them as declared (leave out --labels)")
        out[n] = (kind, tuple(like) if kind == ONE_HOT else tuple(like[1:]))
    return out


def _bind_params(model, params: dict, where: str) -> tuple[dict, dict, Binding]:
    """The params file's arrays checked against the model: (params by node, standardisation
    statistics by input node, the dims they bind). Raises GdslDataError."""
    import numpy as np

    binding = Binding()
    values, stats = {}, {}
    given = {**model.params, **model.states}    # (a state: its running value, as saved)
    for name, n in given.items():
        if name not in params:
            kind = "param" if name in model.params else "state"
            raise GdslDataError(f"{where} has no array `{name}` for the {kind} `{name}`",
                                model.node(n)["span"],
                                help="give every param, e.g. the file gdsl run --save wrote")
        a = np.asarray(params[name])
        declared = model.dims.shape(model.node(n)["shape"]) or a.shape
        misfit = binding.bind(tuple(declared), a.shape, f"`{name}` in {where}")
        if misfit is not None:
            raise GdslDataError(f"`{name}` in {where} has shape {show_shape(a.shape)}, but the "
                                f"model declares {show_shape(declared)}", model.node(n)["span"],
                                notes=[f"{misfit.want} is {misfit.bound}, as {misfit.by} has it"]
                                if misfit.bound is not None else [])
        values[n] = a
    for key in params:
        if key in given or key.endswith(".classes") and key.removesuffix(".classes") in \
                model.inputs:
            continue        # (the class names of word labels: not a value of the graph)
        base = next((key[:-len(s)] for s in STATS if key.endswith(s)), None)
        if base is None or base not in model.inputs:
            raise GdslDataError(f"{where}: `{key}` is not a param of the model",
                                help="its params are: " + (", ".join(model.params) or "none"))
        n = model.inputs[base]
        mean, std = (f"{base}{s}" for s in STATS)
        if mean not in params or std not in params:
            raise GdslDataError(f"{where} has `{key}` but not both {mean} and {std}")
        declared = model.dims.shape(model.node(n)["shape"])
        for k in (mean, std):
            a = np.asarray(params[k])
            want = (*declared[:-1], 1) if declared else a.shape
            if binding.bind(tuple(want), a.shape, f"`{k}` in {where}") is not None:
                raise GdslDataError(f"`{k}` in {where} has shape {show_shape(a.shape)}, but the "
                                    f"input `{base}` needs {show_shape(want)}")
        stats[n] = (np.asarray(params[mean]), np.asarray(params[std]))
    return values, stats, binding


# -- the model -----------------------------------------------------------------------------------

def export(model, *, title: str = "", with_grad: bool = False, params: dict | None = None,
           params_file: str = "the params", labels: str | None = None,
           float_type: str = "float64"):
    """The model as an onnx.ModelProto (opset 18).

    Without ``with_grad`` the graph computes the forward pass (the loss and every output, by
    name); with it, the loss and the gradient of each wrt name (outputs ``W_grad`` ...,
    listed in the metadata as ``gdsl.grads``). ``params`` (name -> array) makes the params
    initialisers instead of inputs, binding the dims they fix (and applies standardisation
    statistics saved with them, x.mean and x.std, to their input). ``labels``: "one-hot" or
    "int" exports class labels of that kind (default: as declared). Raises GdslError for an op
    without an ONNX form, a value whose shape is not known, or params that do not fit.
    """
    import numpy as np

    onnx = _onnx()
    h = onnx.helper
    if float_type not in FLOAT_TYPES:
        raise GdslError(f"unknown float type `{float_type}`: use " + " or ".join(FLOAT_TYPES))
    if labels is not None and labels not in LABEL_KINDS:
        raise GdslError(f"unknown kind of labels `{labels}`: use " + " or ".join(LABEL_KINDS))
    if model.updates:       # (ONNX here is for inference: evaluation mode has no updates)
        name, n = next(iter(model.updates.items()))
        raise GdslError(f"the onnx target cannot return the new value of state `{name}`: a "
                        f"model with state is exported in evaluation mode",
                        model.node(model.states[name])["span"],
                        help="gdsl export MODEL --eval (the running statistics are inputs, or "
                             "initialisers from --params)")
    if with_grad and (model.loss is None or not model.grads):
        raise GdslError("nothing to differentiate: " + (
            "the model has no loss" if model.loss is None else "the model has no params (and no --wrt)"),
            help="export the forward pass (leave out --with-grad)")
    if with_grad:
        order = model.backward_order
        roots = [(model.loss_name, model.loss)]
    else:
        order = model.forward_order
        roots = [(model.loss_name, model.loss)] if model.loss is not None else []
        roots += list(model.outputs.items())
    if not roots:
        raise GdslError("nothing to export: the model has no loss and no outputs")
    _refuse(model, order)
    shape = {n: model.dims.shape(model.node(n)["shape"]) for n in order}
    label_kinds = _label_kinds(model, order, labels, shape)
    values, stats, binding = _bind_params(model, params, params_file) if params is not None \
        else ({}, {}, Binding())

    # names: the model's own for inputs and outputs, gradients W_grad; inside, the model's
    # names first, then the lecture's (Y, m, Z ...), g_W, t7
    names = _Names([*model.inputs, *model.params, *model.consts, *(name for name, _ in roots)])
    grads: dict[str, str] = {}
    if with_grad:
        for w, g in model.grads.items():
            grads[w] = names.fresh(f"{w}_grad")
            roots.append((grads[w], g))
    tensor: dict[int, str] = {}
    for oname, n in roots:
        if n not in tensor and model.node(n)["op"] not in LEAVES:
            tensor[n] = oname
    inner = [n for n in order if n not in tensor and model.node(n)["op"] not in LEAVES]
    for n in sorted(inner, key=lambda n: not _named(model, n)):
        tensor[n] = names.fresh(_base_name(model, n))

    def dims(s):
        return [binding.sizes.get(d, d) if isinstance(d, str) else d for d in s]

    e = Emitter(onnx, float_type)
    inputs, initializers = [], []
    value: dict[int, str] = {}
    used = set(order)
    leaves = [*model.inputs.values(), *model.params.values(), *model.consts.values(),
              *model.states.values()]
    for n in leaves:
        if n not in used:
            continue
        d = model.node(n)
        name = d["name"]
        elem, s = e.FLOAT, shape[n]
        if n in label_kinds:
            kind, s = label_kinds[n]
            elem = e.INT64 if kind == INTEGER else e.FLOAT
        e.types[name] = elem
        value[n] = name
        if n in values:
            initializers.append(onnx.numpy_helper.from_array(
                np.asarray(values[n], dtype=float_type), name))
            continue
        inputs.append(h.make_tensor_value_info(name, elem, dims(s)))
        if d["op"] == "const" and d.get("value") is not None:     # a default the caller may override
            initializers.append(onnx.numpy_helper.from_array(np.array(d["value"], float_type), name))
        if n in stats:      # the features as the params were trained on: (x - mean) / std
            mean, std = (onnx.numpy_helper.from_array(np.asarray(a, float_type), name + s)
                         for a, s in zip(stats[n], STATS))
            initializers += [mean, std]
            e.types[mean.name] = e.types[std.name] = e.FLOAT
            e.begin(name + ".standardized", f"{name} standardised as in training")
            value[n] = e.op("Div", e.op("Sub", name, mean.name), std.name)

    for n in order:
        d = model.node(n)
        op = d["op"]
        if op in GIVEN:
            continue
        if op in LEAVES:            # a literal
            value[n] = e.lit(d["value"])
            continue
        row = OPS[op]
        args = [value[a] for a in d["args"]]
        e.begin(tensor[n], _doc(model, d))
        for i, a in enumerate(args):      # masks, indices and labels as floats (not labels)
            if i != row.labels and i not in row.shape_only and e.types[a] != e.FLOAT:
                args[i] = e.float(a)
        out = row.emit[NAME](e, args, d["attrs"], [shape[a] for a in d["args"]])
        value[n] = e.finish(out, tensor[n])

    outputs, done = [], set()
    for oname, n in roots:
        if oname in done:
            continue
        done.add(oname)
        if value[n] != oname:
            e.doc = None
            e.add("Identity", [value[n]], oname)
        outputs.append(h.make_tensor_value_info(oname, e.types[oname], dims(shape[n])))

    graph = h.make_graph(e.nodes, _graph_name(model), inputs, outputs, initializer=initializers,
                         doc_string=title)
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)],
                         producer_name="gdsl", producer_version=__version__,
                         doc_string=title)
    proto.ir_version = IR_VERSION
    meta = {"gdsl.pass": "value_and_grad" if with_grad else "forward",
            "gdsl.loss": model.loss_name or "",
            "gdsl.outputs": ",".join(model.outputs),
            "gdsl.grads": ",".join(f"{w}={g}" for w, g in grads.items()),
            "gdsl.labels": ",".join(f"{model.node(n)['name']}={kind}"
                                    for n, (kind, _) in label_kinds.items()),
            "gdsl.params": "initializers" if params is not None else "inputs"}
    onnx.helper.set_model_props(proto, {k: v for k, v in meta.items() if v})
    return proto


def _graph_name(model) -> str:
    from pathlib import PurePath
    return PurePath(model.filename).stem if model.filename else "model"


def emit_module(model, title: str, in_place: bool = True,
                train: dict | None = None) -> tuple[bytes, dict[int, int]]:
    """The target interface: the forward pass as a serialised ONNX model (no line map: it is
    not text). ``export`` gives the gradients, params as initialisers and label kinds."""
    return export(model, title=title).SerializeToString(), {}

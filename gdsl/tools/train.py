"""Training by mini-batch gradient descent: the lecture's "how do we learn W, b".

    for each epoch: shuffle the training examples; for each batch of n_batch of them:
        J, grads = value_and_grad(batch, params);  params -= eta * grads   (or momentum / adam)

`gdsl run` is a thin shell around ``train``. Metrics, per epoch, on the validation set, and
on the training set after the last epoch (at the trained params):

    cost      the model's objective J (the `loss` statement): data term + regulariser
    loss      the data term alone: the value of the loss node(s) in the graph (xent, svm,
              bce, mse, ...; equal to the cost for a model with no such node)
    accuracy  class labels: argmax over the class axis (axis 0) of the scores or
              probabilities fed to the first xent/svm node, against the labels; binary
              targets: the prediction thresholded (logits at 0, probabilities at 1/2)
    auc       binary targets: the area under the ROC curve of the prediction
    rmse, mae, r2   real-valued targets: root mean squared error, mean absolute error and
              the coefficient of determination, per target row and averaged over the rows
              (scikit-learn's metrics with multioutput="uniform_average")

Which are reported follows from the loss (each loss's row of the op table names its
metrics: xent/svm accuracy; bce accuracy, auc; mse, mae, huber rmse, mae, r2); a model's
`metric NAME, ...` statement or `metrics=` here overrides them. The prediction is what the
first loss is given; for a loss written by hand, the first `output` that fits the target, or
a named value the target is subtracted from (p in mean(square(p - y))).

After the other epochs the training set's cost is the mean of the cost of the epoch's
batches, each at the params its step started from (weighted by the batch's examples), as
Keras and scikit-learn report it, and its loss and metrics are not computed (None): a pass
over the whole training set after every epoch took 42% of the time of the gradient steps
of models/mlp2.gdsl. ``evaluate`` gives them at any params.
"""

from __future__ import annotations

import io
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from ..errors import (
    GdslDataError,
    GdslDataWarning,
    GdslDivergedError,
    GdslError,
    GdslValueError,
    did_you_mean,
)
from ..files import check_output, write_atomic
from ..ir.ops import BINARY_OPERATORS, OPS
from ..ir.shapes import Binding
from ..passes.resolve import DIM_PREFIX, METRICS, TRAIN_OPTIONS, metric_names
from ..pipeline import run_pipeline
from ..runtime import CompiledModel, model_warnings
from . import data as D

# gradient descent on mini-batches (Optimizer), and full-batch second-order methods through
# scipy.optimize.minimize (_minimize): their names here -> scipy's
SECOND_ORDER = {"lbfgs": "L-BFGS-B", "newton-cg": "Newton-CG"}
OPTIMIZERS = ("sgd", "momentum", "adam", *SECOND_ORDER)
# how closely they approach the minimum: L-BFGS-B stops when every gradient entry is at most
# gtol or a step lowers J by less than ftol (relative); Newton-CG when its step is under xtol
SOLVER_OPTIONS = {"lbfgs": {"gtol": 1e-9, "ftol": 1e-14, "maxcor": 20},
                  "newton-cg": {"xtol": 1e-10}}
MAX_ITERATIONS = 1000       # their maxiter when no epochs are given with them
EVAL_CHUNK = 4096
# the metrics of a real-valued target (what mse/mae/huber report), and those of a binary one
REGRESSION, BINARY = ("rmse", "mae", "r2"), ("accuracy", "auc")
# names a target input often has: a table's labels go to it when shapes do not tell
TARGET_NAMES = ("y", "t", "target", "targets", "label", "labels")


@dataclass
class Settings:
    """Training settings: defaults < the model's `train` line < explicit arguments."""

    lr: float = 0.1
    epochs: int = 20
    batch_size: int = 100
    optimizer: str = "sgd"
    seed: int = 0
    momentum: float = 0.9           # for optimizer=momentum (and adam's beta1)
    decay: float = 1.0              # learning rate at epoch e (from 0): lr * decay**e
    data: str = "digits"            # built-in data set or file when none is given
    val_fraction: float = 0.2       # held out for validation when no --val is given
    hidden: int | None = 100        # size of any param dim that the data do not bind
    classes: int | None = None      # the class count, when neither the model nor one-hot labels fix it
    standardize: bool = False       # features to mean 0, std 1 (statistics of the training split)
    label: str | None = None        # the input a table's label column(s) go to
    metric: str | None = None       # what to report, e.g. "rmse,r2" (default: what the loss says)
    dims: dict = field(default_factory=dict)    # `dim m = 100`: default sizes of named dims

    def check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise GdslValueError(f"unknown optimizer `{self.optimizer}`; choose one of "
                                 f"{', '.join(OPTIMIZERS)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise GdslValueError(f"the learning rate must be a positive number, got {self.lr}")
        if self.epochs < 0:
            raise GdslValueError(f"epochs must be 0 or more, got {self.epochs}")
        if self.batch_size < 1:
            raise GdslValueError(f"the batch size must be at least 1, got {self.batch_size}")
        if not 0 <= self.val_fraction < 1:
            raise GdslValueError(f"the validation fraction must lie in [0, 1), "
                                 f"got {self.val_fraction}")
        if not 0 <= self.momentum < 1:
            raise GdslValueError(f"momentum must lie in [0, 1), got {self.momentum}")
        if self.classes is not None and self.classes < 1:
            raise GdslValueError(f"the number of classes must be at least 1, got {self.classes}")
        if not 0 <= self.seed < 2**63:
            raise GdslValueError(f"the seed must be a whole number from 0 to 2**63 - 1, "
                                 f"got {self.seed}")
        if not 0 < self.decay <= 1:
            raise GdslValueError(f"decay must lie in (0, 1], got {self.decay}")
        if self.metric is not None:
            for name in metric_names(self.metric):
                if name not in METRICS:
                    hint = did_you_mean(name, METRICS)
                    raise GdslValueError(f"unknown metric `{name}`; choose among "
                                         f"{', '.join(METRICS)}" + (f" ({hint})" if hint else ""))


def _check_given(given: dict, filename: str | None) -> None:
    """Settings given as arguments (gdsl.train(model, epochs=5)) are checked as a model's
    `train` line is: a name that is not a setting (`epochz=5`) or a value of the wrong type
    (`lr="0.1"`, `epochs=1.5`) is an error, never ignored."""
    import numbers
    kinds = {**TRAIN_OPTIONS, "metric": str, "dims": dict}
    for k, v in given.items():
        kind = kinds.get(k)
        if kind is None:
            raise GdslValueError(f"unknown training setting `{k}`", filename=filename,
                                 help=did_you_mean(k, TRAIN_OPTIONS)
                                 or "settings: " + ", ".join(TRAIN_OPTIONS))
        ok = {float: isinstance(v, numbers.Real) and not isinstance(v, bool),
              int: isinstance(v, numbers.Integral) and not isinstance(v, bool),
              bool: isinstance(v, (bool, np.bool_)),
              str: isinstance(v, str), dict: isinstance(v, dict)}[kind]
        if not ok:
            what = {float: "a number", int: "a whole number", bool: "True or False",
                    str: "a string", dict: "a dict"}[kind]
            raise GdslValueError(f"training setting `{k}` takes {what}, got {v!r}",
                                 filename=filename)


def settings_for(model: Trainable, **overrides) -> Settings:
    """The model's `train` line, then ``overrides`` (None: not given), over the defaults.
    For lbfgs and newton-cg, epochs caps the iterations (scipy's maxiter): given with the
    choice of the optimizer (in the same `train` line, or as an override), else
    MAX_ITERATIONS, as a `train` line's epochs were meant for gradient descent."""
    s = Settings()
    names = {f.name for f in fields(Settings)}
    line = model.compiled.train_options
    given = {k: v for k, v in overrides.items() if v is not None}
    _check_given(given, model.filename)
    chosen = {**line, **given}
    if chosen.get("optimizer") in SECOND_ORDER and "epochs" not in given:
        chosen["epochs"] = line.get("epochs", MAX_ITERATIONS) \
            if line.get("optimizer") in SECOND_ORDER else MAX_ITERATIONS
    for k, v in chosen.items():
        if k in names:
            setattr(s, k, v)
        elif k.startswith(DIM_PREFIX):
            s.dims[k[len(DIM_PREFIX):]] = v
    s.check()
    return s


# -- the model, compiled with its loss terms and scores as outputs ------------------------------

@dataclass
class Task:
    """What a model learns, read from its graph: the input its targets go to, the value that
    predicts them, and the metrics that fit."""

    target: str | None = None       # the input a table's label column(s) go to
    candidates: list[str] = field(default_factory=list)   # when the model does not say which
    prediction: str | None = None   # compared with the target by the metrics
    threshold: float = 0.0          # a binary decision: logits at 0, probabilities at 1/2
    metrics: tuple[str, ...] = ()   # the loss's (or the `metric` statement's)
    loss_op: str | None = None      # the op of the first data-loss term
    target_range: tuple | None = None   # the values the targets may take (bce: 0..1)


class Trainable:
    """A compiled model plus what training reports: data-loss terms, class scores, labels,
    the target input, the prediction and the metrics."""

    def __init__(self, compiled: CompiledModel, loss_terms: list[str], scores: str | None,
                 label: str | None, class_dim=None, task: Task | None = None):
        self.compiled = compiled
        self.loss_terms = loss_terms
        self.scores = scores
        self.label = label
        self.class_dim = class_dim      # axis 0 of the scores: an int, a symbol, or None
        self.task = task or Task(target=label, prediction=scores)
        m = compiled.model
        self.filename = compiled.filename or "<model>"
        self.inputs = compiled.inputs
        self.params = compiled.params
        self.consts = {k: v for k, v in compiled.consts.items()}
        self.labels = list(compiled.labels)
        # symbolic dims of every declared leaf, for --set NAME=SIZE and binding
        example = {s[-1] for s in self.inputs.values() if s and isinstance(s[-1], str)}
        self.dim_names = [d for d in compiled.dim_symbols if d not in example]
        self.model = m

    @property
    def target(self) -> str | None:
        return self.task.target

    @property
    def classes(self) -> bool:
        """The target takes class labels (integers or one-hot), not real values."""
        return self.task.target is not None and self.task.target in self.labels

    def metric_names(self, metric: str | None = None) -> tuple[str, ...]:
        """The metrics to report: ``metric`` ("rmse,r2") or the task's. Raises GdslValueError
        when the model cannot give one of them."""
        names = tuple(metric_names(metric)) if metric is not None else self.task.metrics
        t = self.task
        for name in names:
            if t.target is None:
                raise GdslValueError(f"metric `{name}` compares a prediction with targets, but "
                                     f"the model has no target input", filename=self.filename,
                                     help="the model's loss takes the targets (xent(p, y), "
                                     "mse(p, y)), or name the input with --label")
            if t.prediction is None:
                raise GdslValueError(f"metric `{name}` needs the model's prediction of "
                                     f"`{t.target}`", filename=self.filename,
                                     help=f"name it with `output p` (p the value compared with "
                                     f"{t.target}), or use a loss such as mse(p, {t.target})")
            if self.classes and name != "accuracy":
                raise GdslValueError(f"metric `{name}` is for real-valued or binary targets, but "
                                     f"`{t.target}` takes class labels (of xent or svm): "
                                     f"report accuracy", filename=self.filename)
        return names


def prepare(model, *, filename: str | None = None, label: str | None = None,
            target: str = "numpy") -> Trainable:
    """Compile for training: a path, model text, a CompiledModel or a Trainable.

    The loss nodes (xent, svm, bce, mse, ...: the data loss) and the scores fed to the first
    of them are added to the forward outputs, naming them when the model did not; so is a
    hand-written loss's prediction. ``label`` names the input a table's labels go to (by
    default the model's loss, its `train label=`, or its declared shapes say which).
    ``target``: what the model is compiled for (numpy, or numba: gdsl run --target).
    """
    if isinstance(model, Trainable):
        if label is None or label == model.target:
            return model
        model = model.compiled
    if isinstance(model, CompiledModel):
        text, filename, wrt = model.model.source, model.filename, list(model.wrt)
    else:
        path = Path(model) if isinstance(model, os.PathLike) or (
            isinstance(model, str) and "\n" not in model and model.endswith(".gdsl")) else None
        if path is not None:
            from ..files import read_model
            text, filename = read_model(str(path)), str(path)
        else:
            text = str(model)
        wrt = None
    c = run_pipeline(text, filename=filename, wrt=wrt, losses=True, target=target, at_call=True)
    task = find_task(c, label if label is not None else c.train.get("label"))
    if task.prediction is not None and task.prediction not in c.model.outputs and \
            task.prediction not in c.model.inputs and task.prediction not in c.model.params:
        c = run_pipeline(text, filename=filename, wrt=wrt, losses=True,
                         outputs=[task.prediction], target=target, at_call=True)
    losses = c.losses
    class_dim = None
    if losses.scores is not None and losses.label in c.model.labels:
        # the class axis of the scores, as the model writes it
        shape = c.written.nodes[c.model.names[losses.scores]]["shape"]
        class_dim = shape[0] if shape else None
    return Trainable(CompiledModel(c), losses.terms, losses.scores, losses.label, class_dim,
                     task)


def find_task(c, label: str | None = None) -> Task:
    """The target input, the prediction and the metrics of a compiled model (a Compilation
    made with losses=True), from its graph as written. Raises GdslValueError for a ``label``
    that is no input, or not the one the loss takes."""
    m, G = c.model, c.written
    names = {d["name"]: n for n, d in G.nodes(data=True) if d.get("name")}
    t = Task()
    losses = c.losses
    if losses.terms:
        t.loss_op = G.nodes[names[losses.terms[0]]]["op"]
        row = OPS[t.loss_op]
        t.metrics, t.target_range = row.metrics, row.target_range
    t.target = losses.label
    if label is not None:
        if label not in m.inputs:
            raise GdslValueError(f"--label {label}: the model has no input `{label}`",
                                 filename=m.filename, help="inputs: " + (", ".join(m.inputs)
                                                                         or "none"))
        if t.target is not None and label != t.target:
            raise GdslValueError(f"--label {label}, but the model's loss `{t.loss_op}` takes "
                                 f"`{t.target}` as its labels", filename=m.filename)
        t.target = label
    if t.target is None:
        t.target, t.candidates = _guess_target(m, G, names)
    if losses.scores is not None:
        t.prediction = losses.scores
    elif t.target is not None:
        t.prediction = _hand_written_prediction(m, G, names, t.target)
        if t.prediction is not None:
            probability = OPS.get(G.nodes[names[t.prediction]]["op"])
            binary = probability is not None and probability.probability
            t.metrics = BINARY if binary else REGRESSION
    if t.prediction is not None:
        row = OPS.get(G.nodes[names[t.prediction]]["op"])
        t.threshold = 0.5 if row is not None and row.probability else 0.0
    metric = c.train.get("metric")
    if metric is not None:
        t.metrics = tuple(metric_names(metric))
    return t


def _one_row(shape) -> bool:
    """Declared as one value per example: [n] or [1, n]."""
    return shape is not None and (len(shape) == 1 or len(shape) == 2 and shape[0] == 1)


def _guess_target(m, G, names) -> tuple[str | None, list[str]]:
    """A model whose loss is written by hand, with two inputs: the target is the one declared
    one value per example ([n], [1, n]) while the other is not, else the one named like a
    target (y, t, target, label). Returns (target, []) or (None, the candidates)."""
    inputs = list(m.inputs)
    if len(inputs) != 2:
        return None, []
    shapes = {k: G.nodes[names[k]]["shape"] if G.nodes[names[k]].get("declared") else None
              for k in inputs}
    for test in (lambda k: _one_row(shapes[k]), lambda k: k in TARGET_NAMES):
        hits = [k for k in inputs if test(k)]
        if len(hits) == 1:
            return hits[0], []
    return None, inputs


def _fits(a, b) -> bool:
    if a is None or b is None:
        return True
    a, b = tuple(a), tuple(b)
    if len(a) == len(b) + 1 and a[0] == 1:
        a = a[1:]
    elif len(b) == len(a) + 1 and b[0] == 1:
        b = b[1:]
    return a == b


def _hand_written_prediction(m, G, names, target: str) -> str | None:
    """The first output whose shape fits the target's; else a named value the target is
    subtracted from, or subtracts (p in mean(square(p - y)))."""
    want = G.nodes[names[target]]["shape"]
    for name in m.outputs:
        if name in names and _fits(G.nodes[names[name]]["shape"], want):
            return name
    y = names[target]
    for u in G.successors(y):
        d = G.nodes[u]
        if d["op"] == BINARY_OPERATORS["-"]:
            other = G.nodes[d["args"][0] if d["args"][1] == y else d["args"][1]]
            if other.get("name") and other["name"] != target and \
                    _fits(other["shape"], want):
                return other["name"]
    return None


# -- data into arrays ---------------------------------------------------------------------------

def arrays_for(tm: Trainable, data, what: str = "data",
               label_column: str | list[str] | None = None,
               classes: list | None = None) -> dict[str, np.ndarray]:
    """Model arrays from a data-set name, file path, Table, or a dict of arrays. A table's
    label column(s) go to the model's target input (class labels or real-valued targets);
    ``classes``: the names that number a file's word labels (the training data's)."""
    if isinstance(data, (str, os.PathLike)):
        return file_arrays(tm, str(data), D.load(str(data), label_column, classes))
    if isinstance(data, D.Table):
        return _to_model(tm, data, what)
    if isinstance(data, dict):
        unknown = [k for k in data if k not in tm.inputs]
        if unknown:         # (a file may hold more arrays; a dict is made for the model)
            where = {**{k: "params=" for k in tm.params}, **{k: "consts=" for k in tm.consts}}
            raise GdslValueError(
                f"{what}: unknown array `{unknown[0]}`: the data are the model's inputs "
                f"({', '.join(tm.inputs)})", filename=tm.filename,
                help=f"give `{unknown[0]}` as train(..., {where[unknown[0]]}{{...}})"
                if unknown[0] in where else None)
        return _to_model(tm, D.Table(arrays={k: np.asarray(v) for k, v in data.items()}), what)
    raise TypeError(f"data must be a name, path, Table or dict of arrays, not {type(data).__name__}")


def file_arrays(tm: Trainable, path: str, table: D.Table) -> dict[str, np.ndarray]:
    """The model's arrays from the table read from ``path``; errors name the file."""
    try:
        return _to_model(tm, table, "" if path not in D.BUILTIN else table.source)
    except GdslDataError as e:
        e.filename = e.filename or path
        raise


def _to_model(tm: Trainable, table: D.Table, what: str) -> dict[str, np.ndarray]:
    t = tm.task
    if not table.arrays and t.candidates:
        a, b = t.candidates
        raise GdslValueError(
            f"{what + ': ' if what else ''}a table's label column goes to one input of the "
            f"model, but which: `{a}` or `{b}`? Its loss does not take labels (as xent, bce or "
            f"mse(p, y) would), and their shapes do not tell", filename=tm.filename,
            help=f"name it: --label {a} or --label {b} (in Python train(..., label=...)), or "
                 f"`train label=NAME` in the model")
    targets = [t.target] if t.target is not None and not tm.classes else []
    arrays = D.to_model(table, tm.inputs, tm.labels, what, targets)
    if targets and t.target_range is not None and targets[0] in arrays:
        y, (lo, hi) = arrays[targets[0]], t.target_range
        if y.size and (y.min() < lo or y.max() > hi):
            raise GdslDataError(
                f"{what + ': ' if what else ''}targets `{targets[0]}` range over "
                f"{y.min():g}..{y.max():g}, but `{t.loss_op}` takes targets in {lo:g}..{hi:g}",
                help="number the two classes 0 and 1; for more classes use "
                     "xent(softmax(s), y)")
    return arrays


def split_consts(tm: Trainable, values: dict | None) -> tuple[dict, dict]:
    """--set NAME=VALUE: a const's value, or the size of a symbolic dim."""
    consts, dims = {}, {}
    for k, v in (values or {}).items():
        if k in tm.consts:
            try:
                consts[k] = float(v)
                if not math.isfinite(consts[k]):     # (nan, inf, 1e999: as in the model's text)
                    raise ValueError
            except (TypeError, ValueError):
                raise GdslValueError(f"--set {k}={v}: the value of const `{k}` must be a "
                                     f"finite number", filename=tm.filename) from None
        elif k in tm.dim_names:
            try:
                size = float(v)
                if size != int(size) or size < 1:
                    raise ValueError
            except (TypeError, ValueError):
                raise GdslValueError(f"--set {k}={v}: dimension `{k}` takes a positive integer",
                                     filename=tm.filename) from None
            dims[k] = int(size)
        else:
            hint = did_you_mean(k, list(tm.consts) + tm.dim_names)
            hint = f"; {hint}" if hint else ""
            raise GdslValueError(f"--set {k}=...: the model has no const or dimension `{k}` "
                                 f"(consts: {', '.join(tm.consts) or 'none'}; dimensions: "
                                 f"{', '.join(tm.dim_names) or 'none'}){hint}",
                                 filename=tm.filename)
    return consts, dims


def _bind(binding: Binding, declared: tuple, shape: tuple, who: str, err) -> None:
    misfit = binding.bind(declared, shape, who)
    if misfit is None:
        return
    if misfit.by is not None:
        sym, size = misfit.want, misfit.got
        raise err(f"{who} gives {sym} = {size}, but {misfit.by} gives {sym} = {misfit.bound}")
    raise err(f"{who} has size {misfit.got} where the model declares {misfit.want}")


def bind_dims(tm: Trainable, arrays_list: list[dict], params: dict | None, set_dims: dict,
              hidden: int | None, params_file: str = "the params",
              params_path: str | None = None, classes: int | None = None,
              defaults: dict | None = None) -> dict:
    """Sizes of the symbolic dims: from the data, loaded params, --set, --classes, the
    model's `dim m = 100` (``defaults``), the largest label, then `hidden` (deprecated)."""
    binding = Binding()

    def data_err(msg):
        return GdslDataError(f"data does not fit the model: {msg}")

    # the example axis (last of each input) varies from set to set and batch to batch
    example_syms = {s[-1] for s in tm.inputs.values() if s and isinstance(s[-1], str)}
    for i, arrays in enumerate(arrays_list):
        local = Binding()
        which = "" if len(arrays_list) == 1 else " of the training data" if i == 0 else \
            " of the validation data"
        for k, a in arrays.items():
            declared = tm.inputs.get(k)
            if declared is None:
                continue
            if k in tm.labels:
                declared = declared[1:] if a.ndim == len(declared) - 1 else declared
            if a.ndim != len(declared):
                raise data_err(f"array `{k}` has shape {a.shape}, but the model declares "
                               f"{k}[{', '.join(map(str, declared))}]")
            _bind(local, declared, a.shape, f"array `{k}`{which}", data_err)
        for sym, size in local.sizes.items():
            if sym not in example_syms:
                _bind(binding, (sym,), (size,), local.by[sym], data_err)
    if params is not None:
        def perr(msg):
            return GdslDataError(f"{params_file} do not match the model: {msg}",
                                 filename=params_path)
        missing = [k for k in tm.params if k not in params]
        extra = [k for k in params if k not in tm.params]
        if missing or extra:
            raise perr(", ".join(filter(None, [
                missing and "missing " + ", ".join(f"`{k}`" for k in missing),
                extra and "unexpected " + ", ".join(f"`{k}`" for k in extra)])))
        for k, declared in tm.params.items():
            a = params[k]
            if declared is None:
                continue
            if a.ndim != len(declared):
                raise perr(f"`{k}` has shape {a.shape}, but the model declares "
                           f"{k}[{', '.join(map(str, declared))}]")
            _bind(binding, declared, a.shape, f"param `{k}`", perr)
    for k, size in set_dims.items():
        _bind(binding, (k,), (size,), f"--set {k}", GdslValueError)
    dims, bound_by = binding.sizes, binding.by
    # the class count: declared, --classes, `dim C = 10`, or the largest label of all the data
    # (training and validation: a rare class may land in either) + 1
    csym = tm.class_dim
    if isinstance(csym, str) and csym not in dims and tm.label is not None and classes is not None:
        _bind(binding, (csym,), (classes,), "--classes", GdslValueError)
    for sym, size in (defaults or {}).items():      # what nothing above has set
        if sym not in dims:
            dims[sym] = size
            bound_by[sym] = f"`dim {sym} = {size}`"
    if isinstance(csym, str) and csym not in dims and tm.label is not None:
        ys = [a[tm.label] for a in arrays_list if tm.label in a and a[tm.label].ndim == 1]
        if ys:
            dims[csym] = max(int(y.max()) for y in ys if y.size) + 1
            bound_by[csym] = "the largest label"
            seen = len(np.unique(np.concatenate(ys)))
            if dims[csym] > max(100, 10 * seen):
                warnings.warn(GdslDataWarning(
                    f"{dims[csym]} classes ({csym}) from the largest label {dims[csym] - 1}, "
                    f"but the data hold only {seen} distinct labels; number the classes "
                    f"0..C-1, or give --classes"), stacklevel=2)
    elif classes is not None and csym != classes and dims.get(csym, classes) != classes:
        raise GdslValueError(f"--classes {classes}, but the model has "
                             f"{dims.get(csym, csym)} classes ({bound_by.get(csym, 'declared')})")
    for shape in tm.params.values():
        for sym in shape or ():
            if isinstance(sym, str) and sym not in dims:
                if sym == csym:
                    raise GdslValueError(
                        f"the number of classes `{sym}` is not set: the labels are integers and "
                        f"nothing else gives it", help=f"give it with --classes N, declare it "
                        f"(e.g. param W[10, d]), or give one-hot labels {tm.label}[{sym}, n]")
                if hidden is None:
                    raise GdslValueError(
                        f"the size of dimension `{sym}` is not set by the data; give it with "
                        f"--set {sym}=100 or declare it in the model (dim {sym} = 100)")
                dims[sym] = hidden
    return dims


def one_hot(tm: Trainable, arrays: dict, dims: dict) -> dict:
    """The arrays with integer class labels [n] turned into the one-hot columns [C, n] that
    the model's loss makes of them, for an input declared so (y[C, n]), when C is known.
    Made once for the training run rather than in each step, as the loss's one-hot op passes
    one-hot labels through: the labels' one-hot took ~7 µs of a step of models/mlp2.gdsl
    (~75 µs). The same values, so the same steps. Not when the one-hot would outweigh the
    features (many classes: C x n numbers against d x n); the steps make theirs then."""
    out = dict(arrays)
    features = sum(a.nbytes for k, a in arrays.items() if k not in tm.labels)
    for k in tm.labels:
        declared = tm.inputs.get(k) or ()
        C = dims.get(declared[0], declared[0]) if len(declared) == 2 else None
        y = arrays.get(k)
        if isinstance(C, int) and y is not None and y.ndim == 1 and y.dtype.kind in "iu" \
                and C * y.size * 8 <= features:
            Y = np.zeros((C, y.size))
            Y[y, np.arange(y.size)] = 1.0
            out[k] = Y
    return out


def check_label_range(tm: Trainable, arrays: dict, dims: dict, what: str) -> None:
    if tm.label is None or tm.label not in arrays or tm.class_dim is None:
        return
    C = dims.get(tm.class_dim) if isinstance(tm.class_dim, str) else tm.class_dim
    if C is not None and arrays[tm.label].ndim == 1:
        D.check_labels(arrays[tm.label], C, what)


def check_metric_targets(tm: Trainable, metrics, arrays: dict, what: str) -> None:
    """Accuracy and AUC of real-valued targets compare them with 1/2: meaningless beyond
    0..1 (scikit-learn refuses continuous targets for them too)."""
    y = arrays.get(tm.task.target) if not tm.classes else None
    binary = [k for k in metrics if k in BINARY]
    if y is None or not binary or not y.size or (y.min() >= 0 and y.max() <= 1):
        return
    raise GdslValueError(f"metric `{binary[0]}` is for binary targets (0 and 1), but targets "
                         f"`{tm.task.target}` of the {what} range over {y.min():g}..{y.max():g}",
                         filename=tm.filename, help="report rmse, mae or r2 (--metric rmse,r2)")


def check_training_memory(tm: Trainable, dims: dict, s: Settings, examples: int) -> None:
    """Params, their gradients and the optimiser's state, and one step's values at ``examples``
    examples (what is kept for the backward pass and the largest value), before any of it is
    allocated (a class label of 10^12 asks for a [10^12, d] weight matrix)."""
    from ..limits import check_memory
    from ..views.cost import cost
    m = tm.compiled.model
    # params and gradients, the optimiser's state: velocity, moments; L-BFGS's pairs of
    # steps and gradient changes, Newton-CG's conjugate-gradient vectors
    copies = {"sgd": 2, "momentum": 3, "adam": 4,
              "lbfgs": 4 + 2 * SOLVER_OPTIONS["lbfgs"]["maxcor"], "newton-cg": 8}[s.optimizer]
    sizes = dict(dims)
    sizes.update({sym[-1]: examples for sym in tm.inputs.values() if sym and isinstance(sym[-1], str)})
    needs = []
    for name, shape in tm.params.items():
        if shape is not None:
            concrete = tuple(sizes.get(d, d) for d in shape)
            if all(isinstance(d, int) for d in concrete):
                needs.append((concrete, copies, f"param `{name}`", m.node(m.names[name])["span"]))
    try:
        c = cost(tm.compiled, sizes)
    except GdslError:       # shapes known only at call time: the params are what can be told
        c = None
    if c is not None and c.rows:      # what the backward pass keeps, and the largest value
        biggest = max(c.rows, key=lambda r: math.prod(r.shape))
        needs += [(r.shape, 1, f"`{r.text}`", m.node(r.node)["span"])
                  for r in c.rows if r.kept_bytes or r is biggest]
    notes = [f"{sym} = {sizes[sym]} comes from {who}" for sym, who in _origins(tm, dims).items()]
    try:
        check_memory(needs, f"full-batch training on {examples} examples"
                     if s.optimizer in SECOND_ORDER else
                     f"training with batches of {s.batch_size}", tm.filename, m.source)
    except GdslError as e:
        e.notes += notes
        raise


def _origins(tm: Trainable, dims: dict) -> dict:
    """Where the class count came from, when the labels gave it (for the memory message)."""
    c = tm.class_dim
    return {c: "the largest label + 1"} if isinstance(c, str) and c in dims else {}


# -- standardised features --------------------------------------------------------------------

def stats_keys(stats: dict) -> set[str]:
    """The names under which a params file keeps the statistics (not names a param can have)."""
    return {key for k in stats for key in (f"{k}.mean", f"{k}.std")}


def standardization(tm: Trainable, arrays: dict, params: dict | None, wanted: bool,
                    what: str, params_file: str = "the params",
                    params_path: str | None = None) -> dict:
    """Per-feature (mean, std) of each feature input: from loaded params that carry them
    (x.mean, x.std: a model trained on standardised features is evaluated on the same scale),
    else from the training split when ``wanted``. Without either, a warning when the features
    look raw (a standard deviation beyond 10: gradient descent converges slowly on them).
    Raises GdslDataError when loaded statistics do not fit the data's features."""
    features = [k for k in arrays if k not in tm.labels and k != tm.target and arrays[k].ndim >= 1]
    if params is not None and all(f"{k}.mean" in params for k in features) and features:
        for k in features:
            want = arrays[k].shape[:-1] + (1,)
            for key in (f"{k}.mean", f"{k}.std"):
                if key not in params or params[key].shape != want:
                    got = "missing" if key not in params else f"of shape {params[key].shape}"
                    raise GdslDataError(
                        f"{params_file} do not match the data: `{key}` is {got}, but the "
                        f"features `{k}` of {what} need shape {want}", filename=params_path)
        return {k: (params[f"{k}.mean"], params[f"{k}.std"]) for k in features}
    if not wanted:
        for k in features:
            spread = float(np.max(np.std(arrays[k], axis=-1))) if arrays[k].size else 0.0
            if spread > 10:
                warnings.warn(GdslDataWarning(
                    f"{what}: a feature of `{k}` has standard deviation {spread:.4g}; gradient "
                    f"descent converges slowly on raw features: try --standardize"), stacklevel=3)
        return {}
    out = {}
    for k in features:
        a = arrays[k]
        mean = a.mean(axis=-1, keepdims=True)
        std = a.std(axis=-1, keepdims=True)
        out[k] = (mean, np.where(std > 0, std, 1.0))      # a constant feature stays 0
    return out


def standardized(arrays: dict, stats: dict) -> dict:
    return {k: (a - stats[k][0]) / stats[k][1] if k in stats else a for k, a in arrays.items()}


# -- evaluation ---------------------------------------------------------------------------------

def evaluate(tm: Trainable, params: dict, arrays: dict, consts: dict | None = None,
             metrics: tuple[str, ...] | None = None, state: dict | None = None) -> dict:
    """{'loss', 'cost', 'accuracy', and each of ``metrics``} over all the examples in
    ``arrays`` (in chunks), in evaluation mode (batch norm with the running statistics of
    ``state``); ``metrics`` defaults to the task's, accuracy is None when it is not one of
    them."""
    consts = {**(consts or {}), **(state or {})}
    forward = tm.compiled.eval().forward
    metrics = tm.task.metrics if metrics is None else metrics
    n = D.n_examples(arrays, tm.labels)
    cost = loss = 0.0
    correct = 0
    task = tm.task
    compare = bool(metrics) and task.prediction is not None and task.target in arrays
    by_class = compare and tm.classes       # argmax against class labels, counted per chunk
    preds, targets = [], []
    for i in range(0, n, EVAL_CHUNK):
        batch = D.examples(arrays, i, i + EVAL_CHUNK, tm.labels)     # views, not copies
        out = forward(**batch, **params, **consts)
        w = (min(n, i + EVAL_CHUNK) - i) / n
        J = float(np.sum(out[tm.compiled.loss]))
        cost += w * J
        loss += w * (sum(float(out[t]) for t in tm.loss_terms) if tm.loss_terms else J)
        if compare:
            p = out[task.prediction] if task.prediction in out else \
                batch.get(task.prediction, params.get(task.prediction))
            if by_class:
                y = batch[task.target]
                if y.ndim > 1:
                    y = np.argmax(y, axis=0)
                correct += int(np.sum(np.argmax(p, axis=0).reshape(-1) == y.reshape(-1)))
            else:
                preds.append(np.asarray(p, dtype=np.float64))
                targets.append(batch[task.target])
    result = {"loss": loss, "cost": cost, "accuracy": None}
    if by_class and "accuracy" in metrics:
        result["accuracy"] = correct / n
    elif compare and not by_class:
        result.update(metric_values(metrics, np.concatenate(preds, axis=-1),
                                    np.concatenate(targets, axis=-1), task.threshold))
    return result


# -- metrics, as scikit-learn's `metrics` computes them ----------------------------------------

def _rows(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and targets as [k, n] (one row per target), broadcast to each other."""
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    p, y = (a.reshape(1, -1) if a.ndim < 2 else a.reshape(-1, a.shape[-1]) for a in (p, y))
    return np.broadcast_arrays(p, y)


def accuracy(p, y, threshold: float = 0.0) -> float:
    """Binary accuracy: the prediction above ``threshold`` against targets 0/1 (above 1/2)."""
    p, y = _rows(p, y)
    return float(np.mean((p > threshold) == (y > 0.5)))


def auc(p, y) -> float | None:
    """The area under the ROC curve of scores p for binary targets y (ties count half: the
    Mann-Whitney statistic); None when the targets hold one class only. Several target rows
    are pooled (scikit-learn's average="micro")."""
    p, y = (a.reshape(-1) for a in _rows(p, y))
    positive = y > 0.5
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts            # ranks (from 1) of tied values, averaged
    ranks = (first + (counts + 1) / 2.0)[inverse]
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def rmse(p, y) -> float:
    p, y = _rows(p, y)
    return float(np.mean(np.sqrt(np.mean((p - y) ** 2, axis=1))))


def mae(p, y) -> float:
    p, y = _rows(p, y)
    return float(np.mean(np.abs(p - y)))


def r2(p, y) -> float | None:
    """1 - Σ(y - p)² / Σ(y - ȳ)² per target row, averaged; a constant row scores 1 if
    predicted exactly, else 0 (as scikit-learn's r2_score does); None for fewer than two
    examples, where it is not defined (scikit-learn: nan and a warning)."""
    p, y = _rows(p, y)
    if y.shape[1] < 2:
        return None
    residual = np.sum((y - p) ** 2, axis=1)
    total = np.sum((y - y.mean(axis=1, keepdims=True)) ** 2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(total > 0, 1 - residual / total, np.where(residual == 0, 1.0, 0.0))
    return float(np.mean(score))


METRIC_FUNCTIONS = {"accuracy": lambda p, y, thr: accuracy(p, y, thr),
                    "auc": lambda p, y, thr: auc(p, y),
                    "rmse": lambda p, y, thr: rmse(p, y),
                    "mae": lambda p, y, thr: mae(p, y),
                    "r2": lambda p, y, thr: r2(p, y)}


def metric_values(names, p: np.ndarray, y: np.ndarray, threshold: float = 0.0) -> dict:
    """{name: value} of each metric of predictions p against targets y."""
    with np.errstate(all="ignore"):     # (predictions of a diverging run: inf and NaN)
        return {name: METRIC_FUNCTIONS[name](p, y, threshold) for name in names}


# -- optimisers ---------------------------------------------------------------------------------

class Optimizer:
    """sgd: p -= lr g.  momentum: v = mu v - lr g; p += v.
    adam: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²; p -= lr m̂ / (√v̂ + 1e-8).

    The optimiser takes the params over: they move into one flat buffer, ``params[k]``
    becoming views of it, and a step updates that buffer in place with whole-buffer
    operations into buffers made once, rather than several fresh arrays per param: a
    momentum step of models/mlp2.gdsl (4 params, 7510 numbers) took 16.7 µs of CPU param by
    param and 7.1 µs so. Each operation is one the formulas above say, in their order, so
    the params are the bits the formulas give param by param."""

    def __init__(self, kind: str, params: dict, mu: float = 0.9, beta2: float = 0.999):
        self.kind, self.mu, self.beta2, self.t = kind, mu, beta2, 0
        self.names = list(params)
        dtype = np.result_type(*params.values()) if params else np.float64
        shapes = {k: np.shape(params[k]) for k in self.names}
        self.flat = np.concatenate([np.ravel(params[k]) for k in self.names]).astype(dtype) \
            if params else np.zeros(0, dtype)
        self.tmp = np.zeros_like(self.flat)
        self.m = np.zeros_like(self.flat) if kind != "sgd" else None    # momentum, adam's m
        self.v = np.zeros_like(self.flat) if kind == "adam" else None
        self.g = np.zeros_like(self.flat) if kind == "adam" else None
        self.tmp_views, at = {}, 0          # each param's part of tmp
        for k in self.names:
            size = math.prod(shapes[k])
            params[k] = self.flat[at:at + size].reshape(shapes[k])
            self.tmp_views[k] = self.tmp[at:at + size].reshape(shapes[k])
            at += size

    def _scaled(self, grads: dict, c: float) -> np.ndarray:
        """tmp = c g, laid out as the params (0 for a param without a gradient): g gathered
        and scaled in one pass."""
        for k, t in self.tmp_views.items():
            g = grads.get(k)
            if g is None:
                t.fill(0)
                continue
            if getattr(g, "shape", ()) != t.shape:     # (a number, or [n] for a [n, 1] param)
                g = np.reshape(g, t.shape)
            np.multiply(g, c, out=t)
        return self.tmp

    def step(self, params: dict, grads: dict, lr: float) -> None:
        """One update of the params (those given at the start, updated in place) by
        ``grads`` at learning rate ``lr``."""
        self.t += 1
        p = self.flat
        if self.kind == "sgd":
            np.subtract(p, self._scaled(grads, lr), out=p)
        elif self.kind == "momentum":
            m = self.m
            np.multiply(m, self.mu, out=m)
            np.subtract(m, self._scaled(grads, lr), out=m)
            np.add(p, m, out=p)
        else:
            b1, b2, m, v, g, t = self.mu, self.beta2, self.m, self.v, self.g, self.tmp
            np.concatenate([grads[k] if k in grads else np.zeros(self.tmp_views[k].shape)
                            for k in self.names], axis=None, out=g)
            np.multiply(m, b1, out=m)
            np.multiply(g, 1 - b1, out=t)
            np.add(m, t, out=m)
            np.multiply(g, g, out=g)
            np.multiply(g, 1 - b2, out=g)
            np.multiply(v, b2, out=v)
            np.add(v, g, out=v)
            np.divide(m, 1 - b1 ** self.t, out=t)           # m̂
            np.divide(v, 1 - b2 ** self.t, out=g)           # v̂
            np.sqrt(g, out=g)
            np.add(g, 1e-8, out=g)
            np.multiply(t, lr, out=t)
            np.divide(t, g, out=t)
            np.subtract(p, t, out=p)


# -- training -----------------------------------------------------------------------------------

@dataclass
class TrainResult:
    """What ``train`` returns: the trained params, one metrics dict per epoch, and the setup."""

    params: dict[str, np.ndarray]
    history: list[dict] = field(default_factory=list)
    settings: Settings | None = None
    dims: dict = field(default_factory=dict)
    consts: dict = field(default_factory=dict)
    n_train: int = 0
    n_val: int = 0
    data_source: str = ""
    standardization: dict = field(default_factory=dict)   # feature input -> (mean, std)
    metrics: tuple[str, ...] = ()       # reported per epoch, besides loss and cost
    solver: dict = field(default_factory=dict)  # lbfgs/newton-cg: iterations, objective, ...
    state: dict = field(default_factory=dict)   # the states' values after training (running stats)
    classes: dict = field(default_factory=dict)  # label input -> its class names (word labels)

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


def train(model, data=None, *, val=None, params: dict | None = None, consts: dict | None = None,
          on_epoch: Callable[[dict], None] | None = None, progress: bool = False,
          params_file: str = "the params", params_path: str | None = None,
          label_column: str | list[str] | None = None, label: str | None = None,
          metric: str | None = None, on_warning: Callable | None = None,
          target: str = "numpy", **settings) -> TrainResult:
    """Train a model's params by mini-batch gradient descent.

    ``model``: a .gdsl path, model text, CompiledModel or Trainable. ``data``: a built-in
    data-set name ('digits', 'spiral'), a .npz/.npy/.csv path, a data.Table or a dict of
    arrays by input name (default: the model's `train data=` or digits). ``val``: the same,
    or None to hold out ``val_fraction`` of ``data``. ``params``: start from these (resume)
    instead of the model's initialisers. ``consts``: {name: value} for consts, or sizes of
    symbolic dims. ``settings``: lr, epochs, batch_size, optimizer, seed, momentum, decay,
    val_fraction, hidden; None values keep the model's `train` line or the defaults.
    ``on_epoch(record)`` is called after every epoch. ``label_column``: the label column
    of a .csv/.npy file (a header name or an index), or a list of them for several targets.
    ``label``: the input the label column(s) go to, when the model's loss does not say.
    ``metric``: what to report, e.g. "rmse,r2" (default: the model's `metric` statement, or
    what its loss reports). ``on_warning(w)`` gets each NumPy warning raised in the model's
    code (overflow, divide by zero, invalid value), once per kind and model line, as a
    GdslError of kind "warning" at that line (default: printed to standard error).
    ``target``: what a model given as text or a path is compiled for (numpy, numba).

    Returns a TrainResult (params, history of {'epoch', 'train_loss', 'train_cost',
    'train_accuracy', ['train_auc', 'train_rmse', ...: the other metrics], 'val_loss',
    'val_cost', 'val_accuracy', [the same for validation], 'lr', 'seconds'}; before the last
    epoch, train_cost is the mean of the epoch's batch costs and the other train_ values are
    None: see the module's doc).
    Raises GdslError subclasses: GdslDataError for unusable data or params,
    GdslValueError for bad settings, GdslDivergedError when the loss becomes NaN or inf.
    """
    tm = prepare(model, label=label, target=target)
    s = settings_for(tm, **settings, metric=metric)
    metrics = tm.metric_names(s.metric)
    if not tm.params and s.epochs > 0:
        raise GdslValueError("the model has no params to train", filename=tm.filename,
                             help="declare what is learned, e.g. `param W[C, d] ~ normal(0, 0.01)`"
                             "; with --epochs 0 gdsl run only evaluates the model")
    const_values, set_dims = split_consts(tm, consts)
    if data is None:
        data = s.data
    params, class_names = loaded_params(tm, params)
    train_arrays, val_arrays, source, class_names = read_split(tm, s, data, val, label_column,
                                                               class_names)
    # the states saved with the params (--save writes them beside them): training goes on
    # from them, evaluation uses them
    state = {k: params.pop(k) for k in tm.compiled.states if k in params} if params else {}
    if tm.compiled.states and s.optimizer in SECOND_ORDER:
        raise GdslValueError(f"--optimizer {s.optimizer} minimises one full-batch objective, but "
                             f"a model with state (batch norm) changes it at every step",
                             filename=tm.filename, help="train it with sgd, momentum or adam")
    if tm.compiled.states and s.batch_size < 2 and s.epochs > 0:
        raise GdslValueError(f"batch size {s.batch_size}: a model with state (batch norm) "
                             f"needs batches of at least 2 examples", filename=tm.filename)
    stats = standardization(tm, train_arrays, params, s.standardize, str(source) or "data",
                            params_file, params_path)
    if stats:
        params = {k: v for k, v in (params or {}).items() if k not in stats_keys(stats)} or None \
            if params is not None else None
        train_arrays = standardized(train_arrays, stats)
        val_arrays = standardized(val_arrays, stats) if val_arrays else val_arrays
    dims = bind_dims(tm, [train_arrays] + ([val_arrays] if val_arrays else []), params, set_dims,
                     s.hidden, params_file, params_path, s.classes, s.dims)
    check_label_range(tm, train_arrays, dims, "training data")
    check_metric_targets(tm, metrics, train_arrays, "training data")
    if val_arrays:
        check_label_range(tm, val_arrays, dims, "validation data")
        check_metric_targets(tm, metrics, val_arrays, "validation data")
    n = D.n_examples(train_arrays, tm.labels)
    check_training_memory(tm, dims, s, n if s.optimizer in SECOND_ORDER else
                          min(n, max(s.batch_size, EVAL_CHUNK)))
    if params is None:
        params = tm.compiled.init_params(dims, s.seed)
    state = {**tm.compiled.init_state(dims), **state}
    result = TrainResult(params, [], s, dims, const_values, n,
                         D.n_examples(val_arrays, tm.labels) if val_arrays else 0, str(source),
                         stats, metrics=metrics, state=state,
                         classes={tm.task.target: class_names} if class_names else {})

    def record(epoch, lr, seconds, running_cost=None, **extra):
        # the training set's metrics at these params after the last epoch (and without a
        # running cost: second-order iterations, epochs=0); after the other epochs only the
        # cost, the mean over the epoch's batches (see the module's doc)
        if running_cost is None or epoch == s.epochs:
            tr = evaluate(tm, params, train_arrays, const_values, metrics, state)
        else:
            tr = {"loss": None, "cost": running_cost, "accuracy": None}
        va = evaluate(tm, params, val_arrays, const_values, metrics, state) if val_arrays else {}
        rec = epoch_record(tm, epoch, tr, va, metrics, lr, seconds, **extra)
        result.history.append(rec)
        if on_epoch is not None:
            on_epoch(rec)

    # NumPy's warnings in the model's code, at the model's line: one hook for the whole run
    with model_warnings(tm.compiled, on_warning):
        if s.epochs == 0:
            record(0, None if s.optimizer in SECOND_ORDER else s.lr, 0.0)
        elif s.optimizer in SECOND_ORDER:
            result.solver = _minimize(tm, s, params, train_arrays, const_values, record)
        else:
            _descend(tm, s, params, one_hot(tm, train_arrays, dims), const_values, n, record,
                     progress, state)
    return result


def epoch_record(tm: Trainable, epoch: int, tr: dict, va: dict, metrics, lr, seconds: float,
                 **extra) -> dict:
    """The record of an epoch (see ``train``) from the training and validation figures
    (``evaluate``'s dicts; {} without validation data). Raises GdslDivergedError when the
    training cost is not finite."""
    if not math.isfinite(tr["cost"]):
        raise GdslDivergedError(
            f"training diverged: the training cost is {tr['cost']} after epoch {epoch}"
            + (f" (lr {lr:g}); try a smaller --lr" if lr is not None else ""),
            filename=tm.filename)
    others = [k for k in metrics if k != "accuracy"]
    rec = {"epoch": epoch, "train_loss": tr["loss"], "train_cost": tr["cost"],
           "train_accuracy": tr["accuracy"]}
    rec.update((f"train_{k}", tr.get(k)) for k in others)
    rec.update({"val_loss": va.get("loss"), "val_cost": va.get("cost"),
                "val_accuracy": va.get("accuracy")})
    rec.update((f"val_{k}", va.get(k)) for k in others)
    rec.update(lr=lr, seconds=round(seconds, 4), **extra)
    return rec


def loaded_params(tm: Trainable, params: dict | None) -> tuple[dict | None, list | None]:
    """(the params to start from as float64 arrays, the class names saved beside them or
    None): --save writes the words that numbered word labels as `y.classes`."""
    if params is None:
        return None, None
    key = f"{tm.task.target}.classes"
    names = [str(c) for c in np.asarray(params[key]).reshape(-1)] if key in params else None
    return {k: np.array(v, dtype=np.float64) for k, v in params.items() if k != key}, names


def read_split(tm: Trainable, s: Settings, data, val, label_column,
               classes: list[str] | None = None) -> tuple:
    """(training arrays, validation arrays, where the data came from, class names or None):
    ``data`` read (a file, a built-in set, a Table, arrays), and ``val`` read or held out of
    it (--val-fraction); word labels numbered by ``classes`` when given (saved with loaded
    params), else by the training data's words."""
    source = data if isinstance(data, str) else ""
    if isinstance(data, (str, os.PathLike)):
        table = D.load(str(data), label_column, classes)
        train_arrays, classes = file_arrays(tm, str(data), table), table.classes
    else:
        train_arrays = arrays_for(tm, data, str(source) or "data", label_column)
        classes = data.classes if isinstance(data, D.Table) else None
    if isinstance(data, D.Table):
        source = data.source
    if val is not None:     # word labels numbered as in the training data
        val_arrays = arrays_for(tm, val, str(val) if isinstance(val, str) else "validation data",
                                label_column, classes)
    else:
        train_arrays, val_arrays = D.split(train_arrays, tm.labels, s.val_fraction, s.seed)
    return train_arrays, val_arrays, source, classes


def progress_bar(progress: bool, total: int):
    """tqdm's bar counting ``total`` gradient steps, or None without ``progress``."""
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="step", leave=False, dynamic_ncols=True)


def _descend(tm: Trainable, s: Settings, params: dict, train_arrays: dict, const_values: dict,
             n: int, record: Callable, progress: bool, state: dict) -> None:
    """The epochs of mini-batch gradient descent, each followed by ``record(epoch, lr,
    seconds, cost)``, ``cost`` the mean of the cost of the epoch's batches; ``state`` (the
    model's states) is updated after each step, as the step's value_and_grad says."""
    shuffle = np.random.default_rng([s.seed, 1])
    opt = Optimizer(s.optimizer, params, s.momentum)
    B = s.batch_size
    bar = progress_bar(progress, s.epochs * math.ceil(n / B))
    value_and_grad = tm.compiled.value_and_grad
    # the arguments of every step: the params (updated in place by opt), the consts, and the
    # batch's arrays put in before each step
    arrays = {**params, **const_values, **state}
    labels = [k for k in tm.labels if k in train_arrays and train_arrays[k].ndim == 1]
    try:
        for epoch in range(1, s.epochs + 1):
            t0 = time.perf_counter()
            lr = s.lr * s.decay ** (epoch - 1)
            perm = shuffle.permutation(n)
            total = 0.0
            for step, start in enumerate(range(0, n, B), 1):
                if state and min(n, start + B) - start < 2:     # batch statistics need two
                    continue            # examples (as PyTorch's batch norm does): it waits
                arrays.update(D.take(train_arrays, perm[start:start + B], labels))
                J, grads, *new = value_and_grad(**arrays)
                if new:         # the states' new values, from this step's batch
                    state.update(new[0])
                    arrays.update(new[0])
                J = _number(J)
                if not math.isfinite(J):
                    raise GdslDivergedError(
                        f"training diverged: the loss became {J} at epoch {epoch}, step {step} "
                        f"(lr {lr:g}); try a smaller --lr", filename=tm.filename)
                total += J * (min(n, start + B) - start)
                opt.step(params, grads, lr)
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.set_postfix_str(f"epoch {epoch}/{s.epochs}")
            record(epoch, lr, time.perf_counter() - t0, total / n)
    finally:
        if bar is not None:
            bar.close()


def _minimize(tm: Trainable, s: Settings, params: dict, train_arrays: dict, const_values: dict,
              record: Callable) -> dict:
    """Full-batch second-order training: scipy.optimize.minimize of J over all the training
    examples, the params flattened into one vector θ; ``jac`` from value_and_grad and, for
    Newton-CG, ``hessp`` (H·p) from the model's Hessian-vector product. At most s.epochs
    iterations (scipy's maxiter), each followed by ``record``. Updates ``params`` in place
    and returns {iterations, objective, grad_norm, evaluations, converged, message}."""
    try:
        from scipy.optimize import minimize
    except ImportError:
        raise GdslError(f"--optimizer {s.optimizer} needs scipy, which is not installed",
                        help="pip install scipy (or pip install 'gdsl[second-order]')") from None
    model = tm.compiled
    names = [k for k in model.wrt if k in params]
    shapes = [np.shape(params[k]) for k in names]
    ends = np.cumsum([int(np.prod(shape)) for shape in shapes])

    def unflat(theta) -> dict:
        return {k: part.reshape(shape)
                for k, shape, part in zip(names, shapes, np.split(theta, ends[:-1]))}

    def flat(values: dict) -> np.ndarray:
        return np.concatenate([np.reshape(values[k], -1) for k in names])

    last = {}           # θ -> (J, ∇J) of the last evaluation: where an iteration ends, mostly

    def fun(theta):
        J, grads = model.value_and_grad(**train_arrays, **unflat(theta), **const_values)
        last.clear()
        last[theta.tobytes()] = out = float(np.sum(J)), flat(grads)
        return out

    def hessp(theta, p):
        return flat(model.hvp(unflat(p), **train_arrays, **unflat(theta), **const_values))

    def grad_norm(theta) -> float:
        return float(np.linalg.norm((last.get(theta.tobytes()) or fun(theta))[1]))

    clock = [time.perf_counter()]

    def each_iteration(theta):
        params.update(unflat(theta.copy()))
        record(len(clock), None, time.perf_counter() - clock[-1], grad_norm=grad_norm(theta))
        clock.append(time.perf_counter())

    result = minimize(fun, flat(params), jac=True, method=SECOND_ORDER[s.optimizer],
                      hessp=hessp if s.optimizer == "newton-cg" else None,
                      callback=each_iteration,
                      options={**SOLVER_OPTIONS[s.optimizer], "maxiter": s.epochs})
    params.update(unflat(result.x.copy()))
    if len(clock) == 1:         # no iteration: the start was optimal already
        record(0, None, 0.0, grad_norm=grad_norm(result.x))
    return {"iterations": int(result.nit), "objective": float(result.fun),
            "grad_norm": grad_norm(result.x), "evaluations": int(result.nfev),
            "converged": bool(result.success), "message": str(result.message)}


def _number(J) -> float:
    """The loss, one number (a NumPy scalar, or an array of one element: [1, 1]), as a float."""
    return float(J) if isinstance(J, (float, np.generic)) else float(np.sum(J))


# -- params files -------------------------------------------------------------------------------

def save_params(path, params: dict, standardization: dict | None = None,
                state: dict | None = None, classes: dict | None = None) -> None:
    """Write params as .npz atomically: the old file or the whole new one, never half. The
    statistics of standardised features go beside them, as x.mean and x.std, the model's
    states (running statistics) under their own names, and the words that numbered word
    labels as y.classes (a string array: no pickle)."""
    check_output(path, "save_params")
    arrays = {k: np.asarray(v) for k, v in {**params, **(state or {})}.items()}
    for k, (mean, std) in (standardization or {}).items():
        arrays[f"{k}.mean"], arrays[f"{k}.std"] = mean, std
    for k, names in (classes or {}).items():
        arrays[f"{k}.classes"] = np.array([str(c) for c in names], dtype=np.str_)
    buf = io.BytesIO()
    np.savez(buf, **dict(sorted(arrays.items())))
    write_atomic(path, buf.getvalue())


def load_params(path) -> dict:
    """Params from a .npz file (no pickles). Raises GdslDataError."""
    path = str(path)
    if not os.path.exists(path):
        raise GdslDataError(f"no such params file: {path}", filename=path)
    import zipfile
    if not zipfile.is_zipfile(path):
        raise GdslDataError(f"cannot read params file {path}: not a .npz archive (corrupt or "
                            f"another format)", filename=path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise ValueError("not a .npz archive")
            out = {k: np.asarray(z[k]) for k in z.files}
    except GdslError:
        raise
    except Exception as e:   # noqa: BLE001 (corrupt zip, pickled arrays, not a .npz: one message)
        raise GdslDataError(f"cannot read params file {path}: {D._why(e)}", filename=path) from None
    for k, a in out.items():
        if k.endswith(".classes") and a.dtype.kind == "U" and a.ndim == 1:
            continue                        # the words of word labels (save_params)
        if a.dtype.kind not in "biuf" or not np.isfinite(a).all():
            raise GdslDataError(f"params file {path}: `{k}` is not an array of finite numbers",
                                filename=path)
    return out

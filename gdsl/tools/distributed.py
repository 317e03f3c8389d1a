"""Data-parallel training on dask.distributed, and data in shards.

    gdsl run MODEL --workers N            an embedded LocalCluster: N worker processes, loopback
    gdsl run MODEL --scheduler ADDRESS    an existing cluster (`dask scheduler`, `dask worker`)
    gdsl run MODEL --data DIR|GLOB        .npy/.npz/.csv shards (with or without workers)

The training examples are cut into shards, in a fixed order: the data's blocks (one per
worker) or the files of a directory or glob, in name order. Each shard lives on one worker
(an actor of dask's, placed by dask: the data scattered to it once, or the file read there)
with the model compiled there. A step takes the same batch as serial training (the same
shuffle of the same examples); each shard computes the loss and gradient of the batch's
examples it holds, and the driver combines them weighted by their example counts:

    J(B) = Σ_k |B_k|/|B| · J(B_k)        and the same for each gradient,

which is the full-batch value exactly, because the loss is a mean over the examples plus
terms that do not depend on them. Models for which that is not so (a sum over the examples,
batch statistics, a mean fed to a nonlinear function) are refused at the line that breaks it
(``check_shardable``). The driver then steps the optimiser; the params go to the shards each
step, the data never do.

A worker lost mid-epoch (the process killed, the machine gone) loses the shards it held:
they are placed again on the workers that remain (scattered again from the driver, or read
again from their files) and the step's lost parts recomputed, so training goes on to the
same result; with no worker left within ``wait`` seconds gdsl stops with one error. Either
way nothing is saved before training has finished.

Without workers, shards are streamed: each epoch visits them in a shuffled order, one shard in
memory at a time, its examples shuffled and cut into batches (a batch may span two shards).
"""

from __future__ import annotations

import glob
import itertools
import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import numpy as np

from ..errors import GdslDataError, GdslDataWarning, GdslDivergedError, GdslError, GdslValueError
from ..ir.graph import LEAVES
from ..ir.ops import OPS
from ..pipeline import run_pipeline
from ..runtime import compile as compile_model
from ..runtime import model_warnings
from . import data as D
from .train import (
    EVAL_CHUNK,
    SECOND_ORDER,
    Optimizer,
    Trainable,
    TrainResult,
    arrays_for,
    bind_dims,
    check_label_range,
    check_training_memory,
    epoch_record,
    evaluate,
    file_arrays,
    loaded_params,
    metric_values,
    prepare,
    progress_bar,
    read_split,
    settings_for,
    split_consts,
    standardization,
    standardized,
    stats_keys,
)

SHARD_SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".txt")
WAIT = 30.0         # seconds to wait for a worker when none is left
CONNECT = 10.0      # seconds to wait for the scheduler of --scheduler ADDRESS
# the loggers dask.distributed gives levels of their own (distributed.config's defaults)
DASK_LOGGERS = ("distributed", "distributed.client", "distributed.gc")
RETRIES = 5         # times a shard's call is placed again before gdsl gives up


class GdslClusterWarning(GdslDataWarning):
    """Something happened to the cluster that training survived (a worker lost)."""


# -- sharded data ---------------------------------------------------------------------------------

def shard_paths(spec) -> list[str] | None:
    """The files of sharded data: a directory (its .npy, .npz and .csv files) or a glob
    pattern, in name order; None for one file or a built-in set. Raises GdslDataError for a
    directory or pattern with no data files."""
    if not isinstance(spec, (str, os.PathLike)):
        return None
    spec = str(spec)
    path = Path(spec)
    if path.is_dir():
        files = sorted(str(f) for f in path.iterdir()
                       if f.is_file() and f.suffix.lower() in SHARD_SUFFIXES)
        if not files:
            raise GdslDataError(f"{spec}: the directory holds no data shards (.npy, .npz or "
                                f".csv files)", filename=spec)
        return files
    if any(c in spec for c in "*?[") and not path.exists():
        files = sorted(f for f in glob.glob(spec) if os.path.isfile(f))
        if not files:
            raise GdslDataError(f"no data files match {spec}", filename=spec)
        return files
    return None


def is_sharded(spec) -> bool:
    try:
        return shard_paths(spec) is not None
    except GdslDataError:
        return True         # (the error is reported where the shards are read)


# -- which models sharding keeps exact ------------------------------------------------------------

FREE, EXAMPLE, MEAN = "free", "per example", "an average"


class _Stop(Exception):
    def __init__(self, compilation):
        self.compilation = compilation


def _written(tm: Trainable, shapes: dict):
    """The model as written, with shapes, its undeclared leaves given ``shapes``."""
    def stop(stage, c):
        if stage == "shapes":
            raise _Stop(c)
    m = tm.compiled.model
    try:
        run_pipeline(m.source, filename=m.filename, wrt=list(tm.compiled.wrt), losses=True,
                     shapes=shapes, after=stop)
    except _Stop as s:
        return s.compilation
    raise AssertionError("the pipeline ran past its shapes stage")


def _example_axis(tm: Trainable) -> str:
    """The symbol of the examples axis: the last declared dim of the inputs, or n."""
    syms = {s[-1] for s in tm.inputs.values() if s and isinstance(s[-1], str)}
    if len(syms) == 1:
        return syms.pop()
    if len(syms) > 1:
        raise GdslValueError(f"the inputs' last axes are {', '.join(sorted(syms))}: gdsl run "
                             f"--workers splits the examples, the one last axis every input "
                             f"shares", filename=tm.filename,
                             help="name the examples axis alike in every input, e.g. x[d, n], "
                                  "y[C, n]")
    used = {d for s in [*tm.inputs.values(), *tm.params.values()] if s for d in s}
    name = "n"
    while name in used:
        name += "_"
    return name


def check_shardable(tm: Trainable, arrays: dict, params: dict) -> None:
    """Raise a GdslError at the model's line when splitting a batch across workers would
    change what the model computes: a value of the batch that is not the example-weighted
    mean of the shards' values (a sum over the examples, a max over them, a mean fed to
    log), a statistic of the batch used per example (batch normalisation), or an op that
    mixes examples (a softmax along the examples axis, x.T @ x). ``arrays``: the model's
    arrays for some examples (their shapes give undeclared inputs theirs)."""
    n = _example_axis(tm)
    m = tm.compiled.model
    for name, v in m.states.items():     # (batch norm: each shard's statistics are not the batch's)
        raise GdslValueError(f"state `{name}` is updated from the statistics of the whole batch: "
                             f"gdsl run --workers splits each batch across workers, which would "
                             f"change this model", m.node(v)["span"], filename=m.filename,
                             source=m.source, help="train without --workers")
    shapes = {}
    for name, declared in tm.inputs.items():
        a = arrays.get(name)
        if declared is None and a is not None and a.ndim:
            shapes[name] = (*a.shape[:-1], n) if name not in tm.labels else (n,)
    for name, declared in tm.params.items():
        if declared is None and name in params:
            shapes[name] = tuple(params[name].shape)
    c = _written(tm, shapes)
    G, inputs = c.written, set(c.model.inputs.values())
    names = {d["name"]: v for v, d in G.nodes(data=True) if d.get("name")}
    kinds = {}

    def refuse(v, what, help):
        d = G.nodes[v]
        raise GdslValueError(f"{what}: gdsl run --workers splits each batch across workers and "
                             f"averages their results, which would change this model",
                             d.get("span"), filename=m.filename, source=m.source,
                             help=help + "; or train without --workers")

    for v in nx.topological_sort(G):
        d = G.nodes[v]
        op = d["op"]
        if op in LEAVES:
            shape = d.get("shape")
            kinds[v] = EXAMPLE if v in inputs and shape and n in shape else FREE
            continue
        ks = [kinds[a] for a in d["args"]]
        if all(k == FREE for k in ks):
            kinds[v] = FREE
            continue
        row, shape = OPS[op], d.get("shape")
        if shape is None:
            refuse(v, "the shape of this value is unknown", "declare the inputs' shapes, "
                   "e.g. input x[d, n]")
        varying = tuple(i for i, k in enumerate(ks) if k != FREE)
        if shape.count(n) > 1:
            refuse(v, "this pairs examples with each other", "keep one examples axis")
        if n in shape:
            if MEAN in ks:
                refuse(v, "a statistic of the batch is used per example here (as batch "
                       "normalisation does): each worker would use its shard's",
                       "use a statistic of the data computed beforehand (a const or "
                       "--standardize)")
            axis = d.get("attrs", {}).get("axis")
            if "axis" in row.keywords and isinstance(axis, int):
                arg = G.nodes[d["args"][0]].get("shape") or ()
                if -len(arg) <= axis < len(arg) and arg[axis] == n:
                    refuse(v, "this works along the examples axis, mixing examples",
                           "work along another axis (the examples are the last)")
            kinds[v] = EXAMPLE
        elif EXAMPLE in ks:     # the examples axis reduced here
            if MEAN in ks or not row.averages:
                refuse(v, "this reduces over the examples without averaging them (a sum, a "
                       "max, a product over the batch)",
                       "average over the examples instead (mean(...), or a loss such as "
                       "xent or mse, which are means)")
            kinds[v] = MEAN
        elif any(set(varying) <= set(group) for group in row.affine):
            kinds[v] = MEAN
        else:
            refuse(v, "this is not linear in a mean over the examples (the mean of the "
                   "workers' values is not the batch's value)",
                   "apply it per example and average afterwards")
    task = tm.task
    if task.prediction in names and kinds[names[task.prediction]] == MEAN:
        refuse(names[task.prediction], "the prediction is a statistic of the batch",
               "predict per example")


# -- the model and one shard, on a worker ------------------------------------------------------------

def model_spec(tm: Trainable) -> tuple:
    """What a worker compiles the model from: text, file name, wrt, label input, target."""
    c = tm.compiled
    return (c.model.source, tm.filename, tuple(c.wrt), tm.target,
            c.compilation.options.target)


def _trainable(spec: tuple) -> Trainable:
    text, filename, wrt, label, target = spec
    compiled = compile_model(text, list(wrt), filename=filename)
    return prepare(compiled, label=label, target=target)


def _part(arrays: dict | None, idx, labels) -> dict | None:
    if arrays is None or idx is None:
        return arrays
    return D.take(arrays, np.asarray(idx, dtype=np.int64), labels)


def _concat(a: dict, b: dict, labels) -> dict:
    return {k: (np.concatenate([a[k], b[k]], axis=0 if k in labels else -1) if a[k].ndim else a[k])
            for k in a}


class Shard:
    """One shard of the data where it is used: its training and validation examples as the
    model's arrays, and the model compiled there. ``source``: ("arrays", train, val) or
    ("file", path, label_column, train_idx, val_idx) (None: every example for training)."""

    def __init__(self, spec: tuple | Trainable, source: tuple, stats: dict | None = None):
        self.tm = spec if isinstance(spec, Trainable) else _trainable(spec)
        self.standardized = False
        labels = self.tm.labels
        if source[0] == "file":
            _, path, label_column, train_idx, val_idx = source
            table = D.load(path, label_column)
            if table.classes is not None:   # each shard would number its own words
                raise GdslDataError(
                    f"{path}: class names in shards ({', '.join(map(str, table.classes[:4]))}"
                    f"{', ...' if len(table.classes) > 4 else ''}): each shard would number "
                    f"the classes it holds on its own", filename=path,
                    help="number the classes 0..C-1 in the files, or train on one file")
            arrays = file_arrays(self.tm, path, table)
            self.train = _part(arrays, train_idx, labels)
            self.val = _part(arrays, val_idx, labels) if val_idx is not None else None
            self.all = arrays if train_idx is None else None
        else:
            _, self.train, self.val = source
            self.all = None
            if isinstance(self.train, list):        # (scattered: the future's value)
                self.train = self.train[0]
        if stats:
            self.standardize(stats)

    def split(self, train_idx, val_idx) -> None:
        if self.all is None:        # (placed again after a loss: split where it was made)
            return
        labels = self.tm.labels
        self.train, self.val = _part(self.all, train_idx, labels), _part(self.all, val_idx, labels)
        self.all = None

    def standardize(self, stats: dict) -> None:
        if self.standardized:       # (placed again after a loss: standardised when made)
            return
        self.standardized = True
        self.train = standardized(self.train, stats) if self.train else self.train
        self.val = standardized(self.val, stats) if self.val else self.val

    def summary(self) -> dict:
        """The examples' count, and a few examples: one of each label (the class count, the
        labels' range) or the first (the arrays' shapes)."""
        arrays = self.all if self.all is not None else self.train
        n = D.n_examples(arrays, self.tm.labels) if arrays else 0
        label = self.tm.label
        if n and label in arrays and arrays[label].ndim == 1:
            idx = np.unique(arrays[label], return_index=True)[1]
        else:
            idx = np.arange(min(n, 1))
        return {"n": n, "sample": D.take(arrays, idx, self.tm.labels) if n else None}

    def moments(self, mean: dict | None) -> dict:
        """Per feature input: the sum of the training examples, or with ``mean`` the sum of
        squared deviations from it (standardisation's two passes)."""
        tm = self.tm
        out = {}
        for k, a in (self.train or {}).items():
            if k in tm.labels or k == tm.target or a.ndim < 1:
                continue
            out[k] = (a - mean[k]) ** 2 if mean is not None else a
            out[k] = out[k].sum(axis=-1, keepdims=True)
        return out

    def grad(self, idx, params: dict, consts: dict) -> tuple:
        """(loss, gradients) of the training examples ``idx`` of this shard."""
        batch = D.take(self.train, np.asarray(idx, dtype=np.int64), self.tm.labels)
        J, grads = self.tm.compiled.value_and_grad(**batch, **params, **consts)
        return float(np.sum(J)), grads

    def evaluate(self, which: int, params: dict, consts: dict, metrics: tuple) -> tuple | None:
        """(examples, loss, cost, accuracy, predictions, targets) of the training (0) or
        validation (1) examples; predictions and targets for metrics beyond accuracy."""
        arrays = self.train if which == 0 else self.val
        if not arrays:
            return None
        n = D.n_examples(arrays, self.tm.labels)
        if not n:
            return None
        by_class = ("accuracy",) if "accuracy" in metrics and self.tm.classes else ()
        r = evaluate(self.tm, params, arrays, consts, by_class)
        preds = targets = None
        if any(k not in by_class for k in metrics):
            preds, targets = _predictions(self.tm, params, arrays, consts)
        return n, r["loss"], r["cost"], r["accuracy"], preds, targets


def _predictions(tm: Trainable, params: dict, arrays: dict, consts: dict) -> tuple:
    task = tm.task
    if task.prediction is None or task.target not in arrays:
        return None, None
    n = D.n_examples(arrays, tm.labels)
    preds, targets = [], []
    for i in range(0, n, EVAL_CHUNK):
        batch = D.take(arrays, np.arange(i, min(n, i + EVAL_CHUNK)), tm.labels)
        out = tm.compiled.forward(**batch, **params, **consts)
        p = out[task.prediction] if task.prediction in out else \
            batch.get(task.prediction, params.get(task.prediction))
        preds.append(np.asarray(p, dtype=np.float64))
        targets.append(batch[task.target])
    return np.concatenate(preds, axis=-1), np.concatenate(targets, axis=-1)


# -- the cluster -----------------------------------------------------------------------------------

def require_dask():
    """dask.distributed, or a GdslError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise GdslError("training on workers needs dask.distributed, which is not installed",
                        help="pip install 'gdsl[dask]' (or pip install 'dask[distributed]')"
                        ) from None
    return distributed


class Cluster:
    """A dask.distributed client: an embedded LocalCluster of ``workers`` processes (or
    threads, ``processes=False``) on the loopback interface, or the cluster whose scheduler
    is at ``scheduler``. A context manager: what it started, it stops."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 processes: bool = True, timeout: float | None = None):
        distributed = require_dask()
        self.cluster = None
        # dask's own log lines (a lost worker, a lost scheduler, with tracebacks) are not
        # printed: gdsl reports what happened, in one line each
        self.log_levels = {name: logging.getLogger(name).level for name in DASK_LOGGERS}
        for name in DASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        try:
            self._start(distributed, workers, scheduler, processes, timeout)
        except BaseException:
            self._restore_logs()
            raise

    def _restore_logs(self) -> None:
        for name, level in self.log_levels.items():
            logging.getLogger(name).setLevel(level)

    def _start(self, distributed, workers, scheduler, processes, timeout) -> None:
        if scheduler is not None:
            try:
                self.client = distributed.Client(scheduler, timeout=CONNECT if timeout is None
                                                 else timeout)
            except Exception as e:  # noqa: BLE001 (no scheduler there, a bad address: one message)
                raise GdslError(f"--scheduler {scheduler}: cannot reach a dask scheduler there "
                                f"({D._why(e)})", filename=scheduler,
                                help="start one with `dask scheduler` and workers with `dask "
                                "worker ADDRESS`; the address looks like tcp://host:8786"
                                ) from None
            self.where = f"the dask scheduler at {scheduler}"
        else:
            if workers is None or workers < 1:
                raise GdslValueError(f"--workers must be at least 1, got {workers}")
            kw = {"host": "127.0.0.1"} if processes else {}
            # no dashboard, and the scheduler's HTTP server (health checks) on the loopback
            # interface at a free port
            self.cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=processes,
                dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.CRITICAL, **kw)
            try:
                self.client = distributed.Client(self.cluster)
            except BaseException:
                self.cluster.close()
                raise
            self.where = (f"a local cluster of {workers} worker "
                          f"{'processes' if processes else 'threads'}")

    def workers(self) -> list[str]:
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            try:
                if self.cluster is not None:
                    self.cluster.close()
            finally:
                self._restore_logs()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _lost(e: BaseException) -> bool:
    """An error that says a worker (and what it held) is gone, not a failure of the model."""
    if isinstance(e, GdslError):
        return False
    from concurrent.futures import CancelledError
    names = {"CommClosedError", "KilledWorker", "FutureCancelledError", "FuturesCancelledError",
             "StreamClosedError"}
    return isinstance(e, (OSError, CancelledError, EOFError)) or type(e).__name__ in names


class _Placed:
    """Shards placed on a cluster's workers, one actor each; calls to them survive the loss of
    workers by placing the lost shards again (their sources are kept) and calling again."""

    def __init__(self, cluster: Cluster, spec: tuple, sources: list[Callable[[], tuple]],
                 wait: float, on_loss: Callable[[str], None]):
        self.cluster, self.spec, self.sources = cluster, spec, sources
        self.wait, self.on_loss = wait, on_loss
        self.stats: dict | None = None
        self.actors: list = [None] * len(sources)
        self.placed: list = [None] * len(sources)      # (the futures of the actors)
        self.where: list[str | None] = [None] * len(sources)
        self.place(range(len(sources)))

    def check_scheduler(self) -> None:
        """Raise a GdslError when the client has lost its scheduler (killed, its machine
        gone): the workers' shards went with it."""
        if self.cluster.client.status != "running":
            raise GdslError(f"lost the connection to {self.cluster.where}; training stopped, "
                            f"nothing was saved",
                            help="start the scheduler and workers again and run again")

    def _workers(self, avoid=()) -> list[str]:
        """The workers to place shards on (not those of ``avoid`` while others are there),
        waiting ``wait`` seconds for one when none is left."""
        try:
            workers = self.cluster.workers()
            if not workers:
                self.cluster.client.wait_for_workers(1, timeout=self.wait)
                workers = self.cluster.workers()
        except Exception as e:      # (a timeout, or the scheduler gone)
            if isinstance(e, GdslError):
                raise
            self.check_scheduler()
            raise GdslError(f"no worker is left in {self.cluster.where} (waited "
                            f"{self.wait:g} s); training stopped, nothing was saved",
                            help="start workers again (dask worker ADDRESS) and run again"
                            ) from None
        return [w for w in workers if w not in avoid] or workers

    def place(self, shards, avoid=()) -> None:
        """Place ``shards`` on the workers, fewest shards first; those whose worker is lost
        while they are placed, again on the workers left."""
        client = self.cluster.client
        todo = list(shards)
        for _attempt in range(RETRIES + 1):
            workers = self._workers(avoid)
            load = {w: sum(1 for p in self.where if p == w) for w in workers}
            pending, failed = [], []
            for k in todo:
                w = min(workers, key=lambda w: (load[w], workers.index(w)))
                load[w] += 1
                if self.placed[k] is not None:  # (or dask would make the lost actor again)
                    self.placed[k].cancel()
                try:
                    source = self.sources[k]()
                    if source[0] == "arrays":       # the data go to their worker once, directly
                        source = (source[0], client.scatter([source[1]], workers=[w],
                                                            hash=False, direct=True), None)
                    # (another worker if w is lost before the shard is made there)
                    pending.append((k, client.submit(Shard, self.spec, source, self.stats,
                                                     actor=True, workers=[w],
                                                     allow_other_workers=True, pure=False)))
                except Exception as e:   # (a lost worker, or a failure to report)
                    if not _lost(e):
                        raise
                    failed.append(k)
            for k, future in pending:
                try:
                    self.actors[k], self.placed[k] = future.result(), future
                    self.where[k] = (client.who_has([future]).get(future.key) or [None])[0]
                except Exception as e:   # (the same)
                    if not _lost(e):
                        raise
                    failed.append(k)
            if not failed:
                return
            self.check_scheduler()
            todo, avoid = failed, ()
        raise GdslError(f"training stopped: the workers of {self.cluster.where} kept failing "
                        f"({RETRIES} attempts); nothing was saved")

    def _start(self, k: int, method: str, args: tuple):
        """The actor's call under way, or None when the worker holding it is known lost (its
        actor then refuses calls)."""
        try:
            return getattr(self.actors[k], method)(*args)
        except RuntimeError:
            if self.placed[k].status in ("finished", "pending"):
                raise
            return None

    def call(self, method: str, args: dict) -> dict:
        """{shard: result} of ``method(*args[shard])`` on each shard of ``args``."""
        results, todo = {}, dict(args)
        for attempt in range(RETRIES + 1):
            futures = {k: self._start(k, method, a) for k, a in todo.items()}
            failed, gone = [], set()
            for k, f in futures.items():
                try:
                    if f is None:
                        raise OSError("the worker holding this shard was lost")
                    results[k] = f.result()
                except Exception as e:   # (sorted out below)
                    if not _lost(e):
                        raise
                    failed.append(k)
                    gone.add(self.where[k])
            if not failed:
                return results
            self.check_scheduler()
            if attempt == RETRIES:
                break
            self.on_loss(f"lost worker{'s' if len(gone) > 1 else ''} "
                         f"{', '.join(sorted(map(str, gone)))}: "
                         f"{len(failed)} shard{'s' if len(failed) > 1 else ''} placed again on "
                         f"the workers left, and their part of the step computed again")
            self.place(failed, avoid=gone)
            todo = {k: todo[k] for k in failed}
        raise GdslError(f"training stopped: the workers of {self.cluster.where} kept failing "
                        f"({RETRIES} attempts); nothing was saved")


class _Local:
    """The same calls on shards held in this process (streaming: one at a time)."""

    def __init__(self, tm: Trainable, sources: list[Callable[[], tuple]]):
        self.tm, self.sources = tm, sources
        self.stats: dict | None = None

    def shard(self, k: int) -> Shard:
        return Shard(self.tm, self.sources[k](), self.stats)

    def call(self, method: str, args: dict) -> dict:
        return {k: getattr(self.shard(k), method)(*a) for k, a in args.items()}


# -- training ----------------------------------------------------------------------------------------

def _split_by_shard(idx: np.ndarray, offsets: np.ndarray) -> dict:
    """Global example numbers -> {shard: its own numbers}, in the batch's order."""
    which = np.searchsorted(offsets, idx, side="right") - 1
    out = {}
    for k in np.unique(which):
        mine = idx[which == k]
        out[int(k)] = mine - offsets[k]
    return out


def _combine(parts: list[tuple[int, float, dict]], n: int) -> tuple[float, dict]:
    """The example-weighted mean of the shards' losses and gradients, in shard order."""
    J, grads = 0.0, {}
    for count, Jk, gk in parts:
        w = count / n
        J += w * Jk
        for name, g in gk.items():
            g = np.asarray(g)
            grads[name] = w * g if name not in grads else grads[name] + w * g
    return J, grads


def train(model, data=None, *, workers: int | None = None, scheduler: str | None = None,
          processes: bool = True, wait: float | None = None, val=None, params: dict | None = None,
          consts: dict | None = None, on_epoch: Callable[[dict], None] | None = None,
          on_step: Callable[[int, int], None] | None = None, progress: bool = False,
          params_file: str = "the params", params_path: str | None = None,
          label_column=None, label: str | None = None, metric: str | None = None,
          on_warning: Callable | None = None, target: str = "numpy",
          **settings) -> TrainResult:
    """Train as ``gdsl.tools.train.train`` does (same arguments, same result), data-parallel
    on dask.distributed and/or on sharded data.

    ``workers``: the size of an embedded LocalCluster (processes on 127.0.0.1, or threads
    with ``processes=False``); ``scheduler``: the address of an existing cluster instead.
    Neither: no cluster; ``data`` must then be sharded (a directory or glob of .npy/.npz/.csv
    files), streamed shard by shard. ``wait``: seconds to wait for a worker when none is
    left (default WAIT). ``on_step(epoch, step)`` is called after each step.

    With a cluster, each step's batch (the same as serial training's) is split across the
    shards and the trained params equal serial training's up to rounding (1e-12 relative
    in float64). Raises GdslError subclasses as ``train`` does, and a GdslValueError at the
    model's line for a model that splitting a batch would change (``check_shardable``).
    """
    if workers is not None and scheduler is not None:
        raise GdslValueError("give --workers N (a local cluster) or --scheduler ADDRESS (an "
                             "existing one), not both")
    tm = prepare(model, label=label, target=target)
    s = settings_for(tm, **settings, metric=metric)
    metrics = tm.metric_names(s.metric)
    if s.optimizer in SECOND_ORDER:
        raise GdslValueError(f"--optimizer {s.optimizer} runs on one process, over the whole "
                             f"training set: not on workers or shards",
                             help="use sgd, momentum or adam with workers or sharded data")
    if not tm.params and s.epochs > 0:
        raise GdslValueError("the model has no params to train", filename=tm.filename)
    const_values, set_dims = split_consts(tm, consts)
    if data is None:
        data = s.data
    paths = shard_paths(data)
    distributed = workers is not None or scheduler is not None
    if paths is None and not distributed:
        raise GdslValueError("nothing to distribute: give --workers N, --scheduler ADDRESS, "
                             "or sharded data (a directory or glob of .npy/.npz/.csv files)")
    if val is not None and shard_paths(val) is not None:
        raise GdslDataError(f"--val {val}: validation data come in one file (or are held out "
                            f"of the training shards with --val-fraction)", filename=str(val))
    params, class_names = loaded_params(tm, params)
    if distributed and workers is not None and workers < 1:
        raise GdslValueError(f"--workers must be at least 1, got {workers}")
    spec = model_spec(tm)
    labels = tm.labels
    wait = WAIT if wait is None else wait
    loss_events = []

    def on_loss(message):
        loss_events.append(message)
        warnings.warn(GdslClusterWarning(message), stacklevel=2)

    cluster = Cluster(workers, scheduler, processes) if distributed else None
    try:
        if paths is None:
            setup = _in_memory(tm, s, data, val, params, label_column, len(cluster.workers()),
                               class_names)
        else:
            setup = _from_files(tm, s, paths, val, params, label_column, spec, cluster, wait,
                                on_loss)
        stats = setup["stats"]
        if stats and params is not None:
            params = {k: v for k, v in params.items() if k not in stats_keys(stats)} or None
        samples = [a for a in (setup["sample"], setup["val_arrays"]) if a]
        dims = bind_dims(tm, samples, params, set_dims, s.hidden, params_file, params_path,
                         s.classes, s.dims)
        check_label_range(tm, setup["sample"], dims, "training data")
        if setup["val_arrays"]:
            check_label_range(tm, setup["val_arrays"], dims, "validation data")
        counts, val_counts, val_arrays = setup["counts"], setup["val_counts"], setup["val_arrays"]
        n = int(sum(counts))
        check_training_memory(tm, dims, s, min(n, max(s.batch_size, EVAL_CHUNK)))
        if params is None:
            params = tm.compiled.init_params(dims, s.seed)
        if distributed:
            check_shardable(tm, setup["sample"], params)
        pool = setup.get("pool") or _Placed(cluster, spec, setup["sources"], wait, on_loss)
        n_val = int(sum(val_counts)) + (D.n_examples(val_arrays, labels) if val_arrays else 0)
        result = TrainResult(params, [], s, dims, const_values, n, n_val, setup["source"],
                             stats, metrics, classes=setup.get("classes", {}))
        shards = range(len(counts))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

        def record(epoch, lr, seconds, running_cost=None):
            # as serial training records: after an epoch before the last, the mean cost of
            # its batches; after the last, every figure of the training set
            if running_cost is None or epoch == s.epochs:
                tr = _evaluate(pool, [k for k in shards if counts[k]], 0, params, const_values,
                               metrics, tm)
            else:
                tr = {"loss": None, "cost": running_cost, "accuracy": None}
            va = {}
            if val_arrays:
                va = evaluate(tm, params, val_arrays, const_values, metrics)
            elif any(val_counts):
                va = _evaluate(pool, [k for k in shards if val_counts[k]], 1, params,
                               const_values, metrics, tm)
            rec = epoch_record(tm, epoch, tr, va, metrics, lr, seconds)
            result.history.append(rec)
            if on_epoch is not None:
                on_epoch(rec)

        with model_warnings(tm.compiled, on_warning):
            if s.epochs == 0:
                record(0, s.lr, 0.0)
            elif cluster is not None:
                _descend(pool, s, params, const_values, counts, offsets, record, on_step,
                         progress, tm)
            else:
                _stream(pool, s, params, const_values, counts, record, on_step, progress, tm)
        result.workers_lost = list(loss_events)
        return result
    finally:
        if cluster is not None:
            cluster.close()


def _evaluate(pool, shards: list[int], which: int, params: dict, consts: dict, metrics,
              tm: Trainable) -> dict:
    parts = pool.call("evaluate", {k: (which, params, consts, tuple(metrics)) for k in shards})
    parts = [parts[k] for k in shards if parts[k] is not None]
    n = sum(p[0] for p in parts)
    out = {"loss": sum(p[0] / n * p[1] for p in parts),
           "cost": sum(p[0] / n * p[2] for p in parts), "accuracy": None}
    if "accuracy" in metrics and tm.classes:
        out["accuracy"] = sum(p[0] / n * p[3] for p in parts)
    others = [k for k in metrics if k != "accuracy" or not tm.classes]
    if others and parts and parts[0][4] is not None:
        out.update(metric_values(others, np.concatenate([p[4] for p in parts], axis=-1),
                                 np.concatenate([p[5] for p in parts], axis=-1),
                                 tm.task.threshold))
    return out


def _check_finite(J: float, epoch: int, step: int, lr: float, tm: Trainable) -> None:
    if not math.isfinite(J):
        raise GdslDivergedError(f"training diverged: the loss became {J} at epoch {epoch}, "
                                f"step {step} (lr {lr:g}); try a smaller --lr",
                                filename=tm.filename)


def _descend(pool, s, params, consts, counts, offsets, record, on_step, progress, tm) -> None:
    """Serial training's epochs and batches; each batch's gradient from its shards."""
    n = int(offsets[-1])
    shuffle = np.random.default_rng([s.seed, 1])
    opt = Optimizer(s.optimizer, params, s.momentum)
    steps = math.ceil(n / s.batch_size)
    bar = progress_bar(progress, s.epochs * steps)
    try:
        for epoch in range(1, s.epochs + 1):
            t0 = time.perf_counter()
            lr = s.lr * s.decay ** (epoch - 1)
            perm = shuffle.permutation(n)
            total = 0.0
            for step in range(steps):
                idx = perm[step * s.batch_size:(step + 1) * s.batch_size]
                mine = _split_by_shard(idx, offsets)
                got = pool.call("grad", {k: (i, params, consts) for k, i in mine.items()})
                J, grads = _combine([(len(mine[k]), *got[k]) for k in sorted(mine)], len(idx))
                _check_finite(J, epoch, step + 1, lr, tm)
                total += J * len(idx)
                opt.step(params, grads, lr)
                if bar is not None:
                    bar.update(1)
                if on_step is not None:
                    on_step(epoch, step + 1)
            record(epoch, lr, time.perf_counter() - t0, total / n)
    finally:
        if bar is not None:
            bar.close()


def _stream(pool: _Local, s, params, consts, counts, record, on_step, progress, tm) -> None:
    """Epochs over shards streamed one at a time: the shards in a shuffled order, each one's
    examples shuffled, batches cut from that sequence (a batch may span two shards)."""
    n = int(sum(counts))
    shuffle = np.random.default_rng([s.seed, 1])
    order_rng = np.random.default_rng([s.seed, 2])
    opt = Optimizer(s.optimizer, params, s.momentum)
    labels = tm.labels
    bar = progress_bar(progress, s.epochs * math.ceil(n / s.batch_size))
    B = s.batch_size
    try:
        for epoch in range(1, s.epochs + 1):
            t0 = time.perf_counter()
            lr = s.lr * s.decay ** (epoch - 1)
            order = order_rng.permutation(len(counts)) if len(counts) > 1 else [0]
            step, carry, total = 0, None, 0.0

            def descend(batch, epoch=epoch, lr=lr):
                nonlocal step, total
                step += 1
                J, grads = tm.compiled.value_and_grad(**batch, **params, **consts)
                J = float(np.sum(J))
                _check_finite(J, epoch, step, lr, tm)
                total += J * D.n_examples(batch, labels)
                opt.step(params, grads, lr)
                if bar is not None:
                    bar.update(1)
                if on_step is not None:
                    on_step(epoch, step)

            for k in order:
                if not counts[k]:
                    continue
                train = pool.shard(int(k)).train
                perm = shuffle.permutation(counts[k])
                at = 0
                if carry is not None:
                    need = B - D.n_examples(carry, labels)
                    carry = _concat(carry, D.take(train, perm[:need], labels), labels)
                    at = min(need, len(perm))
                    if D.n_examples(carry, labels) == B:
                        descend(carry)
                        carry = None
                while carry is None and at + B <= len(perm):
                    descend(D.take(train, perm[at:at + B], labels))
                    at += B
                if carry is None and at < len(perm):
                    carry = D.take(train, perm[at:], labels)
                del train
            if carry is not None:
                descend(carry)
            record(epoch, lr, time.perf_counter() - t0, total / n)
    finally:
        if bar is not None:
            bar.close()


# -- setting up: data held by the driver, or shards in files --------------------------------------------

def _in_memory(tm, s, data, val, params, label_column, workers: int,
               class_names: list[str] | None = None) -> dict:
    """Data the driver reads whole (a file, a built-in set, arrays), prepared as ``train``
    prepares them, cut into one block of consecutive examples per worker (scattered to the
    workers once)."""
    train_arrays, val_arrays, source, class_names = read_split(tm, s, data, val, label_column,
                                                               class_names)
    stats = standardization(tm, train_arrays, params, s.standardize, str(source) or "data")
    if stats:
        train_arrays = standardized(train_arrays, stats)
        val_arrays = standardized(val_arrays, stats) if val_arrays else val_arrays
    n = D.n_examples(train_arrays, tm.labels)
    k = max(1, min(n, workers))
    cuts = [round(n * i / k) for i in range(k + 1)]
    blocks = [D.take(train_arrays, np.arange(a, b), tm.labels) for a, b in itertools.pairwise(cuts)]
    return {"stats": stats, "sample": train_arrays, "val_arrays": val_arrays,
            "counts": [b - a for a, b in itertools.pairwise(cuts)], "val_counts": [0] * k,
            "sources": [lambda b=b: ("arrays", b, None) for b in blocks], "source": str(source),
            "classes": {tm.task.target: class_names} if class_names else {}}


def _from_files(tm, s, paths, val, params, label_column, spec, cluster, wait, on_loss):
    """Shards read where they are used: on the workers, or one at a time here. The driver
    holds the examples' numbers (the shuffle, the validation split), never the data."""
    S = len(paths)
    held = {"train": [None] * S, "val": [None] * S}

    def source(k):
        return lambda: ("file", paths[k], label_column, held["train"][k], held["val"][k])

    sources = [source(k) for k in range(S)]
    pool = _Placed(cluster, spec, sources, wait, on_loss) if cluster is not None else \
        _Local(tm, sources)
    summaries = pool.call("summary", {k: () for k in range(S)})
    sizes = [summaries[k]["n"] for k in range(S)]
    for k in range(S):
        if not sizes[k]:
            raise GdslDataError(f"data shard {paths[k]} holds no examples", filename=paths[k])
    N = sum(sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    val_arrays = None
    if val is not None:
        val_arrays = arrays_for(tm, val, str(val), label_column)
        train_idx = np.arange(N)
        val_idx = np.arange(0)
    elif s.val_fraction > 0:
        # D.split's choice over all the shards' examples, by number
        n_val = max(1, math.floor(N * s.val_fraction + 0.5))
        if n_val >= N:
            raise GdslDataError(f"only {N} examples: too few to hold out {s.val_fraction:g} "
                                f"for validation")
        perm = np.random.default_rng([s.seed, 7]).permutation(N)
        train_idx, val_idx = np.sort(perm[n_val:]), np.sort(perm[:n_val])
    else:
        train_idx, val_idx = np.arange(N), np.arange(0)
    counts, val_counts = [], []
    for k in range(S):
        lo, hi = offsets[k], offsets[k + 1]
        t = train_idx[(train_idx >= lo) & (train_idx < hi)] - lo
        v = val_idx[(val_idx >= lo) & (val_idx < hi)] - lo
        held["train"][k], held["val"][k] = t, (v if len(v) else None)
        counts.append(len(t))
        val_counts.append(len(v))
    if cluster is not None:
        pool.call("split", {k: (held["train"][k], held["val"][k]) for k in range(S)})
    samples = [summaries[k]["sample"] for k in range(S)]
    sample = samples[0]
    for other in samples[1:]:
        sample = _concat(sample, other, tm.labels)
    stats = {}
    if params is not None and params and all(f"{k}.mean" in params for k in _features(tm, sample)):
        stats = {k: (params[f"{k}.mean"], params[f"{k}.std"]) for k in _features(tm, sample)}
    elif s.standardize:
        n_train = sum(counts)
        sums = pool.call("moments", {k: (None,) for k in range(S) if counts[k]})
        mean = {f: sum(sums[k][f] for k in sorted(sums)) / n_train for f in sums[min(sums)]}
        dev = pool.call("moments", {k: (mean,) for k in range(S) if counts[k]})
        var = {f: sum(dev[k][f] for k in sorted(dev)) / n_train for f in mean}
        stats = {f: (mean[f], np.where(var[f] > 0, np.sqrt(var[f]), 1.0)) for f in mean}
    if stats:
        pool.stats = stats
        if cluster is not None:
            pool.call("standardize", {k: (stats,) for k in range(S)})
        sample = standardized(sample, stats)
        val_arrays = standardized(val_arrays, stats) if val_arrays else val_arrays
    return {"stats": stats, "sample": sample, "val_arrays": val_arrays, "counts": counts,
            "val_counts": val_counts, "pool": pool, "source": f"{len(paths)} shards"}


def _features(tm: Trainable, arrays: dict) -> list[str]:
    return [k for k in arrays if k not in tm.labels and k != tm.target and arrays[k].ndim >= 1]

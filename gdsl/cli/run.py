"""`gdsl run MODEL [--data FILE] [--epochs N] ... [--save PARAMS.npz] [--json]`: train a model;
with --workers N or --scheduler ADDRESS data-parallel on dask.distributed, and with --data DIR or
GLOB on data in shards (gdsl/tools/distributed.py)."""

from __future__ import annotations

import io
import json
import math
import sys

import numpy as np

from ..errors import GdslError, GdslUsageError
from ..files import check_output
from ..passes.resolve import METRICS
from ..tools import distributed
from ..tools.data import BUILTIN
from ..tools.train import OPTIMIZERS, SECOND_ORDER, load_params, prepare, save_params, train


def register(sub):
    p = sub.add_parser(
        "run", help="train a model's params by mini-batch gradient descent",
        description="Train MODEL's params by mini-batch gradient descent (shuffle every epoch, "
        "batches of --batch-size, step --lr) and report loss, cost and the metrics that fit "
        "the task (accuracy for classes; accuracy and AUC for binary targets; RMSE, MAE and R² "
        "for real-valued ones) on the training and validation data after every epoch. "
        "With --optimizer lbfgs or newton-cg, minimise the cost over the whole training set "
        "instead (scipy.optimize.minimize, the gradient and for Newton-CG Hessian-vector "
        "products), reporting iterations, the objective and the gradient norm at the end. "
        "Settings in the model's `train` line are the defaults; flags override them. With no "
        "--data: the model's `train data=` or the built-in digits set.")
    p.add_argument("model", help="the .gdsl model file")
    p.add_argument("--data", metavar="FILE|DIR|GLOB",
                   help="training data: .npz (arrays named like the model's inputs), .npy or .csv "
                   "(one example per row, label in the last column or a column named label), "
                   "or a built-in set: " + ", ".join(BUILTIN) + "; or data in shards, a "
                   "directory or a quoted glob of such files ('shards/*.npz'): read by the "
                   "workers with --workers/--scheduler, else streamed one shard at a time")
    p.add_argument("--val", metavar="FILE", help="validation data (same formats); "
                   "default: hold out --val-fraction of the training data")
    p.add_argument("--val-fraction", type=float, metavar="F",
                   help="fraction held out for validation when no --val is given (default 0.2)")
    p.add_argument("--label-column", metavar="COL", action="append",
                   help="the label column of a .csv/.npy file: a header name or an index "
                   "(default: a column named label/y/target/class, else the last); repeat it "
                   "for several targets (multi-output regression)")
    p.add_argument("--label", metavar="NAME",
                   help="the model's input that the label column(s) go to, when its loss does "
                   "not say (default: the input the loss takes as labels or targets)")
    p.add_argument("--metric", metavar="NAMES",
                   help="what to report per epoch, comma-separated: " + ", ".join(METRICS)
                   + " (default: the model's `metric` statement, or what its loss reports)")
    p.add_argument("--epochs", type=int, metavar="N", help="passes over the training data")
    p.add_argument("--batch-size", type=int, metavar="N", help="examples per gradient step")
    p.add_argument("--lr", type=float, metavar="ETA", help="learning rate (step size)")
    p.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="update rule (default sgd); lbfgs and newton-cg minimise the cost over "
                   "the whole training set (scipy.optimize.minimize, needs scipy), with at most "
                   "--epochs iterations (default: until converged, at most 1000) and no --lr "
                   "or --batch-size")
    p.add_argument("--momentum", type=float, metavar="MU",
                   help="momentum (and adam's beta1), default 0.9")
    p.add_argument("--decay", type=float, metavar="D",
                   help="learning-rate decay per epoch: lr at epoch e is lr * D**(e-1)")
    p.add_argument("--seed", type=int, help="seed for initialisation, split and shuffling")
    p.add_argument("--standardize", action="store_true", default=None,
                   help="scale each feature to mean 0 and standard deviation 1 (statistics of "
                   "the training split, saved with --save and applied again with --load)")
    p.add_argument("--classes", type=int, metavar="C",
                   help="the number of classes, when neither the model nor one-hot labels give "
                   "it (default: the largest label in all the data + 1)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="set a const (--set lam=0.1) or a dimension's size (--set m=64); "
                   "repeatable")
    p.add_argument("--save", metavar="PARAMS.npz", help="write the trained params here (atomically)")
    p.add_argument("--load", metavar="PARAMS.npz",
                   help="start from these params; with --epochs 0 only evaluate them")
    p.add_argument("--plot", metavar="CURVES.png",
                   help="draw loss and accuracy per epoch (needs matplotlib: pip install gdsl[plot])")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per epoch on standard output")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the final summary")
    cluster = p.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=int, metavar="N",
                         help="train data-parallel on N local worker processes (a dask "
                         "LocalCluster on 127.0.0.1): each batch split across them, the same "
                         "params as without (pip install 'gdsl[dask]')")
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="train data-parallel on the workers of an existing dask cluster, "
                         "e.g. tcp://host:8786 (started with `dask scheduler` and `dask worker "
                         "ADDRESS`)")
    p.add_argument("--target", choices=("numpy", "numba"), default="numpy",
                   help="compile the model for numba: one fused step (pip install gdsl[numba])")
    return p


def parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip() or not value.strip():
            raise GdslUsageError(f"--set {item}: expected NAME=VALUE, e.g. --set lam=0.1")
        out[name.strip()] = value.strip()
    return out


def _pct(a):
    return "-" if a is None else f"{100 * a:.2f}%"


def _num(v):
    return "-" if v is None else f"{v:.4f}" if abs(v) < 1e4 else f"{v:.3e}"


SHORT = {"accuracy": "acc"}


def _metrics(r: dict, which: str, metrics) -> str:
    """` acc 95.50%` or ` rmse 54.2 mae 43.1 r2 0.4512`: the metrics of one split."""
    out = ""
    for k in metrics:
        v = r.get(f"{which}_{k}")
        out += f" {SHORT.get(k, k)} " + (_pct(v) if k == "accuracy" else _num(v))
    return out


def format_epoch(r: dict, epochs: int, metrics=("accuracy",), unit: str = "epoch") -> str:
    w = len(str(epochs))
    if r["train_loss"] is None:     # (an epoch before the last: its steps' mean cost only)
        line = f"{unit} {r['epoch']:>{w}}/{epochs}  train cost {_num(r['train_cost'])} (its batches)"
    else:
        line = (f"{unit} {r['epoch']:>{w}}/{epochs}  train loss {_num(r['train_loss'])} "
                f"cost {_num(r['train_cost'])}{_metrics(r, 'train', metrics)}")
    if r["val_cost"] is not None:
        line += (f"  |  val loss {_num(r['val_loss'])} cost {_num(r['val_cost'])}"
                 f"{_metrics(r, 'val', metrics)}")
    if r.get("grad_norm") is not None:      # (lbfgs, newton-cg)
        line += f"  |  grad norm {r['grad_norm']:.2e}"
    return line


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def plot_curves(path: str, history: list[dict], title: str, metrics=("accuracy",)) -> None:
    """Loss and cost per epoch, and each metric in a panel of its own, training and
    validation, written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import write_atomic
    ep = [r["epoch"] for r in history]
    metrics = tuple(metrics)
    fig, grid = plt.subplots(1, 1 + len(metrics), figsize=(5 * (1 + len(metrics)), 4),
                             squeeze=False)
    ax1, *axes = grid[0]
    ax1.plot(ep, [r["train_loss"] for r in history], label="train loss")
    ax1.plot(ep, [r["train_cost"] for r in history], "--", label="train cost")
    if history and history[0]["val_loss"] is not None:
        ax1.plot(ep, [r["val_loss"] for r in history], label="val loss")
        ax1.plot(ep, [r["val_cost"] for r in history], "--", label="val cost")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss / cost")
    ax1.legend()
    for k, ax in zip(metrics, axes):
        for which in ("train", "val"):
            values = [r.get(f"{which}_{k}") for r in history]
            if history and values[0] is not None:
                ax.plot(ep, [np.nan if v is None else v for v in values], label=f"{which} {k}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        ax.set_xlabel("epoch")
        ax.set_ylabel(k)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=path.rsplit(".", 1)[-1].lower())
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def main(args) -> int:
    try:
        return _main(args)
    except GdslError as e:
        if e.filename is None:     # say which file the message is about
            from ..errors import GdslDataError
            e.filename = (args.data or "data") if isinstance(e, GdslDataError) else args.model
        raise


def check_outputs(args) -> None:
    """--save and --plot, before anything is trained: writable, in a format gdsl writes, and
    none of the input files (--save may name the --load file: training resumes and updates it)."""
    inputs = [args.model, args.data, args.val]
    if args.save:
        check_output(args.save, "--save", inputs)
        if not args.save.lower().endswith(".npz"):
            raise GdslError(f"--save {args.save}: params are saved as .npz; name a file ending "
                            "in .npz", filename=args.save)
    if args.plot:
        check_output(args.plot, "--plot", [*inputs, args.load, args.save])
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise GdslError("--plot needs matplotlib, which is not installed; install it with "
                            "`pip install 'gdsl[plot]'` (or pip install matplotlib)") from None
        kinds = Figure().canvas.get_supported_filetypes()
        suffix = args.plot.rsplit(".", 1)[-1].lower() if "." in args.plot else ""
        if suffix not in kinds:
            raise GdslError(f"--plot {args.plot}: cannot draw to `.{suffix}`; use one of "
                            + ", ".join("." + k for k in sorted(kinds)), filename=args.plot)


def _main(args) -> int:
    check_outputs(args)
    parallel = args.workers is not None or args.scheduler is not None
    if args.workers is not None and args.workers < 1:
        raise GdslUsageError(f"--workers {args.workers}: give 1 or more worker processes")
    if parallel:
        distributed.require_dask()
    if args.data is not None and distributed.shard_paths(args.data) is not None:
        parallel = True     # (shards: read by the workers, or streamed without)
    sets = parse_sets(args.set)
    tm = prepare(args.model, label=args.label, target=args.target)
    for w in tm.compiled.model.warnings:
        print(w.attach(tm.compiled.model.source, args.model).render(), file=sys.stderr)
    params = load_params(args.load) if args.load else None
    progress = sys.stderr.isatty() and not args.json

    def on_epoch(r):
        if args.json:
            print(json.dumps({k: _json_value(v) for k, v in r.items()}), flush=True)
        elif not args.quiet:
            line = format_epoch(r, settings.epochs, metrics, unit)
            if progress:
                from tqdm import tqdm
                tqdm.write(line)
            else:
                print(line, flush=True)

    def on_warning(w):      # a NumPy warning in the model's code, at the model's line
        w.attach(tm.compiled.model.source, args.model)
        if progress:
            from tqdm import tqdm
            tqdm.write(w.render(), file=sys.stderr)
        else:
            print(w.render(), file=sys.stderr, flush=True)

    from ..tools.train import settings_for
    settings = settings_for(tm, epochs=args.epochs, optimizer=args.optimizer, metric=args.metric)
    metrics = tm.metric_names(settings.metric)
    unit = "iteration" if settings.optimizer in SECOND_ORDER else "epoch"
    how = {"workers": args.workers, "scheduler": args.scheduler} if parallel else {}
    result = (distributed.train if parallel else train)(
                   tm, args.data, val=args.val, params=params, consts=sets, on_epoch=on_epoch,
                   progress=progress, params_file=f"the params in {args.load}", params_path=args.load,
                   lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                   optimizer=args.optimizer, seed=args.seed, momentum=args.momentum,
                   decay=args.decay, val_fraction=args.val_fraction, classes=args.classes,
                   standardize=args.standardize, label_column=args.label_column,
                   label=args.label, metric=args.metric, on_warning=on_warning, **how)
    if args.save:
        save_params(args.save, result.params, result.standardization, result.state,
                    result.classes)
    if args.plot:
        plot_curves(args.plot, result.history, f"{args.model} on {result.data_source}",
                    result.metrics)
    f = result.final
    solver = result.solver      # lbfgs, newton-cg: iterations, objective, gradient norm
    if args.json and solver:
        print(json.dumps({"optimizer": result.settings.optimizer,
                          **{k: _json_value(v) for k, v in solver.items()}}), flush=True)
    if not args.json:
        s = result.settings
        out = sys.stdout
        where = (f", {args.workers} workers" if args.workers else
                 f", the workers of {args.scheduler}" if args.scheduler else "")
        what = "evaluated" if s.epochs == 0 else (
            f"trained by {s.optimizer} (full batch: {solver['iterations']} iterations, "
            f"{solver['evaluations']} evaluations of J, seed {s.seed})" if solver else
            f"trained {s.epochs} epoch{'s' * (s.epochs != 1)} ({s.optimizer}, lr {s.lr:g}, "
            f"batch {s.batch_size}, "
            f"seed {s.seed}{where})")
        print(f"{args.model}: {what} on {result.data_source or 'data'}: {result.n_train} "
              f"training / {result.n_val} validation examples", file=out)
        print(f"final: train{_metrics(f, 'train', metrics)} cost {_num(f['train_cost'])}"
              + (f"; val{_metrics(f, 'val', metrics)} loss {_num(f['val_loss'])} "
                 f"cost {_num(f['val_cost'])}" if f["val_cost"] is not None else ""), file=out)
        if solver:
            print(f"objective J {solver['objective']!r}, gradient norm {solver['grad_norm']:.3e}"
                  f"{'' if solver['converged'] else ' (not converged)'}: {solver['message']}",
                  file=out)
        if args.save:
            print(f"saved params to {args.save}", file=out)
        if args.plot:
            print(f"wrote {args.plot}", file=out)
    return 0

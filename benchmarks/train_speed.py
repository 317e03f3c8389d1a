#!/usr/bin/env python3
"""Training throughput: `gdsl run models/mlp2.gdsl` end to end, as a user runs it, next to
scikit-learn's MLPClassifier and a plain PyTorch loop with the same model, data, optimiser,
batch size and epochs, each in a process of its own (imports included).

    python3 benchmarks/train_speed.py               # 5 runs each, one thread and default threads;
                                                    # writes benchmarks/results-train.md and .json
    python3 benchmarks/train_speed.py --runs 3 --no-write
    python3 benchmarks/train_speed.py --profile     # where gdsl's training loop spends its time
    python3 benchmarks/train_speed.py --gdsl-path /tmp/tree   # another gdsl tree (a git archive)

The settings come from the model's `train` line and its `lam` (models/mlp2.gdsl: 100 hidden
ReLU units, softmax + cross-entropy, L2 on both weights, SGD with momentum 0.9, lr 0.05,
batch 50, 30 epochs). gdsl's own split of its built-in digits (1438 training / 359
validation examples, standardised pixels) and gdsl's initial params (seed 0) are written to
a temporary .npz that the scikit-learn and PyTorch processes read, so all three start from
the same weights and train on the same examples; each shuffles with its own generator.

Per implementation: the wall time of the whole process (the interpreter's start, imports,
data, training, exit), the training loop alone (timed inside the process), the final
validation accuracy; medians (and bests) of --runs, the implementations interleaved round by
round, after one warm-up round; `uptime` at the start and the end (the machine is shared). "1 thread": `taskset -c 0` and OMP/OPENBLAS/MKL_NUM_THREADS=1; "default":
neither. For gdsl the loop is timed in a separate process that calls gdsl.train (what
`gdsl run` runs) with `value_and_grad`, the per-epoch metrics, batching and the optimiser
step wrapped in timers, which gives the issue's figure: how much the loop adds to the sum of
its value_and_grad calls. See benchmarks/README.md, "Training throughput".
"""

from __future__ import annotations

import json
import os
import sys
import time

# -- children: each prints one JSON line --------------------------------------------------------


def child_sklearn(data: str, s: dict) -> dict:
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    with np.load(data) as z:
        d = {k: z[k] for k in z.files}
    init = [(d["W1"].T, d["b1"][:, 0]), (d["W2"].T, d["b2"][:, 0])]

    class FromGdslInit(MLPClassifier):
        """MLPClassifier starting from the given weights (its own init is Glorot uniform)."""

        def _init_coef(self, fan_in, fan_out, dtype):
            W, b = init[self._layer]
            self._layer += 1
            assert W.shape == (fan_in, fan_out)
            return W.astype(dtype, copy=True), b.astype(dtype, copy=True)

    # sklearn's batch loss: mean xent + alpha / (2 n_batch) * sum ||W||^2, gradient
    # (X^T delta + alpha W) / n_batch; gdsl's: mean xent + lam * sum ||W||^2, gradient
    # ... + 2 lam W. Equal when alpha = 2 * lam * n_batch.
    clf = FromGdslInit(hidden_layer_sizes=(s["hidden"],), activation="relu", solver="sgd",
                       alpha=2 * s["lam"] * s["batch_size"], batch_size=s["batch_size"],
                       learning_rate="constant", learning_rate_init=s["lr"],
                       momentum=s["momentum"], nesterovs_momentum=False, max_iter=s["epochs"],
                       shuffle=True, random_state=s["seed"], tol=0.0,
                       n_iter_no_change=s["epochs"] + 1, early_stopping=False)
    clf._layer = 0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(d["X_train"], d["y_train"])
    loop = time.perf_counter() - t0
    assert clf._layer == 2 and clf.n_iter_ == s["epochs"], "not gdsl's init, or stopped early"
    return {"loop": loop, "val_accuracy": float(clf.score(d["X_val"], d["y_val"]))}


def child_torch(data: str, s: dict) -> dict:
    import numpy as np
    import torch

    with np.load(data) as z:
        d = {k: torch.from_numpy(z[k]) for k in z.files}
    X, y, Xv, yv = d["X_train"], d["y_train"], d["X_val"], d["y_val"]
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], s["hidden"]), torch.nn.ReLU(),
                                torch.nn.Linear(s["hidden"], int(d["W2"].shape[0]))).double()
    with torch.no_grad():
        for layer, w, b in ((model[0], "W1", "b1"), (model[2], "W2", "b2")):
            layer.weight.copy_(d[w])
            layer.bias.copy_(d[b][:, 0])
    weights = [model[0].weight, model[2].weight]
    # torch's momentum v = mu v + g; p -= lr v is gdsl's v = mu v - lr g; p += v at a fixed lr
    opt = torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"])
    gen = torch.Generator().manual_seed(s["seed"])
    lam, n, bs = s["lam"], X.shape[0], s["batch_size"]

    def metrics(Xs, ys):    # loss, cost, accuracy on a whole set
        with torch.no_grad():
            scores = model(Xs)
            loss = torch.nn.functional.cross_entropy(scores, ys)
            cost = loss + lam * sum((w * w).sum() for w in weights)
            return float(loss), float(cost), float((scores.argmax(1) == ys).double().mean())

    # what gdsl reports: after every epoch the mean of its batches' costs and the validation
    # set's loss, cost and accuracy; after the last, the training set's too
    t0 = time.perf_counter()
    for _ in range(s["epochs"]):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
            loss = loss + lam * sum((w * w).sum() for w in weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        train_cost, val_m = total / n, metrics(Xv, yv)
    train_m = metrics(X, y)
    loop = time.perf_counter() - t0
    return {"loop": loop, "val_accuracy": val_m[2], "train_accuracy": train_m[2],
            "last_epoch_batch_cost": train_cost, "threads": torch.get_num_threads()}


def child_gdsl_loop(model_path: str, profile: bool) -> dict:
    """gdsl.train as `gdsl run` calls it, with the parts of its loop timed (or profiled)."""
    import gdsl.tools.data as D
    import gdsl.tools.train as T

    tm = T.prepare(model_path)
    timers = {"value_and_grad": [0.0, 0], "metrics": [0.0, 0], "batching": [0.0, 0],
              "optimiser": [0.0, 0]}
    emitted = [0.0, 0]       # the emitted function alone, inside value_and_grad
    stamps = {}

    inside = []       # the metrics take batches too: those are the metrics' time

    def timed(name, fn):
        def wrapper(*a, **kw):
            if inside or "start" not in stamps:     # only inside the loop
                return fn(*a, **kw)
            if name == "metrics":
                inside.append(name)
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timers[name][0] += time.perf_counter() - t
                timers[name][1] += 1
                if name == "metrics":
                    inside.pop()
        return wrapper

    class StampedOptimizer(T.Optimizer):
        """Made just before the first epoch: the loop starts here."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            stamps["start"] = time.perf_counter()

    def timed_emitted(fn):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                emitted[0] += time.perf_counter() - t
                emitted[1] += 1
        return wrapper

    if not profile:
        tm.compiled.value_and_grad = timed("value_and_grad", tm.compiled.value_and_grad)
        # CompiledModel.value_and_grad checks the arrays, then calls the emitted module's
        tm.compiled.module.value_and_grad = timed_emitted(tm.compiled.module.value_and_grad)
        T.evaluate = timed("metrics", T.evaluate)
        D.take = timed("batching", D.take)
        if hasattr(D, "examples"):      # each batch a slice of the epoch's shuffled examples
            D.examples = timed("batching", D.examples)
        StampedOptimizer.step = timed("optimiser", T.Optimizer.step)
    T.Optimizer = StampedOptimizer
    history = []

    def on_epoch(r):
        stamps["end"] = time.perf_counter()
        history.append(r)

    if profile:
        import cProfile
        import io
        import pstats
        prof = cProfile.Profile()
        prof.enable()
        T.train(tm, on_epoch=on_epoch)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
        return {"profile": out.getvalue()}
    T.train(tm, on_epoch=on_epoch)
    return {"loop": stamps["end"] - stamps["start"], "parts": timers, "emitted": emitted,
            "val_accuracy": history[-1]["val_accuracy"], "gdsl": D.__file__}


def child_main(argv: list[str]) -> int:
    kind = argv[0]
    if kind == "sklearn":
        out = child_sklearn(argv[1], json.loads(argv[2]))
    elif kind == "torch":
        out = child_torch(argv[1], json.loads(argv[2]))
    else:
        out = child_gdsl_loop(argv[1], kind == "gdsl-profile")
    print("RESULT " + json.dumps(out), flush=True)
    return 0


if len(sys.argv) > 1 and sys.argv[1] == "--child":     # keep a child's imports its own
    sys.exit(child_main(sys.argv[2:]))


# -- the parent ---------------------------------------------------------------------------------

import argparse
import platform
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
IMPLS = ["gdsl", "sklearn", "torch"]
NAMES = {"gdsl": "gdsl run (CLI)", "sklearn": "scikit-learn MLPClassifier",
         "torch": "PyTorch loop"}


def environment(tree: Path, threads: int | None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    for k in ("GDSL_DEBUG", "PYTHONSTARTUP"):
        env.pop(k, None)
    for k in THREAD_VARS:
        env.pop(k, None)
    if threads is not None:
        env.update({k: str(threads) for k in THREAD_VARS})
    return env


def command(argv: list[str], threads: int | None) -> list[str]:
    cmd = [sys.executable, *argv]
    return ["taskset", "-c", ",".join(map(str, range(threads))), *cmd] if threads else cmd


def run_process(argv: list[str], tree: Path, threads: int | None, timeout: float = 600):
    """(wall seconds, stdout) of one process run in the gdsl tree's directory (first on
    sys.path for `-m` and scripts run from there)."""
    t0 = time.perf_counter()
    p = subprocess.run(command(argv, threads), env=environment(tree, threads), cwd=tree,
                       capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return wall, p.stdout


def child_result(stdout: str) -> dict:
    line = next(x for x in stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def prepare(model: str, tree: Path, out: Path) -> dict:
    """The settings, and gdsl's split and initial params written to ``out`` (in a child
    process, so that the gdsl of ``tree`` is the one asked)."""
    script = r"""
import json, sys
import numpy as np
import gdsl, gdsl.tools.data as D, gdsl.tools.train as T
tm = T.prepare(sys.argv[1])
s = T.settings_for(tm)
arrays = T.arrays_for(tm, s.data)
tr, va = D.split(arrays, tm.labels, s.val_fraction, s.seed)
zero = T.train(tm, epochs=0)
init = zero.params
x, y = [k for k in tm.inputs if k not in tm.labels][0], tm.label
np.savez(sys.argv[2], X_train=tr[x].T.copy(), y_train=tr[y], X_val=va[x].T.copy(),
         y_val=va[y], **init)
print(json.dumps({"lr": s.lr, "epochs": s.epochs, "batch_size": s.batch_size,
                  "optimizer": s.optimizer, "momentum": s.momentum, "decay": s.decay,
                  "seed": s.seed, "hidden": int(zero.dims["m"]), "lam": tm.consts["lam"],
                  "data": s.data, "n_train": int(tr[x].shape[1]), "n_val": int(va[x].shape[1]),
                  "gdsl": gdsl.__file__}))
"""
    _, stdout = run_process(["-c", script, model, str(out)], tree, None)
    s = json.loads(stdout.strip().splitlines()[-1])
    if s["optimizer"] != "momentum" or s["decay"] != 1:
        raise SystemExit(f"{model}: the peers here run SGD with momentum at a fixed rate; the "
                         f"model's train line asks for {s['optimizer']}, decay {s['decay']}")
    return s


def run_gdsl_cli(model: str, tree: Path, threads, s: dict) -> dict:
    wall, stdout = run_process(["-m", "gdsl", "run", model], tree, threads)
    m = re.search(r"(\d+) training / (\d+) validation", stdout)
    if not m or (int(m[1]), int(m[2])) != (s["n_train"], s["n_val"]):
        raise RuntimeError(f"gdsl run trained on another split than the peers:\n{stdout}")
    acc = re.search(r"final: .*val acc ([\d.]+)%", stdout)
    return {"wall": wall, "val_accuracy": float(acc[1]) / 100}


def run_peer(kind: str, data: Path, tree: Path, threads, s: dict) -> dict:
    wall, stdout = run_process([str(Path(__file__).resolve()), "--child", kind, str(data),
                                json.dumps(s)], tree, threads)
    return {"wall": wall, **child_result(stdout)}


def run_gdsl_loop(model: str, tree: Path, threads) -> dict:
    _, stdout = run_process([str(Path(__file__).resolve()), "--child", "gdsl-loop", model],
                            tree, threads)
    return child_result(stdout)


def installed(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(module)
    except PackageNotFoundError:
        return None


def machine(tree: Path, label: str | None) -> dict:
    info = {"date": time.strftime("%Y-%m-%d %H:%M"), "python": platform.python_version(),
            "platform": platform.platform(), "nproc": os.cpu_count(),
            "loadavg_start": os.getloadavg(), "uptime_start": uptime()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        info["cpu"] = fields.get("Model name", "?").strip()
        info["cores"] = (f"{fields.get('Socket(s)', '?').strip()} socket(s) x "
                         f"{fields.get('Core(s) per socket', '?').strip()} cores x "
                         f"{fields.get('Thread(s) per core', '?').strip()} threads")
        info["hypervisor"] = fields.get("Hypervisor vendor", "").strip() or None
    except OSError:
        info["cpu"] = platform.processor()
    for mod in ("numpy", "scikit-learn", "torch"):
        info[mod] = installed(mod)
    head = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
                          capture_output=True, text=True, check=False).stdout.strip()
    info["argv"] = sys.argv[1:]
    if label:
        info["gdsl"] = label
    elif tree != ROOT:
        info["gdsl"] = f"the tree {tree} (this repository is at {head[:60]})"
    else:
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "gdsl"],
                               capture_output=True, text=True, check=False).stdout.strip()
        info["gdsl"] = head[:60] + (" (+ uncommitted changes in gdsl/)" if dirty else "")
    return info


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def mode(threads: int | None) -> str:
    return "default" if threads is None else str(threads)


def fmt(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.2f}"


def report(results: dict, loops: dict, s: dict, info: dict, args) -> str:
    out: list[str] = []

    def line(*parts: str) -> None:
        out.append("".join(parts))

    def load(xs) -> str:
        return " ".join(f"{x:.2f}" for x in xs)

    line(f"Run: `{' '.join(['python3 benchmarks/train_speed.py', *info['argv']])}` on ",
         f"{info['date']}, {args.runs} runs each after a warm-up round; gdsl: {info['gdsl']}.")
    line()
    line("#### Machine")
    line()
    guest = f"; a {info['hypervisor']} guest" if info.get("hypervisor") else ""
    line(f"- CPU: {info.get('cpu')} ({info.get('cores')}; nproc {info['nproc']}{guest})")
    line(f"- Python {info['python']}, NumPy {info['numpy']}, scikit-learn {info['scikit-learn']}, ",
         f"PyTorch {info['torch']}; {info['platform']}")
    line(f"- Load average at start / end: {load(info['loadavg_start'])} / ",
         f"{load(info['loadavg_end'])}")
    line(f"- `uptime` at start: `{info['uptime_start']}`; at end: `{info['uptime_end']}`")
    line()
    alpha, r = 2 * s["lam"] * s["batch_size"], s["n_train"] % s["batch_size"]
    last = (f"; its last batch of each epoch ({r} examples) gets lam = alpha / (2 * {r}) = "
            f"{alpha / (2 * r):.2g} instead" if r else "")
    line("#### Settings")
    line()
    line(f"`{args.model}`: one hidden layer of {s['hidden']} ReLU units, softmax + cross-entropy, ",
         f"L2 lam = {s['lam']:g} on both weights; SGD with momentum {s['momentum']:g}, ",
         f"lr {s['lr']:g}, batch {s['batch_size']}, {s['epochs']} epochs, float64; the digits, ",
         f"{s['n_train']} training / {s['n_val']} validation examples (gdsl's split, seed ",
         f"{s['seed']}), all three from gdsl's initial params. scikit-learn: alpha = 2 lam batch ",
         f"= {alpha:g} (its penalty is alpha / (2 n_batch) ||W||^2 per ",
         "batch), nesterovs_momentum=False, tol=0 and n_iter_no_change > epochs (no early stop)",
         last, ".")
    line()
    for threads in args.thread_modes:
        tname = "1 thread (taskset -c 0, *_NUM_THREADS=1)" if threads else "default threads"
        rs, gl = results[mode(threads)], loops[mode(threads)]
        line(f"#### {tname}: seconds, median (best) of {args.runs}")
        line()
        line("| implementation | process wall | training loop | val accuracy | wall / gdsl's | ",
             "wall, every run |")
        line("|---|---|---|---|---|---|")
        med = statistics.median
        gw = med(r["wall"] for r in rs["gdsl"]) if rs.get("gdsl") else None
        for impl in IMPLS:
            if not rs.get(impl):
                continue
            walls = [r["wall"] for r in rs[impl]]
            times = [r["loop"] for r in (gl if impl == "gdsl" else rs[impl])]
            accs = sorted({round(100 * r["val_accuracy"], 2) for r in rs[impl]})
            ratio = f"{med(walls) / gw:.2f}x" if gw else "-"
            line(f"| {NAMES[impl]} | **{fmt(med(walls))}** ({fmt(min(walls))}) | ",
                 f"{fmt(med(times))} ({fmt(min(times))})", "*" if impl == "gdsl" else "",
                 f" | {' / '.join(f'{a:.2f}%' for a in accs)} | ",
                 f"{ratio} | {' '.join(fmt(w) for w in walls)} |")
        line()
        line("\\* gdsl's loop is timed inside `gdsl.train` (what `gdsl run` calls) in a process of ",
             "its own. gdsl and the PyTorch loop compute, after every epoch, the mean of the ",
             "epoch's batch costs and the validation set's loss, cost and accuracy, and after the ",
             "last the training set's; scikit-learn keeps only its running training loss.")
        line()
        best = min(gl, key=lambda r: r["loop"])
        parts = best["parts"]
        vg = parts["value_and_grad"][0]
        line(f"gdsl's training loop, {tname}, the fastest of {args.runs} runs:")
        line()
        line("| part | calls | ms | % of value_and_grad |")
        line("|---|---|---|---|")
        for k in ("value_and_grad", "metrics", "batching", "optimiser"):
            t, c = parts[k]
            line(f"| {k} | {c} | {1e3 * t:.1f} | {100 * t / vg:.1f}% |")
            if k == "value_and_grad" and best.get("emitted"):
                t, c = best["emitted"]
                line(f"| &nbsp;&nbsp;of which the emitted function | {c} | {1e3 * t:.1f} | ",
                     f"{100 * t / vg:.1f}% |")
        rest = best["loop"] - sum(t for t, _ in parts.values())
        line("| rest (shuffle, finiteness check, running cost, the loop itself) | | ",
             f"{1e3 * rest:.1f} | ",
             f"{100 * rest / vg:.1f}% |")
        over = best["loop"] - vg
        line(f"| **loop - value_and_grad** | | **{1e3 * over:.1f}** | **{100 * over / vg:.1f}%** |")
        bare = over - parts["metrics"][0]
        line(f"| the same without the metrics | | {1e3 * bare:.1f} | {100 * bare / vg:.1f}% |")
        line(f"| loop | | {1e3 * best['loop']:.1f} | |")
        line()
        each = [100 * (r["loop"] - r["parts"]["value_and_grad"][0])
                / r["parts"]["value_and_grad"][0] for r in gl]
        line("Loop - value_and_grad over every run: ", ", ".join(f"{x:.1f}%" for x in each), ".")
        line()
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/mlp2.gdsl")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", choices=["1", "default", "both"], default="both")
    ap.add_argument("--skip", nargs="*", default=[], choices=["sklearn", "torch"])
    ap.add_argument("--gdsl-path", type=Path, default=ROOT, help="the gdsl tree to time")
    ap.add_argument("--label", help="what the gdsl tree is, for the report (e.g. a commit)")
    ap.add_argument("--profile", action="store_true",
                    help="profile gdsl's training loop (cProfile, one thread) and stop")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    tree = args.gdsl_path.resolve()
    args.thread_modes = {"1": [1], "default": [None], "both": [1, None]}[args.threads]

    if args.profile:
        _, stdout = run_process([str(Path(__file__).resolve()), "--child", "gdsl-profile",
                                 args.model], tree, 1)
        print(child_result(stdout)["profile"])
        return 0

    impls = [i for i in IMPLS if i not in args.skip
             and (i == "gdsl" or installed({"sklearn": "scikit-learn"}.get(i, i)))]
    info = machine(tree, args.label)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "digits-mlp2.npz"
        s = prepare(args.model, tree, data)
        print(f"settings: {s}", file=sys.stderr)
        results = {mode(t): {i: [] for i in impls} for t in args.thread_modes}
        loops = {mode(t): [] for t in args.thread_modes}
        for threads in args.thread_modes:
            for rnd in range(args.runs + 1):       # round 0 warms caches and is dropped
                order = impls[rnd % len(impls):] + impls[:rnd % len(impls)]
                for impl in order:
                    r = (run_gdsl_cli(args.model, tree, threads, s) if impl == "gdsl"
                         else run_peer(impl, data, tree, threads, s))
                    if rnd:
                        results[mode(threads)][impl].append(r)
                    print(f"threads {threads or 'default'} round {rnd} {impl}: wall "
                          f"{r['wall']:.3f} s, val acc {r['val_accuracy']:.4f}", file=sys.stderr)
                r = run_gdsl_loop(args.model, tree, threads)
                if rnd:
                    loops[mode(threads)].append(r)
    info["loadavg_end"] = os.getloadavg()
    info["uptime_end"] = uptime()
    text = report(results, loops, s, info, args)
    print(text)
    if not args.no_write:
        (HERE / "results-train.md").write_text("# Training throughput (benchmarks/train_speed.py)"
                                               "\n\n" + text + "\n", encoding="utf-8")
        summary = {"machine": info, "settings": s, "results": results, "gdsl_loop": loops,
                   "medians": {t: {i: statistics.median(r["wall"] for r in rs)
                                   for i, rs in v.items() if rs} for t, v in results.items()}}
        (HERE / "results-train.json").write_text(json.dumps(summary, indent=1) + "\n",
                                                 encoding="utf-8")
        print(f"wrote {HERE / 'results-train.md'} and .json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

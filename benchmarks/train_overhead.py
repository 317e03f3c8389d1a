#!/usr/bin/env python3
"""What gdsl's training loop adds to its gradient steps (issue 17, item 4: at most 10%).

    python3 benchmarks/train_overhead.py                        # this tree, 7 runs per model
    python3 benchmarks/train_overhead.py --tree before=/tmp/base --tree after=.   # side by side
    python3 benchmarks/train_overhead.py --runs 3 --no-write

Each run is a process of its own, pinned to one CPU (`taskset -c 0`) with one BLAS thread
(OMP/OPENBLAS/MKL_NUM_THREADS=1), that calls ``gdsl.train`` on a model with the settings of
its `train` line (what `gdsl run MODEL` does), with ``CompiledModel.value_and_grad`` wrapped
in a timer. The loop is timed from the optimiser's creation (just before the first epoch) to
the end of the last epoch's record (its metrics included), so

    overhead = (loop - sum of the value_and_grad calls) / sum of the value_and_grad calls

is what batching, the optimiser's update, the per-epoch metrics and the loop itself add,
in wall time and in the process's CPU time (time.thread_time: what the process ran, not
the time other processes on the shared CPU took from it). The timer's own cost per call
(its clocks and the re-packing of the arguments) counts as loop; it is measured in the same
process on a stub and taken out in the column "less the timer".
Trees (``--tree LABEL=PATH``, e.g. a `git archive` of main) are interleaved round by round,
so that the load of the machine (shared; `uptime` is recorded at start and end) hits them
alike; medians over the runs. Each run also prints the final validation cost and a checksum
of the trained params: trees that train alike give the same ones (to rounding).
Writes benchmarks/results-train-overhead.md and .json.
"""

from __future__ import annotations

import json
import sys
import time

# -- the child: one training run, timed -----------------------------------------------------------


def child(model: str) -> dict:
    import numpy as np

    import gdsl.tools.train as T

    tm = T.prepare(model)
    spent = [0.0, 0, 0.0]       # wall seconds, calls, CPU seconds
    stamps = {}
    step = tm.compiled.value_and_grad

    seen = {}                   # the last arguments of each part, for the floor below

    def timed(**arrays):
        c, t = time.thread_time(), time.perf_counter()
        try:
            return step(**arrays)
        finally:
            spent[0] += time.perf_counter() - t
            spent[2] += time.thread_time() - c
            spent[1] += 1
            seen.setdefault("value_and_grad", arrays)     # a whole batch: the first

    tm.compiled.value_and_grad = timed
    timer = _timer_cost()

    class Stamped(T.Optimizer):
        """Made just before the first epoch: the loop starts here."""

        def __init__(self, *a, **kw):
            stamps["start"] = time.perf_counter(), time.thread_time()
            super().__init__(*a, **kw)
            seen["optimizer"] = self

    T.Optimizer = Stamped
    history = []

    def on_epoch(r):
        stamps["end"] = time.perf_counter(), time.thread_time()
        history.append(r)

    evaluate = T.evaluate

    def kept_evaluate(*a, **kw):
        seen["evaluate"] = a, kw
        return evaluate(*a, **kw)

    T.evaluate = kept_evaluate
    r = T.train(tm, on_epoch=on_epoch)
    T.evaluate = evaluate
    f = r.final
    result = {"loop": stamps["end"][0] - stamps["start"][0], "value_and_grad": spent[0],
            "loop_cpu": stamps["end"][1] - stamps["start"][1], "value_and_grad_cpu": spent[2],
            "calls": spent[1], "timer_cpu": timer, "epochs": len(history), "val_cost": f["val_cost"],
            "val_accuracy": f["val_accuracy"], "train_cost": f["train_cost"],
            "params_sum": float(sum(np.abs(v).sum() for v in r.params.values())),
            "gdsl": T.__file__}
    return {**result, **_floor(step, evaluate, seen, spent[1] / len(history))}


def _floor(step, evaluate, seen: dict, steps: float) -> dict:
    """What no loop that validates exactly every epoch and updates with NumPy can go below,
    measured here with everything in cache (the fastest of many repeats): the validation
    pass (the record's last ``evaluate``) against an epoch of steps, and the optimiser's
    whole-buffer passes without its gather (momentum: m *= mu; m -= lr g; p += m; sgd:
    p -= lr g) against a step; {} for another optimiser."""
    import numpy as np

    def best(fn, number: int) -> float:
        times = []
        for _ in range(7):
            t = time.perf_counter()
            for _ in range(number):
                fn()
            times.append((time.perf_counter() - t) / number)
        return min(times)

    arrays = seen["value_and_grad"]
    a, kw = seen["evaluate"]
    opt = seen["optimizer"]
    p, m, g = opt.flat, opt.m, opt.tmp
    if opt.kind == "momentum":
        def passes():
            np.multiply(m, opt.mu, out=m)
            np.subtract(m, g, out=m)
            np.add(p, m, out=p)
    elif opt.kind == "sgd":
        def passes():
            np.subtract(p, g, out=p)
    else:
        return {}
    t_step = best(lambda: step(**arrays), 200)
    t_val = best(lambda: evaluate(*a, **kw), 20)
    t_passes = best(passes, 2000)       # (after the others: it moves the params)
    return {"hot_step": t_step, "hot_validation": t_val, "hot_update_passes": t_passes,
            "steps_per_epoch": steps,
            "floor": (t_val + steps * t_passes) / (steps * t_step)}


def _timer_cost(calls: int = 20000) -> float:
    """CPU seconds the timing wrapper adds to one call (its calls of the clocks and the
    re-packing of the keyword arguments), which the loop's figure includes."""
    spent = [0.0, 0, 0.0]

    def stub(**arrays):
        return arrays

    def timed(**arrays):
        c, t = time.thread_time(), time.perf_counter()
        try:
            return stub(**arrays)
        finally:
            spent[0] += time.perf_counter() - t
            spent[2] += time.thread_time() - c
            spent[1] += 1

    kw = {k: None for k in ("x", "y", "W1", "b1", "W2", "b2", "lam")}
    best = []
    for fn in (stub, timed):
        t = time.thread_time()
        for _ in range(calls):
            fn(**kw)
        best.append(time.thread_time() - t)
    return max(0.0, best[1] - best[0]) / calls


if len(sys.argv) > 2 and sys.argv[1] == "--child":
    print("RESULT " + json.dumps(child(sys.argv[2])), flush=True)
    sys.exit(0)


# -- the parent ---------------------------------------------------------------------------------

import argparse
import os
import platform
import statistics
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def run(tree: Path, model: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GDSL_DEBUG", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(tree)
    env.update({k: "1" for k in THREAD_VARS})
    p = subprocess.run(["taskset", "-c", "0", sys.executable, str(Path(__file__).resolve()),
                        "--child", model], env=env, cwd=tree, capture_output=True, text=True,
                       timeout=600, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{tree}: {model} exited {p.returncode}:\n{p.stderr[-3000:]}")
    line = next(x for x in p.stdout.splitlines() if x.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    if not r["gdsl"].startswith(str(tree)):
        raise RuntimeError(f"the child imported {r['gdsl']}, not the tree {tree}")
    r["overhead"] = (r["loop"] - r["value_and_grad"]) / r["value_and_grad"]
    r["overhead_cpu"] = (r["loop_cpu"] - r["value_and_grad_cpu"]) / r["value_and_grad_cpu"]
    # the same without what the timer itself adds to each call (measured in the child)
    r["overhead_cpu_untimed"] = ((r["loop_cpu"] - r["calls"] * r["timer_cpu"]
                                  - r["value_and_grad_cpu"]) / r["value_and_grad_cpu"])
    return r


def _floor_cells(rs: list[dict]) -> str:
    """The floor's parts (medians over the runs) as % of the steps, or dashes."""
    if "floor" not in rs[0]:
        return "- | - | -"
    val = statistics.median(r["hot_validation"] / (r["steps_per_epoch"] * r["hot_step"])
                            for r in rs)
    upd = statistics.median(r["hot_update_passes"] / r["hot_step"] for r in rs)
    return (f"{100 * val:.1f}% | {100 * upd:.1f}% | "
            f"**{100 * statistics.median(r['floor'] for r in rs):.1f}%**")


def report(results: dict, trees: dict, models: list[str], info: dict, runs: int) -> str:
    out = [(f"Run: `python3 benchmarks/train_overhead.py {' '.join(info['argv'])}` on "
            f"{info['date']}; {runs} runs per tree and model, interleaved, each a process on "
            f"one CPU (taskset -c 0) with one BLAS thread; medians."), "",
           (f"- Machine: {info['cpu']}, nproc {info['nproc']}, Python {info['python']}, "
            f"NumPy {info['numpy']}"),
           f"- uptime at start: `{info['uptime_start']}`",
           f"- uptime at end: `{info['uptime_end']}`",
           *(f"- tree `{label}`: {what}" for label, what in info["trees"].items()), "",
           ("| model | tree | loop ms | value_and_grad ms (calls) | **overhead** | overhead, "
            "every run (%) | CPU: loop ms | value_and_grad ms | overhead | less the timer | "
            "final val cost | val acc | floor: validation | floor: update | **floor** |"),
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for model in models:
        for label in trees:
            rs = results[model][label]
            med = {k: statistics.median(r[k] for r in rs)
                   for k in ("loop", "value_and_grad", "overhead", "loop_cpu",
                             "value_and_grad_cpu", "overhead_cpu", "overhead_cpu_untimed",
                             "timer_cpu")}
            each = " ".join(f"{100 * r['overhead']:.0f}" for r in rs)
            costs = sorted({f"{r['val_cost']:.10f}" for r in rs})
            accs = sorted({f"{100 * r['val_accuracy']:.2f}%" for r in rs
                           if r["val_accuracy"] is not None}) or ["-"]
            out.append(f"| {model} | {label} | {1e3 * med['loop']:.1f} | "
                       f"{1e3 * med['value_and_grad']:.1f} ({rs[0]['calls']}) | "
                       f"**{100 * med['overhead']:.1f}%** | "
                       f"{each} | {1e3 * med['loop_cpu']:.1f} | "
                       f"{1e3 * med['value_and_grad_cpu']:.1f} | {100 * med['overhead_cpu']:.1f}% | "
                       f"{100 * med['overhead_cpu_untimed']:.1f}% ({1e6 * med['timer_cpu']:.1f} "
                       f"µs a call) | "
                       f"{' / '.join(costs)} | {' / '.join(accs)} | {_floor_cells(rs)} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append",
                    help="models to train (default: models/mlp2.gdsl, models/linear_softmax.gdsl)")
    ap.add_argument("--tree", action="append", default=[],
                    help="LABEL=PATH of a gdsl tree to time (default: this one)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    models = args.model or ["models/mlp2.gdsl", "models/linear_softmax.gdsl"]
    trees = {}
    for spec in args.tree or [f"this={ROOT}"]:
        label, _, path = spec.partition("=")
        trees[label] = Path(path).resolve()
    head = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
                          capture_output=True, text=True, check=False).stdout.strip()[:70]
    import numpy
    info = {"date": time.strftime("%Y-%m-%d %H:%M"), "argv": sys.argv[1:] if argv is None else argv,
            "python": platform.python_version(), "numpy": numpy.__version__,
            "nproc": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
            "uptime_start": uptime(),
            "trees": {k: f"{p}" + (f" (this repository, at {head})" if p == ROOT else "")
                      for k, p in trees.items()}}
    try:
        info["cpu"] = next(x.split(":", 1)[1].strip() for x in
                           Path("/proc/cpuinfo").read_text().splitlines()
                           if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    results = {m: {k: [] for k in trees} for m in models}
    for rnd in range(args.runs + 1):            # round 0 warms caches and is dropped
        for model in models:
            order = list(trees)[rnd % len(trees):] + list(trees)[:rnd % len(trees)]
            for label in order:
                r = run(trees[label], model)
                print(f"round {rnd} {model} {label}: loop {1e3 * r['loop']:.1f} ms, "
                      f"value_and_grad {1e3 * r['value_and_grad']:.1f} ms, overhead "
                      f"{100 * r['overhead']:.1f}%", file=sys.stderr)
                if rnd:
                    results[model][label].append(r)
    info["uptime_end"] = uptime()
    text = report(results, trees, models, info, args.runs)
    print(text)
    if not args.no_write:
        (HERE / "results-train-overhead.md").write_text(
            "# Training-loop overhead (benchmarks/train_overhead.py)\n\n" + text + "\n",
            encoding="utf-8")
        (HERE / "results-train-overhead.json").write_text(
            json.dumps({"machine": info, "results": results}, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {HERE / 'results-train-overhead.md'} and .json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

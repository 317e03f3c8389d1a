#!/usr/bin/env python3
"""Data-parallel training on dask.distributed (`gdsl run --workers`): what 2 workers gain on
this machine, and from which batch size.

    python3 benchmarks/distributed.py               # writes benchmarks/results-distributed.md, .json
    python3 benchmarks/distributed.py --quick --no-write

The workload: models/mlp2.gdsl (d=64 pixels, m=100 hidden ReLU units, C=10 classes, L2 on
both weights) on N=100,000 synthetic examples (Gaussian pixels, uniform labels), float64. One
step of training is timed, from the batch's example numbers to the combined gradient, as
gdsl runs it:

- **serial**: what `gdsl run` does per step (gdsl/tools/train.py): gather the batch's
  examples, `value_and_grad` on them. NumPy's BLAS with its default threads (both cores
  here), and again on one thread (threadpoolctl, set around each round) to show what one
  core does.
- **2 threads**: `--workers 2` with `processes=False`: a LocalCluster of 2 worker threads in
  this process, each holding half of the examples (one shard each).
- **2 processes**: `--workers 2`: a LocalCluster of 2 worker processes on 127.0.0.1 (dask's
  nanny gives each one BLAS thread).

A parallel step is gdsl's own (gdsl/tools/distributed.py): the batch's numbers split by
shard, each shard's actor gathers its examples and returns its loss and gradient, the driver
combines them weighted by their example counts. The optimiser's step (the same in both) is
left out. The data were sent to the workers once, before timing.

Batch sizes from 2 (one example per shard: the cluster's overhead per step) to N (the full
batch). Each figure is the median over interleaved rounds (serial, threads, processes in
turn), each round the mean of enough repetitions to last ~20 ms; the machine is shared, so
the load (uptime) before and after is recorded, and the ratios, measured in the same rounds,
are the figures to read. The combined full-batch gradient is checked against serial's (to
1e-12 relative) before anything is timed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# (this file is named distributed.py: its folder off the path, or `import distributed`
# finds it instead of dask's)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from gdsl.tools import data as D
from gdsl.tools import distributed
from gdsl.tools.train import prepare

N, DIMS = 100_000, {"d": 64, "m": 100, "C": 10}
SIZES = [2, 32, 256, 1024, 4096, 16384, 65536, 100_000]
MODES = ["serial", "serial 1 thread", "2 threads", "2 processes"]


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import dask
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "numpy": np.__version__, "dask": dask.__version__, "platform": platform.platform()}


def uptime() -> str:
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
        return "load average " + ", ".join(load)
    except OSError:
        return "unknown"


def blas_threads() -> int | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"),
               default=None)


def serial_step(tm, arrays: dict, params: dict):
    def step(idx):
        return tm.compiled.value_and_grad(**D.take(arrays, idx, tm.labels), **params)
    return step


def parallel_step(pool, offsets: np.ndarray, params: dict):
    def step(idx):
        mine = distributed._split_by_shard(idx, offsets)
        got = pool.call("grad", {k: (i, params, {}) for k, i in mine.items()})
        return distributed._combine([(len(mine[k]), *got[k]) for k in sorted(mine)], len(idx))
    return step


def one_blas_thread():
    """A context in which NumPy's BLAS uses one thread, or None without threadpoolctl (set
    around a whole round: entering it costs ~2 ms, as much as a small step)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return lambda: threadpool_limits(1, user_api="blas")


def timed(step, idx, budget: float = 0.02) -> float:
    """Seconds per call: the mean of enough calls to last ``budget`` seconds."""
    reps, t0 = 0, time.perf_counter()
    while True:
        step(idx)
        reps += 1
        t = time.perf_counter() - t0
        if t >= budget:
            return t / reps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 rounds, fewer sizes")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rounds = 3 if args.quick else args.rounds
    sizes = [2, 1024, 16384, N] if args.quick else SIZES

    info = machine()
    info["load before"] = uptime()
    info["blas threads (driver)"] = blas_threads()
    print(f"{info['cpu']}, {info['nproc']} cores; {info['load before']}", flush=True)

    tm = prepare(str(HERE.parent / "models" / "mlp2.gdsl"))
    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(size=(DIMS["d"], N)), "y": rng.integers(0, DIMS["C"], size=N)}
    params = tm.compiled.init_params(DIMS, 0)
    perm = rng.permutation(N)
    half = N // 2
    blocks = [D.take(arrays, np.arange(0, half), tm.labels),
              D.take(arrays, np.arange(half, N), tm.labels)]
    offsets = np.array([0, half, N], dtype=np.int64)
    sources = [lambda b=b: ("arrays", b, None) for b in blocks]
    spec = distributed.model_spec(tm)

    steps = {"serial": serial_step(tm, arrays, params)}
    contexts = {}
    one = one_blas_thread()
    if one is not None:
        steps["serial 1 thread"], contexts["serial 1 thread"] = steps["serial"], one
    clusters, start = [], {}
    try:
        for mode, processes in (("2 threads", False), ("2 processes", True)):
            t0 = time.perf_counter()
            cluster = distributed.Cluster(workers=2, processes=processes)
            clusters.append(cluster)
            pool = distributed._Placed(cluster, spec, sources, distributed.WAIT, print)
            start[mode] = time.perf_counter() - t0
            steps[mode] = parallel_step(pool, offsets, params)
            if processes:
                info["blas threads (worker processes)"] = sorted(set(
                    cluster.client.run(blas_threads).values()), key=str)
        # the combined full-batch gradient is serial's
        J0, g0 = steps["serial"](perm)
        for mode in ("2 threads", "2 processes"):
            J, g = steps[mode](perm)
            assert abs(J - float(np.sum(J0))) <= 1e-12 * abs(float(np.sum(J0))), mode
            for k in g0:
                assert np.max(np.abs(g[k] - g0[k])) <= 1e-12 * np.max(np.abs(g0[k])), (mode, k)
        print("combined gradients equal serial's to 1e-12; cluster start (s): "
              + ", ".join(f"{m} {t:.2f}" for m, t in start.items()), flush=True)

        modes = [m for m in MODES if m in steps]
        table = {}
        for B in sizes:
            idx = perm[:B]
            for m in modes:          # warm-up
                steps[m](idx)
            runs = {m: [] for m in modes}
            for _ in range(rounds):
                for m in modes:
                    with contexts.get(m, contextlib.nullcontext)():
                        runs[m].append(timed(steps[m], idx))
            med = {m: statistics.median(v) for m, v in runs.items()}
            table[B] = {m: {"median_ms": 1e3 * med[m], "min_ms": 1e3 * min(runs[m]),
                            "rounds_ms": [1e3 * t for t in runs[m]]} for m in modes}
            print(f"B={B:>6}: " + "  ".join(f"{m} {1e3 * med[m]:8.2f} ms" for m in modes)
                  + "  | serial/processes {:.2f}x, serial/threads {:.2f}x".format(
                      med["serial"] / med["2 processes"], med["serial"] / med["2 threads"]),
                  flush=True)
    finally:
        for c in reversed(clusters):     # (each restores the log levels it found)
            c.close()
    info["load after"] = uptime()
    print(info["load after"])

    def pays(mode, against="serial"):
        """The smallest batch measured from which ``mode`` is faster than ``against`` at
        every larger size measured too."""
        slower = [B for B in sizes if table[B][mode]["median_ms"] >= table[B][against]
                  ["median_ms"]]
        after = [B for B in sizes if not slower or B > max(slower)]
        return after[0] if after else None

    overhead = {m: table[sizes[0]][m]["median_ms"] - table[sizes[0]]["serial"]["median_ms"]
                for m in ("2 threads", "2 processes")}
    result = {"machine": info, "workload": {"model": "models/mlp2.gdsl", "N": N, **DIMS,
                                            "dtype": "float64"},
              "rounds": rounds, "cluster_start_s": start, "steps": table,
              "overhead_per_step_ms": overhead,
              "pays_from_batch": {m: pays(m) for m in ("2 threads", "2 processes")}}
    if "serial 1 thread" in modes:
        result["pays_from_batch_vs_serial_1_thread"] = {
            m: pays(m, "serial 1 thread") for m in ("2 threads", "2 processes")}
    print(f"per-step overhead at B={sizes[0]} (ms): " + ", ".join(f"{m} {v:.2f}" for m, v in
                                                                    overhead.items()))
    for key in ("pays_from_batch", "pays_from_batch_vs_serial_1_thread"):
        if key in result:
            print(f"{key}: " + ", ".join(f"{m} {b}" for m, b in result[key].items()))
    if not args.no_write:
        (HERE / "results-distributed.json").write_text(json.dumps(result, indent=1) + "\n")
        (HERE / "results-distributed.md").write_text(markdown(result, modes))
        print("wrote benchmarks/results-distributed.md and .json")
    return 0


def markdown(r: dict, modes: list[str]) -> str:
    m = r["machine"]
    lines = ["# Data-parallel training on 2 dask workers: one step of mlp2",
             "",
             ("`python3 benchmarks/distributed.py` (what is measured: its docstring). "
             f"{m['cpu']}, {m['nproc']} cores (nproc), Python {m['python']}, NumPy "
             f"{m['numpy']}, dask {m['dask']}; BLAS threads: {m['blas threads (driver)']} in "
             f"the driver, {m.get('blas threads (worker processes)')} in each worker process."),
             "",
             (f"The machine is shared with other jobs: {m['load before']} before the run, "
             f"{m['load after']} after (uptime). Medians of {r['rounds']} interleaved rounds; "
             "read the ratios, measured in the same rounds."),
             "",
             (f"mlp2 (d={r['workload']['d']}, m={r['workload']['m']}, C={r['workload']['C']}), "
             f"N={r['workload']['N']:,} examples, float64; one step: the batch's examples "
             "gathered, loss and gradient (combined from the shards for the workers)."),
             "",
             "Speed-ups are serial's time over the workers' (above 1: the workers are faster).",
             "",
             "| batch | " + " | ".join(f"{x} (ms)" for x in modes)
             + " | 2 threads vs serial | 2 processes vs serial | 2 processes vs serial 1 "
             "thread |",
             "|---:|" + "---:|" * (len(modes) + 3)]
    for B, row in r["steps"].items():
        s = row["serial"]["median_ms"]
        one = row.get("serial 1 thread", {}).get("median_ms")
        lines.append(f"| {int(B):,} | " + " | ".join(f"{row[x]['median_ms']:.2f}" for x in modes)
                     + f" | {s / row['2 threads']['median_ms']:.2f}x"
                     f" | {s / row['2 processes']['median_ms']:.2f}x"
                     + (f" | {one / row['2 processes']['median_ms']:.2f}x |" if one else " | - |"))
    def size(B):
        return "none measured" if B is None else f"{B:,}"

    o, p = r["overhead_per_step_ms"], {k: size(v) for k, v in r["pays_from_batch"].items()}
    first = next(iter(r["steps"]))
    lines += ["",
              (f"- **Per-step overhead of the cluster** (batch of {first}, one example per "
              f"shard, minus serial's step): {o['2 threads']:.2f} ms with 2 threads, "
              f"{o['2 processes']:.2f} ms with 2 processes."),
              f"- **`--workers 2` pays from a batch of** {p['2 processes']} (processes) and "
              f"{p['2 threads']} (threads) against `gdsl run` as it runs by default (BLAS "
              "on every core): the smallest size measured from which the step is faster at "
              "every larger size measured"
              + ("" if "pays_from_batch_vs_serial_1_thread" not in r else
                 "; against serial on one BLAS thread, from "
                 f"{size(r['pays_from_batch_vs_serial_1_thread']['2 processes'])} (processes) and "
                 f"{size(r['pays_from_batch_vs_serial_1_thread']['2 threads'])} (threads)") + ".",
              "- Cluster start and placing the data (s): "
              + ", ".join(f"{k} {v:.2f}" for k, v in r["cluster_start_s"].items()) + ".",
              ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

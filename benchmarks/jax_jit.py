"""gdsl's array-API module under jax.jit against hand-written jax.jit(jax.value_and_grad(...)).

    python3 benchmarks/jax_jit.py [--threads 1|default|both] [--dtype float64|float32|both]
                                  [--only W2] [--quick] [--rounds 40] [--no-write]

The workloads of bench.py (W1 linear softmax, W2 ReLU MLP, W3 SVM; workloads.py), each
compiled with `gdsl.compile(text, target="array-api")`. Three JAX callables per workload, all
`jax.block_until_ready`-ed, timed interleaved round by round in one process (bench.time_all):

- **hand**: workloads.jax_impl, `jax.jit(jax.value_and_grad(f, argnums=params))` of the loss
  written in jax.numpy (logsumexp, maximum), params and data positional: the 1.00× baseline;
- **gdsl jit**: `jax.jit(model.module.value_and_grad)`, called as the emitted function is,
  with the arrays by keyword (x=..., y=..., W=...);
- **gdsl jit, positional**: the same function jitted through a positional wrapper, to tell
  the cost of keyword arguments in a jitted call from that of the computation.

Each thread setting runs in a child process: `1` pins the child to one CPU before JAX makes
its CPU client (XLA sizes its pool from the CPUs the process may use; as `taskset -c 0`) with
OMP/OPENBLAS/MKL_NUM_THREADS=1; `default` leaves it all CPUs. Both compute in float64 with
jax_enable_x64 (float32 data stays float32). Before timing, gdsl's loss and gradients are
compared with the hand-written ones. Writes benchmarks/results-jax-jit.md and .json.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # (puts the gdsl to benchmark on sys.path, as bench.py does)
import numpy as np
import workloads as wl

RESULTS = HERE / "results-jax-jit"
NAMES = ("hand", "gdsl jit", "gdsl jit, positional")
RTOL = {"float64": 1e-10, "float32": 1e-4}


def child(args) -> dict:
    """One thread setting, in this process: every workload, its check and its timings."""
    if args.threads == "1":
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.devices()                       # the CPU client, made on the CPUs allowed above

    out = {"machine": machine(args), "workloads": []}
    for kind, dims, dtype in bench.selected(args):
        row = measure(jax, kind, dims, dtype, args)
        out["workloads"].append(row)
        t = row["times"]
        bench.log(f"  {row['label']} {dtype}: gdsl/hand "
                  f"{t['gdsl jit']['median'] / t['hand']['median']:.3f} (positional "
                  f"{t['gdsl jit, positional']['median'] / t['hand']['median']:.3f})")
    out["machine"]["loadavg_end"] = os.getloadavg()
    return out


def measure(jax, kind: str, dims: dict, dtype: str, args) -> dict:
    """One workload: the three callables, their first calls, gdsl's error, their timings."""
    import gdsl
    a = wl.make_data(kind, dims, dtype)
    hand, hand_result = wl.jax_impl(kind, a, wl.LAM[kind])
    model = gdsl.compile(wl.TEXTS[kind], target="array-api")
    names = [*wl.PARAMS[kind], "x", "y"]
    given = {k: jax.device_put(a[k]) for k in names}
    order = list(given.values())
    vg = model.module.value_and_grad
    keywords = jax.jit(vg)
    positional = jax.jit(lambda *arrays: vg(**dict(zip(names, arrays))))

    def gdsl_kw():
        return jax.block_until_ready(keywords(**given))

    def gdsl_pos():
        return jax.block_until_ready(positional(*order))

    fns = dict(zip(NAMES, (hand, gdsl_kw, gdsl_pos)))
    first = {}
    for name, f in fns.items():
        t0 = time.perf_counter()
        f()
        first[name] = time.perf_counter() - t0      # trace + XLA compile + one call
    ref = hand_result(hand())
    errors = {}
    for name in NAMES[1:]:
        loss, grads = fns[name]()
        errors[name] = float(bench.compare(ref, (np.asarray(loss), [np.asarray(grads[p])
                                                                   for p in wl.PARAMS[kind]])))
    times = bench.time_all(fns, rounds=args.rounds, target=0.02, budget=args.budget)
    # what XLA made of each, by its own cost model: not timed, so load on the machine does
    # not touch it (the hand-written step's jitted function is in workloads.jax_impl's closure)
    closure = inspect.getclosurevars(hand).nonlocals
    hand_cost = _cost(closure["vg"].lower(*closure["params"], closure["x"], closure["y"]))
    cost = {"hand": hand_cost, "gdsl jit": _cost(keywords.lower(**given))}
    return {"kind": kind, "dims": dims, "dtype": dtype, "label": bench.label(kind, dims),
            "times": times, "first_call": first, "error": errors, "xla_cost": cost,
            "ok": all(e <= RTOL[dtype] for e in errors.values())}


def _cost(lowered) -> dict:
    """XLA's cost analysis of a compiled function: flops, transcendentals, bytes accessed."""
    ca = lowered.compile().cost_analysis()
    ca = ca[0] if isinstance(ca, list) else ca
    return {k: float(ca.get(k, math.nan)) for k in ("flops", "transcendentals", "bytes accessed")}


def machine(args) -> dict:
    from importlib.metadata import version
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "jax": version("jax"), "jaxlib": version("jaxlib"),
            "nproc": os.cpu_count(), "cpus_used": len(os.sched_getaffinity(0)),
            "threads": args.threads, "loadavg_start": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                   "MKL_NUM_THREADS", "XLA_FLAGS")}}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        info["cpu"] = platform.processor()
    info["gdsl_commit"] = subprocess.run(
        ["git", "-C", str(bench.GDSL_PATH), "log", "-1", "--format=%h"], capture_output=True,
        text=True, check=False).stdout.strip() or str(bench.GDSL_PATH)
    info["xla_pool"] = bench.xla_workers()
    return info


def run_children(args) -> dict:
    settings = ["1", "default"] if args.threads == "both" else [args.threads]
    results = {}
    for threads in settings:
        env = dict(os.environ)
        if threads == "1":
            env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        cmd = [sys.executable, __file__, "--child", "--threads", threads, "--dtype", args.dtype,
               "--rounds", str(args.rounds), "--budget", str(args.budget)]
        cmd += (["--only", args.only] if args.only else []) + (["--quick"] if args.quick else [])
        cmd += ["--gdsl-path", str(bench.GDSL_PATH)]
        bench.log(f"threads {threads}:")
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        sys.stderr.write(r.stderr)
        if r.returncode != 0:
            raise SystemExit(f"the child for threads={threads} failed")
        results[threads] = json.loads(r.stdout)
    return results


def report(results: dict) -> str:
    lines = ["# gdsl's array-API module under jax.jit vs hand-written JAX", "",
             ("Generated by `python3 benchmarks/jax_jit.py`. Median time per call (µs) of "
              "interleaved rounds; ratio = gdsl / hand-written (< 1: gdsl faster); best = the "
              "same ratio from each one's fastest round."), ""]
    for threads, r in results.items():
        m = r["machine"]
        title = ("one thread (pinned to one CPU, XLA's pool made there)" if threads == "1"
                 else "default threads")
        where = (f"{m.get('cpu')}, {m['nproc']} CPUs ({m['cpus_used']} used), Python "
                 f"{m['python']}, JAX {m['jax']} / jaxlib {m['jaxlib']} (CPU, x64 enabled), "
                 f"NumPy {m['numpy']}, gdsl {m['gdsl_commit']}, {m['date']}, load average "
                 f"{m['loadavg_start'][0]:.1f} → {m.get('loadavg_end', [math.nan])[0]:.1f}; "
                 f"{m['xla_pool']}")
        head = ("| workload | dtype | hand µs | gdsl jit µs | ratio | best | positional ratio "
                "| XLA flops, bytes: gdsl / hand | first call hand / gdsl (s) | max rel. error |")
        lines += [f"## {title}", "", where, "", head, "|---|---|---|---|---|---|---|---|---|---|"]
        for w in r["workloads"]:
            t = w["times"]
            h, g, p = (t[k]["median"] for k in NAMES)
            best = t["gdsl jit"]["min"] / t["hand"]["min"]
            err = max(w["error"].values())
            c = w["xla_cost"]
            flops = c["gdsl jit"]["flops"] / c["hand"]["flops"]
            moved = c["gdsl jit"]["bytes accessed"] / c["hand"]["bytes accessed"]
            lines.append(f"| {w['label']} | {w['dtype']} | {h * 1e6:.1f} | {g * 1e6:.1f} | "
                         f"**{g / h:.3f}** | {best:.3f} | {p / h:.3f} | {flops:.3f}, {moved:.3f} | "
                         f"{w['first_call']['hand']:.2f} / {w['first_call']['gdsl jit']:.2f} | "
                         f"{err:.1e}{'' if w['ok'] else ' ✗'} |")
        lines.append("")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", choices=["1", "default", "both"], default="both")
    p.add_argument("--dtype", choices=["float64", "float32", "both"], default="both")
    p.add_argument("--only", default="", help="a substring of the workload label, e.g. W2")
    p.add_argument("--quick", action="store_true", help="leave out n=10000; write nothing")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--budget", type=float, default=20.0, help="seconds per workload at most")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--gdsl-path", help="benchmark the gdsl tree in DIR (see bench.py)")
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    results = run_children(args)
    text = report(results)
    print(text)
    if not (args.no_write or args.quick):
        RESULTS.with_suffix(".md").write_text(text + "\n")
        RESULTS.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
        bench.log(f"wrote {RESULTS}.md and .json")


if __name__ == "__main__":
    main()

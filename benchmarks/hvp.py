#!/usr/bin/env python3
"""One Hessian-vector product against one gradient: gdsl, JAX and PyTorch (issue 15).

    python3 benchmarks/hvp.py [--threads 1|default|both] [--quick] [--rounds 30] [--no-write]

The model is models/mlp2.gdsl (workloads.W2_TEXT: a ReLU layer of m units, softmax +
cross-entropy, L2 on both weights), float64, at d=64 m=100 n=100 and d=3072 m=100 n=1000. In
each framework, in a process of its own, the gradient and the HVP are timed interleaved round
by round (bench.time_all); what counts is the ratio HVP time / gradient time within that
process (the machine is shared: absolute times move with the load, the ratios much less):

- **gdsl**: the emitted module's `value_and_grad` (gdsl.compile) and `hvp` (gdsl compile
  --hvp: reverse over reverse in gdsl's IR, one NumPy function), raw functions; and the same
  through the checked calls `model.value_and_grad(**arrays)`, `model.hvp(v, **arrays)`;
- **JAX**: `jit(value_and_grad(f))` and `jit` of `jvp(grad(f), (θ,), (v,))` (forward over
  reverse), jax_enable_x64;
- **PyTorch**: `torch.func.grad_and_value(f)` and `torch.func.jvp(torch.func.grad(f), (θ,),
  (v,))` (forward over reverse); and `torch.autograd.grad` against the double backward
  (`grad(grad(f, create_graph=True) · v)`, reverse over reverse, what
  torch.autograd.functional.hvp does), eager.

Threads: `1` runs each child pinned to one CPU (as `taskset -c 0`, set before any library
starts its pool) with OMP/OPENBLAS/MKL_NUM_THREADS=1; `default` leaves them alone. Before
timing, every framework's H·v and gradient are compared with gdsl's (max |Δ| / max |ref| per
param, float64). Writes benchmarks/results-hvp.md and .json, with the machine, the load
(uptime) before and after each child.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # (puts the gdsl to benchmark on sys.path)
import numpy as np
import workloads as wl

RESULTS = HERE / "results-hvp"
SIZES = [{"d": 64, "m": 100, "C": 10, "n": 100}, {"d": 3072, "m": 100, "C": 10, "n": 1000}]
FRAMEWORKS = ("gdsl", "jax", "torch")
PARAMS = wl.PARAMS["W2"]
LAM = wl.LAM["W2"]
RTOL = 1e-8
HEADER = "| size | implementation | gradient µs | HVP µs | **HVP / gradient** | best | CPU time |"


def directions(dims: dict) -> dict:
    rng = np.random.default_rng(1)
    shapes = {"W1": (dims["m"], dims["d"]), "b1": (dims["m"], 1), "W2": (dims["C"], dims["m"]),
              "b2": (dims["C"], 1)}
    return {k: rng.standard_normal(shapes[k]) for k in PARAMS}


# -- each framework: {name: callable}, pairs (gradient, hvp) to divide, and its results ---------

def gdsl_impl(a: dict, v: dict):
    import gdsl
    from gdsl.pipeline import run_pipeline
    from gdsl.runtime import load_module
    model = gdsl.compile(wl.W2_TEXT)
    second, _ = load_module(run_pipeline(wl.W2_TEXT, hvp=True).code)   # gdsl compile --hvp
    vg, hvp = model.module.value_and_grad, second.hvp
    fns = {"grad": lambda: vg(**a), "hvp": lambda: hvp(v=v, **a),
           "grad, checked call": lambda: model.value_and_grad(**a),
           "hvp, checked call": lambda: model.hvp(v, **a)}
    pairs = {"gdsl (emitted NumPy)": ("grad", "hvp"),
             "gdsl, checked calls": ("grad, checked call", "hvp, checked call")}
    grad = fns["grad"]()[1]
    return fns, pairs, {k: grad[k] for k in PARAMS}, fns["hvp"]()


def jax_impl(a: dict, v: dict):
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.nn import logsumexp
    x, y = jax.device_put(a["x"]), jax.device_put(a["y"])
    n = a["x"].shape[1]

    def f(theta, x, y):
        W1, b1, W2, b2 = theta
        H = jnp.maximum(W1 @ x + b1, 0)
        S = W2 @ H + b2
        return (jnp.sum(logsumexp(S, axis=0)) - jnp.sum(y * S)) / n + \
            LAM * (jnp.sum(W1 * W1) + jnp.sum(W2 * W2))

    vg = jax.jit(jax.value_and_grad(f))
    hvp = jax.jit(lambda theta, t, x, y: jax.jvp(lambda q: jax.grad(f)(q, x, y), (theta,),
                                                 (t,))[1])
    theta = tuple(jax.device_put(a[k]) for k in PARAMS)
    t = tuple(jax.device_put(v[k]) for k in PARAMS)
    fns = {"grad": lambda: jax.block_until_ready(vg(theta, x, y)),
           "hvp": lambda: jax.block_until_ready(hvp(theta, t, x, y))}
    grad = fns["grad"]()[1]
    return (fns, {"JAX jit: jvp(grad)": ("grad", "hvp")},
            {k: np.asarray(g) for k, g in zip(PARAMS, grad)},
            {k: np.asarray(h) for k, h in zip(PARAMS, fns["hvp"]())})


def torch_impl(a: dict, v: dict):
    import torch
    from torch.func import grad, grad_and_value, jvp
    x, y = torch.from_numpy(a["x"]), torch.from_numpy(a["y"])
    n = a["x"].shape[1]

    def f(theta):
        W1, b1, W2, b2 = theta
        H = torch.relu(W1 @ x + b1)
        S = W2 @ H + b2
        return (torch.logsumexp(S, 0).sum() - (y * S).sum()) / n + \
            LAM * ((W1 * W1).sum() + (W2 * W2).sum())

    theta = tuple(torch.from_numpy(a[k]) for k in PARAMS)
    t = tuple(torch.from_numpy(v[k]) for k in PARAMS)
    leaves = tuple(p.clone().requires_grad_() for p in theta)

    def autograd_grad():
        return torch.autograd.grad(f(leaves), leaves)

    def double_backward():
        g = torch.autograd.grad(f(leaves), leaves, create_graph=True)
        return torch.autograd.grad(g, leaves, t)

    fns = {"torch.func grad": lambda: grad_and_value(f)(theta),
           "torch.func hvp": lambda: jvp(grad(f), (theta,), (t,))[1],
           "autograd grad": autograd_grad, "autograd hvp": double_backward}
    pairs = {"PyTorch torch.func: jvp(grad)": ("torch.func grad", "torch.func hvp"),
             "PyTorch autograd: double backward": ("autograd grad", "autograd hvp")}
    g = fns["torch.func grad"]()[0]
    hv = {k: h.numpy() for k, h in zip(PARAMS, fns["torch.func hvp"]())}
    for k, h in zip(PARAMS, fns["autograd hvp"]()):     # the two HVPs agree
        assert np.abs(h.numpy() - hv[k]).max() <= RTOL * np.abs(hv[k]).max(), k
    return fns, pairs, {k: gk.numpy() for k, gk in zip(PARAMS, g)}, hv


IMPLS = {"gdsl": gdsl_impl, "jax": jax_impl, "torch": torch_impl}


# -- one framework in one process ---------------------------------------------------------------

def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True,
                          check=False).stdout.strip() or str(os.getloadavg())


def child(args) -> dict:
    if args.threads == "1":
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    out = {"framework": args.framework, "threads": args.threads, "uptime_start": uptime(),
           "cpus_used": len(os.sched_getaffinity(0)), "sizes": []}
    for dims in SIZES[:1] if args.quick else SIZES:
        a = wl.make_data("W2", dims, "float64")
        v = directions(dims)
        fns, pairs, grad, hv = IMPLS[args.framework](a, v)
        np.savez(Path(args.out) / f"{args.framework}-{args.threads}-{dims['d']}.npz",
                 **{f"grad_{k}": grad[k] for k in PARAMS}, **{f"hv_{k}": hv[k] for k in PARAMS})
        times = bench.time_all(fns, rounds=args.rounds, target=0.02, budget=args.budget)
        cpu = cpu_times(fns, times)
        row = {"dims": dims, "times": times, "cpu": cpu,
               "ratios": {name: {"grad": times[g]["median"], "hvp": times[h]["median"],
                                 "ratio": times[h]["median"] / times[g]["median"],
                                 "best": times[h]["min"] / times[g]["min"],
                                 "cpu": cpu[h] / cpu[g]}
                          for name, (g, h) in pairs.items()}}
        out["sizes"].append(row)
        for name, r in row["ratios"].items():
            bench.log(f"  {name} d={dims['d']} n={dims['n']}: hvp/grad {r['ratio']:.2f}")
    out["uptime_end"] = uptime()
    out["versions"] = versions(args.framework)
    return out


def cpu_times(fns: dict, times: dict, rounds: int = 15) -> dict:
    """Median CPU seconds (this process's, all its threads) per call, interleaved as time_all
    does: on a loaded machine a call waiting for the CPU costs wall time, not CPU time."""
    samples = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            k = times[name]["batch"]
            c0 = time.process_time()
            for _ in range(k):
                fns[name]()
            samples[name].append((time.process_time() - c0) / k)
    return {name: float(np.median(s)) for name, s in samples.items()}


def versions(framework: str) -> dict:
    from importlib.metadata import version
    out = {"numpy": np.__version__}
    names = {"jax": ("jax", "jaxlib"), "torch": ("torch",), "gdsl": ()}[framework]
    out.update({k: version(k) for k in names})
    if framework == "torch":
        import torch
        out["torch_threads"] = torch.get_num_threads()
    return out


# -- the parent: children, checks, report -------------------------------------------------------

def machine() -> dict:
    info = {"python": platform.python_version(), "nproc": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": platform.processor()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["gdsl_commit"] = subprocess.run(
        ["git", "-C", str(bench.GDSL_PATH), "log", "-1", "--format=%h"], capture_output=True,
        text=True, check=False).stdout.strip()
    return info


def run_children(args, out_dir: str) -> dict:
    results = {}
    for threads in (["1", "default"] if args.threads == "both" else [args.threads]):
        env = dict(os.environ)
        if threads == "1":
            env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        for fw in FRAMEWORKS:
            bench.log(f"threads {threads}, {fw}:")
            cmd = [sys.executable, __file__, "--child", fw, "--threads", threads, "--out",
                   out_dir, "--rounds", str(args.rounds), "--budget", str(args.budget),
                   "--gdsl-path", str(bench.GDSL_PATH)] + (["--quick"] if args.quick else [])
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            sys.stderr.write(r.stderr)
            if r.returncode != 0:
                raise SystemExit(f"the {fw} child (threads {threads}) failed")
            results.setdefault(threads, {})[fw] = json.loads(r.stdout)
    return results


def check(out_dir: str, results: dict) -> dict:
    """Each framework's gradient and H·v against gdsl's: max |Δ| / max |gdsl's|, per param."""
    errors = {}
    for threads, by_fw in results.items():
        for dims in (s["dims"] for s in by_fw["gdsl"]["sizes"]):
            with np.load(Path(out_dir) / f"gdsl-{threads}-{dims['d']}.npz") as ref:
                ref = dict(ref)
            for fw in FRAMEWORKS[1:]:
                with np.load(Path(out_dir) / f"{fw}-{threads}-{dims['d']}.npz") as got:
                    err = max(float(np.abs(got[k] - ref[k]).max() / np.abs(ref[k]).max())
                              for k in ref)
                errors[f"{fw} {threads} d={dims['d']}"] = err
    return errors


def report(results: dict, errors: dict, info: dict) -> str:
    intro = ("Generated by `python3 benchmarks/hvp.py`: models/mlp2.gdsl (ReLU layer of m "
             "units, softmax + cross-entropy, L2), float64. Ratio = median time of one HVP / "
             "median time of one gradient (value and gradient), the two timed interleaved in "
             "the same process; best = the same ratio from each one's fastest round; CPU time = "
             "the ratio of the median CPU time per call (the process's, all its threads; "
             "measured after the wall times, interleaved the same way), which waiting for a "
             "loaded CPU does not inflate. Each framework runs in a process of its own. The "
             "machine is shared with other jobs: the absolute times move with its load (uptime "
             "below); the ratios are what count.")
    where = (f"{info['cpu']}, {info['nproc']} CPUs, Python {info['python']}, gdsl "
             f"{info['gdsl_commit']}, {info['date']}.")
    worst = max(errors.values())
    agree = (f"H·v and gradients of JAX and PyTorch against gdsl's (max |Δ| / max |gdsl's|, per "
             f"param): worst {worst:.1e} ({'all' if worst <= RTOL else 'NOT all'} within "
             f"{RTOL:g}).")
    lines = ["# One Hessian-vector product against one gradient", "", intro, "", where, "",
             agree, ""]
    for threads, by_fw in results.items():
        title = ("One thread: each process pinned to one CPU (as taskset -c 0), "
                 "OMP/OPENBLAS/MKL_NUM_THREADS=1" if threads == "1" else "Default threads")
        lines += [f"## {title}", "",
                  HEADER, "|---|---|---|---|---|---|---|"]
        for i, dims in enumerate(s["dims"] for s in by_fw["gdsl"]["sizes"]):
            size = f"d={dims['d']} m={dims['m']} n={dims['n']}"
            for fw in FRAMEWORKS:
                for name, r in by_fw[fw]["sizes"][i]["ratios"].items():
                    lines.append(f"| {size} | {name} | {r['grad'] * 1e6:.0f} | "
                                 f"{r['hvp'] * 1e6:.0f} | **{r['ratio']:.2f}** | "
                                 f"{r['best']:.2f} | {r['cpu']:.2f} |")
        lines += ["", "Load while each ran (uptime before → after):", ""]
        for fw in FRAMEWORKS:
            r = by_fw[fw]
            ver = ", ".join(f"{k} {v}" for k, v in r["versions"].items())
            lines.append(f"- {fw} ({ver}; {r['cpus_used']} CPU(s)): `{r['uptime_start']}` → "
                         f"`{r['uptime_end']}`")
        lines.append("")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", choices=["1", "default", "both"], default="both")
    p.add_argument("--quick", action="store_true", help="the small size only; write nothing")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--budget", type=float, default=20.0, help="seconds per size at most")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--child", choices=FRAMEWORKS, dest="framework", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--gdsl-path", help="benchmark the gdsl tree in DIR (see bench.py)")
    args = p.parse_args()
    if args.framework:
        print(json.dumps(child(args)))
        return
    info = machine()
    with tempfile.TemporaryDirectory() as out_dir:
        results = run_children(args, out_dir)
        errors = check(out_dir, results)
    text = report(results, errors, info)
    print(text)
    if not (args.no_write or args.quick):
        RESULTS.with_suffix(".md").write_text(text + "\n")
        RESULTS.with_suffix(".json").write_text(json.dumps(
            {"machine": info, "errors": errors, "results": results}, indent=1) + "\n")
        bench.log(f"wrote {RESULTS}.md and .json")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""gdsl benchmarks: loss+gradient speed against hand-written NumPy and the peers, step memory,
and compile time.

    python3 benchmarks/bench.py                   # full run (~5-10 min); writes results + README
    python3 benchmarks/bench.py --quick           # ~1 min smoke run; writes nothing
    python3 benchmarks/bench.py --dtype float32   # one dtype only
    python3 benchmarks/bench.py --default-malloc  # glibc's malloc thresholds left as they come

Install the peers with `pip install -e '.[bench]'` (any that is missing is skipped).
Every implementation is checked against hand-written NumPy in float64 before it is timed.
Times are medians over interleaved rounds after warm-up; each ratio is to hand-written NumPy
measured in the same run. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from resource import RUSAGE_SELF, getrusage

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


def _gdsl_path() -> Path:
    """The gdsl checkout to benchmark: --gdsl-path DIR (e.g. a `git archive` of main) or this
    repository; read before argparse so that children and `import gdsl` agree."""
    for i, a in enumerate(sys.argv):
        if a == "--gdsl-path" and i + 1 < len(sys.argv):
            return Path(sys.argv[i + 1]).resolve()
        if a.startswith("--gdsl-path="):
            return Path(a.split("=", 1)[1]).resolve()
    return ROOT


GDSL_PATH = _gdsl_path()
sys.path.insert(0, str(GDSL_PATH))

import workloads as wl

WORKLOADS = [  # (kind, dims)
    ("W1", {"d": 3072, "C": 10, "n": 100}),
    ("W1", {"d": 3072, "C": 10, "n": 10000}),
    ("W1", {"d": 64, "C": 10, "n": 32}),
    ("W2", {"d": 3072, "m": 50, "C": 10, "n": 100}),
    ("W2", {"d": 3072, "m": 50, "C": 10, "n": 10000}),
    ("W3", {"d": 3072, "C": 10, "n": 100}),
]
RTOL = {"float64": 1e-6, "float32": 1e-3}
CHAIN_SIZES = [100, 1000, 10_000, 100_000]
CHAIN_REPEATS = 3      # runs per chain size; the fastest is the figure
ENV_VARS = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS", "XLA_FLAGS", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
            "MALLOC_ARENA_MAX", "GLIBC_TUNABLES"]
# glibc mallopt parameters (malloc.h) and the values every process of the benchmark sets.
# By default glibc mmaps any block above a threshold that starts at 128 KiB and rises to the
# size of the largest mmapped block freed so far, and gives the top of its heap back to the
# kernel above a trim threshold (twice that). So whether a step's 1.2 MB temporaries
# (d=3072, m=50) come from the heap or from fresh pages (a ~5 µs page fault per 4 KiB here)
# depends on what the process allocated before: not the same for NumPy in this process and
# NumPy next to JAX in a child. Fixed thresholds make every process alike.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MALLOC = {"M_MMAP_THRESHOLD": 64 << 20, "M_TRIM_THRESHOLD": 128 << 20}

# implementation keys, in table order
GDSL, WRAPPER, O0, NUMPY, ROWS, FLOOR = "gdsl", "gdsl wrapper", "gdsl -O0", "numpy", "rows", "floor"
CHUNKED = "rows chunked"
ONELINER, TWIN = "gdsl one-liner", "gdsl declared twin"     # both through model.value_and_grad
NUMBA, TARGET = "numba", "gdsl numpy target"    # gdsl's numba target; the NumPy one beside it
PEERS = {"autograd": wl.autograd_impl, "torch": wl.torch_impl, "jax": wl.jax_impl,
         "pytensor": wl.pytensor_impl, NUMBA: None}
CHILD_PEERS = ("torch", "jax", "pytensor", NUMBA)    # each in a process of its own


def set_malloc(default: bool) -> dict:
    """Fix glibc's mmap and trim thresholds to MALLOC (unless `default`): what was done, for
    the report. Elsewhere than Linux/glibc (musl, macOS, Windows), nothing."""
    libc = platform.libc_ver()[0]
    if default:
        return {"setting": "default", "libc": libc}
    if sys.platform != "linux" or libc != "glibc":
        return {"setting": "default", "libc": libc or "?", "note": "not glibc: left alone"}
    import ctypes
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = {k: bool(mallopt(code, MALLOC[k])) for k, code in
          (("M_MMAP_THRESHOLD", M_MMAP_THRESHOLD), ("M_TRIM_THRESHOLD", M_TRIM_THRESHOLD))}
    return {"setting": "mallopt" if all(ok.values()) else "mallopt failed", "libc": libc,
            "glibc": platform.libc_ver()[1], **MALLOC, "accepted": ok}


def malloc_text(m: dict) -> str:
    if m["setting"] == "default":
        return (f"{m['libc']} malloc as it comes (glibc: dynamic mmap threshold)"
                + (f"; {m['note']}" if "note" in m else ""))
    return (f"glibc {m['glibc']} mallopt M_MMAP_THRESHOLD={m['M_MMAP_THRESHOLD'] >> 20} MiB, "
            f"M_TRIM_THRESHOLD={m['M_TRIM_THRESHOLD'] >> 20} MiB at start-up in every process "
            f"(this one and the PyTorch/JAX children; {m['setting']}); `--default-malloc` "
            "leaves glibc's dynamic threshold")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def label(kind, dims):
    return f"{kind} " + " ".join(f"{k}={v}" for k, v in dims.items() if k != "C")


# -- timing ---------------------------------------------------------------------------------

def time_all(fns: dict, *, rounds: int, target: float, budget: float) -> dict:
    """Median seconds per call of each fn. Calls are batched so a batch lasts ~`target` s;
    the fns are interleaved round by round (rotating the order) so that load on the machine
    hits them alike; the number of rounds shrinks so one workload stays within `budget` s."""
    batch, single = {}, {}
    for name, f in fns.items():     # warm-up (caches, BLAS buffers, JIT), then one timed call
        f()
        t0 = time.perf_counter()
        f()
        single[name] = time.perf_counter() - t0
        batch[name] = max(1, int(target / max(single[name], 1e-7)))
    per_round = sum(batch[k] * single[k] for k in fns)
    rounds = max(5, min(rounds, int(budget / max(per_round, 1e-9))))
    samples = {name: [] for name in fns}
    faults = dict.fromkeys(fns, 0)
    cpu, walls = dict.fromkeys(fns, 0.0), dict.fromkeys(fns, 0.0)     # threads at work
    names = list(fns)
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                f, k = fns[name], batch[name]
                f0 = getrusage(RUSAGE_SELF).ru_minflt
                c0 = time.process_time()
                t0 = time.perf_counter()
                for _ in range(k):
                    f()
                wall = time.perf_counter() - t0
                samples[name].append(wall / k)
                cpu[name] += time.process_time() - c0
                walls[name] += wall
                faults[name] += getrusage(RUSAGE_SELF).ru_minflt - f0
    finally:
        if was:
            gc.enable()
    out = {}
    for name, s in samples.items():
        q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0]] * 3
        out[name] = {"median": statistics.median(s), "q1": q[0], "q3": q[2], "min": min(s),
                     "batch": batch[name], "rounds": rounds,
                     "faults": faults[name] / (rounds * batch[name]),
                     "cpu_per_wall": cpu[name] / walls[name] if walls[name] else None}
    return out


def peak_memory(fn) -> int:
    """Peak bytes allocated during one call beyond what was live before it (tracemalloc sees
    NumPy's array buffers; it does not see PyTorch's or XLA's allocators). `fn` is warm."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
        del out
    finally:
        tracemalloc.stop()
    return peak - base


# -- checking -------------------------------------------------------------------------------

def compare(ref, got) -> float:
    """Largest relative error: |ΔJ|/|J| and, per gradient, max|Δg|/max|g|."""
    (J0, g0), (J1, g1) = ref, got
    errs = [abs(float(J1) - float(J0)) / max(abs(float(J0)), 1e-300)]
    if len(g0) != len(g1):
        return math.inf
    for a, b in zip(g0, g1):
        b = np.asarray(b)
        if a.shape != b.shape:
            return math.inf
        errs.append(float(np.max(np.abs(b.astype(np.float64) - a))) / max(np.max(np.abs(a)),
                                                                          1e-300))
    return max(errs)


def grad_dtypes(result) -> set:
    J, gs = result
    return {str(np.asarray(J).dtype)} | {str(np.asarray(g).dtype) for g in gs}


# -- one workload ---------------------------------------------------------------------------

def build_impls(kind, dims, dtype, peers, args, notes):
    """{name: (step, to_numpy)} for gdsl, hand-written NumPy and the `peers`; records errors
    and first-call (JAX compile) times in `notes`."""
    import gdsl

    lam = wl.LAM[kind]
    a = wl.make_data(kind, dims, dtype)
    pnames = wl.PARAMS[kind]
    gargs = dict(a, lam=lam)       # lam as a Python float, as a user passes it
    impls = {}

    def gd_conv(r):
        return np.asarray(r[0]), [np.asarray(r[1][k]) for k in pnames]

    params = [a[k] for k in pnames]
    hand = wl.NUMPY[kind]
    impls[NUMPY] = (lambda: hand(*params, a["x"], a["y"], lam), lambda r: r)
    if GDSL in peers:
        try:
            m = gdsl.compile(wl.TEXTS[kind])
            vg = m.module.value_and_grad
            impls[GDSL] = (lambda: vg(**gargs), gd_conv)
            impls[WRAPPER] = (lambda: m.value_and_grad(**gargs), gd_conv)
            notes["source"] = m.source
            notes["wrapper_us"] = wrapper_overhead(wl.TEXTS[kind], gargs)
        except Exception as e:  # noqa: BLE001 -- a broken emitter is reported, not fatal
            notes["errors"][GDSL] = f"{type(e).__name__}: {e}"
        try:        # the one-liner (specialised at its first call) and its declared twin
            one = gdsl.compile(wl.ONELINERS[kind], wrt=list(pnames))
            twin = gdsl.compile(wl.TWINS[kind], wrt=list(pnames))
            impls[ONELINER] = (lambda: one.value_and_grad(**gargs), gd_conv)
            impls[TWIN] = (lambda: twin.value_and_grad(**gargs), gd_conv)
            notes["twin_code"] = same_code(one.specialised(**gargs).source, twin.source)
        except Exception as e:  # noqa: BLE001
            notes["errors"][ONELINER] = f"{type(e).__name__}: {e}"
        if not args.no_O0:
            try:
                m0 = gdsl.compile(wl.TEXTS[kind], optimize=False)
                vg0 = m0.module.value_and_grad
                impls[O0] = (lambda: vg0(**gargs), gd_conv)
            except Exception as e:  # noqa: BLE001
                notes["errors"][O0] = f"{type(e).__name__}: {e}"
        xr, yr = np.ascontiguousarray(a["x"].T), np.ascontiguousarray(a["y"].T)
        rows = wl.NUMPY_ROWS[kind]
        impls[ROWS] = (lambda: rows(*params, xr, yr, lam), lambda r: r)
        chunked = wl.NUMPY_CHUNKED[kind]
        if dims["n"] > wl.CHUNK:
            impls[CHUNKED] = (lambda: chunked(*params, xr, yr, lam), lambda r: r)
        impls[FLOOR] = (wl.blas_floor(kind, a), None)

    if NUMBA in peers:              # gdsl's numba target, and the NumPy target in this process
        try:
            t0 = time.perf_counter()
            nb = gdsl.compile(wl.TEXTS[kind], target=NUMBA)
            notes["first_call"]["numba emit"] = time.perf_counter() - t0
            ref = gdsl.compile(wl.TEXTS[kind])
            impls[TARGET] = (lambda: ref.module.value_and_grad(**gargs), gd_conv)
        except Exception as e:  # noqa: BLE001
            notes["errors"][NUMBA] = f"{type(e).__name__}: {e}"
    for name, make in PEERS.items():
        if name not in peers:
            continue
        try:
            if name == NUMBA:
                if NUMBA in notes["errors"]:
                    continue
                step, conv = (lambda: nb.value_and_grad(**gargs)), gd_conv
            else:
                step, conv = make(kind, a, lam)
            t0 = time.perf_counter()
            step()                                   # JAX: trace + compile
            notes["first_call"][name] = time.perf_counter() - t0
            impls[name] = (step, conv)
        except ImportError as e:
            notes["errors"][name] = f"not installed ({e.name})"
        except Exception as e:  # noqa: BLE001 -- a broken peer is reported
            notes["errors"][name] = f"{type(e).__name__}: {e}"
    return a, impls


def wrapper_overhead(text, arrays) -> float | None:
    """µs that CompiledModel.value_and_grad adds to the emitted function: timed with the
    emitted function replaced by a stub, so the figure does not drown in the step's noise.
    (A model of its own: its first call remembers the function it runs.)"""
    import types

    import gdsl

    m = gdsl.compile(text)
    calls = []
    stub = types.SimpleNamespace(**vars(m.module))
    stub.value_and_grad = lambda **kw: calls.append(1)
    m.module = stub
    m.value_and_grad(**arrays)
    if not calls:                    # the wrapper does not go through m.module
        return None
    best = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(200):
            m.value_and_grad(**arrays)
        best.append((time.perf_counter() - t0) / 200)
    return statistics.median(best) * 1e6


def same_code(specialised: str, twin: str) -> str:
    """How the one-liner's specialised module compares with its declared twin's, from the
    first function on (the header holds the title and the declared shapes)."""
    a, b = (src[src.index("\ndef forward"):] for src in (specialised, twin))
    if a == b:
        return "identical"
    if sorted(a.splitlines()) == sorted(b.splitlines()):
        return "the same statements, in another order"
    return "different"


def run_workload(kind, dims, dtype, peers, args, memory=True):
    """Check every implementation against hand-written NumPy in float64, then time them."""
    notes = {"errors": {}, "first_call": {}, "err": {}, "dtypes": {}}
    a, impls = build_impls(kind, dims, dtype, peers, args, notes)
    a64 = {k: v.astype(np.float64) for k, v in a.items()}
    ref = wl.NUMPY[kind](*[a64[k] for k in wl.PARAMS[kind]], a64["x"], a64["y"], wl.LAM[kind])
    timed = {}
    for name, (step, conv) in impls.items():
        if conv is None:
            timed[name] = step
            continue
        try:
            r = conv(step())
        except Exception as e:  # noqa: BLE001 -- reported in the table
            notes["errors"][name] = f"{type(e).__name__}: {e}"
            continue
        err = compare(ref, r)
        notes["err"][name] = err
        notes["dtypes"][name] = sorted(grad_dtypes(r))
        if not err <= RTOL[dtype]:
            notes["errors"][name] = f"disagrees with hand-written NumPy: rel err {err:.2e}"
            log(f"  !! {name}: rel err {err:.2e} > {RTOL[dtype]}")
            if name not in (GDSL, WRAPPER, O0, ONELINER, TWIN, NUMBA):   # a wrong peer
                continue                                                   # is not timed
        timed[name] = step
    checked = dict(timed)
    times = time_all(timed, rounds=args.rounds, target=args.target, budget=args.budget)
    mem = {}
    if memory:
        for name in (GDSL, WRAPPER, O0, NUMPY, ROWS, CHUNKED, "autograd"):
            if name in checked:
                mem[name] = peak_memory(checked[name])
    return {"kind": kind, "dims": dims, "dtype": dtype, "label": label(kind, dims),
            "times": times, "mem": mem, "errors": notes["errors"],
            "first_call": notes["first_call"], "err": notes["err"], "dtypes": notes["dtypes"],
            "source": notes.get("source"), "wrapper_us": notes.get("wrapper_us"),
            "twin_code": notes.get("twin_code")}


def selected(args):
    """The workloads to run; --quick leaves out n=10000 unless --only asks for it."""
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    return [(kind, dims, dtype) for dtype in dtypes for kind, dims in WORKLOADS
            if (args.only in label(kind, dims) + " " if args.only else
                not (args.quick and dims["n"] > 1000))]


def jax_threads(n: int) -> None:
    """Give XLA's CPU client a pool of n threads. XLA sizes its pool (which runs the matrix
    products: XNNPACK/YNNPACK, not Eigen, in jaxlib 0.10) from the CPUs the process may run on
    when the client is made; --xla_cpu_multi_thread_eigen=false only affects Eigen's products
    and `intra_op_parallelism_threads` is not an XLA flag. So: make the client on n CPUs, then
    give the process its CPUs back (CPU time / wall time of each step is reported)."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, sorted(cpus)[:n])
    try:
        import jax
        jax.devices()
    finally:
        os.sched_setaffinity(0, cpus)


def xla_workers() -> str:
    """The threads of this process by name (XLA's workers are tf_XLAEigen): what ran."""
    names = []
    for task in Path("/proc/self/task").glob("*/comm"):
        try:
            names.append(task.read_text().strip())
        except OSError:
            pass
    return f"{names.count('tf_XLAEigen')} tf_XLAEigen worker thread(s)" if names else "?"


def child_peer(peer: str, args) -> dict:
    """PyTorch and JAX run in a process of their own, each against hand-written NumPy timed
    in the same process: their thread pools (OpenMP, Eigen) and NumPy's OpenBLAS threads
    would otherwise spin against each other on 2 cores and distort every figure."""
    if args.threads and peer == "torch":
        import torch
        torch.set_num_threads(args.threads)
    if args.threads and peer == "jax":
        jax_threads(args.threads)
    out = {}
    for kind, dims, dtype in selected(args):
        r = run_workload(kind, dims, dtype, [peer], args, memory=False)
        out[f"{r['label']}|{dtype}"] = {k: r[k] for k in ("times", "errors", "first_call", "err",
                                                           "dtypes")}
        log(f"  [{peer}] {r['label']} {dtype}: " + ", ".join(
            f"{k} {v['median'] * 1e3:.3f} ms" for k, v in r["times"].items()))
    info = {}
    if peer == "torch":
        import torch
        info["torch_threads_default"] = torch.get_num_threads()
        cfg = torch.__config__.show().replace(",", "\n").splitlines()
        info["torch_threads"] = torch.get_num_threads()
        info["torch_blas"] = ", ".join(x.strip() for x in cfg if "BLAS_INFO" in x) or "?"
        info["torch_cpu"] = ", ".join(x.strip(" -") for x in cfg if "CPU capability" in x)
    elif peer == "jax":
        import jax
        info["jax_devices"] = str(jax.devices())
        info["jax_pool"] = xla_workers()
    elif peer in ("pytensor", NUMBA):
        from importlib.metadata import version
        info[f"{peer}_versions"] = {k: version(k) for k in ("numba", "llvmlite", "scipy", "pytensor")
                                    if _installed(k)}
        try:
            from threadpoolctl import threadpool_info
            info[f"{peer}_blas"] = [f"{q.get('internal_api')} {q.get('version')} "
                                    f"({q.get('filepath', '').rsplit('/', 3)[-3] if q.get('filepath') else '?'}), "
                                    f"{q.get('num_threads')} threads" for q in threadpool_info()
                                    if q.get("user_api") == "blas"]
        except ImportError:
            pass
    info[f"malloc_{peer}"] = _malloc[0]
    return {"results": out, "info": info}


def _installed(name: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version
    try:
        version(name)
        return True
    except PackageNotFoundError:
        return False


def run_peers(args, results, info):
    """Run each out-of-process peer over the selected workloads and merge into `results`."""
    for peer in CHILD_PEERS:
        if peer in args.skip:
            continue
        log(f"{peer} (own process) ...")
        cmd = ["peer", peer, "--dtype", args.dtype, "--only", args.only]
        if args.quick:
            cmd.append("--quick")
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        got = run_child(cmd, timeout=900)
        if "timeout" in got or "error" in got:
            for r in results:
                r["errors"][peer] = f"child process failed: {got}"
            continue
        info.update(got["info"])
        for r in results:
            c = got["results"].get(f"{r['label']}|{r['dtype']}")
            if not c:
                continue
            t = c["times"]
            if peer in t:
                r["peer_ratio"][peer] = t[peer]["median"] / t[NUMPY]["median"]
                r["peer_times"][peer] = {"peer": t[peer], "numpy": t[NUMPY],
                                         **({"target": t[TARGET]} if TARGET in t else {})}
            for k in ("errors", "first_call", "err", "dtypes"):
                if peer in c[k]:
                    r[k][peer] = c[k][peer]


# -- compile time (in child processes: a clean heap, a timeout, no torch/jax loaded) ----------

def chain_text(k: int) -> str:
    lines = ["param a0[n, 1]"]
    lines += [f"a{i} = tanh(a{i - 1}) * 0.5 + a{i - 1}" for i in range(1, k + 1)]
    lines.append(f"J = sum(a{k})")
    return "\n".join(lines) + "\n"


def child_chain(k: int) -> dict:
    import gdsl
    import gdsl.runtime as gc_

    stages, last = {}, [0.0]

    def after(name, _m):
        t = time.perf_counter()
        stages[name] = t - last[0]
        last[0] = t

    orig = gc_.run_pipeline

    def patched(*a, **kw):
        try:
            return orig(*a, after=after, **kw)
        except TypeError:                      # the pipeline no longer takes `after`
            return orig(*a, **kw)

    gdsl.compile(chain_text(1))                # build the Lark parser outside the timing
    gc_.run_pipeline = patched
    text = chain_text(k)
    t0 = time.perf_counter()
    last[0] = t0
    m = gdsl.compile(text)
    total = time.perf_counter() - t0
    fwd = len(getattr(m.model, "forward_order", []) or [])
    bwd = len(getattr(m.model, "backward_order", []) or [])
    if stages:    # the rest: CompiledModel writes the module to a file and imports it
        stages["load module"] = total - sum(stages.values())
    return {"statements": k + 1, "forward_nodes": fwd, "backward_nodes": bwd,
            "graph_nodes": m.graph.number_of_nodes(), "lines": len(m.source.splitlines()),
            "seconds": total, "stages": {s: round(v, 4) for s, v in stages.items()}}


def child_numba_start(kind: str) -> dict:
    """One process: import gdsl, compile the workload for numba, call value_and_grad twice
    (W1 and W2 at d=64, n=32). With an empty cache the first call compiles the step; with
    the cache another process left, it loads the machine code."""
    t0 = time.perf_counter()
    import gdsl
    t1 = time.perf_counter()
    m = gdsl.compile(wl.TEXTS[kind], target=NUMBA)
    t2 = time.perf_counter()
    a = dict(wl.make_data(kind, {"d": 64, "C": 10, "n": 32, "m": 50}, np.float64),
             lam=wl.LAM[kind])
    m.value_and_grad(**a)
    t3 = time.perf_counter()
    m.value_and_grad(**a)
    t4 = time.perf_counter()
    stats = m.module._value_and_grad_step.stats
    return {"import_s": t1 - t0, "emit_s": t2 - t1, "first_call_s": t3 - t2,
            "second_call_s": t4 - t3, "cache_hits": len(stats.cache_hits),
            "cache_misses": len(stats.cache_misses)}


def numba_start(args) -> dict:
    """child_numba_start twice per workload on one new cache directory: a cold start (the
    step compiled) and a second process (the step loaded from numba's cache)."""
    import tempfile
    out = {}
    for kind in ("W1", "W2"):
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["GDSL_CACHE"] = tmp
            try:
                runs = [run_child(["numba-start", kind], 600) for _ in range(2)]
            finally:
                del os.environ["GDSL_CACHE"]
        out[kind] = {"cold": runs[0], "cached": runs[1]}
        log(f"numba start-up {kind}: {runs}")
    return out


def child_models() -> dict:
    t0 = time.perf_counter()
    import gdsl
    out = {"import_s": time.perf_counter() - t0, "models": {}}
    models = GDSL_PATH / "models" if (GDSL_PATH / "models").is_dir() else ROOT / "models"
    for i, path in enumerate(sorted(models.glob("*.gdsl"))):
        t0 = time.perf_counter()
        gdsl.compile_file(path)
        first = time.perf_counter() - t0
        reps = []
        for _ in range(15):
            t0 = time.perf_counter()
            gdsl.compile_file(path)
            reps.append(time.perf_counter() - t0)
        out["models"][path.name] = {"first": first, "median": statistics.median(reps),
                                        "first_in_process": (i == 0)}
    return out


def run_child(what: list[str], timeout: float):
    """Run this script as `--_child WHAT...` and return the JSON it prints last."""
    me = str(Path(__file__).resolve())
    flags = ["--default-malloc"] if _malloc[0]["setting"] == "default" else []
    cmd = [sys.executable, me, "--gdsl-path", str(GDSL_PATH), *flags, "--_child", *what]
    live = what[0] == "peer"
    if live:                       # "peer NAME --flags...": the flags go to the child's parser
        cmd = [sys.executable, me, "--gdsl-path", str(GDSL_PATH), *flags, *what[2:],
               "--_child", *what[:2]]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if live else subprocess.PIPE,
                           text=True, timeout=timeout, cwd=ROOT, check=False)
    except subprocess.TimeoutExpired:
        return {"timeout": timeout, "wall": time.perf_counter() - t0}
    if p.returncode != 0:
        tail = ((p.stderr or "").strip().splitlines() or [f"exit status {p.returncode}"])[-1]
        return {"error": tail, "wall": time.perf_counter() - t0}
    return json.loads(p.stdout.strip().splitlines()[-1])


def compile_bench(args) -> dict:
    res = {"models": run_child(["models"], 300), "chains": {}}
    sizes = CHAIN_SIZES[:2] if args.quick else CHAIN_SIZES
    repeats = 1 if args.quick else CHAIN_REPEATS
    cli_compile(10, args.chain_timeout)         # warm: the parser's cache file, the file cache
    for size in sizes:
        log(f"compile: chain of ~{size} nodes, {repeats} run(s) ...")
        runs = []
        for _ in range(repeats):
            r = run_child(["chain", str(max(1, size // 3))], args.chain_timeout)
            if "seconds" not in r:
                break
            runs.append(r)
            log(f"  {r['seconds']:.2f} s")
        if not runs:
            log(f"  {r}")
            res["chains"][size] = r
            break                                   # a larger graph would only take longer
        # the fastest run is the figure (as timeit's best of n: a busy host only adds time)
        res["chains"][size] = dict(min(runs, key=lambda r: r["seconds"]),
                                   runs=[r["seconds"] for r in runs])
        cli = [c for c in (cli_compile(size // 3, args.chain_timeout) for _ in range(repeats))
               if c is not None]
        res["chains"][size]["cli_runs"] = cli
        log("  gdsl compile: " + ", ".join(f"{c:.2f} s" for c in cli))
    return res


def cli_compile(k: int, timeout: float) -> float:
    """Wall seconds of `gdsl compile chain.gdsl -o chain.py` in a fresh process, as a user
    types it: the interpreter's start, imports, the whole pipeline and the file written.
    (`python3 -m gdsl.cli` rather than the `gdsl` script, whose pyenv or venv shim is not
    gdsl's, and so that --gdsl-path is the tree run.)"""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "chain.gdsl"
        src.write_text(chain_text(k))
        env = {**os.environ, "PYTHONPATH": str(GDSL_PATH)}
        cmd = [sys.executable, "-m", "gdsl.cli", "compile", str(src), "-o", str(Path(tmp) / "c.py")]
        t0 = time.perf_counter()
        try:
            subprocess.run(cmd, capture_output=True, env=env, timeout=timeout, check=True)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            log(f"  gdsl compile failed: {e}")
            return None
        return time.perf_counter() - t0


# -- the machine ----------------------------------------------------------------------------

def machine_info(args) -> dict:
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
            "platform": platform.platform(), "loadavg_start": os.getloadavg()}
    import gdsl
    info["gdsl_file"] = str(Path(gdsl.__file__).parent)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        info["cpu"] = platform.processor()
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except (KeyError, TypeError, ValueError):
        info["numpy_blas"] = "?"
    try:
        from threadpoolctl import threadpool_info
        info["threadpools"] = [
            {k: p.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                   "architecture")} for p in threadpool_info()]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    info["env"] = {k: os.environ.get(k) for k in ENV_VARS}
    info["threads"] = args.threads
    info["malloc"] = _malloc[0]
    info["fault_us"] = fault_cost()
    from importlib.metadata import PackageNotFoundError, version
    for mod in ("autograd", "torch", "jax", "jaxlib"):
        try:
            info[mod] = version(mod)
        except PackageNotFoundError:
            info[mod] = None
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
                              capture_output=True, text=True, check=False).stdout.strip()
        if GDSL_PATH != ROOT:
            info["gdsl_commit"] = f"from {GDSL_PATH} (this repository is at {head})"
        else:
            dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "gdsl"],
                                   capture_output=True, text=True, check=False).stdout.strip()
            info["gdsl_commit"] = head + (" (+ uncommitted changes in gdsl/)" if dirty else "")
    except OSError:
        info["gdsl_commit"] = "?"
    return info


# -- the report -----------------------------------------------------------------------------

def fmt_ms(s):
    return f"{s * 1e3:.3f}" if s < 0.01 else f"{s * 1e3:.2f}" if s < 1 else f"{s * 1e3:.0f}"


def ratio(r, name):
    t = r["times"]
    if name in r.get("peer_ratio", {}):
        x = r["peer_ratio"][name]
    elif name in t:
        x = t[name]["median"] / t[NUMPY]["median"]
    else:
        return "—"
    bad = " ✗" if name in r["errors"] else ""
    return f"{x:.2f}×{bad}"


def best(r):
    """gdsl / NumPy from each one's fastest round: what the ratio is when no burst of load
    from other processes hit either (the median is the figure of record)."""
    t = r["times"]
    if GDSL not in t or "min" not in t[GDSL]:
        return "—"
    return f"{t[GDSL]['min'] / t[NUMPY]['min']:.2f}×"


def flt(r, name):
    t = r["times"].get(name)
    return f"{t['faults']:.0f}" if t and "faults" in t else "—"


def peer_flt(r, peer):
    t = r.get("peer_times", {}).get(peer)
    if not t or "faults" not in t["peer"]:
        return "—"
    return f"{t['peer']['faults']:.0f} ({t['numpy']['faults']:.0f})"


def threads_at_work(results) -> str:
    """CPU time over wall time while timing, min-max over the workloads, per implementation:
    1.00 is one thread at work, 2.00 two (a library that ignored its thread limit shows)."""
    seen: dict[str, list[float]] = {}
    for r in results:
        timed = [(k, t) for k, t in r["times"].items() if k in (NUMPY, GDSL, "autograd")]
        timed += [(p, t["peer"]) for p, t in r.get("peer_times", {}).items()]
        for k, t in timed:
            if t.get("cpu_per_wall") is not None:
                seen.setdefault(k, []).append(t["cpu_per_wall"])
    names = {NUMPY: "NumPy", GDSL: "gdsl", "autograd": "autograd", "torch": "PyTorch",
             "jax": "JAX", "pytensor": "PyTensor (numba)", NUMBA: "gdsl numba"}
    return ", ".join(f"{names[k]} {min(v):.2f}-{max(v):.2f}" for k, v in seen.items())


def fault_cost() -> float:
    """µs per minor page fault: first touch of freshly mapped memory (64 MiB, mmap'd)."""
    import mmap

    size = 64 << 20
    best = math.inf
    for _ in range(3):
        m = mmap.mmap(-1, size)
        a = np.frombuffer(m, dtype=np.uint8)
        f0 = getrusage(RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        a[::4096] = 1
        dt = time.perf_counter() - t0
        n = getrusage(RUSAGE_SELF).ru_minflt - f0
        del a
        m.close()
        best = min(best, dt / max(n, 1) * 1e6)
    return best


def report(results, comp, info, args) -> str:
    out = []
    w = out.append
    w(f"Run: `{' '.join(['python3', 'benchmarks/bench.py', *sys.argv[1:]])}` on "
      f"{time.strftime('%Y-%m-%d %H:%M')}, gdsl {info.get('gdsl_commit')}.\n")
    w("### Machine\n")
    w(f"- CPU: {info.get('cpu')}; nproc {info['nproc']} (affinity {info['affinity']}); "
      f"{info['platform']}; a minor page fault (first touch of fresh memory) costs "
      f"{info['fault_us']:.2f} µs")
    w(f"- Python {info['python']}, NumPy {info['numpy']} with {info['numpy_blas']}")
    tp = info["threadpools"]
    if isinstance(tp, list):
        for p in tp:
            w(f"- threadpoolctl: {p['internal_api']} {p['version']} ({p['user_api']}), "
              f"{p['num_threads']} threads, core type {p['architecture']}")
    env = {k: v for k, v in info["env"].items() if v is not None}
    if info.get("threads"):
        w(f"- **--threads {info['threads']}: NumPy's BLAS, PyTorch and XLA limited to "
          f"{info['threads']} thread(s)**")
    w(f"- Allocator: {malloc_text(info['malloc'])}")
    w("- Environment: " + (", ".join(f"{k}={v}" for k, v in env.items()) if env else
                           "none of " + ", ".join(ENV_VARS) + " is set"))
    w(f"- Peers: HIPS autograd {info.get('autograd')}, PyTorch {info.get('torch')} "
      f"({info.get('torch_threads')} threads; {info.get('torch_blas', '?')}; "
      f"{info.get('torch_cpu', '?')}), "
      f"JAX {info.get('jax')} / jaxlib {info.get('jaxlib')} (CPU, x64 enabled"
      + (f"; XLA's pool made on {info['threads']} CPU(s), {info.get('jax_pool', '?')}"
         if info.get("threads") else "") + ")")
    for peer, what in (("pytensor", "PyTensor (numba mode)"), (NUMBA, "gdsl's numba target")):
        if info.get(f"{peer}_versions"):
            v = info[f"{peer}_versions"]
            w(f"- {what}: " + ", ".join(f"{k} {x}" for k, x in v.items())
              + "; BLAS in its process: " + "; ".join(info.get(f"{peer}_blas") or ["?"]))
    w(f"- CPU time / wall time while timing (1.00: one thread at work), min-max over the "
      f"workloads: {threads_at_work(results)}")
    w(f"- Load average at start / end: {' '.join(f'{x:.2f}' for x in info['loadavg_start'])}"
      f" / {' '.join(f'{x:.2f}' for x in info['loadavg_end'])} "
      "(the machine may be shared; ratios are interleaved round by round)")
    busy = max(info["loadavg_start"][0], info["loadavg_end"][0]) - 1.0
    if busy > 0.5 * info["affinity"]:
        w(f"- **Warning: the machine was busy (load average above {busy + 1:.1f} on "
          f"{info['affinity']} cores, ~1.0 of it this benchmark). Multi-threaded BLAS on a busy "
          "machine waits for descheduled threads: absolute times and ratios are unreliable.**")
    w("")

    for dtype in dict.fromkeys(r["dtype"] for r in results):
        rs = [r for r in results if r["dtype"] == dtype]
        w(f"### Loss + gradient, {dtype}: median ms per call, ratio to hand-written NumPy\n")
        w("| workload | NumPy ms | gdsl ms | **gdsl** | gdsl best | gdsl -O0 | wrapper µs "
          "| NumPy rows | rows chunked | BLAS floor | autograd | PyTorch | JAX jit "
          "| JAX 1st call ms |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rs:
            t = r["times"]
            g = t.get(GDSL)
            wrap = f"{r['wrapper_us']:.1f}" if r.get("wrapper_us") is not None else "—"
            jc = r["first_call"].get("jax")
            w(f"| {r['label']} | {fmt_ms(t[NUMPY]['median'])} | "
              f"{fmt_ms(g['median']) if g else '—'} | **{ratio(r, GDSL)}** | {best(r)} | "
              f"{ratio(r, O0)} | "
              f"{wrap} | {ratio(r, ROWS)} | {ratio(r, CHUNKED)} | {ratio(r, FLOOR)} | "
              f"{ratio(r, 'autograd')} | "
              f"{ratio(r, 'torch')} | {ratio(r, 'jax')} | "
              f"{fmt_ms(jc) if jc is not None else '—'} |")
        w("")

    w("### Peak extra memory of one step (tracemalloc), MB and ratio to hand-written NumPy\n")
    w("Page faults: minor page faults per call while timing (interleaved with the other "
      "implementations), i.e. fresh 4 KiB pages that the kernel maps and zeroes because glibc "
      f"gave memory back (heap trim, munmap) after an earlier call; here one costs "
      f"~{info.get('fault_us', float('nan')):.1f} µs. PyTorch and JAX are counted in their own "
      "process, with the hand-written NumPy timed there in brackets. Allocator: "
      f"{malloc_text(info['malloc'])}.\n")
    w("| workload | dtype | NumPy MB | gdsl MB | **gdsl** | gdsl wrapper | gdsl -O0 | NumPy rows "
      "| rows chunked | autograd | page faults gdsl / NumPy | PyTorch (its NumPy) "
      "| JAX (its NumPy) |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        m = r["mem"]
        base = m[NUMPY]

        def mr(k, m=m, base=base):
            return f"{m[k] / base:.2f}×" if k in m else "—"
        w(f"| {r['label']} | {r['dtype']} | {base / 2**20:.2f} | "
          f"{m[GDSL] / 2**20 if GDSL in m else float('nan'):.2f} | **{mr(GDSL)}** | "
          f"{mr(WRAPPER)} | {mr(O0)} | {mr(ROWS)} | {mr(CHUNKED)} | {mr('autograd')} | "
          f"{flt(r, GDSL)} / {flt(r, NUMPY)} | {peer_flt(r, 'torch')} | {peer_flt(r, 'jax')} |")
    w("")

    w(call_path_tables(results, info))

    w("### Agreement (checked before timing)\n")
    worst = {}
    for r in results:
        for k, e in r["err"].items():
            worst[(r["dtype"], k)] = max(worst.get((r["dtype"], k), 0.0), e)
    for dtype in dict.fromkeys(r["dtype"] for r in results):
        items = ", ".join(f"{k} {e:.1e}" for (d, k), e in worst.items() if d == dtype)
        w(f"- {dtype} (tolerance {RTOL[dtype]:g}; largest relative error against hand-written "
          f"NumPy in float64): {items}")
    for r in results:
        for k, e in r["errors"].items():
            w(f"- **{r['label']} {r['dtype']}: {k}: {e}**")
        if r["dtype"] == "float32":
            up = [k for k, d in r["dtypes"].items() if "float64" in d]
            if up:
                w(f"- {r['label']} float32: returns float64 values: {', '.join(up)}")
    w("")

    w("### Must show\n")
    for line in must_show(results, comp):
        w(f"- {line}")
    w("")

    if comp:
        w("### Compile time\n")
        mo = comp["models"]
        if "models" in mo:
            w(f"`gdsl.compile_file` of each model in models/, in process after `import gdsl` "
              f"({mo['import_s'] * 1e3:.0f} ms); median of 15 and the first call "
              f"(the first in the process also loads the Lark parser from gdsl's cache, or builds it):\n")
            w("| model | median ms | first call ms | < 50 ms |")
            w("|---|---|---|---|")
            for name, v in mo["models"].items():
                w(f"| {name} | {v['median'] * 1e3:.1f} | {v['first'] * 1e3:.1f}"
                  f"{' (parser load)' if v['first_in_process'] else ''} | "
                  f"{'✓' if v['median'] < 0.05 else '✗'} |")
            w("")
        else:
            w(f"models: {mo}\n")
        w("`gdsl.compile` of a chain `a{i} = tanh(a{i-1}) * 0.5 + a{i-1}` (3 forward nodes per "
          "statement), each run in a fresh process, including Python's import of the emitted "
          "module; the figure is the fastest run, the stage split that run's, from "
          "`run_pipeline(after=)`:\n")
        w("The last columns time `gdsl compile chain.gdsl -o chain.py` in a fresh process "
          "(`python3 -m gdsl.cli`: the interpreter's start, imports, the pipeline, the file "
          "written; no import of the module), fastest and all runs.\n")
        w("| nodes (target) | statements | forward nodes | value_and_grad nodes | compile s "
          "| all runs s | × previous | stages s | `gdsl compile` s | all runs s |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        prev = None
        for size, v in comp["chains"].items():
            if "seconds" in v:
                x = f"{v['seconds'] / prev:.1f}×" if prev else ""
                st = ", ".join(f"{k} {s:.2f}" for k, s in v["stages"].items())
                runs = ", ".join(f"{r:.2f}" for r in v.get("runs", [v["seconds"]]))
                cli = v.get("cli_runs") or []
                cli_min = f"{min(cli):.2f}" if cli else "—"
                w(f"| {int(size):,} | {v['statements']:,} | {v['forward_nodes']:,} | "
                  f"{v.get('backward_nodes', 0):,} | {v['seconds']:.2f} | {runs} | {x} | {st} | "
                  f"{cli_min} | {', '.join(f'{c:.2f}' for c in cli)} |")
                prev = v["seconds"]
            elif "timeout" in v:
                w(f"| {int(size):,} | {int(size) // 3 + 1:,} | | | **> {v['timeout']:.0f} "
                  f"(timed out)** | | {'> %.0f×' % (v['timeout'] / prev) if prev else ''} | | | |")
            else:
                w(f"| {int(size):,} | | | | **error: {v.get('error')}** | | | | | |")
        w("")
    return "\n".join(out)


def _r(r, a, b) -> float | None:
    t = r["times"]
    return t[a]["median"] / t[b]["median"] if a in t and b in t else None


def _x(v, digits=2) -> str:
    return "—" if v is None else f"{v:.{digits}f}×"


def numba_vs_target(r) -> float | None:
    """gdsl's numba target over its NumPy target, both timed in the numba child."""
    pt = r.get("peer_times", {}).get(NUMBA)
    return pt["peer"]["median"] / pt["target"]["median"] if pt and "target" in pt else None


def call_path_tables(results, info) -> str:
    out = []
    w = out.append
    w("### The call, the one-liner and the numba target\n")
    w("`value_and_grad / module`: the model's `value_and_grad` (the call gate, the checks of a "
      "new signature, the conversions) over the emitted function called directly, in one run. "
      "`one-liner / twin`: the workload written as one line with no declarations (shapes bound "
      "and specialised at its first call) over the same line with its inputs declared, both "
      "through `model.value_and_grad`; `code` compares the one-liner's specialised module with "
      "the twin's from the first function on. `numba`: gdsl's numba target through "
      "`model.value_and_grad`, in a process of its own with hand-written NumPy and the NumPy "
      "target timed beside it; `PyTensor`: its numba mode (`pytensor.function(..., "
      "mode=\"NUMBA\")`, `trust_input=True`), in its own process too. First call: the numba "
      "compile of the step (gdsl: `gdsl.compile` emits in milliseconds; numba compiles at the "
      "first call), PyTensor's `pytensor.function` and first call.\n")
    for dtype in dict.fromkeys(r["dtype"] for r in results):
        w(f"#### {dtype}\n")
        w("| workload | module ms | **value_and_grad / module** | **one-liner / twin** | code "
          "| numba ms | **numba / NumPy target** | numba / NumPy | PyTensor / NumPy "
          "| numba / PyTensor | numba 1st call s | PyTensor 1st call s |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in (r for r in results if r["dtype"] == dtype):
            t, pr, pt = r["times"], r.get("peer_ratio", {}), r.get("peer_times", {})
            nb, py = pr.get(NUMBA), pr.get("pytensor")
            fc = r.get("first_call", {})
            first_nb = f"{fc[NUMBA]:.2f}" if NUMBA in fc else "—"
            first_py = f"{fc['pytensor']:.1f}" if "pytensor" in fc else "—"
            w(f"| {r['label']} | {fmt_ms(t[GDSL]['median']) if GDSL in t else '—'} | "
              f"**{_x(_r(r, WRAPPER, GDSL), 3)}** | **{_x(_r(r, ONELINER, TWIN), 3)}** | "
              f"{r.get('twin_code') or '—'} | "
              f"{fmt_ms(pt[NUMBA]['peer']['median']) if NUMBA in pt else '—'} | "
              f"**{_x(numba_vs_target(r))}** | {_x(nb)} | {_x(py)} | "
              f"{_x(nb / py if nb and py else None)} | {first_nb} | {first_py} |")
        w("")
    st = info.get("numba_start")
    if st:
        w("Numba's compile time apart from the step: each line is a fresh process (`import "
          "gdsl`, `gdsl.compile(text, target=\"numba\")`, two `value_and_grad` calls at d=64, "
          "n=32), the second on the cache the first left beside the emitted module "
          "(`@njit(cache=True)`):\n")
        w("| workload | process | import gdsl s | gdsl.compile s | first call s | second call ms "
          "| numba cache hits / misses |")
        w("|---|---|---|---|---|---|---|")
        for kind, runs in st.items():
            for which, v in runs.items():
                if "first_call_s" not in v:
                    w(f"| {kind} | {which} | {v} | | | | |")
                    continue
                w(f"| {kind} | {which} | {v['import_s']:.2f} | {v['emit_s']:.3f} | "
                  f"{v['first_call_s']:.2f} | {v['second_call_s'] * 1e3:.3f} | "
                  f"{v['cache_hits']} / {v['cache_misses']} |")
        w("")
    return "\n".join(out)


def must_show(results, comp) -> list[str]:
    lines = []

    def ok(b):
        return "✓" if b else "✗"

    for r in results:
        t = r["times"]
        if GDSL not in t:
            lines.append(f"{r['label']} {r['dtype']}: gdsl not timed ✗")
            continue
        n = r["dims"]["n"]
        g = t[GDSL]["median"] / t[NUMPY]["median"]
        limit = 1.05 if n >= 100 else 1.25
        parts = [f"gdsl {g:.2f}× NumPy (≤ {limit}) {ok(g <= limit)}"]
        pr = dict(r.get("peer_ratio", {}))
        if "autograd" in t:
            pr["autograd"] = t["autograd"]["median"] / t[NUMPY]["median"]
        if n <= 100:
            for peer in ("autograd", "torch"):
                if peer in pr:
                    parts.append(f"faster than {peer} {ok(g < pr[peer])}")
            if "jax" in pr:
                j = g / pr["jax"]
                jt = r["peer_times"]["jax"]     # each against NumPy in its own process
                jb = (t[GDSL]["min"] / t[NUMPY]["min"]) / (jt["peer"]["min"] / jt["numpy"]["min"])
                parts.append(f"{j:.2f}× JAX (≤ 1.05) {ok(j <= 1.05)}, best rounds {jb:.2f}×")
                if j > 1.05 and FLOOR in t:     # what emitted NumPy would need
                    fl = t[FLOOR]["median"] / t[NUMPY]["median"] / pr["jax"]
                    parts.append(f"NumPy's matrix products alone {fl:.2f}× JAX's whole step")
        m = r["mem"]
        if GDSL in m:
            mm = m[GDSL] / m[NUMPY]
            parts.append(f"memory {mm:.2f}× (≤ 1.2) {ok(mm <= 1.2)}")
        lines.append(f"{r['label']} {r['dtype']}: " + "; ".join(parts))
    lines += must_show_17(results)
    if comp:
        mo = comp["models"].get("models", {})
        if mo:
            worst = max(v["median"] for v in mo.values())
            lines.append(f"models/ compile: slowest median {worst * 1e3:.1f} ms (< 50 ms) "
                         f"{ok(worst < 0.05)}")
        ch = comp["chains"]
        c4, c5 = ch.get(10_000, {}), ch.get(100_000, {})
        if "seconds" in c4:
            lines.append(f"10⁴-node chain: {c4['seconds']:.2f} s (< 2 s) {ok(c4['seconds'] < 2)}"
                         " in process (`gdsl.compile`, module imported)")
            if c4.get("cli_runs"):
                cli = min(c4["cli_runs"])
                lines.append(f"10⁴-node chain: {cli:.2f} s (< 2 s) {ok(cli < 2)} as `gdsl "
                             "compile -o` in a fresh process (start, imports, pipeline, file)")
            if "seconds" in c5:
                x = c5["seconds"] / c4["seconds"]
                lines.append(f"10⁵-node chain: {c5['seconds']:.1f} s, {x:.1f}× the 10⁴ one "
                             f"(≤ 20×) {ok(x <= 20)}")
            elif "timeout" in c5:
                lines.append(f"10⁵-node chain: timed out after {c5['timeout']:.0f} s, "
                             f"> {c5['timeout'] / c4['seconds']:.0f}× the 10⁴ one ✗")
    return lines


def must_show_17(results) -> list[str]:
    """Issue 17: the one-liner, the call, the numba target."""
    def ok(b):
        return "✓" if b else "✗"

    lines = []
    one = [(r, _r(r, ONELINER, TWIN)) for r in results if _r(r, ONELINER, TWIN) is not None]
    if one:
        worst = max(one, key=lambda rv: rv[1])
        lines.append(f"one-liner / declared twin ≤ 1.03 on every workload: worst "
                     f"{worst[1]:.3f}× ({worst[0]['label']} {worst[0]['dtype']}) "
                     f"{ok(worst[1] <= 1.03)}; " + ", ".join(
                         f"{r['label']} {r['dtype']} {v:.3f}×" for r, v in one))
    for r in results:
        if r["label"] == "W1 d=64 n=32":
            v = _r(r, WRAPPER, GDSL)
            if v is not None:
                lines.append(f"W1 d=64 n=32 {r['dtype']}: model.value_and_grad / module "
                             f"{v:.3f}× (≤ 1.05) {ok(v <= 1.05)}")
            nb, py = r.get("peer_ratio", {}).get(NUMBA), r.get("peer_ratio", {}).get("pytensor")
            if nb is not None and py is not None:
                lines.append(f"W1 d=64 n=32 {r['dtype']}: numba target {nb:.2f}× hand-written "
                             f"NumPy, PyTensor's numba mode {py:.2f}× (numba ≤ PyTensor) "
                             f"{ok(nb <= py)}")
            elif nb is not None:
                lines.append(f"W1 d=64 n=32 {r['dtype']}: numba target {nb:.2f}× hand-written "
                             "NumPy; PyTensor not timed ✗")
    big = [(r, numba_vs_target(r)) for r in results if r["dims"]["n"] >= 100
           and numba_vs_target(r) is not None]
    if big:
        worst = max(big, key=lambda rv: rv[1])
        lines.append(f"numba target no slower than the NumPy target at n ≥ 100: worst "
                     f"{worst[1]:.2f}× ({worst[0]['label']} {worst[0]['dtype']}) "
                     f"{ok(worst[1] <= 1.0)}; " + ", ".join(
                         f"{r['label']} {r['dtype']} {v:.2f}×" for r, v in big))
    return lines


def update_readme(path: Path, text: str, tag: str) -> None:
    """Replace the block between <!-- TAG:begin --> and <!-- TAG:end --> with `text`."""
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    readme = path.read_text(encoding="utf-8")
    if begin not in readme or end not in readme:
        log(f"{path}: no {begin} ... {end} markers; not updated")
        return
    head, rest = readme.split(begin, 1)
    tail = rest.split(end, 1)[1]
    text = text.replace("\n### ", "\n#### ")     # the README nests the report one level down
    path.write_text(f"{head}{begin}\n{text}\n{end}{tail}", encoding="utf-8")


_limits: list = []      # keeps the threadpoolctl limit alive
_malloc: list = [{"setting": "default", "libc": "?"}]    # what set_malloc did in this process


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="~1 min smoke run: fewer rounds, no n=10000 (unless --only asks), "
                   "chains up to 10^3 nodes; writes nothing")
    p.add_argument("--dtype", choices=["float64", "float32", "both"], default="both")
    p.add_argument("--only", default="", help="run only workloads whose label contains this, "
                   "e.g. 'W2' or 'n=100 '")
    p.add_argument("--skip", nargs="*", default=[], choices=list(PEERS),
                   help="peers not to run")
    p.add_argument("--no-O0", action="store_true", help="don't time gdsl -O0")
    p.add_argument("--no-compile", action="store_true", help="skip the compile-time benchmark")
    p.add_argument("--chain-timeout", type=float, default=None,
                   help="seconds allowed per chain compile (default 150; 60 with --quick)")
    p.add_argument("--no-write", action="store_true",
                   help="don't write benchmarks/results.{md,json} and README.md")
    p.add_argument("--threads", type=int, default=None,
                   help="limit every library to N threads (NumPy's BLAS via threadpoolctl, "
                   "torch.set_num_threads, XLA's Eigen pool); default: each library's own")
    p.add_argument("--gdsl-path", default=str(ROOT),
                   help="the gdsl source tree to benchmark (default: this repository)")
    p.add_argument("--default-malloc", action="store_true",
                   help="leave glibc's malloc as it comes (its mmap threshold follows the "
                   "process's history) instead of fixing the mmap and trim thresholds with "
                   "mallopt in every process")
    p.add_argument("--_child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    _malloc[0] = set_malloc(args.default_malloc)     # before any workload allocates

    args.rounds = 7 if args.quick else 41
    args.target = 0.004 if args.quick else 0.02
    args.budget = 1.5 if args.quick else 12.0
    if args._child and args._child[0] == "peer":
        args.budget /= 2
    if args.chain_timeout is None:
        args.chain_timeout = 60.0 if args.quick else 150.0
    if args._child and args._child[0] == "peer" and args._child[1] in ("pytensor", NUMBA):
        try:            # numba's np.dot calls SciPy's BLAS: loaded now, limited below with NumPy's
            import scipy.linalg.cython_blas  # noqa: F401
        except ImportError:
            pass
    if args.threads:
        from threadpoolctl import threadpool_limits
        _limits.append(threadpool_limits(args.threads))
    if args._child:
        what = args._child[0]
        res = (child_models() if what == "models" else
               child_chain(int(args._child[1])) if what == "chain" else
               child_numba_start(args._child[1]) if what == "numba-start" else
               child_peer(args._child[1], args))
        print(json.dumps(res))
        return 0

    t_start = time.perf_counter()
    info = machine_info(args)
    in_process = [GDSL] + [k for k in ("autograd",) if k not in args.skip]
    results = []
    for kind, dims, dtype in selected(args):
        log(f"{label(kind, dims)} {dtype} ...")
        r = run_workload(kind, dims, dtype, in_process, args)
        r["peer_ratio"], r["peer_times"] = {}, {}
        log("  " + ", ".join(f"{k} {v['median'] * 1e3:.3f} ms" for k, v in r["times"].items()))
        results.append(r)
    run_peers(args, results, info)
    if NUMBA not in args.skip and _installed("numba"):
        info["numba_start"] = numba_start(args)
    comp = None if args.no_compile else compile_bench(args)
    info["loadavg_end"] = os.getloadavg()
    text = report(results, comp, info, args)
    text += f"\nTotal benchmark time: {time.perf_counter() - t_start:.0f} s.\n"
    print(text)
    if not args.quick and not args.no_write:
        tag = f"-threads{args.threads}" if args.threads else ""
        (HERE / f"results{tag}.md").write_text(text, encoding="utf-8")
        raw = {"machine": info, "compile": comp,
                   "results": [{k: v for k, v in r.items() if k != "source"} for r in results]}
        (HERE / f"results{tag}.json").write_text(json.dumps(raw, indent=1, default=str) + "\n",
                                                 encoding="utf-8")
        update_readme(HERE / "README.md", text, f"bench{tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

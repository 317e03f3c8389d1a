#!/usr/bin/env python3
"""Where does one loss+gradient step spend its time? A per-statement profile of the code gdsl
emits next to the hand-written NumPy of the benchmark, for one workload.

    python3 benchmarks/lines.py W1 --n 100               # d=3072, C=10 unless given
    python3 benchmarks/lines.py W2 --n 10000 --dtype float32 --threads 1

Each statement of `value_and_grad` (and of the hand-written function) is followed by a clock
read, inserted through the `ast` module; the figure per statement is the median over many
calls (helpers such as `_softmax` are charged to the statement that calls them). With
`--threads 1` BLAS runs on the calling thread and `--clock thread` counts only its CPU time,
which stays meaningful on a machine that other processes keep busy.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import statistics
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import workloads as wl


class _Clock(ast.NodeTransformer):
    """After every statement of the function body: `_T.append(_clock())`."""

    def __init__(self, fname):
        self.fname = fname

    def visit_FunctionDef(self, node):
        if node.name != self.fname:
            return node
        tick = ast.parse("_T.append(_clock())").body[0]
        body = [tick]
        for stmt in node.body:
            if isinstance(stmt, ast.Expr) and isinstance(getattr(stmt, "value", None),
                                                         ast.Constant):
                continue                                   # the docstring
            if isinstance(stmt, ast.Return):               # time the returned expression too
                tmp = ast.Assign(targets=[ast.Name("_ret", ast.Store())], value=stmt.value,
                                 lineno=stmt.lineno)
                body += [tmp, tick, ast.Return(ast.Name("_ret", ast.Load()))]
            else:
                body += [stmt, tick]
        node.body = body
        return node


def instrument(source: str, fname: str, env: dict, clock):
    """(fn, ticks, [source line of each statement]) for `fname` defined in `source`."""
    tree = ast.parse(source)
    fdef = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == fname)
    lines = source.splitlines()
    stmts = []
    for s in fdef.body:
        if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant):
            continue
        text = " ".join(x.strip() for x in lines[s.lineno - 1:s.end_lineno])
        stmts.append(text)
    tree = ast.fix_missing_locations(_Clock(fname).visit(tree))
    ticks: list = []
    g = dict(env, _T=ticks, _clock=clock)
    exec(compile(tree, f"<instrumented {fname}>", "exec"), g)  # noqa: S102 -- our own code
    return g[fname], ticks, stmts


def profile(runs, reps):
    """runs: [(fn, ticks, call)]; the calls alternate so that load hits them alike."""
    per = [None] * len(runs)
    for _ in range(reps):
        for i, (fn, ticks, call) in enumerate(runs):
            ticks.clear()
            call(fn)
            d = np.diff(ticks)
            per[i] = [[x] for x in d] if per[i] is None else [p + [x] for p, x in zip(per[i], d)]
    return [[statistics.median(p) for p in q] for q in per]


def memory_profile(fn, ticks, call):
    """Per statement: (bytes live after it, peak bytes during it), relative to the start."""
    import tracemalloc

    tracemalloc.start()
    try:
        ticks.clear()
        base = tracemalloc.get_traced_memory()[0]
        marks = []

        def clock():
            cur, peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            marks.append((cur - base, peak - base))
            return 0.0
        fn.__globals__["_clock"] = clock
        out = call(fn)
        del out
    finally:
        tracemalloc.stop()
    return marks[1:]


def show_memory(title, stmts, marks):
    print(f"\n{title}: peak {max(p for _, p in marks) / 2**20:.2f} MB above the arrays passed in")
    for s, (cur, peak) in zip(stmts, marks):
        s = s if len(s) <= 70 else s[:67] + "..."
        print(f"  live {cur / 2**20:7.2f} MB  peak {peak / 2**20:7.2f} MB  {s}")


def tick_cost(clock, reps=2000) -> float:
    """The clock read itself, subtracted from every statement's figure."""
    src = "def f():\n" + "    pass\n" * 10
    fn, ticks, _ = instrument(src, "f", {}, clock)
    return statistics.median(profile([(fn, ticks, lambda f: f())], reps)[0])


def whole(runs, reps):
    """Median of whole uninstrumented calls, alternating."""
    out = [[] for _ in runs]
    for _ in range(reps):
        for i, (fn, call) in enumerate(runs):
            t0 = time.perf_counter()
            call(fn)
            out[i].append(time.perf_counter() - t0)
    return [statistics.median(o) for o in out]


def show(title, stmts, med, whole_s=None):
    total = sum(med)
    extra = f"; {whole_s * 1e6:.1f} µs wall per uninstrumented call" if whole_s else ""
    print(f"\n{title}: {total * 1e6:.1f} µs per call (sum of the statement medians, "
          f"clock overhead subtracted{extra})")
    for s, t in zip(stmts, med):
        s = s if len(s) <= 78 else s[:75] + "..."
        print(f"  {t * 1e6:10.1f} µs {100 * t / total:5.1f}%  {s}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=["W1", "W2", "W3"])
    p.add_argument("--d", type=int, default=3072)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--m", type=int, default=50)
    p.add_argument("--C", type=int, default=10)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--threads", type=int, default=None, help="limit BLAS threads")
    p.add_argument("--clock", choices=["wall", "thread"], default="wall")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("-O0", dest="O0", action="store_true", help="profile gdsl -O0")
    p.add_argument("--memory", action="store_true",
                   help="per statement: MB live after it and peak MB during it (tracemalloc)")
    args = p.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
    import gdsl

    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    dims = {"d": args.d, "C": args.C, "n": args.n}
    if args.kind == "W2":
        dims["m"] = args.m
    a = wl.make_data(args.kind, dims, args.dtype)
    lam = wl.LAM[args.kind]
    m = gdsl.compile(wl.TEXTS[args.kind], optimize=not args.O0)
    gfn, gt, gs = instrument(m.source, "value_and_grad", vars(m.module), clock)
    hand = wl.NUMPY[args.kind]
    hsrc = textwrap.dedent(inspect.getsource(hand))
    hfn, ht, hs = instrument(hsrc, hand.__name__, vars(wl), clock)
    params = [a[k] for k in wl.PARAMS[args.kind]]

    def call_g(f):
        return f(**a, lam=lam)

    def call_h(f):
        return f(*params, a["x"], a["y"], lam)

    if args.memory:
        print(f"{args.kind} {dims} {args.dtype}: memory (the returned gradients included)")
        show_memory("gdsl" + (" -O0" if args.O0 else ""), gs, memory_profile(gfn, gt, call_g))
        show_memory("hand-written NumPy", hs, memory_profile(hfn, ht, call_h))
        return
    t0 = time.perf_counter()
    call_h(hand)
    one = time.perf_counter() - t0
    reps = args.reps or max(20, min(2000, int(3.0 / max(one, 1e-6))))
    for _ in range(3):
        call_g(gfn)
        call_h(hfn)
    print(f"{args.kind} {dims} {args.dtype}, {reps} calls each, clock {args.clock}, "
          f"threads {args.threads or 'default'}")
    gm, hm = profile([(gfn, gt, call_g), (hfn, ht, call_h)], reps)
    tick = tick_cost(clock)
    gm, hm = ([max(0.0, x - tick) for x in q] for q in (gm, hm))
    gw, hw = whole([(m.module.value_and_grad, call_g), (hand, call_h)], reps)
    show("gdsl" + (" -O0" if args.O0 else ""), gs, gm, gw)
    show("hand-written NumPy", hs, hm, hw)


if __name__ == "__main__":
    main()

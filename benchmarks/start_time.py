#!/usr/bin/env python3
"""How long a user waits: from the start of a `gdsl run` process to its first epoch line, and
`import gdsl`, each in fresh processes (best of --runs), with the imports that cost most.

    python3 benchmarks/start_time.py                        # models/linear_softmax.gdsl, 5 runs
    python3 benchmarks/start_time.py --threads 1            # pinned to CPU 0, BLAS on one thread
    python3 benchmarks/start_time.py --gdsl-path /tmp/old   # another gdsl tree (a `git archive`)

The first epoch line is waited for twice per run: through a pipe (as a script would read it)
and on a pseudo-terminal (as a user sees it: `gdsl run` then draws a tqdm progress bar).

Every process is `python3 -m gdsl ...` (or `-c "import gdsl"`) run in the gdsl tree's directory
(first on sys.path, before an installed or editable gdsl), so another tree can be timed; the interpreter's own start
(`python3 -c pass`) is shown for reference. The best of several runs is the figure: a busy
host only adds time. Nothing is written; see benchmarks/README.md, "Start-up".
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class Where:
    """How each process runs: in the gdsl tree's directory (`-m` and `-c` put it first on
    sys.path, before an installed or editable gdsl), pinned to ``threads`` CPUs if given."""

    tree: Path
    threads: int | None

    def env(self) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.tree), env.get("PYTHONPATH")]))
        for k in ("GDSL_DEBUG", "PYTHONSTARTUP"):
            env.pop(k, None)
        if self.threads is not None:
            env.update({k: str(self.threads) for k in THREAD_VARS})
        return env

    def command(self, argv: list[str]) -> list[str]:
        cmd = [sys.executable, *argv]
        if self.threads:
            return ["taskset", "-c", ",".join(map(str, range(self.threads))), *cmd]
        return cmd

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(self.command(argv), env=self.env(), cwd=self.tree, text=True, **kw)


def to_first_line(where: Where, argv: list[str], prefix: str) -> tuple[float, float]:
    """Seconds from starting the process to its first stdout line that starts with
    ``prefix``, and to its exit."""
    t0 = time.perf_counter()
    p = where.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    first = None
    for line in p.stdout:
        if first is None and line.startswith(prefix):
            first = time.perf_counter() - t0
    p.wait()
    total = time.perf_counter() - t0
    if p.returncode != 0 or first is None:
        raise SystemExit(f"{' '.join(argv)} failed (exit {p.returncode}, no `{prefix}` line)")
    return first, total


def to_first_text_tty(where: Where, argv: list[str], pattern: bytes) -> tuple[float, float]:
    """The same on a terminal (a pseudo-terminal for stdout and stderr), as a user sees it:
    `gdsl run` then draws a progress bar (tqdm) and writes the epoch lines through it."""
    import pty
    master, slave = pty.openpty()
    t0 = time.perf_counter()
    p = where.popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    seen, first = b"", None
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:         # EIO: the child closed the terminal
            break
        if not chunk:
            break
        if first is None:
            seen += chunk
            if re.search(pattern, seen):
                first = time.perf_counter() - t0
    os.close(master)
    p.wait()
    total = time.perf_counter() - t0
    if p.returncode != 0 or first is None:
        raise SystemExit(f"{' '.join(argv)} failed on a terminal (exit {p.returncode})")
    return first, total


def wall(where: Where, argv: list[str]) -> float:
    t0 = time.perf_counter()
    p = where.popen(argv, stdout=subprocess.DEVNULL)
    if p.wait() != 0:
        raise SystemExit(f"{' '.join(argv)} failed (exit {p.returncode})")
    return time.perf_counter() - t0


def top_imports(where: Where, argv: list[str], k: int = 8) -> list[tuple]:
    """The top-level imports of one process by cumulative time (python -X importtime)."""
    p = where.popen(["-X", "importtime", *argv], stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE)
    _, err = p.communicate()
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if name.startswith(" ") and not name.startswith("  "):     # depth 0
            rows.append((name.strip(), int(cumulative) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:k]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/linear_softmax.gdsl")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, help="pin to this many CPUs and BLAS threads")
    ap.add_argument("--gdsl-path", type=Path, default=ROOT, help="the gdsl tree to time")
    args = ap.parse_args(argv)
    where = Where(args.gdsl_path.resolve(), args.threads)
    run = ["-m", "gdsl", "run", args.model]
    p = where.popen(["-c", "import gdsl; print(gdsl.__file__)"], stdout=subprocess.PIPE)
    imported = p.communicate()[0].strip()
    if not imported.startswith(str(where.tree)):
        raise SystemExit(f"the processes import gdsl from {imported}, not from {where.tree}")

    firsts, totals, tty_firsts = [], [], []
    for _ in range(args.runs):
        first, total = to_first_line(where, run, "epoch ")
        firsts.append(first)
        totals.append(total)
        tty_firsts.append(to_first_text_tty(where, run, rb"epoch +1/")[0])
    imports = [wall(where, ["-c", "import gdsl"]) for _ in range(args.runs)]
    bare = [wall(where, ["-c", "pass"]) for _ in range(args.runs)]

    def row(what, xs):
        return f"| {what} | **{min(xs):.3f}** | {' '.join(f'{x:.3f}' for x in xs)} |"

    print(f"gdsl: {imported}; threads: {args.threads or 'default'}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(f"| seconds, best of {args.runs} | best | runs |\n|---|---|---|")
    print(row(f"`gdsl run {args.model}` to its first epoch line", firsts))
    print(row("the same on a terminal (progress bar: tqdm imported)", tty_firsts))
    print(row(f"`gdsl run {args.model}` to exit", totals))
    print(row("`python3 -c 'import gdsl'`", imports))
    print(row("`python3 -c pass` (the interpreter alone)", bare))
    print("\nTop-level imports of one `gdsl run` (python -X importtime, cumulative s):")
    for name, s in top_imports(where, run):
        print(f"  {s:6.3f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

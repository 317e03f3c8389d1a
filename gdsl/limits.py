"""What gdsl refuses before doing the work: too much model text, nesting or nodes, and more
memory than the machine has.

A 100,000-statement chain is ~1.5 MB of text and 100,000 operations; the first three limits
leave room for that and stop what would take minutes or gigabytes before the work is done
(README: Robustness and limits).

How much memory a model or a data file asks for is checked before it is allocated.

A class label of 10^12 makes a [10^12, 64] weight matrix; `param V[100000, 100000]` is 75 GiB.
Rather than a MemoryError after minutes (or the machine swapping), the sizes are added up
first and compared with a limit: GDSL_MEMORY_LIMIT (bytes, or with a K, M, G or T suffix),
else 80% of the machine's physical memory.
"""

from __future__ import annotations

import os
from math import prod

from .errors import GdslLimitError, GdslValueError, Span

MAX_SOURCE_BYTES = 8 * 1024 * 1024      # bytes of UTF-8 model text
MAX_NESTING = 10_000                    # brackets inside brackets (Python allows 200)
# Values in the forward graph as written (inputs, params, consts, literals, operations); the
# backward pass adds about as many again. A 100,000-statement chain has ~100,000; compiling
# takes ~17 KB of memory a node at its peak (the emitted module is compiled by Python).
MAX_NODES = 1_000_000     # a 100,000-statement chain of three ops each fits
# Steps of the loops `for t in 1..T` unrolled (a loop inside another counts its steps times
# the outer one's): each step's statements are compiled as if written out, so this is checked
# before unrolling, at the loop's line.
MAX_LOOP_STEPS = 100_000

UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def memory_limit() -> int:
    text = os.environ.get("GDSL_MEMORY_LIMIT", "").strip().upper().removesuffix("B")
    if text:
        unit = text[-1] if text[-1] in UNITS else ""
        try:
            value = float(text[:len(text) - len(unit)])
        except ValueError:
            value = -1.0
        if not value > 0:
            raise GdslValueError(f"GDSL_MEMORY_LIMIT={os.environ['GDSL_MEMORY_LIMIT']!r}: expected "
                                 "a size such as 8G or 500M")
        return int(value * UNITS[unit])
    try:
        return int(0.8 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):     # not a POSIX system: no limit known
        return 2**62


def show_bytes(n: float) -> str:
    for unit in ("T", "G", "M", "K"):
        if n >= UNITS[unit]:
            return f"{n / UNITS[unit]:.1f} {unit}iB"
    return f"{int(n)} bytes"


def check_memory(needs: list[tuple[tuple, int, str, Span | None]], purpose: str,
                 filename: str | None = None, source: str | None = None) -> None:
    """Raise GdslLimitError if the arrays in ``needs`` ((shape, copies, what, span) each, in
    float64) would not fit the limit; the message names the largest of them and its place."""
    total = sum(8 * prod(shape) * copies for shape, copies, _, _ in needs)
    limit = memory_limit()
    if total <= limit:
        return
    shape, copies, what, span = max(needs, key=lambda t: prod(t[0]) * t[1])
    dims = "[" + ", ".join(map(str, shape)) + "]"
    raise GdslLimitError(
        f"{purpose} needs {show_bytes(total)} of memory, more than the limit of "
        f"{show_bytes(limit)}", span, filename=filename, source=source,
        notes=[f"{what} {dims} takes {show_bytes(8 * prod(shape))}"
               + (f", {copies} times over (its value, gradient and optimiser state)"
                  if copies > 1 else "")],
        help="check the sizes (a class label or a dimension far too large?); the limit is 80% "
             "of this machine's memory, or GDSL_MEMORY_LIMIT (e.g. GDSL_MEMORY_LIMIT=64G)")

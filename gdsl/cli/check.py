"""`gdsl check MODEL [--tol 1e-6] [--seed N] [--set NAME=SIZE]`: the gradient check."""

from __future__ import annotations

import json
import math

from ..errors import GdslError, GdslValueError
from ..tools.check import check
from .compile import parse_names
from .run import parse_sets


def register(sub):
    p = sub.add_parser(
        "check", help="check the analytic gradients against finite differences",
        description="Compare the compiled backward pass with centred finite differences on a "
        "small random batch in float64, printing per differentiated value the max relative "
        "error |g_a - g_n| / max(eps, |g_a| + |g_n|). Exits 1 when any exceeds --tol, and "
        "then names the first node whose own backward rule is wrong. Non-smooth ops (relu, "
        "abs, maximum, max, svm) are checked away from their kinks.")
    p.add_argument("model", help="the .gdsl model file")
    p.add_argument("--tol", type=float, default=1e-6, help="largest relative error allowed "
                   "(default 1e-6)")
    p.add_argument("--eps", type=float, default=1e-6,
                   help="floor of the relative error's denominator (default 1e-6; raised "
                   "automatically above the finite differences' rounding noise)")
    p.add_argument("--step", type=float, default=1e-3, metavar="H",
                   help="finite-difference step (default 1e-3, five-point stencil)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random batch")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="size of a dimension (--set n=10) or value of a const (--set lam=0.1)")
    p.add_argument("--wrt", metavar="NAMES", help="comma-separated names to check "
                   "(default: the params)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return p


def main(args) -> int:
    from ..tools.check import _compiled
    if not (args.tol > 0):
        raise GdslValueError(f"--tol must be positive, got {args.tol}")
    if not (args.step > 0):
        raise GdslValueError(f"--step must be positive, got {args.step}")
    compiled = _compiled(args.model, parse_names(args.wrt))
    dims, consts = {}, {}
    for k, v in parse_sets(args.set).items():
        try:
            value = float(v)
            if not math.isfinite(value):        # (nan, inf, 1e999: as in the model's text)
                raise ValueError
        except ValueError:
            raise GdslValueError(f"--set {k}={v}: expected a finite number",
                                 filename=args.model) from None
        if k in compiled.consts:
            consts[k] = value
        else:
            if k not in compiled.dim_symbols:
                raise GdslValueError(f"--set {k}=...: the model has no const or dimension `{k}` "
                                     f"(consts: {', '.join(compiled.consts) or 'none'}; "
                                     f"dimensions: {', '.join(compiled.dim_symbols) or 'none'})",
                                     filename=args.model)
            if value != int(value) or value < 1:
                raise GdslValueError(f"--set {k}={v}: a dimension takes a positive integer",
                                     filename=args.model)
            dims[k] = int(value)
    r = check(compiled, tol=args.tol, eps=args.eps, h=args.step, seed=args.seed, dims=dims,
              consts=consts)
    if args.json:
        print(json.dumps({
            "ok": r.ok, "tol": r.tol, "eps": r.eps, "seed": r.seed, "dims": r.dims,
            "errors": {e.name: e.max_rel_error for e in r.errors},
            "culprit": None if r.culprit is None else {
                "op": r.culprit.op, "line": r.culprit.line, "text": r.culprit.text,
                "argument": r.culprit.argument, "max_rel_error": r.culprit.max_rel_error}}))
    else:
        dims_text = ", ".join(f"{k}={v}" for k, v in sorted(r.dims.items()))
        print(f"{args.model}: gradient check in float64, seed {r.seed}"
              + (f", dims {dims_text}" if dims_text else ""))
        width = max([len(e.name) for e in r.errors] + [5])
        shapes = {e.name: "[" + ", ".join(map(str, e.shape)) + "]" for e in r.errors}
        wide = max([len(t) for t in shapes.values()] + [10])      # (a kernel [16, 1, 3, 3])
        print(f"  {'value':<{width}}  {'shape':<{wide}} {'max rel error':>13}")
        for e in r.errors:
            print(f"  {e.name:<{width}}  {shapes[e.name]:<{wide}} {e.max_rel_error:>13.3e}  "
                  f"{'ok' if e.ok(r.tol) else 'FAIL'}")
        if r.ok:
            print(f"passed: every max relative error <= {r.tol:g} (eps {r.eps:.1e})")
    if r.ok:
        return 0
    worst = max(r.errors, key=lambda e: e.max_rel_error)
    msg = (f"gradient check failed: `{worst.name}` has max relative error "
           f"{worst.max_rel_error:.3e} > tol {r.tol:g}")
    c = r.culprit
    if c is not None:
        where = f"line {c.line}: `{c.text}`" if c.line else f"`{c.text}`"
        msg += (f"; the first wrong backward rule is `{c.op}` (argument {c.argument + 1}) at "
                f"{where} (local relative error {c.max_rel_error:.2e})")
        raise GdslError(msg, c.span, filename=args.model, source=compiled.model.source)
    raise GdslError(msg + "; every node's own backward rule agrees with finite differences, so "
                    "look at how the rules are combined", filename=args.model)

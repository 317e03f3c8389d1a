"""`gdsl compile MODEL [-o OUT.py] [--wrt NAMES] [-O0] [--dump-after STAGE]`."""

from __future__ import annotations

import sys

from ..backend import TARGETS
from ..errors import GdslUsageError
from ..files import check_output, read_model, write_atomic
from ..pipeline import STAGE_NAMES, run_pipeline


def register(sub):
    p = sub.add_parser("compile", help="compile a model to a standalone NumPy module",
                       description="Compile MODEL to a module that imports only NumPy and defines "
                       "forward(**arrays) and value_and_grad(**arrays).")
    p.add_argument("model", help="the .gdsl model file")
    p.add_argument("-o", "--output", metavar="OUT.py",
                   help="write the module here (default: standard output)")
    p.add_argument("--wrt", metavar="NAMES",
                   help="comma-separated names to differentiate with respect to (default: the params)")
    p.add_argument("-O", dest="opt", type=int, choices=[0, 1], default=1,
                   help="-O0 turns the optimisation passes off")
    p.add_argument("--rewrites", action="store_true",
                   help="list every rewrite the optimiser made (which line, what became what)")
    p.add_argument("--target", default="numpy", choices=sorted(TARGETS),
                   type=lambda name: "array-api" if name == "array_api" else name,  # as in Python
                   help="what to emit (default numpy: a module that needs only NumPy; "
                        "array-api: one for the arrays of any library array-api-compat knows, "
                        "PyTorch, CuPy, JAX, Dask ...)")
    p.add_argument("--hvp", action="store_true",
                   help="also emit hvp(*, v, **arrays): the Hessian of the loss times directions v "
                        "= {name: array}, by reverse over reverse in the same IR")
    p.add_argument("--eval", action="store_true",
                   help="emit the evaluation mode: `a if training else b` is b (batch norm with "
                        "its running statistics) and no state is updated (default: training)")
    p.add_argument("--dump-after", metavar="STAGE", choices=STAGE_NAMES,
                   help="print the IR after a stage: " + ", ".join(STAGE_NAMES))
    return p


def parse_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [w.strip() for w in text.split(",") if w.strip()]
    if not names:
        raise GdslUsageError("--wrt needs at least one name, e.g. --wrt W,b")
    return names


def main(args) -> int:
    text = read_model(args.model)
    if args.output:
        check_output(args.output, "-o", [args.model])

    def after(stage, c):
        if stage == args.dump_after:
            if stage == "parse":
                print(f"# after {stage}: {len(c.program.statements)} statements", file=sys.stderr)
            else:
                print(f"# IR after {stage}", file=sys.stderr)
                print(c.model.dump(), file=sys.stderr, end="")

    c = run_pipeline(text, filename=args.model, wrt=parse_names(args.wrt),
                     optimize=args.opt > 0, after=after, target=args.target, hvp=args.hvp,
                     mode="eval" if args.eval else "train")
    for w in c.model.warnings:
        print(w.attach(text, args.model).render(), file=sys.stderr)
    if args.rewrites:
        print(f"# {len(c.model.rewrites)} rewrites", file=sys.stderr)
        for r in c.model.rewrites:
            print(f"{args.model}:{r}", file=sys.stderr)
    if args.output:
        write_atomic(args.output, c.code)
        print(f"wrote {args.output}", file=sys.stderr)
    elif isinstance(c.code, bytes):         # a binary model (ONNX): never to a terminal
        if sys.stdout.isatty():
            raise GdslUsageError(f"--target {args.target} makes a binary file: give -o FILE")
        sys.stdout.buffer.write(c.code)
    elif not args.dump_after:
        sys.stdout.write(c.code)
    return 0

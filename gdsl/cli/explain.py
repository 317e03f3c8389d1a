"""`gdsl explain MODEL [--format text|markdown|latex] [--jacobians]`."""

from __future__ import annotations

import sys

from ..files import check_output, read_model, write_atomic
from ..runtime import compile as compile_text
from ..views.explain import FORMATS, explain
from .compile import parse_names


def register(sub):
    p = sub.add_parser("explain", help="forward and backward order with the local Jacobians",
                       description="Explain MODEL as the lecture does: the order of the forward "
                       "pass, the order in which the backward pass completes each gradient with "
                       "the local Jacobians in the lecture's notation, and each param's "
                       "gradient. --jacobians multiplies explicit Jacobians for one example "
                       "along the graph and compares them with the compiled gradient.")
    p.add_argument("model", help="the .gdsl model file")
    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text (default), markdown for notes, latex for slides")
    p.add_argument("--jacobians", action="store_true",
                   help="evaluate the explicit Jacobians for one example and check the chain "
                   "rule against value_and_grad (max abs difference)")
    p.add_argument("--wrt", metavar="NAMES",
                   help="comma-separated names to differentiate with respect to (default: the params)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    return p


def main(args) -> int:
    text = read_model(args.model)
    if args.output:
        check_output(args.output, "-o", [args.model])
    model = compile_text(text, parse_names(args.wrt), filename=args.model)
    out = explain(model, args.format, jacobians=args.jacobians)
    if args.output:
        write_atomic(args.output, out)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(out)
    return 0

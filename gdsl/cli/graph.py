"""`gdsl graph MODEL -o FILE [--backward] [--shapes]`: draw the graph as on the slides."""

from __future__ import annotations

import sys

from ..files import check_output, read_model, write_atomic
from ..pipeline import run_pipeline
from ..views.draw import FORMATS, check_renderer, format_of, render, stderr_note
from ..views.view import View
from .compile import parse_names


def register(sub):
    p = sub.add_parser("graph", help="draw the computational graph (.dot, .svg, .png)",
                       description="Draw MODEL's computational graph as on the lecture's slides: "
                       "inputs, params and consts set apart from the computed values, each op in "
                       "the lecture's notation. .svg and .png use Graphviz's `dot` when it is "
                       "installed and matplotlib otherwise.")
    p.add_argument("model", help="the .gdsl model file")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the drawing here; the format comes from the extension ("
                   + ", ".join("." + f for f in FORMATS) + "); default: DOT on standard output")
    p.add_argument("--backward", action="store_true",
                   help="add the gradient nodes ∂J/∂n, joined by their local Jacobians")
    p.add_argument("--shapes", action="store_true", help="show each value's shape")
    p.add_argument("--wrt", metavar="NAMES",
                   help="comma-separated names to differentiate with respect to (default: the params)")
    return p


def main(args) -> int:
    text = read_model(args.model)
    fmt, path = format_of(args.output) if args.output else ("dot", None)
    if path is not None:
        check_output(path, "-o", [args.model])
    check_renderer(fmt)
    model = run_pipeline(text, filename=args.model, wrt=parse_names(args.wrt), optimize=False).model
    data = render(View(model), fmt, backward=args.backward, shapes=args.shapes, note=stderr_note)
    if path is None:
        sys.stdout.write(data.decode("utf-8"))
    else:
        write_atomic(path, data)
        print(f"wrote {path}", file=sys.stderr)
    return 0

"""`gdsl graph MODEL -o FILE [--backward] [--shapes] [--neurons --dims d=3,C=2] [--loss-curve]
[--renderer graphviz|matplotlib]`: draw the graph as on the slides."""

from __future__ import annotations

import sys

from ..errors import GdslUsageError
from ..files import check_output, read_model, write_atomic
from ..views.draw import (
    FORMATS,
    check_renderer,
    format_of,
    layout_of,
    loss_curves,
    neurons,
    render_layout,
    stderr_note,
)
from ..views.view import teaching_view
from .compile import parse_names
from .explain import parse_dims


def register(sub):
    p = sub.add_parser("graph", help="draw the computational graph (.dot, .svg, .png)",
                       description="Draw MODEL's computational graph as on the lecture's slides: "
                       "the main chain on one row, inputs, params and consts below, each op in "
                       "the lecture's notation on the arrow into its value. .svg and .png use "
                       "Graphviz's `dot` when it is installed and matplotlib otherwise; both "
                       "draw the same layout.")
    p.add_argument("model", help="the .gdsl model file")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the drawing here; the format comes from the extension ("
                   + ", ".join("." + f for f in FORMATS) + "); default: DOT on standard output")
    p.add_argument("--backward", action="store_true",
                   help="add the gradients ∂J/∂n below the values, joined by their local "
                   "Jacobians")
    p.add_argument("--shapes", action="store_true", help="show each value's shape")
    p.add_argument("--neurons", action="store_true",
                   help="the neuron-level figure: one node per unit, one edge per weight w_{j,i}")
    p.add_argument("--dims", metavar="D=SIZE,...",
                   help="sizes for --neurons, e.g. d=3,C=2 (default: x_1, x_2, x_3, ..., x_d)")
    p.add_argument("--loss-curve", action="store_true",
                   help="plot the model's loss for one example, as on the loss-function slide "
                   "(.svg or .png, with matplotlib)")
    p.add_argument("--renderer", choices=("graphviz", "matplotlib"),
                   help="draw .svg/.png with this one (default: Graphviz when installed)")
    p.add_argument("--wrt", metavar="NAMES",
                   help="comma-separated names to differentiate with respect to (default: the params)")
    return p


def main(args) -> int:
    text = read_model(args.model)
    fmt, path = format_of(args.output) if args.output else ("dot", None)
    if path is not None:
        check_output(path, "-o", [args.model])
    dims = parse_dims(args.dims)
    if dims and not args.neurons:
        raise GdslUsageError("--dims sizes the units of --neurons: use it with --neurons")
    if sum(map(bool, (args.neurons, args.loss_curve, args.backward))) > 1:
        raise GdslUsageError("choose one of --backward, --neurons and --loss-curve")
    if args.loss_curve and fmt == "dot":
        raise GdslUsageError("--loss-curve draws a plot: name a .svg or .png file with -o")
    check_renderer(fmt)
    view = teaching_view(text, args.model, parse_names(args.wrt))
    if args.loss_curve:
        data = loss_curves(view, fmt)
    else:
        lay = neurons(view, dims) if args.neurons else \
            layout_of(view, backward=args.backward, shapes=args.shapes)
        data = render_layout(lay, fmt, note=stderr_note, renderer=args.renderer)
    if path is None:
        sys.stdout.write(data.decode("utf-8"))
    else:
        write_atomic(path, data)
        print(f"wrote {path}", file=sys.stderr)
    return 0

"""`gdsl explain MODEL [--format text|markdown|latex] [--one-example] [--jacobians] [--trace
--dims d=3,C=2] [--show-matrices] [--pseudocode]`."""

from __future__ import annotations

import sys

from ..errors import GdslError, GdslUsageError
from ..files import check_output, read_model, write_atomic
from ..runtime import compile as compile_text
from ..views.explain import FORMATS, explain
from ..views.view import teaching_view
from .compile import parse_names


def register(sub):
    p = sub.add_parser("explain", help="forward and backward order with the local Jacobians",
                       description="Explain MODEL as the lecture does: the order of the forward "
                       "pass, the order in which the backward pass completes each gradient with "
                       "the local Jacobians in the lecture's notation, each param's gradient for "
                       "one example and, for a model of a mini-batch, the cost J(D) and its "
                       "gradients with the lecture's procedure. A model without a loss is "
                       "explained forward only.")
    p.add_argument("model", help="the .gdsl model file")
    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text (default), markdown for notes, latex (a document) for slides")
    p.add_argument("--one-example", action="store_true",
                   help="only the single-example view (no mini-batch cost and procedure)")
    p.add_argument("--jacobians", action="store_true",
                   help="every local Jacobian as a matrix for one example, checked against "
                   "finite differences of its node, and multiplied along the graph against "
                   "value_and_grad")
    p.add_argument("--trace", action="store_true",
                   help="a worked example with numbers: the forward values, then BackOp step "
                   "by step (with n > 1 in --dims: the mini-batch procedure)")
    p.add_argument("--dims", metavar="D=SIZE,...", default=None,
                   help="sizes for --trace, e.g. d=3,C=2 (the examples axis n is 1 unless given)")
    p.add_argument("--show-matrices", action="store_true",
                   help="print every matrix, however large (default: up to 48 entries)")
    p.add_argument("--pseudocode", action="store_true",
                   help="the lecture's EvaluateGraphFn/ComputeBranch and BackOp, run on the model")
    p.add_argument("--seed", type=int, default=0, help="seed of the numbers (default 0)")
    p.add_argument("--wrt", metavar="NAMES",
                   help="comma-separated names to differentiate with respect to (default: the params)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    return p


def parse_dims(text: str | None) -> dict[str, int]:
    """d=3,C=2 -> {'d': 3, 'C': 2}; a usage error names the bad item."""
    out: dict[str, int] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        try:
            size = int(value)
        except ValueError:
            size = 0
        if not eq or not name.strip().isidentifier() or size < 1:
            raise GdslUsageError(f"--dims: cannot read {item!r}: give NAME=SIZE items with "
                                 "positive sizes, e.g. --dims d=3,C=2")
        out[name.strip()] = size
    return out


def main(args) -> int:
    text = read_model(args.model)
    if args.output:
        check_output(args.output, "-o", [args.model])
    dims = parse_dims(args.dims)
    if dims and not args.trace:
        raise GdslUsageError("--dims sizes the worked example: use it with --trace")
    wrt = parse_names(args.wrt)
    try:
        model, view = compile_text(text, wrt, filename=args.model), None
    except GdslError:
        view = teaching_view(text, args.model, wrt, folded=False)     # scores only: forward; else the error
        model = None
    if model is None and (args.jacobians or args.trace):
        raise GdslError("--jacobians and --trace need a loss: this model computes no scalar to "
                        "differentiate", filename=args.model,
                        help="add a loss (e.g. `J = xent(softmax(s), y)`) or leave them out")
    out = explain(model, args.format, jacobians=args.jacobians, one_example=args.one_example,
                  trace=args.trace, dims=dims, show_matrices=args.show_matrices,
                  pseudocode_=args.pseudocode, seed=args.seed, view=view)
    if args.output:
        write_atomic(args.output, out)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(out)
    return 0

"""`gdsl stats MODEL --dims n=100,d=3072,C=10`: FLOPs and memory of one training step."""

from __future__ import annotations

import sys

from ..errors import GdslUsageError
from ..files import read_model
from ..passes.resolve import DIM_PREFIX
from ..pipeline import run_pipeline
from ..runtime import CompiledModel
from ..views.cost import report


def register(sub):
    p = sub.add_parser("stats", help="FLOPs per node and bytes kept for the backward pass",
                       description="Print, for one forward + backward step at the given sizes, "
                       "the FLOPs of every node, the bytes of forward values the backward pass "
                       "keeps, the totals, and which gradients were pruned.")
    p.add_argument("model")
    p.add_argument("--dims", metavar="NAME=SIZE,...", default="",
                   help="sizes of the symbolic dims, e.g. n=100,d=3072,C=10")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("-O", dest="opt", type=int, choices=[0, 1], default=1)
    return p


def parse_dims(text: str) -> dict[str, int]:
    dims = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        if not eq or not value.strip().isdigit() or int(value) < 1:
            raise GdslUsageError(f"--dims takes NAME=SIZE pairs with positive sizes, e.g. "
                                 f"n=100,d=3072; got `{part}`")
        dims[name.strip()] = int(value)
    return dims


def main(args) -> int:
    compiled = CompiledModel(run_pipeline(read_model(args.model), filename=args.model,
                                          optimize=args.opt > 0))
    given = parse_dims(args.dims)
    unknown = [k for k in given if k not in compiled.dim_symbols]
    if unknown:
        raise GdslUsageError(f"--dims {unknown[0]}=...: the model has no dimension "
                             f"`{unknown[0]}` (dimensions: "
                             f"{', '.join(compiled.dim_symbols) or 'none'})",
                             filename=args.model)
    # the model's `dim m = 100` sizes what --dims leaves open, as in gdsl run
    defaults = {k[len(DIM_PREFIX):]: v for k, v in compiled.train_options.items()
                if k.startswith(DIM_PREFIX)}
    sys.stdout.write(report(compiled, {**defaults, **given}, 8 if args.dtype == "float64" else 4))
    return 0

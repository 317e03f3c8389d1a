"""`gdsl stats MODEL --dims n=100,d=3072,C=10`: FLOPs and memory of one training step."""

from __future__ import annotations

import sys

from ..errors import GdslUsageError
from ..files import read_model
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
        if not eq or not value.strip().isdigit():
            raise GdslUsageError(f"--dims takes NAME=SIZE pairs, e.g. n=100,d=3072; got `{part}`")
        dims[name.strip()] = int(value)
    return dims


def main(args) -> int:
    compiled = CompiledModel(run_pipeline(read_model(args.model), filename=args.model,
                                          optimize=args.opt > 0))
    sys.stdout.write(report(compiled, parse_dims(args.dims), 8 if args.dtype == "float64" else 4))
    return 0

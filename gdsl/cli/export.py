"""`gdsl export MODEL [-o OUT.onnx] [--with-grad] [--params PARAMS.npz] ...`: an ONNX model."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ..backend import onnx_target
from ..errors import GdslError, GdslUsageError
from ..files import check_output, read_model, write_atomic
from ..ir.graph import GIVEN
from ..pipeline import run_pipeline
from .compile import parse_names

DIM = re.compile(r"[^\W\d]\w*|\d+")


def register(sub):
    p = sub.add_parser("export", help="export the model to ONNX (forward, or loss and gradients)",
                       description="Write MODEL as an ONNX model (opset 18): its forward pass (the "
                       "loss and every output), or with --with-grad the loss and its gradients "
                       "(outputs W_grad, ...). Symbolic dims become named ONNX dims; params are "
                       "inputs, or initialisers with --params; consts are inputs whose defaults "
                       "are initialisers. Needs the onnx package: pip install 'gdsl[onnx]'.")
    p.add_argument("model", help="the .gdsl model file")
    p.add_argument("-o", "--output", metavar="OUT.onnx",
                   help="write the ONNX model here (default: MODEL with the suffix .onnx)")
    p.add_argument("--with-grad", action="store_true",
                   help="export the loss and its gradients (value_and_grad), not the forward pass")
    p.add_argument("--params", metavar="PARAMS.npz",
                   help="bake these params in as initialisers (e.g. the file gdsl run --save "
                   "wrote; standardisation statistics saved with them are applied to the input)")
    p.add_argument("--labels", choices=onnx_target.LABEL_KINDS,
                   help="class labels as one-hot floats [C, n] or int64 [n] (default: as declared)")
    p.add_argument("--shape", metavar="NAME=DIMS", action="append", default=[],
                   help="the shape of a name the model does not declare, e.g. --shape x=d,n "
                   "(--shape lam= for a scalar); repeat for each")
    p.add_argument("--wrt", metavar="NAMES",
                   help="comma-separated names to differentiate with respect to (default: the params)")
    p.add_argument("--eval", action="store_true",
                   help="export the evaluation mode (`a if training else b` is b: batch norm "
                   "with its running statistics); a model with state is exported only so")
    p.add_argument("--float32", action="store_true",
                   help="compute in float32 (default float64, as the NumPy module does)")
    p.add_argument("-O", dest="opt", type=int, choices=[0, 1], default=1,
                   help="-O0 turns the optimisation passes off")
    return p


def parse_shapes(items: list[str]) -> dict[str, tuple]:
    shapes: dict[str, tuple] = {}
    for item in items:
        name, eq, dims = item.partition("=")
        name = name.strip()
        parts = [d.strip() for d in dims.split(",")] if dims.strip() else []
        if not eq or not name or not all(DIM.fullmatch(d) for d in parts):
            raise GdslUsageError(f"--shape {item}: expected NAME=DIMS, dims separated by commas "
                                 "(numbers or names), e.g. --shape x=d,n or --shape lam=")
        if name in shapes:
            raise GdslUsageError(f"--shape {name} is given twice")
        shapes[name] = tuple(int(d) if d.isdigit() else d for d in parts)
    return shapes


def main(args) -> int:
    text = read_model(args.model)
    output = args.output or str(Path(args.model).with_suffix(".onnx"))
    check_output(output, "-o", [args.model, args.params])
    shapes = parse_shapes(args.shape)
    params = None
    if args.params:
        from ..tools.train import load_params
        params = load_params(args.params)
    onnx_target._onnx()          # installed, before any work

    def give_shapes(stage, c):   # leaves without declared shapes, shaped as --shape says
        if stage != "resolve":
            return
        m = c.model
        for name, shape in shapes.items():
            n = m.names.get(name)
            if n is None or m.node(n)["op"] not in GIVEN:
                raise GdslError(f"--shape {name}: the model has no input, param or const "
                                f"`{name}`", help="its names: " + ", ".join(
                                    k for k, v in m.names.items() if m.node(v)["op"] in GIVEN))
            d = m.node(n)
            if d["shape"] is not None:
                raise GdslError(f"--shape {name}: `{name}` is declared with its shape already",
                                d["span"], help="leave out --shape for it")
            d["shape"] = shape

    c = run_pipeline(text, filename=args.model, wrt=parse_names(args.wrt), optimize=args.opt > 0,
                     after=give_shapes, mode="eval" if args.eval else "train")
    for w in c.model.warnings:
        print(w.attach(text, args.model).render(), file=sys.stderr)
    what = "loss and gradients" if args.with_grad else "forward pass"
    try:
        proto = onnx_target.export(
            c.model, title=f"{args.model}: {what}", with_grad=args.with_grad, params=params,
            params_file=args.params or "the params", labels=args.labels,
            float_type="float32" if args.float32 else "float64")
    except GdslError as e:
        raise e.attach(text, args.model) from None
    write_atomic(output, proto.SerializeToString())
    print(f"wrote {output}", file=sys.stderr)
    return 0

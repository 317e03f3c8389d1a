"""`gdsl compile MODEL [-o OUT.py] [--wrt NAMES] [-O0] [--dump-after STAGE]`."""

from __future__ import annotations

import sys

from .compiler import STAGE_NAMES, run_pipeline
from .errors import GdslUsageError
from .files import check_output, write_atomic


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
    p.add_argument("--dump-after", metavar="STAGE", choices=STAGE_NAMES,
                   help="print the IR after a stage: " + ", ".join(STAGE_NAMES))
    return p


def read_model(path: str) -> str:
    """The model text; at most MAX_SOURCE_BYTES are read, so /dev/zero or a huge file is a
    clear error, not a MemoryError. Newlines are read as text mode reads them (\\r\\n, \\r -> \\n)."""
    from .errors import GdslLimitError
    from .parse import MAX_SOURCE_BYTES
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SOURCE_BYTES + 1)
        if len(data) > MAX_SOURCE_BYTES:
            raise GdslLimitError(f"the model file is larger than the limit of {MAX_SOURCE_BYTES} "
                                 "bytes", filename=path, help="gdsl.parse.MAX_SOURCE_BYTES")
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except FileNotFoundError:
        raise GdslUsageError(f"no such model file: {path}", filename=path) from None
    except IsADirectoryError:
        raise GdslUsageError("this is a directory, not a model file", filename=path) from None
    except UnicodeDecodeError as e:
        from .errors import GdslError
        raise GdslError(f"the model file is not UTF-8 text ({e.reason} at byte {e.start})",
                        filename=path) from None
    except OSError as e:
        raise GdslUsageError(f"cannot read the model file: {e.strerror}", filename=path) from None


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

    def after(stage, model):
        if stage == args.dump_after:
            if stage == "parse":
                print(f"# after {stage}: {len(model.program.statements)} statements", file=sys.stderr)
            else:
                print(f"# IR after {stage}", file=sys.stderr)
                print(model.dump(), file=sys.stderr, end="")

    model = run_pipeline(text, filename=args.model, wrt=parse_names(args.wrt),
                         optimize=args.opt > 0, after=after)
    for w in model.warnings:
        print(w.attach(text, args.model).render(), file=sys.stderr)
    if args.rewrites:
        print(f"# {len(model.rewrites)} rewrites", file=sys.stderr)
        for r in model.rewrites:
            print(f"{args.model}:{r}", file=sys.stderr)
    if args.output:
        write_atomic(args.output, model.code)
        print(f"wrote {args.output}", file=sys.stderr)
    elif not args.dump_after:
        sys.stdout.write(model.code)
    return 0

"""The `gdsl` command line.

Each subcommand lives in its own module ``gdsl/cli/<name>.py`` with two
functions: ``register(subparsers)`` adds its parser, ``main(args) -> int``
runs it. User mistakes print one message (file:line:col and a caret) and
exit 1; usage mistakes exit 2; neither shows a traceback unless
``--debug`` or ``GDSL_DEBUG=1`` asks for one.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
import warnings

from ..errors import GdslDataWarning, GdslError, GdslUsageError
from ..version import __version__

COMMANDS = ["compile", "run", "check", "graph", "explain", "stats", "fmt", "export"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):   # usage errors: one line, exit 2
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``only`` that one (each command module is
    imported to register its arguments; `gdsl compile` need not import training or drawing)."""
    parser = _Parser(prog="gdsl", description="Compile computational-graph models to NumPy, "
                     "train them, check their gradients, draw and explain them.")
    parser.add_argument("--version", action="version", version=f"gdsl {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks (also GDSL_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS if only is None else [only]:
        try:
            module = importlib.import_module(f"gdsl.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"gdsl.cli.{name}":
                continue
            raise
        p = module.register(sub)
        p.set_defaults(_main=module.main)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show Python tracebacks (also GDSL_DEBUG=1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("GDSL_DEBUG", "") not in ("", "0")
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args._main(args) or 0)
    except GdslError as e:
        if debug:
            traceback.print_exc()
        print(e.render(), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("gdsl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception:
        if debug:
            raise
        traceback.print_exc()
        print("gdsl: internal error (a bug in gdsl, not in your model); please report it with "
              "the traceback above", file=sys.stderr)
        return 3


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """gdsl's own warnings as one line, `gdsl: warning: ...`; anything else as Python shows it."""
    if issubclass(category, GdslDataWarning):
        print(f"gdsl: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def usage_error(message: str) -> GdslUsageError:
    return GdslUsageError(message)



"""`gdsl fmt [--check] [--diff] FILES...`: rewrite model files in one canonical layout."""

from __future__ import annotations

import difflib
import os
import sys
import traceback
from pathlib import Path

from ..errors import GdslError, GdslUsageError
from ..files import read_model, write_atomic
from ..lang.fmt import format_text

STDIN = "-"


def register(sub):
    p = sub.add_parser("fmt", help="format model files in one canonical layout",
                       description="Rewrite each model file in gdsl's one layout: one statement a "
                       "line, spaces around operators, declarations aligned, comments kept where "
                       "they were. Only whitespace changes. A file that does not parse is left as "
                       "it is and reported.")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="model files, or directories (every *.gdsl file under them); "
                   "`-` formats standard input to standard output")
    p.add_argument("--check", action="store_true",
                   help="write nothing; name the files that would change and exit 1 if any would")
    p.add_argument("--diff", action="store_true",
                   help="write nothing; print a unified diff of the changes to standard output")
    return p


def main(args) -> int:
    paths = _expand(args.files)
    debug = getattr(args, "debug", False) or os.environ.get("GDSL_DEBUG", "") not in ("", "0")
    status = 0
    for path in paths:
        try:
            changed = _format_one(path, args)
        except GdslError as e:
            if debug:
                traceback.print_exc()
            print(e.render(), file=sys.stderr)
            status = max(status, e.exit_code)
            continue
        if changed and args.check:
            status = max(status, 1)
    return status


def _expand(given: list[str]) -> list[str]:
    """Files as given, directories as the *.gdsl files under them; a missing one is a usage
    error before anything is written."""
    paths = []
    for name in given:
        p = Path(name)
        if name == STDIN:
            paths.append(name)
        elif p.is_dir():
            paths += sorted(str(f) for f in p.rglob("*.gdsl") if f.is_file())
        elif p.exists():
            paths.append(name)
        else:
            raise GdslUsageError(f"no such file or directory: {name}", filename=name)
    return paths


BOM = "\ufeff"


def _format_one(path: str, args) -> bool:
    """Format one file (or standard input); True if its layout changes."""
    if path == STDIN:
        name, text = "<stdin>", sys.stdin.read()
        old = text
    else:
        name, text = path, read_model(path)
        old = Path(path).read_bytes().decode("utf-8")     # \r\n kept: they change too
    try:
        new = format_text(text)
    except GdslError as e:
        raise e.attach(text, name) from None
    if old.startswith(BOM):         # the file's byte-order mark stays (read_model drops it)
        new = BOM + new
    changed = new != old
    if args.diff and changed:
        sys.stdout.write(_unified_diff(old, new, name))
    if args.check:
        if changed:
            print(f"would reformat {name}", file=sys.stderr)
    elif path == STDIN:
        if not args.diff:
            sys.stdout.write(new)
    elif changed and not args.diff:
        write_atomic(os.path.realpath(path), new)     # a link stays a link to the formatted file
        print(f"reformatted {name}", file=sys.stderr)
    return changed


def _unified_diff(old: str, new: str, name: str) -> str:
    out = []
    for line in difflib.unified_diff(_keep_ends(old), _keep_ends(new), name, f"{name} (formatted)"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _keep_ends(text: str) -> list[str]:
    """Lines ended at "\\n" only, as gdsl counts them (str.splitlines also breaks at \\f,
    \\x85, U+2028 ...)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])

"""One exception family for every mistake a user can make.

Each error carries where it happened (file, line, column, the source line)
and renders like a modern compiler's message::

    model.gdsl:3:5: error: shape mismatch in `W @ x`
      |
    3 | z = W @ x
      |     ^^^^^
      = note: W has shape [C, d] (declared at model.gdsl:5:7)
      = help: ...
"""

from __future__ import annotations

import difflib
from typing import NamedTuple


class Span(NamedTuple):
    """A region of the model text: 1-based line and column, end exclusive.

    A named tuple rather than a dataclass: a large model makes a million of them."""

    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"

    @staticmethod
    def cover(a: Span | None, b: Span | None) -> Span | None:
        if a is None or b is None:
            return a or b
        return Span(a.line, a.col, b.end_line, b.end_col)


MAX_SHOWN = 120        # characters of a long source line shown around the place of an error


def _printable(text: str) -> str:
    """One line with no control characters: what a data file's cell or a file name puts in a
    message (an escape sequence, a newline) shows as U+FFFD, a tab as a space."""
    return "".join(c if c.isprintable() else "\ufffd" for c in text.replace("\t", " "))


class GdslError(Exception):
    """Base of every error gdsl reports to a user; the CLI exits with ``exit_code``."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str, span: Span | None = None, *, help: str | None = None,
                 notes: tuple[str, ...] | list[str] = (), filename: str | None = None,
                 source: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.help = help
        self.notes = list(notes)
        self.filename = filename
        self.source = source

    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.col if self.span else None

    def attach(self, source: str | None, filename: str | None) -> GdslError:
        """Fill in the model text and file name if the raiser did not know them."""
        if self.source is None:
            self.source = source
        if self.filename is None:
            self.filename = filename
        return self

    def render(self) -> str:
        where = self.filename or ("<model>" if self.span is not None else "gdsl")
        if self.span is not None:
            where += f":{self.span.line}:{self.span.col}"
        out = [_printable(f"{where}: {self.kind}: {self.message}")]
        line_text = self._source_line()
        if line_text is not None:
            sp = self.span
            num = str(sp.line)
            pad = " " * len(num)
            start = sp.col - 1
            width = (sp.end_col - sp.col) if sp.end_line == sp.line else len(line_text) - start
            if len(line_text) > MAX_SHOWN:     # a window around the place, marked … where cut
                lo = max(0, min(start - MAX_SHOWN // 3, len(line_text) - MAX_SHOWN))
                hi = lo + MAX_SHOWN
                width = min(width, hi - start)
                start -= lo - (lo > 0)
                line_text = ("…" if lo else "") + line_text[lo:hi] + ("…" if hi < len(line_text) else "")
            caret = " " * start + "^" * max(1, width)
            out += [f"{pad} |", f"{num} | {line_text}", f"{pad} | {caret}"]
            lead = f"{pad} = "
        else:
            lead = "  = "
        out += [_printable(f"{lead}note: {n}") for n in self.notes]
        if self.help:
            out.append(_printable(f"{lead}help: {self.help}"))
        return "\n".join(out)

    def _source_line(self) -> str | None:
        if self.span is None or self.source is None:
            return None
        # Lines are counted at "\n" only, as the lexer counts them (splitlines would also
        # break at \r, \f, U+2028 ... and show the wrong line). Control characters are shown
        # as U+FFFD, one column each, so the caret stays aligned and a model file cannot send
        # escape sequences to the user's terminal.
        lines = self.source.split("\n")
        if not 1 <= self.span.line <= len(lines):
            return None
        line = lines[self.span.line - 1].removesuffix("\r").expandtabs(1)
        return "".join(c if c.isprintable() else "\ufffd" for c in line)

    def __str__(self) -> str:
        return self.render()


class GdslSyntaxError(GdslError):
    """The text does not follow the grammar."""


class GdslNameError(GdslError):
    """Undefined, redefined or misused names."""


class GdslTypeError(GdslError):
    """Wrong function, arity, keyword, axis or literal."""


class GdslShapeError(GdslError):
    """Shapes that cannot go together, at compile time or call time."""


class GdslValueError(GdslError):
    """Bad arrays at call time: missing, extra, wrong dtype, non-finite, labels out of range."""


class GdslRuntimeError(GdslError):
    """A failure while running the emitted code, reported at the model's own line."""


class GdslDataError(GdslError):
    """A data or parameter file that cannot be used."""


class GdslLimitError(GdslError):
    """A model too large or too deeply nested for the documented limits."""


class GdslUsageError(GdslError):
    """Bad command-line usage (exit status 2)."""

    exit_code = 2


class GdslDivergedError(GdslError):
    """Training produced a non-finite loss."""


class GdslDataWarning(UserWarning):
    """Data that can be used but are probably not what was meant (labels 0, 1 and 10^8 make
    10^8 + 1 classes). The command line prints it as `file: warning: ...`."""


def did_you_mean(name: str, choices) -> str | None:
    """`did you mean `lr`?` for the closest of ``choices`` to a misspelt ``name``, or None."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"did you mean `{close[0]}`?" if close else None

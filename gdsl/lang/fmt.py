"""`gdsl fmt`: one canonical layout of a model file.

The layout, as the files in models/ are written:

- one statement a line: `a = 1; b = 2` becomes two lines, `\\` continuations are joined;
- one space around the binary operators (`W @ x + b`, `x ** 2`), around `=` in an
  assignment or `const`, and around `~`; none after a unary sign (`-x`, `2 ** -x`), none
  inside brackets (`relu(h)`, `x[d, n]`), none before `,` and one after it; none around
  the `=` of a keyword argument or a training option (`sum(x, axis=0)`, `train lr=0.1`);
- in a block of consecutive declarations the `~` of the params and the `=` of the consts
  line up (the names line up by themselves: `input`, `param` and `const` are five letters);
- comments stay where they were: a full-line comment on its own line (at the start of
  the line, or under the end-of-line comment it continues), an end-of-line comment after its
  statement, at its own column or two spaces after the code if that is further right;
  a run of consecutive lines with end-of-line comments shares one column;
- blank lines are kept, at most one in a row, none at the start or the end; the file ends
  with one newline;
- a loop's body, on the lines below its `for t in 1..T:`, is indented four spaces a loop
  (`1..T` and `x[t]` take no spaces, `:` one after it).

The formatter reads the grammar's own tokens (gdsl.lang.tokens, comments and whitespace
included) and the AST of gdsl.lang.parse for what each statement is, so nothing but
whitespace changes: ``format_text`` checks that its result has the same tokens and
comments as its input, and is its own fixed point.
"""

from __future__ import annotations

from dataclasses import dataclass

from lark import Token

from . import syntax as S
from .parse import KEYWORD_TERMINALS, parse
from .tokens import lex

# After one of these a `+` or `-` is binary (`a - b`); anywhere else it is a sign (`-b`).
VALUE_END = {"NAME", "NUMBER", "RPAR", "RSQB", "TRANSPOSE"}
IGNORED = {"WS", "COMMENT", "LINE_CONT", "_SEP"}
COMMENT_GAP = 2          # spaces at least between code and an end-of-line comment


@dataclass
class Line:
    """One line of the output: a statement (with its end-of-line comment, if any), a
    comment on its own, or a blank line (neither)."""

    tokens: list[Token] | None = None     # a statement's tokens
    stmt: S.Stmt | None = None
    comment: str | None = None
    column: int = 0                       # where the comment was (0-based), or 0 for "anywhere"
    indented: bool = False                # a full-line comment that did not start its line
    code: str = ""
    depth: int = 0                        # how many loops the statement is inside


def format_text(text: str) -> str:
    """The canonical layout of model text (see the module's docstring).

    Raises GdslSyntaxError (or GdslLimitError) for text that does not parse, as
    gdsl.lang.parse.parse does; the error has no file name attached."""
    program = parse(text)
    tokens = lex(text)
    lines = _lines(tokens, program.statements)
    for line in lines:
        if line.tokens:
            line.code = "    " * line.depth + _join(line.tokens)
    _align_declarations(lines)
    out = _render(lines)
    _check_same_tokens(tokens, lex(out))
    return out


# -- reading: tokens -> lines --------------------------------------------------------------------

def _lines(tokens: list[Token], statements: list[S.Stmt]) -> list[Line]:
    """The output lines: statements split at `;` and joined over `\\`, comments attached to
    the statement their physical line ends with, blank lines where the text had them."""
    lines: list[Line] = []
    current: list[Token] = []        # the tokens of the statement being read
    on_this_line: list[Line] = []    # statements that began on the current physical line
    comment: Token | None = None
    joined = False                   # the physical line went on past a `\`
    stmts = iter(S.walk(statements))       # (a loop's body, on its own lines, after the loop)

    def end_statement():
        if current:
            stmt, depth = next(stmts)
            line = Line(tokens=list(current), stmt=stmt, depth=depth)
            lines.append(line)
            on_this_line.append(line)
            current.clear()

    for tok in tokens:
        kind = tok.type
        if kind == "WS":
            continue
        if kind == "LINE_CONT":
            joined = True
            continue
        if kind == "COMMENT":
            comment = tok
            continue
        if kind == "_SEP":
            end_statement()
            if tok.value != ";":
                _end_physical_line(lines, on_this_line, comment, joined)
                on_this_line, comment, joined = [], None, False
            continue
        current.append(tok)
    end_statement()
    _end_physical_line(lines, on_this_line, comment, joined)
    if next(stmts, None) is not None:
        raise AssertionError("gdsl fmt: the statements of the AST and of the tokens disagree")
    return lines


def _end_physical_line(lines, on_this_line, comment, joined) -> None:
    text = None if comment is None else comment.value.rstrip(" \t\r\f\v")
    if on_this_line:
        if text is not None:
            last = on_this_line[-1]
            last.comment = text
            # its column means something only if the line holds the statement alone
            alone = len(on_this_line) == 1 and not joined
            last.column = comment.column - 1 if alone else 0
    elif text is not None:
        lines.append(Line(comment=text, indented=comment.column > 1 and not joined))
    else:
        lines.append(Line())          # blank (or only `;`)


# -- one statement's tokens -> text --------------------------------------------------------------

def _join(tokens: list[Token]) -> str:
    """A statement's tokens with the canonical spaces between them."""
    out = [tokens[0].value]
    train = tokens[0].type == "TRAIN"
    depth = 0                 # inside a call's parentheses, `=` belongs to a keyword argument
    sign = False              # the previous token was a unary + or -
    prev = tokens[0]
    for tok in tokens[1:]:
        kind, before = tok.type, prev.type
        if before in KEYWORD_TERMINALS and not depth:     # (in a call, `dim` is a keyword name)
            space = " "
        elif (kind in ("COMMA", "RPAR", "RSQB", "DOTDOT", "COLON")
              or before in ("LPAR", "LSQB", "DOTDOT")
              or (kind in ("LPAR", "LSQB") and before == "NAME")):      # f(x), x[d, n], 1..T
            space = ""
        elif before == "COLON":            # for t in 1..T: h[t] = ...
            space = " "
        elif kind == "TRANSPOSE":        # x.T, x'; but `2 .T`: `2.T` would read as `2.` and T
            space = " " if before == "NUMBER" and tok.value == ".T" else ""
        elif before == "COMMA":
            space = " "
        else:        # around operators, `=` and `~`; not after a sign, nor in axis=0, lr=0.1
            keyword_argument = "EQUAL" in (kind, before) and (depth or train)
            space = "" if keyword_argument or sign else " "
        depth += (kind == "LPAR") - (kind == "RPAR")
        sign = kind == "ADDOP" and before not in VALUE_END
        out.append(space + tok.value)
        prev = tok
    return "".join(out)


# -- alignment --------------------------------------------------------------------------------

def _align_declarations(lines: list[Line]) -> None:
    """In each block of consecutive declarations, the `~` of the params line up, and the
    `=` of the consts."""
    block: list[Line] = []
    for line in [*lines, Line()]:
        if isinstance(line.stmt, (S.Input, S.Param, S.Const)):
            block.append(line)
            continue
        for kind, mark in ((S.Param, "TILDE"), (S.Const, "EQUAL")):
            split = [(ln, _head_tail(ln, mark)) for ln in block if isinstance(ln.stmt, kind)]
            split = [(ln, ht) for ln, ht in split if ht is not None]
            if len(split) > 1:
                width = max(len(head) for _, (head, _) in split)
                for ln, (head, tail) in split:
                    ln.code = head.ljust(width) + " " + tail
        block = []


def _head_tail(line: Line, mark: str) -> tuple[str, str] | None:
    """`param W[C, d] ~ he` -> (`param W[C, d]`, `~ he`): split before the mark, if any."""
    for i, tok in enumerate(line.tokens):
        if tok.type == mark:
            return _join(line.tokens[:i]), _join(line.tokens[i:])
    return None


def _render(lines: list[Line]) -> str:
    # blank lines: at most one in a row, none at the start or the end
    kept: list[Line] = []
    for line in lines:
        blank = line.tokens is None and line.comment is None
        if blank and (not kept or kept[-1].tokens is None and kept[-1].comment is None):
            continue
        kept.append(line)
    while kept and kept[-1].tokens is None and kept[-1].comment is None:
        kept.pop()
    # end-of-line comments: a run of consecutive lines that have one shares a column
    columns: dict[int, int] = {}
    run: list[int] = []
    for i, line in enumerate([*kept, Line()]):
        if line.tokens is not None and line.comment is not None:
            run.append(i)
            continue
        if run:
            col = max(max(kept[j].column, len(kept[j].code) + COMMENT_GAP) for j in run)
            columns.update(dict.fromkeys(run, col))
            run = []
    out = []
    for i, line in enumerate(kept):
        if line.tokens is None and line.comment is None:
            out.append("")
        elif line.tokens is None:       # a comment on its own line
            prev = i and kept[i - 1]
            if line.indented and prev and prev.tokens is not None and prev.comment is not None:
                # it continues the end-of-line comment above: keep it under that one
                out.append(" " * columns[i - 1] + line.comment)
                columns[i] = columns[i - 1]
            elif line.indented and prev and i - 1 in columns and prev.tokens is None:
                out.append(" " * columns[i - 1] + line.comment)      # and the one after it
                columns[i] = columns[i - 1]
            else:
                out.append(line.comment)
        elif line.comment is None:
            out.append(line.code)
        else:
            out.append(line.code.ljust(columns[i]) + line.comment)
    return "\n".join(out) + "\n" if out else ""


# -- the check: only whitespace changed -----------------------------------------------------

def _statements(tokens: list[Token]) -> tuple[list[list[str]], list[str]]:
    stmts: list[list[str]] = [[]]
    comments = []
    for tok in tokens:
        if tok.type == "_SEP":
            if stmts[-1]:
                stmts.append([])
        elif tok.type == "COMMENT":
            comments.append(tok.value.rstrip(" \t\r\f\v"))
        elif tok.type not in IGNORED:
            stmts[-1].append(tok.value)
    return [s for s in stmts if s], comments


def _check_same_tokens(before: list[Token], after: list[Token]) -> None:
    if _statements(before) != _statements(after):
        raise AssertionError("gdsl fmt changed more than whitespace (a bug in gdsl fmt)")

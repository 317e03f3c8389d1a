"""Parse model text into the AST of gdsl/syntax.py.

Lark builds the LALR(1) tables from grammars/gdsl.lark; `_run` drives them and
calls the transformer below as rules reduce, so the AST is built bottom-up on
the parser's stack: no parse tree, no recursion, and a 5,000-deep nested
expression parses like a flat one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import re
import sys
from functools import cache
from importlib import resources
from itertools import chain
from typing import NamedTuple

import lark
from lark import Lark, Transformer
from lark.lexer import Lexer, PatternStr, _regexp_has_newline
from lark.parse_tree_builder import ExpandSingleChild
from lark.parsers.lalr_analysis import Shift

from . import syntax as S
from .errors import GdslLimitError, GdslSyntaxError, Span

# Limits (README: Robustness and limits). A 100,000-statement chain is ~1.5 MB of text and
# 100,000 operations; the limits leave room for that and stop what would take minutes or
# gigabytes before the work is done.
MAX_SOURCE_BYTES = 8 * 1024 * 1024      # bytes of UTF-8 model text
MAX_NESTING = 10_000                    # brackets inside brackets (Python allows 200)

# Friendly names for the grammar's terminals, used in "expected ..." messages.
TERMINAL_NAMES = {
    "NAME": "a name",
    "NUMBER": "a number",
    "INT": "an integer",
    "_SEP": "end of statement",
    "$END": "end of file",
    "ADDOP": "`+` or `-`",
    "MULOP": "`*`, `/` or `@`",
    "POW": "`**`",
    "TRANSPOSE": "`.T`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "COMMA": "`,`",
    "EQUAL": "`=`",
    "TILDE": "`~`",
    "INPUT": "`input`",
    "PARAM": "`param`",
    "CONST": "`const`",
    "LOSS": "`loss`",
    "OUTPUT": "`output`",
    "TRAIN": "`train`",
}
KEYWORDS = {"input", "param", "const", "loss", "output", "train"}
BAD_CHARACTER = "bad_character"     # the lexer's name for a character no terminal matches


class Lexeme(NamedTuple):
    """A token of the model text, as the lexer makes it and the parser shifts it.

    A named tuple rather than Lark's Token: it is made three times faster, and it carries
    its span ready for the AST."""

    type: str       # the grammar's terminal
    text: str
    span: Span


def _number(tok: Lexeme, sign: Lexeme | None = None) -> float:
    value = float(tok.text)
    if value == float("inf"):       # 1e999: float64 cannot hold it
        raise GdslSyntaxError(f"the number `{tok.text}` is too large for float64 (at most about 1.8e308)",
                              tok.span)
    return -value if sign is not None and sign.text == "-" else value


def _cover(first: Span, last: Span) -> Span:
    """Span.cover(first, last) when both are known, as they are in an expression: from the
    start of the first to the end of the last, made without Span's Python-level __new__."""
    return tuple.__new__(Span, (first.line, first.col, last.end_line, last.end_col))


class ToAst(Transformer):
    """Builds syntax nodes during the LALR parse (grammar alias -> AST class)."""

    operations = 0          # counted during a parse: each makes (at least) one graph node
    max_operations = 0

    def _operation(self, span: Span) -> None:
        self.operations += 1
        if self.operations > self.max_operations:     # stop now, not after parsing it all
            raise GdslLimitError(f"the model has more than {self.max_operations} operations",
                                 span, help="the limit is gdsl.build.MAX_NODES")

    def start(self, items):
        return S.Program(list(items))

    # statements
    def assign(self, c):
        name, value = c
        return S.Assign(name.text, value, _cover(name.span, value.span), name.span)

    def input_decl(self, c):
        kw, name, *rest = c
        shape = rest[0] if rest else None
        end = shape[1] if shape else name.span
        return S.Input(name.text, shape[0] if shape else None, Span.cover(kw.span, end), name.span)

    def param_decl(self, c):
        kw, name, *rest = c
        shape = init = None
        for r in rest:
            if isinstance(r, S.Init):
                init = r
            elif r is not None:
                shape = r
        end = init.span if init else shape[1] if shape else name.span
        return S.Param(name.text, shape[0] if shape else None, init,
                       Span.cover(kw.span, end), name.span)

    def const_decl(self, c):
        kw, name, *rest = c
        value, vspan = self._signed(rest[0]) if rest and rest[0] is not None else (None, name.span)
        return S.Const(name.text, value, Span.cover(kw.span, vspan), name.span)

    def loss_stmt(self, c):
        kw, name = c
        return S.Loss(name.text, Span.cover(kw.span, name.span), name.span)

    def output_stmt(self, c):
        kw, *names = c
        names = tuple(S.Name(n.text, n.span) for n in names)
        return S.Output(names, Span.cover(kw.span, names[-1].span))

    def train_stmt(self, c):
        kw, *options = c
        return S.Train(tuple(options), Span.cover(kw.span, options[-1].span))

    def option(self, c):
        name, value = c
        if isinstance(value, Lexeme) and value.type == "NAME":  # a bare word: optimizer=adam
            return S.Option(name.text, value.text, Span.cover(name.span, value.span))
        number, span = self._signed(value)
        return S.Option(name.text, number, Span.cover(name.span, span))

    def shape(self, c):
        dims = []
        for d in c:
            if d is None:
                continue
            if d.type == "NUMBER":
                if not d.text.isdigit():
                    raise GdslSyntaxError(f"a dimension is a name or a whole number, not `{d.text}`",
                                          d.span, help="e.g. `input x[d, n]` or `param b[C, 1]`")
                if len(d.text) > 18:         # beyond int64, and beyond any memory
                    raise GdslLimitError(f"the dimension `{d.text[:20]}...` is too large", d.span,
                                         help="dimensions are at most 18 digits")
                dims.append(S.DimSpec(int(d.text), d.span))
            else:
                dims.append(S.DimSpec(d.text, d.span))
        return tuple(dims), (dims[-1].span if dims else None)

    def init(self, c):
        name, *args = c
        args = [a for a in args if a is not None]
        values = tuple(self._signed(a)[0] for a in args)
        end = self._signed(args[-1])[1] if args else name.span
        return S.Init(name.text, values, Span.cover(name.span, end))

    @staticmethod
    def _signed(a):
        """(value, span) of a number as signed_number gives it, or of a bare NUMBER."""
        return (_number(a), a.span) if isinstance(a, Lexeme) else a

    def signed_number(self, c):
        sign, num = c
        return _number(num, sign), Span.cover(sign.span, num.span)

    # expressions
    def binop(self, c):
        left, op, right = c
        self._operation(op.span)
        return S.BinOp(op.text, left, right, _cover(left.span, right.span), op.span)

    def unary(self, c):
        op, operand = c
        if op.text == "-":
            self._operation(op.span)
        return S.Unary(op.text, operand, _cover(op.span, operand.span))

    def transpose(self, c):
        operand, tok = c
        self._operation(tok.span)
        return S.Transpose(operand, _cover(operand.span, tok.span))

    def number(self, c):
        (tok,) = c
        return S.Num(_number(tok), tok.text, tok.span)

    def name(self, c):
        (tok,) = c
        return S.Name(tok.text, tok.span)

    def call(self, c):
        func, rpar = c[0], c[-1]
        args = [a for a in c[1:-1] if a is not None]
        positional = tuple([a for a in args if not isinstance(a, S.Keyword)])
        keywords = tuple([a for a in args if isinstance(a, S.Keyword)])
        self._operation(func.span)
        return S.Call(func.text, positional, keywords, _cover(func.span, rpar.span), func.span)

    def group(self, c):
        lpar, inner, rpar = c
        return dataclasses.replace(inner, span=_cover(lpar.span, rpar.span))

    def keyword(self, c):
        name, value = c
        return S.Keyword(name.text, value, _cover(name.span, value.span))


def grammar_text() -> str:
    """The grammar as shipped with the package (grammars/gdsl.lark).

    Run from a source tree (the repository's root on sys.path, no install), `gdsl` is the
    plain directory and the `gdsl.grammars` mapping of pyproject.toml does not exist:
    the grammar is then read from the tree's top-level grammars/.
    """
    try:
        where = resources.files("gdsl.grammars")
    except ModuleNotFoundError:
        where = resources.files("gdsl").joinpath("..", "grammars")
    return where.joinpath("gdsl.lark").read_text(encoding="utf-8")


class FastLexer(Lexer):
    """The grammar's own terminals, matched by one compiled regular expression.

    Lark's lexers spend ~10 µs a token in Python; this one does the same job (the
    terminals, their order and the keyword rule are read from the grammar) a few
    times faster, which is most of the parse time of a 100,000-line model.
    """

    def __init__(self, conf):
        terminals = sorted(conf.terminals, key=lambda t: (-t.priority, -t.pattern.max_width,
                                                          -len(t.pattern.value), t.name))
        name_re = re.compile(next(t.pattern.to_regexp() for t in terminals if t.name == "NAME"))
        self.keywords = {t.pattern.value: t.name for t in terminals
                         if isinstance(t.pattern, PatternStr) and name_re.fullmatch(t.pattern.value)}
        others = [t for t in terminals if t.name not in self.keywords.values()]
        # One alternative a terminal, in Lark's order; the group that names it is empty and
        # comes last, so that the regex engine can reject most alternatives by their first
        # character. A last alternative takes any character no terminal matches, so that
        # finditer's matches tile the text: it ends the lexing with UnexpectedCharacters.
        self.regex = re.compile("|".join([f"(?:{t.pattern.to_regexp()})(?P<{t.name}>)" for t in others]
                                         + [rf"[\s\S](?P<{BAD_CHARACTER}>)"]))
        self.ignore = frozenset(conf.ignore)
        self.blank = frozenset(t.name for t in others if t.name in self.ignore
                               and not _regexp_has_newline(t.pattern.to_regexp()))

    def lex(self, data: str):
        keywords, ignore, blank = self.keywords, self.ignore, self.blank
        new = tuple.__new__     # Lexeme(...) and Span(...) without their Python-level __new__
        line, line_start = 1, 0
        for m in self.regex.finditer(data):
            kind = m.lastgroup
            if kind in blank:           # spaces: most of the matches, and nothing to do
                continue
            value, pos = m.group(), m.start()
            if kind == BAD_CHARACTER:
                raise lark.UnexpectedCharacters(data, pos, line, pos - line_start + 1,
                                                allowed=None)
            if kind == "NAME":
                kind = keywords.get(value, kind)
            if "\n" not in value:
                if kind not in ignore:
                    col = pos - line_start + 1
                    yield new(Lexeme, (kind, value, new(Span, (line, col, line, col + len(value)))))
            else:
                newlines = value.count("\n")
                if kind not in ignore:
                    yield Lexeme(kind, value, Span(line, pos - line_start + 1, line + newlines,
                                                   len(value) - value.rfind("\n")))
                line += newlines
                line_start = pos + value.rfind("\n") + 1


SHIFT, REDUCE, UNIT = "shift", "reduce", "unit"     # the actions of _run's tables


class Tables(NamedTuple):
    lexer: FastLexer
    transformer: ToAst
    actions: dict       # state -> terminal or rule name -> (SHIFT, next state), (REDUCE, reduction)
    start: int          # or (UNIT, state below -> next state)
    end: int


@cache
def _tables() -> Tables:
    return _read_tables(_lark())


def _read_tables(lark_parser: Lark) -> Tables:
    """Lark's LALR(1) tables for the grammar, read into plain dicts for `_run`.

    A reduction is (size, rule name, build): build makes the AST node from the rule's
    children (Lark's callback, which calls ToAst). A `?rule` with one child has no build:
    its value passes up as it is, only the state on top of the stack changes. Most
    reductions in an expression are of that kind, and come in chains (atom -> unary ->
    product -> sum -> expr); see `_unit_chains`.
    """
    lalr = lark_parser.parser.parser.parser         # Lark -> frontend -> LALR_Parser -> tables
    actions = {}
    for state, row in lalr.parse_table.states.items():
        actions[state] = ours = {}
        for symbol, (action, arg) in row.items():
            if action is Shift:
                ours[str(symbol)] = (SHIFT, arg)
                continue
            build = lalr.callbacks[arg]
            if isinstance(build, ExpandSingleChild) and len(arg.expansion) == 1:
                build = None
            ours[str(symbol)] = (REDUCE, (len(arg.expansion), str(arg.origin.name), build))
    return Tables(FastLexer(lark_parser.lexer_conf), lark_parser.options.transformer,
                  _unit_chains(actions), lalr.parse_table.start_states["start"],
                  lalr.parse_table.end_states["start"])


LARK_OPTIONS = {"parser": "lalr", "lexer": FastLexer, "maybe_placeholders": True}


def _lark() -> Lark:
    """Lark's parser for the grammar, from gdsl's per-user cache when a sound copy is there
    (~5 ms), else built (the LALR analysis: ~85 ms, most of a `gdsl` run on a small model)
    and saved for the next process. A missing, stale, truncated, foreign or unwritable cache
    file only means building it here."""
    text = grammar_text()
    path = _parser_cache_path(text)
    lark_parser = _load_parser(path) if path is not None else None
    if lark_parser is None:
        lark_parser = Lark(text, transformer=ToAst(), **LARK_OPTIONS)
        if path is not None:
            _save_parser(lark_parser, path)
    return lark_parser


def _parser_cache_path(text: str):
    """The cache file for this grammar under this Lark and Python (pickles differ between
    Pythons), or None if there is no usable cache directory."""
    from .files import cache_dir as _cache_dir
    key = "\0".join([text, lark.__version__, sys.version.split()[0], repr(LARK_OPTIONS)])
    try:
        return _cache_dir() / f"parser_{hashlib.sha256(key.encode()).hexdigest()[:16]}.lark"
    except OSError:
        return None


class _ParserUnpickler(pickle.Unpickler):
    """Lark's saved parser is plain data (dicts, lists, strings) and one class, the lexer:
    any other global in the file is refused, so that a planted file runs no code."""

    def find_class(self, module, name):
        if (module, name) == (FastLexer.__module__, FastLexer.__name__):
            return FastLexer
        raise pickle.UnpicklingError(f"{module}.{name} in a saved parser")


def _load_parser(path) -> Lark | None:
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_uid != os.getuid():   # someone else's file
                return None
            digest, _, payload = f.read().partition(b"\n")
        if digest != hashlib.sha256(payload).hexdigest().encode():   # truncated, or not ours
            return None
        saved = _ParserUnpickler(io.BytesIO(payload)).load()
        return Lark._load_from_dict(saved["data"], saved["memo"], transformer=ToAst())
    except Exception:   # noqa: BLE001 (whatever is wrong with the file, the parser is built instead)
        return None


def _save_parser(lark_parser: Lark, path) -> None:
    from .files import write_atomic
    out = io.BytesIO()
    lark_parser.save(out, exclude_options=("transformer",))    # ToAst is given when loading
    payload = out.getvalue()
    try:    # whole or not at all (another process may be reading it), with its own checksum
        write_atomic(path, hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload,
                     durable=False)
    except OSError:
        pass


def _unit_chains(actions: dict) -> dict:
    """The tables with each chain of one-child reductions taken in one step.

    Reducing `?unary: atom` pops the atom's state and goes to the state for `unary` from the
    state below, where the same lookahead may reduce `?product: unary` at once, and so on: the
    state below decides where the chain ends. So a chain's first reduction becomes
    (UNIT, {state below: the state after the last reduction}); what follows (a shift, a
    reduction that builds a node, or an error) happens as before, in that state.
    """
    def is_unit(action):
        return action is not None and action[0] is REDUCE and action[1][2] is None

    ours = {}
    for state, row in actions.items():
        ours[state] = dict(row)
        for kind, action in row.items():
            if not is_unit(action):
                continue
            rule = action[1][1]
            chain_end = {}
            for below, below_row in actions.items():
                if rule not in below_row:
                    continue
                top = below_row[rule][1]
                while is_unit(actions[top].get(kind)):
                    top = below_row[actions[top][kind][1][1]][1]
                chain_end[below] = top
            ours[state][kind] = (UNIT, chain_end)
    return ours


def _run(tables: Tables, text: str) -> S.Program:
    """Lark's LALR loop (lark/parsers/lalr_parser_state.py) on the tables, with the rule
    names as plain strings and without Lark's per-reduction wrappers: a third of the time."""
    actions, end = tables.actions, tables.end
    states, values = [tables.start], []
    for token in chain(tables.lexer.lex(text), [Lexeme("$END", "", None)]):
        kind = token.type
        while True:
            try:
                action, arg = actions[states[-1]][kind]
            except KeyError:
                if states[-1] == end:
                    return values[-1]
                expected = {s for s in actions[states[-1]] if s.isupper()}
                raise lark.UnexpectedToken(token, expected, state=values) from None
            if action is SHIFT:
                states.append(arg)
                values.append(token)
                break
            if action is UNIT:
                states[-1] = arg[states[-2]]
                continue
            size, rule, build = arg
            children = values[-size:] if size else []
            del values[len(values) - size:], states[len(states) - size:]
            values.append(build(children))
            states.append(actions[states[-1]][rule][1])


def _expected(names) -> str:
    pretty = sorted({TERMINAL_NAMES.get(n, f"`{n}`") for n in names if n not in ("WS",)})
    if not pretty:
        return ""
    if len(pretty) > 6:
        pretty = pretty[:6] + ["..."]
    return "expected " + ", ".join(pretty)


def parse(text: str) -> S.Program:
    """Parse model text into a Program; raises GdslSyntaxError with the place and what was expected."""
    if len(text) > MAX_SOURCE_BYTES or (4 * len(text) > MAX_SOURCE_BYTES and len(
            text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES):
        raise GdslLimitError(f"the model text is larger than the limit of {MAX_SOURCE_BYTES} bytes",
                             help="gdsl.parse.MAX_SOURCE_BYTES")
    if "\x00" in text:
        raise GdslSyntaxError("the model text contains a NUL byte", _at(text, text.index("\x00")),
                              help="is this a binary file?")
    _check_nesting(text)
    from .build import MAX_NODES
    tables = _tables()
    tables.transformer.operations, tables.transformer.max_operations = 0, MAX_NODES
    try:
        return _run(tables, text)
    except lark.UnexpectedCharacters as e:
        ch = text[e.pos_in_stream] if e.pos_in_stream is not None and e.pos_in_stream < len(text) else "?"
        span = Span(e.line, e.column, e.line, e.column + 1)
        help = None
        if ch == "=" and text[e.pos_in_stream:e.pos_in_stream + 2] == "==":
            help = "gdsl has no comparisons; `=` defines a name once"
        raise GdslSyntaxError(f"unexpected character {ch!r}", span, help=help,
                              notes=[_expected(e.allowed)] if e.allowed else []) from None
    except lark.UnexpectedToken as e:
        tok = e.token
        if tok.type == "EQUAL" and _last_keyword(e.state):
            span = Span(tok.span.line, tok.span.col, tok.span.line, tok.span.col + 1)
            raise GdslSyntaxError(f"`{_last_keyword(e.state)}` is a keyword and cannot be used as a name",
                                  span, help="choose another name") from None
        if tok.type == "$END":
            line, col = _end_position(text)
            what = "unexpected end of file"
            span = Span(line, col, line, col + 1)
        else:
            what = ("unexpected end of statement" if tok.type == "_SEP"
                    else f"unexpected `{tok.text}`")
            if tok.type == "NAME" and tok.text in KEYWORDS:
                what = f"unexpected keyword `{tok.text}`"
            line, col = tok.span.line, tok.span.col
            span = Span(line, col, line, col + max(1, len(tok.text.rstrip("\n"))))
        help = _hint(e, tok)
        if tok.text in KEYWORDS and "NAME" in e.expected:       # param loss[C, d]
            raise GdslSyntaxError(f"`{tok.text}` is a keyword and cannot be used as a name", span,
                                  help="choose another name") from None
        raise GdslSyntaxError(what, span, notes=[_expected(e.expected)] if e.expected else [],
                              help=help) from None


def _at(text: str, pos: int) -> Span:
    """The span of the character at ``pos``."""
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return Span(line, col, line, col + 1)


_BRACKETS = re.compile(r"#[^\n]*|[()\[\]]")


def _check_nesting(text: str) -> None:
    """Brackets nested deeper than MAX_NESTING are an error (comments do not count)."""
    if text.count("(") + text.count("[") <= MAX_NESTING:
        return
    depth = 0
    for m in _BRACKETS.finditer(text):
        c = m.group()
        if c in "([":
            depth += 1
            if depth > MAX_NESTING:
                raise GdslLimitError(f"brackets are nested deeper than the limit of {MAX_NESTING}",
                                     _at(text, m.start()),
                                     help="name the inner parts: `a = ...` on lines of their own")
        elif c in ")]":
            depth = max(depth - 1, 0)


def _hint(e: lark.UnexpectedToken, tok: Lexeme) -> str | None:
    expected = set(e.expected)
    if tok.type in ("INPUT", "PARAM", "CONST", "LOSS", "OUTPUT", "TRAIN") and "NAME" in expected:
        return f"`{tok}` is a keyword and cannot be used as a name"
    if tok.type in ("NAME", "NUMBER", "LPAR") and ("MULOP" in expected or "ADDOP" in expected):
        return "two values side by side need an operator between them, e.g. `W @ x`"
    if tok.type == "_SEP" and "RPAR" in expected:
        return "a `(` is not closed on this line"
    if tok.type == "EQUAL" and "NAME" not in expected:
        return "only a plain name can be assigned: `name = expression`"
    return None


def _last_keyword(values: list) -> str | None:
    """The keyword just before the error (`param = ...`), from _run's value stack."""
    last = values[-1] if values else None
    if isinstance(last, Lexeme) and last.type in ("INPUT", "PARAM", "CONST", "LOSS", "OUTPUT", "TRAIN"):
        return last.text
    return None


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def replace_span(node, span: Span):
    return dataclasses.replace(node, span=span)

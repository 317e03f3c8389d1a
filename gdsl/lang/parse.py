"""Parse model text into the AST of gdsl/syntax.py.

Lark's LALR(1) parser reads grammars/gdsl.lark with its basic lexer and is given the
transformer below (`transformer=`), so each rule's AST node is built as the rule reduces:
bottom-up on the parser's stack, no parse tree, no recursion, and a 5,000-deep nested
expression parses like a flat one. Only Lark's documented API is used: Lark, Transformer,
Token, its exceptions and `match_examples`.

Building the LALR tables is most of a small model's first compile, so they are kept with
Lark's own `cache=` option. Lark pickles that file, and loading a pickle can run code, so
the file lives only in gdsl's verified per-user directory (gdsl.files.cache_dir: the user's
own and 0700, else a private temporary one), where no model file and no other user can put
one; a stale, truncated or garbled file is ignored by Lark and the tables built again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
from functools import cache
from importlib import resources

import lark
from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedToken

from .. import limits
from ..errors import GdslLimitError, GdslSyntaxError, Span
from . import syntax as S

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
    "DIM": "`dim`",
    "METRIC": "`metric`",
    "FOR": "`for`",
    "IN": "`in`",
    "DOTDOT": "`..`",
    "COLON": "`:`",
    "STATE": "`state`",
    "IF": "`if`",
    "ELSE": "`else`",
    "TRAINING": "`training`",
    "UPDATE": "`<-`",
}
KEYWORDS = {"input", "param", "const", "loss", "output", "train", "dim", "metric", "for", "in",
            "state", "if", "else", "training"}
KEYWORD_TERMINALS = {kw.upper() for kw in KEYWORDS}

# `input = 3`: the parser has just shifted a keyword when the `=` comes. match_examples finds
# which keyword by the parser's state, at the start of the text or after other statements.
# (Not `in`: no statement starts with it, so `in =` fails at `in` itself, in the state `= 3` does.)
KEYWORD_THEN_EQUAL = {kw: [f"{kw} =", f"\n{kw} ="] for kw in sorted(KEYWORDS - {"in"})}


def _span(tok: Token) -> Span:
    """A token's place, as Lark's lexer counts it: lines at "\\n" only, 1-based, end exclusive
    (made without Span's Python-level __new__: there is one for most tokens)."""
    return tuple.__new__(Span, (tok.line, tok.column, tok.end_line, tok.end_column))


def _cover(first: Span, last: Span) -> Span:
    """Span.cover(first, last) when both are known, as they are in an expression: from the
    start of the first to the end of the last, made without Span's Python-level __new__."""
    return tuple.__new__(Span, (first.line, first.col, last.end_line, last.end_col))


def _number(tok: Token, sign: Token | None = None) -> float:
    value = float(tok.value)
    if value == float("inf"):       # 1e999: float64 cannot hold it
        raise GdslSyntaxError(f"the number `{tok.value}` is too large for float64 (at most about 1.8e308)",
                              _span(tok))
    return -value if sign is not None and sign.value == "-" else value


class ToAst(Transformer):
    """Builds syntax nodes during the LALR parse (grammar alias -> AST class). Lark calls a
    method as its rule reduces, with the rule's children: tokens and the nodes made before."""

    operations = 0          # counted during a parse: each makes (at least) one graph node
    max_operations = 0

    def count_op(self, tok: Token) -> None:
        self.operations += 1
        if self.operations > self.max_operations:     # stop now, not after parsing it all
            raise GdslLimitError(f"the model has more than {self.max_operations} operations",
                                 _span(tok), help="the limit is gdsl.limits.MAX_NODES")

    def start(self, items):
        return S.Program(group_loops(items))

    # statements
    def assign(self, c):
        name, value = c
        span = _span(name)
        return S.Assign(name.value, value, _cover(span, value.span), span)

    def indexed_assign(self, c):
        name, _lsqb, index, rsqb, value = c
        target = Span.cover(_span(name), _span(rsqb))
        return S.Assign(name.value, value, _cover(target, value.span), target, index)

    def for_stmt(self, c):
        kw, var, _in, start, _dots, stop, *body = c
        body = [b for b in body if b is not None]
        if body and isinstance(body[0], S.For) and not body[0].body:
            raise GdslSyntaxError("the loop has no body", body[0].span,
                                  help="a loop after another's `:` takes its body on the same line")
        end = body[0].span if body else stop.span
        return S.For(var.value, start, stop, tuple(body), bool(body),
                     Span.cover(_span(kw), end), _span(var))

    def input_decl(self, c):
        kw, name, *rest = c
        shape = rest[0] if rest else None
        end = shape[1] if shape else _span(name)
        return S.Input(name.value, shape[0] if shape else None, Span.cover(_span(kw), end),
                       _span(name))

    def param_decl(self, c):
        kw, name, *rest = c
        shape = init = None
        for r in rest:
            if isinstance(r, S.Init):
                init = r
            elif r is not None:
                shape = r
        end = init.span if init else shape[1] if shape else _span(name)
        return S.Param(name.value, shape[0] if shape else None, init,
                       Span.cover(_span(kw), end), _span(name))

    def const_decl(self, c):
        kw, name, *rest = c
        value, vspan = (self.signed_value(rest[0]) if rest and rest[0] is not None
                        else (None, _span(name)))
        return S.Const(name.value, value, Span.cover(_span(kw), vspan), _span(name))

    def loss_stmt(self, c):
        kw, name = c
        return S.Loss(name.value, Span.cover(_span(kw), _span(name)), _span(name))

    def output_stmt(self, c):
        kw, *names = c
        names = tuple(S.Name(n.value, _span(n)) for n in names)
        return S.Output(names, Span.cover(_span(kw), names[-1].span))

    def train_stmt(self, c):
        kw, *options = c
        return S.Train(tuple(options), Span.cover(_span(kw), options[-1].span))

    def dim_decl(self, c):
        kw, name, value = c
        number, vspan = self.signed_value(value)
        return S.DimDecl(name.value, number, Span.cover(_span(kw), vspan), _span(name), vspan)

    def metric_stmt(self, c):
        kw, *names = c
        names = tuple(S.Name(n.value, _span(n)) for n in names)
        return S.Metric(names, Span.cover(_span(kw), names[-1].span))

    def state_decl(self, c):
        kw, name, shape, value = c
        number, vspan = self.signed_value(value)
        return S.State(name.value, shape[0], number, Span.cover(_span(kw), vspan), _span(name))

    def update_stmt(self, c):
        name, _, value = c
        span = _span(name)
        return S.Update(name.value, value, _cover(span, value.span), span)

    def option(self, c):
        name, value = c
        if isinstance(value, Token) and value.type == "NAME":  # a bare word: optimizer=adam
            return S.Option(name.value, value.value, Span.cover(_span(name), _span(value)))
        number, span = self.signed_value(value)
        return S.Option(name.value, number, Span.cover(_span(name), span))

    def shape(self, c):
        dims = []
        for d in c[1:-1]:
            if d is None:
                continue
            if d.type == "NUMBER":
                if not d.value.isdigit():
                    raise GdslSyntaxError(f"a dimension is a name or a whole number, not `{d.value}`",
                                          _span(d), help="e.g. `input x[d, n]` or `param b[C, 1]`")
                if len(d.value) > 18:         # beyond int64, and beyond any memory
                    raise GdslLimitError(f"the dimension `{d.value[:20]}...` is too large", _span(d),
                                         help="dimensions are at most 18 digits")
                dims.append(S.DimSpec(int(d.value), _span(d)))
            else:
                dims.append(S.DimSpec(d.value, _span(d)))
        return tuple(dims), _span(c[-1])         # (the span ends at `]`)

    def init(self, c):
        name, *args = c
        args = [a for a in args if a is not None]
        values = tuple(self.signed_value(a)[0] for a in args)
        end = self.signed_value(args[-1])[1] if args else _span(name)
        return S.Init(name.value, values, Span.cover(_span(name), end))

    @staticmethod
    def signed_value(a):
        """(value, span) of a number as signed_number gives it, or of a bare NUMBER."""
        return (_number(a), _span(a)) if isinstance(a, Token) else a

    def signed_number(self, c):
        sign, num = c
        return _number(num, sign), Span.cover(_span(sign), _span(num))

    # expressions
    def binop(self, c):
        left, op, right = c
        self.count_op(op)
        return S.BinOp(op.value, left, right, _cover(left.span, right.span), _span(op))

    def unary(self, c):
        op, operand = c
        if op.value == "-":
            self.count_op(op)
        return S.Unary(op.value, operand, _cover(_span(op), operand.span))

    def transpose(self, c):
        operand, tok = c
        self.count_op(tok)
        return S.Transpose(operand, _cover(operand.span, _span(tok)))

    def choice(self, c):
        train, _, _, _, other = c
        return S.Choice(train, other, _cover(train.span, other.span))

    def number(self, c):
        (tok,) = c
        return S.Num(_number(tok), tok.value, _span(tok))

    def name(self, c):
        (tok,) = c
        return S.Name(tok.value, _span(tok))

    def call(self, c):
        func, rpar = c[0], c[-1]
        args = [a for a in c[1:-1] if a is not None]
        positional = tuple([a for a in args if not isinstance(a, S.Keyword)])
        keywords = tuple([a for a in args if isinstance(a, S.Keyword)])
        self.count_op(func)
        span = _span(func)
        return S.Call(func.value, positional, keywords, _cover(span, _span(rpar)), span)

    def index(self, c):
        name, _lsqb, index, rsqb = c
        self.count_op(name)
        span = _span(name)
        return S.Index(name.value, index, _cover(span, _span(rsqb)), span)

    def group(self, c):
        lpar, inner, rpar = c
        return dataclasses.replace(inner, span=_cover(_span(lpar), _span(rpar)))

    def keyword(self, c):
        name, value = c
        return S.Keyword(name.value, value, _cover(_span(name), value.span))


def group_loops(statements) -> list:
    """The statements with each loop's indented lines made its body: after `for ...:` with
    nothing after the `:`, the statements that start in a column right of the `for`'s, all in
    the first one's column (or deeper, in a loop of their own). As Python reads indentation,
    but by the statements' columns: the grammar's lexer ignores spaces and tabs."""
    top: list = []
    open_loops: list = []      # [loop, its body so far, the body's column or None]

    def close():
        loop, body, _ = open_loops.pop()
        if not body:
            raise GdslSyntaxError("the loop has no body", loop.span,
                                  help="indent the lines it repeats under it, or write one "
                                  "statement after the `:`")
        done = dataclasses.replace(loop, body=tuple(body))
        (open_loops[-1][1] if open_loops else top).append(done)

    for st in statements:
        col = st.span.col
        while open_loops and col <= open_loops[-1][0].span.col:
            close()
        if open_loops:
            loop = open_loops[-1]
            if loop[2] is None:
                loop[2] = col
            elif col != loop[2]:
                raise GdslSyntaxError(
                    "unexpected indent" if col > loop[2] else "this line's indent matches no "
                    "loop's body", Span(st.span.line, col, st.span.line, col + 1),
                    notes=[f"the body of the loop at {loop[0].span} starts in column {loop[2]}"],
                    help="indent every line of a loop's body alike")
        elif top and isinstance(top[-1], S.For) and col > top[-1].span.col:
            raise GdslSyntaxError("unexpected indent", Span(st.span.line, col, st.span.line, col + 1),
                                  notes=[f"the loop at {top[-1].span} has its body on its own line"],
                                  help="a loop's body is the statement after its `:`, or the "
                                  "lines indented under a `for` line that ends with `:`")
        if isinstance(st, S.For) and not st.inline:
            open_loops.append([st, [], None])
        else:
            (open_loops[-1][1] if open_loops else top).append(st)
    while open_loops:
        close()
    return top


def grammar_text() -> str:
    """The grammar as shipped with the package (grammars/gdsl.lark).

    Run from a source tree (the repository's root on sys.path), `gdsl` is the plain directory
    and the grammar is the tree's top-level grammars/: the `gdsl.grammars` mapping of
    pyproject.toml may not exist, or (an editable install of another checkout) point at
    another tree's grammar.
    """
    tree = resources.files("gdsl").joinpath("..")
    if tree.joinpath("pyproject.toml").is_file() and tree.joinpath("grammars", "gdsl.lark").is_file():
        where = tree.joinpath("grammars")
    else:
        where = resources.files("gdsl.grammars")
    return where.joinpath("gdsl.lark").read_text(encoding="utf-8")


# The basic lexer, not Lark's default for LALR (the contextual one, which lexes by what the
# parser's state accepts: it would read `input input` as an input named `input`). Keywords
# are keywords everywhere, and the messages say what the parser expected.
LARK_OPTIONS = {"parser": "lalr", "lexer": "basic", "maybe_placeholders": True}


def make_parser() -> tuple[Lark, ToAst]:
    """Lark's parser for the grammar, and the transformer it calls as rules reduce.

    Building the tables takes ~40 ms; from Lark's cache file it takes ~3 ms. A missing,
    stale, truncated, garbled or unwritable cache file only means building them here: Lark
    compares its key in the file, falls back to building on any error while loading, and
    skips the save on an OSError."""
    text = grammar_text()
    to_ast = ToAst()
    return Lark(text, transformer=to_ast, cache=parser_cache_file(text), **LARK_OPTIONS), to_ast


_parser = cache(make_parser)      # one per process


def parser_cache_file(text: str) -> str | bool:
    """Where Lark keeps the tables of this grammar, or False for no cache.

    Only in cache_dir(): Lark unpickles the file, so it must be where no one but the user can
    write (the directory of emitted modules, which gdsl imports already, checked the same way).
    Lark checks its own key inside the file (grammar, options, Lark's and Python's versions);
    the key in the name lets two versions of gdsl share the directory without rebuilding in turn."""
    from ..files import cache_dir
    key = "\0".join([text, lark.__version__, sys.version.split()[0], repr(LARK_OPTIONS)])
    try:
        return str(cache_dir() / f"parser-{hashlib.sha256(key.encode()).hexdigest()[:16]}.lark")
    except OSError:
        return False


def _expected(names) -> str:
    pretty = sorted({TERMINAL_NAMES.get(n, f"`{n}`") for n in names if n not in ("WS",)})
    if not pretty:
        return ""
    if len(pretty) > 6:
        pretty = pretty[:6] + ["..."]
    return "expected " + ", ".join(pretty)


def parse(text: str) -> S.Program:
    """Parse model text into a Program; raises GdslSyntaxError with the place and what was expected."""
    if len(text) > limits.MAX_SOURCE_BYTES or (4 * len(text) > limits.MAX_SOURCE_BYTES and len(
            text.encode("utf-8", "surrogatepass")) > limits.MAX_SOURCE_BYTES):
        raise GdslLimitError(f"the model text is larger than the limit of {limits.MAX_SOURCE_BYTES} bytes",
                             help="gdsl.limits.MAX_SOURCE_BYTES")
    if "\x00" in text:
        raise GdslSyntaxError("the model text contains a NUL byte", _at(text, text.index("\x00")),
                              help="is this a binary file?")
    _check_nesting(text)
    lark_parser, to_ast = _parser()
    to_ast.operations, to_ast.max_operations = 0, limits.MAX_NODES
    try:
        return lark_parser.parse(text)
    except UnexpectedCharacters as e:
        # No "expected" note: the basic lexer does not know what the parser would take here.
        ch = text[e.pos_in_stream] if e.pos_in_stream is not None and e.pos_in_stream < len(text) else "?"
        span = Span(e.line, e.column, e.line, e.column + 1)
        help = ("gdsl has no comparisons; `=` defines a name once"
                if text[e.pos_in_stream:e.pos_in_stream + 2] == "==" else
                _data_path_help(text, e.pos_in_stream))
        raise GdslSyntaxError(f"unexpected character {ch!r}", span, help=help) from None
    except UnexpectedToken as e:
        # Only the token and e.expected are read: e.accepts and str(e) would copy the parser's
        # stack, nodes and all, deeply (recursion on a deep expression).
        tok = e.token
        keyword = (e.match_examples(lark_parser.parse, KEYWORD_THEN_EQUAL, use_accepts=False)
                   if tok.type == "EQUAL" else None)
        if keyword:
            span = Span(tok.line, tok.column, tok.line, tok.column + 1)
            raise GdslSyntaxError(f"`{keyword}` is a keyword and cannot be used as a name",
                                  span, help="choose another name") from None
        if tok.type == "$END":
            line, col = _end_position(text)
            what = "unexpected end of file"
            span = Span(line, col, line, col + 1)
        else:
            what = ("unexpected end of statement" if tok.type == "_SEP"
                    else f"unexpected `{tok.value}`")
            if tok.type == "NAME" and tok.value in KEYWORDS:
                what = f"unexpected keyword `{tok.value}`"
            line, col = tok.line, tok.column
            span = Span(line, col, line, col + max(1, len(tok.value.rstrip("\n"))))
        path_help = _data_path_help(text, tok.start_pos)
        help = _hint(e, tok) or path_help
        if tok.value in KEYWORDS and "NAME" in e.expected:       # param loss[C, d]
            raise GdslSyntaxError(f"`{tok.value}` is a keyword and cannot be used as a name", span,
                                  help=path_help or "choose another name") from None
        raise GdslSyntaxError(what, span, notes=[_expected(e.expected)] if e.expected else [],
                              help=help) from None


def _data_path_help(text: str, pos: int | None) -> str | None:
    """The help for a file path in a train line (`train data=train.csv`), which takes the
    name of a built-in data set only; None elsewhere."""
    if pos is None:
        return None
    before = text[text.rfind("\n", 0, pos) + 1:pos]
    if re.match(r"\s*train\b.*\bdata\s*=\s*[^,\s]*$", before):
        return ("`train data=` names a data set that ships with gdsl (digits, spiral); give a "
                "file on the command line: gdsl run MODEL --data FILE")
    return None


def _at(text: str, pos: int) -> Span:
    """The span of the character at ``pos``."""
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return Span(line, col, line, col + 1)


_BRACKETS = re.compile(r"#[^\n]*|[()\[\]]")


def _check_nesting(text: str) -> None:
    """Brackets nested deeper than limits.MAX_NESTING are an error (comments do not count)."""
    if text.count("(") + text.count("[") <= limits.MAX_NESTING:
        return
    depth = 0
    for m in _BRACKETS.finditer(text):
        c = m.group()
        if c in "([":
            depth += 1
            if depth > limits.MAX_NESTING:
                raise GdslLimitError(f"brackets are nested deeper than the limit of {limits.MAX_NESTING}",
                                     _at(text, m.start()),
                                     help="name the inner parts: `a = ...` on lines of their own")
        elif c in ")]":
            depth = max(depth - 1, 0)


def _hint(e: UnexpectedToken, tok: Token) -> str | None:
    expected = set(e.expected)
    if tok.type in KEYWORD_TERMINALS and "NAME" in expected:
        return f"`{tok}` is a keyword and cannot be used as a name"
    if tok.type in ("NAME", "NUMBER", "LPAR") and ("MULOP" in expected or "ADDOP" in expected):
        return "two values side by side need an operator between them, e.g. `W @ x`"
    if tok.type == "_SEP" and "RPAR" in expected:
        return "a `(` is not closed on this line"
    if tok.type == "EQUAL" and "NAME" not in expected:
        return "only a plain name can be assigned: `name = expression`"
    return None


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def replace_span(node, span: Span):
    return dataclasses.replace(node, span=span)

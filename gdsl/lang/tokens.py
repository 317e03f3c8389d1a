"""The model text as the grammar's lexer sees it, comments and whitespace included.

The parser (gdsl/lang/parse.py) drops what grammars/gdsl.lark marks `%ignore`: comments,
spaces and `\\` line continuations. The formatter keeps them and the highlighters colour
them, so both read the text through this module: the same Lark lexer, run with
``dont_ignore=True``, and the grammar's terminals in the order that lexer tries them.
"""

from __future__ import annotations

from functools import cache

from lark import Lark, Token

from .parse import KEYWORD_TERMINALS, KEYWORDS, LARK_OPTIONS, grammar_text

__all__ = ["KEYWORDS", "KEYWORD_TERMINALS", "grammar", "lex", "terminals"]


@cache
def grammar() -> Lark:
    """Lark's parser of grammars/gdsl.lark, built once per process; used only for its lexer
    and its terminals (parse.parse builds the AST)."""
    return Lark(grammar_text(), **LARK_OPTIONS)


def lex(text: str) -> list[Token]:
    """Every token of ``text``, the ignored ones too (COMMENT, WS, LINE_CONT), in order.

    Raises lark's UnexpectedCharacters where no terminal matches: a text that
    gdsl.lang.parse.parse accepts always lexes."""
    return list(grammar().lex(text, dont_ignore=True))


def terminals() -> list[tuple[str, str]]:
    """(name, regular expression) of each terminal, in the order Lark's basic lexer tries
    them: the first that matches at a place wins. The keyword terminals (INPUT ...) are not
    listed: Lark matches a keyword as a NAME and then retypes it, so a keyword is a NAME whose
    text is one of KEYWORDS (`inputs` is a name)."""
    defs = [t for t in grammar().terminals if t.name not in KEYWORD_TERMINALS]
    # Lark's order: by priority, then the longest possible match first (`**` before `*`)
    defs.sort(key=lambda t: (-t.priority, -t.pattern.max_width, -len(t.pattern.value), t.name))
    return [(t.name, t.pattern.to_regexp()) for t in defs]

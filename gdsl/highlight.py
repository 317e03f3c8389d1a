"""Syntax highlighting of model files: a Pygments lexer and a TextMate grammar, both made from
the grammar's terminals and the names the compiler knows.

Nothing here is a list kept by hand: the tokens are the terminals of grammars/gdsl.lark, tried
in the order Lark's lexer tries them (gdsl.lang.tokens); a NAME is a keyword if the grammar
says so (gdsl.lang.parse.KEYWORDS), a function if the op table has it
(gdsl.ir.ops.user_functions) and an initialiser if gdsl.ir.init.INITS does. Add an op and both
highlighters know it.

    pygmentize -l gdsl models/mlp2.gdsl                      # the lexer, after pip install
    python3 -m gdsl.highlight --textmate > editors/gdsl.tmLanguage.json

The lexer is registered with Pygments through the `pygments.lexers` entry point of
pyproject.toml (alias `gdsl`, files `*.gdsl`). It needs Pygments (the `editors` extra); the
rest of gdsl never imports this module, so `import gdsl` does not load Pygments.

A character that no terminal matches (`$`, a control character) is shown as plain text, as
an editor shows what its TextMate grammar does not match: the compiler reports it, with its
place; the highlighter never emits Pygments' Error token.
"""

from __future__ import annotations

import json
import sys
from typing import ClassVar

from pygments.lexer import RegexLexer
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    Text,
    Whitespace,
)

from .ir.init import INITS
from .ir.ops import user_functions
from .lang.tokens import KEYWORDS, terminals

# What each terminal of the grammar is, in words both highlighters use. A NAME is looked up
# in vocabulary(); `_SEP` is a line end or a `;`. A new terminal without a row is an error.
KIND_OF_TERMINAL = {
    "NAME": "name",
    "NUMBER": "number",
    "COMMENT": "comment",
    "WS": "space",
    "_SEP": "separator",
    "LINE_CONT": "continuation",
    "ADDOP": "operator", "MULOP": "operator", "POW": "operator", "TRANSPOSE": "operator",
    "EQUAL": "operator", "TILDE": "operator", "DOTDOT": "operator", "COLON": "operator",
    "UPDATE": "operator",
    "LPAR": "bracket", "RPAR": "bracket", "LSQB": "bracket", "RSQB": "bracket",
    "COMMA": "comma",
}

PYGMENTS_TOKEN = {
    "keyword": Keyword,
    "function": Name.Function,
    "initialiser": Name.Builtin,
    "name": Name,
    "number": Number,
    "comment": Comment.Single,
    "operator": Operator,
    "bracket": Punctuation,
    "comma": Punctuation,
    "semicolon": Punctuation,
    "space": Whitespace,
    "newline": Whitespace,
    "continuation": Text,
    "unknown": Text,
}

TEXTMATE_SCOPE = {
    "comment": "comment.line.number-sign.gdsl",
    "keyword": "keyword.control.gdsl",
    "function": "support.function.gdsl",
    "initialiser": "support.constant.gdsl",
    "name": "variable.other.gdsl",
    "number": "constant.numeric.gdsl",
    "operator": "keyword.operator.gdsl",
    "bracket": "punctuation.section.brackets.gdsl",
    "comma": "punctuation.separator.comma.gdsl",
    "semicolon": "punctuation.terminator.statement.gdsl",
    "continuation": "constant.character.escape.line-continuation.gdsl",
}


def vocabulary() -> dict[str, str]:
    """Each name with a meaning of its own -> 'keyword', 'function' or 'initialiser'."""
    words = dict.fromkeys(INITS, "initialiser")
    words.update(dict.fromkeys(user_functions(), "function"))
    words.update(dict.fromkeys(KEYWORDS, "keyword"))
    return words


def _kind_table() -> list[tuple[str, str]]:
    """(regular expression, kind) for each terminal, in the lexer's order."""
    rows = []
    for name, regex in terminals():
        if name not in KIND_OF_TERMINAL:
            raise KeyError(f"the grammar's terminal {name} has no kind in gdsl.highlight."
                           "KIND_OF_TERMINAL: add one")
        rows.append((regex, KIND_OF_TERMINAL[name]))
    return rows


# -- Pygments --------------------------------------------------------------------------------

def _pygments_rules() -> list:
    words = vocabulary()

    def name(lexer, match):
        word = match.group()
        yield match.start(), PYGMENTS_TOKEN[words.get(word, "name")], word

    def separator(lexer, match):
        sep = match.group()
        yield match.start(), PYGMENTS_TOKEN["semicolon" if sep == ";" else "newline"], sep

    actions = {"name": name, "separator": separator}
    rules = [(regex, actions.get(kind) or PYGMENTS_TOKEN[kind]) for regex, kind in _kind_table()]
    rules.append((r"[^\n]", PYGMENTS_TOKEN["unknown"]))     # what the grammar cannot read
    return rules


class GdslLexer(RegexLexer):
    """Pygments lexer for gdsl model files (``*.gdsl``)."""

    name = "gdsl"
    aliases = ("gdsl",)
    filenames = ("*.gdsl",)
    mimetypes = ("text/x-gdsl",)
    tokens: ClassVar[dict] = {"root": _pygments_rules()}


# -- TextMate --------------------------------------------------------------------------------

def textmate() -> dict:
    """The TextMate grammar (editors/gdsl.tmLanguage.json) as a dict.

    TextMate reads a line at a time and, at each place, takes the pattern that matches
    earliest, the first listed on a tie. Every NAME is matched whole (by its own pattern when
    it is no word of the vocabulary), so the word patterns `(?:...)(?!\\w)` only ever start at
    the start of a name, as the grammar's lexer reads it. The patterns use only what Python's
    `re` and Oniguruma (VS Code, GitHub) read alike."""
    words = vocabulary()
    by_kind: dict[str, list[str]] = {}
    for word, kind in sorted(words.items()):
        by_kind.setdefault(kind, []).append(word)
    patterns = {}
    for kind in ("keyword", "function", "initialiser"):
        alternatives = "|".join(sorted(by_kind[kind], key=lambda w: (-len(w), w)))
        patterns[kind] = {"name": TEXTMATE_SCOPE[kind], "match": f"(?:{alternatives})(?!\\w)"}
    for regex, kind in _kind_table():
        if kind in ("space", "separator"):
            continue
        if kind == "continuation":        # the line's end is not part of a TextMate line
            regex = r"\\(?=[ \t]*$)"
        elif kind == "comment":
            regex = "#.*"
        entry = patterns.setdefault(kind, {"name": TEXTMATE_SCOPE[kind], "match": ""})
        entry["match"] = f"{entry['match']}|{regex}" if entry["match"] else regex
    patterns["semicolon"] = {"name": TEXTMATE_SCOPE["semicolon"], "match": ";"}
    order = ["comment", "keyword", "function", "initialiser", "name", "number", "operator",
             "bracket", "comma", "semicolon", "continuation"]
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "comment": "Generated by `python3 -m gdsl.highlight --textmate` from grammars/gdsl.lark "
                   "and gdsl's op table; do not edit.",
        "name": "gdsl",
        "scopeName": "source.gdsl",
        "fileTypes": ["gdsl"],
        "patterns": [{"include": f"#{kind}"} for kind in order],
        "repository": {kind: patterns[kind] for kind in order},
    }


def textmate_json() -> str:
    """editors/gdsl.tmLanguage.json, as the file is committed."""
    return json.dumps(textmate(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["--textmate"]:
        print("usage: python3 -m gdsl.highlight --textmate > editors/gdsl.tmLanguage.json",
              file=sys.stderr)
        return 2
    sys.stdout.write(textmate_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())

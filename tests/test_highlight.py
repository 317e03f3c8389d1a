"""Syntax highlighting: the Pygments lexer and the TextMate grammar (gdsl/highlight.py).

Both are made from the grammar's terminals and the compiler's own names. Checked here: the
lexer is found by Pygments; it reads every text as the grammar's lexer does, token for token,
on models/, every .gdsl file under tests/ and GDSL_PROGRAMS (1,000) programs drawn from the
grammar, and never gives an Error token; editors/gdsl.tmLanguage.json is what the generator
makes now, and its patterns (read with Python's re, scanned as TextMate scans a line) give the
same classes as the lexer on the same texts.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from fuzzkit import SNIPPETS, record
from grammar_programs import programs
from helpers import MODELS, ROOT
from lark.exceptions import UnexpectedCharacters
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation, Text

from gdsl import highlight
from gdsl.highlight import KIND_OF_TERMINAL, PYGMENTS_TOKEN, GdslLexer, textmate, vocabulary
from gdsl.ir.init import INITS
from gdsl.ir.ops import user_functions
from gdsl.lang.parse import KEYWORDS
from gdsl.lang.tokens import KEYWORD_TERMINALS, grammar, terminals

TEST_FILES = sorted(p for p in (ROOT / "tests").rglob("*.gdsl"))
TEXTMATE_FILE = ROOT / "editors" / "gdsl.tmLanguage.json"


def read(path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")    # tests/bad has a non-UTF-8 file


def texts() -> list[tuple[str, str]]:
    return ([(p.name, read(p)) for p in MODELS]
            + [(str(p.relative_to(ROOT)), read(p)) for p in TEST_FILES]
            + [(f"snippet {i}", t) for i, t in enumerate(SNIPPETS)])


LEXER = GdslLexer()


def pygments_tokens(text: str, lexer=LEXER) -> list[tuple[int, object, str]]:
    return list(lexer.get_tokens_unprocessed(text))


# -- Pygments finds it --------------------------------------------------------------------------

def test_pygments_finds_the_lexer_by_name_and_by_file_name():
    assert type(get_lexer_by_name("gdsl")) is GdslLexer
    assert type(get_lexer_for_filename("x.gdsl")) is GdslLexer
    assert type(get_lexer_for_filename("models/mlp2.gdsl")) is GdslLexer


def test_pygmentize_highlights_a_model():
    out = subprocess.run([sys.executable, "-m", "pygments", "-l", "gdsl", "-f", "raw",
                          str(ROOT / "models" / "mlp2.gdsl")],
                         capture_output=True, text=True, check=True).stdout
    assert "Token.Keyword\t'param'" in out
    assert "Token.Name.Function\t'relu'" in out
    assert "Token.Name.Builtin\t'he'" in out
    assert "Token.Error" not in out


def test_importing_gdsl_loads_neither_pygments_nor_ipython():
    script = ("import sys, gdsl; gdsl.compile('J = sum(x * x)'); "
              "print(sorted(m for m in ('pygments', 'IPython') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# -- the vocabulary comes from the grammar and the op table -------------------------------------

def test_the_vocabulary_is_the_compiler_s():
    words = vocabulary()
    assert {w for w, k in words.items() if k == "keyword"} == KEYWORDS
    assert {k.lower() for k in KEYWORD_TERMINALS} == KEYWORDS
    assert {w for w, k in words.items() if k == "function"} == set(user_functions())
    assert {w for w, k in words.items() if k == "initialiser"} == set(INITS)


def test_a_new_op_is_highlighted_without_touching_the_highlighter(monkeypatch):
    from gdsl.ir import ops
    assert "hardtanh" not in vocabulary()
    monkeypatch.setitem(ops.OPS, "hardtanh", ops.OPS["relu"])
    assert vocabulary()["hardtanh"] == "function"
    assert "hardtanh" in textmate()["repository"]["function"]["match"]


def test_every_terminal_of_the_grammar_has_a_class():
    names = {name for name, _ in terminals()}
    assert names == set(KIND_OF_TERMINAL), "gdsl.highlight.KIND_OF_TERMINAL is out of date"


def test_the_classes_of_a_model():
    kinds = {(value, ttype) for _, ttype, value in pygments_tokens(
        "param W[C, d] ~ he  # note\nJ = sum(relu(W @ x) ** 2, axis=0); loss J\n")}
    assert {("param", Keyword), ("loss", Keyword), ("W", Name), ("he", Name.Builtin),
            ("sum", Name.Function), ("relu", Name.Function), ("2", Number), ("0", Number),
            ("axis", Name)} <= kinds
    assert ("# note", PYGMENTS_TOKEN["comment"]) in kinds
    assert ("inputs", Name) in {(v, t) for _, t, v in pygments_tokens("inputs = 1")}


# -- the lexer reads as the grammar's lexer does ------------------------------------------------

def expected_kind(token) -> str:
    if token.type in KEYWORD_TERMINALS:
        return "keyword"
    if token.type == "NAME":
        return vocabulary().get(token.value, "name")
    if token.type == "_SEP":
        return "semicolon" if token.value == ";" else "newline"
    return KIND_OF_TERMINAL[token.type]


def check_like_the_grammar(text: str, lexer=LEXER) -> None:
    """Token for token what Lark's lexer reads, up to where it can read no further; from
    there on plain text where no terminal matches, and never an Error token."""
    got = pygments_tokens(text, lexer)
    assert all(t is not Error and t not in Error for _, t, _ in got), f"Error token in {text!r}"
    assert "".join(v for _, _, v in got) == text
    want, stop = [], len(text)
    try:
        for tok in grammar().lex(text, dont_ignore=True):
            want.append((tok.start_pos, PYGMENTS_TOKEN[expected_kind(tok)], tok.value))
    except UnexpectedCharacters as e:
        stop = e.pos_in_stream
    assert got[:len(want)] == want, f"the lexer and the grammar disagree on {text!r}"
    if stop < len(text):
        assert got[len(want)][0] == stop and got[len(want)][1] is PYGMENTS_TOKEN["unknown"]


@pytest.mark.parametrize("name, text", texts(), ids=[n for n, _ in texts()])
def test_files_lex_as_the_grammar_reads_them(name, text):
    check_like_the_grammar(text)
    assert not [t for t, _ in LEXER.get_tokens(text) if t in Error]


def test_programs_from_the_grammar_lex_as_the_grammar_reads_them(request):
    for text in programs():
        check_like_the_grammar(text)
    record(request.config, "programs highlighted (drawn from the grammar)", len(programs()))


def test_without_its_last_rule_the_lexer_would_give_error_tokens():
    """Negative control: the check above sees Error tokens where they are."""
    class Strict(GdslLexer):
        tokens = {"root": highlight._pygments_rules()[:-1]}     # noqa: RUF012

    text = read(ROOT / "tests" / "bad" / "syntax_bad_character.gdsl")
    with pytest.raises(AssertionError, match="Error token"):
        check_like_the_grammar(text, Strict())


# -- the TextMate grammar -------------------------------------------------------------------

def test_the_textmate_file_is_what_the_generator_makes():
    committed = TEXTMATE_FILE.read_text(encoding="utf-8")
    assert committed == highlight.textmate_json(), (
        "editors/gdsl.tmLanguage.json is out of date: "
        "python3 -m gdsl.highlight --textmate > editors/gdsl.tmLanguage.json")
    out = subprocess.run([sys.executable, "-m", "gdsl.highlight", "--textmate"],
                         capture_output=True, text=True, check=True).stdout
    assert out == committed


def test_the_vscode_extension_points_at_the_grammar():
    grammar_json = json.loads(TEXTMATE_FILE.read_text(encoding="utf-8"))
    package = json.loads((ROOT / "editors" / "package.json").read_text(encoding="utf-8"))
    (contributed,) = package["contributes"]["grammars"]
    assert (ROOT / "editors" / contributed["path"]).resolve() == TEXTMATE_FILE
    assert contributed["scopeName"] == grammar_json["scopeName"] == "source.gdsl"
    assert package["contributes"]["languages"][0]["extensions"] == [".gdsl"]
    config = json.loads((ROOT / "editors" / "language-configuration.json").read_text())
    assert config["comments"]["lineComment"] == "#"


KIND_OF_SCOPE = {scope: kind for kind, scope in highlight.TEXTMATE_SCOPE.items()}


def textmate_tokens(text: str) -> list[tuple[int, int, str, str]]:
    """(line, column, text, kind) of each scoped token, scanned as TextMate scans: a line at a
    time (with its "\\n", as VS Code passes it), at each place the pattern that matches
    earliest, the first listed on a tie."""
    g = json.loads(TEXTMATE_FILE.read_text(encoding="utf-8"))
    rules = [g["repository"][p["include"][1:]] for p in g["patterns"]]
    compiled = [(re.compile(r["match"]), KIND_OF_SCOPE[r["name"]]) for r in rules]
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        line += "\n"
        pos = 0
        while pos < len(line):
            best = None
            for regex, kind in compiled:
                m = regex.search(line, pos)
                if m and m.end() > m.start() and (best is None or m.start() < best[0].start()):
                    best = (m, kind)
            if best is None:
                break
            m, kind = best
            out.append((n, m.start(), m.group(), kind))
            pos = m.end()
    return out


def pygments_classes(text: str) -> list[tuple[int, int, str, str]]:
    """The lexer's tokens as (line, column, text, kind), for the kinds TextMate scopes."""
    words = vocabulary()
    out = []
    for pos, ttype, value in pygments_tokens(text):
        if ttype in (Keyword, Name.Function, Name.Builtin, Name):
            kind = words.get(value, "name")
        elif ttype is Punctuation:
            kind = {";": "semicolon", ",": "comma"}.get(value, "bracket")
        elif ttype is Text and value.startswith("\\") and value.endswith("\n"):   # `\` + line end
            kind, value = "continuation", "\\"
        elif ttype in (Number, Comment.Single, Operator):
            kind = {Number: "number", Comment.Single: "comment", Operator: "operator"}[ttype]
        else:
            continue            # whitespace, line ends, what the grammar cannot read
        line = text.count("\n", 0, pos) + 1
        out.append((line, pos - (text.rfind("\n", 0, pos) + 1), value, kind))
    return out


def textmate_agrees(text: str) -> None:
    text = text.replace("\r\n", "\n").replace("\r", "\n")    # as gdsl and editors read files
    got, want = textmate_tokens(text), pygments_classes(text)
    if re.search(r"\\[ \t]*\Z", text) and got and got[-1][3] == "continuation":
        # The one place they differ: a `\` at the very end of a file without a final line
        # end. A TextMate grammar sees one line at a time and cannot know it is the last;
        # gdsl reads it as a stray character.
        got.pop()
    assert got == want, f"TextMate and Pygments disagree on {text!r}"


@pytest.mark.parametrize("name, text", texts(), ids=[n for n, _ in texts()])
def test_textmate_classifies_as_the_lexer(name, text):
    textmate_agrees(text)
    kinds = {k for *_, k in textmate_tokens(text)}
    if name.endswith("mlp2.gdsl"):
        assert {"keyword", "function", "initialiser", "number", "comment", "name",
                "operator", "bracket", "comma"} <= kinds


def test_textmate_classifies_drawn_programs_as_the_lexer():
    for text in programs():
        textmate_agrees(text)


def test_a_wrong_textmate_pattern_is_caught(monkeypatch):
    """Negative control: a keyword pattern that also matches inside names disagrees."""
    g = json.loads(TEXTMATE_FILE.read_text(encoding="utf-8"))
    g["repository"]["keyword"]["match"] = g["repository"]["keyword"]["match"].replace("(?!\\w)", "")
    monkeypatch.setattr(sys.modules[__name__], "TEXTMATE_FILE", _Fake(json.dumps(g)))
    with pytest.raises(AssertionError, match="disagree"):
        textmate_agrees("inputs = 1\n")


class _Fake:
    def __init__(self, text):
        self.text = text

    def read_text(self, encoding=None):
        return self.text

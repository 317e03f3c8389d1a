"""`gdsl fmt`: one canonical layout, idempotent, and only whitespace changes.

Checked on models/, on fuzzkit's snippets, on GDSL_PROGRAMS (1,000) programs drawn from the
grammar (tests/grammar_programs.py) and on random models of the differential test
(tests/randmodel.py) with their layout scrambled: each formats to a fixed point whose syntax
tree is the input's, and whose graph (the IR dump of gdsl.pipeline.run_pipeline, places
aside) is the input's whenever the input compiles.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re

import pytest
from fuzzkit import SNIPPETS, record
from grammar_programs import programs
from helpers import MODELS, ROOT, run_cli
from randmodel import random_model

from gdsl.errors import GdslError, GdslSyntaxError
from gdsl.lang import fmt
from gdsl.lang import syntax as S
from gdsl.lang.fmt import format_text
from gdsl.lang.parse import parse
from gdsl.lang.tokens import lex
from gdsl.pipeline import run_pipeline

# -- what a graph is, places aside ------------------------------------------------------------


def syntax_tree(node):
    """The AST as nested tuples without spans (Num keeps its text: `1.` stays `1.`)."""
    if isinstance(node, S.Program):
        return tuple(syntax_tree(s) for s in node.statements)
    if isinstance(node, (list, tuple)):
        return tuple(syntax_tree(x) for x in node)
    if dataclasses.is_dataclass(node):
        return (type(node).__name__,) + tuple(
            (f.name, syntax_tree(getattr(node, f.name))) for f in dataclasses.fields(node)
            if f.name != "span" and not f.name.endswith("_span"))
    return node


def graph(text: str) -> str:
    """The IR dump without places, or the class of the error (its message may quote the
    source, which spans lines before `\\` continuations are joined and one line after)."""
    try:
        c = run_pipeline(text, optimize=False)
    except GdslError as e:
        return type(e).__name__
    dump = getattr(c, "model", c).dump()
    return re.sub(r"  # \d+:\d+$", "", dump, flags=re.MULTILINE) + repr(getattr(c, "train", None))


def check_formats(text: str) -> str | None:
    """Format text; assert the fixed point, the same syntax tree and the same graph. Returns
    the formatted text, or None if the text does not parse (then fmt must say so)."""
    try:
        tree = syntax_tree(parse(text))
    except GdslError:
        with pytest.raises(GdslError):
            format_text(text)
        return None
    out = format_text(text)
    assert format_text(out) == out, f"not idempotent:\n{text!r}\n->\n{out!r}"
    assert syntax_tree(parse(out)) == tree, f"the syntax tree changed:\n{text!r}\n->\n{out!r}"
    assert graph(out) == graph(text), f"the graph changed:\n{text!r}\n->\n{out!r}"
    return out


# -- the layout, rule by rule -----------------------------------------------------------------

LAYOUT = [
    # spaces around binary operators, none after a sign, none inside brackets
    ("z=W@x+b", "z = W @ x + b\n"),
    ("J = x**2 + 2** -x - - y", "J = x ** 2 + 2 ** -x - -y\n"),
    ("J = -( x +1 )*-x", "J = -(x + 1) * -x\n"),
    ("t = W' @x .T", "t = W' @ x.T\n"),
    ("t = 2 .T + 2.5.T", "t = 2 .T + 2.5 .T\n"),          # `2.T` would read as `2.` and `T`
    # `, ` after commas; keyword arguments and training options without spaces
    ("J = sum( x,axis = 0 ,keepdims= True )", "J = sum(x, axis=0, keepdims=True)\n"),
    ("train lr = 0.1,epochs=3 , optimizer = sgd", "train lr=0.1, epochs=3, optimizer=sgd\n"),
    ("input x [d,n]\noutput p ,q", "input x[d, n]\noutput p, q\n"),
    ("const lam=-0.01", "const lam = -0.01\n"),
    # one statement a line; continuations joined
    ("a = 1; b = 2;c=3;", "a = 1\nb = 2\nc = 3\n"),
    ("a = (x + 1) * (\\\n    x - 1)", "a = (x + 1) * (x - 1)\n"),
    # declarations: `~` of params and `=` of consts aligned within a block
    ("param W1[m, d] ~ he\nparam bias[m]~zeros\nconst lam = 1\nconst mu2 = 2",
     "param W1[m, d] ~ he\nparam bias[m]  ~ zeros\nconst lam = 1\nconst mu2 = 2\n"),
    ("param W[C, d] ~ he\nconst l = 1\nconst lam = 2\n\nparam bias[C] ~ zeros",
     "param W[C, d] ~ he\nconst l   = 1\nconst lam = 2\n\nparam bias[C] ~ zeros\n"),
    ("param W[C, d] ~ he\nparam b[C, 1]\nparam bias[C] ~ zeros",
     "param W[C, d] ~ he\nparam b[C, 1]\nparam bias[C] ~ zeros\n"),
    # comments: full-line ones kept, end-of-line ones at their column or after the code
    ("   # a note\nz = W @ x", "# a note\nz = W @ x\n"),
    ("z=W@x # why", "z = W @ x  # why\n"),
    ("z = W @ x          # why", "z = W @ x          # why\n"),
    ("z = W @ x  # one\ns = z + b + c  # two\n\nJ = s  # three",
     "z = W @ x      # one\ns = z + b + c  # two\n\nJ = s  # three\n"),
    ("z = W @ x  # one\n           # continued\ns = z", "z = W @ x  # one\n           # continued\ns = z\n"),
    ("z = W @ x    # one\n  # continued\ns = z", "z = W @ x    # one\n             # continued\ns = z\n"),
    ("a = 1; b = 2        # on b", "a = 1\nb = 2  # on b\n"),
    ("a = 1; # on a", "a = 1  # on a\n"),
    ("a = 1 # trailing spaces   \t", "a = 1  # trailing spaces\n"),
    # blank lines: at most one, none at the ends; one newline at the end
    ("\n\n# top\n\n\n\na = 1\n\n\n", "# top\n\na = 1\n"),
    ("a = 1\r\nb = 2\r\n", "a = 1\nb = 2\n"),
    ("", ""),
    ("\n \n;\n", ""),
]


@pytest.mark.parametrize("text, want", LAYOUT)
def test_layout(text, want):
    assert format_text(text) == want
    assert check_formats(text) == want


def test_the_models_are_formatted():
    for path in MODELS:
        text = path.read_text(encoding="utf-8")
        assert format_text(text) == text, f"{path.name} is not in gdsl fmt's layout"


@pytest.mark.parametrize("text", [p.read_text(encoding="utf-8") for p in MODELS] + SNIPPETS,
                         ids=[p.name for p in MODELS] + [f"snippet{i}" for i in range(len(SNIPPETS))])
def test_models_and_snippets_keep_their_graph(text):
    assert check_formats(text) is not None


def test_programs_from_the_grammar(request):
    parsed = compiled = 0
    for text in programs():
        out = check_formats(text)
        if out is not None:
            parsed += 1
            compiled += not graph(text).startswith("Gdsl")
    record(request.config, "programs formatted (drawn from the grammar)", len(programs()))
    print(f"\n{len(programs())} drawn programs: {parsed} parse and were formatted, "
          f"{compiled} of them compile")
    assert parsed > len(programs()) // 3, "the generator lost its way: few programs parse"


def scramble(text: str, rnd: random.Random) -> str:
    """The same tokens in a random layout: random spaces and tabs, `;` instead of line
    ends, `\\` continuations (blank lines and comments as they were)."""
    toks = [t for t in lex(text) if t.type != "WS"]
    out = []
    for i, tok in enumerate(toks):
        after = toks[i + 1] if i + 1 < len(toks) else None
        if tok.type == "_SEP" and out and out[-1] != "\n" and not out[-1].startswith("#") \
                and after is not None and after.type not in ("_SEP", "COMMENT") \
                and rnd.random() < 0.4:
            out.append(rnd.choice([";", " ; ", ";  "]))          # two statements on a line
        elif tok.type in ("_SEP", "COMMENT", "LINE_CONT") or not out or out[-1] == "\n":
            out.append(tok.value)
        else:
            glued = re.match(r"[\w.]", tok.value) and re.search(r"[\w.]$", out[-1])
            spaces = [" ", "  ", "\t", " \\\n  ", "\\\n"] + ([] if glued else ["", ""])
            out.append(rnd.choice(spaces) + tok.value)
    scrambled = "".join(out)
    assert fmt._statements(lex(scrambled)) == fmt._statements(lex(text)), scrambled
    return scrambled


N_RANDOM = int(os.environ.get("GDSL_FMT_MODELS", "200"))


def test_random_models_in_any_layout(request):
    """Random models of the differential test, their layout scrambled: the same canonical
    text comes out, with the same graph."""
    rnd = random.Random(0)
    for seed in range(N_RANDOM):
        text = random_model(seed).text
        messy = scramble(text, rnd)
        assert messy != text or seed > 5
        out = check_formats(messy)
        assert out == format_text(text), f"two layouts of one model format differently:\n{messy!r}"
        assert graph(out) == graph(text)
        assert not graph(text).startswith("Gdsl"), graph(text)
    record(request.config, "random models formatted from a scrambled layout", N_RANDOM)


# -- the formatter checks itself -----------------------------------------------------------------

def test_a_formatter_that_drops_a_token_is_caught(monkeypatch):
    real = fmt._join
    monkeypatch.setattr(fmt, "_join", lambda toks: real(toks[:-1]) if len(toks) > 3 else real(toks))
    with pytest.raises(AssertionError, match="changed more than whitespace"):
        format_text("a = b + c\n")


def test_a_formatter_that_drops_a_comment_is_caught(monkeypatch):
    monkeypatch.setattr(fmt, "_end_physical_line",
                        lambda lines, on_line, comment, joined: None)
    with pytest.raises(AssertionError, match="changed more than whitespace"):
        format_text("a = b  # note\n")


def test_a_syntax_error_is_the_parser_s():
    with pytest.raises(GdslSyntaxError) as e:
        format_text("input x[d, n]\nz = W $ x\n")
    assert (e.value.span.line, e.value.span.col) == (2, 7)


# -- the command ----------------------------------------------------------------------------

def test_check_models_exits_0():
    r = run_cli("fmt", "--check", str(ROOT / "models"))
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def write(path, text: str):
    path.write_bytes(text.encode("utf-8"))
    return path


def test_check_names_what_it_would_change_and_changes_nothing(tmp_path):
    good = write(tmp_path / "good.gdsl", "a = 1\n")
    bad = write(tmp_path / "bad.gdsl", "a=1;b=2\n")
    r = run_cli("fmt", "--check", str(good), str(bad))
    assert r.returncode == 1
    assert r.stderr == f"would reformat {bad}\n" and r.stdout == ""
    assert bad.read_text() == "a=1;b=2\n"


def test_diff_prints_a_unified_diff_and_changes_nothing(tmp_path):
    f = write(tmp_path / "m.gdsl", "a=1;b=2")
    r = run_cli("fmt", "--diff", str(f))
    assert r.returncode == 0
    assert r.stdout == (f"--- {f}\n+++ {f} (formatted)\n@@ -1 +1,2 @@\n-a=1;b=2\n"
                        "\\ No newline at end of file\n+a = 1\n+b = 2\n")
    assert f.read_text() == "a=1;b=2"
    r = run_cli("fmt", "--diff", "--check", str(f))
    assert r.returncode == 1 and r.stdout.startswith("---")


def test_writes_in_place_only_what_changes(tmp_path):
    same = write(tmp_path / "same.gdsl", "a = 1\n")
    os.utime(same, (1_000_000, 1_000_000))
    (tmp_path / "sub").mkdir()
    other = write(tmp_path / "sub" / "other.gdsl", "a=1\r\nb = 2\r\n")
    os.chmod(other, 0o640)
    r = run_cli("fmt", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stderr == f"reformatted {other}\n"
    assert other.read_bytes() == b"a = 1\nb = 2\n"
    assert other.stat().st_mode & 0o777 == 0o640
    assert same.stat().st_mtime == 1_000_000          # not written at all
    assert run_cli("fmt", "--check", str(tmp_path)).returncode == 0


def test_a_byte_order_mark_is_read_past_and_kept(tmp_path):
    # Notepad saves UTF-8 with a byte-order mark: the model compiles, errors point at the
    # columns as written, and fmt keeps the mark
    bom = b"\xef\xbb\xbf"
    f = tmp_path / "bom.gdsl"
    f.write_bytes(bom + b"input x[d, n]\nJ=sqnorm(x)\n")
    assert run_cli("compile", str(f)).returncode == 0
    r = run_cli("fmt", str(f))
    assert r.returncode == 0, r.stderr
    assert f.read_bytes() == bom + b"input x[d, n]\nJ = sqnorm(x)\n"
    assert run_cli("fmt", "--check", str(f)).returncode == 0
    f.write_bytes(bom + b"J = x $ 2\n")
    r = run_cli("compile", str(f))
    assert r.returncode == 1 and r.stderr.startswith(f"{f}:1:7: error: unexpected character '$'")


def test_a_link_stays_a_link(tmp_path):
    target = write(tmp_path / "real.gdsl", "a=1\n")
    link = tmp_path / "link.gdsl"
    link.symlink_to(target)
    assert run_cli("fmt", str(link)).returncode == 0
    assert link.is_symlink() and target.read_text() == "a = 1\n"


def test_bad_input_is_one_message_and_the_file_is_untouched(tmp_path):
    bad = write(tmp_path / "bad.gdsl", "input x[d, n]\nz = W $ x\n")
    good = write(tmp_path / "good.gdsl", "a=1\n")
    before = bad.stat().st_mtime_ns
    r = run_cli("fmt", str(bad), str(good))
    assert r.returncode == 1
    assert r.stderr.startswith(f"{bad}:2:7: error: unexpected character '$'\n  |\n2 | z = W $ x\n")
    assert "Traceback" not in r.stderr and r.stderr.endswith(f"reformatted {good}\n")
    assert bad.read_text() == "input x[d, n]\nz = W $ x\n" and bad.stat().st_mtime_ns == before
    assert good.read_text() == "a = 1\n"          # the others are still formatted


def test_missing_file_is_a_usage_error(tmp_path):
    r = run_cli("fmt", str(tmp_path / "nope.gdsl"))
    assert r.returncode == 2 and "no such file or directory" in r.stderr


def test_standard_input(monkeypatch, capsys):
    import io

    from gdsl.cli import main
    monkeypatch.setattr("sys.stdin", io.StringIO("a=1;b=2"))
    assert main(["fmt", "-"]) == 0
    assert capsys.readouterr().out == "a = 1\nb = 2\n"

"""Grammar fuzzing: every text compiles or raises a GdslError placed inside the text.

Programs are drawn from grammars/gdsl.lark with hypothesis.extra.lark (each checked with three
random edits of it), and random edits of the models in models/ and of snippets that reach every
statement, op and keyword. Whatever compiles must also pass the audit of its emitted code
(only NumPy imported and called; see fuzzkit.audit_emitted).

The suite runs 2,000 cases (a fresh random seed each run, printed); more with

    GDSL_FUZZ_CASES=100000 python3 -m pytest tests/test_fuzz.py      # or:
    python3 tests/fuzzkit.py --cases 100000
"""

from __future__ import annotations

import os
import random

import pytest
from fuzzkit import (
    PropertyFailure,
    audit_emitted,
    check_error,
    check_text,
    record,
    run_grammar_cases,
    run_mutation_cases,
    seed_texts,
)

import gdsl

CASES = int(os.environ.get("GDSL_FUZZ_CASES", "2000"))
SEED = int(os.environ.get("GDSL_FUZZ_SEED", random.randrange(2**32)))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GDSL_CACHE", str(tmp_path / "cache"))   # compiled modules land here


def test_seeds_compile_and_pass_the_audit():
    for text in seed_texts():
        model = gdsl.compile(text)
        audit_emitted(model.source)


def test_mutated_models(request):
    corpus: list = []
    n = run_mutation_cases(CASES // 2, SEED, corpus)
    print(f"\nmutation fuzzing: {n} cases (seed {SEED}), {len(corpus)} compiled")
    record(request.config, "cases fuzzed (mutations of models/ and snippets)", n)
    assert n == CASES // 2


def test_programs_from_the_grammar(request):
    corpus: list = []
    want = CASES - CASES // 2
    n = run_grammar_cases(-(-want // 4), mutations=3, seed=SEED, corpus=corpus)
    print(f"\ngrammar fuzzing: {n} cases (seed {SEED}), {len(corpus)} compiled")
    record(request.config, "cases fuzzed (drawn from the grammar, with edits)", n)
    assert n >= want
    assert corpus, "no generated program compiled: the generator lost its way"


# -- the property's own checks catch what they should (negative controls) --------------------

def test_an_error_placed_outside_the_text_is_caught():
    text = "a = b\n"
    e = gdsl.GdslSyntaxError("made up", gdsl.errors.Span(3, 1, 3, 2), filename="fuzz.gdsl",
                             source=text)
    with pytest.raises(PropertyFailure, match="outside the text"):
        check_error(text, e)
    e = gdsl.GdslSyntaxError("made up", gdsl.errors.Span(1, 9, 1, 10), filename="fuzz.gdsl",
                             source=text)
    with pytest.raises(PropertyFailure, match="outside the text"):
        check_error(text, e)


def test_a_crash_is_caught(monkeypatch):
    import gdsl.runtime

    def boom(*a, **k):
        raise KeyError("boom")

    monkeypatch.setattr(gdsl.runtime, "run_pipeline", boom)
    with pytest.raises(PropertyFailure, match="KeyError instead of a GdslError"):
        check_text("a = b")


@pytest.mark.parametrize("text", [
    "a = b\r# c = d\x0cz = y\u2028w = v",       # line breaks other than \n, in a comment too
    "\x1b[2Ja = $",                              # a terminal escape on the line of the error
    "a = b +\n\u2028",
])
def test_odd_line_breaks_place_errors_on_the_lexers_line(text):
    r = check_text(text)
    assert r is not None

"""Fuzzing gdsl's front end: programs drawn from the grammar, mutations of valid models,
the property every input must satisfy, and an audit of the emitted code's AST.

The property: ``gdsl.compile(text)`` either succeeds, and then the emitted module passes
``audit_emitted``, or raises a GdslError whose span lies inside the text and whose
message renders. Any other exception is a bug.

Used by tests/test_fuzz.py and tests/test_injection.py; also a script for long runs::

    python3 tests/fuzzkit.py --cases 100000            # half grammar, half mutation
    python3 tests/fuzzkit.py --cases 5000 --mode mutate --seed 7
"""

from __future__ import annotations

import ast
import functools
import os
import random
import re
import sys
import time
from pathlib import Path

import gdsl
from gdsl.errors import MAX_SHOWN, GdslError, GdslLimitError

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted((ROOT / "models").glob("*.gdsl"))

# -- figures shown at the end of the pytest run ---------------------------------------------

FIGURES: dict[str, int] = {}


class _FiguresPlugin:
    """Prints the robustness figures (cases fuzzed, models cross-checked, ...) after the run."""

    def pytest_terminal_summary(self, terminalreporter):
        if FIGURES:
            terminalreporter.section("gdsl robustness figures")
            for key, value in FIGURES.items():
                terminalreporter.write_line(f"{key}: {value}")


def record(config, key: str, count: int) -> None:
    """Add ``count`` to a figure; ``config`` is pytest's (request.config) or None."""
    FIGURES[key] = FIGURES.get(key, 0) + count
    if config is not None and not config.pluginmanager.has_plugin("gdsl-figures"):
        config.pluginmanager.register(_FiguresPlugin(), "gdsl-figures")
    print(f"[gdsl figures] {key}: +{count} (total {FIGURES[key]})")


# -- seeds: valid models and snippets that reach every statement, op and keyword -------------

SNIPPETS = [
    "z = W @ x; s = z + b; J = xent(softmax(s), y) + lam*sqnorm(W)",
    ("input x[d, n]\nparam W[C, d] ~ normal(0, 0.01)\nparam b[C, 1] ~ zeros\n"
     "s = W @ x + b\nJ = mean(square(s))\nloss J"),
    "input x[d, n]\ninput y[n]\nparam W[C, d]\ns = W @ x\nJ = svm(s, y)\noutput s",
    "a = exp(x) - log(y) * tanh(z) / sigmoid(w) ** 2\nJ = sum(a, axis=0, keepdims=True)",
    "h = relu(x) + abs(y) + sqrt(square(z) + 1)\nJ = max(maximum(h, minimum(h, 1)), axis=-1)",
    "p = softmax(s, axis=1)\nq = logsoftmax(s)\nJ = sum(p * q)\noutput p, q",
    ("input x[d, n]\nparam W[d, d]\nt = W' @ x.T.T\nJ = sqnorm(t - x)\nk = argmax(t, axis=0)\n"
     "g = sign(t)\nloss J\noutput k, g"),
    "const lam = 0.5\nconst mu\ninput x[]\nparam w[] ~ uniform(-1, 1)\nJ = lam * w ** 2 + mu * x",
    "train lr=0.1, epochs=3, batch_size=10, optimizer=sgd, seed=1\nJ = sum(x * x)",
    "J = -x ** -2 + +y - - z\nloss J",
    "a = (x + 1) * (\\\n  x - 1)   # continued line\nJ = mean(a, axis=None)",
    "input x[d, n]; input y[n]; param W[C, d]; s = W @ x; J = xent(softmax(s), y)",
]


@functools.cache
def _model_texts() -> tuple[str, ...]:
    return tuple(p.read_text(encoding="utf-8") for p in MODELS)


def seed_texts() -> list[str]:
    return [*_model_texts(), *SNIPPETS]


# -- grammar-based generation (hypothesis.extra.lark) -----------------------------------------

COMMON_NAMES = ["x", "y", "z", "W", "b", "s", "p", "J", "lam", "h", "a", "d", "n", "C", "axis",
                "keepdims", "True", "False", "None", "normal", "zeros", "lr", "epochs", "sgd"]
HOSTILE_NAMES = ["np", "numpy", "os", "sys", "exec", "eval", "__import__", "__builtins__",
                 "lambda", "def", "import", "print", "open", "arrays", "forward",
                 "value_and_grad", "_onehot", "_expect", "INPUTS", "t1", "g_W", "self", "é",
                 "ß", "𝑥", "ﬁ", "fi", "λ", "ｉｍｐｏｒｔ", "①", "x²", "T", "__class__"]


def grammar_strategy():
    """Programs drawn from grammars/gdsl.lark, with terminals biased toward real vocabulary."""
    import lark
    from hypothesis import strategies as st
    from hypothesis.extra.lark import from_lark

    from gdsl.ir.ops import user_functions
    from gdsl.lang.parse import grammar_text

    grammar = lark.Lark(grammar_text(), parser="lalr", lexer="contextual")
    words = COMMON_NAMES + user_functions()
    name = st.one_of(
        st.sampled_from(words), st.sampled_from(words), st.sampled_from(words),
        st.sampled_from(HOSTILE_NAMES),
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True),
        st.text(st.characters(categories=["Lu", "Ll", "Lo", "Nl", "No"]), min_size=1, max_size=3),
    )
    number = st.one_of(
        st.sampled_from(["0", "1", "2", "0.5", "1e-3", ".5", "3.", "1E5", "1e999", "0.0"]),
        st.from_regex(r"(\d{1,3}\.?\d{0,2}|\.\d{1,2})([eE][+-]?\d{1,3})?", fullmatch=True),
    )
    comment = st.one_of(st.just("# note"), st.text(max_size=12).map(
        lambda s: "#" + s.replace("\n", " ")))
    keyword = {k.upper(): st.just(k + " ") for k in ("input", "param", "const", "loss", "output",
                                                     "train")}
    explicit = {
        "NAME": name,
        "NUMBER": number,
        "INT": st.sampled_from(["1", "2", "3", "10", "0"]),
        "_SEP": st.sampled_from(["\n", "\n", ";", "\r\n", "\n\n"]),
        "WS": st.sampled_from([" ", "  ", "\t", "\f", " \r "]),
        "COMMENT": comment,
        "LINE_CONT": st.sampled_from(["\\\n", "\\  \r\n"]),
        **keyword,
    }
    terminals = {t.name for t in grammar.terminals}     # the grammar may drop or add some
    return from_lark(grammar, start="start",
                     explicit={k: v for k, v in explicit.items() if k in terminals})


# -- mutation-based generation ----------------------------------------------------------------

TOKEN = re.compile(r"\s+|#[^\n]*|\w+|\*\*|\.T|\S", re.UNICODE)
ODD_TEXT = ["\x00", "\x1b[31m", "\ufeff", "\u200b", "\u202e", "\u2028", "\u2029", "\x85", "\r",
            "\x0b", "\x0c", "\t", "é", "ﬁ", "𝑥", "①", "²", "\U0001F600", "\ud800", "e\u0301",
            "ｘ", "\\", "'", '"', '"""', "`", "$", "{", "}", "[", "]", "(", ")", ",", "~", "=",
            "==", ";", ":", ".", "..", ".T", "@", "**", "*", "/", "-", "+", "#", "\n", "\r\n",
            "1e999", "-0", "0x10", "1_000", "nan", "inf", "None", "True", "input", "loss",
            "__import__", "np", "import os", "exec(", "lambda: 0", "\\\n"]


def mutate(text: str, rnd: random.Random) -> str:
    """One to three random edits of a model: tokens deleted, duplicated, swapped or replaced,
    the text truncated, lines shuffled or spliced, random bytes and unicode inserted."""
    for _ in range(rnd.choice((1, 1, 1, 2, 3))):
        toks = TOKEN.findall(text) or [""]
        kind = rnd.randrange(11)
        i, j = rnd.randrange(len(toks)), rnd.randrange(len(toks))
        if kind == 0:                                   # delete a token
            del toks[i]
        elif kind == 1:                                 # duplicate a token
            toks.insert(i, toks[i])
        elif kind == 2:                                 # swap two tokens
            toks[i], toks[j] = toks[j], toks[i]
        elif kind == 3:                                 # replace a token by another one
            toks[i] = toks[j]
        elif kind == 4:                                 # truncate
            return text[: rnd.randrange(len(text) + 1)]
        elif kind == 5:                                 # odd text at a random place
            k = rnd.randrange(len(text) + 1)
            return text[:k] + rnd.choice(ODD_TEXT) + text[k:]
        elif kind == 6:                                 # random bytes, decoded as the CLI would not
            k = rnd.randrange(len(text) + 1)
            junk = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 4)))
            return text[:k] + junk.decode("latin-1") + text[k:]
        elif kind == 7:                                 # random code points
            k = rnd.randrange(len(text) + 1)
            cps = "".join(chr(rnd.choice((rnd.randrange(32, 0x250), rnd.randrange(0x250, 0x30000))))
                          for _ in range(rnd.randint(1, 3)))
            return text[:k] + cps + text[k:]
        elif kind == 8:                                 # shuffle, duplicate or drop lines
            lines = text.split("\n")
            op = rnd.randrange(3)
            if op == 0:
                rnd.shuffle(lines)
            elif op == 1:
                lines.insert(rnd.randrange(len(lines) + 1), rnd.choice(lines))
            else:
                del lines[rnd.randrange(len(lines))]
            return "\n".join(lines)
        elif kind == 9:                                 # splice another seed's lines in
            other = rnd.choice(seed_texts()).split("\n")
            lines = text.split("\n")
            k = rnd.randrange(len(lines) + 1)
            return "\n".join(lines[:k] + other[rnd.randrange(len(other)):] )
        else:                                           # insert a vocabulary word
            toks.insert(i, rnd.choice(COMMON_NAMES + HOSTILE_NAMES + ODD_TEXT + [" ", "\n"]))
        text = "".join(toks)
    return text


def mutated_cases(count: int, seed: int):
    rnd = random.Random(seed)
    seeds = seed_texts()
    for _ in range(count):
        yield mutate(rnd.choice(seeds), rnd)


# -- the property -----------------------------------------------------------------------------

class PropertyFailure(AssertionError):
    pass


def _fail(text: str, why: str) -> PropertyFailure:
    shown = text if len(text) < 2000 else text[:2000] + f"... ({len(text)} characters)"
    return PropertyFailure(f"{why}\n--- the model text (repr) ---\n{shown!r}")


def span_inside(text: str, span) -> bool:
    lines = text.split("\n")
    if not 1 <= span.line <= len(lines):
        return False
    if not 1 <= span.col <= len(lines[span.line - 1]) + 1:
        return False
    return (span.end_line, span.end_col) >= (span.line, span.col) and span.end_line <= len(lines)


def check_text(text: str, *, audit: bool = True):
    """Compile text; return the CompiledModel or the GdslError; raise PropertyFailure otherwise."""
    try:
        model = gdsl.compile(text, filename="fuzz.gdsl")
    except GdslError as e:
        check_error(text, e)
        return e
    except RecursionError as e:
        raise _fail(text, f"RecursionError: {e}") from e
    except Exception as e:
        raise _fail(text, f"{type(e).__name__} instead of a GdslError: {e}") from e
    if audit:
        try:
            audit_emitted(model.source)
        except AssertionError as e:
            raise _fail(text, f"the emitted code fails the audit: {e}") from e
    return model


def check_error(text: str, e: GdslError) -> None:
    if e.span is None:
        if isinstance(e, GdslLimitError):
            return
        raise _fail(text, f"{type(e).__name__} without a place: {e.message}")
    if not span_inside(text, e.span):
        raise _fail(text, f"{type(e).__name__} at {e.span} ({e.span!r}) outside the text: "
                    f"{e.message}")
    try:
        rendered = e.render()
    except Exception as r:
        raise _fail(text, f"rendering {type(e).__name__} ({e.message}) raised {r!r}") from r
    first = rendered.split("\n")[0]
    if not first.startswith(f"fuzz.gdsl:{e.span.line}:{e.span.col}: error: "):
        raise _fail(text, f"message does not start with file:line:col: {first!r}")
    shown = rendered.split("\n")
    if len(shown) >= 4:
        want = text.split("\n")[e.span.line - 1].removesuffix("\r")     # CRLF ends a line too
        got = shown[2].split(" | ", 1)[1] if " | " in shown[2] else None
        if got is not None and len(want.expandtabs(1)) > MAX_SHOWN:    # a window: … where cut
            ok = len(got.strip("…")) == MAX_SHOWN
        else:
            ok = got is not None and len(got) == len(want.expandtabs(1))
        if not ok:
            raise _fail(text, f"the message shows the wrong source line:\n{rendered}")
    bad = [c for c in rendered if c != "\n" and not c.isprintable()]
    if bad:
        raise _fail(text, f"the message contains unprintable characters {bad!r}:\n{rendered!r}")


# -- audit of the emitted module ----------------------------------------------------------------

# Names the emitted code may call that are not np.* or methods: the hand-written helpers
# (compared verbatim with gdsl.ir.ops.HELPERS) use these builtins and nothing else.
HELPER_BUILTINS = {"len", "range", "tuple", "enumerate", "ValueError", "TypeError"}
# Methods called on arrays (and `arrays.get` on the dict of arrays).
METHODS = {"sum", "mean", "max", "min", "get", "astype", "reshape", "outer", "copy", "any",
           "all", "item"}
FORBIDDEN = {"exec", "eval", "open", "compile", "__import__", "getattr", "setattr", "delattr",
             "globals", "locals", "vars", "breakpoint", "input", "__builtins__", "help", "memoryview",
             "os", "sys", "subprocess", "importlib", "builtins", "type", "object", "super"}
METADATA = {"INPUTS", "PARAMS", "CONSTS", "INIT", "LOSS", "OUTPUTS", "WRT", "LABELS", "SHAPES",
            "TRAIN", "STATE", "MODE"}
ENTRY_POINTS = {"forward", "value_and_grad"}
_LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _known_helpers() -> dict[str, str]:
    from gdsl.backend import numpy_target as emit
    from gdsl.ir import ops
    known = {}
    texts = list(ops.HELPERS.values())
    if isinstance(getattr(emit, "_EXPECT", None), str):
        texts.append(emit._EXPECT)
    for text in texts:
        for node in ast.parse(text.strip()).body:
            if isinstance(node, ast.FunctionDef):
                known[node.name] = ast.dump(node)
    return known


def _is_np_attr(node) -> bool:
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id == "np"


def _data_only(node) -> bool:
    """Metadata tables: literals, tuples and dicts of them, nothing that runs."""
    ok = (ast.Constant, ast.Tuple, ast.List, ast.Dict, ast.UnaryOp, ast.USub, ast.Load)
    return all(isinstance(n, ok) for n in ast.walk(node))


def audit_emitted(source: str) -> None:
    """Assert that an emitted module can only run NumPy: one import (numpy as np); module-level
    code is data; helpers are verbatim copies of gdsl's own; the entry points call only np.*,
    array methods and the module's `_` helpers; no dunder attributes, no exec/eval/open/getattr;
    no line breaks that a comment could hide code behind."""
    odd = sorted({repr(c) for c in source if c in _LINE_BREAKS or (c != "\n" and not c.isprintable())})
    assert not odd, f"unprintable or line-breaking characters in the emitted source: {odd}"
    assert source.splitlines() == source.split("\n")[:-1] or source.splitlines() == source.split("\n")
    tree = ast.parse(source)
    compile(tree, "<emitted>", "exec")       # also: Python accepts the module as a whole
    known = _known_helpers()
    helpers: set[str] = set()
    imports = 0
    for i, stmt in enumerate(tree.body):
        if i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue                          # the docstring
        if isinstance(stmt, ast.Import):
            assert [(a.name, a.asname) for a in stmt.names] == [("numpy", "np")], ast.unparse(stmt)
            imports += 1
            continue
        assert not isinstance(stmt, ast.ImportFrom), ast.unparse(stmt)
        if isinstance(stmt, ast.Assign):
            assert len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name), ast.unparse(stmt)
            assert stmt.targets[0].id in METADATA, f"module-level assignment {stmt.targets[0].id}"
            assert _data_only(stmt.value), f"module-level code that is not data: {ast.unparse(stmt)}"
            continue
        assert isinstance(stmt, ast.FunctionDef), f"module-level statement: {ast.unparse(stmt)[:200]}"
        assert not stmt.decorator_list, f"decorated function {stmt.name}"
        if stmt.name in ENTRY_POINTS:
            a = stmt.args
            assert not a.args and not a.posonlyargs and not a.defaults and a.vararg is None, \
                f"{stmt.name} must take keyword arguments only"
            assert a.kwarg is None or a.kwarg.arg == "arrays", f"{stmt.name}: **{a.kwarg.arg}"
            for default in a.kw_defaults:
                assert default is None or _data_only(default), \
                    f"{stmt.name}: a default that is not data: {ast.unparse(default)}"
            continue
        assert stmt.name.startswith("_"), f"unexpected function {stmt.name}"
        assert stmt.name in known and ast.dump(stmt) == known[stmt.name], \
            f"helper {stmt.name} is not a verbatim copy of gdsl's own"
        helpers.add(stmt.name)
    assert imports == 1, f"{imports} imports; want exactly `import numpy as np`"
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name in ENTRY_POINTS:
            _audit_entry(stmt, helpers)
    # In the entry points a name is a local (a model value may be called `os`), checked above;
    # elsewhere (helpers, module level) none of these names may appear at all.
    in_entry = {id(n) for stmt in tree.body if isinstance(stmt, ast.FunctionDef)
                and stmt.name in ENTRY_POINTS for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            assert not node.attr.startswith("__"), f"dunder attribute .{node.attr}"
        if isinstance(node, ast.Name) and id(node) not in in_entry:
            assert node.id not in FORBIDDEN, f"forbidden name {node.id}"
        assert not isinstance(node, (ast.Lambda, ast.Global, ast.Nonlocal, ast.With, ast.Try,
                                     ast.AsyncFunctionDef, ast.Await, ast.ClassDef)), \
            f"unexpected {type(node).__name__}"
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                assert f.id in helpers or f.id in HELPER_BUILTINS, f"call to {f.id}"
            else:
                assert isinstance(f, ast.Attribute), f"call of {ast.unparse(f)}"
                assert _is_np_attr(f) or f.attr in METHODS, f"call to method .{f.attr}"


def _audit_entry(fn: ast.FunctionDef, helpers: set[str]) -> None:
    """forward / value_and_grad: assignments and one return; names are locals, `arrays`, `np`,
    the module's helpers; calls are np.*, array methods or helpers (no builtins at all)."""
    local = {a.arg for a in fn.args.kwonlyargs}
    if fn.args.kwarg is not None:
        local.add(fn.args.kwarg.arg)
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    for stmt in body:
        if isinstance(stmt, ast.Delete):        # freeing a dead intermediate
            assert all(isinstance(t, ast.Name) and t.id in local for t in stmt.targets), \
                f"{fn.name}: {ast.unparse(stmt)}"
            continue
        if isinstance(stmt, ast.Assign):
            assert len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name), ast.unparse(stmt)
        elif isinstance(stmt, ast.AugAssign):     # computed in place: g_W += ..., g_s /= n
            assert isinstance(stmt.target, ast.Name) and stmt.target.id in local, ast.unparse(stmt)
            assert isinstance(stmt.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)), ast.unparse(stmt)
        else:
            assert isinstance(stmt, (ast.Return, ast.Expr)), \
                f"{fn.name}: unexpected statement {ast.unparse(stmt)[:200]}"
        for node in ast.walk(stmt.value):
            if isinstance(node, ast.Name):
                assert isinstance(node.ctx, ast.Load)
                assert node.id in local or node.id == "np" or node.id in helpers, \
                    f"{fn.name}: name {node.id!r} is neither local, np nor a helper"
            if isinstance(node, ast.Call):
                f = node.func
                assert (isinstance(f, ast.Name) and f.id in helpers) or (
                    isinstance(f, ast.Attribute) and (_is_np_attr(f) or f.attr in METHODS)), \
                    f"{fn.name}: call to {ast.unparse(f)}"
            assert not isinstance(node, (ast.comprehension, ast.IfExp, ast.NamedExpr, ast.Starred)), \
                f"{fn.name}: unexpected {type(node).__name__}"
        if isinstance(stmt, ast.Assign):
            local.add(stmt.targets[0].id)


# -- the long run -------------------------------------------------------------------------------

def run_grammar_cases(examples: int, mutations: int = 3, seed: int | None = None,
                      corpus: list | None = None) -> int:
    """Draw ``examples`` programs from the grammar with hypothesis; check each and ``mutations``
    random edits of it (drawing is the slow part, ~20 ms a program). Returns the cases checked."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    done = [0]

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(grammar_strategy())
    def case(text):
        rnd = random.Random(text)
        for t in [text] + [mutate(text, rnd) for _ in range(mutations)]:
            done[0] += 1
            r = check_text(t)
            if corpus is not None and not isinstance(r, GdslError):
                corpus.append(r.source)

    if seed is not None:
        case = hseed(seed)(case)
    case()
    return done[0]


def run_mutation_cases(count: int, seed: int, corpus: list | None = None) -> int:
    """Check ``count`` random edits of the valid models and snippets."""
    done = 0
    for text in mutated_cases(count, seed):
        r = check_text(text)
        done += 1
        if corpus is not None and not isinstance(r, GdslError):
            corpus.append(r.source)
    return done


class _Counter:
    """A corpus that only counts (the emitted code was audited as each case ran)."""

    n = 0

    def append(self, _source) -> None:
        self.n += 1


def main(argv=None) -> int:
    import argparse
    import shutil
    import tempfile

    ap = argparse.ArgumentParser(description="Fuzz gdsl.compile: programs drawn from the grammar "
                                 "(each with 3 random edits) and random edits of valid models.")
    ap.add_argument("--cases", type=int, default=10_000, help="cases in all (default 10000)")
    ap.add_argument("--mode", choices=["both", "grammar", "mutate"], default="both")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    cache = tempfile.mkdtemp(prefix="gdsl-fuzz-")       # compiled modules land here, not in ~
    os.environ["GDSL_CACHE"] = cache
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    n_grammar = {"both": args.cases // 2, "grammar": args.cases, "mutate": 0}[args.mode]
    n_mutate = args.cases - n_grammar
    t0 = time.time()
    got = 0
    corpus = _Counter()
    try:
        if n_mutate:
            got += run_mutation_cases(n_mutate, seed, corpus)
            print(f"mutation cases: {n_mutate} (seed {seed}), {time.time() - t0:.0f} s", flush=True)
        if n_grammar:
            got += run_grammar_cases(-(-n_grammar // 4), 3, seed, corpus)
            print(f"grammar cases: {got - n_mutate} (seed {seed}), {time.time() - t0:.0f} s",
                  flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"cases fuzzed: {got} ({corpus.n} compiled and passed the emitted-code audit), "
          f"failures: 0, {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Injection-proof emission: hostile names, numbers, comments and file names.

Every hostile identifier, in every role a name can play (input, param, const, assigned value,
loss, output; declared or free), either compiles to code whose values match a twin of the
model with safe names, or gives a clear GdslError. The emitted module passes the audit of
fuzzkit.audit_emitted (one import, numpy as np; only np.*, array methods and the module's own
helpers called; no dunders, no exec/eval/open/getattr; module-level code is data; nothing
after a comment but the comment). The audit itself is checked against hand-made attacks.
"""

from __future__ import annotations

import ast
import functools
import os
import random
import re
from pathlib import Path

import numpy as np
import pytest
from fuzzkit import audit_emitted, record, seed_texts

import gdsl

HOSTILE = [
    # Python's own names and the emitted module's
    "np", "numpy", "os", "sys", "exec", "eval", "compile", "__import__", "__builtins__",
    "__class__", "__dict__", "__name__", "__file__", "__doc__", "__init__", "_", "__",
    "lambda", "def", "import", "return", "yield", "class", "del", "global", "nonlocal", "await",
    "async", "match", "case", "type", "True", "False", "None", "print", "open", "getattr",
    "globals", "locals", "breakpoint", "self", "cls", "arrays", "forward", "value_and_grad",
    "_onehot", "_softmax", "_logsoftmax", "_xent", "_xent_logits", "_svm", "_svm_grad",
    "_max_grad", "_sum_to", "_mm_grad_x", "_mm_grad_y", "_expect", "INPUTS", "PARAMS",
    "CONSTS", "INIT", "LOSS", "OUTPUTS", "WRT", "LABELS", "SHAPES", "TRAIN", "t1", "t2", "t3",
    "g_W", "g_x", "g_h", "Y", "y_onehot", "J", "T",
    # unicode letters, and letters that Python's NFKC folds onto other identifiers
    "é", "ß", "λ", "\u2126mega", "ж", "𝑥", "ﬁ", "ｉｍｐｏｒｔ", "ｎｐ", "\u212a", "\u212b", "ſ",
    "ℌ", "x²", "①", "ª", "µ", "日本",
    # very long names, and long names that share a long prefix
    "a" * 10_000, "b" * 200 + "1", "b" * 200 + "2", "é" * 100,
]
# pairs of distinct gdsl names that Python would read as one identifier (NFKC); escapes keep
# editors from normalising the file itself
COLLIDING = [("ﬁ", "fi"), ("𝑥", "x"), ("\u212a", "K"), ("ſ", "s"), ("ｎｐ", "np"), ("µ", "μ"),
             ("\u212b", "\u00c5"), ("ª", "a"), ("x²", "x2"), ("①", "v_1")]
KEYWORDS = ["input", "param", "const", "loss", "output", "train"]

# Models with a placeholder Q for the hostile name; R for a second one (collisions).
# Models with placeholders Q0, Q1, ... for hostile names, each in its own role.
ROLES = [
    # Q0 input, Q1 param, Q2 const, Q3 assigned and output, Q4 the loss, Q5 labels
    ("input Q0[n]\ninput Q5[C, n]\nparam Q1[n] ~ normal(0, 1)\nparam w_0[C, n]\nconst Q2 = 0.5\n"
     "Q3 = tanh(Q1 * Q0) + Q2\ns_0 = w_0 * Q3\nQ4 = sum(Q3 * Q3) + xent(softmax(s_0), Q5)\n"
     "loss Q4\noutput Q3"),
    # no declarations: Q0, Q1, Q2 are inputs (shapes bound at call time), Q3 assigned
    "Q3 = Q0 * Q1 + Q2\nQ4 = sum(Q3 * Q3 + Q1)\nloss Q4",
]
# Two names in two roles, for pairs that Python would fold together.
TEMPLATES = [
    "input Q0[n]\ninput Q1[n]\nparam w_0[n]\nL_0 = sum(w_0 * Q0 - Q1 * w_0 * w_0)\nloss L_0",
    "input u_0[n]\nparam Q0[n]\nparam Q1[n]\nL_0 = sum(Q0 * u_0 + Q1 * Q1 * u_0)\nloss L_0",
    "Q0 = u_0 * 2\nQ1 = Q0 + u_0\nL_0 = sum(Q1 * Q0)",
]
SIZES = {"n": 3, "C": 3}


def _fill(template: str, names) -> str:
    return re.sub(r"\bQ(\d)\b", lambda m: names[int(m.group(1))], template)


def _safe(k: int) -> list[str]:
    return [f"q{i}_safe" for i in range(k)]


def _leaves(model) -> dict:
    return {**model.inputs, **model.params, **{k: () for k, v in model.consts.items() if v is None}}


def _arrays(model, seed: int) -> dict:
    """Arrays for every input and param, by the twin's declared shape, in name order."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in _leaves(model).items():
        if name in model.labels:
            labels = rng.integers(0, SIZES["C"], SIZES["n"])
            out[name] = labels if shape is not None and len(shape) == 1 else np.eye(SIZES["C"])[:, labels]
            continue
        if shape is None:
            shape = ("n",)
        out[name] = rng.normal(size=tuple(SIZES.get(d, 2) if isinstance(d, str) else d
                                          for d in shape))
    return out


@functools.cache
def _twin(text: str):
    t = gdsl.compile(text)
    safe = _arrays(t, 0)
    return t, safe, t.forward(**safe), t.value_and_grad(**safe)


def compile_and_compare(text: str, twin: str, rename: dict) -> str:
    """Compile text; compare forward and value_and_grad with the twin's under the renaming
    (twin name -> hostile name). Returns 'ok', or 'error' for a GdslError."""
    try:
        m = gdsl.compile(text)
    except gdsl.GdslError as e:
        assert e.span is not None and e.render()
        return "error"
    audit_emitted(m.source)
    t, safe, f_t, (l_t, g_t, *s_t) = _twin(twin)     # (s_t: the new state, of a model with one)
    assert [rename.get(k, k) for k in t.wrt] == m.wrt
    hostile = {rename.get(k, k): v for k, v in safe.items()}
    f_m = m.forward(**hostile)
    assert [rename.get(k, k) for k in f_t] == list(f_m)
    for k, v in f_t.items():
        np.testing.assert_allclose(f_m[rename.get(k, k)], v, rtol=1e-12)
    l_m, g_m, *s_m = m.value_and_grad(**hostile)
    np.testing.assert_allclose(l_m, l_t, rtol=1e-12)
    for new_t, new_m in zip(s_t, s_m, strict=True):
        assert [rename.get(k, k) for k in new_t] == list(new_m)
        for k, v in new_t.items():
            np.testing.assert_allclose(new_m[rename.get(k, k)], v, rtol=1e-12)
    assert [rename.get(k, k) for k in g_t] == list(g_m)
    for k, v in g_t.items():
        np.testing.assert_allclose(g_m[rename.get(k, k)], v, rtol=1e-12)
    return "ok"


def test_hostile_identifiers(request):
    """Each hostile name in each role: the names rotate through the roles of each model."""
    tried = 0
    for template in ROLES:
        k = len(set(re.findall(r"\bQ(\d)\b", template)))
        for i in range(len(HOSTILE)):
            names = [HOSTILE[(i + j) % len(HOSTILE)] for j in range(k)]
            text, twin = _fill(template, names), _fill(template, _safe(k))
            assert compile_and_compare(text, twin, dict(zip(_safe(k), names))) == "ok", names
            tried += k
    for a, b in COLLIDING:      # names Python folds together stay two values
        for template in TEMPLATES:
            text, twin = _fill(template, [a, b]), _fill(template, _safe(2))
            assert compile_and_compare(text, twin, dict(zip(_safe(2), [a, b]))) == "ok", (a, b)
            tried += 2
    record(request.config, "hostile identifiers tried (names x roles)", tried)
    print(f"\n{len(HOSTILE) + 2 * len(COLLIDING)} hostile identifiers, {tried} uses in all roles")


@pytest.mark.parametrize("kw", KEYWORDS)
def test_keywords_as_names_are_clear_errors(kw):
    for template in ROLES + TEMPLATES:
        k = len(set(re.findall(r"\bQ(\d)\b", template)))
        for j in range(k):
            names = _safe(k)
            names[j] = kw
            with pytest.raises(gdsl.GdslSyntaxError) as info:
                gdsl.compile(_fill(template, names))
            assert info.value.span is not None and "keyword" in info.value.render()


def test_seed_models_renamed_to_hostile_names():
    """Every model in models/ (and the fuzz snippets), each name swapped for a hostile one."""
    from gdsl.ir.ops import OPS, user_functions
    from gdsl.lang.parse import KEYWORDS as GDSL_KEYWORDS
    fixed = set(user_functions()) | GDSL_KEYWORDS | {"True", "False", "None"} | \
        {k for row in OPS.values() for k in row.keywords}      # (axis=, stride=, height= ...)
    rnd = random.Random(5)
    pool = [h for h in HOSTILE if len(h) < 1000 and h not in fixed]
    done = 0
    for text in seed_texts():
        if text.lstrip().startswith("train") or "train " in text:
            text = "\n".join(l for l in text.split("\n") if not l.startswith("train"))
        names = sorted({t for t in re.findall(r"[^\W\d]\w*", re.sub(r"#[^\n]*", "", text))} - fixed
                       - {"normal", "zeros", "uniform", "he", "xavier", "glorot", "ones"} - {"T"})
        mapping = dict(zip(names, rnd.sample(pool, len(names))))

        def sub(t, m):
            return re.sub(r"(?<![\w.])[^\W\d]\w*", lambda x: m.get(x.group(), x.group()), t)

        twin = text
        try:
            t = gdsl.compile(twin)
        except gdsl.GdslError:
            continue
        if any(s is None for s in _leaves(t).values()) or t.model.dims.bound:
            continue
        hostile = sub(text, mapping)
        assert compile_and_compare(hostile, twin, mapping) == "ok", hostile
        done += 1
    assert done >= 3


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GDSL_CACHE", str(tmp_path / "cache"))


# -- numbers, comments and file names ---------------------------------------------------------

@pytest.mark.parametrize("literal", ["1e-320", "5e-324", "1.7976931348623157e308", "0.1",
                                     "9007199254740993", "1e22", "123456789012345678901234567890",
                                     "0.0", "00012", "1.", ".5e-3", "2E+2"])
def test_numbers_reach_the_code_exactly(literal):
    m = gdsl.compile(f"input x[n]\nparam W[n]\nJ = sum(W * x * {literal})\nloss J")
    audit_emitted(m.source)
    x, W = np.array([0.5, -0.25]), np.array([0.5, 1.0])      # no overflow at 1.8e308
    value = float(literal)
    loss, grads = m.value_and_grad(x=x, W=W)
    assert loss == np.sum(W * x * value)
    np.testing.assert_array_equal(grads["W"], x * value)


COMMENT_ATTACKS = [
    'z = x # """; import os',
    "z = x # '''\nimport os",
    "z = x # \rimport os",
    "z = x # \x0cimport os",
    "z = x # \u2028import os",
    "z = x # \u2029import os",
    "z = x # \x85import os",
    "z = x # \x0bimport os",
    "z = x # \x1c\x1d\x1eimport os",
    "z = x # \\\nimport os",
    "z = x # \x1b[2J\x1b]0;pwned\x07",
    "z = x # \ufeff\u202eimport os",
    "z = x \\\n  # \r\nimport os",
    "z = x \r+ x",
    "z = x\x0c+ x",
]


@pytest.mark.parametrize("line", COMMENT_ATTACKS, ids=[repr(c)[:30] for c in COMMENT_ATTACKS])
def test_comments_cannot_break_out(line):
    text = f"input x[n]\nparam W[n]\n{line}\nJ = sum(W * z)\nloss J"
    try:
        m = gdsl.compile(text)
    except gdsl.GdslError as e:
        assert e.span is not None
        assert all(c == "\n" or c.isprintable() for c in e.render())
        return
    audit_emitted(m.source)
    tree = ast.parse(m.source)
    assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) and n.names[0].name != "numpy"
                   for n in ast.walk(tree))
    for source_line in m.source.split("\n"):
        if source_line.lstrip().startswith("#"):
            assert "import os" not in source_line or source_line.lstrip().startswith("# ")


@pytest.mark.parametrize("filename", ['a"""\nimport os\n"""b.gdsl', "\\'; import os #.gdsl",
                                      "x\u2028import os.gdsl", "m\x1b[31m.gdsl", "日本.gdsl"])
def test_file_names_cannot_break_out(filename):
    m = gdsl.compile("J = sum(x * x)", filename=filename)
    audit_emitted(m.source)


# -- the audit catches what it should (negative controls) ------------------------------------

@pytest.fixture(scope="module")
def clean_source():
    return gdsl.compile(next(t for t in seed_texts() if "xent(" in t)).source  # (has _onehot)


ATTACKS = [
    ("import numpy as np", "import numpy as np\nimport os"),
    ("import numpy as np", "import numpy as np\nfrom os import system"),
    ("import numpy as np", "import numpy as np\nos = __import__('os')"),
    ("import numpy as np", "import numpy as np\nprint('hi')"),
    ("import numpy as np", "import numpy as np\nINPUTS = exec('1')"),
    ("import numpy as np", "import numpy as np\n\ndef _evil():\n    return 1"),
    ("    return (", "    np.__class__\n    return ("),
    ("    return (", "    t = getattr(np, 'load')\n    return ("),
    ("    return (", "    t = eval('1')\n    return ("),
    ("    return (", "    t = open('/etc/passwd')\n    return ("),
    ("    return (", "    t = [k for k in arrays]\n    return ("),
    ("    return (", "    t = (lambda: 0)()\n    return ("),
    ("    return (", "    t = np.load.__globals__\n    return ("),
    ("    return (", "    t = x.__class__.__subclasses__()\n    return ("),
    ("    return (", "    t = len(x)\n    return ("),
    ("    return (", "    t = sys.modules\n    return ("),
    ("    return (", "    if x:\n        pass\n    return ("),
    ("    return (", "    # fine\r    import os\n    return ("),
    ("    return (", "    # fine\u2028    return ("),
    ("def forward(", "@np.vectorize\ndef forward("),
]


@pytest.mark.parametrize("old, new", ATTACKS, ids=[a[1].strip()[:40] for a in ATTACKS])
def test_the_audit_rejects_attacks(clean_source, old, new):
    audit_emitted(clean_source)
    assert old in clean_source
    bad = clean_source.replace(old, new, 1)
    with pytest.raises((AssertionError, SyntaxError)):
        audit_emitted(bad)


def test_the_audit_rejects_a_tampered_helper(clean_source):
    assert "def _onehot(" in clean_source
    bad = clean_source.replace("def _onehot(y, like):", "def _onehot(y, like):\n    np.save('x', y)", 1)
    with pytest.raises(AssertionError, match="verbatim"):
        audit_emitted(bad)


def test_a_default_that_runs_code_is_rejected(clean_source):
    bad = re.sub(r"def forward\(\*, ", "def forward(*, zz=print('hi'), ", clean_source, count=1)
    assert bad != clean_source
    with pytest.raises(AssertionError):
        audit_emitted(bad)


# -- the cache of emitted modules: imported, so no one else may write there ---------------------

def _private_fallback(cache_dir):
    return cache_dir.is_dir() and cache_dir.stat().st_uid == os.getuid() and \
        not cache_dir.stat().st_mode & 0o077


def test_the_cache_directory_is_made_private(tmp_path, monkeypatch):
    from gdsl.files import cache_dir as _cache_dir
    monkeypatch.setenv("GDSL_CACHE", str(tmp_path / "new"))
    assert _cache_dir() == tmp_path / "new" and _private_fallback(tmp_path / "new")
    m = gdsl.compile("J = sum(x * x)", wrt=["x"])
    assert Path(m.path).parent == tmp_path / "new"


@pytest.mark.parametrize("kind", ["world-writable", "group-writable", "symlink"])
def test_a_cache_directory_others_can_write_is_not_used(tmp_path, monkeypatch, kind):
    from gdsl.files import cache_dir as _cache_dir
    target = tmp_path / "shared"
    target.mkdir()
    os.chmod(target, 0o777 if kind == "world-writable" else 0o770)
    cache = target
    if kind == "symlink":        # planted where the cache goes, pointing somewhere else
        os.chmod(target, 0o700)
        cache = tmp_path / "link"
        cache.symlink_to(target)
    monkeypatch.setenv("GDSL_CACHE", str(cache))
    used = _cache_dir()
    assert used != cache and used.resolve() != target.resolve() and _private_fallback(used)
    m = gdsl.compile("J = sum(x * x)", wrt=["x"])
    assert Path(m.path).parent == used and not any(target.iterdir())
    loss, grads = m.value_and_grad(x=np.array([1.0, 2.0]))
    assert loss == 5.0 and list(grads["x"]) == [2.0, 4.0]

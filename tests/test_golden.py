"""Golden files of the emitted code: every model in models/ and a few snippets, at the
default optimisation and at -O0, compared byte for byte with tests/golden/.

To regenerate them on purpose (after a change that is meant to alter the emitted code):

    python3 tests/test_golden.py --update

then review `git diff tests/golden` and commit it with the change. A refactor that must
leave the output alone should never need this.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import pytest

import gdsl

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
UPDATE = "python3 tests/test_golden.py --update"

# Emission paths that models/ does not reach: name -> (model text, wrt or None).
SNIPPETS: dict[str, tuple[str, list[str] | None]] = {
    # no declarations: every free name an input, shapes bound at call time
    "oneliner_all": ("z = W @ x; s = z + b; J = xent(softmax(s), y) + lam*sqnorm(W)\n", None),
    "oneliner_wrt": ("z = W @ x; s = z + b; J = xent(softmax(s), y) + lam*sqnorm(W)\n", ["W", "b"]),
    # a hidden relu layer under the multi-class SVM (models/ has only the linear one)
    "svm_mlp": (
        ("input x[d, n]\ninput y[C, n]\nparam W1[m, d] ~ he\nparam b1[m, 1] ~ zeros\n"
         "param W2[C, m] ~ xavier\nparam b2[C, 1] ~ zeros\nconst lam = 0.001\n"
         "h = relu(W1 @ x + b1)\ns = W2 @ h + b2\nJ = svm(s, y) + lam * (sqnorm(W1) + sqnorm(W2))\n"
         "loss J\noutput s\n"), None),
    # relu, maximum and minimum masks, some summed in one gradient, some scalar (cast to float)
    "masks": (
        ("input s[C, n]\ninput t[C, n]\ninput a[]\nparam w[C, 1]\n"
         "h = relu(s) * w + maximum(s, t) - minimum(t, 0.5)\n"
         "q = relu(a) + maximum(a, 0.0) + relu(relu(a))\n"
         "J = sum(h * h) + q\n"), ["w", "s", "a"]),
    # broadcasting: [C, n] with [C, 1], [1, n], [n] and a scalar; gradients summed back
    "broadcast": (
        ("input x[C, n]\nparam u[C, 1]\nparam v[1, n]\nparam r[n]\nparam c[]\n"
         "z = x * u + v - r / (1 + c * c)\nJ = sum(z * z) + sum(u + v.T.T * c)\n"), None),
    # reductions with axis= and keepdims=
    "reductions": (
        ("input x[C, n]\nparam w[C, n]\n"
         "a = mean(x * w, axis=0)\nb = max(w, axis=1, keepdims=True)\n"
         "c = sum(w - b, axis=0, keepdims=True)\n"
         "J = sum(a * a) + mean(c) + max(max(w * x, axis=0)) + mean(w)\n"), None),
    # transposes: .T, ', (xᵀ)ᵀ, matmuls of transposes, softmax along axis 1 (not fused)
    "transposes": (
        ("input x[d, n]\ninput y[n, C]\nparam W[d, C]\n"
         "s = (W.T @ x)'\nt = ((s.T).T - y)\np = softmax(s, axis=1)\n"
         "J = sum(t * t) + sum(log(p) * y) + sum(x' @ W)\n"), None),
    # the other elementwise ops, log(softmax), logsoftmax and a const
    "elementwise": (
        ("input x[C, n]\ninput y[C, n]\nparam w[C, n]\nconst k = 2\n"
         "a = exp(tanh(w)) + sigmoid(w) * abs(w) + sqrt(square(w) + 1) ** k\n"
         "b = log(softmax(w * x)) + logsoftmax(x, axis=1) / k\n"
         "J = sum(a * x) - sum(b * y) + xent(softmax(w), y)\n"), None),
}


def cases() -> list[tuple[str, str, str, list[str] | None]]:
    """(golden name without its ending, model text, filename for the module's docstring, wrt)."""
    out = []
    for path in sorted((ROOT / "models").glob("*.gdsl")):
        out.append((path.stem, path.read_text(encoding="utf-8"), f"models/{path.name}", None))
    for name, (text, wrt) in SNIPPETS.items():
        out.append((name, text, f"{name}.gdsl", wrt))
    return out


def variants():
    for name, text, filename, wrt in cases():
        yield f"{name}.expected", text, filename, wrt, True
        yield f"{name}.O0.expected", text, filename, wrt, False


def emitted(text: str, filename: str, wrt, optimize: bool) -> str:
    return gdsl.compile(text, wrt=wrt, filename=filename, optimize=optimize).source


def diff(want: str, got: str, golden: str) -> str:
    lines = difflib.unified_diff(want.splitlines(keepends=True), got.splitlines(keepends=True),
                                 f"tests/golden/{golden}", "emitted now")
    return "".join(lines)


VARIANTS = list(variants())


@pytest.mark.parametrize("golden, text, filename, wrt, optimize", VARIANTS,
                         ids=[v[0] for v in VARIANTS])
def test_emitted_code_matches_golden(golden, text, filename, wrt, optimize):
    path = GOLDEN / golden
    got = emitted(text, filename, wrt, optimize)
    if not path.exists():
        pytest.fail(f"no golden file tests/golden/{golden}; create it with: {UPDATE}",
                    pytrace=False)
    want = path.read_text(encoding="utf-8")
    if got != want:
        pytest.fail(f"the emitted code differs from tests/golden/{golden}:\n"
                    f"{diff(want, got, golden)}\n"
                    f"If the change is intended, regenerate with: {UPDATE} "
                    f"(then review `git diff tests/golden`)", pytrace=False)


def test_every_golden_file_belongs_to_a_case():
    """A golden of a model or snippet that no longer exists is stale."""
    wanted = {v[0] for v in VARIANTS}
    stale = sorted(p.name for p in GOLDEN.glob("*.expected") if p.name not in wanted)
    assert not stale, f"stale golden files {stale}; {UPDATE} removes them"


def test_snippets_compile_and_run_at_both_levels():
    """The snippets are real models: both levels agree on every value and gradient."""
    import numpy as np
    rng = np.random.default_rng(7)
    sizes = {"C": 3, "n": 4, "d": 5, "m": 6}
    for name, (text, wrt) in SNIPPETS.items():
        fast, slow = (gdsl.compile(text, wrt=wrt, optimize=o) for o in (True, False))
        arrays = {}
        for table in (fast.inputs, fast.params):
            for k, shape in table.items():
                if shape is None:       # an undeclared one-liner: W[C, d] x[d, n] b[C, 1]
                    shape = {"W": ("C", "d"), "x": ("d", "n"), "b": ("C", 1), "y": ("C", "n"),
                             "lam": ()}[k]
                if k in fast.labels:
                    arrays[k] = rng.integers(0, sizes["C"], sizes["n"])
                    continue
                arrays[k] = rng.normal(size=tuple(sizes.get(d, d) for d in shape))
        (jf, gf), (js, gs) = fast.value_and_grad(**arrays), slow.value_and_grad(**arrays)
        np.testing.assert_allclose(jf, js, rtol=1e-12, err_msg=name)
        assert gf.keys() == gs.keys(), name
        for k in gf:
            np.testing.assert_allclose(gf[k], gs[k], rtol=1e-10, atol=1e-13, err_msg=f"{name}: {k}")


def update() -> int:
    """Write every golden file afresh and remove stale ones; print what changed."""
    import gdsl.pipeline
    gdsl.pipeline.CHECK_IR = True       # as in the test suite
    GOLDEN.mkdir(exist_ok=True)
    written = set()
    for golden, text, filename, wrt, optimize in VARIANTS:
        path = GOLDEN / golden
        got = emitted(text, filename, wrt, optimize)
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old != got:
            path.write_text(got, encoding="utf-8")
            print(("updated " if old is not None else "created ") + f"tests/golden/{golden}")
        written.add(golden)
    for path in sorted(GOLDEN.glob("*.expected")):
        if path.name not in written:
            path.unlink()
            print(f"removed stale tests/golden/{path.name}")
    return 0


def check() -> int:
    bad = 0
    for golden, text, filename, wrt, optimize in VARIANTS:
        path = GOLDEN / golden
        got = emitted(text, filename, wrt, optimize)
        want = path.read_text(encoding="utf-8") if path.exists() else ""
        if got != want:
            bad += 1
            print(diff(want, got, golden))
    print(f"{len(VARIANTS) - bad} of {len(VARIANTS)} golden files match"
          + (f"; regenerate on purpose with: {UPDATE}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        sys.exit(update())
    if sys.argv[1:]:
        sys.exit(f"usage: {UPDATE}   (without --update: compare and print the differences)")
    sys.exit(check())

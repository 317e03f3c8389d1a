"""Limits: big and deep models compile or give a clear GdslLimitError, never a crash or a hang.

    gdsl.limits.MAX_SOURCE_BYTES   bytes of model text
    gdsl.limits.MAX_NESTING        brackets inside brackets
    gdsl.limits.MAX_NODES          values in the forward graph (and operations while parsing)

Nothing in the compiler recurses on the depth of an expression (Python's default recursion
limit of 1,000 is far below the 5,000-deep models here), and the emitted code inlines at most
gdsl.backend.numpy_target.MAX_INLINE_DEPTH levels, so ast.unparse and Python's compile() see shallow
expressions whatever the model.

The 100,000-statement chain (the compiler issue's figure) takes ~30-40 s of CPU, in every run.
"""

from __future__ import annotations

import ast
import os
import time

import numpy as np
import pytest

import gdsl
import gdsl.limits
from gdsl.backend.numpy_target import MAX_INLINE_DEPTH
from gdsl.errors import GdslLimitError
from gdsl.limits import MAX_NESTING, MAX_NODES, MAX_SOURCE_BYTES

DEEP = 5000
CHAIN = 100_000


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GDSL_CACHE", str(tmp_path / "cache"))


def ast_depth(source: str) -> int:
    """The deepest nesting of expression nodes in a module, found without recursion."""
    deepest = 0
    stack = [(ast.parse(source), 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for child in ast.iter_child_nodes(node):
            stack.append((child, depth + 1 if isinstance(child, ast.expr) else 0))
    return deepest


def compiles_shallow(text: str):
    m = gdsl.compile(text)
    depth = ast_depth(m.source)
    assert depth <= 12 * MAX_INLINE_DEPTH, f"an emitted expression {depth} levels deep"
    compile(m.source, "<emitted>", "exec")
    return m


X = np.array([0.3, -0.2, 0.1])


SLOW = bool(os.environ.get("GDSL_SLOW"))


@pytest.mark.parametrize("kind", ["parens", "calls", "sum", "neg"] + ["product", "power"] * SLOW)
def test_5000_deep_expressions_compile_and_compute(kind):
    n = DEEP
    text, want, grad = {
        "parens": ("y = " + "(" * n + "x" + ")" * n + "\nJ = sum(y)", X.sum(), np.ones(3)),
        "calls": ("y = " + "tanh(" * n + "x" + ")" * n + "\nJ = sum(y)", None, None),
        "sum": ("y = " + " + ".join(["x"] * n) + "\nJ = sum(y)", n * X.sum(), np.full(3, n)),
        "product": ("y = x" + " * 1.0001" * n + "\nJ = sum(y)", X.sum() * 1.0001**n,
                    np.full(3, 1.0001**n)),
        "neg": ("y = " + "-" * n + "x\nJ = sum(y)", X.sum(), np.ones(3)),     # n is even
        "power": ("y = " + " ** ".join(["x"] + ["1"] * n) + "\nJ = sum(y)", X.sum(), np.ones(3)),
    }[kind]
    m = compiles_shallow(text)
    loss, grads = m.value_and_grad(x=X)
    if want is None:                       # tanh⁵⁰⁰⁰(x), and its derivative by the chain rule
        v, d = X.copy(), np.ones(3)
        for _ in range(n):
            v = np.tanh(v)
            d = d * (1 - v * v)
        want, grad = v.sum(), d
    np.testing.assert_allclose(loss, want, rtol=1e-12)
    np.testing.assert_allclose(grads["x"], grad, rtol=1e-9)


@pytest.mark.parametrize("kind", ["sigmoid", "softmax", "matmul", "transpose"])
def test_deep_nests_of_ops_with_wide_emissions(kind):
    """Ops whose NumPy emission is itself several levels deep, nested 1,000 times."""
    n = 1000
    text = {
        "sigmoid": "y = " + "sigmoid(" * n + "x" + ")" * n + "\nJ = sum(y)",
        "softmax": "y = " + "softmax(" * n + "x" + ")" * n + "\nJ = sum(y * y)",
        "matmul": "input x[d]\ninput A[d, d]\ny = " + "A @ (" * n + "x" + ")" * n + "\nJ = sum(y)\nloss J",
        "transpose": "y = x" + ".T'" * (n // 2) + "\nJ = sum(y)",
    }[kind]
    m = compiles_shallow(text)
    arrays = {"x": X} | ({"A": np.eye(3) * 0.5} if kind == "matmul" else {})
    loss, grads = m.value_and_grad(**arrays)
    assert np.isfinite(loss) and np.all(np.isfinite(grads["x"]))


def test_a_long_chain_of_statements_compiles():
    text = "x0 = a\n" + "\n".join(f"x{i + 1} = x{i} + 1" for i in range(CHAIN)) + f"\nJ = sum(x{CHAIN})"
    t0 = time.process_time()
    m = gdsl.compile(text)
    print(f"\n{CHAIN}-statement chain: {time.process_time() - t0:.1f} s CPU")
    loss, grads = m.value_and_grad(a=X)
    np.testing.assert_allclose(loss, (X + CHAIN).sum())
    np.testing.assert_array_equal(grads["a"], np.ones(3))


def test_text_over_the_size_limit():
    for text in ["x = 1\n" + "#" * MAX_SOURCE_BYTES, "x = 1 # " + "é" * (MAX_SOURCE_BYTES // 2 + 1)]:
        t0 = time.process_time()
        with pytest.raises(GdslLimitError, match="larger than the limit"):
            gdsl.compile(text)
        assert time.process_time() - t0 < 5
    gdsl.compile("x = 1 # " + "é" * (MAX_SOURCE_BYTES // 2 - 10))      # just under: fine


def test_nesting_over_the_limit():
    n = MAX_NESTING + 1
    for unit, tail in [("(", "x" + ")" * n), ("exp(", "x" + ")" * n), ("[", "")]:
        text = "y = " + unit * n + tail
        with pytest.raises(GdslLimitError, match="nested deeper") as info:
            gdsl.compile(text)
        # the first bracket past the limit
        assert (info.value.line, info.value.column) == (1, 5 + MAX_NESTING * len(unit) + len(unit) - 1)
    # brackets in comments do not count
    gdsl.compile("# " + "(" * n + "\ny = x")


@pytest.mark.parametrize("limit", [20_000, MAX_NODES] if SLOW else [20_000])
def test_more_nodes_than_the_limit(limit, monkeypatch):
    """Over the node limit (lowered to 20,000 to keep the suite fast; GDSL_SLOW=1 also runs the
    real one): a clear error while parsing or resolving, before any work that grows with it."""
    monkeypatch.setattr(gdsl.limits, "MAX_NODES", limit)
    cases = [
        "y = " + " + ".join(["x"] * (limit + 2)),                      # one long expression
        "y = " + "-" * (limit + 2) + "x",                              # a long unary chain
        "y = " + "exp(" * 9000 + "x" + ")" * 9000 + "".join(f"\ny{i} = exp(x)" for i in range(limit)),
        "\n".join(f"input x{i}" for i in range(limit + 2)) + "\nJ = sum(x0)",   # declarations
    ]
    for text in cases:
        if len(text.encode()) > MAX_SOURCE_BYTES:      # the size limit comes first
            continue
        t0 = time.process_time()
        with pytest.raises(GdslLimitError, match=f"more than {limit}") as info:
            gdsl.compile(text)
        assert info.value.span is not None and "MAX_NODES" in info.value.render()
        print(f"\nrejected in {time.process_time() - t0:.1f} s CPU")


def test_limits_are_documented_and_high_enough():
    assert MAX_SOURCE_BYTES >= 4 * 2**20 and MAX_NESTING >= DEEP and MAX_NODES >= 100_000
    from pathlib import Path
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    if "Robustness and limits" in readme:
        for name in ("MAX_SOURCE_BYTES", "MAX_NESTING", "MAX_NODES"):
            assert name in readme

"""The optimiser passes: before/after graphs, and nothing they do changes a value or gradient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import GDSL, MODELS
from test_models import DIMS, arrays_for

import gdsl
from gdsl.pipeline import run_pipeline


def ops_of(model):
    """The multiset of ops in the forward graph, as sorted (op, count) pairs."""
    counts: dict = {}
    for n in model.forward_order:
        op = model.node(n)["op"]
        counts[op] = counts.get(op, 0) + 1
    return counts


def pipeline(text, optimize=True, wrt=None):
    return run_pipeline(text, optimize=optimize, wrt=wrt).model


def test_cse_computes_a_repeated_expression_once():
    text = "input x[3]\ninput y[3]\na = x * y\nb = x * y\nJ = sum(a + b)"
    before, after = pipeline(text, False), pipeline(text, True)
    assert ops_of(before)["mul"] == 2 and ops_of(after)["mul"] == 1
    assert after.names["a"] == after.names["b"]
    assert "`b` is computed once: the same value as `a` at 3:5" in "\n".join(after.rewrites)


def test_constant_folding():
    text = "input x[3]\nJ = sum(x * (2 * 3) + exp(0))"
    after = pipeline(text)
    literals = sorted(after.node(n)["value"] for n in after.forward_order if after.node(n)["op"] == "literal")
    assert literals == [1.0, 6.0]
    assert ops_of(pipeline(text, False))["mul"] == 2 and ops_of(after)["mul"] == 1


def test_algebraic_identities():
    text = "input x[3, 2]\ninput y[3, 2]\nc = (x.T).T * 1 + 0 - -y\nJ = sum(c)"
    after = pipeline(text)
    c = after.names["c"]
    assert after.node(c)["op"] == "add"
    assert [after.node(a)["name"] for a in after.node(c)["args"]] == ["x", "y"]
    assert "transpose" not in ops_of(after) and "neg" not in ops_of(after)
    before = pipeline(text, False)
    assert ops_of(before)["transpose"] == 2 and ops_of(before)["neg"] == 1


def test_dead_code_is_removed_and_reported():
    text = "input x[3]\nq = exp(x)\nJ = sum(x)"
    after = pipeline(text, wrt=["x"])
    assert "q" not in {after.node(n)["name"] for n in after.G}
    assert "removed `q`, which nothing uses" in "\n".join(after.rewrites)
    assert "exp" not in gdsl.compile(text, wrt=["x"]).source


def test_softmax_and_cross_entropy_fuse():
    m = pipeline(Path("models/linear_softmax.gdsl").read_text())
    l = m.names["l"]
    assert m.node(l)["op"] == "xent_logits"
    assert "log-sum-exp" in "\n".join(m.rewrites)
    src = gdsl.compile_file("models/linear_softmax.gdsl").source
    fwd, vag = src[src.index("def forward"):src.index("def value_and_grad")], src[src.index("def value_and_grad"):]
    assert fwd.count("np.exp(") == 1 and vag.count("np.exp(") == 1   # one exp serves p and the loss
    assert "g_s = np.subtract(p, Y, out=p)\n" in vag and "g_s /= s.shape[1]\n" in vag


def test_log_of_softmax_becomes_logsoftmax():
    m = pipeline("input s[3, 4]\nJ = sum(log(softmax(s)))", wrt=["s"])
    assert "logsoftmax" in ops_of(m) and "log" not in ops_of(m)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_passes_change_no_value_or_gradient(path, rng):
    fast = gdsl.compile_file(path)
    slow = gdsl.compile_file(path, optimize=False)
    if path.name == "oneliner.gdsl":
        C, d, n = 3, 5, 4
        A = {"W": rng.normal(size=(C, d)), "x": rng.normal(size=(d, n)), "b": rng.normal(size=(C, 1)),
                 "y": np.eye(C)[rng.integers(0, C, n)].T, "lam": 0.1}
    else:
        A = arrays_for(fast, rng, DIMS)
    fo, so = fast.forward(**A), slow.forward(**A)
    assert fo.keys() == so.keys()
    for k in fo:
        np.testing.assert_allclose(fo[k], so[k], rtol=1e-12, atol=1e-14)
    (jf, gf, *sf), (js, gs, *ss) = fast.value_and_grad(**A), slow.value_and_grad(**A)
    np.testing.assert_allclose(jf, js, rtol=1e-12)
    for k in gf:
        np.testing.assert_allclose(gf[k], gs[k], rtol=1e-10, atol=1e-14)
    for new_fast, new_slow in zip(sf, ss):      # a model with state: its new values
        assert new_fast.keys() == new_slow.keys()
        for k in new_fast:
            np.testing.assert_allclose(new_fast[k], new_slow[k], rtol=1e-12, atol=1e-14)


def softmax(s):
    e = np.exp(s - s.max(0))
    return e / e.sum(0)


@pytest.mark.parametrize("scale", [1e2, 1e3, 1e4])
def test_fused_cross_entropy_is_stable_on_extreme_logits(scale, rng):
    C, n = 5, 8
    s = rng.normal(size=(C, n)) * scale
    k = rng.integers(0, C, n)
    for text in ["input s[C, n]\ninput y[C, n]\nJ = xent(softmax(s), y)",
                 "input s[C, n]\ninput y[C, n]\nJ = -sum(y * logsoftmax(s)) / 8",
                 "input s[C, n]\ninput y[C, n]\nJ = sum(-y * log(softmax(s))) / 8"]:
        m = gdsl.compile(text, wrt=["s"])
        Y = np.eye(C)[k].T
        J, g = m.value_and_grad(s=s, y=Y)
        lse = s.max(0) + np.log(np.exp(s - s.max(0)).sum(0))
        want = np.mean(lse - s[k, np.arange(n)])
        assert np.isfinite(J) and np.isclose(J, want, rtol=1e-12), text
        np.testing.assert_allclose(g["s"], (softmax(s) - Y) / n, atol=1e-15)


def test_svm_is_stable_on_extreme_logits(rng):
    C, n = 5, 8
    s = rng.normal(size=(C, n)) * 1e4
    k = rng.integers(0, C, n)
    m = gdsl.compile("input s[C, n]\ninput y[C, n]\nJ = svm(s, y)", wrt=["s"])
    J, g = m.value_and_grad(s=s, y=k)
    margins = s - s[k, np.arange(n)] + 1
    Y = np.eye(C)[k].T
    assert np.isclose(J, np.sum(np.maximum(0, margins) * (1 - Y)) / n)
    active = (margins > 0) * (1 - Y)
    np.testing.assert_allclose(g["s"], (active - Y * active.sum(0)) / n)


def test_warnings_for_values_that_can_be_zero():
    text = "input x[3]\nparam w[3]\nh = relu(w * x)\nJ = sum(log(h) + 1 / h) + xent(exp(w), x)"
    m = run_pipeline(text).model
    got = [(w.span.line, w.span.col, w.message) for w in m.warnings]
    assert got == [
        (4, 9, "log of `h`, a relu, which can be exactly 0: the result can be infinite"),
        (4, 18, "division by `h`, a relu, which can be exactly 0: the result can be infinite"),
        (4, 27, "cross-entropy −log(yᵀp) of an exp, which can be exactly 0: the result can be infinite"),
    ]
    # the fused forms are stable and warn about nothing
    assert run_pipeline(Path("models/mlp2.gdsl").read_text()).model.warnings == []
    assert run_pipeline("input s[3, 2]\ninput y[3, 2]\nJ = sum(log(softmax(s)) * y)").model.warnings == []
    # without the fusion, log(softmax) is flagged
    assert len(run_pipeline("input s[3, 2]\ninput y[3, 2]\nJ = sum(log(softmax(s)) * y)",
                            optimize=False).model.warnings) == 1


def test_compile_reports_rewrites_and_warnings():
    import subprocess
    r = subprocess.run([*GDSL, "compile", "models/linear_softmax.gdsl", "--rewrites"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0
    assert "models/linear_softmax.gdsl:12:5: xent(softmax(s), y) -> log-sum-exp cross-entropy" in r.stderr

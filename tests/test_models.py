"""Every model in models/ gradient-checked, and the lecture's graph and closed forms."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from helpers import MODELS, assert_grads_match

import gdsl

DIMS = {"d": 5, "n": 4, "C": 3, "m": 6}


def arrays_for(model, rng, dims=DIMS):
    """Random arrays for a compiled model's declared inputs and params (free names: 2-D guesses)."""
    out = {}
    for table in (model.inputs, model.params):
        for name, shape in table.items():
            if name in model.labels:
                out[name] = np.eye(dims["C"])[rng.integers(0, dims["C"], dims["n"])].T
                continue
            concrete = tuple(dims[d] if isinstance(d, str) else d for d in shape)
            out[name] = rng.normal(size=concrete)
    out.update(model.init_state(dims))      # batch norm's running statistics, as at first
    return out


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_every_model_gradient_checks(path, rng):
    m = gdsl.compile_file(path)
    if path.name == "oneliner.gdsl":     # no declarations: shapes bind at call time
        C, d, n = 3, 5, 4
        arrays = {"W": rng.normal(size=(C, d)), "x": rng.normal(size=(d, n)), "b": rng.normal(size=(C, 1)),
                      "y": np.eye(C)[rng.integers(0, C, n)].T, "lam": np.float64(0.1)}
    else:
        arrays = arrays_for(m, rng)
    assert_grads_match(m, arrays)


def softmax_cols(s):
    e = np.exp(s - s.max(0))
    return e / e.sum(0)


@pytest.fixture
def lecture():
    return gdsl.compile_file("models/linear_softmax.gdsl")


def test_lecture_closed_forms(lecture, rng):
    """dJ/dW = (P - Y) Xᵀ / n + 2λW and dJ/db = the row means of (P - Y)."""
    C, d, n, lam = 4, 6, 9, 0.3
    X, W, b = rng.normal(size=(d, n)), rng.normal(size=(C, d)), rng.normal(size=(C, 1))
    Y = np.eye(C)[rng.integers(0, C, n)].T
    J, g = lecture.value_and_grad(x=X, y=Y, W=W, b=b, lam=lam)
    P = softmax_cols(W @ X + b)
    np.testing.assert_allclose(J, -np.mean(np.log((Y * P).sum(0))) + lam * np.sum(W ** 2))
    np.testing.assert_allclose(g["W"], (P - Y) @ X.T / n + 2 * lam * W, atol=1e-12)
    np.testing.assert_allclose(g["b"], (P - Y).mean(axis=1, keepdims=True), atol=1e-12)
    assert set(g) == {"W", "b"}


def test_lecture_graph_has_the_slides_nodes_and_edges(lecture):
    """x, W, b, y, λ, z, s, p, l, r, J with the edges of the slides (λr is the one extra op)."""
    G = lecture.graph
    names = {d["name"]: n for n, d in G.nodes(data=True) if d["name"]}
    assert set(names) == {"x", "W", "b", "y", "lam", "z", "s", "p", "l", "r", "J"}

    def args(name):
        return [G.nodes[a]["name"] or G.nodes[a]["op"] for a in G.nodes[names[name]]["args"]]

    assert G.nodes[names["z"]]["op"] == "matmul" and args("z") == ["W", "x"]
    assert G.nodes[names["s"]]["op"] == "add" and args("s") == ["z", "b"]
    assert G.nodes[names["p"]]["op"] == "softmax" and args("p") == ["s"]
    assert G.nodes[names["r"]]["op"] == "sqnorm" and args("r") == ["W"]
    assert args("J") == ["l", "mul"]
    lam_r = G.nodes[names["J"]]["args"][1]
    assert [G.nodes[a]["name"] for a in G.nodes[lam_r]["args"]] == ["lam", "r"]
    assert G.nodes[names["l"]]["op"] == "xent" and args("l") == ["p", "y"]
    assert not any(d.get("backward") for _, d in G.nodes(data=True))
    # what is compiled: the optimiser fused softmax into the loss (p = e / Z, l of s)
    fused = lecture.model
    assert fused.node(fused.names["l"])["op"] == "xent_logits"
    assert {G.nodes[n]["role"] if "role" in G.nodes[n] else G.nodes[n]["op"]
            for n in (names["x"], names["y"])} == {"input"}
    assert {G.nodes[names[k]]["op"] for k in ("W", "b")} == {"param"}
    assert G.nodes[names["lam"]]["op"] == "const"
    unoptimised = gdsl.compile_file("models/linear_softmax.gdsl", optimize=False).graph
    l = next(n for n, d in unoptimised.nodes(data=True) if d["name"] == "l")
    assert [unoptimised.nodes[a]["name"] for a in unoptimised.nodes[l]["args"]] == ["p", "y"]


def test_no_gradient_nobody_asked_for(lecture):
    src = lecture.source
    body = src[src.index("def value_and_grad"):]
    assert "g_x" not in body and "g_y" not in body and "g_lam" not in body
    assert "g_W" in body and "g_b" in body


def test_a_value_used_twice_gets_the_summed_gradient(rng):
    m = gdsl.compile("input x[3]\nJ = sum(x * x)", wrt=["x"])
    x = rng.normal(size=3)
    np.testing.assert_allclose(m.value_and_grad(x=x)[1]["x"], 2 * x)
    # W in both W @ x and sqnorm(W): the two contributions add up
    m = gdsl.compile("input x[3, 2]\nparam W[2, 3]\nJ = sum(W @ x) + sqnorm(W)")
    X, W = rng.normal(size=(3, 2)), rng.normal(size=(2, 3))
    np.testing.assert_allclose(m.value_and_grad(x=X, W=W)[1]["W"], np.ones((2, 2)) @ X.T + 2 * W)
    # a value passed twice to one call: maximum(x, x) sends g once (to the first argument)
    m = gdsl.compile("input x[3]\nJ = sum(x / x + x * x * x)", wrt=["x"])
    np.testing.assert_allclose(m.value_and_grad(x=x)[1]["x"], 3 * x ** 2, atol=1e-12)


def test_the_one_liner_compiles_as_written(rng):
    m = gdsl.compile("z = W @ x; s = z + b; J = xent(softmax(s), y) + lam*sqnorm(W)")
    assert set(m.inputs) == {"W", "x", "b", "y", "lam"}
    assert m.labels == ["y"]
    C, d, n = 3, 4, 5
    A = {"W": rng.normal(size=(C, d)), "x": rng.normal(size=(d, n)), "b": rng.normal(size=(C, 1)),
             "y": rng.integers(0, C, n), "lam": 0.1}
    _J, g = m.value_and_grad(**A)
    P = softmax_cols(A["W"] @ A["x"] + A["b"])
    Y = np.eye(C)[A["y"]].T
    np.testing.assert_allclose(g["W"], (P - Y) @ A["x"].T / n + 0.2 * A["W"], atol=1e-12)
    assert "y" not in g


def test_consts_take_their_default_and_can_be_overridden(lecture, rng):
    C, d, n = 3, 4, 5
    A = {"x": rng.normal(size=(d, n)), "y": np.eye(C)[rng.integers(0, C, n)].T,
             "W": rng.normal(size=(C, d)), "b": np.zeros((C, 1))}
    base = lecture.forward(**A)["J"]
    r = np.sum(A["W"] ** 2)
    np.testing.assert_allclose(lecture.forward(**A, lam=0.5)["J"] - base, (0.5 - 0.01) * r)
    assert lecture.consts == {"lam": 0.01}


def test_outputs_are_returned_by_name(lecture, rng):
    C, d, n = 3, 4, 5
    A = {"x": rng.normal(size=(d, n)), "y": np.eye(C)[rng.integers(0, C, n)].T,
             "W": rng.normal(size=(C, d)), "b": np.zeros((C, 1))}
    out = lecture.forward(**A)
    assert set(out) == {"J", "p"}
    np.testing.assert_allclose(out["p"], softmax_cols(A["W"] @ A["x"]))


def test_wrt_names_choose_what_is_differentiated(rng):
    m = gdsl.compile("input x[2]\ninput w[2]\nJ = sum(w * x)", wrt=["x"])
    x, w = rng.normal(size=2), rng.normal(size=2)
    _, g = m.value_and_grad(x=x, w=w)
    assert list(g) == ["x"]
    np.testing.assert_allclose(g["x"], w)


def test_wrt_as_a_string_names_values_not_characters():
    # wrt="W1" was read as the characters W and 1: "cannot differentiate with respect to `W`"
    assert gdsl.compile_file("models/mlp2.gdsl", wrt="W1").wrt == ["W1"]
    assert gdsl.compile_file("models/mlp2.gdsl", wrt="W1, b2").wrt == ["W1", "b2"]
    assert "h" in gdsl.compile_file("models/mlp2.gdsl", outputs="h").forward(
        **arrays_for(gdsl.compile_file("models/mlp2.gdsl"), np.random.default_rng(0)))


@pytest.mark.parametrize("text, hint", [(b"J = sum(x)", "decode it first"),
                                        (Path("models/mlp2.gdsl"), "gdsl.compile_file(path)"),
                                        (3, "not int")])
def test_compile_takes_text(text, hint):
    with pytest.raises(TypeError, match=re.escape(hint)):
        gdsl.compile(text)


def test_float32_stays_float32(lecture, rng):
    C, d, n = 3, 4, 5
    A = {"x": rng.normal(size=(d, n)).astype(np.float32), "y": np.eye(C, dtype=np.float32)[rng.integers(0, C, n)].T,
             "W": rng.normal(size=(C, d)).astype(np.float32), "b": np.zeros((C, 1), np.float32)}
    _J, g = lecture.value_and_grad(**A)
    assert g["W"].dtype == np.float32 and g["b"].dtype == np.float32


@pytest.mark.parametrize("path", [p for p in MODELS if p.name != "oneliner.gdsl"],
                         ids=lambda p: p.name)
def test_every_model_stays_float32(path, rng):
    # float32 arrays in, float32 out: forward, gradients and Hessian-vector products (the
    # gradients of max, maxpool and softmax's second derivative divided by an integer count
    # of ties, which made them float64)
    m = gdsl.compile_file(path)
    A = {k: np.asarray(a, np.float32) for k, a in arrays_for(m, rng).items()}
    J, g = m.value_and_grad(**A)[:2]
    assert np.asarray(J).dtype == np.float32
    assert {k: a.dtype for k, a in g.items()} == {k: np.float32 for k in g}
    assert {k: np.asarray(a).dtype for k, a in m.forward(**A).items()} == \
        {k: np.float32 for k in m.forward(**A)}
    if not m.states:
        hv = m.hvp({k: np.ones_like(A[k]) for k in m.wrt}, **A)
        assert {k: a.dtype for k, a in hv.items()} == {k: np.float32 for k in hv}


@pytest.mark.parametrize("loss", [
    "sum(W @ x)", "mean(relu(W @ x))", "sum(W)", "mean(square(W @ x - 1))",
    "-mean(log(sigmoid(W @ x)))", "mean(max(W @ x, axis=0))"])
def test_hand_written_losses_keep_float32(loss, rng):
    # the gradient of sum/mean starts from the number 1.0 (or 1/n), broadcast as a float64
    # array: every gradient after it became float64 for float32 arrays
    m = gdsl.compile(f"input x[d, n]\nparam W[C, d]\nJ = {loss}\n")
    A = {"x": rng.normal(size=(4, 5)), "W": rng.normal(size=(3, 4))}
    J32, g32 = m.value_and_grad(**{k: a.astype(np.float32) for k, a in A.items()})
    _, g64 = m.value_and_grad(**A)
    assert np.asarray(J32).dtype == np.float32 and g32["W"].dtype == np.float32
    assert g64["W"].dtype == np.float64
    np.testing.assert_allclose(g32["W"], g64["W"], rtol=1e-5, atol=1e-6)


def test_a_const_passed_in_keeps_float32(lecture, rng):
    C, d, n = 3, 4, 5
    A = {"x": rng.normal(size=(d, n)).astype(np.float32),
         "y": np.eye(C, dtype=np.float32)[rng.integers(0, C, n)].T,
         "W": rng.normal(size=(C, d)).astype(np.float32), "b": np.zeros((C, 1), np.float32)}
    J, g = lecture.value_and_grad(**A, lam=0.1)
    assert np.asarray(J).dtype == np.float32 and g["W"].dtype == np.float32

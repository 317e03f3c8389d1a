"""ONNX export (gdsl export, gdsl.backend.onnx_target): every model in models/ and 200 random
models (tests/randmodel.py, the differential test's generator) export as their forward pass and
as loss + gradients, pass onnx.checker.check_model(full_check=True), and agree with gdsl's
forward / value_and_grad to 1e-12 (relative to the computation's scale) in float64 under
onnx.reference.ReferenceEvaluator; onnxruntime too where it is installed (to 1e-9: its kernels
sum in another order). Class labels both one-hot and integer.

    GDSL_ONNX_MODELS=1000 python3 -m pytest tests/test_onnx.py
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import GDSL, MODELS, ROOT, run_cli
from randmodel import Rejected, random_model

import gdsl
from gdsl.backend import onnx_target
from gdsl.errors import GdslError, Span
from gdsl.ir.graph import Model
from gdsl.ir.ops import OPS
from gdsl.pipeline import run_pipeline

onnx = pytest.importorskip("onnx")
from onnx.reference import ReferenceEvaluator

RANDOM = int(os.environ.get("GDSL_ONNX_MODELS", "200"))
RTOL = 1e-12
SIZES = {"C": 3, "d": 4, "n": 5, "m": 6}
# ops whose rows give no ONNX form on purpose, and why: none, every op of the table has one.
# (A row added without one is refused with its name and line: test_an_op_without_a_form_...)
REFUSED_ON_PURPOSE: dict[str, str] = {
    # reached only by differentiating a gradient again (model.hvp); gdsl export writes a
    # loss and its first gradients
    "max_pick": "a second-derivative row",
}
# the shapes a model that declares none is exported with (gdsl export --shape)
UNDECLARED = {"oneliner.gdsl": {"x": ("d", "n"), "W": ("C", "d"), "b": ("C", 1), "y": ("n",),
                                "lam": ()}}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GDSL_CACHE", str(tmp_path / "cache"))


# -- helpers ------------------------------------------------------------------------------------

def ir(text, *, shapes=None, wrt=None, optimize=True, filename="m.gdsl", mode="train"):
    """The IR of a model, with shapes given to names it does not declare (as gdsl export's
    --shape gives them)."""
    def give(stage, c):
        if stage == "resolve":
            for name, shape in (shapes or {}).items():
                d = c.model.node(c.model.names[name])
                if d["shape"] is None:
                    d["shape"] = shape
    return run_pipeline(text, filename=filename, wrt=wrt, optimize=optimize, after=give,
                        mode=mode).model


def feed(proto, arrays):
    """The arrays an exported graph takes, as its inputs' types say."""
    types = {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}
    out = {}
    for k, v in arrays.items():
        if k in types:
            dtype = {onnx.TensorProto.INT64: np.int64, onnx.TensorProto.FLOAT: np.float32}.get(
                types[k], np.float64)
            out[k] = np.asarray(v).astype(dtype)
    return out


def run_reference(proto, arrays) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # (overflow in exp, as NumPy's own)
        values = ReferenceEvaluator(proto).run(None, feed(proto, arrays))
    return dict(zip([o.name for o in proto.graph.output], values))


def expected(compiled, arrays, with_grad, proto) -> dict:
    """What gdsl computes, under the exported graph's output names."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not with_grad:
            return compiled.forward(**arrays)
        loss, grads = compiled.value_and_grad(**arrays)
    names = dict(p.split("=") for p in onnx_props(proto)["gdsl.grads"].split(","))
    return {compiled.loss: loss, **{names[k]: g for k, g in grads.items()}}


def onnx_props(proto) -> dict:
    return {p.key: p.value for p in proto.metadata_props}


def disagreement(got: dict, want: dict, rtol: float = RTOL) -> list[str]:
    """Each output that differs by more than rtol * (|value| + scale), where scale is the
    largest of 1 and every finite value compared (rounding in a sum of terms is absolute)."""
    assert set(got) == set(want), (sorted(got), sorted(want))
    scale = max([1.0] + [float(np.max(np.abs(v), initial=0)) for v in map(np.asarray, want.values())
                         if np.all(np.isfinite(v))])
    bad = []
    for k, w in want.items():
        g, w = np.asarray(got[k]), np.asarray(w)
        if g.shape != w.shape:
            bad.append(f"{k}: shape {g.shape}, gdsl {w.shape}")
            continue
        if w.dtype.kind in "iub":
            ok = np.array_equal(g, w)
        else:
            finite = np.isfinite(w)
            ok = (np.array_equal(g[~finite], w[~finite], equal_nan=True) and
                  np.all(np.abs(g[finite] - w[finite]) <= rtol * (np.abs(w[finite]) + scale)))
        if not ok:
            bad.append(f"{k}: {g.ravel()[:4]} but gdsl {w.ravel()[:4]}")
    return bad


def other_labels(arrays, names, C):
    """The same arrays with each label in the other form: integers [n] <-> one-hot [C, n]."""
    out = dict(arrays)
    for k in names:
        y = np.asarray(arrays[k])
        out[k] = np.argmax(y, axis=0) if y.ndim == 2 else np.eye(C)[:, y]
    return out


def kind_of(y) -> str:
    return "int" if np.asarray(y).dtype.kind in "iu" else "one-hot"


def model_arrays(compiled, rng, int_labels: bool, shapes=None) -> dict:
    declared = {**compiled.inputs, **compiled.params, **(shapes or {})}
    out = {}
    for name, shape in declared.items():
        if name in compiled.labels:
            y = rng.integers(0, SIZES["C"], size=SIZES["n"])
            out[name] = y if int_labels else np.eye(SIZES["C"])[:, y]
        elif shape is not None:
            out[name] = rng.normal(0, 0.7, size=tuple(SIZES.get(d, d) for d in shape))
    return out


# -- every model in models/ ------------------------------------------------------------------

@pytest.mark.parametrize("labels", ["one-hot", "int"])
@pytest.mark.parametrize("with_grad", [False, True], ids=["forward", "with-grad"])
@pytest.mark.parametrize("path", MODELS, ids=[p.name for p in MODELS])
def test_models_agree_with_gdsl(path, with_grad, labels, rng):
    text = path.read_text()
    shapes = UNDECLARED.get(path.name)
    compiled = gdsl.compile(text, filename=str(path))
    if not compiled.labels and labels == "int":
        pytest.skip("no class labels")
    mode = "train"
    if compiled.states:     # batch norm: ONNX takes its evaluation mode, the running statistics
        with pytest.raises(GdslError, match="exported in evaluation mode"):   # as inputs
            onnx_target.export(ir(text, shapes=shapes, filename=str(path)), with_grad=with_grad)
        compiled, mode = compiled.eval(), "eval"
    proto = onnx_target.export(ir(text, shapes=shapes, filename=str(path), mode=mode),
                               with_grad=with_grad, labels=labels)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 18
    arrays = model_arrays(compiled, rng, labels == "int", shapes)
    for k, (shape, _) in compiled.states.items():      # running statistics: variances > 0
        arrays[k] = rng.uniform(0.5, 1.5, size=tuple(SIZES.get(d, d) for d in shape))
    got = run_reference(proto, arrays)
    assert not disagreement(got, expected(compiled, arrays, with_grad, proto))
    label_types = {i.name: i.type.tensor_type.elem_type for i in proto.graph.input
                   if i.name in compiled.labels}
    want_type = onnx.TensorProto.INT64 if labels == "int" else onnx.TensorProto.DOUBLE
    assert set(label_types.values()) == ({want_type} if compiled.labels else set())


def test_symbolic_dims_are_named_onnx_dims():
    proto = onnx_target.export(ir((ROOT / "models" / "mlp2.gdsl").read_text()), with_grad=True)

    def dims(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    shapes = {v.name: dims(v) for v in [*proto.graph.input, *proto.graph.output]}
    assert shapes == {"x": ["d", "n"], "y": ["C", "n"], "W1": ["m", "d"], "b1": ["m", 1],
                      "W2": ["C", "m"], "b2": ["C", 1], "lam": [], "J": [],
                      "W1_grad": ["m", "d"], "b1_grad": ["m", 1], "W2_grad": ["C", "m"],
                      "b2_grad": ["C", 1]}
    props = onnx_props(proto)
    assert props["gdsl.grads"] == "W1=W1_grad,b1=b1_grad,W2=W2_grad,b2=b2_grad"
    assert props["gdsl.pass"] == "value_and_grad" and props["gdsl.loss"] == "J"
    # the const is an input whose default is an initialiser: it may be left out, or set
    assert [i.name for i in proto.graph.initializer] == ["lam"]


def test_consts_take_their_defaults_and_can_be_set(rng):
    text = (ROOT / "models" / "linear_softmax.gdsl").read_text()
    compiled = gdsl.compile(text)
    proto = onnx_target.export(ir(text))
    arrays = model_arrays(compiled, rng, False)
    default = run_reference(proto, arrays)["J"]
    assert np.isclose(default, compiled.forward(**arrays)["J"], rtol=RTOL, atol=0)
    set_ = run_reference(proto, {**arrays, "lam": 3.0})["J"]
    assert np.isclose(set_, compiled.forward(**arrays, lam=3.0)["J"], rtol=RTOL, atol=0)
    assert set_ > default


# -- 200 random models ------------------------------------------------------------------------

def _random_case(seed):
    m = random_model(seed)
    optimize = bool(seed % 4)          # as the differential test: a quarter unoptimised
    shapes = None if m.declared else {k: tuple(s) for k, (_, s) in m.leaves.items()}
    compiled = gdsl.compile(m.text, wrt=m.wrt, optimize=optimize)
    model = ir(m.text, shapes=shapes, wrt=m.wrt, optimize=optimize)
    return m, compiled, model


@pytest.mark.parametrize("chunk", range(10))
def test_random_models_agree_with_gdsl(chunk):
    failures, checked = [], 0
    for seed in range(chunk, RANDOM, 10):
        m, compiled, model = _random_case(seed)
        arrays = m.arrays(np.random.default_rng(seed), int_labels=True)
        variants = [(arrays, None)]
        if compiled.labels:             # the labels as declared, and in the other form
            other = other_labels(arrays, compiled.labels, m.sizes["C"])
            variants.append((other, kind_of(other[compiled.labels[0]])))
        for with_grad in (False, True):
            if with_grad and not model.grads:
                continue
            for given, labels in variants:
                proto = onnx_target.export(model, with_grad=with_grad, labels=labels)
                onnx.checker.check_model(proto, full_check=True)
                bad = disagreement(run_reference(proto, given),
                                   expected(compiled, arrays, with_grad, proto))
                checked += 1
                if bad:
                    failures.append(f"seed {seed}, {'with-grad' if with_grad else 'forward'}, "
                                    f"labels {labels or 'as declared'}: {bad}\n{m.text}")
    assert not failures, f"{len(failures)} of {checked} exports disagree:\n" + "\n".join(failures[:3])


# -- onnxruntime, where installed ---------------------------------------------------------------

@pytest.mark.parametrize("seed", range(0, RANDOM, 4))
def test_onnxruntime_agrees(seed):
    ort = pytest.importorskip("onnxruntime")
    m, compiled, model = _random_case(seed)
    rng = np.random.default_rng(seed)
    for _ in range(20):     # away from kinks: onnxruntime rounds differently, a mask could flip
        arrays = m.arrays(rng, int_labels=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.evaluate(arrays)
            break
        except Rejected:
            continue
    else:
        pytest.skip("no inputs away from the kinks")
    options = ort.SessionOptions()
    options.log_severity_level = 3      # (it warns that consts' defaults are overridable)
    for with_grad in (False, True) if model.grads else (False,):
        proto = onnx_target.export(model, with_grad=with_grad)
        session = ort.InferenceSession(proto.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        got = dict(zip([o.name for o in proto.graph.output],
                       session.run(None, feed(proto, arrays))))
        assert not disagreement(got, expected(compiled, arrays, with_grad, proto), 1e-9), m.text


def test_onnxruntime_matrix_times_vector():
    """onnxruntime 1.32 fuses Transpose into MatMul wrongly when the second operand is 1-D;
    the export writes a matrix times a vector as a matrix times a column, which it gets right."""
    ort = pytest.importorskip("onnxruntime")
    text = "param W[n, d]\ninput v[n]\nJ = sum(W' @ v)\n"
    proto = onnx_target.export(ir(text), with_grad=True)
    arrays = {"W": np.arange(6.0).reshape(3, 2), "v": np.array([1.0, 2.0, 3.0])}
    got = ort.InferenceSession(proto.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, feed(proto, arrays))
    assert got[0] == pytest.approx(38.0)       # W'v = [16, 22]
    np.testing.assert_allclose(got[1], np.outer([1.0, 2.0, 3.0], [1.0, 1.0]))


# -- ops beyond the random models, and the helpers' subgraphs --------------------------------------

SNIPPETS = [
    "input x[C, n]\nJ = sum(softplus(x * 40))",         # large |x|: no overflow, no lost tail
    "input x[C, n]\nJ = sum(logsumexp(x * 300))",
    "input x[C, n]\nJ = sum(logsumexp(x, axis=1, keepdims=True))",
    "input x[C, n]\nJ = sum(logsumexp(x, axis=None))",
    "input x[C, n]\nJ = sum(x * x)\na = argmax(x, axis=None)\nt = sign(x)\nloss J\noutput a, t",
    "input x[C, n]\ninput y[n]\nJ = xent(softmax(x, axis=0), y) + svm(x, y)",
    "input x[C, n]\ninput y[C, n]\nJ = xent(sigmoid(x), y) + svm(x * 2, y)",
    "input x[C, n]\ninput y[n]\nJ = xent(exp(logsoftmax(x)), y)",
    "input x[C, n]\nJ = mean(max(x, axis=0)) + max(x) + sum(mean(x, axis=1))",
    "input x[C]\ninput u[C, n]\nJ = sum(x @ u) + sqnorm(u @ (u.T @ x)) + sum(x.T @ u)",
    "input x[C, 1]\ninput u[1, n]\nJ = sum(maximum(x, u) - minimum(x, u) ** 2)",
]


@pytest.mark.parametrize("optimize", [True, False], ids=["O1", "O0"])
@pytest.mark.parametrize("text", SNIPPETS)
def test_snippets_agree_with_gdsl(text, optimize, rng):
    leaves = [line.split()[1].split("[")[0] for line in text.splitlines()
              if line.startswith("input")]
    compiled = gdsl.compile(text, wrt=leaves[:1], optimize=optimize)
    model = ir(text, wrt=leaves[:1], optimize=optimize)
    arrays = model_arrays(compiled, rng, "y[n]" in text)
    for with_grad in (False, True):
        proto = onnx_target.export(model, with_grad=with_grad)
        onnx.checker.check_model(proto, full_check=True)
        assert not disagreement(run_reference(proto, arrays),
                                expected(compiled, arrays, with_grad, proto))


def test_softplus_keeps_tiny_values():
    """log(1 + exp(-40)) is 4.2e-18, not 0: the subgraph's log1p keeps it, as np.logaddexp."""
    text = "input x[n]\nJ = sum(softplus(x))\ns = softplus(x)\nloss J\noutput s"
    x = np.array([-745.0, -40.0, -1e-20, 0.0, 1e-300, 3.0, 800.0])
    got = run_reference(onnx_target.export(ir(text)), {"x": x})["s"]
    np.testing.assert_allclose(got, np.logaddexp(0.0, x), rtol=1e-15, atol=0)


def test_integer_labels_out_of_range_give_a_zero_column():
    """NumPy raises; ONNX has no error to raise: the label's column of the one-hot is 0."""
    text = "input s[C, n]\ninput y[n]\nJ = svm(s, y)"
    proto = onnx_target.export(ir(text, optimize=False))
    s = np.zeros((3, 2))     # margins 1: 2 of them for the label 0, 3 for the one out of range
    assert run_reference(proto, {"s": s, "y": np.array([0, 7])})["J"] == pytest.approx(5 / 2)


def test_float32(rng):
    text = (ROOT / "models" / "mlp2.gdsl").read_text()
    compiled = gdsl.compile(text)
    proto = onnx_target.export(ir(text), with_grad=True, float_type="float32")
    onnx.checker.check_model(proto, full_check=True)
    arrays = model_arrays(compiled, rng, False)
    got = run_reference(proto, arrays)
    assert got["W1_grad"].dtype == np.float32
    assert not disagreement(got, expected(compiled, arrays, True, proto), 1e-5)


# -- ops without an ONNX form are refused --------------------------------------------------------

def test_every_op_has_an_onnx_form_or_is_refused_on_purpose():
    """Ops refused on purpose are listed with their reason. A row added since, without an ONNX
    form, is refused cleanly too (the tests below), but belongs here or gets a form."""
    missing = sorted(name for name, row in OPS.items() if row.emit.get("onnx") is None)
    unexplained = [name for name in missing if name not in REFUSED_ON_PURPOSE]
    assert not unexplained, "rows without an ONNX form: give them one or list them here"
    assert all(OPS[name].emit.get("onnx") is None for name in REFUSED_ON_PURPOSE)


@pytest.mark.parametrize("op", sorted(name for name, row in OPS.items()
                                      if row.emit.get("onnx") is None) or ["tanh"])
def test_an_op_without_a_form_is_refused_with_its_name_and_line(op, monkeypatch):
    """Each op without an ONNX form (or, when all have one, tanh's taken away) is refused with
    a message naming it and its line."""
    monkeypatch.delitem(OPS[op].emit, "onnx", raising=False)
    model = Model(source="input x[n]\nJ = f(x)\n", filename="m.gdsl")
    x = model.add("input", name="x", shape=("n",))
    n = model.add(op, (x,), name="J", span=Span(2, 5, 2, 9))
    with pytest.raises(GdslError) as e:
        onnx_target._refuse(model, [x, n])
    text = e.value.attach(model.source, model.filename).render()
    assert f"`{op}` has no ONNX form" in text and text.startswith("m.gdsl:2:5: error:")


def test_refused_in_the_backward_pass_only(tmp_path, monkeypatch):
    """relu's gradient uses `step`: without its form the forward pass exports, the gradients
    are refused at relu's line, through the command line as one message and exit 1."""
    monkeypatch.delitem(OPS["step"].emit, "onnx")
    path = tmp_path / "m.gdsl"
    path.write_text("input x[d, n]\nparam W[C, d]\n\nJ = sum(relu(W @ x))\n")
    assert run_cli("export", str(path), "-o", str(tmp_path / "f.onnx")).returncode == 0
    r = run_cli("export", str(path), "-o", str(tmp_path / "g.onnx"), "--with-grad")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "m.gdsl:4:9: error: `step` has no ONNX form" in r.stderr
    assert "backward pass of this line" in r.stderr and "relu(W @ x)" in r.stderr
    assert not (tmp_path / "g.onnx").exists()


# -- the command line ----------------------------------------------------------------------------

def test_cli_writes_the_model(tmp_path):
    out = tmp_path / "mlp2.onnx"
    r = run_cli("export", str(ROOT / "models" / "mlp2.gdsl"), "-o", str(out), "--with-grad")
    assert r.returncode == 0 and f"wrote {out}" in r.stderr
    proto = onnx.load(out)
    onnx.checker.check_model(proto, full_check=True)
    assert [o.name for o in proto.graph.output] == ["J", "W1_grad", "b1_grad", "W2_grad", "b2_grad"]
    assert "mlp2.gdsl" in proto.doc_string and proto.producer_name == "gdsl"


def test_cli_default_output_beside_the_model(tmp_path):
    model = tmp_path / "lin.gdsl"
    model.write_text((ROOT / "models" / "linear_svm.gdsl").read_text())
    assert run_cli("export", str(model)).returncode == 0
    assert [o.name for o in onnx.load(tmp_path / "lin.onnx").graph.output] == ["J", "s"]


def test_cli_shapes_of_an_undeclared_model(tmp_path, rng):
    path = ROOT / "models" / "oneliner.gdsl"
    out = tmp_path / "one.onnx"
    r = run_cli("export", str(path), "-o", str(out))
    assert r.returncode == 1 and "`W` has no declared shape" in r.stderr and "--shape W=" in r.stderr
    assert not out.exists()
    r = run_cli("export", str(path), "-o", str(out), "--with-grad", "--shape", "x=d,n",
                "--shape", "W=C,d", "--shape", "b=C,1", "--shape", "y=n", "--shape", "lam=")
    assert r.returncode == 0, r.stderr
    proto = onnx.load(out)
    compiled = gdsl.compile(path.read_text())
    arrays = {**model_arrays(compiled, rng, True, UNDECLARED["oneliner.gdsl"]), "lam": 0.1}
    assert not disagreement(run_reference(proto, arrays), expected(compiled, arrays, True, proto))


def test_cli_params_become_initialisers(tmp_path, rng):
    path = ROOT / "models" / "linear_softmax.gdsl"
    compiled = gdsl.compile_file(path)
    arrays = model_arrays(compiled, rng, True)
    arrays["x"] = rng.normal(3.0, 5.0, size=(4, 5))
    mean, std = arrays["x"].mean(axis=1, keepdims=True), arrays["x"].std(axis=1, keepdims=True)
    params = tmp_path / "p.npz"
    np.savez(params, W=arrays["W"], b=arrays["b"], **{"x.mean": mean, "x.std": std},
             **{"y.classes": np.array(["ant", "bee", "cat"])})   # (word labels' names: left out)
    out = tmp_path / "m.onnx"
    r = run_cli("export", str(path), "-o", str(out), "--params", str(params), "--labels", "int")
    assert r.returncode == 0, r.stderr
    proto = onnx.load(out)
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["x", "y", "lam"]
    assert {i.name for i in proto.graph.initializer} == {"W", "b", "lam", "x.mean", "x.std"}
    x_dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert x_dims == [4, "n"]            # d is bound by the params, n stays named
    got = run_reference(proto, {"x": arrays["x"], "y": arrays["y"]})
    # the features standardised as in training (gdsl run --standardize --save)
    want = compiled.forward(**{**arrays, "x": (arrays["x"] - mean) / std})
    assert not disagreement(got, want)


@pytest.mark.parametrize("args, message", [
    (["--shape", "x=d,n"], "`x` is declared with its shape already"),
    (["--shape", "q=n"], "the model has no input, param or const `q`"),
    (["--params", "{tmp}/missing.npz"], "no such params file"),
    (["--params", "{tmp}/wrong.npz"], ("`b` in {tmp}/wrong.npz has shape [3, 1], but the model "
                                       "declares [C, 1]\n")),
    (["--params", "{tmp}/extra.npz"], "`V` is not a param of the model"),
    (["--params", "{tmp}/partial.npz"], "has no array `b` for the param `b`"),
    (["-o", "{model}"], "this is the input file"),
    (["-o", "{tmp}/nowhere/m.onnx"], "does not exist"),
])
def test_cli_user_mistakes(tmp_path, args, message):
    model = tmp_path / "m.gdsl"
    model.write_text((ROOT / "models" / "linear_softmax.gdsl").read_text())
    np.savez(tmp_path / "wrong.npz", W=np.zeros((2, 3)), b=np.zeros((3, 1)))
    np.savez(tmp_path / "extra.npz", W=np.zeros((2, 3)), b=np.zeros((2, 1)), V=np.zeros(2))
    np.savez(tmp_path / "partial.npz", W=np.zeros((2, 3)))
    before = sorted(p.name for p in tmp_path.iterdir())
    args = [a.format(tmp=tmp_path, model=model) for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "out.onnx")]
    r = run_cli("export", str(model), *args)
    assert r.returncode == 1, r.stderr
    assert message.format(tmp=tmp_path) in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("error:") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before      # nothing written
    assert model.read_text() == (ROOT / "models" / "linear_softmax.gdsl").read_text()


@pytest.mark.parametrize("args", [["--shape", "x"], ["--shape", "x=d,,n"], ["--labels", "onehot"]])
def test_cli_usage_mistakes(tmp_path, args):
    r = run_cli("export", str(ROOT / "models" / "mlp2.gdsl"), "-o", str(tmp_path / "m.onnx"), *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_cli_nothing_to_differentiate(tmp_path):
    model = tmp_path / "m.gdsl"
    model.write_text("const k = 2\nJ = k * k\n")
    r = run_cli("export", str(model), "--with-grad")
    assert r.returncode == 1 and "nothing to differentiate" in r.stderr
    assert run_cli("export", str(model)).returncode == 0


def test_cli_without_onnx_installed(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "onnx", None)       # import onnx raises ImportError
    r = run_cli("export", str(ROOT / "models" / "mlp2.gdsl"), "-o", str(tmp_path / "m.onnx"))
    assert r.returncode == 1 and "pip install 'gdsl[onnx]'" in r.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_the_onnx_target_emits_the_forward_pass():
    """The target interface (backend.TARGETS): emit_module's source is the forward pass,
    serialised; gdsl.compile's pipeline runs it as any target."""
    c = run_pipeline((ROOT / "models" / "linear_svm.gdsl").read_text(), target="onnx")
    proto = onnx.load_from_string(c.code)
    assert [o.name for o in proto.graph.output] == ["J", "s"]
    assert onnx_props(proto)["gdsl.pass"] == "forward"


def test_readme_export_commands_work(tmp_path):
    """The README's Export section's commands, as written there."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Export", 1)[1].split("\n## ", 1)[0]
    commands = [line.split("#")[0].split()[1:] for line in section.splitlines()
                if line.startswith("gdsl export")]
    assert commands
    for args in commands:
        args = [str(ROOT / a) if a.startswith("models/") else
                str(tmp_path / Path(a).name) if a.endswith((".onnx", ".npz")) else a for a in args]
        if "--params" in args:
            i = args.index("--params") + 1
            compiled = gdsl.compile_file(args[1])
            sizes = {"C": 10, "d": 64, "m": 100}
            np.savez(args[i], **{k: np.zeros(tuple(sizes.get(d, d) for d in s))
                                 for k, s in compiled.params.items()})
        r = run_cli(*args)
        assert r.returncode == 0, (args, r.stderr)


def test_the_onnx_target_is_written_not_called(tmp_path):
    """gdsl.compile(target="onnx") says where the model goes; gdsl compile writes it to -o or
    a pipe, never text to a terminal."""
    with pytest.raises(gdsl.GdslUsageError, match="another runtime"):
        gdsl.compile("input x[3]\nJ = sum(x * x)", target="onnx")
    import subprocess
    out = tmp_path / "m.onnx"
    r = subprocess.run([*GDSL, "compile", str(MODELS[0]), "--target", "onnx", "-o", str(out)],
                       capture_output=True, check=False)
    assert r.returncode == 0 and out.read_bytes()[:2] == b"\x08\x08"
    piped = subprocess.run([*GDSL, "compile", str(MODELS[0]), "--target", "onnx"],
                           capture_output=True, check=False)
    assert piped.returncode == 0 and piped.stdout == out.read_bytes()

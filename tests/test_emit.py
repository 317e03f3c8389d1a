"""The emitted module: standalone, deterministic, readable, NumPy only."""

from __future__ import annotations

import ast
import subprocess
import sys

import numpy as np
from helpers import GDSL, MODELS

import gdsl


def test_same_model_gives_byte_identical_code():
    for path in MODELS:
        a = gdsl.compile_file(path).source
        b = gdsl.compile_file(path).source
        assert a == b


def test_cli_output_is_byte_identical(tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"m{k}.py"
        subprocess.run([*GDSL, "compile", "models/mlp2.gdsl", "-o", str(out)], check=True)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_only_numpy_is_imported():
    for path in MODELS:
        tree = ast.parse(gdsl.compile_file(path).source)
        imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert [ast.unparse(n) for n in imports] == ["import numpy as np"]


def test_code_reads_like_the_model():
    src = gdsl.compile_file("models/linear_softmax.gdsl").source
    body = src[src.index("def value_and_grad"):]
    for line in ["    z = W @ x", "    s = np.add(z, b, out=z)", "    # z = W @ x", "    # s = z + b",
                 "    g_b = g_s.sum(axis=1, keepdims=True)"]:
        assert line + "\n" in body, line
    assert "g_W = " in body and "return (J, {'W': g_W, 'b': g_b})" in body
    # the fused, stable softmax + cross-entropy: backward is (p - y) / n, in p's array
    assert "g_s = np.subtract(p, Y, out=p)\n" in body and "g_s /= s.shape[1]\n" in body
    assert "Y = _onehot(y, s)" in body


def test_module_runs_without_gdsl(tmp_path, rng):
    out = tmp_path / "lecture_model.py"
    subprocess.run([*GDSL, "compile", "models/linear_softmax.gdsl", "-o", str(out)], check=True)
    C, d, n = 3, 4, 5
    A = {"x": rng.normal(size=(d, n)), "y": np.eye(C)[rng.integers(0, C, n)].T,
             "W": rng.normal(size=(C, d)), "b": np.zeros((C, 1))}
    np.savez(tmp_path / "a.npz", **A)
    script = (
        "import sys, numpy as np, lecture_model as m\n"
        "A = dict(np.load('a.npz'))\n"
        "J, g = m.value_and_grad(**A)\n"
        "assert not any(k.startswith('gdsl') for k in sys.modules)\n"
        "np.save('gW.npy', g['W']); print(repr(float(J)), m.INPUTS, m.PARAMS, m.CONSTS, m.WRT)\n")
    res = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         check=True)
    J, g = gdsl.compile_file("models/linear_softmax.gdsl").value_and_grad(**A)
    assert float(res.stdout.split()[0]) == float(J)
    np.testing.assert_array_equal(np.load(tmp_path / "gW.npy"), g["W"])
    assert "{'x': ('d', 'n'), 'y': ('C', 'n')}" in res.stdout
    assert "{'W': ('C', 'd'), 'b': ('C', 1)}" in res.stdout and "{'lam': 0.01}" in res.stdout


def test_forward_of_the_module_returns_loss_and_outputs(rng):
    m = gdsl.compile_file("models/linear_svm.gdsl")
    C, d, n = 3, 4, 5
    A = {"x": rng.normal(size=(d, n)), "y": rng.integers(0, C, n), "W": rng.normal(size=(C, d)),
             "b": np.zeros((C, 1))}
    out = m.module.forward(**A)
    assert set(out) == {"J", "s"}
    np.testing.assert_allclose(out["s"], A["W"] @ A["x"])


def test_generated_file_is_real_for_tracebacks():
    m = gdsl.compile_file("models/mlp2.gdsl")
    with open(m.path, encoding="utf-8") as f:
        assert f.read() == m.source

"""The built-in digits ship inside gdsl (gdsl/datasets/digits.npz) and are read without
scikit-learn, with the values scikit-learn's load_digits() gives."""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT

import gdsl.tools.data as D
from gdsl.datasets import load_digits

DATASETS = ROOT / "gdsl" / "datasets"


def test_digits_load_without_importing_sklearn():
    script = "import sys, gdsl.tools.data as D; D.digits(); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_gdsl_run_imports_no_sklearn_nor_scipy():
    script = ("import sys; from gdsl.cli import main; "
              "code = main(['run', 'models/linear_softmax.gdsl', '--epochs', '1', '-q']); "
              "print(code, sorted({'sklearn', 'scipy'} & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0 []"


def test_no_module_of_gdsl_imports_sklearn():
    for path in sorted((ROOT / "gdsl").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "sklearn" for n in names), path


def test_digits_are_sklearns():
    datasets = pytest.importorskip("sklearn.datasets")
    want = datasets.load_digits()
    X, y = load_digits()
    assert X.dtype == np.float64 and X.shape == (1797, 64) and X.flags.c_contiguous
    assert y.dtype == np.int64 and y.shape == (1797,)
    assert X.tobytes() == np.asarray(want.data, dtype=np.float64).tobytes()
    assert y.tobytes() == np.asarray(want.target, dtype=np.int64).tobytes()


def test_builtin_digits_are_standardised_pixels():
    X, y = load_digits()
    t = D.digits()
    assert t.X.shape == (1797, 64) and t.X.dtype == np.float64
    np.testing.assert_array_equal(t.y, y)
    constant = X.std(axis=0) == 0          # the always-blank corner pixels stay 0
    assert constant.any() and (t.X[:, constant] == 0).all()
    np.testing.assert_allclose(t.X[:, ~constant].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(t.X[:, ~constant].std(axis=0), 1, rtol=1e-12)
    assert np.array_equal(np.bincount(y), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    assert X.min() == 0 and X.max() == 16


def test_digits_ship_as_package_data():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = project["tool"]["setuptools"]
    assert "gdsl.datasets" in setuptools["packages"]
    patterns = setuptools["package-data"]["gdsl.datasets"]
    for name in ("digits.npz", "README.md"):
        assert (DATASETS / name).is_file(), name
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name
    # gdsl itself needs scikit-learn no more; the tests and benchmarks do
    deps = project["project"]["dependencies"]
    assert not any(d.startswith("scikit-learn") for d in deps)
    extras = project["project"]["optional-dependencies"]
    assert any(d.startswith("scikit-learn") for d in extras["test"])
    assert any(d.startswith("scikit-learn") for d in extras["bench"])

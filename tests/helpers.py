"""Test helpers: central finite differences in float64 (import as `from helpers import ...`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted((ROOT / "models").glob("*.gdsl"))


def numeric_grad(f, arrays: dict, name: str, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f(**arrays) with respect to arrays[name]."""
    x = np.array(arrays[name], dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        fp = f(**{**arrays, name: x.copy()})
        x[i] = old - eps
        fm = f(**{**arrays, name: x.copy()})
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def assert_grads_match(model, arrays: dict, rtol: float = 1e-6, atol: float = 1e-8) -> None:
    """value_and_grad of a compiled model against central differences, for every wrt name."""
    loss, grads = model.value_and_grad(**arrays)
    assert set(grads) == set(model.wrt)

    def f(**kw):
        return float(model.forward(**kw)[model.loss])

    assert np.isclose(loss, f(**arrays))
    for name, g in grads.items():
        num = numeric_grad(f, arrays, name)
        assert np.shape(g) == np.shape(arrays[name]), name
        np.testing.assert_allclose(g, num, rtol=rtol, atol=atol, err_msg=f"gradient of {name}")


def run_cli(*args):
    """Run the CLI in this process (as `gdsl ...`); (exit code, stdout, stderr)."""
    import contextlib
    import io
    import subprocess

    from gdsl.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:
            code = e.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def gdsl_command() -> list[str]:
    """The `gdsl` command as installed next to this Python (a venv's bin/), else `python -m
    gdsl`: the tests do not depend on what is on PATH."""
    import shutil
    import sys
    script = shutil.which("gdsl", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "gdsl"]


GDSL = gdsl_command()

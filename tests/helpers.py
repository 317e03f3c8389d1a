"""Test helpers: central finite differences in float64, agreement of two targets, a call's
arrays (import as `from helpers import ...`)."""

from __future__ import annotations

import math
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
    loss, grads, *_ = model.value_and_grad(**arrays)     # (a model with state: its new values)
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


# -- two targets on the same arrays ---------------------------------------------------------------

RTOL = 1e-12        # targets agree to 1e-12 relative in float64
DIMS = {"d": 6, "C": 4, "n": 23, "m": 9, "k": 5, "h": 8}


def close(ours, ref, scale: float) -> float:
    """How far ours is beyond rtol 1e-12 (with an absolute floor of 1e-12 of scale): <= 0 is
    agreement. NaN and inf must sit where the reference's are."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if ours.shape != ref.shape:
        return math.inf
    same = (ours == ref) | np.isnan(ours) & np.isnan(ref)
    if same.all():
        return 0.0
    if not np.isfinite(ref[~same]).all() or not np.isfinite(ours[~same]).all():
        return math.inf
    err = np.abs(ours - ref) - RTOL * np.abs(ref) - RTOL * scale
    return float(np.max(err[~same]))


def compare(ref, got, what: str) -> list[str]:
    """What the run `got` ((loss, grads, outputs), NumPy arrays) computes differently from the
    NumPy target's run `ref`; gradients within 1e-12 of the largest gradient entry or loss."""
    (l0, g0, f0), (l1, g1, f1) = ref, got
    finite = [abs(float(l0))] if l0 is not None and np.isfinite(l0) else []
    finite += [float(np.max(np.abs(g[np.isfinite(g)]), initial=0))
               for g in map(np.asarray, g0.values())]
    scale = max([1.0, *finite])
    problems = []
    if l0 is not None and close(l1, l0, scale) > 0:
        problems.append(f"{what}: loss {l1!r}, NumPy target {l0!r}")
    if set(g1) != set(g0):
        problems.append(f"{what}: gradients of {sorted(g1)}, NumPy target {sorted(g0)}")
    for k in g0:
        if k in g1 and close(g1[k], g0[k], scale) > 0:
            problems.append(f"{what}: gradient of {k} off by {close(g1[k], g0[k], scale):.3g} "
                            f"beyond tolerance\n  {what} {np.asarray(g1[k]).tolist()}\n"
                            f"  NumPy {np.asarray(g0[k]).tolist()}")
    for k, v in f0.items():
        v = np.asarray(v)
        if close(f1[k], v, max(1.0, float(np.max(np.abs(v[np.isfinite(v)]), initial=0)))) > 0:
            problems.append(f"{what}: output {k} {np.asarray(f1[k]).tolist()}, "
                            f"NumPy target {v.tolist()}")
    return problems


def model_arrays(model, rng, dims=DIMS) -> tuple[dict, dict]:
    """A call's arrays for a compiled model with declared shapes (labels as integers), and
    their declared shapes."""
    shapes = {**model.inputs, **model.params, **{k: s for k, (s, _) in model.states.items()}}
    sizes = {**dims, **model.model.dims.bound}
    arrays = {}
    for k, shape in shapes.items():
        real = tuple(sizes[d] if isinstance(d, str) else d for d in shape)
        if k in model.labels:
            arrays[k] = rng.integers(0, real[0], size=real[1:])
        elif k in model.states:     # (batch norm's running variance: positive)
            arrays[k] = rng.uniform(0.5, 1.5, size=real)
        else:
            arrays[k] = rng.normal(size=real)
    return arrays, shapes


def fail_with_models(failures: list, checked: int) -> None:
    """Fail the test with the first three (seed, random model, problems) of ``failures``."""
    import pytest

    if failures:
        shown = "\n\n".join(f"=== seed {seed} (optimize={bool(seed % 4)}, wrt={m.wrt}):\n"
                            + "\n".join(p[:2000] for p in problems[:4]) + f"\n--- model ---\n{m.text}"
                            for seed, m, problems in failures[:3])
        pytest.fail(f"{len(failures)} of {checked} random models disagree:\n\n{shown}",
                    pytrace=False)

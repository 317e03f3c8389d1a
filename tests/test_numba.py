"""The numba target (issue 17, item 5): one @njit step per pass, elementwise chains and
reductions fused into loops, products through BLAS, agreeing with the NumPy target to 1e-12
relative in float64 (with an absolute floor of 1e-12 of the computation's scale: a gradient
that is zero in exact arithmetic is rounding noise on both sides).

Numba compiles each step in a second or more: the suite checks every model of models/ and
GDSL_NUMBA_MODELS random models (tests/randmodel.py; 8 by default, seeds from
GDSL_NUMBA_SEED, 0 by default). It compiles them at LLVM's -O0 unless NUMBA_OPT says
otherwise: the same IEEE arithmetic (numba never reassociates without fastmath), in half
the time. The report's run: NUMBA_OPT=3 GDSL_NUMBA_MODELS=500 python3 -m pytest tests/test_numba.py
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import warnings

os.environ.setdefault("NUMBA_OPT", "0")     # (read when numba is imported)

import numpy as np
import pytest
from fuzzkit import record
from helpers import MODELS as MODEL_FILES
from helpers import ROOT, close, compare, fail_with_models, gdsl_command, model_arrays
from randmodel import random_model

import gdsl
from gdsl.ir import ops

numba = pytest.importorskip("numba")
pytest.importorskip("scipy")            # numba's np.dot calls SciPy's BLAS
# at -O0 numba's BLAS calls keep their addresses in the code, which it then will not cache
pytestmark = pytest.mark.filterwarnings("ignore:Cannot cache compiled function")

N_MODELS = int(os.environ.get("GDSL_NUMBA_MODELS", "8"))
SEED = int(os.environ.get("GDSL_NUMBA_SEED", "0"))


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    # one cache for the module: numba's own cache files sit beside the emitted modules
    monkeypatch.setenv("GDSL_CACHE", str(tmp_path_factory.getbasetemp() / "numba-cache"))


def disagreements(text: str, wrt, optimize: bool, arrays: dict) -> list[str]:
    """Both targets on the same arrays: what the numba target computes differently."""
    reference = gdsl.compile(text, wrt=wrt, optimize=optimize)
    model = gdsl.compile(text, wrt=wrt, optimize=optimize, target="numba")
    runs = []
    for m in (reference, model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss, grads, *_ = m.value_and_grad(**arrays) if m.loss else (None, {}, {})
            runs.append((loss, grads, m.forward(**arrays)))
    return compare(*runs, "numba")


# -- agreement with the NumPy target ------------------------------------------------------------

@pytest.mark.parametrize("path", [p for p in MODEL_FILES if "oneliner" not in p.name],
                         ids=lambda p: p.name)
def test_every_model_agrees(path):
    model = gdsl.compile_file(path)
    arrays, _ = model_arrays(model, np.random.default_rng(0))
    problems = disagreements(path.read_text(), None, True, arrays)
    assert not problems, "\n".join(problems)


def test_the_oneliner_agrees_specialised():
    """No declarations: compiled for numba at the first call, with that call's shapes."""
    rng = np.random.default_rng(1)
    text = (ROOT / "models" / "oneliner.gdsl").read_text()
    arrays = {"x": rng.normal(size=(6, 23)), "y": rng.integers(0, 4, size=23),
              "W": rng.normal(size=(4, 6)), "b": rng.normal(size=(4, 1)), "lam": 0.1}
    assert not disagreements(text, ["W", "b"], True, arrays)
    m = gdsl.compile(text, wrt=["W", "b"], target="numba")
    assert "import numba" not in m.source                  # the generic module: NumPy's
    assert "@numba.njit" in m.specialised(**arrays).source


def test_random_models_agree(request):
    failures = []
    for seed in range(SEED, SEED + N_MODELS):
        m = random_model(seed)
        arrays = m.arrays(np.random.default_rng(seed), int_labels=True)
        try:
            problems = disagreements(m.text, m.wrt, bool(seed % 4), arrays)
        except Exception as e:  # noqa: BLE001 -- any failure is reported with the model
            problems = [f"raised {type(e).__name__}: {e}"]
        if problems:
            failures.append((seed, m, problems))
    print(f"\nnumba target: {N_MODELS - len(failures)} of {N_MODELS} random models agree with "
          f"the NumPy target to 1e-12 (seeds {SEED}..{SEED + N_MODELS - 1})")
    record(request.config, "random models: numba target = NumPy target", N_MODELS - len(failures))
    fail_with_models(failures, N_MODELS)


# -- what the step is ---------------------------------------------------------------------------

def step_of(source: str, name: str = "_value_and_grad_step") -> ast.FunctionDef:
    tree = ast.parse(source)
    return next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == name)


def calls(fn: ast.FunctionDef) -> list[str]:
    return [ast.unparse(c.func) for c in ast.walk(fn) if isinstance(c, ast.Call)]


def test_one_jitted_step_per_pass_products_through_blas():
    m = gdsl.compile_file(ROOT / "models" / "mlp2.gdsl", target="numba")
    tree = ast.parse(m.source)
    jitted = [f.name for f in tree.body if isinstance(f, ast.FunctionDef) and any(
        "njit" in ast.unparse(d) and "cache=True" in ast.unparse(d) for d in f.decorator_list)]
    assert jitted == ["_onehot_labels", "_forward_step", "_value_and_grad_step"]
    step = step_of(m.source)
    # W1 @ x, W2 @ h; the gradients g_s @ h.T, W2.T @ g_s and g_z @ x.T
    assert calls(step).count("np.dot") == 5
    assert "matmul" not in m.source and "@" not in ast.unparse(step).replace("@numba", "")


def test_elementwise_chains_and_reductions_fuse_into_one_loop():
    m = gdsl.compile("input x[n, k]\nparam w[n, k]\nJ = sum(exp(tanh(x * w) + 1) * 0.5)\n",
                     target="numba")
    fwd = step_of(m.source, "_forward_step")
    loops = [s for s in fwd.body if isinstance(s, ast.For)]
    assert len(loops) == 1                          # the whole chain summed in one loop nest
    assert "np.empty" not in calls(fwd) and "np.full" not in calls(fwd)   # no array for it
    rng = np.random.default_rng(0)
    a = {"x": rng.normal(size=(3, 5)), "w": rng.normal(size=(3, 5))}
    ref = gdsl.compile("input x[n, k]\nparam w[n, k]\nJ = sum(exp(tanh(x * w) + 1) * 0.5)\n")
    assert close(m.forward(**a)["J"], ref.forward(**a)["J"], 1.0) <= 0


def test_float32_computes_in_float32_arrays():
    m = gdsl.compile_file(ROOT / "models" / "linear_softmax.gdsl", target="numba")
    ref = gdsl.compile_file(ROOT / "models" / "linear_softmax.gdsl")
    rng = np.random.default_rng(0)
    a = {"x": rng.normal(size=(6, 23)).astype(np.float32), "y": rng.integers(0, 4, size=23),
         **{k: v.astype(np.float32) for k, v in ref.init_params({"C": 4, "d": 6}).items()}}
    J, g = m.value_and_grad(**a)
    J0, g0 = ref.value_and_grad(**a)
    assert np.isclose(J, J0, rtol=1e-5)
    assert all(v.dtype == np.float32 for v in g.values())
    assert all(np.allclose(g[k], g0[k], rtol=1e-4, atol=1e-6) for k in g0)
    # a call mixing float32 and float64 is computed in float64 (CompiledModel casts)
    J, g = m.value_and_grad(**{**a, "x": a["x"].astype(np.float64)})
    assert np.isclose(J, J0, rtol=1e-5) and g["W"].dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scalars_come_back_as_numbers_of_the_call_s_dtype(dtype):
    """numba returns a scalar as a Python float: the loss of a float32 call was a float64
    and the gradient of a scalar param (linear_regression's b) had no dtype at all. They
    come back as the NumPy module's do, NumPy scalars of the call's dtype."""
    m = gdsl.compile_file(ROOT / "models" / "linear_regression.gdsl", target="numba")
    ref = gdsl.compile_file(ROOT / "models" / "linear_regression.gdsl")
    rng = np.random.default_rng(0)
    a = {"x": rng.normal(size=(5, 9)).astype(dtype), "y": rng.normal(size=9).astype(dtype),
         "w": rng.normal(size=5).astype(dtype), "b": dtype(0.3)}
    (J, g), (J0, g0) = m.value_and_grad(**a), ref.value_and_grad(**a)
    assert type(J) is type(J0) is dtype and type(g["b"]) is type(g0["b"]) is dtype
    assert type(m.forward(**a)["J"]) is dtype
    assert np.isclose(J, J0, rtol=1e-5) and np.isclose(g["b"], g0["b"], rtol=1e-4)


@pytest.mark.parametrize("labels", ["integers", "row", "one-hot"])
def test_labels_in_every_form(labels):
    m = gdsl.compile_file(ROOT / "models" / "linear_svm.gdsl", target="numba")
    ref = gdsl.compile_file(ROOT / "models" / "linear_svm.gdsl")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=23)
    y = {"integers": y, "row": y[None, :], "one-hot": np.eye(4)[:, y]}[labels]
    a = {"x": rng.normal(size=(6, 23)), "y": y, **ref.init_params({"C": 4, "d": 6})}
    (J, g), (J0, g0) = m.value_and_grad(**a), ref.value_and_grad(**a)
    assert close(J, J0, 1.0) <= 0 and all(close(g[k], g0[k], 1.0) <= 0 for k in g0)
    with pytest.raises(gdsl.GdslRuntimeError, match="labels must be integers in 0..C-1") as e:
        m.value_and_grad(**{**a, "y": np.where(np.arange(23) == 3, 9, rng.integers(0, 4, 23))})
    assert e.value.span is not None                 # at the model's line of the loss


def test_an_op_without_a_numba_form_is_refused_by_name(monkeypatch):
    row = ops.OPS["softmax"]
    monkeypatch.setitem(ops.OPS, "softmax", type(row)(**{
        **{f: getattr(row, f) for f in row.__dataclass_fields__},
        "emit": {k: v for k, v in row.emit.items() if k != "numba"}}))
    with pytest.raises(gdsl.GdslTypeError, match="numba target cannot emit `softmax`") as e:
        gdsl.compile("input s[C, n]\nparam w[C, n]\nJ = sum(softmax(s * w))\n", target="numba")
    assert e.value.span.line == 3


def test_the_command_line(tmp_path):
    out = tmp_path / "mlp2_numba.py"
    r = subprocess.run([*gdsl_command(), "compile", "models/mlp2.gdsl", "--target", "numba",
                        "-o", str(out)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert r.returncode == 0, r.stderr
    # the module stands alone: imported by its own name, called with the model's names
    code = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(tmp_path)!r})
        import numpy as np, mlp2_numba as m
        rng = np.random.default_rng(0)
        J, g = m.value_and_grad(x=rng.normal(size=(6, 9)), y=rng.integers(0, 3, 9),
                                W1=rng.normal(size=(5, 6)), b1=np.zeros((5, 1)),
                                W2=rng.normal(size=(3, 5)), b2=np.zeros((3, 1)))
        print(sorted(g), np.isfinite(J))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "['W1', 'W2', 'b1', 'b2'] True", r.stderr
    # shapes left to call time: one message, exit 1
    r = subprocess.run([*gdsl_command(), "compile", "models/oneliner.gdsl", "--target", "numba"],
                       capture_output=True, text=True, cwd=ROOT, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "the numba target needs the shape of every array" in r.stderr


def test_the_cache_makes_a_second_process_start_without_compiling(tmp_path):
    """Each process compiles the model (gdsl), imports the module and calls its steps; the
    second finds numba's machine code in the cache beside the module: a hit, no miss."""
    code = textwrap.dedent("""
        import numpy as np, gdsl
        m = gdsl.compile_file("models/linear_softmax.gdsl", target="numba")
        rng = np.random.default_rng(0)
        a = {"x": rng.normal(size=(6, 9)), "y": rng.integers(0, 3, 9),
             **m.init_params({"C": 3, "d": 6})}
        m.value_and_grad(**a)
        s = m.module._value_and_grad_step.stats
        print(len(s.cache_hits), len(s.cache_misses))
    """)
    env = {**os.environ, "GDSL_CACHE": str(tmp_path / "cache"), "NUMBA_OPT": "3"}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=ROOT, env=env, check=False) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    assert runs[0].stdout.split() == ["0", "1"]       # compiled, and written to the cache
    assert runs[1].stdout.split() == ["1", "0"]       # loaded from it
    assert list((tmp_path / "cache" / "__pycache__").glob("*.nbi"))


def test_gdsl_run_trains_as_the_numpy_target_does(tmp_path):
    runs = {}
    for target in ("numpy", "numba"):
        runs[target] = gdsl.train("models/linear_softmax.gdsl", epochs=2, target=target)
    p0, p1 = runs["numpy"].params, runs["numba"].params
    assert all(np.allclose(p0[k], p1[k], rtol=1e-9, atol=1e-12) for k in p0)
    r = subprocess.run([*gdsl_command(), "run", "models/linear_softmax.gdsl", "--target", "numba",
                        "--epochs", "1", "-q"], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "GDSL_CACHE": str(tmp_path)}, check=False)
    assert r.returncode == 0 and "final: train acc" in r.stdout, r.stderr

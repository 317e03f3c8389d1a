"""The array-API target (issue 14, items 1 and 2): the same model, any library's arrays.

Every model in models/ and GDSL_ARRAY_API_MODELS random models (tests/randmodel.py, 500 by
default) are compiled for the NumPy target and for the array-API target; value_and_grad and
forward must agree to 1e-12 relative in float64 (with an absolute floor of 1e-12 of the
computation's scale, for entries that cancel to rounding noise) when the array-API model is
called with array_api_strict arrays (held to the 2023.12 standard, which rejects anything
outside it), with Dask arrays chunked along the examples axis, and with PyTorch CPU tensors
(those tests are skipped only where PyTorch is not installed; it is not in the `test` extra).
The results must be arrays of the caller's library, and no argument may be written into.

    GDSL_ARRAY_API_MODELS=2000 python3 -m pytest tests/test_array_api.py
"""

from __future__ import annotations

import math
import os
import random
import sys
import warnings

import numpy as np
import pytest
from fuzzkit import record
from helpers import DIMS, close, compare, fail_with_models, model_arrays
from helpers import MODELS as MODEL_FILES
from randmodel import Rejected, random_model

import gdsl
from gdsl.backend import TARGETS, array_api_target

array_api_compat = pytest.importorskip("array_api_compat")
strict = pytest.importorskip("array_api_strict")
dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

N_MODELS = int(os.environ.get("GDSL_ARRAY_API_MODELS", "500"))
# Dask builds a task graph per op (~0.6 ms each): a model costs ~70 ms there, against ~25 ms
# for the rest. Every DASK_EVERY-th random model also runs on Dask; 1 runs all of them.
DASK_EVERY = int(os.environ.get("GDSL_ARRAY_API_DASK_EVERY", "5"))
SEED = int(os.environ.get("GDSL_ARRAY_API_SEED", random.randrange(2**31)))
STANDARD = "2023.12"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GDSL_CACHE", str(tmp_path / "cache"))


@pytest.fixture(autouse=True, scope="module")
def _synchronous_dask():
    with dask.config.set(scheduler="synchronous"):     # no thread pool per compute
        yield


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def to_numpy(a):
    """Any library's array (or number) as a NumPy array."""
    if isinstance(a, (int, float, np.ndarray, np.generic)):
        return np.asarray(a)
    if array_api_compat.is_torch_array(a):
        return a.detach().cpu().numpy()
    if array_api_compat.is_dask_array(a):
        return np.asarray(a.compute())
    return np.from_dlpack(a)


def _kind_of(a) -> str:
    for kind, test in (("strict", array_api_compat.is_array_api_strict_namespace),):
        if test(array_api_compat.array_namespace(a)):
            return kind
    if array_api_compat.is_torch_array(a):
        return "torch"
    if array_api_compat.is_dask_array(a):
        return "dask"
    if array_api_compat.is_jax_array(a):
        return "jax"
    return "numpy"


# -- the libraries: each converts a call's NumPy arrays to its own -----------------------------

def chunked(a: np.ndarray, shape: tuple, n_axis_name: str = "n", parts: int = 3):
    """A Dask array of a, chunked along each axis whose declared dim is the examples' n."""
    chunks = tuple(max(1, math.ceil(size / parts)) if dim == n_axis_name else -1
                   for dim, size in zip(shape, a.shape)) if len(shape) == a.ndim else -1
    return da.from_array(a, chunks=chunks)


def convert(kind: str, arrays: dict, shapes: dict) -> dict:
    """The arrays of a call in library `kind`; Python numbers (consts) stay numbers."""
    out = {}
    for k, v in arrays.items():
        if not isinstance(v, np.ndarray):
            out[k] = v
        elif kind == "strict":
            out[k] = strict.asarray(v)
        elif kind == "dask":
            out[k] = chunked(v, shapes.get(k) or ())
        elif kind == "torch":
            out[k] = _torch().asarray(v)
        else:
            out[k] = v
    return out


def call_both(model, arrays: dict, kind: str):
    """value_and_grad and forward of the array-API model on arrays of library `kind`, as
    NumPy; checks that what comes back is of that library."""
    with strict.ArrayAPIStrictFlags(api_version=STANDARD), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss, grads, *_ = model.value_and_grad(**arrays) if model.loss else (None, {}, {})
        outputs = model.forward(**arrays)
    for v in [loss, *grads.values(), *outputs.values()]:
        if v is not None:
            assert _kind_of(v) == kind, f"a {type(v).__name__} came back for {kind} arrays"
    if kind == "dask":
        loss, grads, outputs = dask.compute(loss, grads, outputs)
    return (None if loss is None else to_numpy(loss), {k: to_numpy(v) for k, v in grads.items()},
            {k: to_numpy(v) for k, v in outputs.items()})


def kinds(dask: bool = True) -> list[str]:
    return ["strict"] + (["dask"] if dask else []) + (["torch"] if _torch() is not None else [])


def check_model(text: str, wrt, optimize: bool, arrays: dict, shapes: dict,
                dask: bool = True) -> list[str]:
    """The NumPy target and the array-API target on each library's arrays: what disagrees."""
    reference = gdsl.compile(text, wrt=wrt, optimize=optimize)
    model = gdsl.compile(text, wrt=wrt, optimize=optimize, target="array-api")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss, grads, *_ = reference.value_and_grad(**arrays) if reference.loss else (None, {}, {})
        ref = (loss, {k: np.asarray(v) for k, v in grads.items()}, reference.forward(**arrays))
    problems = []
    for kind in kinds(dask):
        given = convert(kind, arrays, shapes)
        try:
            got = call_both(model, given, kind)
        except Exception as e:  # noqa: BLE001 -- any failure is reported with the model
            problems.append(f"{kind}: raised {type(e).__name__}: {e}")
            continue
        problems += compare(ref, got, kind)
        for k, v in arrays.items():      # nothing written into an argument
            if isinstance(v, np.ndarray):
                assert np.array_equal(to_numpy(given[k]), v, equal_nan=True), f"{kind}: {k} changed"
    return problems


# -- the models of models/ --------------------------------------------------------------------

@pytest.mark.parametrize("optimize", [True, False], ids=["O1", "O0"])
@pytest.mark.parametrize("path", [p for p in MODEL_FILES if "oneliner" not in p.name],
                         ids=lambda p: p.name)
def test_every_model_agrees(path, optimize, rng):
    model = gdsl.compile_file(path)
    arrays, shapes = model_arrays(model, rng)
    problems = check_model(path.read_text(), None, optimize, arrays, shapes)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("optimize", [True, False], ids=["O1", "O0"])
def test_the_oneliner_agrees(optimize, rng):
    """No declarations: every shape known only at call time, in the module too."""
    text = (MODEL_FILES[0].parent / "oneliner.gdsl").read_text()
    arrays = {"x": rng.normal(size=(6, 23)), "y": rng.integers(0, 4, size=23),
              "W": rng.normal(size=(4, 6)), "b": rng.normal(size=(4, 1)), "lam": 0.1}
    shapes = {"x": ("d", "n"), "y": ("n",), "W": ("C", "d"), "b": ("C", 1)}
    problems = check_model(text, None, optimize, arrays, shapes)
    assert not problems, "\n".join(problems)


# -- random models -----------------------------------------------------------------------------

def _on_a_step(m, arrays) -> bool:
    """Whether an argmax or a sign of the model meets a tie or zero, within rounding, at these
    arrays (the reference evaluator says): there another order of the same arithmetic may jump
    to the step's other side, and both answers are right."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.evaluate(arrays)
    except Rejected as e:
        return str(e) in ("argmax", "sign")
    return False


def test_random_models_agree(request):
    """GDSL_ARRAY_API_MODELS random models over the whole op set: NumPy target = array-API
    target under array_api_strict, Dask (chunked by examples) and PyTorch."""
    failures, checked, on_dask, ties = [], 0, 0, 0
    for seed in range(SEED, SEED + N_MODELS):
        m = random_model(seed)
        rng = np.random.default_rng(seed)
        arrays = m.arrays(rng, int_labels=True)
        if _on_a_step(m, arrays):
            ties += 1
            continue
        shapes = {k: shape for k, (kind, shape) in m.leaves.items() if kind != "const"}
        dask_too = (seed - SEED) % DASK_EVERY == 0
        problems = check_model(m.text, m.wrt, bool(seed % 4), arrays, shapes, dask_too)
        if problems:
            failures.append((seed, m, problems))
        checked += 1
        on_dask += dask_too
    print(f"\narray-API target: {checked - len(failures)} of {checked} random models agree with "
          f"the NumPy target under {', '.join(kinds(False))} ({on_dask} of them under Dask too; "
          f"seeds {SEED}..{SEED + N_MODELS - 1}; {ties} drawn on a tie of argmax or sign)")
    record(request.config, "random models: array-API target = NumPy target", checked - len(failures))
    fail_with_models(failures, checked)


# -- the target itself ---------------------------------------------------------------------------

def test_the_target_is_registered():
    assert "array-api" in TARGETS
    m = gdsl.compile("input x[n]\nparam w[n]\nJ = sum(w * x)\n", target="array_api")
    assert "xp = array_namespace(" in m.source


def test_it_emits_only_the_standard():
    """No NumPy, no out=, no augmented assignment (an update in place), no method calls."""
    import ast
    for path in MODEL_FILES:
        for optimize in (True, False):
            source = gdsl.compile_file(path, optimize=optimize, target="array-api").source
            tree = ast.parse(source)
            assert "np." not in source and "numpy" not in source.split('"""', 2)[2]
            for node in ast.walk(tree):
                assert not isinstance(node, ast.AugAssign), ast.unparse(node)
                if isinstance(node, ast.Call):
                    assert not any(k.arg == "out" for k in node.keywords), ast.unparse(node)
                    f = node.func
                    if isinstance(f, ast.Attribute):   # xp.f(...), never an array's method
                        assert isinstance(f.value, ast.Name), ast.unparse(node)
                        if f.value.id == "math":           # (math.prod of a shape)
                            continue
                        assert f.value.id == "xp", ast.unparse(node)
                        assert f.attr in array_api_target.STANDARD, f.attr


def test_the_module_stands_alone(tmp_path):
    """`gdsl compile --target array-api` writes a module that needs only array-api-compat
    and the caller's library (here NumPy arrays, and array_api_strict's)."""
    import subprocess
    import sys

    from helpers import GDSL
    out = tmp_path / "mlp2_xp.py"
    r = subprocess.run([*GDSL, "compile", "models/mlp2.gdsl", "--target", "array-api", "-o",
                        str(out)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    script = f"""
import sys, numpy as np, array_api_strict as xps
sys.modules["gdsl"] = None          # not importable: the module must not need it
sys.path.insert(0, {str(tmp_path)!r})
import mlp2_xp as m
rng = np.random.default_rng(0)
x, y = rng.normal(size=(5, 7)), rng.integers(0, 3, size=7)
P = {{"W1": rng.normal(size=(4, 5)), "b1": np.zeros((4, 1)), "W2": rng.normal(size=(3, 4)),
      "b2": np.zeros((3, 1))}}
L, G = m.value_and_grad(x=xps.asarray(x), y=xps.asarray(y), **{{k: xps.asarray(v) for k, v in P.items()}})
print(type(L).__module__, sorted(G), float(L) > 0)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["array_api_strict._array_object", "['W1',", "'W2',", "'b1',",
                                "'b2']", "True"]


def test_arguments_are_never_written_into(rng):
    """Read-only NumPy arrays go through every model's passes (NumPy raises on a write)."""
    for path in MODEL_FILES:
        if "oneliner" in path.name:
            continue
        for optimize in (True, False):
            model = gdsl.compile_file(path, optimize=optimize, target="array-api")
            arrays, _ = model_arrays(model, rng)
            for a in arrays.values():
                a.flags.writeable = False
            model.value_and_grad(**arrays)
            model.forward(**arrays)


def test_unknown_dimensions_still_average_right(rng):
    """Dask arrays whose examples axis has unknown chunk sizes (nan, from a boolean index):
    the mean over examples counts them as they are computed."""
    for path in MODEL_FILES:
        # (cnn_digits reshapes its examples' pixels into images: Dask cannot reshape an array
        # whose chunk sizes are unknown, whatever computes it)
        if "oneliner" in path.name or "cnn_digits" in path.name:
            continue
        reference = gdsl.compile_file(path)
        model = gdsl.compile_file(path, target="array-api")
        arrays, shapes = model_arrays(reference, rng)
        loss0, grads0, *_ = reference.value_and_grad(**arrays)
        out0 = reference.forward(**arrays)
        keep = da.from_array(np.ones(DIMS["n"], bool), chunks=math.ceil(DIMS["n"] / 3)) > 0.5
        given = {}
        for k, a in arrays.items():
            a = chunked(a, shapes[k])
            if shapes[k] and shapes[k][-1] == "n":
                a = a[..., keep]
                assert math.isnan(a.shape[-1])
            given[k] = a
        loss, grads, *_ = model.value_and_grad(**given)
        out = model.forward(**given)
        loss, grads, out = dask.compute(loss, grads, out)
        assert close(loss, loss0, 1.0) <= 0, (path.name, loss, loss0)
        for k in grads0:
            assert close(grads[k], grads0[k], 1.0) <= 0, (path.name, k)
        for k in out0:
            assert close(out[k], out0[k], 1.0) <= 0, (path.name, k)


def test_float32_stays_float32():
    """Masks, literals and consts take the call's dtype: float32 tensors give float32."""
    torch = _torch()
    if torch is None:
        pytest.skip("PyTorch is not installed")
    text = (MODEL_FILES[0].parent / "mlp2.gdsl").read_text() + "output h\n"
    model = gdsl.compile(text, target="array-api")
    rng = np.random.default_rng(0)
    arrays, _ = model_arrays(gdsl.compile(text), rng)
    given = {k: torch.asarray(v, dtype=torch.float32) if v.dtype.kind == "f" else torch.asarray(v)
             for k, v in arrays.items()}
    loss, grads = model.value_and_grad(**given, lam=0.01)
    assert loss.dtype == torch.float32 and all(g.dtype == torch.float32 for g in grads.values())
    assert all(v.dtype == torch.float32 for v in model.forward(**given).values())


def test_a_function_that_reads_no_array():
    """forward of a loss of consts alone reads none of the caller's arrays: the module
    computes with NumPy's namespace (array_namespace of nothing is an error) and the model
    returns the result in the caller's library, as value_and_grad does."""
    text = "const k = 2.0\nparam W[3] ~ normal(0, 1)\nJ = sqnorm(k)\nloss J"
    m = gdsl.compile(text, wrt=["W"], target="array-api")
    W = strict.asarray(np.arange(3.0))
    J = m.forward(W=W)["J"]
    assert float(J) == 4.0 and _kind_of(J) == "strict"
    assert float(m.module.forward()["J"]) == 4.0        # the module alone: NumPy's
    J, grads = m.value_and_grad(W=W)
    assert float(J) == 4.0 and _kind_of(grads["W"]) == "strict"
    assert np.array_equal(to_numpy(grads["W"]), np.zeros(3))


def test_integers_become_floats_of_the_call():
    """An integer input (not labels) becomes a float array of the caller's library and dtype."""
    model = gdsl.compile("input x[n]\nparam w[n]\nJ = sum(w * x)\n", target="array-api")
    loss, grads = model.value_and_grad(x=strict.asarray([1, 2, 3]),
                                       w=strict.asarray([0.5, 0.25, 1.0], dtype=strict.float32))
    assert loss.dtype == strict.float32 and float(loss) == 4.0
    assert grads["w"].dtype == strict.float32 and to_numpy(grads["w"]).tolist() == [1, 2, 3]


def test_numbers_reach_functions_as_arrays():
    """Literals and consts inside functions (maximum(x, 0.5), exp(k), softplus's 0) and a
    gradient that is a number: arrays of the call's dtype under the 2023.12 standard."""
    text = ("input x[n]\nparam w[n]\nparam c[]\nconst k = 0.5\n"
            "J = sum(maximum(w * x, 0.5) + minimum(k, w) + softplus(w) + exp(k) * w) + 2 * c\n")
    reference = gdsl.compile(text)
    arrays = {"x": np.array([1.0, -2.0, 3.0]), "w": np.array([0.3, 0.9, -0.2]), "c": np.array(1.5)}
    for optimize in (True, False):
        reference = gdsl.compile(text, optimize=optimize)
        model = gdsl.compile(text, optimize=optimize, target="array-api")
        loss0, grads0, *_ = reference.value_and_grad(**arrays)
        with strict.ArrayAPIStrictFlags(api_version=STANDARD):
            loss, grads = model.value_and_grad(**{k: strict.asarray(v) for k, v in arrays.items()})
        assert _kind_of(grads["c"]) == "strict"        # the gradient of 2 * c is the number 2
        assert close(to_numpy(loss), loss0, 1.0) <= 0
        for k in grads0:
            assert close(to_numpy(grads[k]), grads0[k], 1.0) <= 0, k


# -- mistakes ----------------------------------------------------------------------------------

def test_bad_arrays_are_named_at_their_line():
    model = gdsl.compile_file(MODEL_FILES[0].parent / "linear_softmax.gdsl", target="array-api")
    rng = np.random.default_rng(0)
    good = {"x": strict.asarray(rng.normal(size=(3, 5))), "y": strict.asarray(rng.integers(0, 2, 5)),
            "W": strict.asarray(rng.normal(size=(2, 3))), "b": strict.asarray(np.zeros((2, 1)))}
    model.value_and_grad(**good)
    with pytest.raises(gdsl.GdslError, match=r"array `W` has shape \(2, 4\), but it is declared"):
        model.value_and_grad(**{**good, "W": strict.asarray(np.zeros((2, 4)))})
    with pytest.raises(gdsl.GdslError, match="missing array `b`"):
        model.value_and_grad(**{k: v for k, v in good.items() if k != "b"})
    with pytest.raises(gdsl.GdslError, match="unknown array `q`"):
        model.value_and_grad(**good, q=good["x"])
    with pytest.raises(gdsl.GdslError, match="array `x` has dtype .*complex128; gdsl computes with real"):
        model.value_and_grad(**{**good, "x": strict.asarray(np.ones((3, 5), complex))})
    with pytest.raises(gdsl.GdslError, match="labels must lie in 0..1, got 0..7") as e:
        model.value_and_grad(**{**good, "y": strict.asarray(np.array([0, 1, 7, 1, 0]))})
    assert e.value.line == 11          # l = xent(p, y)


def test_an_op_it_cannot_emit_is_refused_by_name(monkeypatch, tmp_path):
    """Negative control: a row whose NumPy emission is outside the standard (np.vdot) and
    that has no entry of its own for the target is refused, naming the op and its line."""
    import dataclasses

    from gdsl.ir import ops
    row = ops.OPS["sqnorm"]
    monkeypatch.setitem(ops.OPS, "sqnorm", dataclasses.replace(row, emit={"numpy": row.emit["numpy"]}))
    text = "param W[2, 3]\nr = sqnorm(W)\nJ = r * 2\n"
    gdsl.compile(text)                              # the NumPy target still emits it
    with pytest.raises(gdsl.GdslError) as e:
        gdsl.compile(text, target="array-api")
    assert e.value.line == 2
    assert "cannot emit `sqnorm` (line 2): np.vdot is not a function of the array API standard" \
        in e.value.message
    assert 'targets={"array_api": ...}' in e.value.help


def test_the_command_line_refuses_it_in_one_message(tmp_path):
    """The same through `gdsl compile --target array-api`: exit 1, no traceback."""
    import subprocess
    import sys

    from helpers import ROOT
    model = tmp_path / "m.gdsl"
    model.write_text("param W[2, 3]\nr = sqnorm(W)\nJ = r * 2\n")
    driver = ("import dataclasses, sys\nfrom gdsl.ir import ops\nrow = ops.OPS['sqnorm']\n"
              "ops.OPS['sqnorm'] = dataclasses.replace(row, emit={'numpy': row.emit['numpy']})\n"
              "from gdsl.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    r = subprocess.run([sys.executable, "-c", driver, "compile", str(model), "--target",
                        "array-api"], capture_output=True, text=True, cwd=ROOT, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"{model}:2:5: error: the array-API target cannot emit `sqnorm`")


# -- JAX (skipped where JAX is not installed; it is not in the `test` extra) ------------------

def _jax():
    jax = pytest.importorskip("jax")
    if not hasattr(jax, "enable_x64"):
        pytest.skip("this JAX has no enable_x64 context")
    return jax


@pytest.mark.parametrize("path", [p for p in MODEL_FILES if "oneliner" not in p.name],
                         ids=lambda p: p.name)
def test_jax_arrays_and_jax_jit(path, rng):
    """value_and_grad on JAX arrays gives JAX arrays; the module's value_and_grad is pure, so
    jax.jit of it runs (labels and all) and agrees with the NumPy target in float64."""
    jax = _jax()
    reference = gdsl.compile_file(path)
    model = gdsl.compile_file(path, target="array-api")
    arrays, _ = model_arrays(reference, rng)
    loss0, grads0, *_ = reference.value_and_grad(**arrays)
    with jax.enable_x64(True):
        given = {k: jax.numpy.asarray(v) for k, v in arrays.items()}
        for fn in (model.value_and_grad, jax.jit(model.module.value_and_grad)):
            loss, grads, *_ = fn(**given)
            assert _kind_of(loss) == "jax" and all(_kind_of(g) == "jax" for g in grads.values())
            assert close(np.asarray(loss), loss0, 1.0) <= 0
            for k in grads0:
                assert close(np.asarray(grads[k]), grads0[k], 1.0) <= 0, k
        again = jax.jit(model.module.value_and_grad)(**given, **{k: 0.5 for k in model.consts})
        assert np.isfinite(float(again[0]))


def test_numpy_arrays_join_the_callers_library():
    """Params drawn by init_params (NumPy) with a batch of another library's: converted to
    that library; two libraries other than NumPy are one clear error."""
    model = gdsl.compile_file(MODEL_FILES[0].parent / "linear_softmax.gdsl", target="array-api")
    params = model.init_params({"C": 3, "d": 4})
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 9)), rng.integers(0, 3, size=9)
    loss, grads = model.value_and_grad(x=chunked(x, ("d", "n")), y=chunked(y, ("n",)), **params)
    assert _kind_of(loss) == "dask" and all(_kind_of(g) == "dask" for g in grads.values())
    loss0, _ = gdsl.compile_file(MODEL_FILES[0].parent / "linear_softmax.gdsl").value_and_grad(
        x=x, y=y, **params)
    assert close(to_numpy(loss), loss0, 1.0) <= 0
    with pytest.raises(gdsl.GdslError, match="arrays from two libraries: `x` is from dask, "
                                             "`y` from array_api_strict"):
        model.value_and_grad(x=chunked(x, ("d", "n")), y=strict.asarray(y), **params)


# -- golden files: what a user of the target reads --------------------------------------------

GOLDEN = MODEL_FILES[0].parent.parent / "tests" / "golden" / "array_api"
GOLDEN_MODELS = ["linear_svm", "mlp2", "oneliner"]    # fixed: every helper path, an undeclared model
UPDATE = "python3 tests/test_array_api.py --update"


def golden_source(stem: str) -> str:
    path = MODEL_FILES[0].parent / f"{stem}.gdsl"
    return gdsl.compile(path.read_text(), filename=f"models/{stem}.gdsl", target="array-api").source


@pytest.mark.parametrize("stem", GOLDEN_MODELS)
def test_emitted_code_matches_golden(stem):
    path = GOLDEN / f"{stem}.expected"
    if not path.exists():
        pytest.fail(f"no golden file {path.name}; create it with: {UPDATE}", pytrace=False)
    got, want = golden_source(stem), path.read_text(encoding="utf-8")
    if got != want:
        import difflib
        pytest.fail("the emitted array-API code differs from its golden file:\n" + "".join(
            difflib.unified_diff(want.splitlines(True), got.splitlines(True), str(path), "now"))
            + f"\nIf the change is intended: {UPDATE} (then review `git diff tests/golden`)",
            pytrace=False)


if __name__ == "__main__" and "--update" in sys.argv:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for stem in GOLDEN_MODELS:
        (GOLDEN / f"{stem}.expected").write_text(golden_source(stem), encoding="utf-8")
        print(f"wrote {GOLDEN / stem}.expected")


@pytest.mark.parametrize("lib", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("text, W, want", [
    ("param W[3]\nJ = 0.5 * sqnorm(W)", [1.0, -2.0, 3.0], [1.0, -2.0, 3.0]),    # W itself
    ("param W[3]\nJ = sum(W)", [1.0, 2.0, 3.0], [1.0, 1.0, 1.0]),               # a broadcast
    ("param W[4]\nJ = mean(W)", [1.0, 2.0, 3.0, 4.0], [0.25] * 4),
], ids=["half-sqnorm", "sum", "mean"])
def test_a_gradient_is_an_array_of_its_own(lib, text, W, want):
    """An in-place update of a gradient (g *= lr, PyTorch's g.mul_(lr)) works and leaves the
    param alone: the module returned W itself as the gradient of 0.5 ||W||², and a
    broadcast view for sum and mean."""
    xp = strict if lib == "array_api_strict" else np
    m = gdsl.compile(text, target="array_api")
    w = xp.asarray(W, dtype=xp.float64)
    _, g = m.value_and_grad(W=w)
    np.testing.assert_allclose(to_numpy(g["W"]), want)
    g["W"] *= 10.0
    np.testing.assert_allclose(to_numpy(g["W"]), 10.0 * np.array(want))
    np.testing.assert_array_equal(to_numpy(w), W)

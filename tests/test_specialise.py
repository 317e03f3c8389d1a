"""Call-time specialisation and the cost of a call (issue 17, items 1 and 2).

A model whose shapes are not all declared is compiled again on the first call with a new
signature (each array's shape and dtype), as if its shapes were declared; the one-liner then
runs the code its declared twin runs. A signature already seen is not checked again, and the
call gate runs a call with the last signature at once: neither may change what a call
computes or which mistakes it reports.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import gdsl
from gdsl import runtime

ONELINER = "z = W @ x; s = z + b; J = xent(softmax(s), y) + lam*sqnorm(W)\n"
WRT = ["W", "b"]


def twin(dims: dict[str, str]) -> str:
    """The one-liner with its free names declared (inputs, as in the one-liner)."""
    decls = [f"input {k}[{v}]" for k, v in dims.items()]
    return "\n".join(decls) + "\n" + ONELINER


def data(d=4, C=3, n=5, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(size=(C, d)).astype(dtype), "x": rng.normal(size=(d, n)).astype(dtype),
            "b": rng.normal(size=(C, 1)).astype(dtype), "y": rng.integers(0, C, n), "lam": 0.1}


def bodies(source: str) -> str:
    """The module from its first function on: what runs (the header holds the title and the
    declared shapes)."""
    return source[source.index("\ndef forward"):]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GDSL_CACHE", str(tmp_path / "cache"))


def test_the_oneliner_runs_its_declared_twins_code():
    m = gdsl.compile(ONELINER, wrt=WRT)
    a = data()
    spec = m.specialised(**a)
    assert spec is not m and spec.source != m.source
    assert "_sum_to" in m.source and "_sum_to" not in spec.source     # the generic helpers go
    # the twin declared with symbols runs the same functions ...
    symbolic = gdsl.compile(twin({"W": "C, d", "x": "d, n", "b": "C, 1", "y": "n", "lam": ""}),
                            wrt=WRT)
    assert bodies(spec.source) == bodies(symbolic.source)
    # ... and declared with the call's sizes, it is the same module but for its title
    sized = gdsl.compile(twin({"W": "3, 4", "x": "4, 5", "b": "3, 1", "y": "5", "lam": ""}),
                         wrt=WRT)
    assert spec.source.split("\n", 1)[1] == sized.source.split("\n", 1)[1]
    # and what the one-liner's call returns is what that code computes
    J, g = m.value_and_grad(**a)
    J1, g1 = symbolic.value_and_grad(**a)
    assert J == J1 and all(np.array_equal(g[k], g1[k]) for k in WRT)


def test_one_compilation_per_signature_of_shapes_and_dtypes():
    m = gdsl.compile(ONELINER, wrt=WRT)
    generic = m.module.value_and_grad
    for n in (5, 5, 7, 5, 7):
        a = data(n=n)
        J, g = m.value_and_grad(**a)
        J0, g0 = generic(**{k: np.asarray(v) for k, v in a.items()})
        assert np.isclose(J, J0, rtol=1e-14) and all(np.allclose(g[k], g0[k], rtol=1e-14)
                                                     for k in WRT)
    assert len(m._specialised) == 2
    m.value_and_grad(**data(n=5, dtype=np.float32))
    assert len(m._specialised) == 3           # the dtype is part of the signature
    assert m.specialised(**data(n=7)) is m.specialised(**data(n=7, seed=1))
    m.forward(**data(n=7))
    assert len(m._specialised) == 3           # forward runs the same specialisation


@pytest.mark.parametrize("target", ["numpy", "numba"])
@pytest.mark.parametrize("lam", [0.1, 1], ids=["float", "int"])
def test_a_python_number_keeps_a_float32_call_float32(target, lam):
    """lam=0.1 is weak, as in NumPy's arithmetic and JAX: the one-liner (lam an input) returns
    what its twin with lam a const returns, float32 and the same numbers; float64 arrays
    stay float64."""
    if target == "numba":
        pytest.importorskip("numba")
    m = gdsl.compile(ONELINER, wrt=WRT, target=target)
    const = gdsl.compile("const lam = 0.5\n" + twin({"W": "C, d", "x": "d, n", "b": "C, 1",
                                                      "y": "n"}), wrt=WRT, target=target)
    for dtype in (np.float32, np.float64, np.float32):
        a = {**data(dtype=dtype), "lam": lam}
        for _ in range(2):                    # the first call with a signature, and a later one
            J, g = m.value_and_grad(**a)
            J1, g1 = const.value_and_grad(**a)
            assert {v.dtype for v in g.values()} == {np.dtype(dtype)}
            assert J == J1 and all(np.array_equal(g[k], g1[k]) for k in WRT)
            assert type(J) is type(J1) is np.dtype(dtype).type
            assert np.asarray(m.forward(**a)["J"]).dtype == dtype
        assert np.asarray(m.specialised(**a).forward(**a)["J"]).dtype == dtype


def test_a_declared_model_is_its_own_specialisation():
    m = gdsl.compile(twin({"W": "C, d", "x": "d, n", "b": "C, 1", "y": "n", "lam": ""}), wrt=WRT)
    assert m.specialised(**data()) is m
    assert not m._specialised


def test_a_signature_is_checked_once(monkeypatch):
    m = gdsl.compile(ONELINER, wrt=WRT)
    a = data()
    first = m.value_and_grad(**a)
    checks = []
    real = runtime.CompiledModel._prepare
    monkeypatch.setattr(runtime.CompiledModel, "_prepare",
                        lambda self, *args: checks.append(1) or real(self, *args))
    again = m.value_and_grad(**a)
    assert not checks
    assert first[0] == again[0]
    m.value_and_grad(**data(n=6))             # a new signature is checked
    assert len(checks) == 1


def test_mistakes_are_still_reported_after_a_good_call():
    m = gdsl.compile(ONELINER, wrt=WRT)
    a = data()
    m.value_and_grad(**a)
    m.value_and_grad(**a)
    with pytest.raises(gdsl.GdslShapeError, match="inner dimensions"):
        m.value_and_grad(**{**a, "x": np.ones((9, 5))})
    with pytest.raises(gdsl.GdslValueError, match="unknown array `q`"):
        m.value_and_grad(**a, q=np.ones(2))
    with pytest.raises(gdsl.GdslValueError, match="missing array `x`"):
        m.value_and_grad(**{k: v for k, v in a.items() if k != "x"})
    with pytest.raises(gdsl.GdslValueError, match="string dtype"):
        m.value_and_grad(**{**a, "x": np.full((4, 5), "a")})
    with pytest.raises(gdsl.GdslRuntimeError, match="labels must lie in 0..2"):
        m.value_and_grad(**{**a, "y": np.array([0, 1, 2, 0, 7])})
    declared = gdsl.compile_file("models/linear_softmax.gdsl")
    p = declared.init_params({"C": 3, "d": 4})
    good = {"x": a["x"], "y": a["y"], **p}
    declared.value_and_grad(**good)
    declared.value_and_grad(**good)
    with pytest.raises(gdsl.GdslShapeError, match="declared"):
        declared.value_and_grad(**{**good, "b": np.zeros(3)})


def test_conversions_are_the_same_on_every_call():
    """Integers become float64, lists arrays, a const a Python number (NumPy's weak scalar,
    so that float32 stays float32): the first call with a signature and the ones after it
    convert alike."""
    m = gdsl.compile_file("models/linear_softmax.gdsl")
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 3, size=(4, 6))
    p32 = {k: v.astype(np.float32) for k, v in m.init_params({"C": 3, "d": 4}).items()}
    runs = [m.value_and_grad(x=x.astype(np.float32), y=np.arange(6) % 3, lam=np.float32(0.5),
                             **p32) for _ in range(3)]
    assert all(g.dtype == np.float32 for J, grads in runs for g in grads.values())
    assert all(np.array_equal(runs[0][1]["W"], r[1]["W"]) for r in runs)
    ints = [m.value_and_grad(x=x, y=[0, 1, 2, 0, 1, 2], lam=1, **p32) for _ in range(3)]
    assert all(r[1]["W"].dtype == np.float64 for r in ints)       # x became float64
    assert all(np.array_equal(ints[0][1]["W"], r[1]["W"]) for r in ints)


def test_a_subclass_or_other_byte_order_never_takes_a_shortcut():
    """np.matrix multiplies as matrices: it must reach the code as a plain array on every
    call, even after plain arrays of the same shape and dtype made the signature known."""
    m = gdsl.compile("J = sum(x * w)\n", wrt=["w"])
    x = np.arange(4.0).reshape(2, 2)
    w = np.ones((2, 2))
    for _ in range(2):
        assert m.value_and_grad(x=x, w=w)[0] == 6.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        for _ in range(2):
            J, g = m.value_and_grad(x=np.matrix(x), w=np.matrix(w))
            assert J == 6.0 and type(g["w"]) is np.ndarray
    swapped = x.astype(">f8")
    for _ in range(2):
        assert m.value_and_grad(x=swapped, w=w)[0] == 6.0


def test_the_call_gate_takes_the_models_names():
    m = gdsl.compile_file("models/linear_softmax.gdsl")
    params = list(inspect.signature(m.value_and_grad).parameters)
    assert params[:5] == ["x", "y", "W", "b", "lam"]
    assert inspect.signature(m.value_and_grad).parameters["lam"].default == 0.01
    with pytest.raises(TypeError):
        m.value_and_grad(np.ones(3))          # keywords only, as before
    # names Python cannot take as parameters: no gate, the method serves
    odd = gdsl.compile("J = sum(lambda * lambda)\n")
    assert odd.value_and_grad(**{"lambda": np.ones(3)})[0] == 3.0


def test_the_last_signature_runs_at_once_and_others_are_checked():
    m = gdsl.compile_file("models/linear_softmax.gdsl")
    p = m.init_params({"C": 3, "d": 4})
    a = data()
    small = {"x": a["x"], "y": a["y"], **p}
    big = {"x": np.ones((4, 50)), "y": np.zeros(50, int), **p}
    for arrays in (small, small, big, small, big, big):
        J, g = m.value_and_grad(**arrays)
        J0, g0 = m.module.value_and_grad(**arrays)
        assert J == J0 and np.array_equal(g["W"], g0["W"])
    assert m._hot[1][0] is not None           # the gate knows the last signature
    with pytest.raises(gdsl.GdslShapeError):
        m.value_and_grad(**{**big, "x": np.ones((5, 50))})


def test_specialisations_are_bounded():
    m = gdsl.compile(ONELINER, wrt=WRT)
    for n in range(1, runtime.MAX_SPECIALISED + 5):
        m.value_and_grad(**data(n=n))
    assert len(m._specialised) == runtime.MAX_SPECIALISED
    J, _ = m.value_and_grad(**data(n=1))      # the evicted one is compiled again
    assert np.isfinite(J)


def test_a_model_given_its_ir_is_not_specialised():
    """gdsl check builds one op's model by hand (no text to compile again): it keeps running
    its generic code."""
    from gdsl.tools.check import local_errors
    errs = local_errors("tanh", {}, [np.linspace(-1, 1, 6).reshape(2, 3)],
                        np.random.default_rng(0))
    assert errs and max(errs.values()) < 1e-6

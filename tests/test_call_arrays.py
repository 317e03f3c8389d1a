"""Arrays passed to CompiledModel.forward / value_and_grad: every bad one is a GdslError that
names it (object, string, complex, ragged, missing, unknown, wrong rank, wrong dims, labels out
of range ...), never another exception; harmless variants (lists, bool, float32, integer
labels) just work."""

from __future__ import annotations

import numpy as np
import pytest
from fuzzkit import MODELS, record

import gdsl

C, D, N = 3, 4, 5


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GDSL_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield gdsl.compile((MODELS[0].parent / "linear_softmax.gdsl").read_text(), filename="m.gdsl")


def good():
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(D, N)), "y": np.eye(C)[:, [0, 1, 2, 0, 1]],
                "W": rng.normal(size=(C, D)), "b": np.zeros((C, 1))}


class Weird:
    def __array__(self, *args, **kwargs):
        raise RuntimeError("no array here")


DROP = object()
BAD = [
    # (what, name, value, words in the message)
    ("object dtype", "x", np.array([[1, "a"]] * D, dtype=object), "object dtype"),
    ("strings", "x", np.full((D, N), "a"), "string dtype"),
    ("bytes", "x", np.full((D, N), b"a"), "bytes dtype"),
    ("complex", "x", np.ones((D, N)) + 1j, "complex dtype"),
    ("datetimes", "x", np.full((D, N), np.datetime64("2020-01-01")), "datetime"),
    ("structured", "W", np.zeros((C, D), dtype=[("a", "f8")]), "structured"),
    ("ragged list", "x", [[1.0, 2.0], [3.0]], "not an array of numbers"),
    ("failing __array__", "x", Weird(), "not an array of numbers"),
    ("None", "x", None, "object dtype"),
    ("a string", "W", "weights.npy", "string dtype"),
    ("huge int const", "lam", 10**30, "object dtype"),
    ("missing", "x", DROP, "missing array `x`"),
    ("unknown", "z", np.ones(3), "unknown array `z`"),
    ("rank 3", "x", np.ones((D, N, 1)), "declared [d, n]"),
    ("rank 0", "W", np.array(1.0), "declared [C, d]"),
    ("rank 1 param", "b", np.zeros(C), "declared [C, 1]"),
    ("fixed dim", "b", np.zeros((C, 2)), "axis 1 must be 1"),
    ("d against x", "x", np.ones((7, N)), "d = 7"),
    ("n against x", "y", np.eye(C)[:, [0, 1, 2]], "n = 5"),
    ("const not scalar", "lam", np.ones(2), "must be a scalar"),
    ("labels too big", "y", np.array([0, 1, 5, 0, 1]), "labels must lie in 0..2"),
    ("labels negative", "y", np.array([0, -1, 2, 0, 1]), "labels must lie in 0..2"),
    ("float labels [n]", "y", np.array([0.0, 1.0, 2.0, 0.0, 1.0]), "`y`"),
]


@pytest.mark.parametrize("what, name, value, words", BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("call", ["forward", "value_and_grad"])
def test_bad_arrays(model, call, what, name, value, words):
    arrays = good()
    if value is DROP:
        del arrays[name]
    else:
        arrays[name] = value
    with pytest.raises(gdsl.GdslError) as info:
        getattr(model, call)(**arrays)
    e = info.value
    assert words in e.message, e.render()
    assert f"`{name}`" in e.message or name in e.render()
    assert e.render().startswith("m.gdsl")


def test_count(request):
    record(request.config, "bad call-time arrays tried (x forward, value_and_grad)", 2 * len(BAD))


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")      # np.asmatrix
@pytest.mark.parametrize("what, name, value", [
    ("nested lists", "x", good()["x"].tolist()),
    ("bool", "x", np.ones((D, N), bool)),
    ("float32", "x", good()["x"].astype(np.float32)),
    ("integer labels", "y", np.array([0, 1, 2, 0, 1])),
    ("integer labels as a row", "y", np.array([[0, 1, 2, 0, 1]])),
    ("ints", "x", np.arange(D * N).reshape(D, N)),
    ("a matrix", "W", np.asmatrix(good()["W"])),
    ("read-only", "W", np.broadcast_to(1.0, (C, D))),
    ("Fortran order", "x", np.asfortranarray(good()["x"])),
    ("const override", "lam", 0.5),
])
def test_harmless_variants_work(model, what, name, value):
    arrays = good()
    arrays[name] = value
    loss, grads = model.value_and_grad(**arrays)
    out = model.forward(**arrays)
    assert np.isfinite(loss) and np.isclose(out[model.loss], loss)
    assert all(np.shape(g) == np.shape(arrays[k]) and np.all(np.isfinite(g)) for k, g in grads.items())


def test_arrays_are_not_modified(model):
    arrays = good()
    before = {k: np.array(v, copy=True) for k, v in arrays.items()}
    model.value_and_grad(**arrays)
    for k, v in arrays.items():
        np.testing.assert_array_equal(v, before[k])


def test_a_model_input_named_self(tmp_path, monkeypatch):
    monkeypatch.setenv("GDSL_CACHE", str(tmp_path))
    m = gdsl.compile("input self[n]\nparam W[n]\nJ = sum(W * self)\nloss J")
    loss, grads = m.value_and_grad(self=np.ones(2), W=np.full(2, 3.0))
    assert loss == 6.0 and np.array_equal(grads["W"], np.ones(2))

"""gdsl check: every model passes; a deliberately wrong backward rule fails and is located."""

import glob
import os

import numpy as np
import pytest

from gdsl.cli import main
from gdsl.ir import ops
from gdsl.ir.ops import defop, np_, same
from gdsl.tools.check import check, kink_distance, local_errors, rel_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = sorted(glob.glob(os.path.join(ROOT, "models", "*.gdsl")))

BAD_MODEL = """input x[d, n]
input y[C, n]
param W[C, d] ~ normal(0, 0.1)
param b[C, 1] ~ zeros
z = W @ x
s = badsq(z) + b
J = xent(softmax(s), y)
loss J
"""


@pytest.fixture
def bad_op():
    # d/dx x² is 2x; this rule says x
    defop("badsq", 1, same, lambda a, at, s: np_("square", a[0]), lambda g, ans, x, **at: g * x)
    yield "badsq"
    del ops.OPS["badsq"]


def test_models_exist():
    assert len(MODELS) >= 6


@pytest.mark.parametrize("path", MODELS, ids=os.path.basename)
def test_every_model_passes(path):
    r = check(path)
    assert r.ok, [(e.name, e.max_rel_error) for e in r.errors]
    assert r.errors and all(e.max_rel_error < 1e-6 for e in r.errors)
    assert r.culprit is None


@pytest.mark.parametrize("path", MODELS, ids=os.path.basename)
def test_cli_check_passes(path, capsys):
    assert main(["check", path]) == 0
    out = capsys.readouterr().out
    assert "passed" in out and "max rel error" in out


def test_wrong_vjp_fails_and_is_located(bad_op, tmp_path, capsys):
    r = check(BAD_MODEL)
    assert not r.ok
    assert {e.name for e in r.errors if not e.ok(r.tol)} == {"W"}
    assert r.culprit is not None and r.culprit.op == "badsq" and r.culprit.line == 6
    assert r.culprit.text == "s = badsq(z) + b"
    f = tmp_path / "bad.gdsl"
    f.write_text(BAD_MODEL)
    assert main(["check", str(f)]) == 1
    err = capsys.readouterr().err
    assert "gradient check failed" in err and "badsq" in err and "line 6" in err
    assert "Traceback" not in err


def test_wrong_vjp_later_in_graph_names_that_node(bad_op):
    text = BAD_MODEL.replace("s = badsq(z) + b", "s = z + b").replace(
        "J = xent(softmax(s), y)", "t = badsq(s)\nJ = xent(softmax(t), y)")
    r = check(text)
    assert not r.ok and r.culprit.op == "badsq" and r.culprit.text == "t = badsq(s)"


def test_local_rules_of_real_ops_agree():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4))
    y = rng.normal(size=(3, 1))
    for op, args in [("mul", [x, y]), ("div", [x, y + 3]), ("tanh", [x]), ("sigmoid", [x]),
                     ("softmax", [x]), ("exp", [x]), ("sqnorm", [x])]:
        attrs = {"axis": 0} if op == "softmax" else {}
        errs = local_errors(op, attrs, args, rng)
        assert errs and max(errs.values()) < 1e-6, (op, errs)


def test_kinks_are_avoided():
    assert kink_distance("relu", {}, [np.array([0.5, -0.001])]) == pytest.approx(0.001)
    assert kink_distance("maximum", {}, [np.array([1.0]), np.array([1.5])]) == pytest.approx(0.5)
    assert kink_distance("max", {"axis": 0}, [np.array([[1.0], [1.25]])]) == pytest.approx(0.25)
    assert kink_distance("exp", {}, [np.zeros(3)]) == np.inf
    # a relu/max/abs model: checked away from kinks, on several seeds
    text = """input x[d, n]
input y[C, n]
param W[C, d]
param V[C, d]
s = maximum(W @ x, V @ x) + abs(W @ x) + relu(V @ x)
J = svm(s, y) + max(sum(s, axis=0))
loss J
"""
    for seed in range(5):
        r = check(text, seed=seed)
        assert r.ok, (seed, [(e.name, e.max_rel_error) for e in r.errors])


def test_rel_error_formula():
    assert rel_error(1.0, 1.0, 1e-8) == 0
    assert rel_error(1.0, 3.0, 1e-8) == pytest.approx(0.5)
    assert rel_error(0.0, 0.0, 1e-8) == 0


def test_tol_and_set_options(capsys):
    path = os.path.join(ROOT, "models", "mlp2.gdsl")
    assert main(["check", path, "--set", "m=4", "--set", "n=7", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "m=4" in out and "n=7" in out and "W1     [4, 3]" in out
    assert main(["check", path, "--set", "nope=3"]) == 1
    assert "no const or dimension `nope`" in capsys.readouterr().err


@pytest.mark.parametrize("setting", [{"tol": -1}, {"tol": 0}, {"eps": float("nan")},
                                     {"h": float("inf")}, {"tol": "1e-6"}, {"h": True}])
def test_check_refuses_a_tolerance_or_step_that_is_not_a_positive_number(setting):
    """As `gdsl check --tol -1` is refused: tol=-1 would fail every model, h=inf check
    nothing."""
    from gdsl.errors import GdslValueError
    with pytest.raises(GdslValueError, match="takes a positive number"):
        check("input x[3]\nJ = sum(x * x)", **setting)

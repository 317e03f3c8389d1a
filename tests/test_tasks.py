"""gdsl run trains what users bring (issue 13): regression and binary classification from
tables and .npz files, the label input found (or asked for), the metrics that fit the task
(checked against scikit-learn's), scalar params and named sizes, the stable rewrites of
log(sigmoid), compile-time warnings, and NumPy's warnings reported at the model's line."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from helpers import GDSL, ROOT, run_cli

import gdsl
from gdsl.errors import GdslDataError, GdslError, GdslNameError, GdslTypeError, GdslValueError
from gdsl.lang.fmt import format_text
from gdsl.pipeline import run_pipeline
from gdsl.runtime import model_warnings
from gdsl.tools import data as D
from gdsl.tools.train import auc, evaluate, metric_values, prepare, r2, rmse, train

LINREG = ROOT / "models" / "linear_regression.gdsl"
LOGREG = ROOT / "models" / "logistic_regression.gdsl"

# the issue's models, written from the README alone
HAND_LINREG = """input x[d, n]
input y[1, n]
param w[1, d]
param b
p = w @ x + b
J = mean(square(p - y))
"""
HAND_BCE = """input x[d, n]
input y[n]
param w[d]
param b
p = sigmoid(w @ x + b)
J = -mean(y * log(p) + (1 - y) * log(1 - p))
"""
MSE = "input x[d, n]\ninput y[n]\nparam w[d]\nparam b\np = w @ x + b\nJ = mse(p, y)\n"
BCE = "input x[d, n]\ninput y[n]\nparam w[d]\nparam b\ns = w @ x + b\nJ = bce(s, y)\n"


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """The built-in diabetes and breast-cancer tables written as CSV (with a header, the
    label last; the diagnosis as words) and as .npz (examples as rows)."""
    d = tmp_path_factory.mktemp("tables")
    diabetes, cancer = D.diabetes(), D.breast_cancer()
    header = ",".join(f"f{j}" for j in range(10)) + ",target"
    np.savetxt(d / "diabetes.csv", np.c_[diabetes.X, diabetes.y], delimiter=",", header=header,
               comments="", fmt="%.10g")
    words = np.array(["malignant", "benign"])[cancer.y]
    (d / "cancer.csv").write_text("\n".join(
        ",".join(f"{v:.10g}" for v in row) + f",{w}" for row, w in zip(cancer.X, words)))
    np.savez(d / "diabetes.npz", x=diabetes.X, y=diabetes.y)
    np.savez(d / "cancer.npz", x=cancer.X, y=cancer.y)
    return d


# -- the built-in tables ---------------------------------------------------------------------

def test_builtin_tables_are_scikit_learns():
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_diabetes(scaled=False)
    t = D.diabetes()
    assert t.X.tobytes() == d.data.astype(np.float64).tobytes()
    assert t.y.tobytes() == d.target.astype(np.float64).tobytes()
    b = datasets.load_breast_cancer()
    t = D.breast_cancer()
    assert t.X.tobytes() == b.data.tobytes() and (t.y == b.target).all()
    assert t.y.dtype == np.int64 and t.classes == list(b.target_names)


# -- the new ops: values at extremes (their gradients are in test_ops_grad.py) ------------------

def test_bce_is_stable_for_any_logit():
    m = gdsl.compile("input s[n]\ninput y[n]\nJ = bce(s, y)", wrt=["s"])
    s = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    J, g = m.value_and_grad(s=s, y=y)
    want = np.array([1000.0, 0.0, np.log(2), 0.0, 1000.0])
    want[1], want[3] = np.log1p(np.exp(-40.0)), np.log1p(np.exp(-40.0))
    np.testing.assert_allclose(J, want.mean(), rtol=1e-15)
    np.testing.assert_allclose(g["s"], (np.array([0.0, 0.0, 0.5, 1.0, 1.0]) - y) / 5, atol=1e-17)


def test_losses_of_one_and_several_targets_per_example(rng):
    p, y = rng.normal(size=(2, 6)), rng.normal(size=(2, 6))
    for op, want in (("mse", np.mean((p - y) ** 2)), ("mae", np.mean(np.abs(p - y)))):
        m = gdsl.compile(f"input p[k, n]\ninput y[k, n]\nJ = {op}(p, y)", wrt=["p"])
        np.testing.assert_allclose(m.forward(p=p, y=y)["J"], want)
    m = gdsl.compile("input p[1, n]\ninput y[n]\nJ = huber(p, y)", wrt=["p"])
    r = p[:1] - y[0]
    np.testing.assert_allclose(m.forward(p=p[:1], y=y[0])["J"], np.mean(
        np.where(np.abs(r) <= 1, 0.5 * r * r, np.abs(r) - 0.5)))


@pytest.mark.parametrize("text, message", [
    ("input p[n]\ninput y[k, n]\nJ = mse(p, y)", r"targets of shape \[k, n\] do not fit predictions"),
    ("input p[2, n]\ninput y[3, n]\nJ = mae(p, y)", "predictions and targets: 2 and 3 differ"),
    ("input p[n]\ninput y[n]\nJ = huber(p, y, delta=-1)", "`delta=` of `huber` takes a positive"),
    ("input p[n]\ninput y[n]\nJ = huber(p, y, delta=x)", "`delta=` of `huber` takes a positive"),
])
def test_loss_mistakes_are_one_message(text, message):
    with pytest.raises(GdslError, match=message):
        gdsl.compile(text)


def test_kinks_of_mae_and_huber_are_declared():
    from gdsl.ir.ops import OPS
    p, y = np.array([0.0, 2.0]), np.array([0.5, 0.0])
    assert OPS["mae"].kink([p, y], {}) == pytest.approx(0.5)
    assert OPS["huber"].kink([p, y], {"delta": 1.0}) == pytest.approx(0.5)
    assert OPS["bce"].kink is None and OPS["mse"].kink is None
    r = gdsl.check(gdsl.compile("input p[n]\ninput y[n]\nJ = mae(p, y) + huber(p, y)",
                                wrt=["p"]))
    assert r.ok


# -- the stable rewrites and compile-time warnings --------------------------------------------

def test_log_of_sigmoid_is_rewritten_and_reported(tmp_path):
    c = run_pipeline(HAND_BCE, filename="bce.gdsl")
    assert c.model.rewrites[:2] == ["6:15: log(sigmoid(s)) -> -softplus(-s)",
                                    "6:34: log(1 - sigmoid(s)) -> -softplus(s)"]
    assert c.model.warnings == []           # nothing left that can be log(0)
    (tmp_path / "bce.gdsl").write_text(HAND_BCE)
    r = subprocess.run([*GDSL, "compile", "--rewrites", "-o", "/dev/null", "bce.gdsl"],
                       cwd=tmp_path, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert "bce.gdsl:6:15: log(sigmoid(s)) -> -softplus(-s)" in r.stderr
    assert "bce.gdsl:6:34: log(1 - sigmoid(s)) -> -softplus(s)" in r.stderr


def test_the_rewrite_computes_the_same_and_stays_finite(rng):
    text = "input s[n]\ninput y[n]\nJ = -mean(y * log(sigmoid(s)) + (1 - y) * log(1 - sigmoid(s)))"
    fast, slow = (gdsl.compile(text, wrt=["s"], optimize=o) for o in (True, False))
    s, y = rng.normal(size=7) * 3, rng.integers(0, 2, 7).astype(float)
    (jf, gf), (js, gs) = fast.value_and_grad(s=s, y=y), slow.value_and_grad(s=s, y=y)
    np.testing.assert_allclose(jf, js, rtol=1e-12)
    np.testing.assert_allclose(gf["s"], gs["s"], rtol=1e-10, atol=1e-15)
    big = np.array([-800.0, -50.0, 50.0, 800.0])
    J, g = fast.value_and_grad(s=big, y=np.array([1.0, 1.0, 0.0, 0.0]))
    np.testing.assert_allclose(J, np.mean([800.0, 50.0, 50.0, 800.0]), rtol=1e-12)
    np.testing.assert_allclose(g["s"], [-0.25, -0.25, 0.25, 0.25], rtol=1e-12)
    with np.errstate(all="ignore"):         # without the rewrite: log(0) = -inf, and NaN
        assert not np.isfinite(slow.value_and_grad(s=big, y=np.array([1.0, 1.0, 0.0, 0.0]))[0])


@pytest.mark.parametrize("text, where, what", [
    (HAND_BCE, (6, 15), "log of `p`, a sigmoid, which can be exactly 0"),
    (HAND_BCE, (6, 34), "log of `1 - p`, which can be exactly 0"),
    ("input x[3]\nparam w[3]\nh = relu(w)\nq = h * x\nJ = sum(log(q))", (5, 9),
     "log of `q`, which can be exactly 0 (where `h`, a relu, is 0)"),
    ("input x[3]\nparam w[3]\nJ = sum(x / (w - x))", (3, 9),
     "division by `(w - x)`, which can be exactly 0"),
])
def test_values_that_can_reach_zero_are_warned_about(text, where, what):
    c = run_pipeline(text, optimize=False)      # -O0: no rewrite
    found = [(w.span.line, w.span.col, w.message) for w in c.model.warnings]
    assert (*where, f"{what}: the result can be infinite") in found, found


def test_not_suspected_of_zero():
    for text in ["input x[3]\nparam w[3]\nJ = sum(log(sigmoid(w) + 1e-12))",
                 "input x[3]\nparam w[3]\nJ = sum(log(x * w))",          # data: nothing known
                 "input s[3, 2]\nJ = sum(log(sum(exp(s), axis=0)))"]:    # a sum of exps
        assert run_pipeline(text, optimize=False).model.warnings == [], text


# -- the language: scalar params, named sizes, metric ---------------------------------------------

def test_param_without_brackets_is_a_scalar(tmp_path):
    m = gdsl.compile(MSE)
    assert m.params == {"w": ("d",), "b": ()}
    assert m.init_params({"d": 3})["b"].shape == ()
    r = train(MSE, {"x": np.ones((3, 20)), "y": np.full(20, 2.0)}, epochs=30, lr=0.1,
              val_fraction=0)
    assert r.params["b"].shape == () and r.final["train_cost"] < 1e-3


def test_dim_declares_a_default_size(tmp_path):
    text = ("dim m = 7\ninput x[d, n]\ninput y[n]\nparam W[m, d] ~ he\nparam v[m]\nparam b\n"
            "p = v @ relu(W @ x) + b\nJ = mse(p, y)\n")
    data = {"x": np.ones((3, 30)), "y": np.zeros(30)}
    assert train(text, data, epochs=1).params["W"].shape == (7, 3)
    assert train(text, data, epochs=1, consts={"m": 5}).params["W"].shape == (5, 3)
    assert train(text + "train hidden=9\n", data, epochs=1).params["W"].shape == (7, 3)
    # `hidden` (deprecated) still sizes what nothing else does
    assert train(text.replace("dim m = 7\n", "") + "train hidden=9\n", data,
                 epochs=1).params["W"].shape == (9, 3)
    assert gdsl.compile(text).train_options == {"dim m": 7}


@pytest.mark.parametrize("text, error, message", [
    ("dim m = 2.5\ninput x[m, n]\nJ = sum(x)", GdslTypeError, "must be a positive whole number"),
    ("dim m = 0\ninput x[m, n]\nJ = sum(x)", GdslTypeError, "must be a positive whole number"),
    ("dim m = 3\ndim m = 4\ninput x[m, n]\nJ = sum(x)", GdslNameError, "already declared"),
    ("dim hiden = 3\ninput x[hidden, n]\nJ = sum(x)", GdslNameError,
     "no input or param has it"),
    ("dim = 3\nJ = sum(x)", GdslError, "`dim` is a keyword"),
    ("input metric[3]\nJ = sum(metric)", GdslError, "`metric` is a keyword"),
    ("input x[n]\nJ = sum(x)\nmetric acc", GdslNameError, "unknown metric `acc`"),
    ("input x[n]\nJ = sum(x)\nmetric rmse\nmetric r2", GdslNameError, "named twice"),
    ("input x[n]\nJ = sum(x)\nmetric rmse, rmsd", GdslNameError, "unknown metric `rmsd`"),
    ("input x[n]\nJ = sum(x)\ntrain label=z", GdslNameError, "no input `z`"),
])
def test_declaration_mistakes(text, error, message):
    with pytest.raises(error, match=message):
        gdsl.compile(text)


def test_dim_is_still_a_keyword_argument_name_in_a_call():
    with pytest.raises(GdslTypeError, match="`softmax` has no keyword `dim`") as e:
        gdsl.compile("input x[C, n]\np = softmax(x, dim=0)\nJ = sum(p)")
    assert (e.value.line, e.value.column) == (2, 16)


def test_fmt_formats_the_new_statements():
    text = "dim m=100\nmetric rmse,r2\ninput x[d,n]\nparam b\np=softmax(x,dim=0)\n"
    out = format_text(text)
    assert out == "dim m = 100\nmetric rmse, r2\ninput x[d, n]\nparam b\np = softmax(x, dim=0)\n"
    assert format_text(out) == out


# -- which input takes the labels ---------------------------------------------------------------

@pytest.mark.parametrize("text, target", [
    (MSE, "y"),                                                 # the loss says
    (HAND_LINREG, "y"),                                         # [1, n] beside [d, n]
    ("input x[d, n]\ninput t[k, n]\nparam W[k, d]\nJ = sum(square(W @ x - t))", "t"),  # named
    ("input a[d, n]\ninput y[d, n]\nparam w[d]\nJ = mean(square(w @ a - w @ y))", "y"),
])
def test_the_target_input_is_found(text, target):
    assert prepare(text).target == target


def test_an_ambiguous_target_is_one_message_and_label_settles_it(tables):
    text = "input a[d, n]\ninput z[d, n]\nparam w[d]\nJ = mean(square(w @ a - w @ z))\n"
    with pytest.raises(GdslValueError, match="which: `a` or `z`") as e:
        train(text, str(tables / "diabetes.csv"), epochs=1)
    assert "--label a or --label z" in e.value.help
    # named, it fits the table's shapes or says why not
    with pytest.raises(GdslDataError, match="array `z` of the training data gives d = 1"):
        train(text, str(tables / "diabetes.csv"), epochs=1, label="z", standardize=True)
    model = tables / "amb.gdsl"
    model.write_text(text)
    r = run_cli("run", str(model), "--data", str(tables / "diabetes.csv"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.count("error:") == 1 and "--label a or --label z" in r.stderr
    r = run_cli("run", str(model), "--label", "nope", "--data", str(tables / "diabetes.csv"))
    assert r.returncode == 1 and "--label nope: the model has no input `nope`" in r.stderr


def test_label_names_the_input_and_must_agree_with_the_loss(tables):
    text = ("input a[d, n]\ninput q[n]\nparam w[d]\nparam b\np = w @ a + b\n"
            "J = mean(square(p - q)) + 0 * mean(a)\n")
    r = train(text, str(tables / "diabetes.csv"), label="q", epochs=5, standardize=True)
    assert r.final["val_rmse"] is not None
    with pytest.raises(GdslValueError, match="the model's loss `mse` takes `y`"):
        train(MSE, str(tables / "diabetes.csv"), label="x", epochs=1)
    r = train(text + "train label=q\n", str(tables / "diabetes.csv"), epochs=1,
              standardize=True)
    assert r.metrics == ("rmse", "mae", "r2")


def test_several_target_columns(tmp_path, rng):
    X = rng.normal(size=(200, 3))
    Y = X @ rng.normal(size=(3, 2)) + 0.01 * rng.normal(size=(200, 2))
    f = tmp_path / "two.csv"
    np.savetxt(f, np.c_[X[:, :1], Y[:, 0], X[:, 1:], Y[:, 1]], delimiter=",",
               header="a,u,b,c,v", comments="")
    text = "input x[d, n]\ninput y[k, n]\nparam W[k, d]\np = W @ x\nJ = mse(p, y)\n"
    r = train(text, str(f), label_column=["u", "v"], epochs=60, lr=0.1, batch_size=20)
    assert r.params["W"].shape == (2, 3) and r.final["val_r2"] > 0.99
    with pytest.raises(GdslDataError, match="declared with 1 target row"):
        train(text.replace("y[k, n]", "y[1, n]").replace("W[k, d]", "W[1, d]"), str(f),
              label_column=["u", "v"], epochs=1)
    (tmp_path / "m.gdsl").write_text(text)
    r = run_cli("run", str(tmp_path / "m.gdsl"), "--data", str(f), "--label-column", "u",
                "--label-column", "v", "--epochs", "60", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["val_r2"] > 0.99


def test_bce_targets_must_lie_in_0_1(rng):
    x = rng.normal(size=(2, 30))
    with pytest.raises(GdslDataError, match=r"range over 1\.\.2, but `bce` takes targets in 0\.\.1"):
        train(BCE, {"x": x, "y": rng.integers(1, 3, 30)}, epochs=1)


# -- training end to end ---------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "npz"])
def test_regression_from_a_table(tables, fmt):
    r = train(MSE, str(tables / f"diabetes.{fmt}"), standardize=True, epochs=40, lr=0.1,
              decay=0.95, batch_size=32)
    h = r.history
    assert h[-1]["train_cost"] < h[0]["train_cost"]
    assert r.metrics == ("rmse", "mae", "r2") and h[-1]["train_accuracy"] is None
    assert h[-1]["val_r2"] > 0.4 and 50 < h[-1]["val_rmse"] < 62
    assert h[-1]["val_loss"] == pytest.approx(h[-1]["val_rmse"] ** 2)


@pytest.mark.parametrize("fmt", ["csv", "npz"])
def test_the_issues_regression_model_trains_from_a_table(tables, fmt):
    r = train(HAND_LINREG, str(tables / f"diabetes.{fmt}"), standardize=True, epochs=40,
              lr=0.1, decay=0.95, batch_size=32)
    assert r.params["w"].shape == (1, 10) and r.params["b"].shape == ()
    assert r.metrics == ("rmse", "mae", "r2") and r.final["val_r2"] > 0.4


@pytest.mark.parametrize("fmt", ["csv", "npz"])
def test_binary_classification_from_a_table(tables, fmt):
    r = train(BCE, str(tables / f"cancer.{fmt}"), standardize=True, epochs=30, lr=0.1,
              batch_size=32)
    assert r.metrics == ("accuracy", "auc")
    assert r.final["val_accuracy"] > 0.95 and r.final["val_auc"] > 0.98


@pytest.mark.parametrize("fmt", ["csv", "npz"])
def test_the_hand_written_bce_trains_without_nan(tables, fmt):
    """The issue's model, lr 0.5 for 50 epochs on standardised breast-cancer data: NaN at
    epoch 11 before the rewrite of log(sigmoid)."""
    out = HAND_BCE + "output p\n"
    r = train(out, str(tables / f"cancer.{fmt}"), standardize=True, lr=0.5, epochs=50)
    costs = [h["train_cost"] for h in r.history]
    assert all(np.isfinite(costs)) and costs[-1] < 0.1
    assert r.metrics == ("accuracy", "auc") and r.final["val_accuracy"] > 0.95


def test_the_shipped_models_train_out_of_the_box(capsys):
    r = run_cli("run", str(LINREG), "--json")
    assert r.returncode == 0, r.stderr
    last = json.loads(r.stdout.splitlines()[-1])
    assert {"train_rmse", "train_mae", "train_r2", "val_rmse", "val_mae", "val_r2"} <= set(last)
    assert last["val_r2"] > 0.4 and last["val_accuracy"] is None
    r = run_cli("run", str(LOGREG), "--epochs", "50")
    assert r.returncode == 0, r.stderr
    assert "train acc" in r.stdout and " auc " in r.stdout and "breast_cancer" in r.stdout
    final = r.stdout.splitlines()[-1]
    assert final.startswith("final: train acc") and "; val acc" in final and "auc" in final


def test_json_keys_keep_their_meaning_and_new_ones_sit_beside_them(tables):
    r = run_cli("run", str(LOGREG), "--epochs", "2", "--json")
    keys = list(json.loads(r.stdout.splitlines()[0]))
    assert keys == ["epoch", "train_loss", "train_cost", "train_accuracy", "train_auc",
                    "val_loss", "val_cost", "val_accuracy", "val_auc", "lr", "seconds"]
    r = run_cli("run", str(ROOT / "models" / "linear_softmax.gdsl"), "--epochs", "1", "--json")
    keys = list(json.loads(r.stdout.splitlines()[0]))
    assert keys == ["epoch", "train_loss", "train_cost", "train_accuracy", "val_loss",
                    "val_cost", "val_accuracy", "lr", "seconds"]


def test_metric_statement_and_flag_override_the_task(tables):
    r = train(str(LOGREG), epochs=1, metric="auc")
    assert r.metrics == ("auc",) and r.final["val_accuracy"] is None
    assert r.final["val_auc"] > 0.9
    text = MSE + "metric r2\n"
    r = train(text, str(tables / "diabetes.npz"), epochs=1, standardize=True)
    assert r.metrics == ("r2",) and "val_rmse" not in r.final
    r = run_cli("run", str(LINREG), "--epochs", "1", "--metric", "mae,r2")
    assert r.returncode == 0 and " mae " in r.stdout and " rmse " not in r.stdout
    r = run_cli("run", str(LINREG), "--epochs", "1", "--metric", "rmsd")
    assert r.returncode == 1 and "unknown metric `rmsd`" in r.stderr
    r = run_cli("run", str(ROOT / "models" / "linear_softmax.gdsl"), "--metric", "rmse")
    assert r.returncode == 1 and "`y` takes class labels" in r.stderr
    with pytest.raises(GdslValueError, match="needs the model's prediction"):
        train(HAND_BCE + "metric auc\n", str(tables / "cancer.npz"), epochs=1)


def test_binary_metrics_of_real_valued_targets_are_refused(tables):
    # diabetes progression 25..346: "accuracy" compared it with 1/2, AUC ranked it as if
    # every target were class 1
    for metric in ("accuracy", "auc", "r2,auc"):
        with pytest.raises(GdslValueError, match="is for binary targets .* range over 25.."):
            train(MSE, str(tables / "diabetes.npz"), epochs=1, metric=metric, standardize=True)
    r = run_cli("run", str(LINREG), "--epochs", "1", "--metric", "accuracy")
    assert r.returncode == 1 and r.stderr.count("error:") == 1 and "Traceback" not in r.stderr
    assert train(MSE, str(tables / "diabetes.npz"), epochs=1, metric="r2",
                 standardize=True).metrics == ("r2",)


def test_plot_draws_each_metric(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.png"
    r = run_cli("run", str(LINREG), "--epochs", "3", "--plot", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the metrics, against scikit-learn's on fixed predictions ------------------------------------

def test_metrics_match_scikit_learn(rng):
    metrics = pytest.importorskip("sklearn.metrics")
    y = rng.normal(size=50)
    p = y + rng.normal(size=50)
    assert rmse(p, y) == pytest.approx(metrics.mean_squared_error(y, p) ** 0.5, rel=1e-13)
    got = metric_values(("rmse", "mae", "r2"), p[None], y)          # [1, n] with [n]
    assert got["mae"] == pytest.approx(metrics.mean_absolute_error(y, p), rel=1e-13)
    assert got["r2"] == pytest.approx(metrics.r2_score(y, p), rel=1e-13)
    # several targets: rows here, columns there; averaged uniformly over them
    Y, P = rng.normal(size=(3, 40)), rng.normal(size=(3, 40))
    assert rmse(P, Y) == pytest.approx(metrics.root_mean_squared_error(Y.T, P.T), rel=1e-13)
    assert r2(P, Y) == pytest.approx(metrics.r2_score(Y.T, P.T), rel=1e-13)
    # a constant target: 1 if predicted exactly, else 0, as r2_score says
    assert r2(np.ones(5), np.ones(5)) == metrics.r2_score(np.ones(5), np.ones(5)) == 1.0
    assert r2(np.arange(5.0), np.ones(5)) == metrics.r2_score(np.ones(5), np.arange(5.0))
    # one example: not defined (scikit-learn warns and gives nan; gdsl reports none)
    with pytest.warns(Warning):
        assert np.isnan(metrics.r2_score([1.0], [2.0]))
    assert r2(np.array([2.0]), np.array([1.0])) is None
    # binary: logits thresholded at 0, probabilities at 1/2; AUC with tied scores
    t = rng.integers(0, 2, 60)
    s = np.round(rng.normal(size=60) + t, 1)           # ties
    got = metric_values(("accuracy", "auc"), s, t, 0.0)
    assert got["accuracy"] == metrics.accuracy_score(t, (s > 0).astype(int))
    assert got["auc"] == pytest.approx(metrics.roc_auc_score(t, s), rel=1e-13)
    prob = 1 / (1 + np.exp(-s))
    assert metric_values(("accuracy",), prob, t, 0.5)["accuracy"] == got["accuracy"]
    assert auc(s, np.ones(60)) is None          # one class: undefined


def test_evaluate_reports_the_tasks_metrics(rng):
    tm = prepare(BCE)
    x, y = rng.normal(size=(2, 40)), rng.integers(0, 2, 40)
    params = {"w": rng.normal(size=2), "b": np.float64(0.3)}
    m = evaluate(tm, params, {"x": x, "y": y.astype(float)})
    s = params["w"] @ x + 0.3
    metrics = pytest.importorskip("sklearn.metrics")
    assert m["accuracy"] == metrics.accuracy_score(y, (s > 0).astype(int))
    assert m["auc"] == pytest.approx(metrics.roc_auc_score(y, s))
    assert m["loss"] == pytest.approx(metrics.log_loss(y, 1 / (1 + np.exp(-s))))


# -- NumPy's warnings at the model's line ---------------------------------------------------------

OVERFLOW = "input x[d, n]\ninput y[n]\nparam w[d]\nq = exp(w @ x)\nJ = mean(square(q - y))\n"


def test_numpy_warnings_are_reported_at_the_model_line(rng):
    data = {"x": rng.normal(size=(3, 40)) * 8, "y": rng.normal(size=40)}
    got = []
    with pytest.raises(GdslError, match="diverged"):
        train(OVERFLOW, data, epochs=3, lr=10.0, on_warning=got.append, val_fraction=0)
    where = [(w.span.line, w.span.col, w.message) for w in got]
    assert (4, 5, "overflow encountered in exp while computing `exp(w @ x)`") in where
    assert len(where) == len({(w.message, w.span.line) for w in got})    # once per kind and line
    assert all(w.kind == "warning" for w in got)


def test_model_warnings_from_python(rng):
    m = gdsl.compile("input x[n]\nJ = sum(log(x))", wrt=["x"], filename="logs.gdsl")
    got = []
    with model_warnings(m, got.append):
        for _ in range(3):
            m.value_and_grad(x=np.array([0.0, 1.0]))
    backward = ("logs.gdsl:2:9: warning: divide by zero encountered in divide in the backward "
                "pass of `log(x)`")
    assert [w.render().splitlines()[0] for w in got] == [
        "logs.gdsl:2:9: warning: divide by zero encountered in log while computing `log(x)`",
        backward]
    with pytest.warns(RuntimeWarning):      # outside the block, NumPy's own warning again
        m.forward(x=np.array([0.0]))


def test_cli_prints_warnings_at_the_model_line_not_the_cache(tmp_path, rng):
    model = tmp_path / "ovf.gdsl"
    model.write_text(OVERFLOW)
    data = tmp_path / "d.npz"
    np.savez(data, x=rng.normal(size=(40, 3)) * 30, y=rng.normal(size=40))
    r = subprocess.run([*GDSL, "run", str(model), "--data", str(data), "--lr", "10",
                        "--epochs", "3"], capture_output=True, text=True, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{model}:4:5: warning: overflow encountered in exp" in r.stderr
    assert r.stderr.count("overflow encountered in exp") == 1
    assert "gdsl_generated" not in r.stderr and ".py:" not in r.stderr
    assert "training diverged" in r.stderr

"""Second-order training: gdsl run --optimizer lbfgs|newton-cg (scipy.optimize.minimize over
the whole training set, with the gradient and, for Newton-CG, Hessian-vector products).

The must-show: on the lecture's linear softmax classifier and the built-in digits, both reach
the objective of scikit-learn's LogisticRegression at the matching regularisation to 1e-8
relative. gdsl minimises J = mean_i xent(softmax(W x_i + b), y_i) + lam ||W||², scikit-learn
C Σ_i xent_i + ||W||²/2 (b not regularised by either); divided by C n they agree when
C = 1/(2 lam n), n the training examples. Both objectives are computed here in NumPy, by the
formula above, at gdsl's saved params and at scikit-learn's coef_ and intercept_.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import run_cli

import gdsl
from gdsl.tools import data as D
from gdsl.tools import train as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOFTMAX = os.path.join(ROOT, "models", "linear_softmax.gdsl")
LAM = 0.01          # linear_softmax.gdsl's const lam


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GDSL_CACHE", str(tmp_path / "cache"))


def training_split():
    """The examples `gdsl run` trains on by default: the digits, 80% held in by seed 0 (as
    features [n, d] and integer labels [n])."""
    tm = T.prepare(SOFTMAX)
    train_arrays, _ = D.split(T.arrays_for(tm, "digits"), tm.labels, 0.2, 0)
    y = train_arrays["y"]
    return train_arrays["x"].T, (y if y.ndim == 1 else y.argmax(axis=0))


def objective(W, b, X, y, lam):
    """mean cross-entropy of softmax(W x + b) + lam ||W||², and its gradient in W and b."""
    s = X @ W.T + np.reshape(b, -1)
    s = s - s.max(axis=1, keepdims=True)
    logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    n = len(y)
    J = -logp[np.arange(n), y].mean() + lam * np.sum(W * W)
    R = np.exp(logp)
    R[np.arange(n), y] -= 1
    return J, np.concatenate([(R.T @ X / n + 2 * lam * W).ravel(), R.mean(axis=0)])


def sklearn_objective(X, y, lam):
    from sklearn.linear_model import LogisticRegression
    clf = LogisticRegression(C=1 / (2 * lam * len(y)), tol=1e-12, max_iter=10_000).fit(X, y)
    return objective(clf.coef_, clf.intercept_, X, y, lam)[0]


def run_json(*args):
    r = run_cli("run", *map(str, args), "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    return lines[:-1], lines[-1]        # one record per iteration, then the solver's summary


@pytest.mark.parametrize("optimizer, lam", [("lbfgs", None), ("newton-cg", None),
                                            ("lbfgs", 0.001), ("newton-cg", 0.1)])
def test_the_objective_of_scikit_learns_logistic_regression(optimizer, lam, tmp_path):
    """`gdsl run models/linear_softmax.gdsl --optimizer X` (and at other lam by --set)."""
    saved = tmp_path / "p.npz"
    sets = ["--set", f"lam={lam}"] if lam is not None else []
    recs, final = run_json(SOFTMAX, "--optimizer", optimizer, "--save", saved, *sets)
    lam = LAM if lam is None else lam
    X, y = training_split()
    with np.load(saved) as p:
        J, grad = objective(p["W"], p["b"], X, y, lam)
    J_sklearn = sklearn_objective(X, y, lam)
    print(f"\n{optimizer} lam={lam}: gdsl {final['objective']!r} in {final['iterations']} "
          f"iterations, scikit-learn {float(J_sklearn)!r}: {abs(J - J_sklearn) / J_sklearn:.1e} apart")
    assert abs(J - J_sklearn) <= 1e-8 * J_sklearn
    # what gdsl reports is the objective and the gradient at the params it saved
    assert final["optimizer"] == optimizer and final["converged"] is True
    assert abs(final["objective"] - J) <= 1e-12 * J
    assert final["grad_norm"] == pytest.approx(np.linalg.norm(grad), rel=1e-4, abs=1e-12)
    assert final["grad_norm"] < 1e-5
    # one record per iteration, numbered, with the gradient norm and validation metrics
    assert final["iterations"] == len(recs) and [r["epoch"] for r in recs] == \
        list(range(1, len(recs) + 1))
    assert recs[-1]["grad_norm"] == final["grad_norm"]
    assert recs[-1]["train_cost"] == pytest.approx(J, rel=1e-12)
    assert all(r["val_accuracy"] > 0.8 and r["lr"] is None for r in recs)
    assert final["evaluations"] >= final["iterations"]


def test_epochs_cap_the_iterations():
    recs, final = run_json(SOFTMAX, "--optimizer", "newton-cg", "--epochs", 3)
    assert len(recs) == 3 and final["iterations"] == 3 and final["converged"] is False
    assert recs[0]["train_cost"] > recs[1]["train_cost"] > recs[2]["train_cost"]
    r = run_cli("run", SOFTMAX, "--optimizer", "lbfgs", "--epochs", "2")
    assert r.returncode == 0, r.stderr
    assert "iteration 2/2" in r.stdout and "(not converged)" in r.stdout


def test_a_train_lines_epochs_are_for_gradient_descent():
    """linear_softmax.gdsl's `train epochs=40, optimizer=sgd`: lbfgs chosen elsewhere runs to
    convergence (at most MAX_ITERATIONS); epochs given beside lbfgs cap it."""
    tm = T.prepare(SOFTMAX)
    assert T.settings_for(tm, optimizer="lbfgs").epochs == T.MAX_ITERATIONS
    assert T.settings_for(tm, optimizer="lbfgs", epochs=7).epochs == 7
    assert T.settings_for(tm).epochs == 40
    from pathlib import Path
    text = Path(SOFTMAX).read_text().replace("optimizer=sgd", "optimizer=lbfgs")
    assert "optimizer=lbfgs" in text
    tm = T.prepare(gdsl.compile(text, filename=SOFTMAX))
    assert T.settings_for(tm).epochs == 40
    assert T.settings_for(tm, optimizer="sgd").epochs == 40


def test_text_report(tmp_path):
    r = run_cli("run", SOFTMAX, "--optimizer", "lbfgs")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("iteration    1/1000  train loss") and "grad norm" in lines[0]
    summary = "\n".join(lines[-3:])
    assert "trained by lbfgs (full batch: " in summary and " iterations, " in summary
    assert "objective J 0.37023193" in summary and "gradient norm " in summary
    assert "not converged" not in summary


def test_save_load_resumes_at_the_minimum(tmp_path):
    saved = tmp_path / "p.npz"
    _, first = run_json(SOFTMAX, "--optimizer", "lbfgs", "--save", saved)
    _, again = run_json(SOFTMAX, "--optimizer", "newton-cg", "--load", saved)
    assert again["iterations"] <= 2
    assert again["objective"] == pytest.approx(first["objective"], rel=1e-10)
    evaluated = run_cli("run", SOFTMAX, "--load", str(saved), "--epochs", "0", "--json")
    assert json.loads(evaluated.stdout)["train_cost"] == pytest.approx(first["objective"],
                                                                       rel=1e-12)


def test_newton_cg_on_a_network(tmp_path):
    """mlp2 (ReLU, two layers): Newton-CG's Hessian-vector products through the network."""
    recs, final = run_json("models/mlp2.gdsl", "--optimizer", "newton-cg", "--epochs", 3,
                           "--set", "m=16")
    assert [r["epoch"] for r in recs] == [1, 2, 3]
    assert recs[-1]["train_cost"] < recs[0]["train_cost"]
    assert final["objective"] == pytest.approx(recs[-1]["train_cost"], rel=1e-12)


def test_bad_optimizer_name_is_a_usage_error():
    r = run_cli("run", SOFTMAX, "--optimizer", "bfgs")
    assert r.returncode == 2
    assert "invalid choice: 'bfgs'" in r.stderr and "lbfgs" in r.stderr


def test_a_model_without_params(tmp_path):
    model = tmp_path / "none.gdsl"
    model.write_text("input x[d, n]\ninput y[n]\nJ = mean(square(sum(x, axis=0) - y))\nloss J\n")
    data = tmp_path / "d.npz"
    np.savez(data, x=np.ones((3, 5)), y=np.zeros(5))
    r = run_cli("run", str(model), "--data", str(data), "--optimizer", "lbfgs")
    assert r.returncode == 1
    assert "no params to train" in r.stderr and "Traceback" not in r.stderr


def test_without_scipy():
    code = ("import sys\n"
            "sys.modules['scipy'] = sys.modules['scipy.optimize'] = None\n"
            "from gdsl.cli import main\n"
            f"sys.exit(main(['run', {SOFTMAX!r}, '--optimizer', 'newton-cg']))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, check=False)
    assert p.returncode == 1, p.stderr
    assert "--optimizer newton-cg needs scipy" in p.stderr and "pip install scipy" in p.stderr
    assert "Traceback" not in p.stderr


def test_not_on_workers():
    from gdsl.tools import distributed
    with pytest.raises(gdsl.GdslError) as e:
        distributed.train(SOFTMAX, workers=1, optimizer="lbfgs")
    assert "runs on one process" in str(e.value)


def test_newton_cg_with_the_numba_target():
    """The gradient from numba's step, H·p from the model's NumPy twin: the same minimum."""
    pytest.importorskip("numba")
    _, final = run_json(SOFTMAX, "--optimizer", "newton-cg", "--target", "numba")
    X, y = training_split()
    J_sklearn = sklearn_objective(X, y, LAM)
    assert final["converged"] and abs(final["objective"] - J_sklearn) <= 1e-8 * J_sklearn

#!/usr/bin/env python3
"""Regression and binary classification: `gdsl run` on the shipped models next to
scikit-learn's LinearRegression and LogisticRegression on the same split (issue 13).

    python3 benchmarks/tasks.py              # prints the table; writes benchmarks/results-tasks.md
    python3 benchmarks/tasks.py --no-write

gdsl's side is the command a user types, `gdsl run MODEL --json` in a process of its own,
with the settings of the model's `train` line; its last record gives the validation
metrics. scikit-learn's side takes the same examples: gdsl's own split of the built-in
table (gdsl.tools.data.split with the model's seed and validation fraction), the features
standardised with the statistics of the training split (StandardScaler, as the model's
`standardize=true` does), then LinearRegression (least squares, exact) or
LogisticRegression (C = 1, L2, lbfgs; the model's lam = 1 / (2 C n_train) is the same
penalty per example). The criteria of the issue: validation MSE within 5% of
LinearRegression's; validation accuracy within 1 point of LogisticRegression's.

A third row trains the issue's hand-written binary cross-entropy,
-mean(y * log(p) + (1 - y) * log(1 - p)) with p = sigmoid(w @ x + b), with lr 0.5 for 50
epochs on the standardised breast-cancer table: every epoch's cost must be finite (before
the rewrite of log(sigmoid) it was NaN from epoch 11); scikit-learn's column is
LogisticRegression's accuracy for reference.

Times are wall-clock seconds on this machine in the same run (gdsl: the whole process,
interpreter and imports included; scikit-learn: the fit alone), for orientation only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gdsl.tools import data as D
from gdsl.tools.train import prepare, settings_for

HAND_BCE = """input x[d, n]
input y[n]
param w[d]
param b
p = sigmoid(w @ x + b)
J = -mean(y * log(p) + (1 - y) * log(1 - p))
output p
"""


def gdsl_run(model: str, *args: str) -> tuple[list[dict], float, str]:
    """`gdsl run MODEL --json ARGS` in a process of its own: (records, seconds, stderr)."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "gdsl", "run", model, "--json", *args],
                       capture_output=True, text=True, cwd=ROOT, check=False)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"gdsl run {model} failed:\n{r.stderr}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()], seconds, r.stderr


def same_split(model: str):
    """The training and validation examples gdsl run uses for this model (rows), standardised
    with the statistics of the training split."""
    from sklearn.preprocessing import StandardScaler
    tm = prepare(str(ROOT / model))
    s = settings_for(tm)
    table = D.load(s.data)
    y_name = tm.target
    arrays = {"x": table.X.T, y_name: table.y}
    labels = [y_name] if tm.classes else []
    train, val = D.split(arrays, labels, s.val_fraction, s.seed)
    scaler = StandardScaler().fit(train["x"].T)
    return (scaler.transform(train["x"].T), train[y_name], scaler.transform(val["x"].T),
            val[y_name], s)


def regression() -> dict:
    from sklearn.linear_model import LinearRegression
    model = "models/linear_regression.gdsl"
    records, seconds, _ = gdsl_run(model)
    last = records[-1]
    Xt, yt, Xv, yv, s = same_split(model)
    t0 = time.perf_counter()
    reg = LinearRegression().fit(Xt, yt)
    fit = time.perf_counter() - t0
    sk = float(np.mean((reg.predict(Xv) - yv) ** 2))
    ours = float(last["val_rmse"]) ** 2
    return {"task": "regression: diabetes, 354 / 88", "model": model,
            "metric": "validation MSE", "gdsl": ours, "sklearn": sk,
            "difference": f"{100 * (ours - sk) / sk:+.2f}%", "ok": abs(ours - sk) <= 0.05 * sk,
            "criterion": "within 5%", "gdsl_s": seconds, "sklearn_s": fit,
            "extra": f"gdsl R² {last['val_r2']:.4f} vs {reg.score(Xv, yv):.4f}; "
                     f"{s.epochs} epochs, {s.optimizer}, lr {s.lr:g}, decay {s.decay:g}"}


def binary() -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    model = "models/logistic_regression.gdsl"
    records, seconds, _ = gdsl_run(model)
    last = records[-1]
    Xt, yt, Xv, yv, s = same_split(model)
    t0 = time.perf_counter()
    clf = LogisticRegression(C=1.0).fit(Xt, yt)
    fit = time.perf_counter() - t0
    sk = float(clf.score(Xv, yv))
    ours = float(last["val_accuracy"])
    return {"task": "binary: breast cancer, 455 / 114", "model": model,
            "metric": "validation accuracy", "gdsl": ours, "sklearn": sk,
            "difference": f"{100 * (ours - sk):+.2f} points", "ok": abs(ours - sk) <= 0.01,
            "criterion": "within 1 point", "gdsl_s": seconds, "sklearn_s": fit,
            "extra": f"gdsl AUC {last['val_auc']:.4f} vs "
                     f"{roc_auc_score(yv, clf.decision_function(Xv)):.4f}; "
                     f"{s.epochs} epochs, {s.optimizer}, lr {s.lr:g}"}


def hand_written_bce(reference: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "hand_bce.gdsl")
        Path(path).write_text(HAND_BCE)
        rewrites = subprocess.run([sys.executable, "-m", "gdsl", "compile", path, "--rewrites",
                                   "-o", os.devnull], capture_output=True, text=True, check=False)
        records, seconds, _ = gdsl_run(path, "--data", "breast_cancer", "--standardize",
                                            "--lr", "0.5", "--epochs", "50")
    costs = [r["train_cost"] for r in records]
    finite = all(c is not None and np.isfinite(c) for c in costs)
    shown = [ln.split(": ", 1)[1] for ln in rewrites.stderr.splitlines() if "softplus" in ln]
    return {"task": "hand-written BCE, lr 0.5, 50 epochs", "model": "(the issue's text)",
            "metric": "validation accuracy", "gdsl": records[-1]["val_accuracy"],
            "sklearn": reference, "difference": "finite cost every epoch" if finite else "NaN",
            "ok": finite and len(shown) == 2, "criterion": "no NaN; rewrite shown",
            "gdsl_s": seconds, "sklearn_s": None,
            "extra": "rewrites: " + "; ".join(shown) + f"; final cost {costs[-1]:.4f}"}


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if v < 10 else f"{v:.1f}"
    return str(v)


def table(rows: list[dict]) -> str:
    out = [("| task | metric | gdsl run | scikit-learn | difference | criterion | met | "
            "gdsl s | sklearn fit s |"), "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['task']} | {r['metric']} | {fmt(r['gdsl'])} | {fmt(r['sklearn'])} | "
                   f"{r['difference']} | {r['criterion']} | {'yes' if r['ok'] else 'NO'} | "
                   f"{fmt(r['gdsl_s'])} | {fmt(r['sklearn_s'])} |")
    out.append("")
    out += [f"- {r['task']} ({r['model']}): {r['extra']}" for r in rows]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    import sklearn
    reg = regression()
    clf = binary()
    rows = [reg, clf, hand_written_bce(clf["sklearn"])]
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, Python "
               f"{platform.python_version()}, NumPy {np.__version__}, scikit-learn "
               f"{sklearn.__version__}")
    text = table(rows)
    print(text)
    print(f"\n{machine}")
    if not args.no_write:
        (ROOT / "benchmarks" / "results-tasks.md").write_text(
            "# gdsl run next to scikit-learn (benchmarks/tasks.py)\n\n" + text
            + f"\n\nMachine: {machine}; {time.strftime('%Y-%m-%d')}.\n", encoding="utf-8")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

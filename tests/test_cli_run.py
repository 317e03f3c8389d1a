"""`gdsl run` end to end through the CLI: options, files, errors, exit codes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import GDSL

from gdsl.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOFTMAX = os.path.join(ROOT, "models", "linear_softmax.gdsl")
KEYS = {"epoch", "train_loss", "train_cost", "train_accuracy", "val_loss", "val_cost",
        "val_accuracy"}


def run(capsys, *args):
    code = main(["run", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def records(out):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_json_one_object_per_epoch(capsys):
    code, out, _err = run(capsys, SOFTMAX, "--epochs", 3, "--json")
    assert code == 0
    recs = records(out)
    assert [r["epoch"] for r in recs] == [1, 2, 3]
    assert all(KEYS <= set(r) for r in recs)
    assert recs[-1]["train_cost"] < recs[0]["train_cost"]


def test_text_report_and_no_progress_bar_when_not_a_terminal(capsys):
    code, out, err = run(capsys, SOFTMAX, "--epochs", 2, "--batch-size", 200, "--lr", 0.2,
                         "--optimizer", "momentum", "--seed", 4)
    assert code == 0
    # before the last epoch, the mean cost of its batches; after it, every figure of the
    # training set
    assert out.splitlines()[0].startswith("epoch 1/2  train cost ") and "(its batches)" in out
    assert out.splitlines()[1].startswith("epoch 2/2  train loss ")
    assert "val loss" in out and "momentum, lr 0.2, batch 200, seed 4" in out
    assert "step/s" not in err and "it/s" not in err


def test_save_is_reproducible_and_load_reproduces_val_accuracy(capsys, tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    code, out, _ = run(capsys, SOFTMAX, "--epochs", 2, "--seed", 1, "--save", a, "--json")
    assert code == 0
    assert run(capsys, SOFTMAX, "--epochs", 2, "--seed", 1, "--save", b, "--json")[0] == 0
    assert a.read_bytes() == b.read_bytes()
    trained = records(out)[-1]
    code, out, _ = run(capsys, SOFTMAX, "--epochs", 0, "--seed", 1, "--load", a, "--json")
    assert code == 0
    (evaluated,) = records(out)
    assert evaluated["epoch"] == 0 and evaluated["val_accuracy"] == trained["val_accuracy"]
    assert set(np.load(a)) == {"W", "b"}


def test_the_summary_counts_epochs_in_english(capsys):
    assert ": trained 1 epoch (sgd, " in run(capsys, SOFTMAX, "--epochs", 1, "-q")[1]
    assert ": trained 2 epochs (sgd, " in run(capsys, SOFTMAX, "--epochs", 2, "-q")[1]


def test_data_files_and_val_file(capsys, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = np.argmax(X @ rng.normal(size=(3, 3)), axis=1)   # linearly separable classes
    csv = tmp_path / "train.csv"
    csv.write_text("a,b,c,label\n" + "\n".join(f"{r[0]},{r[1]},{r[2]},{k}" for r, k in zip(X, y)))
    npz = tmp_path / "val.npz"
    np.savez(npz, x=X[:30], y=np.eye(3)[y[:30]])        # rows and one-hot labels
    code, out, err = run(capsys, SOFTMAX, "--data", csv, "--val", npz, "--epochs", 20,
                         "--lr", 0.5, "--json", "--set", "lam=0")
    assert code == 0, err
    last = records(out)[-1]
    assert last["val_accuracy"] > 0.8 and last["train_loss"] == pytest.approx(last["train_cost"])
    npy = tmp_path / "d.npy"
    np.save(npy, np.c_[X, y])
    code, out, err = run(capsys, SOFTMAX, "--data", npy, "--epochs", 1, "--val-fraction", 0.5)
    assert code == 0 and "60 training / 60 validation" in out


def test_plot(capsys, tmp_path):
    png = tmp_path / "curves.png"
    code, _, _err = run(capsys, SOFTMAX, "--epochs", 2, "--plot", png)
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _fails(capsys, *args, match):
    code, out, err = run(capsys, *args)
    assert code == 1, (out, err)
    assert match in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if "error:" in ln]) == 1
    return err


def test_bad_inputs_exit_1_and_keep_existing_output(capsys, tmp_path):
    keep = tmp_path / "keep.npz"
    keep.write_bytes(b"precious")
    save = ["--save", keep]
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"\x00corrupt")
    shape_npz = tmp_path / "shape.npz"
    np.savez(shape_npz, x=np.zeros((5, 7)), y=np.zeros(3, dtype=int))
    range_npz = tmp_path / "range.npz"
    np.savez(range_npz, x=np.zeros((64, 4)), y=np.array([0, 1, 2, 12]))
    params = tmp_path / "p.npz"
    np.savez(params, W=np.zeros((10, 3)), b=np.zeros((10, 1)))
    _fails(capsys, SOFTMAX, "--data", tmp_path / "none.npz", *save, match="no such data file")
    _fails(capsys, SOFTMAX, "--data", bad_npz, *save, match="not a .npz archive")
    _fails(capsys, SOFTMAX, "--data", shape_npz, *save, match="disagree on the number of examples")
    _fails(capsys, SOFTMAX, "--data", "digits", "--val", range_npz, "--epochs", 1, "--classes",
           10, *save, match="labels out of range")
    _fails(capsys, SOFTMAX, "--set", "alpha=1", *save, match="no const or dimension `alpha`")
    _fails(capsys, SOFTMAX, "--load", params, "--epochs", 0, *save,
           match="do not match the model")
    _fails(capsys, SOFTMAX, "--load", bad_npz, *save, match="cannot read params file")
    _fails(capsys, SOFTMAX, "--epochs", 3, "--lr", 1e30, *save, match="diverged")
    assert keep.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["keep.npz", "bad.npz", "shape.npz", "range.npz", "p.npz"])   # no temp files left


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_a_const_set_to_no_finite_number_is_refused(capsys, value):
    # it trained and "diverged at epoch 1, step 1; try a smaller --lr"
    err = _fails(capsys, SOFTMAX, "--set", f"lam={value}", "--epochs", 1,
                 match=f"--set lam={value}: the value of const `lam` must be a finite number")
    assert "diverged" not in err
    assert main(["check", SOFTMAX, "--set", f"lam={value}"]) == 1
    assert "expected a finite number" in capsys.readouterr().err


def test_diverged_message_names_epoch_step_and_lr(capsys):
    err = _fails(capsys, SOFTMAX, "--epochs", 3, "--lr", 1e30, match="diverged")
    assert "epoch 1, step" in err and "smaller --lr" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", SOFTMAX, "--optimizer", "nesterov"])
    assert e.value.code == 2
    assert run(capsys, SOFTMAX, "--set", "lam")[0] == 2


def test_interrupt_leaves_existing_params_file(tmp_path):
    """Ctrl-C mid-training: exit 130, the old params file untouched, no temp file left."""
    keep = tmp_path / "p.npz"
    keep.write_bytes(b"old")
    code = (
        "import signal, sys, threading, os\n"
        "from gdsl.cli import main\n"
        "threading.Timer(2.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
        f"sys.exit(main(['run', {SOFTMAX!r}, '--epochs', '100000', '--data', 'spiral',"
        f" '--save', {str(keep)!r}, '-q']))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       check=False)
    assert p.returncode == 130, p.stderr
    assert "interrupted" in p.stderr and "Traceback" not in p.stderr
    assert keep.read_bytes() == b"old" and os.listdir(tmp_path) == ["p.npz"]


def test_default_run_prints_summary_via_console_script():
    p = subprocess.run([*GDSL, "run", SOFTMAX, "--data", "spiral", "--epochs", "1", "-q"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0 and "final: train acc" in p.stdout and "spiral" in p.stdout


def test_default_run_uses_model_settings_and_reaches_94_percent(capsys):
    """`gdsl run models/linear_softmax.gdsl` with no other argument: digits, >= 94% val."""
    code, out, _err = run(capsys, SOFTMAX, "--json")
    assert code == 0
    recs = records(out)
    assert len(recs) == 40 and recs[-1]["lr"] == 0.1        # epochs from the model's train line
    assert recs[-1]["val_accuracy"] >= 0.94


def test_word_labels_saved_and_loaded_by_the_command(capsys, tmp_path):
    """gdsl run --save writes y.classes; --load --epochs 0 on a file without the first word
    scores it as trained."""
    rows = ["a,label"] + [f"{v},{w}" for v, w in [(-3, "ant"), (0, "bee"), (3, "cat")] * 20]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "test.csv").write_text("\n".join(r for r in rows if "ant" not in r) + "\n")
    model = tmp_path / "m.gdsl"
    model.write_text("input x[d, n]\ninput y[n]\nparam W[C, d] ~ zeros\nparam b[C, 1] ~ zeros\n"
                     "J = xent(softmax(W @ x + b), y)\ntrain lr=1, epochs=200, batch_size=60\n")
    p = tmp_path / "p.npz"
    assert run(capsys, model, "--data", tmp_path / "train.csv", "--val-fraction", 0,
               "--save", p, "--quiet")[0] == 0
    assert np.load(p)["y.classes"].tolist() == ["ant", "bee", "cat"]
    code, out, _ = run(capsys, model, "--data", tmp_path / "test.csv", "--load", p,
                       "--epochs", 0, "--val-fraction", 0, "--json")
    assert code == 0 and records(out)[-1]["train_accuracy"] == 1.0

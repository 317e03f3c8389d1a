"""Hardening: no silently wrong gradient, no user file destroyed, sizes checked before they are
allocated, the class count from all the data, messages that name the place."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from helpers import ROOT, assert_grads_match
from helpers import run_cli as _run_cli

import gdsl
from gdsl.errors import GdslError, GdslLimitError, GdslValueError
from gdsl.tools.train import train

LECTURE = ROOT / "models" / "linear_softmax.gdsl"


def run_cli(*args):
    r = _run_cli(*args)
    return r.returncode, r.stdout, r.stderr
SVM = ROOT / "models" / "linear_svm.gdsl"


# -- what can be differentiated -----------------------------------------------------------------

@pytest.mark.parametrize("path", [LECTURE, SVM], ids=["xent", "svm"])
def test_labels_are_not_differentiable(path):
    with pytest.raises(gdsl.GdslTypeError, match="used as class labels") as e:
        gdsl.compile_file(path, wrt=["y"])
    assert e.value.span.line == 4


def test_a_computed_value_is_not_a_variable_to_differentiate():
    with pytest.raises(gdsl.GdslTypeError, match="computed by the model") as e:
        gdsl.compile_file(LECTURE, wrt=["z"])
    assert "`W`" in e.value.help


@pytest.mark.parametrize("path", [LECTURE, SVM], ids=["xent", "svm"])
def test_every_other_gradient_is_right(path):
    """Inputs and consts too, against central differences (lam's gradient is ‖W‖²)."""
    m = gdsl.compile_file(path, wrt=["W", "b", "x", "lam"])
    rng = np.random.default_rng(3)
    arrays = {"x": rng.normal(size=(4, 6)), "y": rng.integers(0, 3, size=6),
              "W": rng.normal(size=(3, 4)), "b": rng.normal(size=(3, 1)), "lam": 0.3}
    assert_grads_match(m, arrays, rtol=1e-5)
    _, grads = m.value_and_grad(**arrays)
    assert grads["lam"] == pytest.approx(np.sum(arrays["W"] ** 2))


def test_check_differentiates_a_const_at_its_default():
    code, out, err = run_cli("check", str(LECTURE), "--wrt", "lam,W")
    assert code == 0, err
    assert "lam" in out and "passed" in out


# -- files ---------------------------------------------------------------------------------------

def test_a_device_or_pipe_is_written_to_never_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    code, _, err = run_cli("compile", str(LECTURE), "-o", str(fifo))
    reader.join(10)
    assert code == 0, err
    assert fifo.is_fifo() and b"def value_and_grad" in got[0]


def test_the_same_file_by_another_name_is_refused(tmp_path):
    model = tmp_path / "m.gdsl"
    model.write_text(LECTURE.read_text())
    os.link(model, tmp_path / "hard.gdsl")
    before = model.read_bytes()
    code, _, err = run_cli("compile", str(model), "-o", str(tmp_path / "hard.gdsl"))
    assert code == 1 and "is the input file" in err
    assert model.read_bytes() == before


def test_save_may_update_the_params_it_resumes_from(tmp_path):
    params = tmp_path / "p.npz"
    assert run_cli("run", str(LECTURE), "--epochs", "1", "--save", str(params), "-q")[0] == 0
    first = dict(np.load(params))
    code, _, err = run_cli("run", str(LECTURE), "--epochs", "1", "--load", str(params),
                           "--save", str(params), "-q")
    assert code == 0, err
    assert not np.array_equal(first["W"], np.load(params)["W"])


# -- sizes before allocation ----------------------------------------------------------------------

def test_a_huge_param_is_refused_at_its_declaration():
    m = gdsl.compile("param V[100000, 100000]\nJ = sqnorm(V)", filename="huge.gdsl")
    with pytest.raises(GdslLimitError, match="initialising the params needs 74.5 GiB") as e:
        m.init_params({})
    assert e.value.span.line == 1 and "param `V` [100000, 100000]" in e.value.notes[0]


def test_the_memory_limit_can_be_set(monkeypatch):
    m = gdsl.compile_file(LECTURE)
    monkeypatch.setenv("GDSL_MEMORY_LIMIT", "1K")
    with pytest.raises(GdslLimitError, match="more than the limit of 1.0 KiB"):
        m.init_params({"C": 10, "d": 64})
    monkeypatch.setenv("GDSL_MEMORY_LIMIT", "lots")
    with pytest.raises(GdslValueError, match="GDSL_MEMORY_LIMIT"):
        m.init_params({"C": 10, "d": 64})
    monkeypatch.setenv("GDSL_MEMORY_LIMIT", "1G")
    assert m.init_params({"C": 10, "d": 64})["W"].shape == (10, 64)


# -- the class count -------------------------------------------------------------------------------

def _table(labels, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(labels), 4))
    return {"x": x, "y": np.asarray(labels)}


INTEGER_LABELS = ("input x[d, n]\ninput y[n]\nparam W[C, d]\nparam b[C, 1]\n"
                  "J = xent(softmax(W @ x + b), y)\n")


def test_a_class_seen_only_in_validation_counts():
    data = _table([0, 1, 0, 1, 0, 1, 0, 1])
    val = _table([0, 1, 2, 3], seed=1)       # classes 2 and 3 only here
    r = train(INTEGER_LABELS, data, val=val, epochs=1)
    assert r.params["W"].shape == (4, 4) and r.dims["C"] == 4


def test_word_labels_of_a_validation_file_are_numbered_as_in_training(tmp_path):
    # cat, dog, emu in training are 0, 1, 2; a validation file with only dog and emu numbered
    # them 0, 1 on its own, and a perfect model scored 0% on it
    rng = np.random.default_rng(0)
    centre = {"cat": (-3, 0), "dog": (3, 0), "emu": (0, 4), "yak": (0, -4)}

    def table(path, words):
        path.write_text("a,b,label\n" + "".join(
            f"{centre[w][0] + 0.1 * rng.normal()},{centre[w][1] + 0.1 * rng.normal()},{w}\n"
            for w in words))
        return str(path)
    data = table(tmp_path / "train.csv", ["cat", "dog", "emu"] * 20)
    val = table(tmp_path / "val.csv", ["dog", "emu"] * 5)
    r = train(INTEGER_LABELS, data, val=val, epochs=30, lr=0.5, batch_size=10)
    assert r.final["train_accuracy"] == 1.0 and r.final["val_accuracy"] == 1.0
    other = table(tmp_path / "other.csv", ["dog", "yak"])
    with pytest.raises(GdslError, match="other.csv:3: column `label`: `yak` is not a class of "
                                        "the training data \\(cat, dog, emu\\)"):
        train(INTEGER_LABELS, data, val=other, epochs=1)


def test_hidden_never_sets_the_class_count():
    r = train(INTEGER_LABELS + "train hidden=50\n", _table([0, 1, 2] * 4), epochs=1,
              val_fraction=0)
    assert r.params["W"].shape[0] == 3


def test_classes_can_be_given():
    r = train(INTEGER_LABELS, _table([0, 1, 2] * 4), epochs=1, val_fraction=0, classes=5)
    assert r.params["W"].shape[0] == 5
    with pytest.raises(GdslError, match="labels out of range"):
        train(INTEGER_LABELS, _table([0, 1, 7] * 4), epochs=1, val_fraction=0, classes=5)


def test_sparse_labels_warn():
    with pytest.warns(gdsl.errors.GdslDataWarning, match="only 2 distinct labels"):
        train(INTEGER_LABELS, _table([0, 500] * 4), epochs=0, val_fraction=0)


# -- standardised features ---------------------------------------------------------------------------

def test_standardize_uses_the_training_split_and_travels_with_the_params(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3)) * [1000.0, 1.0, 0.01] + [5000.0, 0.0, 3.0]
    y = (X[:, 0] > 5000).astype(int)
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,c,label\n" + "\n".join(f"{a},{b},{c},{k}" for (a, b, c), k in zip(X, y)))
    params = tmp_path / "p.npz"
    code, out, err = run_cli("run", str(LECTURE), "--data", str(csv), "--standardize",
                             "--epochs", "5", "--save", str(params))
    assert code == 0, err
    saved = np.load(params)
    assert set(saved.files) == {"W", "b", "x.mean", "x.std"}
    assert saved["x.mean"].shape == (3, 1) and saved["x.mean"][0, 0] == pytest.approx(5000, rel=0.05)
    code, again, err = run_cli("run", str(LECTURE), "--data", str(csv), "--load", str(params),
                               "--epochs", "0")
    assert code == 0, err
    assert again.splitlines()[-1] == next(ln for ln in out.splitlines() if ln.startswith("final"))


def test_saved_statistics_of_other_features_are_one_error(tmp_path):
    # statistics saved for 3 features, then data with 2: one message naming the params file,
    # exit 1, not a broadcasting traceback
    rng = np.random.default_rng(0)
    three, two = tmp_path / "three.csv", tmp_path / "two.csv"
    three.write_text("a,b,c,label\n" + "\n".join(f"{a},{b},{c},{int(a > 0)}"
                                                  for a, b, c in rng.normal(size=(20, 3))))
    two.write_text("a,b,label\n" + "\n".join(f"{a},{b},{int(a > 0)}"
                                              for a, b in rng.normal(size=(20, 2))))
    params = tmp_path / "p.npz"
    code, _, err = run_cli("run", str(LECTURE), "--data", str(three), "--standardize",
                           "--epochs", "1", "--save", str(params), "--classes", "2")
    assert code == 0, err
    code, _, err = run_cli("run", str(LECTURE), "--data", str(two), "--load", str(params),
                           "--epochs", "0")
    assert code == 1 and "Traceback" not in err and "internal error" not in err, err
    assert err.count("error:") == 1 and "p.npz" in err and "`x.mean`" in err, err


def test_raw_features_bring_a_hint(tmp_path):
    csv = tmp_path / "raw.csv"
    csv.write_text("a,b,label\n1000,2,0\n3000,4,1\n5000,6,0\n7000,8,1\n")
    code, _, err = run_cli("run", str(LECTURE), "--data", str(csv), "--epochs", "1")
    assert code == 0 and "gdsl: warning:" in err and "--standardize" in err


# -- messages ------------------------------------------------------------------------------------------

def test_a_long_line_is_shown_around_the_place():
    text = "J = " + " + ".join(["a"] * 9000) + " @@ b"
    with pytest.raises(gdsl.GdslSyntaxError) as e:
        gdsl.compile(text, filename="long.gdsl")
    lines = e.value.render().splitlines()
    assert lines[0].startswith("long.gdsl:1:36004: error:")
    shown, caret = lines[2], lines[3]
    assert shown.startswith("1 | …") and len(shown) < 140
    assert shown[caret.index("^")] == "@"


def test_rewrites_name_what_the_user_wrote():
    code, _, err = run_cli("compile", str(ROOT / "models" / "oneliner.gdsl"), "--rewrites",
                           "-o", os.devnull)
    assert code == 0
    assert "%" not in err


def test_a_validation_set_that_disagrees_says_which_set_is_which(tmp_path):
    train_npz, val_npz = tmp_path / "t.npz", tmp_path / "v.npz"
    np.savez(train_npz, x=np.ones((4, 20)), y=np.arange(20) % 3)
    np.savez(val_npz, x=np.ones((3, 20)), y=np.arange(20) % 3)
    code, _, err = run_cli("run", str(ROOT / "models" / "mlp2.gdsl"), "--data", str(train_npz),
                           "--val", str(val_npz), "--epochs", "1")
    assert code == 1
    assert "of the validation data gives d = 3" in err and "training data gives d = 4" in err

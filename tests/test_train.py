"""train(): mini-batch gradient descent, metrics, optimisers, reproducibility, divergence."""

import os

import numpy as np
import pytest

from gdsl.errors import GdslDataError, GdslDivergedError, GdslValueError
from gdsl.tools.train import Optimizer, evaluate, load_params, prepare, save_params, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def model(name):
    return os.path.join(ROOT, "models", name)


@pytest.fixture(scope="module")
def softmax():
    return prepare(model("linear_softmax.gdsl"))


def test_loss_terms_and_scores_found_in_graph():
    tm = prepare(model("linear_softmax.gdsl"))
    assert tm.loss_terms == ["l"] and tm.scores == "p" and tm.label == "y"
    tm2 = prepare(model("mlp2.gdsl"))          # xent(...) inside J: named for reporting
    assert tm2.loss_terms == ["data_loss"] and tm2.scores == "p"
    tm3 = prepare(model("linear_svm.gdsl"))
    assert tm3.scores == "s" and tm3.loss_terms == ["l"]


def test_loss_falls_and_cost_is_loss_plus_regulariser(softmax):
    r = train(softmax, "digits", epochs=3, seed=0)
    h = r.history
    assert [x["epoch"] for x in h] == [1, 2, 3]
    assert h[-1]["train_cost"] < h[0]["train_cost"]
    for x in h:
        assert 0 <= x["val_accuracy"] <= 1
        assert x["val_cost"] > x["val_loss"] > 0      # lam * ||W||² > 0
    for x in h[:-1]:    # before the last epoch: the batches' mean cost only
        assert x["train_cost"] > 0 and x["train_loss"] is None and x["train_accuracy"] is None
    # after it, on the whole training set: cost - loss is exactly the regulariser lam * ||W||²
    assert h[-1]["train_cost"] > h[-1]["train_loss"] > 0 and h[-1]["train_accuracy"] > 0.5
    W = r.params["W"]
    assert h[-1]["train_cost"] - h[-1]["train_loss"] == pytest.approx(0.01 * np.sum(W * W))


def _softmax_cost(W, b, x, y, lam):
    """models/linear_softmax.gdsl's J by hand: mean cross-entropy of softmax(W x + b) + lam ||W||²."""
    s = W @ x + b
    s = s - s.max(axis=0)
    log_p = s - np.log(np.exp(s).sum(axis=0))
    return -log_p[y, np.arange(len(y))].mean() + lam * np.sum(W * W)


def test_train_cost_before_the_last_epoch_is_the_batches_mean(softmax):
    # lr 1e-300 leaves the params where they start (p - 1e-300 g == p), so every batch of the
    # epoch is costed at the same params: the example-weighted mean of the batches' costs is
    # then the cost of the whole training set (30 examples in batches of 7, 7, 7, 7, 2: a
    # plain mean of the five batch means would differ)
    rng = np.random.default_rng(1)
    data = {"x": rng.normal(size=(4, 30)), "y": rng.integers(0, 3, 30)}
    val = {"x": rng.normal(size=(4, 5)), "y": rng.integers(0, 3, 5)}
    params = {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=(3, 1))}
    r = train(softmax, data, val=val, params=params, epochs=2, batch_size=7, lr=1e-300)
    assert r.params["W"].tobytes() == params["W"].tobytes()
    want = _softmax_cost(params["W"], params["b"], data["x"], data["y"], 0.01)
    first, last = r.history
    assert first["train_cost"] == pytest.approx(want, rel=1e-12)
    assert first["train_loss"] is None and first["train_accuracy"] is None
    assert last["train_cost"] == pytest.approx(want, rel=1e-12)     # at the trained params
    assert last["val_cost"] == pytest.approx(
        _softmax_cost(params["W"], params["b"], val["x"], val["y"], 0.01), rel=1e-12)
    # one batch per epoch: epoch 1's cost is at the initial params, epoch 2's at those after
    # one step (the params that one epoch of training returns), epoch 3's (the last) at the
    # trained params
    one = train(softmax, data, val=val, params=params, epochs=1, batch_size=30)
    three = train(softmax, data, val=val, params=params, epochs=3, batch_size=30)
    at = [params, one.params, three.params]
    for rec, p in zip(three.history, at):
        assert rec["train_cost"] == pytest.approx(
            _softmax_cost(p["W"], p["b"], data["x"], data["y"], 0.01), rel=1e-12)


def _reference_steps(kind, params, grads_per_step, lrs, mu=0.9, b2=0.999):
    """The optimisers' formulas param by param, in fresh arrays (as train.py had them)."""
    p = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    for t, (grads, lr) in enumerate(zip(grads_per_step, lrs), 1):
        for k, g in grads.items():
            if kind == "sgd":
                p[k] = p[k] - lr * g
            elif kind == "momentum":
                m[k] = mu * m[k] - lr * g
                p[k] = p[k] + m[k]
            else:
                m[k] = mu * m[k] + (1 - mu) * g
                v2[k] = b2 * v2[k] + (1 - b2) * (g * g)
                p[k] = p[k] - lr * (m[k] / (1 - mu ** t)) / (np.sqrt(v2[k] / (1 - b2 ** t)) + 1e-8)
    return p


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_optimizer_updates_follow_the_formulas(kind):
    rng = np.random.default_rng(2)
    shapes = {"W1": (5, 3), "b1": (5, 1), "w": (4,), "c": ()}
    params = {k: rng.normal(size=s) for k, s in shapes.items()}
    steps = [{k: rng.normal(size=s) for k, s in shapes.items()} for _ in range(6)]
    lrs = [0.1, 0.1, 0.05, 0.05, 0.02, 0.01]
    want = _reference_steps(kind, params, steps, lrs)
    mine = {k: v.copy() for k, v in params.items()}
    opt = Optimizer(kind, mine, 0.9)
    held = dict(mine)       # the arrays the optimiser updates in place
    for grads, lr in zip(steps, lrs):
        opt.step(mine, grads, lr)
    for k, shape in shapes.items():
        assert mine[k] is held[k] and mine[k].shape == shape
        np.testing.assert_allclose(mine[k], want[k], rtol=1e-12, atol=1e-15)


def test_accuracy_is_argmax_over_classes(softmax):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 30))
    y = rng.integers(0, 3, 30)
    params = {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=(3, 1))}
    m = evaluate(softmax, params, {"x": x, "y": y})
    s = params["W"] @ x + params["b"]
    assert m["accuracy"] == pytest.approx(np.mean(s.argmax(axis=0) == y))


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
def test_optimizers_reduce_the_cost(softmax, opt):
    r = train(softmax, "digits", epochs=2, optimizer=opt, lr=0.01 if opt == "adam" else 0.1)
    assert r.history[-1]["train_cost"] < 2.0 and r.history[-1]["train_accuracy"] > 0.8


def test_settings_from_model_and_overrides(softmax):
    r = train(softmax, "spiral", epochs=1, batch_size=64)
    s = r.settings
    assert (s.lr, s.optimizer, s.epochs, s.batch_size) == (0.1, "sgd", 1, 64)
    r = train(model("mlp2.gdsl"), "spiral", epochs=1, lr=None, optimizer=None)
    s = r.settings
    assert (s.lr, s.optimizer, s.epochs, r.dims["m"]) == (0.05, "momentum", 1, 100)
    with pytest.raises(GdslValueError, match="unknown optimizer"):
        train(softmax, "spiral", epochs=1, optimizer="rmsprop")


@pytest.mark.parametrize("setting, message", [
    ({"epochz": 1}, "unknown training setting `epochz`"),
    ({"epochs": 1.5}, "`epochs` takes a whole number, got 1.5"),
    ({"lr": "0.1"}, "`lr` takes a number, got '0.1'"),
    ({"standardize": "yes"}, "`standardize` takes True or False"),
])
def test_a_misspelt_or_mistyped_setting_is_an_error(softmax, setting, message):
    # as in a model's `train` line: never ignored (a typo trained the default 20 epochs), and
    # never a TypeError from inside the training loop
    with pytest.raises(GdslValueError, match=message) as e:
        train(softmax, "spiral", **setting)
    if "epochz" in setting:
        assert e.value.help == "did you mean `epochs`?"
    s = train(softmax, "spiral", epochs=np.int64(1), lr=np.float32(0.5)).settings
    assert (s.epochs, s.lr) == (1, np.float32(0.5))


def test_reproducible_bitwise(softmax, tmp_path):
    a = train(softmax, "digits", epochs=2, seed=5)
    b = train(softmax, "digits", epochs=2, seed=5)
    c = train(softmax, "digits", epochs=2, seed=6)
    for k in a.params:
        assert a.params[k].tobytes() == b.params[k].tobytes()
    assert a.params["W"].tobytes() != c.params["W"].tobytes()
    save_params(tmp_path / "a.npz", a.params)
    save_params(tmp_path / "b.npz", b.params)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_saved_params_reproduce_val_accuracy(softmax, tmp_path):
    r = train(softmax, "digits", epochs=2, seed=3)
    save_params(tmp_path / "p.npz", r.params)
    again = train(softmax, "digits", epochs=0, seed=3, params=load_params(tmp_path / "p.npz"))
    assert again.history[0]["epoch"] == 0
    assert again.history[0]["val_accuracy"] == r.final["val_accuracy"]
    assert again.history[0]["val_cost"] == pytest.approx(r.final["val_cost"], abs=0)


def test_resume_continues_from_loaded_params(softmax):
    r = train(softmax, "digits", epochs=1, seed=0)
    resumed = train(softmax, "digits", epochs=1, seed=0, params=r.params)
    assert resumed.history[0]["train_cost"] < r.history[0]["train_cost"]


def test_divergence_names_epoch_and_step(softmax):
    with pytest.raises(GdslDivergedError, match=r"epoch 1, step \d+.*smaller --lr"):
        train(softmax, "digits", epochs=3, lr=1e30)


def test_set_consts_and_dims():
    tm = prepare(model("mlp2.gdsl"))
    r = train(tm, "spiral", epochs=1, consts={"m": 7, "lam": 0.0})
    assert r.params["W1"].shape == (7, 2) and r.consts == {"lam": 0.0}
    assert r.final["train_cost"] == pytest.approx(r.final["train_loss"])
    with pytest.raises(GdslValueError, match="no const or dimension `lamb`.*did you mean `lam`"):
        train(tm, "spiral", epochs=1, consts={"lamb": 1})


def test_params_that_do_not_match(softmax):
    with pytest.raises(GdslDataError, match="missing `b`"):
        train(softmax, "digits", epochs=0, params={"W": np.zeros((10, 64))})
    with pytest.raises(GdslDataError, match="d = 2"):
        train(softmax, "spiral", epochs=0, params={"W": np.zeros((10, 64)), "b": np.zeros((10, 1))})


def test_labels_out_of_range(softmax):
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(3, 20)), "y": rng.integers(0, 3, 20)}
    val = {"x": rng.normal(size=(3, 5)), "y": np.array([0, 1, 2, 3, 1])}
    params = {"W": np.zeros((3, 3)), "b": np.zeros((3, 1))}
    with pytest.raises(GdslDataError, match="labels out of range"):
        train(softmax, data, val=val, params=params, epochs=1)


def test_regression_model_without_classes(tmp_path):
    text = "input x[d, n]\ninput t[1, n]\nparam w[1, d]\nJ = mean(square(w @ x - t))\n"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 200))
    t = np.array([[1.0, -2.0, 0.5]]) @ x
    r = train(text, {"x": x, "t": t}, epochs=30, lr=0.1, batch_size=20, val_fraction=0.25)
    assert r.final["train_accuracy"] is None and r.final["val_loss"] < 1e-3
    assert np.allclose(r.params["w"], [[1.0, -2.0, 0.5]], atol=1e-2)


def test_mlp2_default_reaches_96_percent_on_digits():
    r = train(model("mlp2.gdsl"))
    assert r.final["val_accuracy"] >= 0.96


def test_spiral_nonlinear_beats_linear():
    mlp = train(model("spiral_mlp.gdsl"))
    lin = train(model("spiral_linear.gdsl"))
    assert mlp.data_source.startswith("spiral") and lin.data_source.startswith("spiral")
    assert mlp.final["val_accuracy"] >= 0.95
    assert lin.final["val_accuracy"] < 0.70


def test_labels_made_one_hot_once_train_as_integer_labels(monkeypatch):
    import gdsl.tools.train as T
    tm = prepare(model("mlp2.gdsl"))
    y = np.array([3, 0, 9, 3, 1])
    Y = T.one_hot(tm, {"x": np.zeros((64, 5)), "y": y}, {"C": 10})["y"]
    assert Y.shape == (10, 5) and np.array_equal(Y, np.eye(10)[:, y])
    # too many classes for the features: left to the steps
    assert T.one_hot(tm, {"x": np.zeros((2, 5)), "y": y}, {"C": 10})["y"] is y
    made = train(tm, "digits", epochs=2, seed=4)
    monkeypatch.setattr(T, "one_hot", lambda tm, arrays, dims: arrays)   # the steps make it
    steps = train(tm, "digits", epochs=2, seed=4)
    for k in made.params:
        assert made.params[k].tobytes() == steps.params[k].tobytes()
    assert made.history == [dict(r, seconds=m["seconds"]) for r, m in zip(steps.history,
                                                                          made.history)]


@pytest.mark.parametrize("extra, where", [("w", None), ("W", "params="), ("lam", "consts=")])
def test_an_unknown_array_in_a_data_dict_is_an_error(extra, where):
    """A dict of data holds the model's inputs: an array it does not take (sample weights,
    a param's start, a const) is an error, not silently left out."""
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(64, 50)), "y": rng.integers(0, 10, 50), extra: np.ones(3)}
    with pytest.raises(GdslValueError, match=f"unknown array `{extra}`") as e:
        train(model("linear_softmax.gdsl"), data, epochs=1)
    assert (where is None) == (e.value.help is None)
    if where:
        assert where in e.value.help


def test_word_labels_are_numbered_as_saved_when_params_are_loaded(tmp_path):
    """--save keeps the words that numbered the labels (y.classes); --load numbers a file's
    words by them, so a test file without the first class is scored as trained (each file
    numbered its own words: bee became 0 there, ant's number)."""
    rng = np.random.default_rng(0)
    names = ["ant", "bee", "cat"]

    def write(path, n, classes):
        rows = ["a,b,label"]
        for i in range(n):
            c = classes[i % len(classes)]
            k = (names + ["dog"]).index(c)
            x = rng.normal(size=2) * 0.3 + 3 * np.array([np.cos(2 * k), np.sin(2 * k)])
            rows.append(f"{x[0]},{x[1]},{c}")
        path.write_text("\n".join(rows) + "\n")

    write(tmp_path / "train.csv", 150, names)
    write(tmp_path / "test.csv", 60, ["bee", "cat"])
    text = ("input x[d, n]\ninput y[n]\nparam W[C, d] ~ zeros\nparam b[C, 1] ~ zeros\n"
            "J = xent(softmax(W @ x + b), y)\n")
    r = train(text, str(tmp_path / "train.csv"), epochs=30, lr=0.5)
    assert r.classes == {"y": names} and r.final["val_accuracy"] == 1.0
    save_params(tmp_path / "p.npz", r.params, classes=r.classes)
    with np.load(tmp_path / "p.npz", allow_pickle=False) as z:      # words, not a pickle
        assert z["y.classes"].tolist() == names
    loaded = load_params(tmp_path / "p.npz")
    ev = train(text, str(tmp_path / "test.csv"), params=loaded, epochs=0, val_fraction=0)
    assert ev.final["train_accuracy"] == 1.0
    assert "y.classes" in loaded            # (train takes it out of its own copy)
    write(tmp_path / "new.csv", 10, ["cat", "dog"])
    with pytest.raises(GdslDataError, match="`dog` is not a class"):
        train(text, str(tmp_path / "new.csv"), params=loaded, epochs=0, val_fraction=0)

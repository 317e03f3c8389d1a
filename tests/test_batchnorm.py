"""Batch normalisation: state the training loop updates (`state`, `<-`) and expressions that
differ between training and evaluation (`a if training else b`).

Expected values come from NumPy written out here (and PyTorch's nn.BatchNorm1d where it is
installed), gradients from central differences and HIPS autograd in float64."""

from __future__ import annotations

import ast
import subprocess

import numpy as np
import pytest
from adref import Reference
from helpers import GDSL, ROOT, numeric_grad, run_cli

import gdsl
from gdsl.errors import GdslError

# one layer: W x, batch norm (scale g, shift c), relu, softmax + cross-entropy
ONE_LAYER = """\
input x[d, n]
input y[C, n]
param W[m, d] ~ he
param g[m, 1] ~ ones
param c[m, 1] ~ zeros
param V[C, m] ~ he
state mu[m, 1] = 0
state var[m, 1] = 1
const eps = 0.00001
z = W @ x
bm = mean(z, axis=1, keepdims=True)
bv = mean(square(z - bm), axis=1, keepdims=True)
u = (z - (bm if training else mu)) / sqrt((bv if training else var) + eps)
h = relu(g * u + c)
J = xent(softmax(V @ h), y)
mu <- 0.9 * mu + 0.1 * bm
var <- 0.9 * var + 0.1 * bv * n / (n - 1)
"""
DIMS = {"d": 4, "n": 6, "C": 3, "m": 5}
EPS = 1e-5


def arrays(rng, n=DIMS["n"]):
    d, C, m = DIMS["d"], DIMS["C"], DIMS["m"]
    return {"x": rng.normal(size=(d, n)), "y": np.eye(C)[:, rng.integers(0, C, n)],
            "W": rng.normal(size=(m, d)), "g": rng.uniform(0.5, 1.5, size=(m, 1)),
            "c": rng.normal(size=(m, 1)), "V": rng.normal(size=(C, m))}


def softmax_xent(s, Y):
    e = np.exp(s - s.max(axis=0))
    p = e / e.sum(axis=0)
    return -np.mean(np.log((Y * p).sum(axis=0)))


def numpy_one_layer(A, mu, var, training):
    """The model written out in NumPy: (J, new mu, new var)."""
    z = A["W"] @ A["x"]
    n = z.shape[1]
    bm = z.mean(axis=1, keepdims=True)
    bv = z.var(axis=1, keepdims=True)                 # biased, for the normalisation
    m_, v_ = (bm, bv) if training else (mu, var)
    h = np.maximum(A["g"] * (z - m_) / np.sqrt(v_ + EPS) + A["c"], 0)
    J = softmax_xent(A["V"] @ h, A["y"])
    unbiased = bv * n / (n - 1)                       # for the running variance
    return J, 0.9 * mu + 0.1 * bm, 0.9 * var + 0.1 * unbiased


@pytest.fixture
def model():
    return gdsl.compile(ONE_LAYER, filename="bn.gdsl")


# -- the two modes, against NumPy and PyTorch ------------------------------------------------------

def test_training_mode_normalises_with_the_batch_and_updates_the_state(model, rng):
    A = arrays(rng)
    mu, var = rng.normal(size=(5, 1)), rng.uniform(0.5, 2, size=(5, 1))
    J, mu_new, var_new = numpy_one_layer(A, mu, var, training=True)
    out = model.forward(**A, mu=mu, var=var)
    assert set(out) == {"J", "mu", "var"}
    np.testing.assert_allclose(out["J"], J, rtol=1e-12)
    np.testing.assert_allclose(out["mu"], mu_new, rtol=1e-12)
    np.testing.assert_allclose(out["var"], var_new, rtol=1e-12)
    loss, grads, state = model.value_and_grad(**A, mu=mu, var=var)
    assert set(grads) == {"W", "g", "c", "V"} and set(state) == {"mu", "var"}
    np.testing.assert_allclose(loss, J, rtol=1e-12)
    np.testing.assert_allclose(state["var"], var_new, rtol=1e-12)
    assert model.mode == "train" and model.states == {"mu": (("m", 1), 0.0), "var": (("m", 1), 1.0)}


def test_evaluation_mode_uses_the_running_statistics(model, rng):
    A = arrays(rng)
    mu, var = rng.normal(size=(5, 1)), rng.uniform(0.5, 2, size=(5, 1))
    ev = model.eval()
    assert ev.mode == "eval" and ev is model.eval() and ev.train() is model
    J, _, _ = numpy_one_layer(A, mu, var, training=False)
    out = ev.forward(**A, mu=mu, var=var)
    assert set(out) == {"J"}            # nothing updated
    np.testing.assert_allclose(out["J"], J, rtol=1e-12)
    loss, grads = ev.value_and_grad(**A, mu=mu, var=var)
    np.testing.assert_allclose(loss, J, rtol=1e-12)
    # each example on its own: the same scores as in the batch (no batch statistics)
    one = {**A, "x": A["x"][:, :1], "y": A["y"][:, :1]}
    np.testing.assert_allclose(ev.forward(**one, mu=mu, var=var)["J"],
                               numpy_one_layer(one, mu, var, training=False)[0], rtol=1e-12)
    # and the eval-mode gradient is checked too
    for name in ("W", "g"):
        num = numeric_grad(lambda **kw: float(ev.forward(**kw)["J"]), {**A, "mu": mu, "var": var},
                           name)
        np.testing.assert_allclose(grads[name], num, rtol=1e-6, atol=1e-8)


def test_agrees_with_pytorch_batchnorm1d(rng):
    """Three training steps then evaluation, as nn.BatchNorm1d(momentum=0.1, eps=1e-5) in
    float64: the normalised values, the running mean and (unbiased) variance, eval mode."""
    torch = pytest.importorskip("torch")
    text = """\
input x[m, n]
state mu[m, 1] = 0
state var[m, 1] = 1
bm = mean(x, axis=1, keepdims=True)
bv = mean(square(x - bm), axis=1, keepdims=True)
u = (x - (bm if training else mu)) / sqrt((bv if training else var) + 0.00001)
J = sum(u * u)
output u
mu <- 0.9 * mu + 0.1 * bm
var <- 0.9 * var + 0.1 * bv * n / (n - 1)
"""
    m = gdsl.compile(text)
    bn = torch.nn.BatchNorm1d(4, affine=False).double()
    state = m.init_state({"m": 4})
    assert np.array_equal(state["mu"], np.zeros((4, 1))) and np.array_equal(state["var"],
                                                                          np.ones((4, 1)))
    for step in range(3):
        x = rng.normal(2.0, 3.0, size=(4, 7 + step))
        bn.train()
        want = bn(torch.from_numpy(x.T)).detach().numpy().T
        out = m.forward(x=x, **state)
        state = {"mu": out["mu"], "var": out["var"]}
        np.testing.assert_allclose(out["u"], want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(state["mu"].ravel(), bn.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(state["var"].ravel(), bn.running_var.numpy(), rtol=1e-12)
    x = rng.normal(size=(4, 3))
    bn.eval()
    np.testing.assert_allclose(m.eval().forward(x=x, **state)["u"],
                               bn(torch.from_numpy(x.T)).detach().numpy().T, rtol=1e-10)


# -- gradients through the batch statistics -------------------------------------------------------

def test_training_gradient_flows_through_the_batch_statistics(model, rng):
    """Against central differences of the training-mode loss and HIPS autograd (float64);
    a gradient that treated the batch mean and variance as constants would differ."""
    A = {**arrays(rng), **model.init_state(DIMS)}
    loss, grads, _ = model.value_and_grad(**A)
    ref = Reference(model, A).grad()
    for name in model.wrt:
        num = numeric_grad(lambda **kw: float(model.forward(**kw)["J"]), A, name)
        np.testing.assert_allclose(grads[name], num, rtol=1e-6, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(grads[name], ref[name], rtol=1e-9, atol=1e-12, err_msg=name)
    # the negative control: the statistics held fixed (eval mode at the batch's own statistics)
    z = A["W"] @ A["x"]
    held = model.eval().value_and_grad(**{**A, "mu": z.mean(axis=1, keepdims=True),
                                          "var": z.var(axis=1, keepdims=True)})
    np.testing.assert_allclose(held[0], loss, rtol=1e-12)      # the same value ...
    assert np.max(np.abs(held[1]["W"] - grads["W"])) > 1e-3    # ... another gradient


def test_gdsl_check_passes_on_the_model_with_batch_norm():
    r = run_cli("check", "models/mlp_bn.gdsl")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed" in r.stdout and "W1" in r.stdout and "mu1" not in r.stdout


def test_hvp_of_the_training_loss_matches_autograd(model, rng):
    A = {**arrays(rng), **model.init_state(DIMS)}
    v = {k: rng.normal(size=np.shape(A[k])) for k in model.wrt}
    ours = model.hvp(v, **A)
    ref = Reference(model, A).hvp(v)
    for k in model.wrt:
        np.testing.assert_allclose(ours[k], ref[k], rtol=1e-8, atol=1e-10, err_msg=k)


# -- the emitted module ---------------------------------------------------------------------------

def test_the_emitted_module_takes_and_returns_the_state(model, rng):
    src = model.source
    tree = ast.parse(src)
    fns = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    for name in ("forward", "value_and_grad"):
        args = [a.arg for a in fns[name].args.kwonlyargs]
        assert "mu" in args and "var" in args
    assert "STATE = {'mu': (('m', 1), 0.0), 'var': (('m', 1), 1.0)}" in src
    assert "MODE = 'train'" in src and "mu_new" in src and "n = x.shape[1]" in src
    assert "return (J, {'W': g_W, 'g': g_g, 'c': g_c, 'V': g_V}, {'mu': mu_new, 'var': var_new})" \
        in src
    # pure: the module's functions change none of the arrays given
    A = {**arrays(rng), **model.init_state(DIMS)}
    before = {k: v.copy() for k, v in A.items()}
    model.module.value_and_grad(**A, eps=EPS)
    model.module.forward(**A, eps=EPS)
    assert all(np.array_equal(A[k], before[k]) for k in A)
    assert "mu_new" not in model.eval().source and "MODE = 'eval'" in model.eval().source


def test_a_state_not_given_starts_at_its_initial_value(model, rng):
    A = arrays(rng)
    out = model.forward(**A)
    np.testing.assert_allclose(out["mu"], 0.1 * (A["W"] @ A["x"]).mean(axis=1, keepdims=True))
    ev = model.eval().forward(**A)["J"]
    assert np.isclose(ev, numpy_one_layer(A, np.zeros((5, 1)), np.ones((5, 1)), False)[0])


def test_compile_eval_emits_the_evaluation_mode(tmp_path):
    r = subprocess.run([*GDSL, "compile", "models/mlp_bn.gdsl", "--eval"], check=False, capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "MODE = 'eval'" in r.stdout and "mu1_new" not in r.stdout
    assert "u1 = np.subtract(z1, mu1, out=z1)" in r.stdout


def test_a_choice_without_state(rng):
    """`a if training else b` alone: dropout-like scaling that only training applies."""
    m = gdsl.compile("input x[3]\nparam w[3]\nJ = sum((2 * w if training else w) * x)")
    x, w = rng.normal(size=3), rng.normal(size=3)
    np.testing.assert_allclose(m.forward(x=x, w=w)["J"], 2 * w @ x)
    np.testing.assert_allclose(m.eval().forward(x=x, w=w)["J"], w @ x)
    np.testing.assert_allclose(m.value_and_grad(x=x, w=w)[1]["w"], 2 * x)
    assert not m.states and m.eval() is not m
    plain = gdsl.compile("input x[3]\nparam w[3]\nJ = sum(w * x)")
    assert plain.eval() is plain        # nothing differs between the modes


def test_a_dimension_name_is_its_size(rng):
    m = gdsl.compile("input x[d, n]\nparam w[d, 1]\nJ = sum(w * x) / n + d")
    x, w = rng.normal(size=(3, 5)), rng.normal(size=(3, 1))
    np.testing.assert_allclose(m.forward(x=x, w=w)["J"], np.sum(w * x) / 5 + 3)


# -- gdsl run: state updated each step, evaluation in eval mode, --save and --load ----------------

def test_run_trains_updates_the_state_and_saves_it(tmp_path):
    from gdsl.tools.train import load_params, train
    r = train("models/mlp_bn.gdsl", epochs=2, seed=1)
    assert set(r.state) == {"mu1", "var1", "mu2", "var2"}
    assert not np.allclose(r.state["mu1"], 0) and not np.allclose(r.state["var1"], 1)
    save = tmp_path / "bn.npz"
    code = run_cli("run", "models/mlp_bn.gdsl", "--epochs", "2", "--seed", "1", "--save",
                   str(save), "-q")
    assert code.returncode == 0, code.stderr
    saved = load_params(save)
    assert {"mu1", "var1", "mu2", "var2", "W1", "g1", "c1"} <= set(saved)
    np.testing.assert_allclose(saved["var2"], r.state["var2"], rtol=1e-12)
    # --load --epochs 0: evaluated with the saved running statistics, not the initial ones
    again = train("models/mlp_bn.gdsl", epochs=0, seed=1, params=saved)
    assert again.final["val_accuracy"] == r.final["val_accuracy"]
    np.testing.assert_allclose(again.final["val_cost"], r.final["val_cost"], rtol=1e-12)
    fresh = train("models/mlp_bn.gdsl", epochs=0, seed=1,
                  params={k: v for k, v in saved.items() if k not in r.state})
    assert fresh.final["val_cost"] != again.final["val_cost"]


def test_validation_is_evaluated_in_eval_mode(rng):
    """The reported validation cost is the eval-mode forward over the validation split, with
    the running statistics after training (computed here from the returned state)."""
    from gdsl.tools import data as D
    from gdsl.tools.train import arrays_for, prepare, train
    r = train("models/mlp_bn.gdsl", epochs=1, seed=3)
    tm = prepare("models/mlp_bn.gdsl")
    _, va = D.split(arrays_for(tm, "digits"), tm.labels, 0.2, 3)
    ev = tm.compiled.eval().forward(**va, **r.params, **r.state)
    assert np.isclose(ev["J"], r.final["val_cost"], rtol=1e-9)
    acc = np.mean(np.argmax(ev["p"], axis=0) == va["y"])
    assert np.isclose(acc, r.final["val_accuracy"])


def test_mlp_bn_reaches_97_percent_on_the_digits():
    r = run_cli("run", "models/mlp_bn.gdsl", "--json")
    assert r.returncode == 0, r.stderr
    import json
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert last["val_accuracy"] >= 0.97, last


def test_a_batch_of_one_and_second_order_training_are_refused_for_a_model_with_state():
    from gdsl.tools.train import train
    with pytest.raises(GdslError, match="batches of at least 2"):
        train("models/mlp_bn.gdsl", epochs=1, batch_size=1)
    r = run_cli("run", "models/mlp_bn.gdsl", "--optimizer", "lbfgs")
    assert r.returncode == 1 and "a model with state (batch norm) changes it" in r.stderr


# -- mistakes, at the model's line ------------------------------------------------------------------

BAD = [
    ("input x[d, n]\nstate mu[d, 1] = 0\nnu <- mu\nJ = sum(x)", "3:1",
     "`nu <- ...` updates a state, but `nu` is not declared"),
    ("input x[d, n]\nparam w[d, 1]\nJ = sum(w * x)\nw <- 0.9 * w", "4:1",
     "`w` is not a state, it is a param: the optimiser updates params by their gradient"),
    ("input x[d, n]\nstate mu[d, 1] = 0\nh = 2 * x\nh <- mu\nJ = sum(h)\nmu <- mu", "4:1",
     "`h` is not a state, it is computed by the model"),
    ("input x[d, n]\nstate mu[d, 1] = 0\nJ = sum(x)", "2:1", "state `mu` has no update"),
    ("input x[d, n]\nstate mu[d, 1] = 0\nmu <- mu\nmu <- 2 * mu\nJ = sum(x)", "4:1",
     "state `mu` is updated twice"),
    ("input x[d, n]\nstate mu[d, 1] = 0\nmu <- 0.9 * mu + 0.1 * mean(x, axis=1)\nJ = sum(x)",
     "3:7", "the update of state `mu` has shape [d, d], but the state is declared [d, 1]"),
    ("input x[d, n]\nstate mu[d, 1] = 0\nparam mu[d, 1]\nmu <- mu\nJ = sum(x)", "3:7",
     "`mu` is already defined"),
    ("input x[d, n]\nstate mu[d, 1] = 0\nmu <- mu\nJ = sum(x)\noutput mu", "5:8",
     "`mu` is a state"),
    ("input x[d, n]\nstate mu[d, 1] = 0\nmu <- mu\nJ = sum(x - (mu if training else nu))", "4:34",
     "undefined name `nu`"),
    ("input x[d, n]\nJ = sum(x if training else foo(x))", "2:28", "unknown function `foo`"),
    ("input x[d, n]\ntraining = 2 * x\nJ = sum(x)", "2:1", "`training` is a keyword"),
    ("input x[d, n]\nstate mu[d, 1]\nmu <- mu\nJ = sum(x)", "2:15", "expected `=`"),
]


@pytest.mark.parametrize("text, where, message", BAD, ids=[m for _, _, m in BAD])
def test_mistakes_are_reported_at_their_line(text, where, message, tmp_path):
    path = tmp_path / "bad.gdsl"
    path.write_text(text)
    r = subprocess.run([*GDSL, "compile", str(path)], check=False, capture_output=True,
                       text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"{path}:{where}: error:" in r.stderr, r.stderr
    assert message in r.stderr, r.stderr


def test_differentiating_with_respect_to_a_state_is_refused():
    with pytest.raises(GdslError, match="it is a state, which training updates by its rule") as e:
        gdsl.compile(ONE_LAYER, wrt=["W", "mu"], filename="bn.gdsl")
    assert e.value.span.line == 7
    r = run_cli("compile", "models/mlp_bn.gdsl", "--wrt", "W1,var2")
    assert r.returncode == 1 and "models/mlp_bn.gdsl:19:7: error: cannot differentiate" in r.stderr


def test_onnx_refuses_training_mode_and_exports_evaluation(tmp_path):
    pytest.importorskip("onnx")
    r = run_cli("export", "models/mlp_bn.gdsl", "-o", str(tmp_path / "a.onnx"))
    assert r.returncode == 1 and "exported in evaluation mode" in r.stderr
    assert not (tmp_path / "a.onnx").exists()
    r = run_cli("export", "models/mlp_bn.gdsl", "--eval", "-o", str(tmp_path / "b.onnx"))
    assert r.returncode == 0, r.stderr


def test_explain_lists_the_updates():
    r = run_cli("explain", "models/mlp_bn.gdsl")
    assert r.returncode == 0
    assert "mu1 ← 0.9 * mu1 + 0.1 * m1   (mu1 [m, 1], at first 0)" in r.stdout
    assert "var1 ← 0.9 * var1 + 0.1 * v1 * n / (n - 1)" in r.stdout

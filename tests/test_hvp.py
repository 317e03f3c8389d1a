"""Hessian-vector products (gdsl compile --hvp, model.hvp, model.hessian) against HIPS autograd
and against central differences of the gradient, in float64, to 1e-8 relative.

    models/       every model: hvp against autograd's hessian_vector_product of an independent
                  interpreter of the graph as written (tests/adref.py) and the 5-point central
                  difference of value_and_grad along v; hessian against autograd.hessian
    random        500 random models (tests/randmodel.py, the differential test's generator):
                  hvp and hessian against autograd on the generator's own interpreter, hvp
                  against the central difference of gdsl's gradient
    every op      J = sum(G * op(a, b)) + sqnorm(op(a, b))/2 for each differentiable op: the
                  second derivative of every row, backward-only rows included, and each
                  backward-only row's own vjp against finite differences

Relative error: max |ours - reference| over every entry, over the largest |reference| entry
of any param (a norm-wise relative error, so that an entry that is 0 in exact arithmetic is
not divided by its own rounding noise); where H v itself is 0 in exact arithmetic (a model
linear in its params, or one whose curvature is all in kinks), over 1e-6 of the scale of the
computation (the largest of 1, the loss and the gradient's entries), as rounding noise is.

    GDSL_HVP_MODELS=5000 python3 -m pytest tests/test_hvp.py
"""

from __future__ import annotations

import os
import random
import warnings

import numpy as np
import pytest
from adref import Reference
from fuzzkit import record
from helpers import MODELS
from randmodel import Interpreter, Rejected, random_model

import gdsl
from gdsl.ir.ops import OPS

N_RANDOM = int(os.environ.get("GDSL_HVP_MODELS", "500"))
SEED = int(os.environ.get("GDSL_HVP_SEED", random.randrange(2**31)))
TOL = 1e-8
H = 1e-4                 # the central difference's step along v


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GDSL_CACHE", str(tmp_path / "cache"))


def rel_error(ours: dict, ref: dict, floor: float = 0.0) -> float:
    scale = max(max((float(np.abs(r).max(initial=0)) for r in ref.values()), default=0), floor,
                1e-300)
    return max(float(np.abs(np.asarray(ours[k], dtype=np.float64) - r).max(initial=0))
               for k, r in ref.items()) / scale if ref else 0.0


def central_hvp(grad, arrays: dict, v: dict, h: float = H) -> dict:
    """(-g(θ + 2hv) + 8g(θ + hv) - 8g(θ - hv) + g(θ - 2hv)) / 12h, g the gradient."""
    def g(t):
        shifted = {**arrays, **{k: np.asarray(arrays[k], dtype=np.float64) + t * v[k] for k in v}}
        return grad(shifted)
    a, b, c, d = g(2 * h), g(h), g(-h), g(-2 * h)
    return {k: (-a[k] + 8 * b[k] - 8 * c[k] + d[k]) / (12 * h) for k in v}


def smooth_central_hvp(grad, arrays, v):
    """The central difference, or None when the steps h and h/2 disagree: the path crossed a
    kink (relu, abs, max ...), where the gradient jumps and no difference quotient holds."""
    a = central_hvp(grad, arrays, v, H)
    b = central_hvp(grad, arrays, v, H / 2)
    return a if rel_error(a, b) <= TOL / 10 else None


def directions(rng, arrays: dict, wrt) -> dict:
    return {k: rng.normal(size=np.shape(arrays[k])) for k in wrt}


# -- the models in models/ -----------------------------------------------------------------------

DIMS = {"d": 5, "n": 6, "C": 3, "m": 4}


def model_arrays(m, rng) -> dict:
    out = {}
    for table in (m.inputs, m.params):
        for name, shape in table.items():
            if shape is None:
                shape = {"W": ("C", "d"), "x": ("d", "n"), "b": ("C", 1), "y": ("n",),
                         "lam": ()}[name]
            concrete = tuple(DIMS.get(d, d) if isinstance(d, str) else d for d in shape)
            if name in m.labels:
                out[name] = rng.integers(0, DIMS["C"], size=concrete[-1:])
            elif name == "lam":
                out[name] = np.float64(0.1)
            elif table is m.inputs and m.task_target == name:
                out[name] = rng.uniform(0, 1, size=concrete) if m.binary else rng.normal(size=concrete)
            else:
                out[name] = rng.normal(size=concrete) * (0.5 if table is m.params else 1.0)
    return out


def _task(m, path):
    text = path.read_text()
    m.task_target = "y" if any(f in text for f in ("bce(", "mse(", "mae(", "huber(")) else None
    m.binary = "bce(" in text
    return m


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_every_model_hvp_and_hessian(path):
    m = _task(gdsl.compile_file(path), path)
    rng = np.random.default_rng(7)
    worst = {"autograd": 0.0, "central": 0.0, "hessian": 0.0}
    checked = 0
    for _attempt in range(20):
        arrays = model_arrays(m, rng)
        v = directions(rng, arrays, m.wrt)
        ours = m.hvp(v, **arrays)
        assert set(ours) == set(m.wrt)
        ref = Reference(m, arrays)
        worst["autograd"] = max(worst["autograd"], rel_error(ours, ref.hvp(v)))
        central = smooth_central_hvp(lambda a: m.value_and_grad(**a)[1], arrays, v)
        if central is None:
            continue
        worst["central"] = max(worst["central"], rel_error(ours, central))
        checked += 1
        if checked == 2:
            break
    assert checked, "every draw crossed a kink"
    H_ours = m.hessian(**arrays)
    H_ref = ref.hessian()
    worst["hessian"] = float(np.abs(H_ours - H_ref).max() / np.abs(H_ref).max())
    np.testing.assert_allclose(H_ours, H_ours.T, rtol=0, atol=1e-10 * np.abs(H_ours).max())
    print(f"\n{path.name}: hvp vs autograd {worst['autograd']:.1e}, vs central differences "
          f"{worst['central']:.1e}, hessian vs autograd {worst['hessian']:.1e}")
    assert max(worst.values()) <= TOL, worst


def test_compile_hvp_emits_the_function(tmp_path):
    from helpers import run_cli
    out = tmp_path / "m.py"
    r = run_cli("compile", "models/mlp2.gdsl", "--hvp", "-o", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "def hvp(*, v, x, y, W1, b1, W2, b2, lam=0.0005):" in text
    assert "return {'W1': hv_W1, 'b1': hv_b1, 'W2': hv_W2, 'b2': hv_b2}" in text
    plain = run_cli("compile", "models/mlp2.gdsl")
    assert "def hvp" not in plain.stdout          # only when asked: the module is as before


def test_hvp_takes_its_directions_by_name(rng):
    m = gdsl.compile("input x[3]\nparam w[3]\nJ = sum(exp(w * x))")
    x, w = rng.normal(size=3), rng.normal(size=3)
    hv = m.hvp({"w": np.ones(3)}, x=x, w=w)
    np.testing.assert_allclose(hv["w"], x * x * np.exp(w * x))
    for bad, words in [({}, "lack `w`"), ({"w": np.ones(3), "q": 1}, "`q`"),
                       ({"w": np.ones(4)}, "shape (4,)"), ([1, 2, 3], "must be a dict"),
                       ({"w": ["a", "b", "c"]}, "w")]:
        with pytest.raises(gdsl.GdslError) as e:
            m.hvp(bad, x=x, w=w)
        assert words in str(e.value.render())


def test_a_model_with_a_value_named_v(rng):
    """hvp's directions arrive as `v`; a model's own v is renamed in the code, not lost."""
    m = gdsl.compile("input v[3]\nparam w[3]\nu = w * v\nJ = sum(u * u)")
    v_data, w = rng.normal(size=3), rng.normal(size=3)
    hv = m.hvp({"w": np.ones(3)}, v=v_data, w=w)
    np.testing.assert_allclose(hv["w"], 2 * v_data * v_data)


def test_undeclared_shapes_are_specialised_with_hvp(rng):
    m = gdsl.compile_file("models/oneliner.gdsl")
    arrays = {"W": rng.normal(size=(3, 4)), "x": rng.normal(size=(4, 5)),
              "b": rng.normal(size=(3, 1)), "y": rng.integers(0, 3, 5), "lam": 0.1}
    v = directions(rng, arrays, m.wrt)
    ours = m.hvp(v, **arrays)
    assert rel_error(ours, Reference(m, arrays).hvp(v)) <= TOL


def test_the_generic_module_sums_back_at_call_time(rng):
    """Shapes left to call time (no specialisation): broadcasting is undone by sum_to, whose
    own vjp the second pass needs."""
    from gdsl.pipeline import run_pipeline
    from gdsl.runtime import load_module
    c = run_pipeline("J = sum(exp(a * b) * sigmoid(a + b))", wrt=["a", "b"], hvp=True)
    assert any(c.model.node(n)["op"] == "sum_to" for n in c.model.hvp_order)
    mod, _ = load_module(c.code)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 1))
    v = {"a": rng.normal(size=a.shape), "b": rng.normal(size=b.shape)}
    ours = mod.hvp(v=v, a=a, b=b)
    central = central_hvp(lambda arr: mod.value_and_grad(**arr)[1], {"a": a, "b": b}, v)
    assert rel_error(ours, central) <= TOL


# -- random models -----------------------------------------------------------------------------

def random_reference(m, arrays):
    """The generator's own interpreter on autograd, as a function of the wrt values flattened."""
    import autograd.numpy as anp
    wrt = m.wrt if m.wrt is not None else [k for k, (kind, _) in m.leaves.items() if kind == "param"]
    env0 = dict(arrays)
    for k, value in m.consts.items():
        env0.setdefault(k, value)
    shapes = [np.shape(env0[k]) for k in wrt]
    sizes = [int(np.prod(s)) for s in shapes]

    def unflat(theta):
        out, i = {}, 0
        for k, shape, size in zip(wrt, shapes, sizes):
            out[k] = anp.reshape(theta[i:i + size], shape)
            i += size
        return out

    def f(theta):
        env = dict(env0)
        env.update(unflat(theta))
        it = Interpreter(env, m.sizes["C"])
        for name, e in m.statements:
            env[name] = it.eval(e)
        return env[m.loss]

    theta = np.concatenate([np.reshape(np.asarray(env0[k], dtype=np.float64), -1) for k in wrt])
    return wrt, theta, f, unflat


def cross_check_hvp(seed: int):
    """None if gdsl's hvp agrees, 'skipped' if no draw away from kinks was found, else why not."""
    import autograd
    m = random_model(seed)
    rng = np.random.default_rng(seed)
    try:
        compiled = gdsl.compile(m.text, wrt=m.wrt, optimize=bool(seed % 4))
    except Exception as e:  # noqa: BLE001 -- the generator writes valid models only
        return m, f"compile raised {type(e).__name__}: {e}"
    for _attempt in range(20):
        arrays = m.arrays(rng, int_labels=True)
        wrt, theta, f, unflat = random_reference(m, arrays)
        v = {k: rng.normal(size=np.shape(arrays.get(k, m.consts.get(k)))) for k in wrt}
        vflat = np.concatenate([np.reshape(v[k], -1) for k in wrt])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = unflat(autograd.hessian_vector_product(f)(theta, vflat))
                for t in (2 * H, -2 * H):       # the stencil's ends are away from kinks too
                    f(theta + t * vflat)
        except Rejected:
            continue
        ref = {k: np.asarray(val) for k, val in ref.items()}
        if not all(np.all(np.isfinite(r)) for r in ref.values()):
            continue
        at = {**arrays, **{k: np.asarray(arrays.get(k, m.consts.get(k)), dtype=np.float64)
                           for k in wrt}}
        try:
            ours = compiled.hvp(v, **at)
            central = smooth_central_hvp(lambda a: compiled.value_and_grad(**a)[1], at, v)
        except Exception as e:  # noqa: BLE001 -- any failure is reported with the model
            return m, f"gdsl raised {type(e).__name__}: {e}"
        if central is None:
            continue
        loss, grads = compiled.value_and_grad(**at)
        floor = 1e-6 * max([1.0, abs(float(loss))] + [float(np.abs(g).max(initial=0))
                                                       for g in grads.values()])
        e_ref, e_cd = rel_error(ours, ref, floor), rel_error(ours, central, floor)
        if e_ref > TOL or e_cd > TOL:
            return m, (f"hvp off: {e_ref:.2e} from autograd, {e_cd:.2e} from central "
                       f"differences\n  gdsl     {ours}\n  autograd {ref}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            H_ref = autograd.hessian(f)(theta)
            H_ours = compiled.hessian(**at)
        e_h = rel_error({"H": H_ours}, {"H": H_ref}, floor)
        if e_h > TOL:
            return m, f"hessian off: {e_h:.2e} from autograd\n  gdsl     {H_ours}\n  autograd {H_ref}"
        return max(e_ref, e_h), e_cd
    return "skipped"


def test_random_models_hvp(request):
    checked = skipped = 0
    failures = []
    worst = [0.0, 0.0]
    seed = SEED
    while checked + len(failures) < N_RANDOM and seed < SEED + 3 * N_RANDOM:
        r = cross_check_hvp(seed)
        if r == "skipped":
            skipped += 1
        elif isinstance(r[0], float):
            checked += 1
            worst = [max(worst[0], r[0]), max(worst[1], r[1])]
        else:
            failures.append((seed, *r))
        seed += 1
    print(f"\nhvp and hessian of {checked} random models agree with autograd (worst "
          f"{worst[0]:.1e}) and central differences (worst {worst[1]:.1e}); {len(failures)} disagree, {skipped} "
          f"skipped (no draw away from kinks; seeds {SEED}..{seed - 1})")
    record(request.config, "random models' hvp and hessian cross-checked against autograd",
           checked)
    if failures:
        shown = "\n\n".join(f"=== seed {s}: {why}\n--- model ---\n{m.text}--- wrt={m.wrt} "
                            f"sizes={m.sizes} optimize={bool(s % 4)}" for s, m, why in failures[:3])
        pytest.fail(f"{len(failures)} random models' hvp disagree:\n\n{shown}", pytrace=False)
    assert checked >= N_RANDOM


# -- every op's second derivative ---------------------------------------------------------------

def _pos(rng, shape):
    return rng.uniform(0.5, 2.0, size=shape)


def _away(rng, shape):
    x = rng.normal(size=shape)
    return np.where(np.abs(x) < 0.2, 0.7, x)


# expression of a, b (and labels y), the shapes and how to draw a and b
OP_CASES = {
    "add": ("a + b", (3, 4), (3, 1), None), "sub": ("a - b", (3, 4), (1, 4), None),
    "mul": ("a * b", (3, 4), (4,), None), "div": ("a / b", (3, 4), (3, 1), "b+"),
    "pow": ("a ** b", (3, 4), (3, 4), "a+"), "neg": ("-a", (3, 4), None, None),
    "maximum": ("maximum(a, b)", (3, 4), (3, 4), "apart"),
    "minimum": ("minimum(a, b)", (3, 4), (3, 4), "apart"),
    "matmul": ("a @ b", (3, 4), (4, 2), None), "transpose": ("a.T", (3, 4), None, None),
    "exp": ("exp(a)", (3, 4), None, None), "log": ("log(a)", (3, 4), None, "a+"),
    "tanh": ("tanh(a)", (3, 4), None, None), "sigmoid": ("sigmoid(a)", (3, 4), None, None),
    "relu": ("relu(a)", (3, 4), None, "a~"), "abs": ("abs(a)", (3, 4), None, "a~"),
    "sqrt": ("sqrt(a)", (3, 4), None, "a+"), "square": ("square(a)", (3, 4), None, None),
    "softplus": ("softplus(a)", (3, 4), None, None), "sin": ("sin(a)", (3, 4), None, None),
    "cos": ("cos(a)", (3, 4), None, None), "sqnorm": ("sqnorm(a)", (3, 4), None, None),
    "sum": ("sum(a, axis=1)", (3, 4), None, None), "mean": ("mean(a, axis=0)", (3, 4), None, None),
    "max": ("max(a, axis=1, keepdims=True)", (3, 4), None, "distinct"),
    "softmax": ("softmax(a)", (3, 4), None, None),
    "logsoftmax": ("logsoftmax(a, axis=1)", (3, 4), None, None),
    "logsumexp": ("logsumexp(a)", (3, 4), None, None),
    "xent": ("xent(softmax(a), y)", (3, 4), None, "labels"),
    "svm": ("svm(a, y)", (3, 4), None, "labels"),
    "bce": ("bce(a, b)", (3, 4), (3, 4), "b01"), "mse": ("mse(a, b)", (1, 4), (4,), None),
    "mae": ("mae(a, b)", (3, 4), (3, 4), "apart"),
    "huber": ("huber(a, b, delta=0.5)", (3, 4), (3, 4), "apart"),
    "conv2d": ("conv2d(a, b, stride=2, padding=1)", (2, 5, 6, 3), (3, 2, 3, 2), None),
    "maxpool": ("maxpool(a, size=2)", (2, 5, 4, 3), None, "distinct"),
    "flatten": ("flatten(a) * flatten(a)", (2, 3, 2, 4), None, None),
    "unflatten": ("unflatten(a, height=2, width=3) ** 3", (12, 4), None, None),
}
# matmul of vectors (mm_grad_x, mm_grad_y), max of all (max_grad, max_pick), unfused xent,
# slices
EXTRA_CASES = {
    "matvec": ("a @ b", (3, 4), (4,), None), "vecmat": ("a @ b", (4,), (4, 3), None),
    "dot": ("a @ b", (4,), (4,), None), "max all": ("max(a)", (3, 4), None, "distinct"),
    "xent of p": ("xent(exp(a) / sum(exp(a), axis=0, keepdims=True), y)", (3, 4), None, "labels"),
    "svm composed": ("svm(tanh(a) * 3, y)", (3, 4), None, "labels"),
    # x[t] (take, and take_grad in its gradient): slices along axis 0, as a loop reads them
    "slices": ("a[1] * a[3] + tanh(a[2])", (3, 4), None, None),
}


def _draw_case(rng, sa, sb, domain):
    a = rng.normal(size=sa)
    b = None if sb is None else rng.normal(size=sb)
    if domain == "b+":
        b = _pos(rng, sb)
    elif domain == "a+":
        a = _pos(rng, sa)
    elif domain == "a~":
        a = _away(rng, sa)
    elif domain == "apart":
        b = a + rng.choice([-1, 1], size=sa) * rng.uniform(0.3, 1.0, size=sa) if sb == sa else b
    elif domain == "distinct":
        a = rng.permutation(np.arange(np.prod(sa), dtype=float)).reshape(sa) / 3
    elif domain == "b01":
        b = rng.uniform(0, 1, size=sb)
    return a, b


def _case_model(case: str, rng) -> tuple[str, dict, list]:
    """The model text of an op case (J = sum(G * o) + sqnorm(o) / 2 of o = the expression),
    its arrays and the names it is differentiated for."""
    expr, sa, sb, domain = {**OP_CASES, **EXTRA_CASES}[case]
    a, b = _draw_case(rng, sa, sb, domain)
    lines = [f"input a[{', '.join(map(str, sa))}]"]
    arrays = {"a": a}
    wrt = ["a"]
    if sb is not None:
        lines.append(f"input b[{', '.join(map(str, sb))}]")
        arrays["b"] = b
        wrt.append("b") if domain != "b01" else None
    if domain == "labels":
        lines.append(f"input y[{sa[1]}]")
        arrays["y"] = rng.integers(0, sa[0], size=sa[1])
    out_shape = np.shape(gdsl.compile("\n".join(lines) + f"\no = {expr}\nJ = sum(o)\noutput o",
                                      wrt=wrt).forward(**arrays)["o"])
    lines.append(f"input G[{', '.join(map(str, out_shape))}]" if out_shape else "input G")
    arrays["G"] = rng.normal(size=out_shape)
    lines += [f"o = {expr}", "J = sum(G * o) + sqnorm(o) / 2"]
    return "\n".join(lines), arrays, wrt


@pytest.mark.parametrize("case", sorted(OP_CASES) + sorted(EXTRA_CASES))
def test_second_derivative_of_every_op(case, rng):
    text, arrays, wrt = _case_model(case, rng)
    for optimize in (True, False):
        m = gdsl.compile(text, wrt=wrt, optimize=optimize)
        v = directions(rng, arrays, wrt)
        ours = m.hvp(v, **arrays)
        e_ref = rel_error(ours, Reference(m, arrays).hvp(v))
        central = central_hvp(lambda arr, m=m: m.value_and_grad(**arr)[1], arrays, v)
        e_cd = rel_error(ours, central)
        assert e_ref <= TOL and e_cd <= TOL, (optimize, e_ref, e_cd)


def test_every_op_is_exercised_by_second_derivatives():
    """Every row with a vector-Jacobian product is differentiated twice by some case above:
    in the model as written, or made by a first derivative and differentiated again."""
    seen = set()
    for case in sorted(OP_CASES) + sorted(EXTRA_CASES):
        text, _, wrt = _case_model(case, np.random.default_rng(0))
        for optimize in (True, False):
            m = gdsl.compile(text, wrt=wrt, optimize=optimize)
            second = m._second_order().model   # the ops differentiated twice, and their rules'
            seen.update(d["op"] for _, d in m.graph.nodes(data=True))
            seen.update(second.node(n)["op"] for n in second.hvp_order)
    rows = {name for name, op in OPS.items() if op.vjp}
    missing = rows - seen - {"sum_to"}     # (sum_to: the generic-module test above)
    assert not missing, f"rows whose vjps no hvp reaches: {sorted(missing)}"


BACKWARD_ONLY = {
    # op: (attrs, argument values)
    "mm_grad_x": ({}, lambda r: [r.normal(size=(3,)), r.normal(size=(3, 4)), r.normal(size=(4,))]),
    "mm_grad_y": ({}, lambda r: [r.normal(size=(4,)), r.normal(size=(3,)), r.normal(size=(3, 4))]),
    "sum_to": ({}, lambda r: [r.normal(size=(3, 4)), r.normal(size=(3, 1))]),
    "expand_to": ({"axis": 1, "keepdims": False},
                  lambda r: [r.normal(size=(3,)), r.normal(size=(3, 4))]),
    "vdot": ({}, lambda r: [r.normal(size=(3, 4)), r.normal(size=(3, 4))]),
    "conv2d_grad_x": ({"stride": 2, "padding": 1}, lambda r: [
        r.normal(size=(3, 3, 4, 2)), r.normal(size=(2, 5, 6, 2)), r.normal(size=(3, 2, 3, 2))]),
    "conv2d_grad_K": ({"stride": 1, "padding": 0}, lambda r: [
        r.normal(size=(3, 3, 5, 2)), r.normal(size=(2, 5, 6, 2)), r.normal(size=(3, 2, 3, 2))]),
    "reshape_to": ({}, lambda r: [r.normal(size=(6, 4)), r.normal(size=(2, 3, 4))]),
}


@pytest.mark.parametrize("op", sorted(BACKWARD_ONLY))
def test_backward_only_rows_vjps_against_finite_differences(op, rng):
    """The vjps a second derivative needs of the rows only the backward pass makes."""
    from gdsl.tools.check import local_errors
    attrs, args = BACKWARD_ONLY[op]
    errors = local_errors(op, attrs, args(rng), rng)
    assert errors and max(errors.values()) < 1e-7, errors


def test_max_grad_and_svm_grad_are_linear_in_the_cotangent(rng):
    """Their vjps in g are max_pick and <c, svm_grad(1, M, Y)>: checked against the adjoint
    identity <c, f(g)> = <f*(c), g> on values where the masks are what the forward made."""
    from gdsl.ir.evaluate import evaluate_node
    x = rng.permutation(np.arange(12.0)).reshape(3, 4)
    m = x.max(axis=1)
    g, c = rng.normal(size=3), rng.normal(size=(3, 4))
    at = {"axis": 1, "keepdims": False}
    left = np.vdot(c, evaluate_node("max_grad", at, [g, x, m]))
    right = np.vdot(evaluate_node("max_pick", at, [c, x, m]), g)
    assert np.isclose(left, right)


def test_a_numba_model_s_hvp_runs_numpy_code(rng):
    """The numba target emits no hvp: model.hvp and model.hessian of a model compiled for it
    run its NumPy twin; gdsl compile --target numba --hvp is refused (exit 2) rather than
    writing a module without it."""
    pytest.importorskip("numba")
    from helpers import run_cli
    fast = gdsl.compile_file("models/mlp2.gdsl", target="numba")
    plain = gdsl.compile_file("models/mlp2.gdsl")
    arrays = {"x": rng.normal(size=(5, 6)), "y": rng.integers(0, 3, 6),
              "W1": rng.normal(size=(4, 5)), "b1": rng.normal(size=(4, 1)),
              "W2": rng.normal(size=(3, 4)), "b2": rng.normal(size=(3, 1))}
    v = directions(rng, arrays, plain.wrt)
    assert rel_error(fast.hvp(v, **arrays), Reference(plain, arrays).hvp(v)) <= TOL
    np.testing.assert_array_equal(fast.hessian(**arrays), plain.hessian(**arrays))
    r = run_cli("compile", "models/mlp2.gdsl", "--target", "numba", "--hvp")
    assert r.returncode == 2 and "the numba target emits no hvp" in r.stderr


def test_onnx_with_hvp_is_refused_rather_than_dropped(tmp_path):
    """gdsl compile --target onnx --hvp wrote the forward pass alone, without a word: it is
    refused as for numba, and nothing is written."""
    pytest.importorskip("onnx")
    from helpers import run_cli
    out = tmp_path / "m.onnx"
    r = run_cli("compile", "models/mlp2.gdsl", "--target", "onnx", "--hvp", "-o", str(out))
    assert r.returncode == 2 and "the onnx target emits no hvp" in r.stderr
    assert not out.exists()

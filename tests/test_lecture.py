"""Issue 18: every slide-level item of the lecture by a command (docs/lecture.md's table).

What each explain mode prints for the lecture's two models, written out by hand from the
lecture (its forward order z, s, p, l, r, J, its BackOp order J, r, l, p, s, b, z, W, its
local Jacobians and its mini-batch procedure); the numbers of --jacobians and --trace against
NumPy and central differences; the pictures' extents as each renderer lays them out, with no
label or node overlapping another and no edge through a label or a node, for every model in
models/; the literal -log(y.T @ p), models without a loss, the neuron-level figure, sin and
cos, tidy derivatives, names from the lecture.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from helpers import MODELS, ROOT, numeric_grad, run_cli
from overlaps import graphviz_extents, matplotlib_extents, problems

import gdsl
from gdsl.views.draw import layout_dot, layout_of, neurons
from gdsl.views.explain import explain
from gdsl.views.lesson import Lesson
from gdsl.views.numbers import JacobianCheck, Trace, backward_run, forward_run
from gdsl.views.view import View, teaching_model, teaching_view

SOFTMAX = ROOT / "models" / "linear_softmax.gdsl"
SVM = ROOT / "models" / "linear_svm.gdsl"


def need(tool: str) -> None:
    """Skip where the tool is missing, except in CI, whose .ci/run installs it."""
    if shutil.which(tool):
        return
    if os.environ.get("CI") and shutil.which("apt-get"):
        pytest.fail(f"`{tool}` is missing, but .ci/run installs it with apt-get")
    pytest.skip(f"`{tool}` is not installed (.ci/run installs it with apt-get)")


def body(text: str) -> str:
    return text.split("\n", 1)[1]       # (the first line names the file as given)


# -- explain, text: the lecture's slides for linear_softmax.gdsl, by hand ------------------------

SOFTMAX_TEXT = """\

Forward pass: the order in which values are computed
  inputs: x [d, n], y [C, n]
  params: W [C, d], b [C, 1]
  consts: λ = 0.01
  1. z = Wx   from W, x
  2. s = z + b   from z, b
  3. p = softmax(s)   from s
  4. l = −log(yᵀp)   from p, y
      for one example (x, y); over the mini-batch the node holds L = 1/|D| Σ_{(x,y)∈D} l, the mean over its examples
  5. r = ‖W‖²   from W
  6. J = l + λr   from l, λ, r
  the graph represents J(x, y, W, b, λ) = −log(yᵀsoftmax(Wx + b)) + λ‖W‖²

Backward pass: the order in which each gradient is completed (BackOp), for one example (x, y)
  1. ∂J/∂J = 1   (the result node: start the backward pass)
  2. ∂J/∂r = ∂J/∂J ∂J/∂r
      ∂J/∂r = λ
  3. ∂J/∂l = ∂J/∂J ∂J/∂l
      ∂J/∂l = 1
  4. ∂J/∂p = ∂J/∂l ∂l/∂p
      ∂l/∂p = −yᵀ/(yᵀp)
  5. ∂J/∂s = ∂J/∂p ∂p/∂s
      ∂p/∂s = diag(p) − ppᵀ
  6. ∂J/∂b = ∂J/∂s ∂s/∂b
      ∂s/∂b = I
  7. ∂J/∂z = ∂J/∂s ∂s/∂z
      ∂s/∂z = I
  8. ∂J/∂W = ∂J/∂z ∂z/∂vec(W) + ∂J/∂r ∂r/∂W
      ∂z/∂vec(W) = I ⊗ xᵀ
      ∂r/∂W = 2W

Gradients of the params for one example (x, y), as in the lecture
  g = ∂J/∂l = 1
  g ← g ∂l/∂p = −yᵀ/(yᵀp)   ← ∂J/∂p
  g ← g ∂p/∂s = g (diag(p) − ppᵀ)   ← ∂J/∂s
  g ← g ∂s/∂z = g I   ← ∂J/∂z
  g = ∂J/∂s = ∂J/∂z (a row vector), so g = −yᵀ/(yᵀp) (diag(p) − ppᵀ)
  ∂J/∂W = gᵀxᵀ + 2λW
  ∂J/∂b = g

The cost of a mini-batch D
  J(D, W, b) = L(D, W, b) + λ‖W‖² = 1/|D| Σ_{(x,y)∈D} l(x, y, W, b) + λ‖W‖²
  where l(x, y, W, b) = −log(yᵀp) is the loss of one example (x, y) ∈ D, the mini-batch of |D| = n examples (the columns of x, y)

Gradients for a mini-batch
  ∂J(D, W, b)/∂W = ∂L(D, W, b)/∂W + 2λW = 1/|D| Σ_{(x,y)∈D} ∂l(x, y, W, b)/∂W + 2λW
  ∂J(D, W, b)/∂b = ∂L(D, W, b)/∂b = 1/|D| Σ_{(x,y)∈D} ∂l(x, y, W, b)/∂b
  where, for each example, ∂l/∂b = g, ∂l/∂W = gᵀxᵀ, with g = −yᵀ/(yᵀp) (diag(p) − ppᵀ)

Computing them for a mini-batch, as in the lecture
  Set all entries in ∂L/∂b and ∂L/∂W to zero.
  for (x, y) ∈ D:
      1. Let g = −yᵀ/(yᵀp) (diag(p) − ppᵀ)
      2. Add the gradient of l w.r.t. b computed at (x, y): ∂L/∂b += g
      3. Add the gradient of l w.r.t. W computed at (x, y): ∂L/∂W += gᵀxᵀ
  Divide by the number of entries in D: ∂L/∂b /= |D|, ∂L/∂W /= |D|
  Add the gradient for the regularization term: ∂J/∂b = ∂L/∂b, ∂J/∂W = ∂L/∂W + 2λW
"""

SVM_TEXT = """\

Forward pass: the order in which values are computed
  inputs: x [d, n], y [C, n]
  params: W [C, d], b [C, 1]
  consts: λ = 0.001
  1. z = Wx   from W, x
  2. s = z + b   from z, b
  3. l = svm(s, y)   from s, y
      for one example (x, y); over the mini-batch the node holds L = 1/|D| Σ_{(x,y)∈D} l, the mean over its examples
  4. r = ‖W‖²   from W
  5. J = l + λr   from l, λ, r
  the graph represents J(x, y, W, b, λ) = svm(Wx + b, y) + λ‖W‖²

Backward pass: the order in which each gradient is completed (BackOp), for one example (x, y)
  1. ∂J/∂J = 1   (the result node: start the backward pass)
  2. ∂J/∂r = ∂J/∂J ∂J/∂r
      ∂J/∂r = λ
  3. ∂J/∂l = ∂J/∂J ∂J/∂l
      ∂J/∂l = 1
  4. ∂J/∂s = ∂J/∂l ∂l/∂s
      ∂l/∂s = Σⱼ≠y [sⱼ − s_y + 1 > 0](eⱼ − e_y)ᵀ
  5. ∂J/∂b = ∂J/∂s ∂s/∂b
      ∂s/∂b = I
  6. ∂J/∂z = ∂J/∂s ∂s/∂z
      ∂s/∂z = I
  7. ∂J/∂W = ∂J/∂z ∂z/∂vec(W) + ∂J/∂r ∂r/∂W
      ∂z/∂vec(W) = I ⊗ xᵀ
      ∂r/∂W = 2W

Gradients of the params for one example (x, y), as in the lecture
  g = ∂J/∂l = 1
  g ← g ∂l/∂s = Σⱼ≠y [sⱼ − s_y + 1 > 0](eⱼ − e_y)ᵀ   ← ∂J/∂s
  g ← g ∂s/∂z = g I   ← ∂J/∂z
  g = ∂J/∂s = ∂J/∂z (a row vector), so g = Σⱼ≠y [sⱼ − s_y + 1 > 0](eⱼ − e_y)ᵀ
  ∂J/∂W = gᵀxᵀ + 2λW
  ∂J/∂b = g

The cost of a mini-batch D
  J(D, W, b) = L(D, W, b) + λ‖W‖² = 1/|D| Σ_{(x,y)∈D} l(x, y, W, b) + λ‖W‖²
  where l(x, y, W, b) = svm(s, y) is the loss of one example (x, y) ∈ D, the mini-batch of |D| = n examples (the columns of x, y)

Gradients for a mini-batch
  ∂J(D, W, b)/∂W = ∂L(D, W, b)/∂W + 2λW = 1/|D| Σ_{(x,y)∈D} ∂l(x, y, W, b)/∂W + 2λW
  ∂J(D, W, b)/∂b = ∂L(D, W, b)/∂b = 1/|D| Σ_{(x,y)∈D} ∂l(x, y, W, b)/∂b
  where, for each example, ∂l/∂b = g, ∂l/∂W = gᵀxᵀ, with g = Σⱼ≠y [sⱼ − s_y + 1 > 0](eⱼ − e_y)ᵀ

Computing them for a mini-batch, as in the lecture
  Set all entries in ∂L/∂b and ∂L/∂W to zero.
  for (x, y) ∈ D:
      1. Let g = Σⱼ≠y [sⱼ − s_y + 1 > 0](eⱼ − e_y)ᵀ
      2. Add the gradient of l w.r.t. b computed at (x, y): ∂L/∂b += g
      3. Add the gradient of l w.r.t. W computed at (x, y): ∂L/∂W += gᵀxᵀ
  Divide by the number of entries in D: ∂L/∂b /= |D|, ∂L/∂W /= |D|
  Add the gradient for the regularization term: ∂J/∂b = ∂L/∂b, ∂J/∂W = ∂L/∂W + 2λW
"""


@pytest.mark.parametrize(("path", "want"), [(SOFTMAX, SOFTMAX_TEXT), (SVM, SVM_TEXT)],
                         ids=["linear_softmax", "linear_svm"])
def test_explain_text_is_the_lecture(path, want):
    r = run_cli("explain", str(path))
    assert r.returncode == 0, r.stderr
    assert body(r.stdout) == want


@pytest.mark.parametrize(("path", "want"), [(SOFTMAX, SOFTMAX_TEXT), (SVM, SVM_TEXT)],
                         ids=["linear_softmax", "linear_svm"])
def test_one_example_is_the_same_without_the_mini_batch(path, want):
    text = body(run_cli("explain", str(path), "--one-example").stdout)
    cut = want.index("The cost of a mini-batch")
    expected = want[:cut].replace(", for one example (x, y)\n", "\n").replace(
        "Gradients of the params for one example (x, y), as in the lecture",
        "Gradients of the params (one example, as in the lecture)")
    expected = "\n".join(line for line in expected.split("\n")
                         if "over the mini-batch the node holds" not in line)
    assert text == expected[:-1]            # (the cut leaves the blank line between sections)


def test_markdown_has_every_formula_as_code():
    text = explain(gdsl.compile_file(SOFTMAX), "markdown")
    for line in ("4. `l = −log(yᵀp)`   from p, y",
                 "   - `∂z/∂vec(W) = I ⊗ xᵀ`",
                 "- `g ← g ∂p/∂s = g (diag(p) − ppᵀ)`   ← `∂J/∂s`",
                 "- `J(D, W, b) = L(D, W, b) + λ‖W‖² = 1/|D| Σ_{(x,y)∈D} l(x, y, W, b) + λ‖W‖²`",
                 "- Set all entries in `∂L/∂b` and `∂L/∂W` to zero.",
                 "   3. Add the gradient of l w.r.t. W computed at (x, y): `∂L/∂W += gᵀxᵀ`"):
        assert line in text.splitlines(), line
    text = explain(gdsl.compile_file(SVM), "markdown")
    assert "   - `∂l/∂s = Σⱼ≠y [sⱼ − s_y + 1 > 0](eⱼ − e_y)ᵀ`" in text.splitlines()


@pytest.mark.parametrize("path", [SOFTMAX, SVM], ids=["linear_softmax", "linear_svm"])
def test_latex_is_a_document_of_ascii(path):
    tex = explain(gdsl.compile_file(path), "latex", jacobians=True, trace=True,
                  dims={"d": 3, "C": 2}, pseudocode_=True)
    assert tex.startswith("% gdsl explain") and r"\begin{document}" in tex
    assert tex.isascii()
    assert r"\item 1." not in tex and r"\item[1.]" in tex
    assert r"\frac{\partial J}{\partial W} = g^{\top}x^{\top} + 2\lambda W" in tex
    assert r"\frac{\partial z}{\partial \operatorname{vec}(W)} = I \otimes x^{\top}" in tex
    assert r"\frac{\partial L}{\partial W} \mathrel{+}= g^{\top}x^{\top}" in tex


@pytest.mark.parametrize("path", [SOFTMAX, SVM], ids=["linear_softmax", "linear_svm"])
def test_latex_compiles_with_pdflatex(path, tmp_path):
    need("pdflatex")
    tex = explain(gdsl.compile_file(path), "latex", jacobians=True, trace=True,
                  dims={"d": 3, "C": 2}, pseudocode_=True)
    (tmp_path / "notes.tex").write_text(tex, encoding="ascii")
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "notes.tex"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stdout[-3000:]
    assert (tmp_path / "notes.pdf").read_bytes()[:5] == b"%PDF-"


# -- --jacobians: independent of the rules it checks ------------------------------------------

@pytest.mark.parametrize("path", [SOFTMAX, SVM], ids=["linear_softmax", "linear_svm"])
def test_jacobians_are_numbers_checked_against_finite_differences(path):
    m = gdsl.compile_file(path)
    L = Lesson(View(teaching_model(m)))
    check = JacobianCheck(L, m)
    assert check.rules_max <= 1e-7 and check.max_diff <= 1e-7
    x, W = check.arrays["x"], check.arrays["W"]
    v = L.view
    z = next(n for n in v.nodes if v.name[n] == "z")
    Wn = next(n for n in v.nodes if v.name[n] == "W")
    # ∂z/∂vec(W) = I ⊗ xᵀ, the lecture's Kronecker product, from NumPy
    np.testing.assert_allclose(check.edge[(z, Wn)], np.kron(np.eye(W.shape[0]), x.T), atol=1e-15)
    np.testing.assert_allclose(check.fd.edge[(z, Wn)], np.kron(np.eye(W.shape[0]), x.T),
                               atol=1e-9)
    text = explain(m, jacobians=True)
    assert "∂z/∂vec(W) = I ⊗ xᵀ =" in text and "(they agree to 1e-07)" in text
    assert "--show-matrices" not in text        # 3×12 is shown at the default sizes


def test_jacobians_of_a_model_without_a_loss_are_refused(tmp_path):
    path = tmp_path / "scores.gdsl"
    path.write_text("input x[d, 1]\nparam W[C, d]\nparam b[C, 1]\ns = W @ x + b\n")
    r = run_cli("explain", str(path), "--jacobians")
    assert r.returncode == 1 and "need a loss" in r.stderr and "Traceback" not in r.stderr


# -- --trace: a worked example ------------------------------------------------------------------

def test_trace_one_example_numbers(capsys):
    m = gdsl.compile_file(SOFTMAX)
    v = View(teaching_model(m))
    t = Trace(Lesson(v), m, {"d": 3, "C": 2})
    a = t.arrays
    assert a["x"].shape == (3, 1) and a["W"].shape == (2, 3)
    named = {v.name[n]: t.values[n] for n in v.nodes}
    s = a["W"] @ a["x"] + a["b"]
    p = np.exp(s) / np.exp(s).sum()
    np.testing.assert_allclose(named["s"], s, rtol=1e-14)
    np.testing.assert_allclose(named["p"], p, rtol=1e-14)
    np.testing.assert_allclose(named["l"], -np.log(a["y"].T @ p).item(), rtol=1e-14)
    text = explain(m, trace=True, dims={"d": 3, "C": 2})
    for line in ("      local ∂z/∂vec(W) = I ⊗ xᵀ =",
                 "      so g = ∂J/∂s =",
                 "      and, the vector cut back into the rows of W (2×3), ∂J/∂W =",
                 "  the steps above and the compiled value_and_grad agree to 1e-16"):
        assert line in text.splitlines(), line
    # the printed ∂J/∂W is gᵀxᵀ + 2λW, checked against central differences of J
    g = (p - a["y"]).T
    want = g.T @ a["x"].T + 2 * 0.01 * a["W"]

    def J(W):
        return float(m.forward(**{**a, "W": W})["J"])
    np.testing.assert_allclose(numeric_grad(lambda **kw: J(kw["W"]), a, "W"), want, atol=1e-8)
    block = text.split("∂J/∂W =\n", 1)[1].splitlines()[:2]
    printed = np.array([[float(x) for x in row.strip(" []").split()] for row in block])
    np.testing.assert_allclose(printed, want, atol=1e-4)


@pytest.mark.parametrize("path", [SOFTMAX, SVM], ids=["linear_softmax", "linear_svm"])
def test_trace_of_a_mini_batch_accumulates_divides_and_adds(path):
    m = gdsl.compile_file(path)
    text = explain(m, trace=True, dims={"d": 3, "C": 2, "n": 4})
    lines = text.splitlines()
    for k in range(1, 5):
        assert f"  example {k}: x = column {k}, y = column {k}" in lines
    assert "  Divide by the number of examples |D| = 4:" in lines
    assert "      ∂J/∂W = ∂L/∂W + 2λW =" in lines
    assert "  the steps above and the compiled value_and_grad agree to 1e-16" in lines or \
        "  the steps above and the compiled value_and_grad agree to 1e-15" in lines


# -- --pseudocode: the lecture's two procedures, run --------------------------------------------

FORWARD_RUN = """\
S = GetStartNodes(G) = {x, y, W, b, λ}
ComputeBranch(x, G)
    C_x = {z}
    z.value = Wx   (P_z = {W, x} all computed)
    ComputeBranch(z, G)
        C_z = {s}
        s.value = z + b   (P_s = {z, b} all computed)
        ComputeBranch(s, G)
            C_s = {p}
            p.value = softmax(s)   (P_p = {s} all computed)
            ComputeBranch(p, G)
                C_p = {l}
                l.value = −log(yᵀp)   (P_l = {p, y} all computed)
                ComputeBranch(l, G)
                    C_l = {J}
                    J: not all of P_J = {l, λ, r} computed (r not yet): skip
ComputeBranch(y, G)
    C_y = {l}
    l is already computed
ComputeBranch(W, G)
    C_W = {z, r}
    z is already computed
    r.value = ‖W‖²   (P_r = {W} all computed)
    ComputeBranch(r, G)
        C_r = {J}
        J.value = l + λr   (P_J = {l, λ, r} all computed)
        ComputeBranch(J, G)
            C_J = ∅
ComputeBranch(b, G)
    C_b = {s}
    s is already computed
ComputeBranch(λ, G)
    C_λ = {J}
    J is already computed
order: z, s, p, l, r, J"""

BACKWARD_RUN = """\
J = GetResultNode(G) = J
BackOp(J, G)
    C_J = ∅: J.Grad = 1
    J.r.Jacobian = ∂J/∂r = λ
    BackOp(r, G)
        C_r = {J}, all gradients computed: r.Grad = ∂J/∂r = ∂J/∂J ∂J/∂r
        r.W.Jacobian = ∂r/∂W = 2W
        BackOp(W, G)
            C_W = {z, r}: ∂J/∂z not computed yet: return (W is visited again later)
    J.l.Jacobian = ∂J/∂l = 1
    BackOp(l, G)
        C_l = {J}, all gradients computed: l.Grad = ∂J/∂l = ∂J/∂J ∂J/∂l
        l.p.Jacobian = ∂l/∂p = −yᵀ/(yᵀp)
        BackOp(p, G)
            C_p = {l}, all gradients computed: p.Grad = ∂J/∂p = ∂J/∂l ∂l/∂p
            p.s.Jacobian = ∂p/∂s = diag(p) − ppᵀ
            BackOp(s, G)
                C_s = {p}, all gradients computed: s.Grad = ∂J/∂s = ∂J/∂p ∂p/∂s
                s.b.Jacobian = ∂s/∂b = I
                BackOp(b, G)
                    C_b = {s}, all gradients computed: b.Grad = ∂J/∂b = ∂J/∂s ∂s/∂b
                s.z.Jacobian = ∂s/∂z = I
                BackOp(z, G)
                    C_z = {s}, all gradients computed: z.Grad = ∂J/∂z = ∂J/∂s ∂s/∂z
                    z.W.Jacobian = ∂z/∂vec(W) = I ⊗ xᵀ
                    BackOp(W, G)
                        C_W = {z, r}, all gradients computed: W.Grad = ∂J/∂W = \
∂J/∂z ∂z/∂vec(W) + ∂J/∂r ∂r/∂W
order: J, r, l, p, s, b, z, W"""


def test_pseudocode_runs_as_on_the_slides():
    L = Lesson(View(teaching_model(gdsl.compile_file(SOFTMAX))))
    lines, order = forward_run(L.view)
    assert "\n".join(lines) == FORWARD_RUN
    assert [L.view.name[n] for n in order] == ["z", "s", "p", "l", "r", "J"]
    lines, order = backward_run(L)
    assert "\n".join(lines) == BACKWARD_RUN
    assert order == L.backward_order
    text = explain(gdsl.compile_file(SVM), pseudocode_=True)
    assert "      order: J, r, l, s, b, z, W" in text.splitlines()
    assert "procedure EvaluateGraphFn(G)" in text and "procedure BackOp(s, G)" in text


def test_pseudocode_does_not_recurse_on_depth():
    chain = "\n".join(["input x[]", "y1 = tanh(x)"] + [f"y{i} = tanh(y{i - 1})"
                                                      for i in range(2, 3001)])
    L = Lesson(View(teaching_model(gdsl.compile(chain))))
    lines, order = forward_run(L.view)
    assert len(order) == 3000 and lines[-2].lstrip().startswith("[3001] ")
    assert max(len(line) - len(line.lstrip()) for line in lines) <= 4 * 12   # indent capped
    lines, order = backward_run(L)
    assert len(order) == 3001 and max(len(line) - len(line.lstrip()) for line in lines) <= 48


# -- pictures: no overlaps, with both renderers -----------------------------------------------

def _layouts(path):
    view = teaching_view(path.read_text(encoding="utf-8"), str(path))
    out = {"forward": layout_of(view, shapes=True)}
    if view.has_loss:
        out["backward"] = layout_of(view, backward=True)
    try:
        out["neurons"] = neurons(view, {"d": 3, "C": 2, "m": 3})
    except gdsl.GdslError:
        pass            # (a model whose input has no declared units: oneliner)
    return out


# (in the neuron-level figure a weight's label sits on its own edge, a white box behind it,
# and may cover other edges of the same dense bundle; never a node or another label)

@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_no_overlaps_with_matplotlib(path):
    for kind, lay in _layouts(path).items():
        shapes, edges, _ = matplotlib_extents(lay)
        found = problems(shapes, edges, edges_over_labels=kind == "neurons")
        assert not found, (kind, found)


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_no_overlaps_with_graphviz(path):
    need("dot")
    for kind, lay in _layouts(path).items():
        shapes, edges = graphviz_extents(layout_dot(lay))
        found = problems(shapes, edges, edges_over_labels=kind == "neurons")
        assert not found, (kind, found)


def test_the_overlap_check_sees_overlaps():
    """Negative control: a label moved onto a node, and one onto another label."""
    view = teaching_view(SOFTMAX.read_text(encoding="utf-8"), str(SOFTMAX))
    lay = layout_of(view, backward=True)
    label = next(it for it in lay.items.values() if it.kind == "jacobian")
    node = next(it for it in lay.items.values() if it.kind == "grad")
    label.x, label.y = node.x + 0.05, node.y
    shapes, edges, _ = matplotlib_extents(lay)
    assert any(label.id in p and node.id in p for p in problems(shapes, edges))
    if shutil.which("dot"):
        shapes, edges = graphviz_extents(layout_dot(lay))
        assert any(label.id in p and node.id in p for p in problems(shapes, edges))


def test_graphviz_draws_gdsl_layout():
    """Graphviz keeps every node where the layout pins it: both renderers draw one picture."""
    need("dot")
    view = teaching_view(SOFTMAX.read_text(encoding="utf-8"), str(SOFTMAX))
    lay = layout_of(view, backward=True)
    shapes, _ = graphviz_extents(layout_dot(lay))
    got = {s.name: ((s.box[0] + s.box[2]) / 2, (s.box[1] + s.box[3]) / 2) for s in shapes
           if s.name in lay.items}
    x0 = min(it.x for it in lay.items.values() if it.id in got)
    gx0 = min(x for x, _ in got.values())
    y0 = min(it.y for it in lay.items.values() if it.id in got)
    gy0 = min(y for _, y in got.values())
    for name, (x, y) in got.items():
        it = lay.items[name]
        assert abs((x - gx0) - (it.x - x0)) < 0.02 and abs((y - gy0) - (it.y - y0)) < 0.02


def test_the_slide_rows():
    """x z s p l J on one row, W b y λ below their users, r below them, op labels on the
    arrows into their values; the gradients in the same arrangement below, right to left."""
    view = teaching_view(SOFTMAX.read_text(encoding="utf-8"), str(SOFTMAX))
    lay = layout_of(view, backward=True)
    at = {it.text: it for it in lay.items.values() if it.kind != "jacobian"}
    jac = {it.text: it for it in lay.items.values() if it.kind == "jacobian"}
    chain = [at[n] for n in "xzsplJ"]
    assert len({round(it.y, 6) for it in chain}) == 1
    assert [it.x for it in chain] == sorted(it.x for it in chain)
    for leaf, user in (("W", "z"), ("b", "s"), ("y", "l"), ("λ", "J")):
        assert at[leaf].y < at[user].y and abs(at[leaf].x - at[user].x) < 0.3
    assert at["r"].y < at["W"].y
    for label, (a, b) in (("Wx", "xz"), ("z + b", "zs"), ("softmax(s)", "sp"),
                          ("−log(yᵀp)", "pl"), ("l + λr", "lJ")):
        assert at[a].x < at[label].x < at[b].x and at[label].y > at[a].y
    grads = [at[f"∂J/∂{n}"] for n in "zsplJ"]
    assert len({round(it.y, 6) for it in grads}) == 1 and grads[0].y < at["r"].y
    assert [it.x for it in grads] == sorted(it.x for it in grads)
    assert jac["diag(p) − ppᵀ"].y > grads[0].y and jac["I ⊗ xᵀ"].y < grads[0].y


# -- the slides' own models -------------------------------------------------------------------

LITERAL = """\
input x[d, 1]
input y[C, 1]
param W[C, d]
param b[C, 1]
const lam = 0.01
z = W @ x
s = z + b
p = softmax(s)
l = -log(y.T @ p)
r = sqnorm(W)
J = l + lam * r
"""


@pytest.mark.parametrize("form", ["-log(y.T @ p)", "sum(-log(y.T @ p))"])
def test_the_literal_cross_entropy_is_a_loss_and_explains_as_on_the_slide(form, rng):
    m = gdsl.compile(LITERAL.replace("-log(y.T @ p)", form))
    x, W, b = rng.normal(size=(4, 1)), rng.normal(size=(3, 4)), rng.normal(size=(3, 1))
    y = np.eye(3)[:, [1]]
    arrays = {"x": x, "y": y, "W": W, "b": b}
    _loss, grads = m.value_and_grad(**arrays)

    def J(**kw):
        return float(np.asarray(m.forward(**kw)["J"]).reshape(()))
    for name in ("W", "b"):
        np.testing.assert_allclose(grads[name], numeric_grad(J, arrays, name), atol=1e-8)
    text = m.explain()
    assert "  4. l = −log(yᵀp)   from p, y" in text.splitlines()
    assert "      ∂l/∂p = −yᵀ/(yᵀp)" in text.splitlines()
    assert "g = −yᵀ/(yᵀp) (diag(p) − ppᵀ)" in text and "∂J/∂W = gᵀxᵀ + 2λW" in text
    assert "t1" not in text and "The cost of a mini-batch" not in text     # one example


def test_a_scores_only_model_is_drawn_and_explained_forward(tmp_path):
    path = tmp_path / "softmax_scores.gdsl"
    path.write_text("input x[d, 1]\nparam W[C, d]\nparam b[C, 1]\n"
                    "s = W @ x + b\np = softmax(s)\ng = argmax(p)\noutput g\n")
    r = run_cli("explain", str(path))
    assert r.returncode == 0, r.stderr
    assert "(no loss: nothing to differentiate)" in r.stdout
    assert "  1. z = Wx   from W, x" in r.stdout.splitlines() and "Backward" not in r.stdout
    r = run_cli("graph", str(path))
    assert r.returncode == 0 and "class=\"op\"" in r.stdout and "∂" not in r.stdout
    r = run_cli("graph", str(path), "--backward")
    assert r.returncode == 2 and "needs a loss" in r.stderr


def test_neurons_one_node_per_unit_one_edge_per_weight():
    view = teaching_view(SOFTMAX.read_text(encoding="utf-8"), str(SOFTMAX))
    lay = neurons(view, {"d": 3, "C": 2})
    units = sorted(it.text for it in lay.items.values() if it.shape == "circle")
    assert units == sorted(["x₁", "x₂", "x₃", "s₁", "s₂", "p₁", "p₂"])
    weights = sorted(it.text for it in lay.items.values() if it.text.startswith("w_"))
    assert weights == sorted(f"w_{{{j},{i}}}" for j in (1, 2) for i in (1, 2, 3))
    assert len(lay.edges) == 6 + 2
    captions = {it.text for it in lay.items.values() if it.id.startswith("c")}
    assert {"Input: x", "s = Wx + b", "p = softmax(s)"} <= captions
    symbolic = neurons(view)
    assert {"x_{d}", "s_{C}"} <= {it.text for it in symbolic.items.values()}


def test_single_output_neuron_and_its_gradient(tmp_path):
    path = tmp_path / "one_output.gdsl"
    path.write_text("input x[d, 1]\nparam w[d, 1]\nparam b\ns = w.T @ x + b\n"
                    "g = sign(s)\noutput g\nloss s\n")
    text = run_cli("explain", str(path)).stdout
    assert "      ∂z/∂w = xᵀ" in text.splitlines() and "permutation" not in text
    assert "params: w [d, 1], b [] (a scalar)" in text
    assert "γ" in text or "g =" not in text.split("Gradients")[1]     # g names a value here
    view = teaching_view(path.read_text(), str(path))
    lay = neurons(view, {"d": 3})
    assert {it.text for it in lay.items.values() if it.shape == "circle"} == \
        {"x₁", "x₂", "x₃", "s"}
    assert sorted(it.text for it in lay.items.values() if it.text.startswith("w_")) == \
        ["w_{1}", "w_{2}", "w_{3}"]


def test_the_chain_rule_slide_sin_of_x_squared():
    m = gdsl.compile("input x[]\ny = x ** 2\nh = sin(y)\n")
    text = m.explain()
    assert "      ∂h/∂y = cos(y)" in text.splitlines()
    assert "      ∂y/∂x = 2x" in text.splitlines()
    assert "the chain rule: ∂h/∂x = ∂h/∂y ∂y/∂x = cos(y) · 2x = 2x · cos(x²)   " \
        "(plug in y = x²)" in text
    x = np.float64(0.7)
    _, g = m.value_and_grad(x=x)
    assert abs(g["x"] - 2 * x * np.cos(x * x)) < 1e-15
    text = gdsl.compile("input x[]\nh = cos(x ** 3)\n").explain()
    assert "∂h/∂x = −3x² · sin(x³)" in text


def test_products_are_explicit_and_names_come_from_the_lecture():
    text = gdsl.compile_file(ROOT / "models" / "mlp2.gdsl").explain()
    assert "  1. z1 = W1 · x   from W1, x" in text.splitlines()
    assert "  10. r = r1 + r2   from r1, r2" in text.splitlines()
    assert "gₛ₁ = gₛ · W2 · diag([s1 > 0])" in text
    for path in MODELS:          # never t1 in a shipped model
        view = View(teaching_model(gdsl.compile_file(path)))
        assert not [n for n in view.name.values() if n[:1] == "t" and n[1:].isdigit()], path
    svm = View(teaching_model(gdsl.compile_file(SVM)))
    assert sorted(svm.name[n] for n in svm.nodes if svm.kind[n] == "op") == \
        ["J", "l", "r", "s", "z"]


def test_loss_curves_of_the_loss_function_slide(tmp_path):
    for path in (SVM, SOFTMAX):
        out = tmp_path / f"{path.stem}.png"
        r = run_cli("graph", str(path), "--loss-curve", "-o", str(out))
        assert r.returncode == 0, r.stderr
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from gdsl.ir.evaluate import evaluate_node
    from gdsl.ir.ops import OPS
    for t in (-2.0, -1.0, -0.5, 0.0, 1.5):
        a, y = OPS["svm"].curve["args"](t)
        assert evaluate_node("svm", {}, [np.array(a), np.array(y)]) == max(0.0, t + 1)
    for t in (0.1, 0.5, 0.9):
        a, y = OPS["xent"].curve["args"](t)
        assert abs(evaluate_node("xent", {}, [np.array(a), np.array(y)]) + np.log(t)) < 1e-15
    r = run_cli("graph", str(SOFTMAX), "--loss-curve")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_usage_mistakes_exit_2():
    for args in (("explain", str(SOFTMAX), "--dims", "d=3"),
                 ("explain", str(SOFTMAX), "--trace", "--dims", "d=x"),
                 ("graph", str(SOFTMAX), "--dims", "d=3"),
                 ("graph", str(SOFTMAX), "--neurons", "--backward")):
        r = run_cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, args


# -- docs/lecture.md: every row reproduced ------------------------------------------------------

def _rows():
    import importlib.util
    spec = importlib.util.spec_from_file_location("lecture_make", ROOT / "docs/lecture/make.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    return make


def test_every_row_of_the_lecture_table_is_reproduced(tmp_path):
    make = _rows()
    page = (ROOT / "docs" / "lecture.md").read_text(encoding="utf-8")
    assert make.table() in page              # the page shows the rows as they are
    seen = {}
    for i, (_, _, command, show) in enumerate(make.ROWS, 1):
        if command not in seen:
            seen[command] = make.run(command, lambda p, i=i: tmp_path / f"{i}{os.path.splitext(p)[1]}")
        code, out = seen[command]
        assert code == 0, (i, command, out[-2000:])
        for excerpt in show or ():
            assert excerpt in out, (i, command, excerpt)
        if show is None:
            produced = list(tmp_path.glob(f"{i}.*"))
            assert produced and produced[0].stat().st_size > 0, (i, command)

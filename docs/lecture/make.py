"""Reproduce every slide-level item of the lecture with a gdsl command, and write the table.

    python3 docs/lecture/make.py          # from the repository's top: runs every command,
                                          # writes docs/lecture/img/*.png, out/*.txt and
                                          # docs/lecture.md

Each row names a slide of docs/backprop-lecture.txt, what it shows, the command, and what to
find in the command's output (lines of it) or the picture it draws. tests/test_lecture.py
runs the same rows (pictures into a temporary folder) and checks every excerpt is printed.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

S = "models/linear_softmax.gdsl"
V = "models/linear_svm.gdsl"
L = "docs/lecture"

# (slide, what it shows, command, [excerpts of its output] or None for the picture it draws)
ROWS = [
    ("Classification functions: linear with 1 output",
     "x₁ … x_d → s, one weight w_i per edge",
     f"gdsl graph {L}/one_output.gdsl --neurons -o {L}/img/one_output_neurons.png", None),
    ("Classification functions: linear with 1 output",
     "s = wᵀx + b, g(x) = sign(wᵀx + b); its gradient ∂s/∂w = xᵀ (not I ⊗ xᵀ), a scalar b shown as one",
     f"gdsl explain {L}/one_output.gdsl",
     ["params: w [d, 1], b [] (a scalar)", "1. z = wᵀx   from w, x", "3. g = sign(s)   from s",
      "∂z/∂w = xᵀ", "∂s/∂w = xᵀ"]),
    ("Classification functions: linear with multiple outputs",
     "x₁ x₂ x₃ → s₁ s₂, weights w_{j,i}",
     f"gdsl graph {L}/multi_output.gdsl --neurons --dims d=3,C=2 -o {L}/img/multi_output_neurons.png",
     None),
    ("Classification functions: linear with multiple outputs",
     "s = Wx + b, g(x) = argmax_j s_j (a model without a loss: forward only)",
     f"gdsl explain {L}/multi_output.gdsl",
     ["(no loss: nothing to differentiate)", "3. g = argmaxⱼ sⱼ   from s"]),
    ("Classification functions: linear with multiple probabilistic outputs",
     "x → s → p, the weights into s₂ labelled as on the slide",
     f"gdsl graph {L}/probabilistic.gdsl --neurons --dims d=3,C=3 -o {L}/img/probabilistic_neurons.png",
     None),
    ("Classification functions: linear with multiple probabilistic outputs",
     "p = exp(s)/1ᵀexp(s), g(x) = argmax_j p_j",
     f"gdsl explain {L}/probabilistic.gdsl",
     ["3. p = softmax(s)   from s", "4. g = argmaxⱼ pⱼ   from p"]),
    ("Computational graph of the multiple linear function; How do we learn W, b?",
     "x z s / W b with Wx and z + b on the arrows",
     f"gdsl graph {L}/scores.gdsl -o {L}/img/scores.png", None),
    ("Quality measures a.k.a. loss functions",
     "the multi-class SVM loss: max(0, s_j − s_y + 1) against s_j − s_y",
     f"gdsl graph {V} --loss-curve -o {L}/img/svm_loss_curve.png", None),
    ("Quality measures a.k.a. loss functions",
     "the cross-entropy loss: −log(p_y) against p_y",
     f"gdsl graph {S} --loss-curve -o {L}/img/xent_loss_curve.png", None),
    ("Quality measures: classification function x z s p",
     "x z s p / W b with softmax(s); the decision g",
     f"gdsl graph {L}/probabilistic.gdsl -o {L}/img/probabilistic.png", None),
    ("Computational graph of the complete loss function (softmax + cross-entropy); Problem 1",
     "x z s p l / W b y with −log(yᵀp) (typed literally: l = -log(y.T @ p))",
     f"gdsl graph {L}/softmax_xent.gdsl -o {L}/img/softmax_xent.png", None),
    ("Computational graph of the complete loss function (multi-class SVM)",
     "x z s l / W b y with svm(s, y)",
     f"gdsl graph {L}/svm_loss.gdsl -o {L}/img/svm_loss.png", None),
    ("Problem 1: but what if I don't have a chain?",
     "the function the graph represents, l(x, y, W, b) = −log(yᵀsoftmax(Wx + b)); the literal −log(yᵀp), a [1, 1] value, is the loss",
     f"gdsl explain {L}/softmax_xent.gdsl",
     ["the graph represents l(x, y, W, b) = −log(yᵀsoftmax(Wx + b))", "4. l = −log(yᵀp)   from p, y",
      "∂l/∂p = −yᵀ/(yᵀp)"]),
    ("Problem 1a: and when a regularization term is added",
     "x z s p l J / W b y λ / r, as on the slide",
     f"gdsl graph {S} -o docs/linear_softmax.png", None),
    ("Problem 1a: and when a regularization term is added",
     "the same drawn by matplotlib (the renderer without Graphviz): the same layout",
     f"gdsl graph {S} --renderer matplotlib -o {L}/img/linear_softmax_matplotlib.png", None),
    ("Problem 1a: and when a regularization term is added",
     "J(x, y, W, b, λ) = −log(yᵀSoftmax(Wx + b)) + λ Σ W²",
     f"gdsl explain {L}/regularized.gdsl",
     ["the graph represents J(x, y, W, b, λ) = −log(yᵀsoftmax(Wx + b)) + λ‖W‖²"]),
    ("Problem 1a, typed literally",
     "the slide's l = -log(y.T @ p) compiles ([1, 1] is a scalar) and its gradients check",
     f"gdsl check {L}/regularized.gdsl", ["passed: every max relative error <= 1e-06"]),
    ("Problem 2: don't have scalar inputs and outputs",
     "the shapes of every value",
     f"gdsl graph {S} --shapes -o {L}/img/linear_softmax_shapes.png", None),
    ("Differentiation of a composition; the Chain Rule; example: h(x) = sin(x²)",
     "dh/dx = df(y)/dy dg(x)/dx = cos(y) 2x = 2x cos(x²)",
     f"gdsl explain {L}/chain_sin.gdsl",
     ["∂h/∂y = cos(y)", "∂y/∂x = 2x",
      "the chain rule: ∂h/∂x = ∂h/∂y ∂y/∂x = cos(y) · 2x = 2x · cos(x²)   (plug in y = x²)"]),
    ("The composition of n functions; the Chain Rule for n functions; Summary",
     "dh/dx = dy_n/dy_{n−1} … dy₂/dy₁ dy₁/dx",
     f"gdsl explain {L}/chain.gdsl",
     [("the chain rule: ∂h/∂x = ∂h/∂y3 ∂y3/∂y2 ∂y2/∂y1 ∂y1/∂x = (1 − tanh²(y3)) · exp(y2) · "
      "cos(y1) · 2x")]),
    ("Back-propagation for chains: forward pass; backward pass (g = 1; g = g × df_j/dy_{j−1})",
     "the recorded y*_j, then g step by step as numbers",
     f"gdsl explain {L}/chain.gdsl --trace",
     ["Forward pass with numbers: each value in the order it is computed",
      "  1. ∂h/∂h = 1   (BackOp at the result node)", "      local ∂y2/∂y1 = cos(y1) =",
      "      so g = ∂h/∂y1 =", "  the steps above and the compiled value_and_grad agree to 1e-16"]),
    ("Chain Rule for vector input and output; vector input and scalar output",
     "Jacobians as matrices: ∂s/∂x (1×m) = ∂s/∂z (1×m) ∂z/∂x (m×d), every one checked",
     f"gdsl explain {S} --jacobians --one-example",
     ["∂J/∂s = ∂J/∂p [1×3] ∂p/∂s [3×3]   -> 1×3",
      "∂J/∂W = ∂J/∂z [1×3] ∂z/∂vec(W) [3×12] + ∂J/∂r [1×1] ∂r/∂W [1×12]   -> 1×12",
      "(they agree to 1e-07)"]),
    ("Two intermediary vector inputs; More generally; Results that we need but already know",
     "∂J/∂W = ∂J/∂r ∂r/∂W + ∂J/∂z ∂z/∂W: a sum over the children",
     f"gdsl explain {S}",
     ["8. ∂J/∂W = ∂J/∂z ∂z/∂vec(W) + ∂J/∂r ∂r/∂W"]),
    ("Results that we need; Pseudo-Code for the Generic Forward Pass",
     "EvaluateGraphFn and ComputeBranch",
     f"gdsl explain {S} --pseudocode --one-example",
     ["procedure EvaluateGraphFn(G)", "procedure ComputeBranch(s, G)",
      "n.value = fn(Pn)"]),
    ("Generic Forward Pass: identify start nodes; order in which nodes are evaluated",
     "S = {x, y, W, b, λ}; z, s, p, l, r, J",
     f"gdsl explain {S} --pseudocode --one-example",
     ["S = GetStartNodes(G) = {x, y, W, b, λ}",
      "J: not all of P_J = {l, λ, r} computed (r not yet): skip",
      "order: z, s, p, l, r, J"]),
    ("Pseudo-Code for the Generic Backward Pass",
     "PerformBackPass and BackOp",
     f"gdsl explain {S} --pseudocode --one-example",
     ["procedure PerformBackPass(G)", "procedure BackOp(s, G)",
      "s.Grad += c.Grad * c.s.Jacobian"]),
    ("Generic Backward Pass: order of computations (the sequence of slides)",
     "J, r, (W waits for z), l, p, s, b, z, W",
     f"gdsl explain {S} --pseudocode --one-example",
     ["J.r.Jacobian = ∂J/∂r = λ", "C_W = {z, r}: ∂J/∂z not computed yet: return",
      "order: J, r, l, p, s, b, z, W"]),
    ("Generic Backward Pass: order of computations",
     "the gradients ∂J/∂n below the values, each arrow labelled with its local Jacobian",
     f"gdsl graph {S} --backward -o docs/linear_softmax_backward.png", None),
    ("Generic Backward Pass: order of computations",
     "the same drawn by matplotlib",
     f"gdsl graph {S} --backward --renderer matplotlib -o {L}/img/linear_softmax_backward_matplotlib.png",
     None),
    ("Generic Backward Pass: gradient of node J; Jacobian of J w.r.t. r; gradient of r",
     "∂J/∂J = 1, ∂J/∂r = λ, ∂J/∂r = ∂J/∂J ∂J/∂r",
     f"gdsl explain {S}",
     ["1. ∂J/∂J = 1   (the result node: start the backward pass)", "2. ∂J/∂r = ∂J/∂J ∂J/∂r",
      "∂J/∂r = λ"]),
    ("Jacobian of r w.r.t. W (derivative of a scalar w.r.t. a matrix)",
     "∂r/∂W = 2W",
     f"gdsl explain {S}", ["∂r/∂W = 2W"]),
    ("Jacobian of J w.r.t. l; gradient of l", "∂J/∂l = 1",
     f"gdsl explain {S}", ["3. ∂J/∂l = ∂J/∂J ∂J/∂l", "∂J/∂l = 1"]),
    ("Jacobian of l w.r.t. p; gradient of p", "∂l/∂p = −yᵀ/(yᵀp)",
     f"gdsl explain {S}", ["4. ∂J/∂p = ∂J/∂l ∂l/∂p", "∂l/∂p = −yᵀ/(yᵀp)"]),
    ("Jacobian of p w.r.t. s; gradient of s", "∂p/∂s = diag(p) − ppᵀ",
     f"gdsl explain {S}", ["5. ∂J/∂s = ∂J/∂p ∂p/∂s", "∂p/∂s = diag(p) − ppᵀ"]),
    ("Jacobian of s w.r.t. b and z; gradients of b and z", "∂s/∂b = I_C, ∂s/∂z = I_C",
     f"gdsl explain {S}", ["6. ∂J/∂b = ∂J/∂s ∂s/∂b", "∂s/∂b = I", "∂s/∂z = I"]),
    ("Jacobian of z w.r.t. W: vec(W), z = (I_C ⊗ xᵀ) vec(W)", "∂z/∂vec(W) = I_C ⊗ xᵀ",
     f"gdsl explain {S}", ["∂z/∂vec(W) = I ⊗ xᵀ"]),
    ("Jacobian of z w.r.t. W, as numbers", "I ⊗ xᵀ for x of 3 features and 2 classes",
     f"gdsl explain {S} --trace --dims d=3,C=2",
     ["      local ∂z/∂vec(W) = I ⊗ xᵀ ="]),
    ("Gradient of node W: ∂J/∂vec(W) = (g₁xᵀ … g_Cxᵀ) + 2λvec(W)ᵀ, then back to C × d",
     "the vector, then cut back into the rows of W (the running g and the C×d ∂J/∂W as numbers)",
     f"gdsl explain {S} --trace --dims d=3,C=2",
     ["      so g = ∂J/∂s =", "      so ∂J/∂vec(W) =",
      "      and, the vector cut back into the rows of W (2×3), ∂J/∂W ="]),
    ("Aggregating the Gradient computations",
     "g = ∂J/∂l = 1; g ← g ∂l/∂p; g ← g ∂p/∂s; g ← g ∂s/∂z = g I_C",
     f"gdsl explain {S}",
     ["g = ∂J/∂l = 1", "g ← g ∂l/∂p = −yᵀ/(yᵀp)   ← ∂J/∂p",
      "g ← g ∂p/∂s = g (diag(p) − ppᵀ)   ← ∂J/∂s", "g ← g ∂s/∂z = g I   ← ∂J/∂z"]),
    ("Aggregating the Gradient computations (2)",
     "g = −yᵀ/(yᵀp)(diag(p) − ppᵀ); ∂J/∂b = g; ∂J/∂W = gᵀxᵀ + 2λW",
     f"gdsl explain {S}",
     ["g = ∂J/∂s = ∂J/∂z (a row vector), so g = −yᵀ/(yᵀp) (diag(p) − ppᵀ)",
      "∂J/∂W = gᵀxᵀ + 2λW", "∂J/∂b = g"]),
    ("Gradient Computations for a mini-batch",
     "J(D, W, b) = L + λ‖W‖² = 1/|D| Σ l + λ‖W‖², and its gradients",
     f"gdsl explain {S}",
     ["J(D, W, b) = L(D, W, b) + λ‖W‖² = 1/|D| Σ_{(x,y)∈D} l(x, y, W, b) + λ‖W‖²",
      "∂J(D, W, b)/∂W = ∂L(D, W, b)/∂W + 2λW = 1/|D| Σ_{(x,y)∈D} ∂l(x, y, W, b)/∂W + 2λW",
      "∂J(D, W, b)/∂b = ∂L(D, W, b)/∂b = 1/|D| Σ_{(x,y)∈D} ∂l(x, y, W, b)/∂b"]),
    ("Gradient Computations for a mini-batch (the procedure)",
     "set to zero; for each (x, y): g, ∂L/∂b += g, ∂L/∂W += gᵀxᵀ; divide by |D|; add 2λW",
     f"gdsl explain {S}",
     ["Set all entries in ∂L/∂b and ∂L/∂W to zero.", "for (x, y) ∈ D:",
      "2. Add the gradient of l w.r.t. b computed at (x, y): ∂L/∂b += g",
      "3. Add the gradient of l w.r.t. W computed at (x, y): ∂L/∂W += gᵀxᵀ",
      "Divide by the number of entries in D: ∂L/∂b /= |D|, ∂L/∂W /= |D|",
      "Add the gradient for the regularization term: ∂J/∂b = ∂L/∂b, ∂J/∂W = ∂L/∂W + 2λW"]),
    ("Gradient Computations for a mini-batch, with numbers",
     "the procedure on 3 examples, against value_and_grad",
     f"gdsl explain {S} --trace --dims d=3,C=2,n=3",
     ["  example 3: x = column 3, y = column 3", "  Divide by the number of examples |D| = 3:",
      "      ∂J/∂W = ∂L/∂W + 2λW ="]),
    ("The same for the multi-class SVM loss",
     "the lecture's procedure with the hinge's gradient",
     f"gdsl explain {V}",
     ["1. Let g = Σⱼ≠y [sⱼ − s_y + 1 > 0](eⱼ − e_y)ᵀ", "∂J/∂W = gᵀxᵀ + 2λW"]),
    ("Names from the lecture", "s = W @ x + b drawn as z = Wx, s = z + b; λ * sqnorm(W) as r",
     f"gdsl graph {V} -o {L}/img/linear_svm.png", None),
    ("The lecture's g(x) and the gradient symbol",
     "a model that names a value g: the gradient symbol becomes γ",
     f"gdsl explain {L}/name_g.gdsl", ["γ = ∂J/∂g = ∂J/∂z (a row vector)", "∂J/∂W = γᵀxᵀ"]),
    ("Notes and slides", "the whole account as Markdown",
     f"gdsl explain {S} --format markdown -o docs/linear_softmax_explained.md", None),
    ("Notes and slides", "as a LaTeX document (compiles with pdflatex)",
     f"gdsl explain {S} --format latex -o {L}/out/linear_softmax.tex", None),
    ("The lecture's model compiled without optimisation",
     "-O0 computes −log of the softmax as written, so it warns, and says what to do",
     f"gdsl compile -O0 {S} -o /dev/null",
     [("help: gdsl computes xent(softmax(s), y) and log(softmax(s)) stably unless -O0 turns "
      "its fusions off")]),
]


def run(command: str, redirect=None) -> tuple[int, str]:
    """Run a `gdsl ...` command line in this process (from the repository's top); its exit
    status and its output (standard output and error). ``redirect(path)`` may move -o."""
    from gdsl.cli import main
    args = command.split()[1:]
    if redirect is not None and "-o" in args:
        i = args.index("-o") + 1
        args[i] = str(redirect(args[i]))
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = main(args)
            except SystemExit as e:
                code = e.code
    finally:
        os.chdir(cwd)
    return code, out.getvalue()


# pictures the README shows, made with the table's
EXTRA = [f"gdsl graph {S} -o docs/linear_softmax.svg", f"gdsl graph {S} -o docs/linear_softmax.dot"]


def slug(command: str) -> str:
    """The file of a command's full output: explain-linear_softmax--trace--dims-d-3-C-2.txt."""
    words = [Path(w).stem if w.endswith(".gdsl") else w for w in command.split()[1:]]
    text = "-".join(words).replace("=", "-").replace(",", "-")
    return "".join(ch for ch in text if ch.isalnum() or ch in "-_") + ".txt"


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def table() -> str:
    lines = ["| # | slide | what it shows | command | output |", "|---|---|---|---|---|"]
    for i, (slide, what, command, show) in enumerate(ROWS, 1):
        if show is None:
            target = command.split(" -o ")[1].split()[0]
            rel = os.path.relpath(ROOT / target, ROOT / "docs")
            if target.endswith(".png"):
                out = f"![{cell(what)}]({rel})"
            else:
                out = f"[{Path(target).name}]({rel})"
        else:
            out = "<br>".join(f"`{cell(s.strip())}`" for s in show)
            out += f"<br>[full output](lecture/out/{slug(command)})"
        lines.append(f"| {i} | {cell(slide)} | {cell(what)} | `{cell(command)}` | {out} |")
    return "\n".join(lines)


def main() -> int:
    (HERE / "img").mkdir(exist_ok=True)
    (HERE / "out").mkdir(exist_ok=True)
    bad = 0
    for i, (_, _, command, show) in enumerate(ROWS, 1):
        code, out = run(command)
        missing = [s for s in show or () if s not in out]
        if code or missing:
            bad += 1
            print(f"row {i}: {command}: exit {code}, missing {missing}\n{out}", file=sys.stderr)
        elif show is not None:
            (HERE / "out" / slug(command)).write_text(out, encoding="utf-8")
    for command in EXTRA:
        code, out = run(command)
        bad += bool(code)
    page = (HERE / "lecture.md.in").read_text(encoding="utf-8").replace("@TABLE@", table())
    (ROOT / "docs" / "lecture.md").write_text(page, encoding="utf-8")
    print(f"{len(ROWS)} rows, {bad} not reproduced")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

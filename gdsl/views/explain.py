"""Explain a model as the lecture does: forward order, backward order, local Jacobians, the
gradients of one example and of a mini-batch; as text, Markdown or a LaTeX document.

For the drawn graph (gdsl.views.view.View) this prints

- the forward pass: the order in which values are computed, each with its op;
- the backward pass: the order in which each value's gradient ∂J/∂n is completed, following
  the lecture's BackOp, each with the local Jacobians it multiplies, in the lecture's notation
  taken from the op table (the `jacobian` field), for one example (x, y);
- the aggregated gradient of each param for one example, ∂J/∂W = gᵀxᵀ + 2λW with
  g = −yᵀ/(yᵀp)(diag(p) − ppᵀ); for a chain of numbers the chain rule, values plugged in;
- for a model of a mini-batch (x[d, n], losses that average over the n examples), the cost
  J(D) = 1/|D| Σ l(x, y) + λ‖W‖², its gradients, and the lecture's procedure: accumulate each
  example's gradient, divide by |D|, add 2λW (``one_example=True`` leaves these out).

Options add the numbers (gdsl.views.numbers): ``jacobians`` (every local Jacobian as a matrix,
checked against finite differences and value_and_grad), ``trace`` (a worked example: the
values, then BackOp step by step) and ``pseudocode`` (the lecture's procedures, run).
"""

from __future__ import annotations

import itertools
import re

from ..errors import GdslError, GdslUsageError
from ..ir.shapes import show_shape
from ..lang.source import source_text
from .lesson import Lesson, example_dim
from .numbers import MATRIX_LIMIT, JacobianCheck, Trace, example_shapes, pseudocode
from .view import View, teaching_model

FORMATS = ("text", "markdown", "latex")


# -- the sections ----------------------------------------------------------------------------------

def forward_section(L: Lesson, minibatch: bool):
    m, v = L.m, L.view
    head = []
    for kind, title in (("input", "inputs"), ("param", "params"), ("const", "consts")):
        items = []
        for n in v.nodes:
            if v.kind[n] != kind:
                continue
            d = m.node(n)
            if kind == "const" and d.get("value") is not None:
                items.append(f"{v.name[n]} = {d['value']:g}")
            else:
                items.append(f"{v.name[n]} {v.shape_text(n)}")
        if items:
            head.append([("t", f"{title}: "), ("m", ", ".join(items))])
    losses = set(L.losses()) if minibatch else set()
    order = []
    for i, n in enumerate([n for n in v.nodes if v.kind[n] == "op"], 1):
        args = ", ".join(v.name[a] for a in v.visible_args(n))
        order.append([("t", f"{i}. "), ("m", v.statement(n)), ("t", f"   from {args}")])
        if n in losses:
            order.append([("t", "   "), ("t", ("for one example (x, y); over the mini-batch the "
                                              "node holds ")),
                          ("m", f"{_big(v.name[n])} = 1/|D| Σ_{{(x,y)∈D}} {v.name[n]}"),
                          ("t", ", the mean over its examples")])
    order += state_lines(m)
    title = "Forward pass: the order in which values are computed"
    if not v.has_loss:
        title += " (no loss: nothing to differentiate)"
    return title, head + order + represented(L)


def state_lines(m) -> list:
    """The states and their updates as written (batch norm's running statistics): training
    computes them after the loss from the step's values, and nothing differentiates them."""
    if not m.states:
        return []
    lines = [[("t", "state, updated after each training step (not differentiated): ")]]
    for name, n in m.states.items():
        d = m.node(n)
        update = m.node(m.updates[name]) if name in m.updates else None
        rule = source_text(m.source, update["line"]) if update and update.get("line") else name
        lines.append([("t", "   "), ("m", f"{rule.replace('<-', '←')}"),
                      ("t", f"   ({name} {show_shape(d['shape'])}, at first {d['value']:g})")])
    return lines


def represented(L: Lesson) -> list:
    """The function the graph represents, written out (the slides' J(x, y, W, b, λ) =
    −log(yᵀsoftmax(Wx + b)) + λ‖W‖²), for the loss or else the last value."""
    v = L.view
    ops = [n for n in v.nodes if v.kind[n] == "op"]
    if not ops:
        return []
    top = L.m.loss if v.has_loss and L.m.loss in v.kind else ops[-1]
    needed = L.m.needed([top])
    leaves = [v.name[n] for n in v.nodes if v.kind[n] != "op" and n in needed]
    text = v.expanded()[top][0]
    if len(text) > 160:
        return []
    return [[("t", "the graph represents "), ("m", f"{v.name[top]}({', '.join(leaves)}) = {text}")]]


def backward_section(L: Lesson, minibatch: bool):
    m, v = L.m, L.view
    back = []
    for i, n in enumerate(L.backward_order, 1):
        if n == m.loss:
            back.append([("t", f"{i}. "), ("m", f"∂{L.J}/∂{L.J} = 1"),
                         ("t", "   (the result node: start the backward pass)")])
            continue
        chain = " + ".join(f"∂{L.J}/∂{v.name[c]} {L.d(c, n)}" for c in L.children[n])
        back.append([("t", f"{i}. "), ("m", f"∂{L.J}/∂{v.name[n]} = {chain}")])
        for c in L.children[n]:
            back.append([("t", "   "), ("m", f"{L.d(c, n)} = {L.local(c, n)}")])
    title = "Backward pass: the order in which each gradient is completed (BackOp)"
    if minibatch:
        title += ", for one example (x, y)"
    return title, back


def gradients_section(L: Lesson, minibatch: bool):
    m, v = L.m, L.view
    shown, grads, aliases = L.aggregate()
    agg = running_g(L, aliases)
    for sym, definition in shown.items():
        same = " = ".join(f"∂{L.J}/∂{v.name[n]}" for n in aliases[sym]
                          if n not in L.wrt) or f"∂{L.J}/∂·"
        kind = "a number" if all(L.scalar(n) for n in aliases[sym]) else "a row vector"
        agg.append([("m", f"{sym} = {same}"), ("t", f" ({kind}), so "),
                    ("m", f"{sym} = {definition}")])
    for w in L.wrt:
        agg.append([("m", f"∂{L.J}/∂{v.name[w]} = {L.gradient_text(grads[w])}")])
        rule = L.chain_rule(w)
        if rule is not None:
            named, plugged = rule
            chain = L.scalar_chain(w)
            product = " ".join(L.d(c, n) for c, n in itertools.pairwise(chain))
            line = f"∂{L.J}/∂{v.name[w]} = {product} = {named}"
            if plugged != named:
                line += f" = {plugged}"
            inner = [n for n in chain[1:-1] if v.kind.get(n) == "op"]
            agg.append([("t", "the chain rule: "), ("m", line)] +
                       ([("t", "   (plug in "),
                         ("m", ", ".join(f"{v.name[n]} = {v.expanded()[n][0]}" for n in inner)),
                         ("t", ")")] if inner and plugged != named else []))
    who = "params" if m.params else "differentiated values"
    title = (f"Gradients of the {who} for one example (x, y), as in the lecture" if minibatch
             else f"Gradients of the {who} (one example, as in the lecture)")
    return title, agg


def running_g(L: Lesson, aliases) -> list:
    """The slide "Aggregating the gradient computations": g = ∂J/∂l = 1, then g ← g ∂l/∂p,
    g ← g ∂p/∂s, ... down the chain to the values g stands for (one symbol only)."""
    if len(aliases) != 1:
        return []
    sym, nodes = next(iter(aliases.items()))
    if not nodes:
        return []
    v, J = L.view, L.m.loss
    path = [nodes[-1]]
    while path[-1] != J:
        kids = L.children.get(path[-1], [])
        if len(kids) != 1:
            return []
        path.append(kids[0])
    path.reverse()                     # J, l, p, s, z
    if len(path) < 3:
        return []
    if L.local(J, path[1]) in ("1", "I"):      # J = l + λr: start at ∂J/∂l = 1, as the slide
        path = path[1:]
    lines = [[("m", f"{sym} = ∂{L.J}/∂{v.name[path[0]]} = 1")]]
    one = True
    for c, n in itertools.pairwise(path):
        jac = L.local(c, n)
        value = jac if one else f"{sym} {paren_text(jac)}"
        one = False
        lines.append([("m", f"{sym} ← {sym} {L.d(c, n)} = {value}"),
                      ("t", "   ← "), ("m", f"∂{L.J}/∂{v.name[n]}")])
    return lines


def paren_text(text: str) -> str:
    from .lesson import paren
    out = paren(text)
    return out if out != text or " " not in text else f"({text})"


def _and(items: list[str]) -> list:
    """Formulas joined by commas and `and`, as pieces of a line."""
    out = []
    for i, item in enumerate(items):
        if i:
            out.append(("t", " and " if i == len(items) - 1 else ", "))
        out.append(("m", item))
    return out


def _big(name: str) -> str:
    """The mini-batch's name for a per-example loss: L for l."""
    return name.upper() if name.islower() and len(name) == 1 else f"{name}_D"


def minibatch_sections(L: Lesson):
    """The lecture's mini-batch slides, for this model."""
    v = L.view
    losses = L.losses()
    inputs, params = L.example_args()
    per = ", ".join(inputs + params)
    Dargs = ", ".join(["D"] + params)
    example = "(" + ",".join(inputs) + ")" if len(inputs) != 1 else inputs[0]
    prose = "(" + ", ".join(inputs) + ")" if len(inputs) != 1 else inputs[0]
    total = {n: (f"{_big(v.name[n])}({Dargs})", 3) for n in losses}
    mean = {n: (f"1/|D| Σ_{{{example}∈D}} {v.name[n]}({per})", 1) for n in losses}
    after = v.expanded(total)
    cost = after[L.m.loss][0]
    written = v.expanded(mean)[L.m.loss][0]
    lines = [[("m", f"{L.J}({Dargs}) = {cost} = {written}")]]
    for n in losses:
        lines.append([("t", "where "), ("m", f"{v.name[n]}({per}) = {v.label[n]}"),
                      ("t", (f" is the loss of one example {prose} ∈ D, the mini-batch of "
                            f"|D| = {example_dim(L.m)} examples (the columns of "
                            f"{', '.join(inputs)})"))])
    secs = [("The cost of a mini-batch D", lines)]
    shown, terms, _ = L.batch_terms()
    Lname = _big(v.name[losses[0]]) if len(losses) == 1 else "L"
    grad_lines = []
    order = [n for n in L.backward_order if n in L.wrt]       # the slide's b, then W
    for w in L.wrt:
        data, reg = terms[w]
        name = v.name[w]
        lhs = f"∂{L.J}({Dargs})/∂{name}"
        parts, mean_parts = [], []
        if data:
            parts.append(f"∂{Lname}({Dargs})/∂{name}")
            mean_parts.append(f"1/|D| Σ_{{{example}∈D}} ∂{v.name[losses[0]]}({per})/∂{name}"
                              if len(losses) == 1 else f"1/|D| Σ_{{{example}∈D}} ∂l/∂{name}")
        if reg:
            parts.append(reg)
            mean_parts.append(reg)
        grad_lines.append([("m", f"{lhs} = {' + '.join(parts)} = {' + '.join(mean_parts)}")])
    each = [f"∂{v.name[losses[0]] if len(losses) == 1 else 'l'}/∂{v.name[w]} = {terms[w][0]}"
            for w in order if terms[w][0]]
    if each:
        line = [("t", "where, for each example, "), ("m", ", ".join(each))]
        if shown:
            line += [("t", ", with "), ("m", "; ".join(f"{s} = {d}" for s, d in shown.items()))]
        grad_lines.append(line)
    secs.append(("Gradients for a mini-batch", grad_lines))
    steps = [[("t", "Set all entries in "),
              *_and([f"∂{Lname}/∂{v.name[w]}" for w in order if terms[w][0]]),
              ("t", " to zero.")],
             [("t", "for "), ("m", f"{prose} ∈ D"), ("t", ":")]]
    k = 0
    for sym, definition in shown.items():
        k += 1
        steps.append([("t", f"   {k}. Let "), ("m", f"{sym} = {definition}")])
    for w in order:
        data = terms[w][0]
        if data:
            k += 1
            steps.append([("t", (f"   {k}. Add the gradient of {v.name[losses[0]]} w.r.t. "
                                f"{v.name[w]} computed at {prose}: ")),
                          ("m", f"∂{Lname}/∂{v.name[w]} += {data}")])
    steps.append([("t", "Divide by the number of entries in D: "),
                  ("m", ", ".join(f"∂{Lname}/∂{v.name[w]} /= |D|" for w in order if terms[w][0]))])
    final = []
    for w in order:
        data, reg = terms[w]
        rhs = " + ".join(([f"∂{Lname}/∂{v.name[w]}"] if data else []) + ([reg] if reg else []))
        final.append(f"∂{L.J}/∂{v.name[w]} = {rhs or '0'}")
    steps.append([("t", "Add the gradient for the regularization term: "),
                  ("m", ", ".join(final))])
    secs.append(("Computing them for a mini-batch, as in the lecture", steps))
    return secs


def lesson_sections(L: Lesson, one_example: bool = False):
    minibatch = L.minibatch and not one_example
    secs = [forward_section(L, minibatch)]
    if not L.view.has_loss:
        return secs
    secs.append(backward_section(L, minibatch))
    secs.append(gradients_section(L, minibatch))
    if minibatch:
        secs += minibatch_sections(L)
    return secs


# -- output formats ----------------------------------------------------------------------------

SUB = dict(zip("0123456789aehijklmnoprstuvx+-=()", "₀₁₂₃₄₅₆₇₈₉ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ₊₋₌₍₎"))
_SUBSCRIPT = re.compile(r"_\{([^{}]*)\}")


def plain_math(math: str) -> str:
    """Subscripts as Unicode where it has them (Σ_{j≠y} -> Σⱼ≠y, g_{s1} -> gₛ₁; s_{y} -> s_y)."""
    def sub(mt):
        body = mt.group(1)
        if all(ch in SUB for ch in body):
            return "".join(SUB[ch] for ch in body)
        if len(body) == 1:
            return "_" + body
        if body[:1].isalpha() and body[:1] in SUB:
            return SUB[body[0]] + body[1:]          # Σ_{j≠y}: Σⱼ≠y
        return "_{" + body + "}"
    return _SUBSCRIPT.sub(sub, math)


def _norm(line):
    """(depth, number, pieces) of a line: leading blanks nest it, a leading `k. ` numbers it."""
    pieces = list(line)
    depth, num = 0, None
    while pieces and pieces[0][0] == "t" and not pieces[0][1].strip() and pieces[0][1]:
        depth += 1
        pieces.pop(0)
    if pieces and pieces[0][0] == "t":
        mt = re.match(r"(\s*)(\d+)\. (.*)$", pieces[0][1], re.DOTALL)
        if mt:
            depth += bool(mt.group(1))
            num = mt.group(2)
            rest = mt.group(3)
            pieces[0] = ("t", rest)
            if not rest:
                pieces.pop(0)
        elif pieces[0][1].startswith("   ") and pieces[0][1].strip():
            depth += 1
            pieces[0] = ("t", pieces[0][1].lstrip())
    return depth, num, pieces


def render_text(title, sections) -> str:
    out = [title, ""]
    for head, lines in sections:
        out.append(head)
        for line in lines:
            depth, num, pieces = _norm(line)
            lead = "  " + "    " * depth + (f"{num}. " if num else "")
            text, blocks = "", []
            for kind, body in pieces:
                if kind == "pre":
                    blocks.append(body)
                elif kind == "m":
                    text += plain_math(body)
                else:
                    text += body
            out.append((lead + text).rstrip())
            for block in blocks:
                out.extend(lead.replace(f"{num}. " if num else "\0", " " * len(f"{num}. "))
                           + "    " + plain_math(r) for r in block)
        out.append("")
    return "\n".join(out)


def render_markdown(title, sections) -> str:
    out = [f"# `{title}`", ""]
    for head, lines in sections:
        out.append(f"## {head}")
        out.append("")
        for line in lines:
            depth, num, pieces = _norm(line)
            if len(pieces) == 1 and pieces[0][0] == "pre":        # a block of its own
                out.extend(["```", *map(plain_math, pieces[0][1]), "```", ""])
                continue
            pad = "   " * depth
            bullet = f"{num}. " if num else "- "
            text, blocks = "", []
            for kind, body in pieces:
                if kind == "pre":
                    blocks.append(body)
                elif kind == "m":
                    text += f"`{plain_math(body)}`"
                else:
                    text += body
            out.append(f"{pad}{bullet}{text.strip()}")
            for block in blocks:
                out.append("")
                out.append(f"{pad}   ```")
                out.extend(f"{pad}   {plain_math(r)}" for r in block)
                out.append(f"{pad}   ```")
        out.append("")
    return "\n".join(out)


# -- LaTeX -------------------------------------------------------------------------------------

TEX = [("‖", r"\| "), ("ᵀ", r"^{\top}"), ("²", "^{2}"), ("³", "^{3}"), ("−", "-"),
       ("⊗", r"\otimes "), ("⊙", r"\odot "), ("·", r"\cdot "), ("Σ", r"\sum "), ("√", r"\sqrt "),
       ("≠", r"\neq "), ("→", r"\to "), ("←", r"\leftarrow "), ("×", r"\times "), ("∈", r"\in "),
       ("∅", r"\emptyset "), ("▷", r"\triangleright "), ("∂", r"\partial "), ("…", r"\ldots "),
       ("′", "'"), ("λ", r"\lambda "), ("α", r"\alpha "),
       ("β", r"\beta "), ("γ", r"\gamma "), ("δ", r"\delta "), ("ε", r"\varepsilon "),
       ("η", r"\eta "), ("θ", r"\theta "), ("μ", r"\mu "), ("ρ", r"\rho "), ("σ", r"\sigma "),
       ("τ", r"\tau "), ("φ", r"\varphi "), ("ω", r"\omega "), ("κ", r"\kappa "), ("ν", r"\nu ")]
_SUBS = {ch: f"_{{{k}}}" for k, ch in SUB.items() if k.isalnum()}
_WORDS = re.compile(r"\b(diag|vec|softmax|logsoftmax|relu|sigmoid|tanh|exp|log|sign|sum|mean|"
                    r"max|svm|xent|sin|cos|sqrt|clip|softplus)\b(?=\()")


def _frac_end(s: str, i: int) -> int:
    """The end of the name after a ∂ at s[i]: letters, digits, _, ᵀ and balanced brackets."""
    j, depth = i, 0
    while j < len(s):
        ch = s[j]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and not (ch.isalnum() or ch in "_ᵀ′"):
            break
        j += 1
    return j


def _fracs(s: str) -> str:
    out, i = "", 0
    while i < len(s):
        if s[i] == "∂":
            a_end = _frac_end(s, i + 1)
            if a_end < len(s) - 1 and s[a_end] == "/" and s[a_end + 1] == "∂":
                b_end = _frac_end(s, a_end + 2)
                out += (r"\frac{\partial " + s[i + 1:a_end] + r"}{\partial "
                        + s[a_end + 2:b_end] + "}")
                i = b_end
                continue
        out += s[i]
        i += 1
    return out


def tex(math: str) -> str:
    """A formula in the lecture's notation as LaTeX math (ASCII only)."""
    s = _fracs(math)
    s = _WORDS.sub(lambda mt: r"\operatorname{" + mt.group(1) + "}", s)
    s = s.replace("|D|", r"\lvert D\rvert ").replace("+=", r"\mathrel{+}=")
    s = s.replace("/=", r"\mathrel{/}=")
    s = s.replace("%", r"\%").replace("#", r"\#").replace("&", r"\&")
    for a, b in TEX:
        s = s.replace(a, b)
    s = "".join(_SUBS.get(ch, ch) for ch in s)
    s = re.sub(r"_([A-Za-z0-9]{2,})(?![A-Za-z0-9])", r"_{\1}", s)
    s = re.sub(r"\s+", " ", s)
    return "".join(ch if ord(ch) < 128 else "?" for ch in s)


def _tex_text(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"),
                 ("#", r"\#"), ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("−", "-"),
                 ("|", r"$|$"), ("^", r"\^{}"), ("~", r"\~{}"), ("<", "$<$"), (">", "$>$")):
        text = text.replace(a, b)
    return "".join(f"${tex(ch).strip()}$" if ord(ch) > 127 else ch for ch in text)


def _verbatim(lines) -> list[str]:
    return ["\\begin{verbatim}", *("".join(ch if ord(ch) < 128 else "?" for ch in tex_pre(r))
                                   for r in lines), "\\end{verbatim}"]


def tex_pre(line: str) -> str:
    """A line of a block (numbers, pseudocode) in ASCII for verbatim."""
    line = _SUBSCRIPT.sub(lambda mt: "_" + mt.group(1) if len(mt.group(1)) == 1
                          else "_{" + mt.group(1) + "}", line)
    for a, b in (("−", "-"), ("∂", "d"), ("ᵀ", "^T"), ("Σ", "Sum "), ("∈", "in"), ("∅", "{}"),
                 ("▷", "//"), ("×", "x"), ("λ", "lambda"), ("‖", "||"), ("²", "^2"),
                 ("⊗", "(x)"), ("≠", "!="), ("→", "->"), ("…", "..."), ("·", "*"),
                 ("√", "root "), ("³", "^3"), ("←", "<-")):
        line = line.replace(a, b)
    return line


def render_latex(title, sections) -> str:
    out = ["% " + tex_pre(title), r"\documentclass{article}", r"\usepackage{amsmath}",
           r"\begin{document}", r"\section*{\texttt{" + _tex_text(title) + "}}"]
    for head, lines in sections:
        out.append(r"\subsection*{" + _tex_text(head) + "}")
        depth_open = 0
        for line in lines:
            depth, num, pieces = _norm(line)
            if len(pieces) == 1 and pieces[0][0] == "pre" and depth == 0 and num is None:
                while depth_open:
                    out.append(r"\end{itemize}")
                    depth_open -= 1
                out.extend(_verbatim(pieces[0][1]))
                continue
            while depth_open < depth + 1:
                out.append(r"\begin{itemize}")
                depth_open += 1
            while depth_open > depth + 1:
                out.append(r"\end{itemize}")
                depth_open -= 1
            parts = []
            for kind, body in pieces:
                if kind == "m":
                    parts.append(f"${tex(body)}$")
                elif kind == "pre":
                    parts.append("\n" + "\n".join(_verbatim(body)) + "\n")
                else:
                    parts.append(_tex_text(body))
            label = f"[{num}.]" if num else ""
            out.append(f"  \\item{label} " + "".join(parts).strip())
        while depth_open:
            out.append(r"\end{itemize}")
            depth_open -= 1
    out.append(r"\end{document}")
    return "\n".join(out) + "\n"


RENDER = {"text": render_text, "markdown": render_markdown, "latex": render_latex}


# -- entry points ------------------------------------------------------------------------------

def explain(compiled, format: str = "text", jacobians: bool = False, *,
            one_example: bool = False, trace: bool = False, dims: dict | None = None,
            show_matrices: bool = False, pseudocode_: bool = False, seed: int = 0,
            view: View | None = None) -> str:
    """The lecture's account of a model as text, Markdown or a LaTeX document.

    ``compiled`` is a CompiledModel (or None with ``view``, for a model without a loss).
    ``jacobians=True`` adds the explicit Jacobians checked against finite differences and
    value_and_grad; ``trace`` a worked example at ``dims`` (the examples axis n = 1 unless
    given); ``pseudocode_`` the lecture's procedures run on the model; ``one_example`` leaves
    out the mini-batch; ``show_matrices`` prints matrices of any size. Raises GdslUsageError
    for an unknown format, or numbers asked of a model without a loss.
    """
    if format not in FORMATS:
        raise GdslUsageError(f"unknown explain format {format!r}: choose " + ", ".join(FORMATS))
    v = view if view is not None else View(teaching_model(compiled))
    limit = None if show_matrices else MATRIX_LIMIT
    shapes = None
    if trace:
        try:
            shapes = example_shapes(v.m, dims)
        except GdslError:                     # (reported below, by Trace)
            shapes = None
    L = Lesson(v, shapes)
    secs = lesson_sections(L, one_example)
    if (jacobians or trace) and not v.has_loss and trace is False:
        raise GdslUsageError("--jacobians needs a loss: this model computes no scalar to "
                             "differentiate")
    if jacobians:
        secs.append(JacobianCheck(Lesson(v), compiled, seed, limit).section(L))
    if trace:
        secs += Trace(L, compiled, dims, seed, limit).sections()
    if pseudocode_:
        secs += pseudocode(L)
    name = v.m.filename or "<model>"
    return RENDER[format](f"gdsl explain {name}", secs)


def jacobian_check(compiled, seed: int = 0) -> JacobianCheck:
    """Run the explicit-Jacobian check; ``.max_diff``, ``.diffs`` and ``.rules_max`` hold the
    differences (chained finite differences against value_and_grad; rules against finite
    differences)."""
    return JacobianCheck(Lesson(View(teaching_model(compiled))), compiled, seed)


__all__ = ["FORMATS", "JacobianCheck", "Lesson", "Trace", "example_shapes", "explain",
           "jacobian_check"]

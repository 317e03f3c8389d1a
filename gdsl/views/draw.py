"""Draw a model's computational graph as on the lecture's slides.

The drawing shows the graph a student reads, not every node of the IR:

- inputs, params and consts (x, W, b, y, λ) are set apart from the computed
  values (z, s, p, l, r, J) by colour and outline;
- each computed value carries its op in the lecture's notation (Wx, z + b,
  softmax(s), −log(yᵀp), ‖W‖², l + λr), and an edge runs from every value
  to the op that uses it;
- an unnamed scalar multiple such as `lam * r` is folded into the label of
  the value that uses it (J = l + λr), as the slides write it; literals
  never become nodes.

`View` computes that picture once; `to_dot` writes it as Graphviz DOT and
`render` turns it into .dot, .svg or .png: through Graphviz's `dot` program
when it is installed, otherwise through a layered layout drawn with
matplotlib. `--backward` adds one gradient node ∂J/∂n per value on the way
from the params to the loss, joined along the lecture's BackOp edges, each
edge labelled with its local Jacobian.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import GdslError
from ..ir.graph import Model
from .explain import Lesson
from .view import View, teaching_model

FORMATS = ("dot", "svg", "png")


# -- gradient nodes (--backward) ---------------------------------------------------------------

def backward_view(view: View):
    """The lecture's backward graph: [(node, completed-after)], [(child, node, jacobian text)]."""
    lesson = Lesson(view)
    return lesson


# -- DOT ---------------------------------------------------------------------------------------

STYLE = {
    "input": 'shape=circle, style=filled, fillcolor="#e6e6e6", color="#555555"',
    "param": 'shape=circle, style="filled,bold", fillcolor="#cfe3ff", color="#1f4e9c"',
    "const": 'shape=circle, style="dashed", color="#555555"',
    "op": 'shape=circle, color="#000000"',
    "grad": 'shape=box, style="rounded,dashed", color="#b22222", fontcolor="#b22222"',
}


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _shape_text(model: Model, n: int) -> str:
    from ..ir.shapes import show_shape
    return show_shape(model.G.nodes[n]["shape"])


def to_dot(view: View, *, backward: bool = False, shapes: bool = False) -> str:
    """The graph as Graphviz DOT text (parses with pydot and networkx)."""
    m = view.m
    title = Path(m.filename).name if m.filename else "model"
    lines = [f"digraph {_q('gdsl')} {{",
             "  rankdir=LR; forcelabels=true; nodesep=0.35; ranksep=0.5;",
             (f'  label={_q(title + ": inputs grey, params blue, consts dashed")}; '
              'labelloc=b; fontsize=10; fontname="Helvetica";'),
             '  node [fontname="Helvetica", fontsize=14, width=0.45, fixedsize=false];',
             '  edge [arrowsize=0.7];']
    for n in view.nodes:
        kind = view.kind[n]
        label = view.name[n]
        if shapes:
            label += "\n" + _shape_text(m, n)
        attrs = [f"label={_q(label)}", STYLE[kind], f"class={_q(kind)}"]
        if kind == "op":
            attrs.append(f"xlabel={_q(view.label[n])}")
            attrs.append(f"tooltip={_q(view.statement(n))}")
        lines.append(f"  n{n} [{', '.join(attrs)}];")
    for a, c in view.edges:
        lines.append(f"  n{a} -> n{c};")
    if backward:
        lesson = backward_view(view)
        for n in lesson.backward_order:
            label = f"∂{lesson.J}/∂{view.name[n]}"
            lines.append(f"  g{n} [label={_q(label)}, {STYLE['grad']}, class={_q('grad')}];")
            lines.append(f'  n{n} -> g{n} [style=dotted, arrowhead=none, color="#b22222", '
                         f"constraint=false];")
        for c, n, jac in lesson.grad_edges():
            lines.append(f'  g{c} -> g{n} [label={_q(jac)}, color="#b22222", '
                         f'fontcolor="#b22222", fontsize=10];')
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- rendering ---------------------------------------------------------------------------------

def graphviz() -> str | None:
    return shutil.which("dot")


def check_renderer(fmt: str) -> None:
    """SVG and PNG need Graphviz's `dot` or matplotlib: say so before any work is done."""
    if fmt == "dot" or graphviz() or importlib.util.find_spec("matplotlib") is not None:
        return
    raise GdslError(f"drawing .{fmt} needs Graphviz (its `dot` program) or matplotlib, and "
                    "neither is installed",
                    help="install one (`pip install 'gdsl[plot]'`, or Graphviz from your system's "
                    "packages), or write the graph as .dot")


def render(view: View, fmt: str, *, backward: bool = False, shapes: bool = False,
           note=None) -> bytes:
    """The drawing as bytes in ``fmt`` ('dot', 'svg' or 'png').

    SVG and PNG go through Graphviz when its `dot` program is installed and
    through matplotlib otherwise; ``note(text)`` is told which.
    """
    if fmt not in FORMATS:
        raise GdslError(f"cannot draw to .{fmt}: the formats are " + ", ".join(FORMATS))
    check_renderer(fmt)
    dot = to_dot(view, backward=backward, shapes=shapes)
    if fmt == "dot":
        return dot.encode("utf-8")
    exe = graphviz()
    why = "Graphviz `dot` is not installed"
    if exe:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot.encode("utf-8"), capture_output=True,
                              check=False)
        if proc.returncode == 0:
            return proc.stdout
        why = f"Graphviz failed ({proc.stderr.decode(errors='replace').strip()[:200]})"
        if importlib.util.find_spec("matplotlib") is None:
            raise GdslError(f"cannot draw .{fmt}: {why}, and matplotlib is not installed")
    data = render_matplotlib(view, fmt, backward=backward, shapes=shapes)
    if note:
        note(f"note: {why}; drew the graph with matplotlib"
             + (" (install Graphviz for its layout)" if not exe else ""))
    return data


def layout(view: View, backward: bool = False):
    """Layered positions: columns by depth, the main chain on top, leaves below, as on the slides."""
    m = view.m
    nodes = view.nodes
    args = {n: view.visible_args(n) for n in nodes}
    users = {n: [] for n in nodes}
    for a, c in view.edges:
        users[a].append(c)
    depth = {}
    for n in nodes:                       # forward order: args come first
        depth[n] = 0 if view.kind[n] != "op" else 1 + max((depth[a] for a in args[n]), default=-1)
    rank = {"input": 0, "op": 1, "param": 2, "const": 3}
    # the main chain: the longest path into the loss (inputs preferred, as x on the slides)
    end = m.loss if m.loss in depth else nodes[-1]
    chain = [end]
    while args.get(chain[-1]):
        chain.append(max(args[chain[-1]], key=lambda a: (depth[a], -rank[view.kind[a]], -a)))
    on_chain = set(chain)
    col = {}
    for n in nodes:
        if n in on_chain:
            col[n] = depth[n]
    for n in reversed(nodes):             # off the chain: as late as their users allow
        if n in on_chain:
            continue
        later = [col[u] for u in users[n] if u in col]
        if view.kind[n] == "op":
            col[n] = (min(later) - 1) if later else depth[n]
            col[n] = max(col[n], depth[n])
        else:
            col[n] = max(min(later) - 1, 0) if later else 0
    taken = {}
    pos = {}
    for n in nodes:
        if n in on_chain:
            pos[n] = (col[n], 0.0)
            continue
        band = -1.0 if view.kind[n] == "op" else -2.0
        k = taken.get((col[n], band), 0)
        taken[(col[n], band)] = k + 1
        pos[n] = (col[n] + 0.35 * (k % 2) * (1 if band == -2 else 0), band - 0.9 * k)
    if backward:
        low = min(y for _, y in pos.values())
        for n in nodes:    # gradients mirror their values: chain, then other ops, then leaves
            x = pos[n][0]
            row = 0.0 if n in on_chain else (-1.1 if view.kind[n] == "op" else -2.2)
            pos[("g", n)] = (x, low - 1.6 + row)
    return pos


def render_matplotlib(view: View, fmt: str, *, backward: bool = False,
                      shapes: bool = False) -> bytes:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

    pos = layout(view, backward)
    lesson = backward_view(view) if backward else None
    if lesson is not None:
        keep = set(lesson.backward_order)
        pos = {k: v for k, v in pos.items() if not (isinstance(k, tuple) and k[1] not in keep)}
    xs = [x for x, _ in pos.values()]
    ys = [y for _, y in pos.values()]
    width = max(xs) - min(xs) + 1.6
    height = max(ys) - min(ys) + 1.6
    fig = plt.figure(figsize=(max(4.0, 1.5 * width), max(2.2, 1.3 * height)))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    ax.set_aspect("equal")
    ax.axis("off")
    R = 0.24
    colours = {"input": ("#e6e6e6", "#555555", "-"), "param": ("#cfe3ff", "#1f4e9c", "-"),
               "const": ("white", "#555555", "--"), "op": ("white", "black", "-")}

    def arrow(p, q, colour="black", label=None, style="-|>", ls="-", rp=R, rq=R):
        (x0, y0), (x1, y1) = p, q
        dx, dy = x1 - x0, y1 - y0
        dist = max((dx * dx + dy * dy) ** 0.5, 1e-9)
        a = (x0 + dx * rp / dist, y0 + dy * rp / dist)
        b = (x1 - dx * rq / dist, y1 - dy * rq / dist)
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=11, color=colour,
                                     linestyle=ls, linewidth=1.0))
        if label:
            ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.08, label, fontsize=7,
                    color=colour, ha="center", va="bottom")

    for a, c in view.edges:
        arrow(pos[a], pos[c])
    for n in view.nodes:
        x, y = pos[n]
        fill, edge, ls = colours[view.kind[n]]
        ax.add_patch(Circle((x, y), R, facecolor=fill, edgecolor=edge, linestyle=ls,
                            linewidth=1.8 if view.kind[n] == "param" else 1.0))
        ax.text(x, y, view.name[n], ha="center", va="center", fontsize=12)
        if view.kind[n] == "op":   # on the chain over the arrow into the node, as on the slides
            dx = -0.5 if y == 0.0 and x > 0 else 0.0
            ax.text(x + dx, y + R + 0.04, view.label[n], ha="center", va="bottom", fontsize=9)
        if shapes:
            ax.text(x, y - R - 0.04, _shape_text(view.m, n), ha="center", va="top",
                    fontsize=7, color="#555555")
    if lesson is not None:
        red = "#b22222"
        for n in lesson.backward_order:
            x, y = pos[("g", n)]
            ax.add_patch(FancyBboxPatch((x - 0.3, y - 0.16), 0.6, 0.32,
                                        boxstyle="round,pad=0.02", facecolor="white",
                                        edgecolor=red, linestyle="--"))
            ax.text(x, y, f"∂{lesson.J}/∂{view.name[n]}", ha="center", va="center",
                    fontsize=9, color=red)
        for c, n, jac in lesson.grad_edges():
            arrow(pos[("g", c)], pos[("g", n)], colour=red, label=jac, rp=0.22, rq=0.22)
    title = Path(view.m.filename).name if view.m.filename else "model"
    ax.text(min(xs) - 0.7, min(ys) - 0.7, f"{title}: inputs grey, params blue, consts dashed",
            fontsize=7, color="#555555", ha="left", va="bottom")
    buf = io.BytesIO()
    meta = {"svg": {"Date": None}, "png": {"Software": "gdsl"}}[fmt]
    fig.savefig(buf, format=fmt, dpi=150, metadata=meta)
    plt.close(fig)
    return buf.getvalue()


# -- entry points ------------------------------------------------------------------------------

def format_of(target: str) -> tuple[str, str | None]:
    """('svg', None) for a bare format name, ('svg', path) for a file name."""
    t = str(target)
    if t.lower() in FORMATS:
        return t.lower(), None
    suffix = Path(t).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise GdslError(f"cannot tell the drawing format of {t!r}: name a file ending in "
                        + ", ".join("." + f for f in FORMATS) + " (or pass the format itself)",
                        filename=t)
    return suffix, t


def draw(model, target, *, backward: bool = False, shapes: bool = False, note=None):
    """Draw a compiled model. ``target`` is a file name (.dot, .svg, .png), written atomically,
    or a bare format name ('svg'), in which case the drawing is returned (str for dot and svg,
    bytes for png). Raises GdslError for an unknown format or when nothing can draw it."""
    from ..files import write_atomic
    fmt, path = format_of(target)
    data = render(View(teaching_model(model)), fmt, backward=backward, shapes=shapes, note=note)
    if path is None:
        return data if fmt == "png" else data.decode("utf-8")
    write_atomic(path, data)
    return path


def repr_svg(model) -> str:
    return draw(model, "svg", note=None)


def stderr_note(text: str) -> None:
    print(text, file=sys.stderr)

"""Draw a model's computational graph as on the lecture's slides, with Graphviz or matplotlib.

The drawing shows the graph a student reads, not every node of the IR (gdsl.views.view):

- inputs, params and consts (x, W, b, y, λ) are set apart from the computed values (z, s, p,
  l, r, J) by colour and outline;
- each computed value's op in the lecture's notation (Wx, z + b, softmax(s), −log(yᵀp),
  ‖W‖², l + λr) is written on the arrow into it;
- ``backward=True`` adds one box ∂J/∂n per value on the way from the params to the loss,
  arranged as the values are, below them, joined along BackOp's edges, each labelled with
  its local Jacobian.

Where everything goes is decided once (gdsl.views.layout), so the two renderers draw the
same picture: Graphviz gets every node pinned (`layout=neato`, `pos="x,y!"`, straight
edges), and matplotlib draws the same boxes, circles, texts and lines. `gdsl graph
--neurons` draws the neuron-level figure (one node per unit, one edge per weight), and
`--loss-curve` the loss-function slide's curves (matplotlib).
"""

from __future__ import annotations

import html
import importlib.util
import io
import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..errors import GdslError, GdslUsageError
from ..ir.evaluate import evaluate_node
from ..ir.ops import OPS
from .layout import BLUE, FONT, GREY, RED, Layout, graph_layout, neuron_layout, runs
from .lesson import Lesson, example_dims
from .view import View, teaching_model

FORMATS = ("dot", "svg", "png")

STYLE = {
    "input": 'shape=circle, style=filled, fillcolor="#e6e6e6", color="#555555"',
    "param": 'shape=circle, style="filled,bold", fillcolor="#cfe3ff", color="#1f4e9c"',
    "const": 'shape=circle, style="dashed", color="#555555"',
    "op": 'shape=circle, color="#000000"',
    "grad": 'shape=box, style="rounded,dashed", color="#b22222", fontcolor="#b22222"',
}
LEGEND = "inputs grey, params blue, consts dashed"


# -- the layout of a view ------------------------------------------------------------------------

def _title(view: View, extra: str = "") -> str:
    name = Path(view.m.filename).name if view.m.filename else "model"
    return f"{name}: {LEGEND}{extra}"


def layout_of(view: View, *, backward: bool = False, shapes: bool = False) -> Layout:
    """The slide-like layout of a view (and of its backward pass)."""
    lesson = None
    if backward:
        if not view.has_loss:
            raise GdslUsageError("--backward needs a loss: this model computes no scalar to "
                                 "differentiate")
        lesson = Lesson(view)
    extra = "; gradients red, each arrow's local Jacobian on it" if backward else ""
    return graph_layout(view, lesson, shapes=shapes, title=_title(view, extra))


# -- DOT -------------------------------------------------------------------------------------------

def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _label(text: str) -> str:
    """A DOT label: a quoted string, or an HTML-like label for subscripts (s_y, w_{2,1})."""
    pieces = runs(text)
    if not any(sub for _, sub in pieces):
        return f"label={_q(text)}"
    body = "".join(f"<SUB>{html.escape(p)}</SUB>" if sub else html.escape(p) for p, sub in pieces)
    return f"label=<{body}>"


def layout_dot(lay: Layout) -> str:
    """A layout as Graphviz DOT with every node pinned (`dot -Tsvg` draws it as gdsl does)."""
    lines = ["digraph \"gdsl\" {",
             ('  graph [layout=neato, splines=line, outputorder=edgesfirst, pad=0.1, '
             'bgcolor="white"];'),
             f'  node [fontname={_q(FONT)}, fixedsize=true];',
             "  edge [arrowsize=0.7, penwidth=1.0];"]
    for it in lay.items.values():
        pos = f'pos="{it.x:.4f},{it.y:.4f}!"'
        common = f"{_label(it.text)}, {pos}, fontsize={it.size:g}, class={_q(it.kind)}"
        if it.shape == "circle" and it.kind in STYLE:
            lines.append(f"  {it.id} [{common}, {STYLE[it.kind]}, width={it.w:.3f}, "
                         f"height={it.h:.3f}];")
        elif it.shape == "circle":          # a unit of the neuron-level figure
            fill = '"#e6e6e6"' if it.kind == "input" else "white"
            lines.append(f"  {it.id} [{common}, shape=circle, style=filled, fillcolor={fill}, "
                         f"color={_q(it.colour)}, width={it.w:.3f}, height={it.h:.3f}];")
        elif it.kind == "grad":
            lines.append(f"  {it.id} [{common}, {STYLE['grad']}, width={it.w:.3f}, "
                         f"height={it.h:.3f}];")
        else:                               # a label: text on its own, white behind it
            lines.append(f"  {it.id} [{common}, shape=plaintext, margin=0, width={it.w:.3f}, "
                         f"height={it.h:.3f}, fontcolor={_q(it.colour)}, style=filled, "
                         f'fillcolor="white", color="white"];')
    bends = 0
    for e in lay.edges:
        colour = f'color={_q(e.colour)}'
        points = e.points[1:-1]
        src = e.src
        for p in points:
            bends += 1
            bid = f"bend{bends}"
            lines.append(f'  {bid} [label="", shape=point, width=0.01, height=0.01, '
                         f'style=invis, class="bend", pos="{p[0]:.4f},{p[1]:.4f}!"];')
            lines.append(f"  {src} -> {bid} [{colour}, arrowhead=none];")
            src = bid
        owns = f", comment={_q('label ' + e.label)}" if e.label else ""   # (its label's node)
        lines.append(f"  {src} -> {e.dst} [{colour}{owns}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_dot(view: View, *, backward: bool = False, shapes: bool = False) -> str:
    """The graph as Graphviz DOT text (parses with pydot and networkx)."""
    return layout_dot(layout_of(view, backward=backward, shapes=shapes))


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


def render_layout(lay: Layout, fmt: str, *, note=None, renderer: str | None = None) -> bytes:
    """A layout drawn as ``fmt`` ('dot', 'svg' or 'png'): by Graphviz's `dot` when it is
    installed (or ``renderer="graphviz"``), by matplotlib otherwise (or
    ``renderer="matplotlib"``); ``note(text)`` is told when matplotlib stands in."""
    if fmt not in FORMATS:
        raise GdslError(f"cannot draw to .{fmt}: the formats are " + ", ".join(FORMATS))
    dot = layout_dot(lay)
    if fmt == "dot":
        return dot.encode("utf-8")
    exe = graphviz()
    why = "Graphviz `dot` is not installed"
    if renderer != "matplotlib" and exe:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot.encode("utf-8"), capture_output=True,
                              check=False)
        if proc.returncode == 0:
            return proc.stdout
        why = f"Graphviz failed ({proc.stderr.decode(errors='replace').strip()[:200]})"
        if importlib.util.find_spec("matplotlib") is None:
            raise GdslError(f"cannot draw .{fmt}: {why}, and matplotlib is not installed")
    elif renderer == "graphviz":
        raise GdslError("Graphviz's `dot` is not installed")
    data = render_matplotlib(lay, fmt)
    if note and renderer != "matplotlib":
        note(f"note: {why}; drew the graph with matplotlib"
             + (" (install Graphviz for its renderer)" if not exe else ""))
    return data


def render(view: View, fmt: str, *, backward: bool = False, shapes: bool = False,
           note=None, renderer: str | None = None) -> bytes:
    """The drawing of a view as bytes in ``fmt`` ('dot', 'svg' or 'png')."""
    if fmt not in FORMATS:
        raise GdslError(f"cannot draw to .{fmt}: the formats are " + ", ".join(FORMATS))
    check_renderer(fmt)
    return render_layout(layout_of(view, backward=backward, shapes=shapes), fmt, note=note,
                         renderer=renderer)


# -- matplotlib ---------------------------------------------------------------------------------

FILL = {"input": ("#e6e6e6", GREY, "-", 1.0), "param": ("#cfe3ff", BLUE, "-", 1.8),
        "const": ("white", GREY, "--", 1.0), "op": ("white", "black", "-", 1.0),
        "grad": ("white", RED, "--", 1.0)}


def _mathtext(text: str) -> str:
    """Text with subscripts as matplotlib mathtext ($\\mathregular{s_{y}}$); else as it is."""
    pieces = runs(text)
    if not any(sub for _, sub in pieces):
        return text.replace("$", r"\$")

    def esc(s):
        for a, b in (("\\", r"\backslash "), ("{", r"\{"), ("}", r"\}"), ("$", r"\$"),
                     ("_", r"\_"), ("^", r"\^"), ("%", r"\%"), ("#", r"\#"), ("&", r"\&"),
                     ("~", r"\~"), (" ", r"\ ")):
            s = s.replace(a, b)
        return s
    body = "".join("_{" + esc(p) + "}" if sub else esc(p) for p, sub in pieces)
    return r"$\mathregular{" + body + "}$"


def _edge_ends(lay: Layout, pts):
    """The first and last points moved from the centres to the outlines of the two nodes."""
    pts = [tuple(p) for p in pts]

    def clip(item, inside, toward):
        dx, dy = toward[0] - inside[0], toward[1] - inside[1]
        d = max((dx * dx + dy * dy) ** 0.5, 1e-9)
        if item.shape == "circle":
            r = item.w / 2
        elif item.shape == "point":
            r = 0.0
        else:           # the ray leaves the box at the nearer of its sides
            tx = (item.w / 2) / abs(dx) if dx else np.inf
            ty = (item.h / 2) / abs(dy) if dy else np.inf
            r = min(tx, ty) * d
        return (inside[0] + dx / d * r, inside[1] + dy / d * r)
    return pts, clip


def figure(lay: Layout):
    """The matplotlib figure of a layout, and {item id: artist} and [(edge, [points])]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

    x0, y0, x1, y1 = lay.bounds()
    fig = Figure(figsize=(x1 - x0, y1 - y0), dpi=100)
    FigureCanvasAgg(fig)            # (no pyplot: nothing global changes)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axis("off")
    artists, lines = {}, []
    items = lay.items
    for e in lay.edges:
        a, b = items[e.src], items[e.dst]
        pts, clip = _edge_ends(lay, e.points)
        start = clip(a, pts[0], pts[1])
        end = clip(b, pts[-1], pts[-2])
        path = [start, *pts[1:-1], end]
        for p, q in itertools.pairwise(path[:-1]):      # (the last one is the arrow)
            ax.plot([p[0], q[0]], [p[1], q[1]], color=e.colour, linewidth=1.0,
                    solid_capstyle="butt", zorder=1)
        ax.add_patch(FancyArrowPatch(path[-2], path[-1], arrowstyle="-|>", mutation_scale=10,
                                     color=e.colour, linewidth=1.0, shrinkA=0, shrinkB=0,
                                     zorder=1))
        lines.append((e, path))
    for it in items.values():
        if it.shape == "point":
            continue
        if it.shape == "circle":
            fill, edge, ls, lw = FILL.get(it.kind, ("white", it.colour, "-", 1.0))
            if it.kind == "input" or it.kind == "op":
                fill = "#e6e6e6" if it.kind == "input" else "white"
            patch = Circle((it.x, it.y), it.w / 2, facecolor=fill, edgecolor=edge, linestyle=ls,
                           linewidth=lw, zorder=2)
            ax.add_patch(patch)
            artists[it.id] = patch
            text = ax.text(it.x, it.y, _mathtext(it.text), ha="center", va="center",
                           fontsize=it.size, family=FONT, zorder=3)
            artists[it.id + ":text"] = text
        elif it.kind == "grad":
            patch = FancyBboxPatch((it.x - it.w / 2, it.y - it.h / 2), it.w, it.h,
                                   boxstyle="round,pad=0,rounding_size=0.06", facecolor="white",
                                   edgecolor=RED, linestyle="--", linewidth=1.0, zorder=2)
            ax.add_patch(patch)
            artists[it.id] = patch
            artists[it.id + ":text"] = ax.text(it.x, it.y, _mathtext(it.text), ha="center",
                                               va="center", fontsize=it.size, family=FONT,
                                               color=RED, zorder=3)
        else:
            artists[it.id] = ax.text(
                it.x, it.y, _mathtext(it.text), ha="center", va="center", fontsize=it.size,
                family=FONT, color=it.colour, zorder=4,
                bbox={"boxstyle": "square,pad=0.05", "facecolor": "white", "edgecolor": "none"}
                if it.kind == "label" else None)
    return fig, artists, lines


def render_matplotlib(lay: Layout, fmt: str) -> bytes:
    fig, _, _ = figure(lay)
    buf = io.BytesIO()
    meta = {"svg": {"Date": None}, "png": {"Software": "gdsl"}}[fmt]
    fig.savefig(buf, format=fmt, dpi=150, metadata=meta)
    return buf.getvalue()


# -- the neuron-level figure ----------------------------------------------------------------------

def neuron_layers(view: View, dims: dict | None = None):
    """The layers of the slides' neuron-level figure along the main chain: the input's units,
    then each value with units of its own (a product of weights and its bias are one layer,
    s = Wx + b); [(name, size, caption, link)] for neuron_layout."""
    from .layout import main_chain
    m = view.m
    args = {n: view.visible_args(n) for n in view.nodes}
    chain = main_chain(view, args)
    sizes = example_dims(m, dims)
    nd = None
    for n in m.inputs.values():
        s = m.node(n)["shape"]
        if s and len(s) == 2 and isinstance(s[-1], str):
            nd = s[-1]

    def units(n):
        s = m.node(n)["shape"]
        if s is None or len(s) == 0:
            return None
        first = s[0]
        if len(s) == 2 and s[1] not in (1, nd) and not (isinstance(s[1], str) and s[1] == nd):
            return None
        if isinstance(first, str):
            return sizes.get(first, first) if dims and first in dims else first
        return first
    layers = []
    start = next((k for k, n in enumerate(chain) if view.kind[n] == "input"), None)
    if start is None:
        raise GdslError("the neuron-level figure starts at an input: this model's main chain "
                        "has none", filename=m.filename)
    x = chain[start]
    size = units(x)
    if size is None:
        raise GdslError(f"cannot draw the units of `{view.name[x]}`: give it a shape such as "
                        f"[d, 1] or [d, n]", filename=m.filename)
    layers.append((view.name[x], size, f"Input: {view.name[x]}", None))
    pending_weight = None
    pending_caption = []
    for n in chain[start + 1:]:
        op, op_args = view.op_of(n)
        row = OPS[op]
        size = units(n)
        if size is None or row.loss:
            break
        link = row.units or ("one" if row.elementwise else None)
        if link is None:
            break
        if link == "dense":
            weights = [a for a in op_args if view.m.node(a)["op"] != "literal"]
            w = _weight_name(view, weights[0])
            single = units(n) in (1,)
            pending_weight = ("dense", w, single)
            pending_caption.append(f"{view.name[n]} = {view.label[n]}")
            feeds = [u for u in view.consumers.get(n, []) if u in view.kind]
            if len(feeds) == 1 and feeds[0] in chain and units(feeds[0]) == size and \
                    _adds_bias(view, feeds[0], n):
                continue        # z = Wx and s = z + b: one layer, s = Wx + b
        label = _layer_caption(view, n, pending_caption)
        layers.append((view.name[n], size, label, pending_weight or "one"))
        pending_weight, pending_caption = None, []
    if len(layers) < 2:
        raise GdslError("the neuron-level figure needs a layer of units after the input "
                        "(s = Wx + b)", filename=m.filename)
    return layers


def _adds_bias(view: View, n: int, z: int) -> bool:
    """Whether n is z plus a param (s = z + b): the slides draw the two as one layer."""
    op, args = view.op_of(n)
    others = [a for a in view.visible_args(n) if a != z]
    return OPS[op].elementwise and len(args) == 2 and len(others) == 1 and \
        view.kind.get(others[0]) == "param"


def _weight_name(view: View, n: int) -> str:
    nodes = view.m.nodes
    while nodes[n]["op"] not in ("param", "input", "const") and nodes[n]["args"]:
        n = nodes[n]["args"][0]
    name = view.m.nodes[n]["name"] or "w"
    return name.lower() if len(name) == 1 else name


def _layer_caption(view: View, n: int, pending: list[str]) -> str:
    if pending:             # s = Wx + b, with z written out
        inline = view.expanded({a: view.expr(a) for a in view.visible_args(n)
                                if view.kind[a] == "op"})
        return f"{view.name[n]} = {inline[n][0]}"
    return f"{view.name[n]} = {view.label[n]}"


def neurons(view: View, dims: dict | None = None) -> Layout:
    name = Path(view.m.filename).name if view.m.filename else "model"
    decisions = [f"{view.name[n]}(x) = {view.label[n]}" for n in view.nodes
                 if view.kind[n] == "op" and OPS[view.op_of(n)[0]].vjp is None]
    extra = f"; final decision: {', '.join(decisions)}" if decisions else ""
    return neuron_layout(neuron_layers(view, dims), title=f"{name}: one node per unit, one "
                         f"edge per weight{extra}")


# -- the loss-function slide --------------------------------------------------------------------

def loss_curves(view: View, fmt: str) -> bytes:
    """The loss-function slide: each loss of the model plotted for one example (the op table's
    `curve`: the hinge max(0, s_j − s_y + 1) against s_j − s_y, −log(p_y) against p_y)."""
    if fmt not in ("svg", "png"):
        raise GdslUsageError("--loss-curve draws .svg or .png")
    if importlib.util.find_spec("matplotlib") is None:
        raise GdslError("--loss-curve needs matplotlib", help="pip install 'gdsl[plot]'")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = []
    for n in view.nodes:
        if view.kind[n] == "op":
            op = view.op_of(n)[0]
            if OPS[op].loss and op not in [r[0] for r in rows]:
                rows.append((op, OPS[op]))
    curves = [(op, row.curve) for op, row in rows if row.curve]
    if not curves:
        raise GdslError("this model has no loss with a curve to draw (the loss-function slide "
                        "plots xent and svm)", filename=view.m.filename)
    fig = Figure(figsize=(4.2 * len(curves), 3.2), dpi=100)
    FigureCanvasAgg(fig)
    for k, (op, curve) in enumerate(curves):
        ax = fig.add_subplot(1, len(curves), k + 1)
        lo, hi = curve["range"]
        t = np.linspace(lo, hi, 400)
        values = []
        for v in t:
            a, b = curve["args"](float(v))
            values.append(float(evaluate_node(op, {}, [np.asarray(a, dtype=np.float64),
                                                       np.asarray(b, dtype=np.float64)])))
        ax.plot(t, values, color=BLUE, linewidth=2)
        ax.set_title(curve["title"], fontsize=11, family=FONT)
        ax.set_xlabel(_mathtext(curve["x"]), family=FONT)
        ax.set_ylabel(_mathtext(curve["y"]), family=FONT)
        ax.axhline(0, color=GREY, linewidth=0.6)
        ax.axvline(0, color=GREY, linewidth=0.6)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    meta = {"svg": {"Date": None}, "png": {"Software": "gdsl"}}[fmt]
    fig.savefig(buf, format=fmt, dpi=150, metadata=meta)
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
    from ..files import check_output, write_atomic
    fmt, path = format_of(target)
    if path is not None:        # (a directory that does not exist: said before drawing)
        check_output(path, "draw")
    data = render(View(teaching_model(model, folded=True)), fmt, backward=backward, shapes=shapes, note=note)
    if path is None:
        return data if fmt == "png" else data.decode("utf-8")
    write_atomic(path, data)
    return path


def repr_svg(model) -> str:
    return draw(model, "svg", note=None)


def stderr_note(text: str) -> None:
    print(text, file=sys.stderr)

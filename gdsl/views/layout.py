"""Where everything goes in a drawing, as on the lecture's slides: one layout, in inches, that
both renderers draw (Graphviz with every node pinned, and matplotlib).

The computational graph (`graph_layout`):

- the main chain (x z s p l J: the longest path into the loss, from an input) on one row;
- inputs, params and consts the chain uses (W b y λ) on the row below, under their user;
- the other computed values (r = ‖W‖²) on the rows below that, where no edge crosses a node;
- each op's label (Wx, z + b, softmax(s), −log(yᵀp)) on the arrow into it;
- with the backward pass, one box ∂J/∂n per value in the same arrangement further down,
  joined along BackOp's edges, each labelled with its local Jacobian.

The neuron-level figure (`neuron_layout`): one node per unit (x₁ .. x_d, s₁ .. s_C), one
edge per weight labelled w_{j,i}.

Sizes of texts are estimated from the advance widths of DejaVu Sans (the font both renderers
are given), and every label is placed where it overlaps no node, no other label and no edge;
tests/test_lecture.py checks the renderers' own extents.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

FONT = "DejaVu Sans"
NAME_SIZE, OP_SIZE, JAC_SIZE, GRAD_SIZE, NOTE_SIZE, SHAPE_SIZE = 14, 11, 10, 11, 8, 8
ROW = 0.95            # inches between rows
MARGIN = 0.07         # clearance between any two things
RED, GREY, BLUE, BLACK = "#b22222", "#555555", "#1f4e9c", "#000000"

# advance widths of DejaVu Sans, in ems
WIDTHS = {
    0.17: "ₗ", 0.18: "ᵢⱼ", 0.23: "′", 0.24: "₍₎", 0.26: "ᵣ", 0.28: "'ijl", 0.29: "IJₜ",
    0.32: " ,.·", 0.34: "/:;\\|", 0.35: "f", 0.36: "-", 0.37: "ₛ", 0.39: "()[]tᵀ₀₆ₐ",
    0.4: "!²³₁₂₃₄₅₇₈₉ₙᵤ", 0.41: "ₑₕₒ", 0.42: "rᵥ", 0.43: "ₖₚ", 0.44: "ₓ", 0.47: '"',
    0.5: "*_`‖", 0.52: "sz∂", 0.53: "?₊₋₌", 0.54: "ε", 0.56: "Lcν", 0.58: "Fk",
    0.59: "vxyκλ", 0.6: "Pγτ", 0.61: "Yoδθ", 0.62: "Taeₘ", 0.63: "Ebhnpu{ημρΣ",
    0.64: "$0123456789Sdgq}βσ√", 0.65: "K", 0.66: "αφ", 0.67: "∇", 0.68: "AVZ", 0.69: "BX",
    0.7: "CR", 0.73: "U", 0.75: "HN", 0.77: "D▷", 0.78: "&G", 0.79: "OQℝ", 0.82: "w",
    0.84: "#<>^~ω−⊗⊙≠→×←↦", 0.85: "+=", 0.86: "M", 0.87: "∈⊤∅", 0.96: "%", 0.97: "m",
    0.99: "W", 1.0: "@…⋯",
}
EM = {ch: w for w, chars in WIDTHS.items() for ch in chars}
_SUBSCRIPT = re.compile(r"_\{([^{}]*)\}")      # a subscript: s_{y}, w_{2,1}; W_out is a name


def runs(text: str) -> list[tuple[str, bool]]:
    """The text as (piece, is a subscript) runs: s_{y} and Σ_{j≠y} have subscripts."""
    out, at = [], 0
    for mt in _SUBSCRIPT.finditer(text):
        if mt.start() > at:
            out.append((text[at:mt.start()], False))
        out.append((mt.group(1), True))
        at = mt.end()
    if at < len(text):
        out.append((text[at:], False))
    return out


def text_size(text: str, size: float) -> tuple[float, float]:
    """(width, height) in inches of a one-line text at ``size`` points, a little generous."""
    width = 0.0
    sub = False
    for piece, is_sub in runs(text):
        scale = 0.72 if is_sub else 1.0
        sub = sub or is_sub
        width += sum(EM.get(ch, 0.9) for ch in piece) * scale
    return width * size / 72 * 1.06 + 0.04, size * (1.32 if sub else 1.18) / 72 + 0.03


@dataclass
class Item:
    """A node or a label: its centre, size and what it shows."""
    id: str
    kind: str            # input param const op grad unit | label jacobian shape note | bend
    text: str
    x: float
    y: float
    w: float
    h: float
    shape: str = "box"   # circle, box, text, point
    size: float = NAME_SIZE
    colour: str = BLACK
    node: int | None = None      # the IR node it shows (or labels)

    def box(self, pad: float = 0.0):
        return (self.x - self.w / 2 - pad, self.y - self.h / 2 - pad,
                self.x + self.w / 2 + pad, self.y + self.h / 2 + pad)


@dataclass
class Edge:
    src: str
    dst: str
    points: list             # from the centre of src to the centre of dst, bends between
    colour: str = BLACK
    label: str | None = None
    style: str = "solid"
    head: bool = True


@dataclass
class Layout:
    items: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)
    title: str = ""

    def add(self, item: Item) -> Item:
        self.items[item.id] = item
        return item

    def bounds(self, pad: float = 0.15):
        boxes = [it.box() for it in self.items.values()]
        return (min(b[0] for b in boxes) - pad, min(b[1] for b in boxes) - pad,
                max(b[2] for b in boxes) + pad, max(b[3] for b in boxes) + pad)

    # -- what is free -------------------------------------------------------------------------
    def box_free(self, box, ignore=(), margin: float = MARGIN) -> bool:
        for it in self.items.values():
            if it.id in ignore or it.shape == "point":
                continue
            if _box_hits(box, it, margin):
                return False
        for e in self.edges:
            if e.src in ignore and e.dst in ignore:
                continue
            for p, q in zip(e.points, e.points[1:]):
                if _seg_box(p, q, box):
                    return False
        return True

    def segment_free(self, p, q, ignore=(), margin: float = MARGIN) -> bool:
        for it in self.items.values():
            if it.id in ignore or it.shape == "point":
                continue
            if _seg_item(p, q, it, margin):
                return False
        return True


def _box_hits(box, it: Item, margin: float) -> bool:
    x0, y0, x1, y1 = box
    if it.shape == "circle":
        r = it.w / 2 + margin
        cx = min(max(it.x, x0), x1)
        cy = min(max(it.y, y0), y1)
        return (cx - it.x) ** 2 + (cy - it.y) ** 2 < r * r
    a0, b0, a1, b1 = it.box(margin)
    return x0 < a1 and a0 < x1 and y0 < b1 and b0 < y1


def _seg_box(p, q, box) -> bool:
    """Whether the segment pq meets the box (Liang-Barsky clipping)."""
    x0, y0, x1, y1 = box
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for pp, qq in ((-dx, p[0] - x0), (dx, x1 - p[0]), (-dy, p[1] - y0), (dy, y1 - p[1])):
        if pp == 0:
            if qq < 0:
                return False
        else:
            t = qq / pp
            if pp < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
            if t0 > t1:
                return False
    return True


def _seg_item(p, q, it: Item, margin: float) -> bool:
    if it.shape == "circle":
        return _seg_dist(p, q, (it.x, it.y)) < it.w / 2 + margin
    return _seg_box(p, q, it.box(margin))


def _seg_dist(p, q, c) -> float:
    dx, dy = q[0] - p[0], q[1] - p[1]
    length = dx * dx + dy * dy
    t = 0.0 if length == 0 else max(0.0, min(1.0, ((c[0] - p[0]) * dx + (c[1] - p[1]) * dy)
                                            / length))
    x, y = p[0] + t * dx, p[1] + t * dy
    return ((x - c[0]) ** 2 + (y - c[1]) ** 2) ** 0.5


def _offsets(step: float, reach: float):
    yield 0.0
    k = 1
    while k * step <= reach + 1e-9:
        yield -k * step
        yield k * step
        k += 1


# -- labels on edges ----------------------------------------------------------------------------

def place_label(lay: Layout, item: Item, edge: Edge, near: Item | None = None) -> bool:
    """Put a label beside its edge (near the middle first), or else beside ``near``, where it
    overlaps nothing; False when no place is free."""
    pts = edge.points
    segs = list(itertools.pairwise(pts))
    seg = max(segs, key=lambda s: (s[1][0] - s[0][0]) ** 2 + (s[1][1] - s[0][1]) ** 2)
    (x0, y0), (x1, y1) = seg
    dx, dy = x1 - x0, y1 - y0
    length = max((dx * dx + dy * dy) ** 0.5, 1e-9)
    nx, ny = -dy / length, dx / length            # the normal, to the left of the edge
    if ny < 0 or (ny == 0 and nx < 0):            # prefer above (or right of) the edge
        nx, ny = -nx, -ny
    tries = []
    for t in (0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74, 0.2, 0.8):
        mx, my = x0 + t * dx, y0 + t * dy
        for side in (1, -1):
            # far enough along the normal that the box clears the line
            off = abs(nx) * item.w / 2 + abs(ny) * item.h / 2 + MARGIN + 0.02
            for extra in (0.0, 0.08, 0.18):
                tries.append((mx + side * nx * (off + extra), my + side * ny * (off + extra)))
    if near is not None:
        for ox, oy in ((1, 0), (-1, 0), (0, -1), (0, 1), (1, -1), (-1, -1), (1, 1), (-1, 1)):
            for extra in (0.0, 0.15, 0.3):
                tries.append((near.x + ox * (near.w / 2 + item.w / 2 + MARGIN + extra),
                              near.y + oy * (near.h / 2 + item.h / 2 + MARGIN + extra)))
    for x, y in tries:
        item.x, item.y = x, y
        if lay.box_free(item.box(), ignore={item.id}):
            lay.add(item)
            return True
    return False


def _bend(lay: Layout, a: Item, b: Item, ignore):
    """A point to bend an edge a -> b through, so that both halves are free, or None."""
    mx, my = (a.x + b.x) / 2, (a.y + b.y) / 2
    dx, dy = b.x - a.x, b.y - a.y
    length = max((dx * dx + dy * dy) ** 0.5, 1e-9)
    nx, ny = -dy / length, dx / length
    for k in (0.3, -0.3, 0.55, -0.55, 0.8, -0.8, 1.1, -1.1, 1.5, -1.5):
        for t in (0.5, 0.35, 0.65):
            p = (a.x + t * dx + k * nx, a.y + t * dy + k * ny)
            if lay.segment_free((a.x, a.y), p, ignore) and lay.segment_free(p, (b.x, b.y), ignore):
                return p
    return (mx, my)


def connect(lay: Layout, src: Item, dst: Item, **kw) -> Edge:
    """A straight edge, or one bent around what it would cross."""
    ignore = {src.id, dst.id}
    pts = [(src.x, src.y), (dst.x, dst.y)]
    if not lay.segment_free(pts[0], pts[1], ignore):
        pts = [pts[0], _bend(lay, src, dst, ignore), pts[1]]
    edge = Edge(src.id, dst.id, pts, **kw)
    lay.edges.append(edge)
    return edge


# -- the computational graph ----------------------------------------------------------------------

KINDS = ("input", "param", "const", "op")


def node_diameter(name: str) -> float:
    return max(0.46, text_size(name, NAME_SIZE)[0] + 0.16)


def main_chain(view, args) -> list[int]:
    """The longest path into the loss (or the last value), from an input where one leads."""
    nodes = view.nodes
    depth = {}
    for n in nodes:
        depth[n] = 0 if view.kind[n] != "op" else 1 + max((depth[a] for a in args[n]),
                                                          default=-1)
    rank = {"input": 0, "op": 1, "param": 2, "const": 3}
    m = view.m
    ops = [n for n in nodes if view.kind[n] == "op"]
    if m.loss in depth and view.kind.get(m.loss) == "op":
        end = m.loss
    elif ops:
        end = max(ops, key=lambda n: (depth[n], n))
    else:
        end = nodes[-1]
    chain = [end]
    while args.get(chain[-1]):
        chain.append(max(args[chain[-1]], key=lambda a: (depth[a], -rank[view.kind[a]], -a)))
    return chain[::-1]


def graph_layout(view, lesson=None, *, shapes: bool = False, title: str = "") -> Layout:
    """The slide-like layout of a view; with a Lesson, its backward pass below it."""
    lay = Layout(title=title)
    nodes = view.nodes
    args = {n: view.visible_args(n) for n in nodes}
    users = {n: [] for n in nodes}
    for a, c in view.edges:
        users[a].append(c)
    chain = main_chain(view, args)
    on_chain = set(chain)
    diam = {n: node_diameter(view.name[n]) for n in nodes}
    op_label = {n: text_size(view.label[n], OP_SIZE) for n in nodes if view.kind[n] == "op"}
    jac = {}
    grad_w = {}
    if lesson is not None:
        for c, n, text in lesson.grad_edges():
            jac[(c, n)] = text
        for n in lesson.backward_order:
            grad_w[n] = text_size(f"∂{lesson.J}/∂{view.name[n]}", GRAD_SIZE)[0] + 0.16
    # the chain's columns: room for the op label on each arrow (and the Jacobian below)
    x = 0.0
    pos = {}
    for k, n in enumerate(chain):
        if k:
            prev = chain[k - 1]
            need = diam[prev] / 2 + diam[n] / 2 + 0.5
            if n in op_label:
                need = max(need, diam[prev] / 2 + diam[n] / 2 + op_label[n][0] + 0.25)
            if (n, prev) in jac:
                jw = text_size(jac[(n, prev)], JAC_SIZE)[0]
                need = max(need, grad_w.get(prev, 0) / 2 + grad_w.get(n, 0) / 2 + jw + 0.3)
            x += max(1.05, need)
        pos[n] = (x, 0.0)
    colour = {"input": GREY, "param": BLUE, "const": GREY, "op": BLACK}

    def item_of(n, px, py):
        return Item(f"n{n}", view.kind[n], view.name[n], px, py, diam[n], diam[n], "circle",
                    NAME_SIZE, colour[view.kind[n]], n)

    for n in chain:
        lay.add(item_of(n, *pos[n]))
    placed_edges = set()

    def add_edges(n):
        for a in args.get(n, ()):
            if f"n{a}" in lay.items and (a, n) not in placed_edges:
                placed_edges.add((a, n))
                connect(lay, lay.items[f"n{a}"], lay.items[f"n{n}"], colour=BLACK)
        for u in users[n]:
            if f"n{u}" in lay.items and (n, u) not in placed_edges:
                placed_edges.add((n, u))
                connect(lay, lay.items[f"n{n}"], lay.items[f"n{u}"], colour=BLACK)

    for n in chain:
        add_edges(n)

    def fits(item, n):
        """The node is free, and so are its edges to the placed values."""
        if not lay.box_free(item.box(), ignore={item.id}, margin=0.12):
            return False
        for other in [*args.get(n, ()), *users[n]]:
            it = lay.items.get(f"n{other}")
            if it is not None and not lay.segment_free((item.x, item.y), (it.x, it.y),
                                                       ignore={item.id, it.id}, margin=0.1):
                return False
        return True

    def place(n, targets, rows):
        for row in rows:
            for dx in _offsets(0.25, 4.0):
                for tx in targets:
                    item = item_of(n, tx + dx, row)
                    if fits(item, n):
                        lay.add(item)
                        add_edges(n)
                        return
        item = item_of(n, targets[0], rows[-1] - ROW)     # (a free row below everything)
        lay.add(item)
        add_edges(n)

    leaves = [n for n in nodes if view.kind[n] != "op" and n not in on_chain]
    later = []
    for n in leaves:
        chain_users = [u for u in users[n] if u in on_chain]
        if chain_users:
            place(n, [pos[chain_users[0]][0]], [-ROW, -2 * ROW, -3 * ROW])
        else:
            later.append(n)
    rows = [-2 * ROW, -3 * ROW, -4 * ROW, -5 * ROW]
    for n in nodes:
        if view.kind[n] == "op" and n not in on_chain:
            near = [lay.items[f"n{a}"].x for a in [*args[n], *users[n]] if f"n{a}" in lay.items]
            target = sum(near) / len(near) if near else 0.0
            place(n, [target], rows)
    for n in later:
        near = [lay.items[f"n{u}"].x for u in users[n] if f"n{u}" in lay.items]
        place(n, [sum(near) / len(near) if near else 0.0], [-ROW, *rows])
    # the op labels: on the chain over the arrow into the value; elsewhere on an arrow into it
    edge_of = {(e.src, e.dst): e for e in lay.edges}
    for k, n in enumerate(chain):
        if view.kind[n] != "op":
            continue
        w, h = op_label[n]
        item = Item(f"L{n}", "label", view.label[n], 0, 0, w, h, "text", OP_SIZE, BLACK, n)
        into = [edge_of.get((f"n{chain[k - 1]}", f"n{n}"))] if k else []
        into += [edge_of[(f"n{a}", f"n{n}")] for a in args[n] if (f"n{a}", f"n{n}") in edge_of]
        _label_edges(lay, item, [e for e in into if e is not None], lay.items[f"n{n}"])
    for n in nodes:
        if view.kind[n] == "op" and n not in on_chain:
            w, h = op_label[n]
            item = Item(f"L{n}", "label", view.label[n], 0, 0, w, h, "text", OP_SIZE, BLACK, n)
            into = [edge_of[(f"n{a}", f"n{n}")] for a in args[n] if (f"n{a}", f"n{n}") in edge_of]
            _label_edges(lay, item, into, lay.items[f"n{n}"])
    if shapes:
        from ..ir.shapes import show_shape
        for n in nodes:
            text = show_shape(view.m.node(n)["shape"])
            w, h = text_size(text, SHAPE_SIZE)
            it = lay.items[f"n{n}"]
            item = Item(f"S{n}", "shape", text, 0, 0, w, h, "text", SHAPE_SIZE, GREY, n)
            _label_near(lay, item, it)
    if lesson is not None and lesson.backward_order:
        _backward(lay, view, lesson, jac, grad_w)
    if title:
        w, h = text_size(title, NOTE_SIZE)
        x0, y0, _, _ = lay.bounds(0.0)
        lay.add(Item("title", "note", title, x0 + w / 2, y0 - 0.12 - h / 2, w, h, "text",
                     NOTE_SIZE, GREY))
    return lay


def _label_edges(lay: Layout, item: Item, edges, near: Item) -> None:
    for e in edges:
        if place_label(lay, item, e):
            return
    if not _label_near(lay, item, near):
        # nowhere free nearby: below everything (it still names its value)
        _, y0, _, _ = lay.bounds(0.0)
        item.x, item.y = near.x, y0 - item.h / 2 - 0.1
        lay.add(item)


def _label_near(lay: Layout, item: Item, near: Item) -> bool:
    for reach in (0.0, 0.12, 0.25, 0.4, 0.6):
        for ox, oy in ((0, -1), (1, 0), (-1, 0), (0, 1), (1, -1), (-1, -1), (1, 1), (-1, 1)):
            item.x = near.x + ox * (near.w / 2 + item.w / 2 + MARGIN + reach)
            item.y = near.y + oy * (near.h / 2 + item.h / 2 + MARGIN + reach)
            if lay.box_free(item.box(), ignore={item.id}):
                lay.add(item)
                return True
    return False


def _backward(lay: Layout, view, lesson, jac, grad_w) -> None:
    """The gradient boxes ∂J/∂n, arranged as their values, below the forward graph."""
    forward = [it for it in lay.items.values()]
    low = min(it.box()[1] for it in forward)
    shift = low - 0.75 - 0.2       # the backward chain row sits this far below the forward one
    h = text_size("∂J/∂W", GRAD_SIZE)[1] + 0.12
    for n in lesson.backward_order:
        src = lay.items[f"n{n}"]
        item = Item(f"g{n}", "grad", f"∂{lesson.J}/∂{view.name[n]}", src.x, src.y + shift,
                    grad_w[n], h, "box", GRAD_SIZE, RED, n)
        dx_try = _offsets(0.2, 2.0)
        for dx in dx_try:
            item.x = src.x + dx
            if lay.box_free(item.box(), ignore={item.id}, margin=0.12):
                break
        lay.add(item)
    edges = []
    for c, n, _text in lesson.grad_edges():
        edges.append(connect(lay, lay.items[f"g{c}"], lay.items[f"g{n}"], colour=RED))
    for e, (c, n, text) in zip(edges, lesson.grad_edges()):
        w, hh = text_size(text, JAC_SIZE)
        item = Item(f"J{c}_{n}", "jacobian", text, 0, 0, w, hh, "text", JAC_SIZE, RED, n)
        e.label = item.id
        _label_edges(lay, item, [e], lay.items[f"g{n}"])


# -- the neuron-level figure ------------------------------------------------------------------------

UNIT = 0.5             # a unit's diameter
SUBSCRIPT_DIGITS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _unit_text(name: str, index) -> str:
    if isinstance(index, int):
        return name + str(index).translate(SUBSCRIPT_DIGITS)
    return f"{name}_{{{index}}}"


def _indices(size, symbol: str | None, limit: int = 6):
    """The units drawn for a layer: all of them, or 1, 2, 3, ⋯, d as on the slides."""
    if isinstance(size, int) and size <= limit:
        return list(range(1, size + 1))
    last = size if isinstance(size, int) else symbol
    return [1, 2, 3, "⋯", last]


def neuron_layout(layers, title: str = "") -> Layout:
    """``layers``: [(name, size or symbol, label under the layer, link to the previous layer:
    None, "one" or ("dense", weight name, one output))]: one node per unit, one edge per
    weight, labelled w_{j,i} (all of them when they fit, else those into one unit)."""
    lay = Layout(title=title)
    columns = []
    gap = 2.6
    for k, (name, size, caption, link) in enumerate(layers):
        idx = _indices(size, size if isinstance(size, str) else None)
        count = len(idx)
        col = []
        for j, i in enumerate(idx):
            y = ((count - 1) / 2 - j) * 0.95
            if i == "⋯":
                item = Item(f"u{k}_dots", "label", "⋮", k * gap, y, *text_size("⋮", NAME_SIZE),
                            "text", NAME_SIZE, GREY)
                lay.add(item)
                col.append(None)
                continue
            text = name if size == 1 else _unit_text(name, i)     # one output: s
            w = max(UNIT, text_size(text, OP_SIZE + 1)[0] + 0.12)
            kind = "input" if k == 0 else "op"
            col.append((i, lay.add(Item(f"u{k}_{j}", kind, text, k * gap, y, w, w, "circle",
                                        OP_SIZE + 1, GREY if k == 0 else BLACK))))
        columns.append(col)
    bottom = min(it.box()[1] for it in lay.items.values())
    for k, (_, _, caption, _) in enumerate(layers):        # the captions on one line below
        if caption:
            w, h = text_size(caption, OP_SIZE)
            lay.add(Item(f"c{k}", "label", caption, k * gap, bottom - 0.25 - h / 2, w, h, "text",
                         OP_SIZE, BLACK))
    pending = []
    for k in range(1, len(layers)):
        link = layers[k][3]
        prev, cur = columns[k - 1], columns[k]
        if link is None:
            continue
        if link == "one":
            for a, b in zip(prev, cur):
                if a is not None and b is not None:
                    connect(lay, a[1], b[1])
            continue
        _, weight, single = link
        pairs = [(a, b) for b in cur if b is not None for a in prev if a is not None]
        # every weight when there are few; else, as on the slide, those into the second unit
        into = cur[1] if len(cur) > 1 and cur[1] is not None else cur[-1]
        labelled = pairs if len(pairs) <= 8 else [(a, b) for a, b in pairs if b is into]
        for a, b in pairs:
            e = connect(lay, a[1], b[1])
            if (a, b) in labelled:
                sub = f"{a[0]}" if single else f"{b[0]},{a[0]}"
                pending.append((e, f"{weight}_{{{sub}}}", b[1]))
    for e, text, near in pending:
        w, h = text_size(text, JAC_SIZE + 1)
        item = Item(f"w{e.src}_{e.dst}", "label", text, 0, 0, w, h, "text", JAC_SIZE + 1, BLUE)
        e.label = item.id
        _place_on_weight(lay, item, e)
    if title:
        w, h = text_size(title, NOTE_SIZE)
        x0, y0, _, _ = lay.bounds(0.0)
        lay.add(Item("title", "note", title, x0 + w / 2, y0 - 0.1 - h / 2, w, h, "text",
                     NOTE_SIZE, GREY))
    return lay


def _place_on_weight(lay: Layout, item: Item, e: Edge) -> None:
    """A weight's label on its own edge (a white box behind it): where no other edge runs
    if it can, else where only edges of the same bundle do; never over a node or a label."""
    (x0, y0), (x1, y1) = e.points[0], e.points[-1]
    ts = (0.7, 0.62, 0.78, 0.55, 0.85, 0.48, 0.4, 0.32, 0.25, 0.18)
    for edges in (True, False):
        for t in ts:
            item.x, item.y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            if _free_of_labels(lay, item, edges):
                lay.add(item)
                return
    place_label(lay, item, e)


def _free_of_labels(lay: Layout, item: Item, edges: bool) -> bool:
    """No other node or label under it (and, with ``edges``, no edge but its own)."""
    box = item.box()
    for it in lay.items.values():
        if it.id != item.id and _box_hits(box, it, MARGIN):
            return False
    for e in lay.edges if edges else ():
        if e.label == item.id:
            continue
        for p, q in zip(e.points, e.points[1:]):
            if _seg_box(p, q, box):
                return False
    return True

"""The extents of a drawing as each renderer lays it out, and what overlaps in them.

Graphviz: `dot -Tjson` of the DOT gdsl writes gives every node's position and size and every
text's width (measured by its text layout), and each edge's spline. matplotlib: the artists of
gdsl.views.draw.figure, measured with the renderer (get_window_extent). A drawing passes when
no label or node box overlaps another, and no edge runs through a label or a node other than
its own two ends (a weight's label on its own edge is allowed: it sits on the line).
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess

import numpy as np

POINT = 1 / 72          # Graphviz works in points
TOL = 0.5 / 72          # half a point: touching is not overlapping


class Shape:
    def __init__(self, name, kind, box, circle=None, owner=None):
        self.name, self.kind, self.box, self.circle, self.owner = name, kind, box, circle, owner

    def hits_box(self, box) -> bool:
        x0, y0, x1, y1 = box
        if self.circle is not None:
            (cx, cy), r = self.circle
            px, py = min(max(cx, x0), x1), min(max(cy, y0), y1)
            return (px - cx) ** 2 + (py - cy) ** 2 < (r - TOL) ** 2
        a0, b0, a1, b1 = self.box
        return x0 < a1 - TOL and a0 < x1 - TOL and y0 < b1 - TOL and b0 < y1 - TOL

    def hits(self, other) -> bool:
        if self.circle is not None and other.circle is not None:
            (x, y), r = self.circle
            (u, v), s = other.circle
            return (x - u) ** 2 + (y - v) ** 2 < (r + s - TOL) ** 2
        if self.circle is not None:
            return self.hits_box(other.box)
        return other.hits_box(self.box)

    def hits_point(self, p) -> bool:
        x, y = p
        if self.circle is not None:
            (cx, cy), r = self.circle
            return (x - cx) ** 2 + (y - cy) ** 2 < (r - TOL) ** 2
        x0, y0, x1, y1 = self.box
        return x0 + TOL < x < x1 - TOL and y0 + TOL < y < y1 - TOL


def problems(shapes, edges, edges_over_labels: bool = False) -> list[str]:
    """What overlaps: shapes are nodes and texts; edges are (src, dst, label, [points]).
    ``edges_over_labels``: labels may lie over edges (not over nodes or labels)."""
    out = []
    for i, a in enumerate(shapes):
        for b in shapes[i + 1:]:
            if a.owner is not None and (a.owner == b.name or b.owner == a.name
                                        or a.owner == b.owner):
                continue            # a node's own text
            if b.owner is not None and b.owner == a.name:
                continue
            if a.hits(b):
                out.append(f"{a.kind} {a.name} overlaps {b.kind} {b.name}")
    for src, dst, label, pts in edges:
        for s in shapes:
            if s.name in (src, dst) or s.owner in (src, dst) or label in (s.name, s.owner):
                continue
            if edges_over_labels and s.kind in ("label", "text"):
                continue
            if any(s.hits_point(p) for p in pts):
                out.append(f"edge {src}->{dst} crosses {s.kind} {s.name}")
    return out


def _sample(points, k=12):
    pts = np.asarray(points, dtype=float)
    out = []
    for p, q in itertools.pairwise(pts):
        for t in np.linspace(0, 1, k):
            out.append(tuple(p + t * (q - p)))
    return out


def _bezier(ctrl, k=24):
    out = []
    for i in range(0, len(ctrl) - 3, 3):
        p0, p1, p2, p3 = (np.asarray(c, float) for c in ctrl[i:i + 4])
        for t in np.linspace(0, 1, k):
            out.append(tuple((1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1
                             + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3))
    return out


def graphviz_extents(dot_text: str):
    """(shapes, edges) of Graphviz's own layout of the DOT text, in inches."""
    exe = shutil.which("dot")
    data = json.loads(subprocess.run([exe, "-Tjson"], input=dot_text.encode(), capture_output=True,
                                     check=True).stdout)
    objects = data.get("objects", [])
    shapes, names = [], {}
    for o in objects:
        names[o["_gvid"]] = o["name"]
        if o.get("class") == "bend":
            continue
        x, y = (float(v) * POINT for v in o["pos"].split(","))
        w, h = float(o["width"]), float(o["height"])
        kind = o.get("class", "node")
        if o.get("shape") == "circle":
            shapes.append(Shape(o["name"], kind, (x - w / 2, y - h / 2, x + w / 2, y + h / 2),
                                ((x, y), w / 2)))
        else:
            box = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
            shapes.append(Shape(o["name"], kind, box))
        for op in o.get("_ldraw_", []):
            if op.get("op") == "T":          # a text: its width as Graphviz measured it
                tx, ty = (float(v) * POINT for v in op["pt"])
                tw = float(op["width"]) * POINT
                size = float(o.get("fontsize", 14)) * POINT
                left = tx - tw / 2 if op.get("align") == "c" else tx
                tbox = (left, ty - 0.25 * size, left + tw, ty + 0.8 * size)
                shapes.append(Shape(o["name"] + ":text", "text", tbox, owner=o["name"]))
    edges = []
    for e in data.get("edges", []):
        src, dst = names[e["tail"]], names[e["head"]]
        ctrl = []
        for op in e.get("_draw_", []):
            if op.get("op") in ("b", "B"):
                ctrl = [tuple(float(v) * POINT for v in p) for p in op["points"]]
        label = e.get("comment", "").removeprefix("label ") or None
        edges.append((src, dst, label, _bezier(ctrl) if len(ctrl) >= 4 else _sample(ctrl)))
    # a bent edge is two edges through an invisible point: join them back
    return shapes, edges


def matplotlib_extents(lay):
    """(shapes, edges) of gdsl's matplotlib drawing of a layout, in display pixels."""
    from gdsl.views.draw import figure
    fig, artists, lines = figure(lay)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    to = ax.transData.transform
    scale = to((1, 0))[0] - to((0, 0))[0]      # pixels per inch
    shapes = []
    for item in lay.items.values():
        art = artists.get(item.id)
        if art is None:
            continue
        if item.shape == "circle":
            c = to((item.x, item.y))
            r = item.w / 2 * scale
            shapes.append(Shape(item.id, item.kind, (c[0] - r, c[1] - r, c[0] + r, c[1] + r),
                                ((c[0], c[1]), r)))
        else:
            bb = art.get_window_extent(renderer)
            shapes.append(Shape(item.id, item.kind, (bb.x0, bb.y0, bb.x1, bb.y1)))
        text = artists.get(item.id + ":text")
        if text is not None:
            bb = text.get_window_extent(renderer)
            shapes.append(Shape(item.id + ":text", "text", (bb.x0, bb.y0, bb.x1, bb.y1),
                                owner=item.id))
    edges = []
    for e, path in lines:
        edges.append((e.src, e.dst, e.label, _sample([to(p) for p in path], 24)))
    return shapes, edges, scale

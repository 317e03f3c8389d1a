"""Explain a model as the lecture does: forward order, backward order, local Jacobians.

For the drawn graph (see gdsl.draw.View) this prints

- the forward pass: the order in which values are computed, each with its op;
- the backward pass: the order in which each value's gradient ∂J/∂n is
  completed, following the lecture's BackOp (a node's gradient is done once
  all its children's are, and then its parents are visited, last argument
  first), each with the local Jacobians it multiplies, in the lecture's
  notation taken from the op table (gdsl.ops, the `jacobian` field);
- the aggregated gradient of each param, e.g. ∂J/∂W = gᵀxᵀ + 2λW with
  g = ∂J/∂s = ∂J/∂z.

With ``jacobians=True`` it also evaluates every local Jacobian as an explicit
matrix for a single example at small sizes (each one exactly, by applying
the op's vector-Jacobian product from the op table to unit vectors),
multiplies them along the graph as the lecture does (summing over paths),
and prints the largest difference from the compiled ``value_and_grad``.
"""

from __future__ import annotations

import re
import textwrap

import numpy as np

from ..errors import GdslError, GdslUsageError
from ..ir.builder import vjp_model
from ..ir.evaluate import evaluate
from ..ir.graph import GIVEN, LEAVES, Model
from ..ir.ops import OPS, SCALED
from ..ir.shapes import Dims, show_shape
from ..passes.grad import _reachable_from, differentiate
from ..passes.infer import infer
from .view import View, display_name, teaching_model

FORMATS = ("text", "markdown", "latex")


# -- shapes for one example ---------------------------------------------------------------------

SIZES = (4, 3, 5, 2, 6, 7, 8)
# the lecture's conventions, for models that declare no shapes (C = 3 classes, d = 4 features)
GUESS = {"x": ("d", 1), "X": ("d", 1), "y": ("C", 1), "Y": ("C", 1), "W": ("C", "d"),
         "b": ("C", 1)}


def example_dims(m: Model) -> dict[str, int]:
    """Small sizes for the symbolic dims, with the examples axis (n) set to 1."""
    bound = dict(m.dims.bound)
    example = set()
    for n in m.inputs.values():
        s = m.node(n)["shape"]
        if s and len(s) == 2 and isinstance(s[-1], str):
            example.add(s[-1])
    sizes = iter(SIZES)
    for n in m.topo():
        d = m.node(n)
        for dim in d["shape"] or ():
            if isinstance(dim, str) and dim not in bound:
                bound[dim] = 1 if dim in example else next(sizes, 3)
    return bound


def example_shapes(m: Model) -> dict[int, tuple]:
    """Concrete shapes of every forward node for one example; undeclared inputs are searched."""
    order = [n for n in m.forward_order if not m.node(n).get("backward")]
    dims = example_dims(m)
    leaves = [n for n in order if m.node(n)["op"] in GIVEN]
    fixed, free = {}, []
    for n in leaves:
        s = m.node(n)["shape"]
        if s is None:
            free.append(n)
        else:
            fixed[n] = tuple(dims.get(x, x) if isinstance(x, str) else x for x in s)
    C, d = 3, 4
    generic = [(), (C, 1), (d, 1), (C, d), (d, C), (C, C), (d, d), (1, 1)]

    def candidates(n):
        name = m.node(n)["name"]
        guess = GUESS.get(name)
        first = [tuple({"C": C, "d": d}.get(x, x) for x in guess)] if guess else [()]
        return first + [g for g in generic if g not in first]

    def ok(assign):
        try:
            shapes = infer(m, Dims(), order, {**fixed, **assign})
        except GdslError:
            return None
        loss = shapes.get(m.loss)
        return shapes if loss is None or int(np.prod(loss)) == 1 else None

    # depth-first over the undeclared leaves, pruning with shape inference on what they reach
    deps = {n: m.needed([n]) for n in order}
    ready = [[n for n in order if not (deps[n] & set(free[k:]))] for k in range(len(free) + 1)]
    stack = [{}]
    tries = 0
    while stack:
        assign = stack.pop()
        k = len(assign)
        tries += 1
        if tries > 20000:
            break
        try:
            infer(m, Dims(), ready[k], {**fixed, **assign})
        except GdslError:
            continue
        if k == len(free):
            shapes = ok(assign)
            if shapes is not None:
                return shapes
            continue
        for cand in reversed(candidates(free[k])):
            stack.append({**assign, free[k]: cand})
    raise GdslError("cannot find small shapes for one example of this model: "
                         "declare its inputs' shapes (e.g. `input x[d, n]`)")


# -- explicit Jacobians --------------------------------------------------------------------------

def local_jacobians(m: Model, c: int, values: dict, shapes: dict, positions) -> dict:
    """{position: the explicit Jacobian ∂vec(c)/∂vec(arg)} of node c, built row by row by
    applying the op's vector-Jacobian products (from the op table) to unit vectors."""
    d = m.node(c)
    args = [np.asarray(values[a]) for a in d["args"]]
    labels = [i for i, a in enumerate(args) if a.dtype.kind in "iub"]
    out_shape = tuple(shapes[c])
    mini = vjp_model(d["op"], d["attrs"], [shapes[a] for a in d["args"]], out_shape,
                     list(positions), labels)
    differentiate(mini)
    order = mini.topo(mini.needed(list(mini.grads.values())))
    leaves = [mini.names[f"a{i}"] for i in range(len(args))]
    size = int(np.prod(out_shape))
    rows = {i: [] for i in positions}
    for k in range(size):
        unit = np.zeros(size)
        unit[k] = 1.0
        vals = {leaf: a if i in labels else np.asarray(a, dtype=np.float64)
                for i, (leaf, a) in enumerate(zip(leaves, args))}
        vals[mini.names["g"]] = unit.reshape(out_shape)
        evaluate(mini, order, vals)
        for i in positions:
            row = np.broadcast_to(vals[mini.grads[f"a{i}"]], shapes[d["args"][i]])
            rows[i].append(np.asarray(row, dtype=np.float64).ravel())
    return {i: np.array(rows[i]).reshape(size, -1) for i in positions}


# -- the lesson -------------------------------------------------------------------------------

def _size(shape) -> int:
    return int(np.prod(shape)) if shape is not None else 0


def _dims_text(shape) -> str:
    if not shape:
        return "1×1"
    if len(shape) == 1:
        return f"{shape[0]}×1"
    return "×".join(str(s) for s in shape)


class Lesson:
    """The lecture's reading of a model: forward order, BackOp order, local Jacobians."""

    def __init__(self, view: View):
        self.view = v = view
        m = self.m = view.m
        if m.loss is None:
            raise GdslError("the model has no loss to explain (add `loss NAME`)", filename=m.filename)
        self.J = v.name[m.loss]
        try:
            self.shapes = example_shapes(m)
        except GdslError:
            self.shapes = {}
        wrt_nodes = [m.names[w] for w in m.wrt]
        reach = _reachable_from(m, wrt_nodes)       # as the backward pass sees it
        active = m.needed([m.loss]) & reach
        self.active = [n for n in v.nodes if n in active]
        act = set(self.active)
        self.parents = {n: [a for a in v.visible_args(n) if a in act] for n in self.active}
        self.children = {n: [] for n in self.active}
        for c in self.active:
            for a in self.parents[c]:
                self.children[a].append(c)
        self.backward_order = self._backop()
        self.wrt = [n for n in wrt_nodes if n in act]

    # BackOp(s): done once every child is done; then visit the parents, last argument first
    def _backop(self) -> list[int]:
        done, order = set(), []
        stack = [self.m.loss] if self.m.loss in self.children else []
        while stack:
            s = stack.pop()
            if s in done or not all(c in done for c in self.children[s]):
                continue
            done.add(s)
            order.append(s)
            stack.extend(self.parents[s])      # popped last-first: the last argument goes first
        return order

    # -- notation -------------------------------------------------------------------------------
    def scalar(self, n) -> bool:
        s = self.shapes.get(n)
        if s is None:
            s = self.m.node(n)["shape"]
            return s == ()
        return _size(s) == 1

    def matrix(self, n) -> bool:
        s = self.shapes.get(n, self.m.node(n)["shape"]) or ()
        return sum(1 for x in s if x != 1) >= 2

    def d(self, c, n) -> str:
        """∂c/∂n, or ∂c/∂vec(n) for a matrix n and a non-scalar c."""
        v = self.view
        den = f"vec({v.name[n]})" if self.matrix(n) and not self.scalar(c) else v.name[n]
        return f"∂{v.name[c]}/∂{den}"

    def _text(self, n) -> str:
        text, prec = self.view.arg_text(n)
        return text if prec >= 3 else f"({text})"

    def jac(self, c, pos) -> str:
        """The op table's Jacobian of node c in argument pos, in the model's names."""
        m, v = self.m, self.view
        d = m.node(c)
        op = OPS[d["op"]]
        formula = op.jacobian[pos] if pos < len(op.jacobian) else f"∂{d['op']}/∂arg{pos + 1}"
        names = {"x": d["args"][0] if d["args"] else None,
                 "y": d["args"][1] if len(d["args"]) > 1 else None, "ans": c}
        for key, node in names.items():
            if node is not None and self.scalar(node):   # diag(λ) of a scalar is λ
                formula = formula.replace(f"diag({{{key}}})", f"{{{key}}}")
                formula = formula.replace(f"{{{key}}}ᵀ", f"{{{key}}}")
        if (self.scalar(c) and all(n is None or self.scalar(n) for n in names.values())
                and formula.startswith("diag(") and formula.endswith(")")
                and _paren(formula[5:-1]) is not None and formula.count("diag(") == 1):
            formula = formula[5:-1]              # a 1×1 Jacobian: diag(1/2) is 1/2
        if formula.endswith(" ⊗ I"):
            s = self.shapes.get(c)
            if s is not None and (len(s) < 2 or s[-1] == 1):    # W ⊗ I₁ = W for one example
                formula = formula[:-4]
        for key, node in names.items():
            if node is not None:
                formula = formula.replace(f"{{{key}}}", self._text(node) if key != "ans"
                                          else (v.name[c] if c in v.name else self._text(c)))
        return formula

    def route_jac(self, route) -> str:
        factors = [self.jac(c, pos) for c, pos in route]
        sign = 1
        keep = []
        for f in factors:
            if f == "−I":
                sign = -sign
            elif f != "I":
                keep.append(f)
        if not keep:
            a, b = route[0][0], self.m.node(route[-1][0])["args"][route[-1][1]]
            text = "1" if self.scalar(a) and self.scalar(b) else "I"
        elif len(keep) == 1:
            text = keep[0]
        else:
            text = " ".join(_paren(f) for f in keep)
        return ("−" + _paren(text)) if sign < 0 else text

    def local(self, c, n) -> str:
        """The local Jacobian ∂c/∂n of drawn nodes, summed over the ways n enters c."""
        parts = [self.route_jac(r) for a, r in self.view.routes(c) if a == n]
        return " + ".join(parts)

    def grad_edges(self):
        """(child, parent, local Jacobian text) for every BackOp edge, for the drawing."""
        return [(c, n, self.local(c, n)) for n in self.backward_order for c in self.children[n]]

    # -- the aggregated gradients -------------------------------------------------------------
    def _linear(self, route):
        """(sign, coefficients) when ∂c/∂n along the route is a scalar times I, else None."""
        sign, coefs = 1, []
        for c, pos in route:
            d = self.m.node(c)
            a = d["args"][pos]
            same = self.shapes.get(a) == self.shapes.get(c)
            linear = OPS[d["op"]].linear
            how = linear(pos) if linear is not None else None
            if how in (1, -1) and (same or len(d["args"]) == 1):
                sign *= how
            elif how == SCALED and same and self.scalar(d["args"][1 - pos]):
                other = d["args"][1 - pos]
                text = self._text(other)
                if text.startswith("-"):
                    sign, text = -sign, text[1:]
                coefs.insert(0, text) if text[:1].isdigit() else coefs.append(text)
            else:
                return None
        return sign, tuple(coefs)

    def aggregate(self):
        """({symbol: definition}, {param: gradient text}, {symbol: [nodes it is ∂J/∂ of]})."""
        v = self.view
        G = {self.m.loss: [(1, (), None)]}
        contribs = {}
        defs = {}
        for n in self.backward_order[1:]:
            parts = []
            for c in self.children[n]:
                for a, route in v.routes(c):
                    if a != n:
                        continue
                    lin = self._linear(route)
                    if lin is not None:
                        parts.append(("lin", [(s * lin[0], lin[1] + cf, b) for s, cf, b in G[c]]))
                    else:
                        parts.append(("opq", c, route))
            contribs[n] = parts
            if all(kind == "lin" for kind, *_ in parts):
                G[n] = [t for _, terms in parts for t in terms]
            else:
                G[n] = [(1, (), n)]               # a new symbol: g for ∂J/∂n
                defs[n] = parts
        # name the symbols the params' gradients use: g when there is one, as in the lecture
        grads = {}
        used = []
        for w in self.wrt:
            for part in contribs.get(w, []):
                for t in (part[1] if part[0] == "lin" else G[part[1]]):
                    if t[2] is not None and t[2] not in used:
                        used.append(t[2])
        names = {s: ("g" if len(used) == 1 else f"g_{v.name[s]}") for s in used}

        def term(t):
            s, cf, b = t
            body = "".join(cf) + (names.get(b) or (f"(∂{self.J}/∂{v.name[b]})" if b else ""))
            return ("−" if s < 0 else "") + (body or "1")

        def terms_text(ts):
            out = ""
            for i, t in enumerate(ts):
                x = term(t)
                if i:
                    out += " − " + x[1:] if x.startswith("−") else " + " + x
                else:
                    out = x
            return out or "0"

        def definition(s):
            out = []
            for part in defs[s]:
                if part[0] == "lin":
                    out.append(terms_text(part[1]))
                    continue
                _, c, route = part
                jac = self.route_jac(route)
                gc = G[c]
                if gc == [(1, (), None)]:
                    out.append(jac)
                    continue
                if len(gc) == 1 and gc[0][2] is not None and gc[0][2] not in names:
                    inner = definition(gc[0][2])
                    sign, cf = gc[0][0], "".join(gc[0][1])
                    lead = ("−" if sign < 0 else "") + cf
                    out.append(f"{lead}{_paren(inner) if lead else inner} {_paren(jac)}")
                else:
                    out.append(f"{_paren(terms_text(gc))} {_paren(jac)}")
            return " + ".join(out)

        for w in self.wrt:
            out = []
            for part in contribs.get(w, []):
                if part[0] == "lin":
                    out.append(terms_text(part[1]))
                    continue
                _, c, route = part
                out.append(self._matrix_form(c, route, G[c], terms_text, term))
            grads[w] = " + ".join(out).replace("+ −", "− ") or "0"
        shown = {names[s]: definition(s) for s in used}
        aliases = {names[s]: [n for n in self.backward_order if G.get(n) == [(1, (), s)]]
                   for s in used}
        return shown, grads, aliases

    def _matrix_form(self, c, route, gc, terms_text, term) -> str:
        """∂J/∂n through one use, written back in n's shape (the lecture's gᵀxᵀ, 2λW)."""
        d = self.m.node(c)
        form = OPS[d["op"]].grad_form
        if len(route) == 1 and form:
            template = form[route[0][1]]
            names = dict(zip("xy", (self._text(a) for a in d["args"])))
            if "{c}" in template:    # through a scalar: ∂J/∂c is a coefficient (r = ‖W‖²: 2λW)
                if all(b is None for _, _, b in gc) and len(gc) == 1:
                    s, cf, _ = gc[0]
                    return ("−" if s < 0 else "") + template.format(c="".join(cf), **names)
                return template.format(c=_paren(terms_text(gc)), **names)
            if len(gc) == 1 and gc[0][2] is not None:     # through a gradient g (z = Wx: gᵀxᵀ)
                s, cf, _ = gc[0]
                g = term((1, (), gc[0][2]))
                return ("−" if s < 0 else "") + "".join(cf) + template.format(g=g, **names)
        jac = self.route_jac(route)
        if gc == [(1, (), None)]:
            return jac
        return f"{_paren(terms_text(gc))} {_paren(jac)}"

    # -- the report ---------------------------------------------------------------------------
    def sections(self, jacobians=None):
        """[(title, [line, ...])]; a line is a list of ('m', math) and ('t', prose) pieces."""
        m, v = self.m, self.view
        secs = []
        kinds = {"input": "inputs", "param": "params", "const": "consts"}
        head = []
        for kind, title in kinds.items():
            items = []
            for n in v.nodes:
                if v.kind[n] != kind:
                    continue
                d = m.node(n)
                if kind == "const" and d.get("value") is not None:
                    items.append(f"{v.name[n]} = {d['value']:g}")
                else:
                    items.append(f"{v.name[n]} {show_shape(d['shape'])}")
            if items:
                head.append([("t", f"{title}: "), ("m", ", ".join(items))])
        order = []
        for i, n in enumerate([n for n in v.nodes if v.kind[n] == "op"], 1):
            args = ", ".join(v.name[a] for a in v.visible_args(n))
            order.append([("t", f"{i}. "), ("m", v.statement(n)), ("t", f"   from {args}")])
        secs.append(("Forward pass: the order in which values are computed", head + order))
        back = []
        for i, n in enumerate(self.backward_order, 1):
            if n == m.loss:
                back.append([("t", f"{i}. "), ("m", f"∂{self.J}/∂{self.J} = 1"),
                             ("t", "   (the result node: start the backward pass)")])
                continue
            chain = " + ".join(f"∂{self.J}/∂{v.name[c]} {self.d(c, n)}" for c in self.children[n])
            lhs = f"∂{self.J}/∂vec({v.name[n]})" if False else f"∂{self.J}/∂{v.name[n]}"
            back.append([("t", f"{i}. "), ("m", f"{lhs} = {chain}")])
            for c in self.children[n]:
                back.append([("t", "      "), ("m", f"{self.d(c, n)} = {self.local(c, n)}")])
        secs.append(("Backward pass: the order in which each gradient is completed (BackOp)",
                     back))
        shown, grads, aliases = self.aggregate()
        agg = []
        for sym, definition in shown.items():
            same = " = ".join(f"∂{self.J}/∂{v.name[n]}" for n in aliases[sym]
                              if n not in self.wrt) or f"∂{self.J}/∂·"
            agg.append([("m", f"{sym} = {same}"), ("t", " (a row vector), so "),
                        ("m", f"{sym} = {definition}")])
        for w in self.wrt:
            agg.append([("m", f"∂{self.J}/∂{v.name[w]} = {grads[w]}")])
        secs.append(("Gradients of the " + ("params" if m.params else "differentiated values")
                     + " (one example, as in the lecture)", agg))
        if jacobians is not None:
            secs.append(jacobians.section(self))
        return secs

    def render(self, fmt: str = "text", jacobians=None) -> str:
        title = f"gdsl explain {self.m.filename or '<model>'}"
        return RENDER[fmt](title, self.sections(jacobians))


def _paren(text: str) -> str:
    depth = 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth == 0 and ch in "+−-⊗" and 0 < i < len(text) - 1 and text[i - 1] == " ":
            return f"({text})"
    return text


# -- explicit Jacobians, multiplied along the graph ---------------------------------------------

class JacobianCheck:
    """Explicit local Jacobians for one example, chained as in the lecture, against value_and_grad."""

    def __init__(self, lesson: Lesson, compiled, seed: int = 0):
        self.lesson = L = lesson
        m, v = L.m, L.view
        if not L.shapes:
            L.shapes = example_shapes(m)
        shapes = dict(L.shapes)
        rng = np.random.default_rng(seed)
        arrays, values = {}, {}
        for n in v.nodes:
            d = m.node(n)
            if v.kind[n] == "op":
                continue
            name, shape = d["name"], shapes[n]
            if d["op"] == "const" and d.get("value") is not None:
                a = np.float64(d["value"])
            elif name in m.labels and len(shape) >= 1:
                a = np.zeros(shape)
                a[tuple([rng.integers(shape[0])] + [0] * (len(shape) - 1))] = 1.0
            elif shape == ():
                a = np.float64(0.1 + abs(rng.normal()) * 0.1)
            else:
                a = rng.normal(0.0, 0.5, shape)
            arrays[name] = a
            values[n] = a
        self.arrays = arrays
        fwd = [n for n in m.forward_order if not m.node(n).get("backward")]
        evaluate(m, fwd, values)
        for n in fwd:
            shapes.setdefault(n, np.shape(values[n]))
        self.values, self.shapes = values, shapes
        # the explicit local Jacobian of every op on the way from the params to the loss
        act = set(m.needed([m.loss]))
        reach = set()
        stack = [m.names[w] for w in m.wrt]
        while stack:
            n = stack.pop()
            if n not in reach:
                reach.add(n)
                stack.extend(m.G.successors(n))
        self.local = {}
        for c in fwd:
            d = m.node(c)
            if c not in act or c not in reach or d["op"] in LEAVES:
                continue
            pos = [i for i, a in enumerate(d["args"]) if a in reach]
            self.local[c] = local_jacobians(m, c, values, shapes, pos)
        # ∂c/∂n for drawn nodes: a product along each route through folded nodes, summed
        self.edge = {}
        for n in L.backward_order:
            for c in L.children[n]:
                total = 0
                for a, route in v.routes(c):
                    if a != n:
                        continue
                    M = None
                    for node, pos in route:
                        J = self.local[node][pos]
                        M = J if M is None else M @ J
                    total = total + M
                self.edge[(c, n)] = total
        # the chain rule in BackOp order: ∂J/∂n = Σ_c ∂J/∂c ∂c/∂n
        self.grad = {m.loss: np.ones((1, _size(shapes[m.loss])))}
        for n in L.backward_order[1:]:
            self.grad[n] = sum(self.grad[c] @ self.edge[(c, n)] for c in L.children[n])
        loss, ref = compiled.value_and_grad(**arrays)
        self.loss = float(np.asarray(values[m.loss]).reshape(()))
        self.ref_loss = float(np.asarray(loss).reshape(()))
        self.diffs = {}
        for w in m.wrt:
            node = m.names[w]
            chained = self.grad.get(node)
            want = np.asarray(ref[w], dtype=np.float64)
            got = (np.zeros(shapes[node]) if chained is None else chained.reshape(shapes[node]))
            self.diffs[w] = float(np.max(np.abs(got - np.broadcast_to(want, got.shape)),
                                         initial=0.0))
        self.max_diff = max(self.diffs.values(), default=0.0)

    def section(self, lesson):
        L, v, m = lesson, lesson.view, lesson.m
        sizes = example_dims(m)
        lines = []
        if sizes:
            lines.append([("t", "sizes: "), ("m", ", ".join(f"{k} = {s}" for k, s in sizes.items()))])
        for n in L.backward_order:
            if n == m.loss:
                lines.append([("m", f"∂{L.J}/∂{L.J} = 1"), ("t", "   1×1")])
                continue
            factors = " + ".join(
                f"∂{L.J}/∂{v.name[c]} [{_dims_text((1, _size(self.shapes[c])))}] "
                f"{L.d(c, n)} [{_dims_text(self.edge[(c, n)].shape)}]" for c in L.children[n])
            lines.append([("m", f"∂{L.J}/∂{v.name[n]} = {factors}"),
                          ("t", f"   -> {_dims_text((1, _size(self.shapes[n])))}")])
            for c in L.children[n]:
                M = self.edge[(c, n)]
                if M.size <= 16:
                    body = np.array2string(M, precision=4, suppress_small=True, max_line_width=100)
                    lines.append([("t", "      "), ("m", f"{L.d(c, n)} = {L.local(c, n)} ="),
                                  ("t", "\n" + "\n".join("        " + r for r in body.splitlines()))])
        lines.append([("t", f"loss: chained {self.loss:.12g}, value_and_grad {self.ref_loss:.12g}")])
        for w, diff in self.diffs.items():
            lines.append([("t", "max |chained Jacobians − value_and_grad| for "),
                          ("m", f"∂{L.J}/∂{display_name(w)}"), ("t", f": {diff:.3g}")])
        verdict = "agree" if self.max_diff <= 1e-10 else "DISAGREE"
        summary = f"max abs difference: {self.max_diff:.3g} (the two {verdict} to 1e-10)"
        lines.append([("t", summary)])
        return ("Explicit Jacobians for one example, multiplied along the graph", lines)


# -- output formats ----------------------------------------------------------------------------

def _plain(line) -> str:
    return "".join(text for _, text in line)


def render_text(title, sections) -> str:
    out = [title, ""]
    for head, lines in sections:
        out.append(head)
        out.extend("  " + _plain(line) for line in lines)
        out.append("")
    return "\n".join(out)


def render_markdown(title, sections) -> str:
    out = [f"# `{title}`", ""]
    for head, lines in sections:
        out.append(f"## {head}")
        out.append("")
        for line in lines:
            text = "".join(f"`{t}`" if k == "m" else t for k, t in line).rstrip()
            nested = line[0][0] == "t" and not line[0][1].strip()
            bullet = "   - " if nested else ("" if re.match(r"\d+\. ", text) else "- ")
            if "\n" in text:
                first, rest = text.split("\n", 1)
                out.append(f"{bullet}{first.strip()}")
                out.append("")
                out.append("  ```")
                out.extend("  " + r for r in textwrap.dedent(rest).splitlines())
                out.append("  ```")
            else:
                out.append(f"{bullet}{text.strip()}")
        out.append("")
    return "\n".join(out)


TEX = [("‖", r"\| "), ("ᵀ", r"^{\top}"), ("²", "^{2}"), ("³", "^{3}"), ("−", "-"),
       ("⊗", r"\otimes "), ("⊙", r"\odot "), ("·", r"\cdot "), ("Σ", r"\sum "), ("√", r"\sqrt "),
       ("≠", r"\neq "), ("ⱼ", "_j"), ("→", r"\to "), ("×", r"\times "), ("λ", r"\lambda "), ("α", r"\alpha "),
       ("β", r"\beta "), ("γ", r"\gamma "), ("δ", r"\delta "), ("ε", r"\varepsilon "),
       ("η", r"\eta "), ("θ", r"\theta "), ("μ", r"\mu "), ("ρ", r"\rho "), ("σ", r"\sigma "),
       ("τ", r"\tau "), ("φ", r"\varphi "), ("ω", r"\omega "), ("κ", r"\kappa "), ("ν", r"\nu ")]
_FRAC = re.compile(r"∂([^\s/∂=,\[]+)/∂(vec\([^)]*\)|[^\s∂=,\[]+)")
_WORDS = re.compile(r"\b(diag|vec|softmax|logsoftmax|relu|sigmoid|tanh|exp|log|sign|sum|mean|max|"
                    r"svm|xent)\b")


def tex(math: str) -> str:
    s = _WORDS.sub(lambda mt: r"\operatorname{" + mt.group(1) + "}", math)
    s = _FRAC.sub(lambda mt: r"\frac{\partial " + mt.group(1) + r"}{\partial " + mt.group(2) + "}",
                  s)
    for a, b in TEX:
        s = s.replace(a, b)
    s = re.sub(r"_([A-Za-z0-9]{2,})", r"_{\1}", s)
    return s


def _tex_text(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"),
                 ("#", r"\#"), ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("−", "-"),
                 ("|", r"$|$")):
        text = text.replace(a, b)
    return "".join(f"${tex(ch).strip()}$" if ord(ch) > 127 and ch not in "−" else ch for ch in text)


def render_latex(title, sections) -> str:
    out = [f"% {title}", "% needs \\usepackage{amsmath}"]
    for head, lines in sections:
        out.append(f"\\paragraph{{{_tex_text(head)}}}")
        out.append("\\begin{itemize}")
        for line in lines:
            parts = []
            for kind, text in line:
                if kind == "m":
                    parts.append(f"${tex(text)}$")
                elif "\n" in text:
                    parts.append("\n\\begin{verbatim}\n" + text.strip("\n") + "\n\\end{verbatim}\n")
                else:
                    parts.append(_tex_text(text))
            out.append("  \\item " + "".join(parts).strip())
        out.append("\\end{itemize}")
    return "\n".join(out) + "\n"


RENDER = {"text": render_text, "markdown": render_markdown, "latex": render_latex}


# -- entry points ------------------------------------------------------------------------------

def explain(compiled, format: str = "text", jacobians: bool = False) -> str:
    """The lecture's account of a compiled model as text, Markdown or LaTeX.

    ``jacobians=True`` adds the explicit-Jacobian check for one example. Raises
    GdslUsageError for an unknown format or a model without a loss.
    """
    if format not in FORMATS:
        raise GdslUsageError(f"unknown explain format {format!r}: choose " + ", ".join(FORMATS))
    lesson = Lesson(View(teaching_model(compiled)))
    check = JacobianCheck(lesson, compiled) if jacobians else None
    return lesson.render(format, check)


def jacobian_check(compiled, seed: int = 0) -> JacobianCheck:
    """Run the explicit-Jacobian check; ``.max_diff`` and ``.diffs`` hold the differences."""
    return JacobianCheck(Lesson(View(teaching_model(compiled))), compiled, seed)


__all__ = ["FORMATS", "JacobianCheck", "Lesson", "example_shapes", "explain", "jacobian_check"]

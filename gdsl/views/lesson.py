"""The lecture's reading of a model, in symbols: forward order, BackOp order, local Jacobians,
each param's gradient for one example, and the mini-batch cost and its gradients.

- BackOp (the lecture's generic backward pass): a node's gradient ∂J/∂n is complete once
  every child's is, and then its parents are visited, last argument first.
- A local Jacobian ∂c/∂n is the op table's `jacobian` of c in that argument, multiplied along
  the ops folded into c's label (l = −log(yᵀp) is one step of the cross-entropy).
- The aggregated gradient of a param follows the lecture: g = ∂J/∂s = −yᵀ/(yᵀp)(diag(p) −
  ppᵀ), then ∂J/∂W = gᵀxᵀ + 2λW (the op table's `linear` and `grad_form`).
- For a model of a mini-batch (inputs [d, n], one example per column, and losses that average
  over the examples) the cost J(D) = 1/|D| Σ l(x, y) + λ‖W‖², its gradients and the lecture's
  accumulate-divide-add procedure.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import GdslError
from ..ir.graph import GIVEN, Model
from ..ir.ops import ATOM, OPS, SCALED, juxt
from ..ir.shapes import Dims
from ..passes.infer import infer
from .view import View

# -- the lecture's conventions for sizes --------------------------------------------------------

SIZES = (4, 3, 5, 2, 6, 7, 8)


def example_dim(m: Model) -> str | None:
    """The symbol of the examples axis: the last dim of the 2-D inputs (x[d, n]: n)."""
    for n in m.inputs.values():
        s = m.node(n)["shape"]
        if s and len(s) == 2 and isinstance(s[-1], str):
            return s[-1]
    return None


def example_dims(m: Model, given: dict | None = None) -> dict[str, int]:
    """Small sizes for the symbolic dims, with the examples axis (n) set to 1 unless given."""
    bound = dict(m.dims.bound)
    bound.update(given or {})
    example = example_dim(m)
    if example is not None:
        bound.setdefault(example, 1)
    sizes = iter(SIZES)
    for n in m.topo():
        for dim in m.node(n)["shape"] or ():
            if isinstance(dim, str) and dim not in bound:
                bound[dim] = next(sizes, 3)
    return bound


# the lecture's conventions, for models that declare no shapes (C = 3 classes, d = 4 features)
GUESS = {"x": ("d", 1), "X": ("d", 1), "y": ("C", 1), "Y": ("C", 1), "W": ("C", "d"),
         "b": ("C", 1)}


def example_shapes(m: Model, given: dict | None = None) -> dict[int, tuple]:
    """Concrete shapes of every forward node for one example (or the ``given`` dims);
    undeclared inputs are searched."""
    order = [n for n in m.forward_order if not m.node(n).get("backward")]
    dims = example_dims(m, given)
    leaves = [n for n in order if m.node(n)["op"] in GIVEN]
    fixed, free = {}, []
    for n in leaves:
        s = m.node(n)["shape"]
        if s is None:
            free.append(n)
        else:
            fixed[n] = tuple(dims.get(x, x) if isinstance(x, str) else x for x in s)
    C, d = dims.get("C", 3), dims.get("d", 4)
    generic = [(), (C, 1), (d, 1), (C, d), (d, C), (C, C), (d, d), (1, 1)]

    def candidates(n):
        guess = GUESS.get(m.node(n)["name"])
        first = [tuple({"C": C, "d": d}.get(x, x) for x in guess)] if guess else [()]
        return first + [g for g in generic if g not in first]

    def ok(assign):
        try:
            shapes = infer(m, Dims(), order, {**fixed, **assign})
        except GdslError:
            return None
        loss = shapes.get(m.loss)
        return shapes if loss is None or not m.wrt or int(np.prod(loss)) == 1 else None

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


def _size(shape) -> int:
    return int(np.prod(shape)) if shape is not None else 0


# -- writing formulas ----------------------------------------------------------------------------

def paren(text: str) -> str:
    """Text parenthesised when a + or − (or ⊗) stands outside any bracket in it."""
    depth = 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth == 0 and ch in "+−-⊗" and 0 < i < len(text) - 1 and text[i - 1] == " ":
            return f"({text})"
    return text


def times(a: str, b: str) -> str:
    """The product a b as the lecture writes it: side by side for single symbols (gᵀxᵀ, λW),
    with a dot where that would be ambiguous (g · 2x, W1 · x), a space between longer
    factors (−yᵀ/(yᵀp) (diag(p) − ppᵀ))."""
    if not a or not b:
        return a + b
    a, b = paren(a), paren(b)
    side = juxt(a, b)
    if " · " in side[len(a):len(a) + 3]:
        return side
    if " " in a or " " in b or a.endswith(")") or b.startswith("("):
        return f"{a} {b}"
    return side


def strip_diag(formula: str) -> str:
    """diag(E) -> E wherever it stands (for one-number values)."""
    out = formula
    start = out.find("diag(")
    while start >= 0:
        depth, end = 0, None
        for i in range(start + 4, len(out)):
            depth += out[i] == "("
            depth -= out[i] == ")"
            if depth == 0:
                end = i
                break
        if end is None:
            break
        inner = out[start + 5:end]
        keep = inner if start == 0 and end == len(out) - 1 or not (" " in inner) else f"({inner})"
        out = out[:start] + keep + out[end + 1:]
        start = out.find("diag(", start)
    return out


class JacobianArgs:
    """The arguments and result of a node, as an op row's `jacobian` rule reads them."""

    def __init__(self, lesson: Lesson, c: int, args: list[int], inline: dict | None):
        self.lesson, self.c, self.args, self.inline = lesson, c, args, inline
        self.attrs = lesson.m.node(c)["attrs"]        # (x[t]: its index)
        self.keys = {"x": args[0] if args else None, "y": args[1] if len(args) > 1 else None,
                     "ans": c}

    def _text(self, key) -> str:
        n = self.keys[key]
        return self.lesson.name_or_text(n, self.inline) if key == "ans" else \
            self.lesson.atom(n, self.inline)

    x = property(lambda self: self._text("x"))
    y = property(lambda self: self._text("y"))
    ans = property(lambda self: self._text("ans"))

    def literal(self, key):
        n = self.keys[key]
        d = self.lesson.m.node(n) if n is not None else None
        return d["value"] if d is not None and d["op"] == "literal" else None

    def shape(self, key) -> tuple:
        return self.lesson.shape(self.keys[key]) or ()

    def rows(self, key) -> int | str:
        s = self.shape(key)
        return s[0] if len(s) >= 1 else 1

    def cols(self, key) -> int | str:
        s = self.shape(key)
        return s[1] if len(s) >= 2 else 1

    def scalar(self, key) -> bool:
        return self.lesson.scalar(self.keys[key])

    def vector(self, key) -> bool:
        return sum(1 for d in self.shape(key) if d != 1) <= 1

    def diag(self, text: str) -> str:
        return text if self.scalar("ans") else f"diag({text})"


class Lesson:
    """The lecture's reading of a model: forward order, BackOp order, local Jacobians, the
    gradients for one example and for a mini-batch."""

    def __init__(self, view: View, shapes: dict | None = None):
        self.view = v = view
        m = self.m = view.m
        self.g = v.g
        if shapes is None:
            try:
                shapes = example_shapes(m)
            except GdslError:
                shapes = {}
        self.shapes = shapes
        if not v.has_loss:
            self.J = None
            self.active, self.backward_order, self.wrt = [], [], []
            self.parents, self.children = {}, {}
            self.per_example = set()
            self.minibatch = False
            return
        self.J = v.name.get(m.loss) or m.loss_name or "J"
        wrt_nodes = [m.names[w] for w in m.wrt]
        reach = _reachable(m, wrt_nodes)       # as the backward pass sees it
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
        self.per_example, self.minibatch = self._batch()

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

    def _batch(self):
        """The values computed per example (from the inputs' columns up to the losses), and
        whether the model is the lecture's mini-batch cost: J depends on the examples only
        through losses that average over them, and every value before is one column each."""
        m, v = self.m, self.view
        n_dim = example_dim(m)
        if n_dim is None:
            return set(), False
        batch = [x for x in m.inputs.values() if (m.node(x)["shape"] or ())[-1:] == (n_dim,)]
        losses = {n for n in v.nodes if v.kind[n] == "op" and OPS[v.op_of(n)[0]].loss}
        per, stack = set(batch), list(batch)
        ok = bool(losses)
        while stack:
            n = stack.pop()
            if n in losses:
                continue
            for c in v.consumers.get(n, ()):
                if c in per:
                    continue
                per.add(c)
                shape = m.node(c)["shape"]
                if c not in losses and c in v.folded | set(v.nodes) and \
                        (shape is None or shape[-1:] != (n_dim,)):
                    ok = False
                stack.append(c)
        ok = ok and m.loss not in per - losses and any(n in per for n in losses)
        return per, ok

    # -- shapes and names ---------------------------------------------------------------------
    def shape(self, n) -> tuple | None:
        s = self.shapes.get(n)
        return tuple(s) if s is not None else self.m.node(n)["shape"]

    def scalar(self, n) -> bool:
        s = self.shapes.get(n)
        if s is None:
            d = self.m.node(n)
            return d["shape"] == () or d["op"] == "literal"
        return _size(s) == 1

    def matrix(self, n) -> bool:
        s = self.shape(n) or ()
        return sum(1 for x in s if x != 1) >= 2

    def name_or_text(self, n, inline=None) -> str:
        v = self.view
        if inline is not None and n in inline:
            return inline[n][0]
        return v.name[n] if n in v.name else v.arg_text(n)[0]

    def atom(self, n, inline=None) -> str:
        text, prec = self.view.arg_text(n, inline)
        return text if prec >= ATOM else f"({text})"

    def d(self, c, n) -> str:
        """∂c/∂n, or ∂c/∂vec(n) for a matrix n and a non-scalar c."""
        v = self.view
        den = f"vec({v.name[n]})" if self.matrix(n) and not self.scalar(c) else v.name[n]
        return f"∂{v.name[c]}/∂{den}"

    # -- local Jacobians ------------------------------------------------------------------------
    def jac(self, c, pos, inline=None) -> str:
        """The op table's Jacobian of node c in argument pos, in the model's names."""
        op, args = self.view.op_of(c)
        row = OPS[op]
        formula = row.jacobian[pos] if pos < len(row.jacobian) else f"∂{op}/∂arg{pos + 1}"
        t = JacobianArgs(self, c, args, inline)
        if callable(formula):
            return formula(t)
        keys = t.keys
        for key, node in keys.items():
            if node is not None and self.scalar(node):     # xᵀ of a number is x
                formula = formula.replace(f"{{{key}}}ᵀ", f"{{{key}}}")
        if all(node is None or self.scalar(node) for node in keys.values()):
            formula = strip_diag(formula)                  # diag(λ) of a number is λ
        for key, node in keys.items():
            if node is not None:
                formula = formula.replace(f"{{{key}}}", t._text(key))
        return formula

    def route_jac(self, route, inline=None) -> str:
        factors = [self.jac(c, pos, inline) for c, pos in route]
        sign, keep = 1, []
        for f in factors:
            if f[:1] == "−" and paren(f[1:]) == f[1:]:       # −sin(x): the sign goes in front
                sign, f = -sign, f[1:]
            if f not in ("I", "1"):
                keep.append(f)
        if all(self.scalar(c) and self.scalar(self.view.op_of(c)[1][pos]) for c, pos in route):
            keep.sort(key=lambda f: 0 if f[:1].isdigit() else 1)      # numbers: 2x cos(x²)
        if not keep:
            a = route[0][0]
            b = self.view.op_of(route[-1][0])[1][route[-1][1]]
            text = "1" if self.scalar(a) and self.scalar(b) else "I"
        else:
            text = keep[0]
            for f in keep[1:]:
                text = times(text, f)
        return ("−" + paren(text)) if sign < 0 else text

    def local(self, c, n, inline=None) -> str:
        """The local Jacobian ∂c/∂n of drawn nodes, summed over the ways n enters c."""
        parts = [self.route_jac(r, inline) for a, r in self.view.text_routes(c) if a == n]
        return " + ".join(parts)

    def grad_edges(self):
        """(child, parent, local Jacobian text) for every BackOp edge, for the drawing."""
        return [(c, n, self.local(c, n)) for n in self.backward_order for c in self.children[n]]

    # -- the aggregated gradients -------------------------------------------------------------
    def _linear(self, route):
        """(sign, coefficients) when ∂c/∂n along the route is a scalar times I, else None."""
        sign, coefs = 1, []
        for c, pos in route:
            op, args = self.view.op_of(c)
            a = args[pos]
            sa, sc = self.shapes.get(a), self.shapes.get(c)
            same = sa == sc or (sa is not None and sc is not None and _size(sa) == _size(sc) == 1)
            linear = OPS[op].linear
            how = linear(pos) if linear is not None else None
            if how in (1, -1) and (same or len(args) == 1):
                sign *= how
            elif how == SCALED and same and len(args) == 2 and self.scalar(args[1 - pos]):
                text = self.atom(args[1 - pos])
                if text.startswith(("-", "−")):
                    sign, text = -sign, text[1:]
                coefs.insert(0, text) if text[:1].isdigit() else coefs.append(text)
            else:
                return None
        return sign, tuple(coefs)

    def aggregate(self):
        """The lecture's aggregated gradients: ({symbol: definition}, {param: [(text, the
        child it comes through)]}, {symbol: [nodes it is ∂J/∂ of]}), symbols in BackOp order."""
        v = self.view
        G = {self.m.loss: [(1, (), None)]}
        contribs, defs = {}, {}
        for n in self.backward_order[1:]:
            parts = []
            for c in self.children[n]:
                for a, route in v.text_routes(c):
                    if a != n:
                        continue
                    lin = self._linear(route)
                    if lin is not None:
                        parts.append(("lin", c, [(s * lin[0], lin[1] + cf, b) for s, cf, b in G[c]]))
                    else:
                        parts.append(("opq", c, route))
            contribs[n] = parts
            if all(kind == "lin" for kind, *_ in parts):
                G[n] = [t for _, _, terms in parts for t in terms]
            else:
                G[n] = [(1, (), n)]               # a new symbol: g for ∂J/∂n
                defs[n] = parts
        used = set()
        for w in self.wrt:
            for part in contribs.get(w, []):
                for t in (part[2] if part[0] == "lin" else G[part[1]]):
                    if t[2] is not None:
                        used.add(t[2])
        order = {n: i for i, n in enumerate(self.backward_order)}
        used = sorted(used, key=lambda s: order[s])
        g = self.g
        names = {s: (g if len(used) == 1 else f"{g}_{{{v.name[s]}}}") for s in used}

        def term(t):
            s, cf, b = t
            body = ""
            for f in cf:
                body = juxt(body, f)
            sym = names.get(b) or (f"(∂{self.J}/∂{v.name[b]})" if b is not None else "")
            body = juxt(body, sym) if sym else body
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

        definitions = {}
        for s in [n for n in self.backward_order if n in defs]:   # closest to J first
            out = []
            for part in defs[s]:
                if part[0] == "lin":
                    out.append(terms_text(part[2]))
                    continue
                _, c, route = part
                jac = self.route_jac(route)
                gc = G[c]
                if gc == [(1, (), None)]:
                    out.append(jac)
                elif len(gc) == 1 and gc[0][2] is not None and gc[0][2] not in names:
                    inner = definitions[gc[0][2]]
                    sign, lead = gc[0][0], "".join(gc[0][1])
                    lead = ("−" if sign < 0 else "") + lead
                    out.append(times(f"{lead}{paren(inner) if lead else inner}", jac))
                else:
                    out.append(times(paren(terms_text(gc)), jac))
            definitions[s] = " + ".join(out)
        grads = {}
        for w in self.wrt:
            out = []
            for part in contribs.get(w, []):
                if part[0] == "lin":
                    out.append((terms_text(part[2]), part[1]))
                    continue
                _, c, route = part
                out.append((self._matrix_form(c, route, G[c], terms_text, term), c))
            grads[w] = out
        shown = {names[s]: definitions[s] for s in used}
        aliases = {names[s]: [n for n in self.backward_order if G.get(n) == [(1, (), s)]]
                   for s in used}
        return shown, grads, aliases

    def _matrix_form(self, c, route, gc, terms_text, term) -> str:
        """∂J/∂n through one use, written back in n's shape (the lecture's gᵀxᵀ, 2λW)."""
        op, args = self.view.op_of(c)
        form = OPS[op].grad_form
        if len(route) == 1 and form:
            template = form[route[0][1]]
            names = dict(zip("xy", (self.atom(a) for a in args)))
            if "{c}" in template:    # through a scalar: ∂J/∂c is a coefficient (r = ‖W‖²: 2λW)
                if all(b is None for _, _, b in gc) and len(gc) == 1:
                    s, cf, _ = gc[0]
                    coef = ""
                    for f in cf:
                        coef = juxt(coef, f)
                    return ("−" if s < 0 else "") + _fill(template, c=coef, **names)
                return _fill(template, c=paren(terms_text(gc)), **names)
            if len(gc) == 1 and gc[0][2] is not None:     # through a gradient g (z = Wx: gᵀxᵀ)
                s, cf, _ = gc[0]
                g = term((1, (), gc[0][2]))
                lead = ""
                for f in cf:
                    lead = juxt(lead, f)
                return ("−" if s < 0 else "") + juxt(lead, _fill(template, g=g, **names))
        jac = self.route_jac(route)
        if gc == [(1, (), None)]:
            return jac
        return times(paren(terms_text(gc)), jac)

    def gradient_text(self, parts) -> str:
        out = ""
        for text, _ in parts:
            if not out:
                out = text
            elif text.startswith("−"):
                out += " − " + text[1:]
            else:
                out += " + " + text
        return out or "0"

    # -- chains of numbers: the chain-rule slides ----------------------------------------------
    def scalar_chain(self, w) -> list[int] | None:
        """[J, ..., w] when the way from w to J is a chain of one-number values."""
        chain = [w]
        while chain[-1] != self.m.loss:
            kids = self.children.get(chain[-1], [])
            if len(kids) != 1:
                return None
            chain.append(kids[0])
        if not all(self.scalar(n) for n in chain):
            return None
        return chain[::-1]

    def chain_rule(self, w):
        """(∂J/∂y ∂y/∂x ... as a product of local derivatives, the same with the values
        plugged in) along a chain of numbers, or None."""
        chain = self.scalar_chain(w)
        if chain is None or len(chain) < 3:
            return None
        inline = self.view.expanded()
        steps = list(itertools.pairwise(chain))
        named = [self.local(c, n) for c, n in steps]
        plugged = [self.local(c, n, inline) for c, n in steps]
        plugged.sort(key=lambda f: 0 if f[:1].isdigit() else 1)     # 2x cos(x²)
        text, full = "", ""
        for f in named:
            text = times(text, f) if text else f
        for f in plugged:
            full = times(full, f) if full else f
        return text, full

    # -- the mini-batch ---------------------------------------------------------------------------
    def batch_terms(self):
        """For each param: (the per-example data term text, the regulariser term text)."""
        shown, grads, aliases = self.aggregate()
        out = {}
        data_nodes = self.per_example
        for w in self.wrt:
            data = [(t, c) for t, c in grads[w] if c in data_nodes]
            reg = [(t, c) for t, c in grads[w] if c not in data_nodes]
            out[w] = (self.gradient_text(data) if data else None,
                      self.gradient_text(reg) if reg else None)
        return shown, out, aliases

    def losses(self) -> list[int]:
        v = self.view
        return [n for n in self.active if v.kind[n] == "op" and OPS[v.op_of(n)[0]].loss]

    def example_args(self) -> tuple[list[str], list[str]]:
        """(the per-example inputs the losses read, the params): x, y and W, b."""
        m, v = self.m, self.view
        needed = m.needed(self.losses())
        inputs = [v.name[n] for n in v.nodes if v.kind[n] == "input" and n in needed
                  and n in self.per_example]
        params = [v.name[n] for n in self.wrt]
        return inputs, params


def _fill(template: str, **texts) -> str:
    """A grad_form template with its fields, products written as the lecture writes them."""
    out = template
    for key, text in texts.items():
        out = out.replace("{" + key + "}", "\0" + text + "\0")
    pieces = [p for p in out.split("\0") if p]
    text = ""
    for p in pieces:
        text = juxt(text, p) if text else p
    return text


def _reachable(model, nodes) -> set[int]:
    """Nodes that depend on the given ones through something with a derivative."""
    from ..passes.grad import _reachable_from
    return _reachable_from(model, nodes)

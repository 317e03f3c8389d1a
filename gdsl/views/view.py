"""The teaching view of a model: the graph a student reads, in the lecture's notation.

`View` picks the drawn values and writes each op as the slides do; gdsl.views.draw draws it
and gdsl.views.explain walks through it.

- Inputs, params and consts (x, W, b, y, λ) are set apart; literals never become nodes.
- A value the model names is a node. An unnamed value is a node under the lecture's name
  for it, from its op's row (`teach_name`): a product of weights is z, a bias added to it s,
  a softmax p, a loss l, a squared norm r, an activation h (z1, z2 when there are several).
  Any other unnamed value is written into the label of the value that uses it (J = l + λr;
  l = −log(yᵀp)), unless several values use it (then it is t1, t2, ...).
- The slides' literal forms are recognised by the op table (`written`): l = -log(y.T @ p) is
  drawn and explained as the cross-entropy it is.
"""

from __future__ import annotations

from ..errors import GdslError
from ..ir.graph import LEAVES, Model
from ..ir.ops import ATOM, OPS, TRANSPOSE_OP
from ..ir.shapes import show_shape
from ..lang import syntax as S
from ..lang.parse import parse
from ..pipeline import run_pipeline

# names the lecture writes as Greek letters
GREEK = {"lam": "λ", "lambda": "λ", "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ",
         "eps": "ε", "epsilon": "ε", "eta": "η", "theta": "θ", "mu": "μ", "rho": "ρ",
         "sigma": "σ", "tau": "τ", "phi": "φ", "omega": "ω", "kappa": "κ", "nu": "ν"}
# the symbol of the running gradient (the lecture's g), unless the model uses it for a value
GRADIENT_SYMBOLS = ("g", "γ", "δ", "G")


def display_name(name: str) -> str:
    return GREEK.get(name, name)


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


# the op rows whose `written` patterns start with a given op: {top op: [(op, pattern)]}
WRITTEN: dict[str, list] = {}
for _name, _row in OPS.items():
    for _pattern in _row.written:
        WRITTEN.setdefault(_pattern[0], []).append((_name, _pattern))


class View:
    """The teaching view of a model's forward graph.

    ``nodes`` are the drawn values in forward order, ``kind[n]`` is 'input', 'param',
    'const' or 'op', ``name[n]`` the displayed name (model names, λ for lam, the lecture's
    z, s, p, l, r for unnamed values), ``label[n]`` the op in the lecture's notation and
    ``edges`` the (value, user) pairs. ``routes(c)`` gives, for each drawn argument of c, the
    chains of (IR node, argument position) through folded nodes, for composing local
    Jacobians; ``op_of(c)`` the op (and its arguments) the lecture sees in c. ``has_loss`` is
    False for a model that computes scores only (drawn and explained without a backward pass).
    """

    def __init__(self, model: Model, has_loss: bool | None = None):
        m = self.m = model
        nodes = m.nodes
        # the graph of the loss and the outputs: what only the states' updates need is not
        # drawn (explain lists the updates as written)
        drawn = m.needed([m.loss, *m.outputs.values()]) if m.updates else None
        fwd = [n for n in m.forward_order if not nodes[n].get("backward")
               and (drawn is None or n in drawn)]
        self.fwd = fwd
        fwd_set = set(fwd)
        self.has_loss = (m.loss is not None and bool(m.wrt)) if has_loss is None else has_loss
        self.consumers = {}
        for n in fwd:
            users = []
            for c in m.G.successors(n):
                if c in fwd_set and c not in users:
                    users.append(c)
            self.consumers[n] = users
        roots = set(m.outputs.values())
        if m.loss is not None:
            roots.add(m.loss)
        self.roots = roots
        # the slides' literal forms: -log(y.T @ p) is xent(p, y)
        self.as_op: dict[int, tuple[str, list[int]]] = {}
        inner: set[int] = set()
        for n in fwd:
            for op, pattern in WRITTEN.get(nodes[n]["op"], ()):
                found = self._match(n, pattern)
                if found is not None:
                    args, within = found
                    row = OPS[op]
                    if len(args) != row.arity:
                        continue
                    self.as_op[n] = (op, [args[i] for i in range(row.arity)])
                    for k in within:
                        self.as_op.pop(k, None)
                    inner |= within
                    break
        # which values are drawn, and under what name
        self.folded = set(inner)
        self.base: dict[int, str] = {}
        self.nodes = []
        for n in fwd:
            d = nodes[n]
            if d["op"] == "literal" or n in inner:
                continue
            if m.folded and d["op"] in LEAVES and not self.consumers[n]:
                continue        # (h0 of h[0] = h0: read by the step the folded loop leaves out)
            if d["op"] not in LEAVES and not d["name"]:
                base = self._lecture_name(n)
                if base is None and n not in roots and len(self.consumers[n]) == 1:
                    self.folded.add(n)
                    continue
                self.base[n] = base or "t"
            self.nodes.append(n)
        self.kind = {n: nodes[n]["op"] if nodes[n]["op"] in LEAVES else "op" for n in self.nodes}
        self.name = {n: display_name(nodes[n]["name"]) for n in self.nodes if nodes[n]["name"]}
        self._name_unnamed()
        taken = set(self.name.values()) | set(m.names)
        self.g = next((s for s in GRADIENT_SYMBOLS if s not in taken), "g′")
        self.label = {n: self.expr(n)[0] for n in self.nodes if self.kind[n] == "op"}
        self.edges = []
        seen = set()
        for c in self.nodes:
            for a in self.visible_args(c):
                if (a, c) not in seen:
                    seen.add((a, c))
                    self.edges.append((a, c))

    # -- recognising and naming -----------------------------------------------------------------
    def _match(self, n: int, pattern):
        """(argument position -> node, the nodes inside) when n's expression is the pattern."""
        nodes = self.m.nodes
        args: dict[int, int] = {}
        within: set[int] = set()
        stack = [(n, pattern, True)]
        while stack:                  # (the pattern is a few ops deep: its size bounds this)
            node, p, top = stack.pop()
            if isinstance(p, int):
                if args.setdefault(p, node) != node:
                    return None
                continue
            d = nodes[node]
            if d["op"] != p[0] or len(d["args"]) != len(p) - 1:
                return None
            if not top:
                if d["name"] or node in self.roots or len(self.consumers.get(node, ())) != 1:
                    return None
                within.add(node)
            stack.extend((a, sub, False) for a, sub in zip(d["args"], p[1:]))
        return args, within

    def op_of(self, n: int) -> tuple[str, list[int]]:
        """The op the lecture sees in node n, and its arguments."""
        if n in self.as_op:
            return self.as_op[n]
        d = self.m.nodes[n]
        return d["op"], list(d["args"])

    def _lecture_name(self, n: int) -> str | None:
        op, args = self.op_of(n)
        row = OPS[op]
        rule = row.teach_name
        if rule is None:
            return "l" if row.loss else None
        return rule if isinstance(rule, str) else rule(_TeachArgs(self, args))

    def base_of(self, n: int) -> str | None:
        """The lecture's name of a value without its number (z of z1), None for leaves."""
        if n in self.base:
            return self.base[n]
        d = self.m.nodes[n]
        if d["op"] in LEAVES or not d["name"]:
            return None
        return d["name"].rstrip("0123456789") or d["name"]

    def _name_unnamed(self) -> None:
        want: dict[str, list[int]] = {}
        for n in self.nodes:
            if n in self.base:
                want.setdefault(self.base[n], []).append(n)
        taken = set(self.name.values()) | set(self.m.names)
        for base, ns in want.items():
            if base != "t":
                # r = r1 + r2: the value made of its base's others takes the plain name
                whole = [n for n in ns if all(self.base_of(a) == base for a in self.visible_args(n))]
                if base not in taken and (len(ns) == 1 or len(whole) == 1):
                    plain = ns[0] if len(ns) == 1 else whole[0]
                    self.name[plain] = base
                    taken.add(base)
                    ns = [n for n in ns if n != plain]
            k = 0
            for n in ns:
                k += 1
                while f"{base}{k}" in taken:
                    k += 1
                self.name[n] = f"{base}{k}"
                taken.add(self.name[n])

    # -- structure --------------------------------------------------------------------------------
    def routes(self, c: int):
        """(drawn argument, [(node, position), ...]) for every way an argument reaches c,
        through the IR's nodes."""
        out = []
        stack = [(c, [])]
        while stack:            # depth first, arguments in order
            n, path = stack.pop()
            if n in self.folded or not path:
                stack.extend((a, path + [(n, i)])
                             for i, a in reversed(list(enumerate(self.m.G.nodes[n]["args"]))))
            elif self.m.G.nodes[n]["op"] != "literal":
                out.append((n, path))
        return out

    def text_routes(self, c: int):
        """As routes(c), but a recognised node (l = −log(yᵀp)) is one step of its op."""
        if c in self.as_op:
            return [(a, [(c, i)]) for i, a in enumerate(self.as_op[c][1])
                    if self.m.nodes[a]["op"] != "literal"]
        out = []
        for a, route in self.routes(c):
            out.append((a, route))
        return out

    def visible_args(self, c: int) -> list[int]:
        seen = []
        for a, _ in self.text_routes(c):
            if a not in seen:
                seen.append(a)
        return seen

    # -- the lecture's notation -----------------------------------------------------------------
    def arg_text(self, n: int, inline: dict | None = None) -> tuple[str, int]:
        d = self.m.G.nodes[n]
        if inline is not None and n in inline:
            return inline[n]
        if d["op"] == "literal":
            return _number(d["value"]), ATOM
        if n in self.folded:
            return self.expr(n, inline)
        return self.name[n], ATOM

    def expr(self, n: int, inline: dict | None = None) -> tuple[str, int]:
        """The op of node n in the lecture's notation (its row's `notation`), and its
        precedence; ``inline`` maps drawn nodes to the text to write for them instead."""
        op, args = self.op_of(n)
        at = self.m.G.nodes[n]["attrs"] if n not in self.as_op else {}
        row = OPS[op]
        t = Notation(self, args, inline, at)
        if row.notation is not None:
            return row.notation(t)
        shown = {k: v for k, v in at.items()     # what the model wrote beyond the defaults
                 if v is not None and v is not False and row.keywords.get(k, not v) != v}
        extra = "".join(f", {k}={v}" for k, v in sorted(shown.items()))
        return f"{op}({', '.join(t.text(i) for i in range(len(args)))}{extra})", ATOM

    def expanded(self, stop: dict | None = None) -> dict:
        """Every drawn value written out in full ({node: (text, precedence)}), computed in
        forward order (no recursion); ``stop`` maps values to the text to keep for them."""
        out = dict(stop or {})
        for n in self.nodes:
            if n not in out and self.kind[n] == "op":
                out[n] = self.expr(n, out)
        return out

    def _is_scalar(self, n: int) -> bool:
        d = self.m.G.nodes[n]
        return d["op"] == "literal" or d["shape"] == () or self._scalar_leaf(n)

    def _scalar_leaf(self, n: int) -> bool:
        d = self.m.G.nodes[n]
        return d["op"] in LEAVES and (d["shape"] in ((), None) or d["op"] == "const")

    def statement(self, n: int) -> str:
        return f"{self.name[n]} = {self.label[n]}"

    def shape_text(self, n: int) -> str:
        """x [d, n]; b [] (a scalar); x (its shape given at call time)."""
        s = self.m.G.nodes[n]["shape"]
        if s is None:
            return "(shape given at call time)"
        return show_shape(s) + (" (a scalar)" if s == () else "")


class _TeachArgs:
    """The arguments of an unnamed value, as an op row's `teach_name` rule reads them."""

    def __init__(self, view: View, args):
        self.view, self.args = view, args

    def kind(self, i: int) -> str | None:
        if i >= len(self.args):
            return None
        nodes = self.view.m.nodes
        n = self.args[i]
        while nodes[n]["op"] == TRANSPOSE_OP:        # wᵀ is still the param w
            n = nodes[n]["args"][0]
        op = nodes[n]["op"]
        return op if op in LEAVES else "op"

    def base(self, i: int) -> str | None:
        return self.view.base_of(self.args[i]) if i < len(self.args) else None


class Notation:
    """The arguments of a drawn op, as an op row's `notation` rule reads them."""

    def __init__(self, view: View, args, inline: dict | None = None, attrs: dict | None = None):
        self.view, self.args = view, args
        self.attrs = attrs or {}            # the op's keywords (stride=2 of a convolution)
        self.texts = [view.arg_text(a, inline) for a in args]

    def text(self, i: int) -> str:
        return self.texts[i][0]

    def p(self, i: int, level: int) -> str:
        """Argument i, parenthesised when it binds looser than ``level``."""
        text, prec = self.texts[i]
        return f"({text})" if prec < level else text

    def is_scalar(self, i: int) -> bool:
        return self.view._is_scalar(self.args[i])

    def is_literal(self, i: int) -> bool:
        return self.view.m.G.nodes[self.args[i]]["op"] == "literal"


# -- the model a view reads ----------------------------------------------------------------------

def teaching_model(model, folded: bool = False) -> Model:
    """The unfused IR of a model (xent(softmax(s), y) keeps p and l apart, as on the slides);
    ``folded``: each loop's body once, for a step t (as drawn)."""
    m = model.model if hasattr(model, "model") else model
    return run_pipeline(m.source, filename=m.filename, wrt=list(m.wrt) or None, optimize=False,
                        outputs=list(m.outputs) or None, fold_loops=folded).model


def names_a_loss(text: str) -> bool:
    """Whether the model text has a `loss NAME` line."""
    return any(isinstance(st, S.Loss) for st in parse(text).statements)


def teaching_view(text: str, filename: str | None = None, wrt: list[str] | None = None,
                  folded: bool = True) -> View:
    """The view of a model's text, for drawing and explaining. A model that names no loss and
    whose last value cannot be one (scores, probabilities, a decision: slides 1 to 4) is seen
    forward only. Raises the compiler's GdslError otherwise. ``folded``: a loop is seen once,
    for a step t (as drawn); explaining needs it unrolled (folded=False)."""
    if folded and any(isinstance(st, S.For) for st in parse(text).statements):
        # folded, a loop is not checked step by step: its mistakes are reported as compiling
        # the model reports them
        try:
            run_pipeline(text, filename=filename, wrt=wrt, optimize=False)
        except GdslError:
            if wrt or names_a_loss(text):
                raise
            run_pipeline(text, filename=filename, wrt=[], optimize=False)
    try:
        return View(run_pipeline(text, filename=filename, wrt=wrt, optimize=False,
                                 fold_loops=folded).model)
    except GdslError:
        if wrt or names_a_loss(text):
            raise
        try:
            model = run_pipeline(text, filename=filename, wrt=[], optimize=False,
                                 fold_loops=folded).model
        except GdslError:
            pass
        else:
            return View(model, has_loss=False)
        raise

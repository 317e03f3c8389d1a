"""The teaching view of a model: the graph a student reads, in the lecture's notation.

`View` picks the drawn values (inputs, params and consts set apart, unnamed scalar multiples
folded into their user's label, literals never nodes) and writes each op as the slides do;
gdsl.views.draw draws it and gdsl.views.explain walks through it.
"""

from __future__ import annotations

from ..ir.graph import LEAVES, Model
from ..ir.ops import ATOM, OPS
from ..pipeline import run_pipeline

# names the lecture writes as Greek letters
GREEK = {"lam": "λ", "lambda": "λ", "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ",
         "eps": "ε", "epsilon": "ε", "eta": "η", "theta": "θ", "mu": "μ", "rho": "ρ",
         "sigma": "σ", "tau": "τ", "phi": "φ", "omega": "ω", "kappa": "κ", "nu": "ν"}



def display_name(name: str) -> str:
    return GREEK.get(name, name)


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


class View:
    """The teaching view of a compiled model's forward graph.

    ``nodes`` are the drawn values in forward order, ``kind[n]`` is 'input',
    'param', 'const' or 'op', ``name[n]`` the displayed name (model names,
    λ for lam, t1, t2... for unnamed values), ``label[n]`` the op in the
    lecture's notation and ``edges`` the (value, user) pairs. ``routes(c)``
    gives, for each drawn argument of c, the chains of (node, argument
    position) through folded nodes, for composing local Jacobians.
    """

    def __init__(self, model: Model):
        m = self.m = model
        G = m.G
        fwd = [n for n in m.forward_order if not G.nodes[n].get("backward")]
        fwd_set = set(fwd)
        self.consumers = {n: [c for c in G.successors(n) if c in fwd_set] for n in fwd}
        roots = {m.loss, *m.outputs.values()}
        self.folded = {n for n in fwd if self._foldable(n, roots)}
        self.nodes = [n for n in fwd if G.nodes[n]["op"] != "literal" and n not in self.folded]
        self.kind = {}
        self.name = {}
        temps = 0
        for n in self.nodes:
            d = G.nodes[n]
            self.kind[n] = d["op"] if d["op"] in LEAVES else "op"
            if d["name"]:
                self.name[n] = display_name(d["name"])
            else:
                temps += 1
                while f"t{temps}" in m.names:    # the model has its own t1: skip it
                    temps += 1
                self.name[n] = f"t{temps}"
        self.label = {n: self.expr(n)[0] for n in self.nodes if self.kind[n] == "op"}
        self.edges = []
        for c in self.nodes:
            for a in self.visible_args(c):
                if (a, c) not in self.edges:
                    self.edges.append((a, c))

    # -- folding ------------------------------------------------------------------------------
    def _scalar_leaf(self, n: int) -> bool:
        d = self.m.G.nodes[n]
        return d["op"] in LEAVES and (d["shape"] in ((), None) or d["op"] == "const")

    def _foldable(self, n: int, roots) -> bool:
        """An unnamed scalar multiple (λ * r) is drawn in its user's label (J = l + λr)."""
        d = self.m.G.nodes[n]
        factor = OPS[d["op"]].scalar_factor if d["op"] in OPS else ()
        if d["name"] or n in roots or not factor or len(self.consumers[n]) != 1:
            return False
        scalar = [self._scalar_leaf(a) for a in d["args"]]
        return scalar.count(True) == 1 and scalar.index(True) in factor

    def routes(self, c: int):
        """(drawn argument, [(node, position), ...]) for every way an argument reaches c."""
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

    def visible_args(self, c: int) -> list[int]:
        seen = []
        for a, _ in self.routes(c):
            if a not in seen:
                seen.append(a)
        return seen

    # -- the lecture's notation -----------------------------------------------------------------
    def arg_text(self, n: int) -> tuple[str, int]:
        d = self.m.G.nodes[n]
        if d["op"] == "literal":
            return _number(d["value"]), ATOM
        if n in self.folded:
            return self.expr(n)
        return self.name[n], ATOM

    def expr(self, n: int) -> tuple[str, int]:
        """The op of node n in the lecture's notation (its row's `notation`), and its precedence."""
        d = self.m.G.nodes[n]
        op, at = d["op"], d["attrs"]
        row = OPS[op]
        t = Notation(self, d["args"])
        if row.notation is not None:
            return row.notation(t)
        shown = {k: v for k, v in at.items()     # what the model wrote beyond the defaults
                 if v is not None and v is not False and row.keywords.get(k, not v) != v}
        extra = "".join(f", {k}={v}" for k, v in sorted(shown.items()))
        return f"{op}({', '.join(t.text(i) for i in range(len(d['args'])))}{extra})", ATOM

    def _is_scalar(self, n: int) -> bool:
        d = self.m.G.nodes[n]
        return d["op"] == "literal" or d["shape"] == () or self._scalar_leaf(n)

    def statement(self, n: int) -> str:
        return f"{self.name[n]} = {self.label[n]}"


def teaching_model(model) -> Model:
    """The unfused IR of a model (xent(softmax(s), y) keeps p and l apart, as on the slides)."""
    m = model.model if hasattr(model, "model") else model
    return run_pipeline(m.source, filename=m.filename, wrt=list(m.wrt) or None, optimize=False,
                        outputs=list(m.outputs) or None).model


class Notation:
    """The arguments of a drawn op, as an op row's `notation` rule reads them."""

    def __init__(self, view: View, args):
        self.view, self.args = view, args
        self.texts = [view.arg_text(a) for a in args]

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

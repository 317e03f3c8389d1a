"""The IR: a NetworkX DAG whose nodes are values, and what the model's names mean in it.

Edges run from each argument to its user. Node ids are integers in creation order, which
is also the deterministic tie-break for scheduling. A node's attributes (``Node``) are the
one schema every stage reads and writes; NetworkX holds them, and ``Model.nodes`` maps each
id to the same dict. Nothing writes NetworkX's internals: nodes and edges are added and
removed through its public methods.
"""

from __future__ import annotations

import contextlib
import heapq
from dataclasses import dataclass, field
from typing import TypedDict

import networkx as nx

from ..errors import GdslError, Span
from ..lang.source import source_text
from .shapes import Dims, Shape

# what is given to the model: its interface (a state: updated by the training loop, by its rule)
GIVEN = ("input", "param", "const", "state")
LEAVES = (*GIVEN, "literal")            # the nodes without arguments


class Node(TypedDict, total=False):
    """The attributes of one node of the IR (``model.nodes[n]``, the same dict as G.nodes[n])."""

    op: str                  # one of LEAVES, or the name of an op in gdsl.ir.ops.OPS
    args: tuple[int, ...]    # the arguments, in order and with multiplicity (x * x -> (x, x))
    attrs: dict              # the op's keyword attributes (axis=..., keepdims=...)
    shape: Shape             # dims (int or symbolic str), or None until known
    name: str | None         # the model's own name for the value
    span: Span | None        # where in the model text the value comes from
    line: Span | None        # the whole statement (the comment above emitted code)
    value: float | None      # a literal's value; a const's default (None: none)
    declared: bool           # an input, param or const declared in the file (not a free name)
    init: tuple              # a param's initialiser: (name, arguments), e.g. ("normal", (0, 0.01))
    backward: bool           # made by differentiation (the backward pass)
    grad_of: int             # the node whose gradient this is
    hint: str                # a name for emitted code where the model gives none (m, e, Z, ...)
    step_of: int             # a loop drawn folded: the value of the step this input stands for
    #                          (h[t] for the h[t - 1] the step reads), whose shape it takes


@dataclass
class Model:
    """The IR of one model: its graph, its names and their roles, the bound dims, the
    schedule, and what the passes did (rewrites) and noticed (warnings)."""

    G: nx.DiGraph = field(default_factory=nx.DiGraph)
    nodes: dict[int, Node] = field(default_factory=dict)  # id -> attributes (G's own dicts)
    source: str = ""                                      # the text spans point into
    filename: str | None = None
    inputs: dict[str, int] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)
    consts: dict[str, int] = field(default_factory=dict)
    # state (`state mu[m, 1] = 0`): leaves the training loop updates; in training mode each
    # state's new value (`mu <- ...`) is a root; mode: "train" or "eval" (`a if training else b`)
    states: dict[str, int] = field(default_factory=dict)
    updates: dict[str, int] = field(default_factory=dict)
    mode: str = "train"
    modal: bool = False      # the model has state or `a if training else b`: the modes differ
    names: dict[str, int] = field(default_factory=dict)   # every model name -> node
    loss: int | None = None
    loss_name: str | None = None
    outputs: dict[str, int] = field(default_factory=dict)
    wrt: list[str] = field(default_factory=list)
    grads: dict[str, int] = field(default_factory=dict)   # wrt name -> gradient node
    labels: set[str] = field(default_factory=set)         # inputs used as class labels
    declared: bool = False                                # any input/param/const declared
    folded: bool = False        # each loop's body once, for a step t (drawings: passes.resolve)
    dims: Dims = field(default_factory=Dims)
    forward_order: list[int] = field(default_factory=list)     # the schedule of each pass
    backward_order: list[int] = field(default_factory=list)
    # second order (gdsl compile --hvp): the direction leaf of each wrt name, H·v per wrt name
    directions: dict[str, int] = field(default_factory=dict)
    hvps: dict[str, int] = field(default_factory=dict)
    hvp_order: list[int] = field(default_factory=list)
    rewrites: list[str] = field(default_factory=list)     # what the optimiser did, for reports
    warnings: list[GdslError] = field(default_factory=list)
    # caches of the queries below, dropped whenever the graph changes
    _next: int = 0
    _topo: list | None = None      # the whole graph's order
    _needed: dict = field(default_factory=dict)   # roots -> needed(roots)
    _rewired: bool = False         # some node has an argument newer than itself (set_args)
    grad_users: dict | None = None  # node -> the gradient nodes named after it (passes.cse.merge)
    _pointing: dict | None = None   # node -> (table, key) of what names it, while merging

    # -- building ---------------------------------------------------------------
    def add(self, op: str, args: tuple[int, ...] = (), *, attrs: dict | None = None,
            name: str | None = None, span: Span | None = None, line: Span | None = None,
            shape=None, **extra) -> int:
        n = self._next
        self._next = n + 1
        self._changed()
        G = self.G
        args = tuple(args)
        G.add_node(n, op=op, args=args, attrs=dict(attrs) if attrs else {}, name=name, span=span,
                   line=line, shape=shape, **extra)
        self.nodes[n] = G.nodes[n]
        for a in dict.fromkeys(args):
            G.add_edge(a, n)
        return n

    def copy_graph(self) -> nx.DiGraph:
        """A copy of the graph, its node attributes copied too (the model as written)."""
        return self.G.copy()

    def _changed(self) -> None:
        self._topo = None
        if self._needed:
            self._needed.clear()

    def node(self, n: int) -> Node:
        return self.nodes[n]

    def set_args(self, n: int, args: tuple[int, ...]) -> None:
        """Rewire n to new arguments, keeping edges in step with the args list."""
        self._changed()
        self._rewired = self._rewired or any(a > n for a in args)
        for a in set(self.nodes[n]["args"]):
            self.G.remove_edge(a, n)
        self.nodes[n]["args"] = tuple(args)
        for a in args:
            self.G.add_edge(a, n)

    def remove(self, n: int) -> None:
        self._changed()
        self.G.remove_node(n)
        del self.nodes[n]

    def users(self, n: int):
        """The nodes that take n as an argument."""
        return self.G.succ[n]

    def replace_uses(self, old: int, new: int) -> None:
        """Make every user of ``old`` use ``new`` instead, and every name, output and
        gradient that pointed at ``old`` point at ``new``."""
        for user in list(self.G.successors(old)):
            self.set_args(user, tuple(new if a == old else a for a in self.nodes[user]["args"]))
        index = self._pointing
        if index is None:
            entries = [(t, k) for t in self._tables() for k, v in t.items() if v == old]
        else:
            entries = index.pop(old, [])
            index.setdefault(new, []).extend(entries)
        for table, k in entries:
            table[k] = new
        if self.loss == old:
            self.loss = new

    @contextlib.contextmanager
    def merging(self):
        """While passes merge nodes (replace_uses), the names, outputs and gradients are
        indexed by the node they point at: scanning every name for each merge would make
        a pass quadratic in the size of the model. Nothing else may write those tables
        meanwhile."""
        self._pointing = {}
        for table in self._tables():
            for k, v in table.items():
                self._pointing.setdefault(v, []).append((table, k))
        try:
            yield
        finally:
            self._pointing = None

    def _tables(self) -> tuple[dict, ...]:
        """The tables that point at nodes by name: a merge re-points them."""
        return (self.outputs, self.grads, self.names, self.hvps, self.updates)

    def topo(self, nodes=None) -> list[int]:
        """Deterministic topological order (creation order breaks ties), without recursion.

        Kahn's algorithm with a heap: among the nodes whose arguments are all done,
        the earliest created goes first, so the forward pass follows the source. Until
        set_args gives a node an argument newer than itself, that is creation order.
        """
        pred = self.G.pred
        if nodes is not None:
            nodes = set(nodes)
            if nodes >= pred.keys():     # all of them (a pass that needs the whole graph)
                nodes = None
        if nodes is None:
            if self._topo is None:
                self._topo = self._order(pred)
            return list(self._topo)
        return self._order(nodes)

    def _order(self, nodes) -> list[int]:
        if not self._rewired:
            return sorted(nodes)
        pred, succ = self.G.pred, self.G.succ
        if nodes is pred:
            waiting = {n: len(p) for n, p in pred.items()}
        else:
            waiting = {n: len(nodes.intersection(pred[n])) for n in nodes}
        ready = [n for n, k in waiting.items() if k == 0]
        heapq.heapify(ready)
        order = []
        push, pop = heapq.heappush, heapq.heappop
        while ready:
            n = pop(ready)
            order.append(n)
            for u in succ[n]:
                if u in waiting:
                    k = waiting[u] - 1
                    waiting[u] = k
                    if k == 0:
                        push(ready, u)
        if len(order) != len(nodes):
            raise AssertionError("the graph has a cycle")
        return order

    def needed(self, roots) -> set[int]:
        """Every node that the given roots depend on, roots included."""
        roots = tuple(sorted({r for r in roots if r is not None}))
        if roots not in self._needed:      # (dead code and the scheduler ask the same)
            attrs = self.nodes
            seen = set()
            stack = list(roots)
            while stack:
                n = stack.pop()
                if n not in seen:
                    seen.add(n)
                    stack += attrs[n]["args"]
            self._needed[roots] = seen
        return set(self._needed[roots])

    def label(self, n: int) -> str:
        """A short human name for a node: its model name, or its op and id."""
        d = self.node(n)
        if d["name"]:
            return d["name"]
        if d.get("grad_of") in self.G:      # (an optimisation may have removed it)
            return "g_" + self.label(d["grad_of"])
        if d["op"] == "literal":
            return repr(d["value"])
        return f"%{n}"

    def describe(self, n: int) -> str:
        """A node as the user wrote it, for messages: its name, else its text in the model
        (`sum(W @ x)`); a gradient as g_ of that; another node of the backward pass as ∂ of
        the text it differentiates."""
        d = self.node(n)
        g = d.get("grad_of")
        if g is not None and g in self.G:
            of = self.describe(g)
            return "g_" + (of if of.isidentifier() else f"({of})")
        if d["name"] and not d.get("backward"):
            return d["name"]
        if d["op"] == "literal":
            return repr(d["value"])
        text = source_text(self.source, d["span"], 60) if d["span"] and self.source else ""
        if d.get("backward"):
            return f"∂ {text}" if text else d["op"]
        return text or d["op"]

    def roots(self) -> list[int]:
        return [n for n in (self.loss, *self.outputs.values(), *self.grads.values(),
                            *self.hvps.values(), *self.updates.values()) if n is not None]

    # -- checking and printing ----------------------------------------------------
    def check(self, stage: str) -> None:
        """Verify the IR's invariants; a failure here is a compiler bug in ``stage``."""
        G = self.G
        if self.nodes.keys() != G.nodes.keys():
            raise AssertionError(f"after stage {stage!r}: the node table and the graph disagree")
        for n, d in self.nodes.items():
            if G.pred[n].keys() != set(d["args"]):
                raise AssertionError(f"after stage {stage!r}: edges of %{n} disagree with its args")
        try:
            self.topo()
        except AssertionError:
            raise AssertionError(f"after stage {stage!r}: the graph has a cycle") from None
        for r in self.roots():
            if r not in G:
                raise AssertionError(f"after stage {stage!r}: root %{r} is not in the graph")

    def dump(self, nodes=None) -> str:
        """The IR as text, one value per line: ``%5 z = matmul(W, x) : [C, n]  # 7:5``."""
        from .shapes import show_shape

        lines = []
        order = nodes if nodes is not None else list(nx.lexicographical_topological_sort(self.G))
        for n in order:
            d = self.node(n)
            lhs = f"%{n}"
            if d["name"]:
                lhs += f" {d['name']}"
            if d.get("grad_of") in self.G:
                lhs += f" (grad of {self.label(d['grad_of'])})"
            if d["op"] == "literal":
                rhs = repr(d["value"])
            else:
                args = ", ".join(self.label(a) for a in d["args"])
                attrs = "".join(f", {k}={v!r}" for k, v in sorted(d["attrs"].items()))
                rhs = f"{d['op']}({args}{attrs})"
            where = f"  # {d['span']}" if d["span"] else ""
            lines.append(f"{lhs} = {rhs} : {show_shape(d['shape'])}{where}")
        marks = []
        if self.loss is not None:
            marks.append(f"loss {self.label(self.loss)}")
        if self.outputs:
            marks.append("output " + ", ".join(self.outputs))
        if self.updates:
            marks.append("updates " + ", ".join(f"{k}={self.label(v)}" for k, v in self.updates.items()))
        if self.grads:
            marks.append("grads " + ", ".join(f"{k}={self.label(v)}" for k, v in self.grads.items()))
        return "\n".join(lines + marks) + "\n"

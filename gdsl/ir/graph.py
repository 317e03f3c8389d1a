"""The IR: a NetworkX DAG whose nodes are values.

Every node has
    op      'input' | 'param' | 'const' | 'literal' | a name in gdsl.ops.OPS
    args    the argument node ids, in order and with multiplicity (x * x -> (x, x))
    attrs   keyword attributes of the op (axis=..., keepdims=...)
    shape   a tuple of dims (int or symbolic str), or None while unknown
    name    the model's own name for the value, or None
    span    where in the model text the value comes from
    line    the span of the whole statement (for comments in emitted code)
    grad_of for backward nodes: the node whose gradient this is
and edges run from each argument to its user. Node ids are integers in
creation order, which is also the deterministic tie-break for scheduling.
"""

from __future__ import annotations

import contextlib
import heapq
from dataclasses import dataclass, field

import networkx as nx

from ..errors import GdslError, Span
from ..lang.source import source_text
from .shapes import Dims


@dataclass
class Model:
    """The compiler's state, passed from stage to stage."""

    G: nx.DiGraph = field(default_factory=nx.DiGraph)
    source: str = ""
    filename: str | None = None
    inputs: dict[str, int] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)
    consts: dict[str, int] = field(default_factory=dict)
    names: dict[str, int] = field(default_factory=dict)   # every model name -> node
    loss: int | None = None
    loss_name: str | None = None
    outputs: dict[str, int] = field(default_factory=dict)
    wrt: list[str] = field(default_factory=list)
    grads: dict[str, int] = field(default_factory=dict)   # wrt name -> gradient node
    init: dict[str, tuple[str, tuple[float, ...]]] = field(default_factory=dict)
    train: dict[str, object] = field(default_factory=dict)
    train_spans: dict[str, Span] = field(default_factory=dict)
    labels: set[str] = field(default_factory=set)         # inputs used as class labels
    declared: bool = False                                # any input/param/const declared
    forward_order: list[int] = field(default_factory=list)
    backward_order: list[int] = field(default_factory=list)
    rewrites: list[str] = field(default_factory=list)     # what the optimiser did, for reports
    warnings: list[GdslError] = field(default_factory=list)
    dims: Dims = field(default_factory=Dims)
    _next: int = 0
    _topo: list | None = None      # the whole graph's order, until the graph changes
    _needed: dict = field(default_factory=dict)   # roots -> needed(roots), until the graph changes
    _rewired: bool = False         # some node has an argument newer than itself (set_args)
    written: nx.DiGraph | None = None   # a copy of the graph as the model writes it (after shapes)
    program: object | None = None  # the syntax tree (gdsl.syntax.Program), from parse to resolve
    code: str = ""                 # the emitted module
    linemap: dict[int, int] = field(default_factory=dict)   # its line -> the node it computes
    grad_users: dict | None = None  # node -> the gradient nodes named after it (passes.cse.merge)
    _pointing: dict | None = None   # node -> (table, key) of what names it, while merging

    # -- building ---------------------------------------------------------------
    def add(self, op: str, args: tuple[int, ...] = (), *, attrs: dict | None = None,
            name: str | None = None, span: Span | None = None, line: Span | None = None,
            shape=None, **extra) -> int:
        # Straight into NetworkX's own dicts (what add_node and add_edge do, without their
        # checks): a large model adds hundreds of thousands of nodes.
        n = self._next
        self._next = n + 1
        self._changed()
        G = self.G
        args = tuple(args)
        G._node[n] = {"op": op, "args": args, "attrs": dict(attrs) if attrs else {}, "name": name,
                      "span": span, "line": line, "shape": shape, **extra}
        succ = G._succ
        succ[n] = {}
        pred = G._pred[n] = {}
        for a in args:
            if a not in pred:
                pred[a] = succ[a][n] = {}       # one edge-data dict, shared as NetworkX does
        return n

    def copy_graph(self) -> nx.DiGraph:
        """A copy of the graph (what G.copy() gives, without its per-node and per-edge checks)."""
        G, H = self.G, nx.DiGraph()
        H.graph.update(G.graph)
        H._node.update({n: d.copy() for n, d in G._node.items()})
        H._pred.update({n: {} for n in G._pred})
        succ, pred = H._succ, H._pred
        for u, users in G._succ.items():
            out = succ[u] = {}
            for v, e in users.items():      # (a loop, not a comprehension: a call per node)
                out[v] = pred[v][u] = e.copy()
        return H

    def _changed(self) -> None:
        self._topo = None
        if self._needed:
            self._needed.clear()

    def node(self, n: int) -> dict:
        return self.G._node[n]      # the node's attribute dict (G.nodes[n] without the view)

    def set_args(self, n: int, args: tuple[int, ...]) -> None:
        """Rewire n to new arguments, keeping edges in step with the args list."""
        self._changed()
        self._rewired = self._rewired or any(a > n for a in args)
        for a in set(self.node(n)["args"]):
            self.G.remove_edge(a, n)
        self.node(n)["args"] = tuple(args)
        for a in args:
            self.G.add_edge(a, n)

    def remove(self, n: int) -> None:
        self._changed()
        self.G.remove_node(n)

    def replace_uses(self, old: int, new: int) -> None:
        """Make every user of ``old`` use ``new`` instead, and every name, output and
        gradient that pointed at ``old`` point at ``new``."""
        for user in list(self.G.successors(old)):
            self.set_args(user, tuple(new if a == old else a for a in self.node(user)["args"]))
        index = self._pointing
        if index is None:
            entries = [(t, k) for t in (self.outputs, self.grads, self.names)
                       for k, v in t.items() if v == old]
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
        for table in (self.outputs, self.grads, self.names):
            for k, v in table.items():
                self._pointing.setdefault(v, []).append((table, k))
        try:
            yield
        finally:
            self._pointing = None

    def topo(self, nodes=None) -> list[int]:
        """Deterministic topological order (creation order breaks ties), without recursion.

        Kahn's algorithm with a heap: among the nodes whose arguments are all done,
        the earliest created goes first, so the forward pass follows the source. Until
        set_args gives a node an argument newer than itself, that is creation order.
        """
        pred = self.G._pred
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
        pred, succ = self.G._pred, self.G._succ
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
            attrs = self.G._node
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
        return [n for n in (self.loss, *self.outputs.values(), *self.grads.values()) if n is not None]

    # -- checking and printing ----------------------------------------------------
    def check(self, stage: str) -> None:
        """Verify the IR's invariants; a failure here is a compiler bug in ``stage``."""
        G = self.G
        for n, d in G._node.items():
            if G._pred[n].keys() != set(d["args"]):
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
        if self.grads:
            marks.append("grads " + ", ".join(f"{k}={self.label(v)}" for k, v in self.grads.items()))
        return "\n".join(lines + marks) + "\n"

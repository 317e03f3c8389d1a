"""The lecture's procedures with numbers: explicit Jacobians, a worked example, pseudocode.

- `JacobianCheck` (gdsl explain --jacobians): every local Jacobian of one example twice, from
  the op table's vector-Jacobian products applied to unit vectors and by central differences
  of the node's own forward computation (its NumPy emission); the differences are multiplied
  along the graph as the lecture does and compared with the compiled ``value_and_grad``, so
  the agreement does not rest on the rules it checks.
- `Trace` (gdsl explain --trace): the forward values node by node in the lecture's order, then
  BackOp step by step, each incoming gradient, local Jacobian and product as numbers, the
  vec(W) -> matrix step; for a batch of several examples, the lecture's accumulate, divide and
  add-2λW procedure.
- `pseudocode` (gdsl explain --pseudocode): the lecture's EvaluateGraphFn / ComputeBranch and
  PerformBackPass / BackOp with the model's nodes filled in, and their run step by step.
"""

from __future__ import annotations

import numpy as np

from ..errors import GdslError, GdslUsageError
from ..ir.builder import vjp_model
from ..ir.evaluate import evaluate, evaluate_node
from ..ir.graph import GIVEN, LEAVES, Model
from ..ir.ops import OPS
from ..passes.grad import differentiate
from .lesson import Lesson, _size, example_dim, example_dims, example_shapes

MATRIX_LIMIT = 48       # entries of a matrix printed unless --show-matrices

# -- explicit Jacobians ---------------------------------------------------------------------------

def rule_jacobians(m: Model, c: int, values: dict, shapes: dict, positions) -> dict:
    """{position: ∂vec(c)/∂vec(arg)} of node c, built row by row by applying the op's
    vector-Jacobian products (the op table's rules) to unit vectors."""
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


def fd_jacobians(m: Model, c: int, values: dict, positions, h: float = 1e-3) -> dict:
    """{position: ∂vec(c)/∂vec(arg)} of node c by five-point central differences of the node's
    forward computation (its NumPy emission), independent of its derivative rules."""
    d = m.node(c)
    args = [np.asarray(values[a], dtype=np.float64) if np.asarray(values[a]).dtype.kind == "f"
            else np.asarray(values[a]) for a in d["args"]]
    out = {}
    with np.errstate(all="ignore"):
        for i in positions:
            x = args[i]
            cols = []
            for k in range(x.size):
                # a smaller step where the stencil leaves the op's domain (√(v + ε) of a
                # batch variance v = 0 at 1e-5 from it)
                for step_h in (h, h * 1e-5):
                    f = []
                    for step in (2, 1, -1, -2):
                        xs = x.copy().reshape(-1)
                        xs[k] += step * step_h
                        moved = list(args)
                        moved[i] = xs.reshape(x.shape)
                        f.append(np.asarray(evaluate_node(d["op"], d["attrs"], moved),
                                            dtype=np.float64).ravel())
                    col = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * step_h)
                    if np.all(np.isfinite(col)):
                        break
                cols.append(col)
            out[i] = np.array(cols).T if cols else np.zeros((0, 0))
    return out


def _kink_distance(m: Model, order, values) -> float:
    """How far the drawn values are from the kinks of the non-smooth ops they meet."""
    far = np.inf
    for n in order:
        d = m.node(n)
        row = OPS.get(d["op"])
        if row is not None and callable(row.kink):
            far = min(far, row.kink([values[a] for a in d["args"]], d["attrs"]))
    return far


def _classes_of_integer_labels(m: Model, n: int, shapes: dict) -> int | None:
    """The class count C when label input n holds class numbers (declared `y[n]` beside
    scores [C, n]: an axis fewer than the scores), else None (one-hot labels)."""
    for c in m.users(n):
        row = OPS.get(m.node(c)["op"])
        args = m.node(c)["args"]
        if row is not None and row.labels is not None and args[row.labels] == n:
            scores = shapes[args[row.scores]]
            if len(shapes[n]) < len(scores):
                return scores[0]
    return None


def draw_values(lesson: Lesson, shapes: dict, seed: int = 0, arrays: dict | None = None):
    """Random arrays for the model's leaves (one-hot labels, the consts' defaults) at these
    shapes, redrawn until they are 50 finite-difference steps h away from every kink;
    (arrays by name, values by node, h). A model with hundreds of kinks (a CNN's ReLUs and
    pooling windows) rarely is with h = 1e-3: after 100 draws h is 1e-6, and every other
    draw positive, scaled by the fan-in (no ReLU at 0, no window of zeros, moderate scores)."""
    m = lesson.m
    fwd = [n for n in m.forward_order if not m.node(n).get("backward")]
    leaves = [n for n in fwd if m.node(n)["op"] in GIVEN]
    for attempt in range(300):
        rng = np.random.default_rng(seed + attempt)
        out, values = {}, {}
        for n in leaves:
            d = m.node(n)
            name, shape = d["name"], tuple(shapes[n])
            classes = _classes_of_integer_labels(m, n, shapes) if name in m.labels else None
            if arrays and name in arrays:
                a = np.asarray(arrays[name])
                a = a if classes is not None and a.dtype.kind in "iu" else a.astype(np.float64)
            elif d["op"] == "const" and d.get("value") is not None:
                a = np.float64(d["value"])
            elif d["op"] == "state":        # (batch norm's running statistics, at first)
                a = np.full(shape, d["value"])
            elif classes is not None:       # integer labels `y[n]` (class numbers)
                a = rng.integers(classes, size=shape)
            elif name in m.labels and len(shape) >= 1:
                a = np.zeros(shape)
                classes = rng.integers(shape[0], size=shape[1:] or (1,))
                for j, k in enumerate(classes.ravel()):
                    a[(k,) + np.unravel_index(j, shape[1:])] = 1.0
            elif shape == ():
                a = np.float64(0.1 + abs(rng.normal()) * 0.1)
            elif attempt >= 100 and attempt % 2:
                a = rng.uniform(0.5, 1.5, shape) / (np.prod(shape[1:]) if len(shape) > 1 else 1)
            else:
                a = rng.normal(0.0, 0.5, shape)
            out[name] = a
            values[n] = a
        evaluate(m, fwd, values)
        h = 1e-3 if attempt < 100 else 1e-6
        if _kink_distance(m, fwd, values) >= 50 * h or arrays:
            return out, values, h
    raise GdslError("cannot draw values away from this model's kinks (relu, abs, max, svm)")


def fmt_array(a, limit: int | None = MATRIX_LIMIT) -> list[str]:
    """An array as the lines NumPy prints, or a note when it is larger than ``limit``."""
    a = np.asarray(a, dtype=np.float64)
    if limit is not None and a.size > limit:
        rows, cols = (a.shape + (1, 1))[:2] if a.ndim <= 2 else (a.shape[0], a.size // a.shape[0])
        return [f"(a {rows}×{cols} matrix: --show-matrices prints it)"]
    a = np.where(np.abs(a) < 1e-12, 0.0, a)            # no −0. from rounding
    if a.size == 1:                                    # a number, whatever its shape
        return [f"{float(a.ravel()[0]):.6g}"]
    text = np.array2string(a, precision=4, suppress_small=True, max_line_width=200,
                           floatmode="maxprec")
    return text.splitlines()


def _dims_text(shape) -> str:
    if not shape:
        return "1×1"
    if len(shape) == 1:
        return f"{shape[0]}×1"
    return "×".join(str(s) for s in shape)


def _row(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(1, -1)


class _Chain:
    """Local Jacobians of the drawn edges at given values, and the chain rule in BackOp order."""

    def __init__(self, lesson: Lesson, values: dict, shapes: dict, how: str = "rules",
                 h: float = 1e-3):
        m, v = lesson.m, lesson.view
        L = lesson
        act = set(m.needed([m.loss]))
        reach = _reachable(m, [m.names[w] for w in m.wrt])
        fwd = [n for n in m.forward_order if not m.node(n).get("backward")]
        self.local = {}
        for c in fwd:
            d = m.node(c)
            if c not in act or c not in reach or d["op"] in LEAVES:
                continue
            pos = [i for i, a in enumerate(d["args"]) if a in reach]
            self.local[c] = (rule_jacobians(m, c, values, shapes, pos) if how == "rules"
                             else fd_jacobians(m, c, values, pos, h))
        # ∂c/∂n for drawn nodes: a product along each route through folded nodes, summed
        self.edge = {}
        for n in L.backward_order:
            for c in L.children[n]:
                total = 0
                for a, route in v.routes(c):
                    if a != n:
                        continue
                    M = None
                    for node, p in route:
                        J = self.local[node][p]
                        M = J if M is None else M @ J
                    total = total + M
                self.edge[(c, n)] = total
        self.lesson = lesson

    def grads(self, keep=None) -> dict:
        """∂J/∂n = Σ_c ∂J/∂c ∂c/∂n in BackOp order (only the children ``keep`` allows)."""
        L, m = self.lesson, self.lesson.m
        grad = {m.loss: np.ones((1, self.edge_size(m.loss)))}
        for n in L.backward_order[1:]:
            terms = [grad[c] @ self.edge[(c, n)] for c in L.children[n]
                     if keep is None or keep(c, n)]
            grad[n] = sum(terms) if terms else np.zeros((1, self._size_of(n)))
        return grad

    def edge_size(self, n) -> int:
        for (c, _), M in self.edge.items():
            if c == n:
                return M.shape[0]
        return 1

    def _size_of(self, n) -> int:
        for (_, a), M in self.edge.items():
            if a == n:
                return M.shape[1]
        return 1


def _reachable(model, nodes):
    from ..passes.grad import _reachable_from
    return _reachable_from(model, nodes)


# -- --jacobians ------------------------------------------------------------------------------

class JacobianCheck:
    """Explicit local Jacobians for one example, by the op table's rules and by finite
    differences; the finite-difference ones chained as in the lecture, against value_and_grad."""

    TOL = 1e-7

    def __init__(self, lesson: Lesson, compiled, seed: int = 0, limit: int | None = MATRIX_LIMIT):
        self.lesson = L = lesson
        m = L.m
        if not L.view.has_loss:
            raise GdslUsageError("--jacobians needs a loss: the model computes no scalar to "
                                 "differentiate")
        if not L.shapes:
            L.shapes = example_shapes(m)
        self.limit = limit
        shapes = dict(L.shapes)
        self.arrays, values, h = draw_values(L, shapes, seed)
        fwd = [n for n in m.forward_order if not m.node(n).get("backward")]
        for n in fwd:
            shapes.setdefault(n, np.shape(values[n]))
        self.values, self.shapes = values, shapes
        rules = _Chain(L, values, shapes, "rules")
        fd = _Chain(L, values, shapes, "fd", h)
        self.rules, self.fd = rules, fd
        self.edge = rules.edge          # (shown: the rules' exact Jacobians; chained: fd's)
        self.rule_diffs = {}
        for c, per in rules.local.items():
            for pos, M in per.items():
                self.rule_diffs[(c, pos)] = float(np.max(np.abs(M - fd.local[c][pos]),
                                                         initial=0.0))
        self.rules_max = max(self.rule_diffs.values(), default=0.0)
        self.grad = fd.grads()
        loss, ref, *_ = compiled.value_and_grad(**self.arrays)
        self.loss = float(np.asarray(values[m.loss]).reshape(()))
        self.ref_loss = float(np.asarray(loss).reshape(()))
        self.ref = ref
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
        lines = [[("t", ("Each local Jacobian twice: from the op table's rules (vector-Jacobian "
                        "products applied to unit vectors) and by central differences of the "
                        "node's own NumPy computation. The differences are multiplied along "
                        "the graph, and the result is compared with value_and_grad."))]]
        if sizes:
            lines.append([("t", "sizes: "), ("m", ", ".join(f"{k} = {s}" for k, s in
                                                             sizes.items()))])
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
                lines.append([("t", "   "), ("m", f"{L.d(c, n)} = {L.local(c, n)} ="),
                              ("pre", fmt_array(self.edge[(c, n)], self.limit))])
        lines.append([("t", ("largest difference between a rule's Jacobian and the finite "
                            f"differences': {self.rules_max:.3g}"))])
        lines.append([("t", (f"loss: chained {self.loss:.12g}, value_and_grad "
                            f"{self.ref_loss:.12g}"))])
        for w, diff in self.diffs.items():
            lines.append([("t", "max |chained Jacobians − value_and_grad| for "),
                          ("m", f"∂{L.J}/∂{v.name.get(m.names[w], w)}"), ("t", f": {diff:.3g}")])
        ok = self.max_diff <= self.TOL and self.rules_max <= self.TOL
        verdict = "agree" if ok else "DISAGREE"
        lines.append([("t", (f"max abs difference: {max(self.max_diff, self.rules_max):.3g} "
                            f"(they {verdict} to {self.TOL:g})"))])
        return ("Explicit Jacobians for one example, multiplied along the graph", lines)


# -- --trace ---------------------------------------------------------------------------------------

class Trace:
    """A worked example with numbers, as the lecture's slides do it by hand."""

    def __init__(self, lesson: Lesson, compiled, dims: dict | None = None, seed: int = 0,
                 limit: int | None = MATRIX_LIMIT, arrays: dict | None = None):
        self.lesson = L = lesson
        m = L.m
        self.limit = limit
        self.compiled = compiled
        self.dims = example_dims(m, dims)
        self.shapes = example_shapes(m, self.dims)
        L.shapes = dict(self.shapes)
        self.arrays, self.values, _ = draw_values(L, self.shapes, seed, arrays)
        nd = example_dim(m)
        self.n = self.dims.get(nd, 1) if nd is not None else 1
        self.example_symbol = nd

    def _fmt(self, a):
        return fmt_array(a, self.limit)

    def sections(self):
        v = self.lesson.view
        secs = []
        head = [[("t", "sizes: "), ("m", ", ".join(f"{k} = {s}" for k, s in self.dims.items())
                                    or "none")]]
        for n in v.nodes:
            if v.kind[n] != "op":
                head.append([("m", f"{v.name[n]} ="), ("pre", self._fmt(self.values[n]))])
        order = []
        for i, n in enumerate([n for n in v.nodes if v.kind[n] == "op"], 1):
            order.append([("t", f"{i}. "), ("m", f"{v.statement(n)} ="),
                          ("pre", self._fmt(self.values[n]))])
        secs.append(("Forward pass with numbers: each value in the order it is computed",
                     head + order))
        if not v.has_loss:
            return secs
        if self.n == 1:
            secs += self._backop_sections()
        else:
            secs += self._batch_sections()
        return secs

    def _backop_sections(self):
        L, v, m = self.lesson, self.lesson.view, self.lesson.m
        chain = _Chain(L, self.values, self.shapes, "rules")
        grad = chain.grads()
        _, _, aliases = L.aggregate()
        alias = {n: sym for sym, ns in aliases.items() for n in ns}
        lines = []
        for i, n in enumerate(L.backward_order, 1):
            if n == m.loss:
                lines.append([("t", f"{i}. "), ("m", f"∂{L.J}/∂{L.J} = 1"),
                              ("t", "   (BackOp at the result node)")])
                continue
            kids = L.children[n]
            sum_text = " + ".join(f"∂{L.J}/∂{v.name[c]} {L.d(c, n)}" for c in kids)
            lines.append([("t", f"{i}. "), ("m", f"∂{L.J}/∂{v.name[n]} = {sum_text}")])
            for c in kids:
                M = chain.edge[(c, n)]
                incoming = grad[c]
                lines.append([("t", "   incoming "), ("m", f"∂{L.J}/∂{v.name[c]} ="),
                              ("pre", self._fmt(incoming))])
                lines.append([("t", "   local "), ("m", f"{L.d(c, n)} = {L.local(c, n)} ="),
                              ("pre", self._fmt(M))])
                lines.append([("t", "   product "), ("m", f"∂{L.J}/∂{v.name[c]} {L.d(c, n)} ="),
                              ("pre", self._fmt(incoming @ M))])
            g = grad[n]
            sym = alias.get(n)
            lhs = f"{sym} = ∂{L.J}/∂{v.name[n]}" if sym else f"∂{L.J}/∂{v.name[n]}"
            if L.matrix(n) and len(kids) and any(not L.scalar(c) for c in kids):
                lines.append([("t", "   so "), ("m", f"∂{L.J}/∂vec({v.name[n]}) ="),
                              ("pre", self._fmt(g))])
                shape = self.shapes[n]
                lines.append([("t", ("   and, the vector cut back into the rows of "
                                    f"{v.name[n]} ({_dims_text(shape)}), ")),
                              ("m", f"∂{L.J}/∂{v.name[n]} ="),
                              ("pre", self._fmt(g.reshape(shape)))])
            else:
                lines.append([("t", "   so "), ("m", f"{lhs} ="), ("pre", self._fmt(g))])
        secs = [(("BackOp with numbers, one example: incoming gradient × local Jacobian at "
                 "each step"), lines)]
        secs.append(self._compare(grad))
        return secs

    def _compare(self, grad, batch=None):
        L, m = self.lesson, self.lesson.m
        lines = []
        if self.compiled is None:
            return ("Check", [[("t", "no compiled model to compare with")]])
        _, ref, *_ = self.compiled.value_and_grad(**self.arrays)
        worst = 0.0
        for w in m.wrt:
            node = m.names[w]
            mine = (batch or {}).get(w)
            if mine is None:
                mine = grad[node].reshape(self.shapes[node]) if node in grad else \
                    np.zeros(self.shapes[node])
            want = np.broadcast_to(np.asarray(ref[w], dtype=np.float64), np.shape(mine))
            diff = float(np.max(np.abs(mine - want), initial=0.0))
            worst = max(worst, diff)
            name = L.view.name.get(node, w)
            lines.append([("m", f"∂{L.J}/∂{name}"), ("t", " from value_and_grad ="),
                          ("pre", self._fmt(want))])
            lines.append([("t", f"   max |difference| = {diff:.3g}")])
        lines.append([("t", f"the steps above and the compiled value_and_grad agree to "
                            f"{max(worst, 1e-16):.1g}" if worst <= 1e-9 else
                            f"the steps above and value_and_grad DISAGREE by {worst:.3g}")])
        return ("Check: the same gradients from the compiled value_and_grad", lines)

    def _batch_sections(self):
        L, v, m = self.lesson, self.lesson.view, self.lesson.m
        if not L.minibatch:
            return [("Backward pass", [[("t", ("the model is not a mean of per-example losses: "
                                              "trace it with one example (--dims "
                                              f"{self.example_symbol}=1)"))]])]
        one = dict(self.dims)
        one[self.example_symbol] = 1
        shapes1 = example_shapes(m, one)
        L.shapes = dict(shapes1)
        _, terms, aliases = L.batch_terms()
        after = _after_losses(L)
        per = L.per_example
        wrt = [n for n in L.backward_order if n in L.wrt]
        acc = {w: np.zeros(self.shapes[w]) for w in wrt}
        lines = [[("t", "Set all entries of "), ("m", ", ".join(f"∂L/∂{v.name[w]}" for w in wrt)),
                  ("t", " to zero.")]]
        batch_inputs = [n for n in v.nodes if v.kind[n] == "input" and
                        (m.node(n)["shape"] or ())[-1:] == (self.example_symbol,)]
        reg = None
        for i in range(self.n):
            arrays = dict(self.arrays)
            for x in batch_inputs:
                name = m.node(x)["name"]
                arrays[name] = np.asarray(self.arrays[name])[..., i:i + 1]
            _, values, _ = draw_values(L, shapes1, 0, arrays)
            chain = _Chain(L, values, shapes1, "rules")
            full = chain.grads()
            data = _data_grads(chain, L, per, after)
            if reg is None:
                reg = {w: (full[w] - data[w]).reshape(self.shapes[w]) for w in wrt}
            lines.append([("t", f"example {i + 1}: "),
                          ("m", ", ".join(f"{v.name[x]} = column {i + 1}" for x in batch_inputs))])
            for sym, ns in aliases.items():
                if ns:
                    lines.append([("t", "   "), ("m", f"{sym} = ∂{L.J}/∂{v.name[ns[0]]} ="),
                                  ("pre", self._fmt(full[ns[0]]))])
            for w in wrt:
                part = data[w].reshape(self.shapes[w])
                acc[w] = acc[w] + part
                text = terms[w][0] or "0"
                lines.append([("t", "   "), ("m", f"∂L/∂{v.name[w]} += {text} ="),
                              ("pre", self._fmt(part))])
        lines.append([("t", f"Divide by the number of examples |D| = {self.n}:")])
        mean = {}
        for w in wrt:
            mean[w] = acc[w] / self.n
            lines.append([("t", "   "), ("m", f"∂L/∂{v.name[w]} /= |D|:  ∂L/∂{v.name[w]} ="),
                          ("pre", self._fmt(mean[w]))])
        lines.append([("t", "Add the gradient of the regularization term:")])
        final = {}
        for w in wrt:
            r = terms[w][1]
            final[w] = mean[w] + reg[w]
            eq = f"∂{L.J}/∂{v.name[w]} = ∂L/∂{v.name[w]}" + (f" + {r}" if r else "")
            lines.append([("t", "   "), ("m", f"{eq} ="), ("pre", self._fmt(final[w]))])
        L.shapes = dict(self.shapes)
        names = {m.node(w)["name"]: final[w] for w in wrt}
        return [("The mini-batch procedure with numbers", lines),
                self._compare({}, batch=names)]


def _after_losses(L: Lesson) -> set:
    """The drawn values computed from the losses (J = l + λr): not per example."""
    v = L.view
    out, stack = set(), list(L.losses())
    while stack:
        n = stack.pop()
        for c in v.consumers.get(n, ()):
            if c not in out:
                out.add(c)
                stack.append(c)
    return out


def _data_grads(chain: _Chain, L: Lesson, per: set, after: set) -> dict:
    """∂J/∂n through the data term only: gradients reach a value from J through the losses and
    the per-example values, not through a regulariser."""
    m = L.m
    grad = {m.loss: np.ones((1, chain.edge_size(m.loss)))}
    for n in L.backward_order[1:]:
        keep = n in per or n in after or L.view.kind.get(n) != "op"
        terms = [grad[c] @ chain.edge[(c, n)] for c in L.children[n]
                 if keep and (c in per or c in after or c == m.loss)
                 and grad.get(c) is not None]
        grad[n] = sum(terms) if terms else np.zeros((1, chain._size_of(n)))
    return grad


# -- --pseudocode ------------------------------------------------------------------------------------

FORWARD_PROCEDURE = """\
procedure EvaluateGraphFn(G)            ▷ G is the computational graph
    S = GetStartNodes(G)                ▷ a start node has no parent and its value is set
    for s ∈ S do
        ComputeBranch(s, G)
    end for
end procedure

procedure ComputeBranch(s, G)           ▷ recursive fn evaluating nodes
    Cs = GetChildren(s, G)
    for each n ∈ Cs do                  ▷ try to evaluate each child node
        if !n.computed then             ▷ unless the child is already computed
            Pn = GetParents(n, G)
            if CheckAllNodesComputed(Pn) then   ▷ or not all parents of the child are
                fn = GetNodeFn(n)
                n.value = fn(Pn)
                n.computed = true
                ComputeBranch(n, G)
            end if
        end if
    end for
end procedure"""

BACKWARD_PROCEDURE = """\
procedure PerformBackPass(G)
    J = GetResultNode(G)                ▷ node with the value of the cost function
    BackOp(J, G)                        ▷ start the backward pass
end procedure

procedure BackOp(s, G)
    Cs = GetChildren(s, G)
    if Cs = ∅ then                      ▷ at the result node
        s.Grad = 1
    else
        if AllGradientsComputed(Cs) then    ▷ all ∂J/∂c computed, c ∈ Cs
            s.Grad = 0
            for each c ∈ Cs do
                s.Grad += c.Grad * c.s.Jacobian     ▷ ∂J/∂s += ∂J/∂c ∂c/∂s
            end for
            s.GradComputed = true
        end if
    end if
    for each p ∈ Ps do                  ▷ compute the Jacobian of fs w.r.t. each parent
        s.p.Jacobian = ∂fs(Ps)/∂p        ▷ ∂fs(Ps)/∂p = ∂s/∂p
        BackOp(p, G)
    end for
end procedure"""

INDENT_CAP = 12          # deeper calls are written at this indentation, with their depth


def _set(names) -> str:
    names = list(names)
    return "{" + ", ".join(names) + "}" if names else "∅"


def _C(name) -> str:
    return f"C_{name}"


def _P(name) -> str:
    return f"P_{name}"


def forward_run(view) -> tuple[list[str], list[int]]:
    """The lines of EvaluateGraphFn run on the drawn graph (ComputeBranch's recursion as an
    explicit stack), and the order in which it computes the values."""
    v = view
    parents = {n: v.visible_args(n) for n in v.nodes if v.kind[n] == "op"}
    children = {n: [] for n in v.nodes}
    for a, c in v.edges:
        children[a].append(c)
    starts = [n for n in v.nodes if v.kind[n] != "op"]
    computed = set(starts)
    lines = [f"S = GetStartNodes(G) = {_set(v.name[n] for n in starts)}"]
    order = []

    def pad(depth):
        return "    " * min(depth, INDENT_CAP) + (f"[{depth}] " if depth > INDENT_CAP else "")

    for s in starts:
        stack = [(s, 0, 0)]
        lines.append(f"ComputeBranch({v.name[s]}, G)")
        while stack:
            node, i, depth = stack.pop()
            kids = children[node]
            if i == 0:
                lines.append(pad(depth + 1) + f"{_C(v.name[node])} = {_set(v.name[c] for c in kids)}")
            if i >= len(kids):
                continue
            stack.append((node, i + 1, depth))
            n = kids[i]
            p = pad(depth + 1)
            if n in computed:
                lines.append(p + f"{v.name[n]} is already computed")
                continue
            missing = [a for a in parents[n] if a not in computed]
            if missing:
                lines.append(p + f"{v.name[n]}: not all of {_P(v.name[n])} = "
                             f"{_set(v.name[a] for a in parents[n])} computed "
                             f"({', '.join(v.name[a] for a in missing)} not yet): skip")
                continue
            computed.add(n)
            order.append(n)
            lines.append(p + f"{v.name[n]}.value = {v.label[n]}   "
                         f"({_P(v.name[n])} = {_set(v.name[a] for a in parents[n])} all computed)")
            lines.append(p + f"ComputeBranch({v.name[n]}, G)")
            stack.append((n, 0, depth + 1))
    lines.append("order: " + ", ".join(v.name[n] for n in order))
    return lines, order


def backward_run(lesson) -> tuple[list[str], list[int]]:
    """The lines of PerformBackPass run on the drawn graph, and the order in which the
    gradients are completed (BackOp's recursion as an explicit stack)."""
    L, v = lesson, lesson.view
    J = L.m.loss
    lines = [f"J = GetResultNode(G) = {L.J}", f"BackOp({L.J}, G)"]
    done, order = set(), []

    def pad(depth):
        return "    " * min(depth, INDENT_CAP) + (f"[{depth}] " if depth > INDENT_CAP else "")

    stack = [(J, -1, 0)]
    while stack:
        s, i, depth = stack.pop()
        p = pad(depth + 1)
        kids = L.children[s]
        if i == -1:
            if not kids:
                lines.append(p + f"{_C(v.name[s])} = ∅: {v.name[s]}.Grad = 1")
            elif all(c in done for c in kids):
                terms = " + ".join(f"∂{L.J}/∂{v.name[c]} {L.d(c, s)}" for c in kids)
                lines.append(p + f"{_C(v.name[s])} = {_set(v.name[c] for c in kids)}, all "
                             f"gradients computed: {v.name[s]}.Grad = ∂{L.J}/∂{v.name[s]} = "
                             + terms)
            else:
                wait = [v.name[c] for c in kids if c not in done]
                lines.append(p + f"{_C(v.name[s])} = {_set(v.name[c] for c in kids)}: "
                             f"∂{L.J}/∂{', '.join(wait)} not computed yet: return "
                             f"({v.name[s]} is visited again later)")
                continue
            done.add(s)
            order.append(s)
        ps = list(reversed(L.parents[s]))       # the last argument first, as on the slides
        if i + 1 < len(ps):
            q = ps[i + 1]
            stack.append((s, i + 1, depth))
            lines.append(p + f"{v.name[s]}.{v.name[q]}.Jacobian = {L.d(s, q)} = {L.local(s, q)}")
            lines.append(p + f"BackOp({v.name[q]}, G)")
            stack.append((q, -1, depth + 1))
    lines.append("order: " + ", ".join(v.name[n] for n in order))
    return lines, order


def pseudocode(lesson) -> list:
    """Sections: the lecture's two procedures, and their run on this model."""
    v = lesson.view
    secs = [("The generic forward pass (the lecture's pseudocode)",
             [[("pre", FORWARD_PROCEDURE.splitlines())]])]
    lines, _ = forward_run(v)
    secs.append(("EvaluateGraphFn run on this model", [[("pre", lines)]]))
    if v.has_loss:
        note = ("gdsl visits a node's parents once its gradient is complete: the same order "
                "and gradients, each local Jacobian computed once (the pseudocode loops over "
                "Ps also when it returns early, revisiting them).")
        secs.append(("The generic backward pass (the lecture's pseudocode)",
                     [[("pre", BACKWARD_PROCEDURE.splitlines())], [("t", note)]]))
        lines, _ = backward_run(lesson)
        secs.append(("PerformBackPass run on this model", [[("pre", lines)]]))
    return secs

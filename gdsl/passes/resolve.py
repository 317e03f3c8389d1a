"""Resolve names and build the graph: AST -> IR.

Single assignment: a name is defined once, before it is used. In a file
with no declarations every free name is an input (the one-line model of the
design card); once a file declares anything, a free name is an error.
Expressions are walked with an explicit stack, never recursively.

Loops are unrolled here: `for t in 1..T:` compiles its body once for each t, with the
indices in it (`h[t]`, `x[t - 1]`) worked out to numbers. `h[3]` is a name of its own
(the values a loop names); `x[3]` of any other value is its third slice along axis 0, a
`take` node of the op table. Loops are walked with an explicit stack too.

For drawing, a loop can be folded instead (``fold_loops``, model.folded): its body compiled
once for a step t, the indices left as written (`x[t]`, `h[t]`), the values of the step
before (`h[t - 1]`) given to it as inputs, and `h[T]` after the loop read as `h[t]`.
"""

from __future__ import annotations

from .. import limits
from ..errors import (
    GdslLimitError,
    GdslNameError,
    GdslTypeError,
    GdslValueError,
    Span,
    did_you_mean,
)
from ..ir.graph import GIVEN, Model
from ..ir.init import INITS
from ..ir.ops import BINARY_OPERATORS, COUNT_OP, NEG_OP, OPS, TAKE_OP, TRANSPOSE_OP, user_functions
from ..lang import syntax as S

TRAIN_OPTIONS = {
    "lr": float, "epochs": int, "batch_size": int, "optimizer": str, "seed": int,
    "momentum": float, "decay": float, "data": str, "val_fraction": float,
    "hidden": int,      # deprecated: `dim m = 100` names the size it gave every open dim
    "classes": int, "standardize": bool, "label": str,
}
# what `metric NAME` (and gdsl run --metric) can ask for: the metrics the losses report
METRICS = tuple(sorted({name for op in OPS.values() for name in op.metrics}))
DIM_PREFIX = "dim "     # `dim m = 100` is kept in the train settings as "dim m": 100


def metric_names(text: str) -> list[str]:
    """The metric names of `metric rmse, r2` or --metric rmse,r2, in order, once each."""
    return list(dict.fromkeys(w.strip() for w in text.split(",") if w.strip()))


class _Resolver:
    def __init__(self, program: S.Program, model: Model, wrt: list[str] | None,
                 mode: str = "train"):
        self.p, self.m, self.wrt = program, model, wrt
        model.mode = mode
        self.updated: dict[str, S.Update] = {}     # state -> its update statement
        self.sizes: dict[str, int] = {}            # dim -> the node of its size (`n` in n - 1)
        self.defined_at: dict[str, Span] = {}
        self.later: dict[str, Span] = {}   # names assigned somewhere, for "used before definition"
        self.literals: dict[float, int] = {}
        self.label_use: dict[str, str] = {}    # label input -> the loss that takes it, for messages
        self.train: dict[str, object] = {}     # the `train` line's settings
        self.dims: dict[str, S.DimDecl] = {}   # `dim m = 100`
        self.metric_stmt: S.Metric | None = None
        self.label_option: S.Option | None = None
        self.m.declared = any(isinstance(s, (S.Input, S.Param, S.Const, S.State))
                              for s in program.statements)
        self.env: dict[str, int] = {}          # the loops' variables, at this step
        self.loops: list[S.For] = []           # the loops around the statement being compiled
        self.families: dict[str, Span] = {}    # names a loop indexes (h of h[t]) -> first h[...]
        self.slices: dict[tuple[int, int], int] = {}    # (value, index) -> its take node
        self.step_values: dict[str, int] = {}  # folded: h -> the node of h[t]
        self.step_inputs: list[tuple[int, str]] = []    # folded: (the node of h[t - 1], h)
        self.family_last: dict[str, int] = {}  # folded: h -> its value defined last (h[0])
        self.dim_values = {st.name: st.value for st in program.statements
                           if isinstance(st, S.DimDecl)}

    def run(self) -> Model:
        m = self.m
        for st, _ in S.walk(self.p.statements):
            if isinstance(st, S.For) and st.inline:
                st = st.body[0]
            if isinstance(st, S.Assign):
                self.later.setdefault(st.target, st.target_span)
                if st.index is not None:
                    self.families.setdefault(st.target, st.target_span)
        loss_stmt = None
        outputs: list[S.Name] = []
        last_assign = None
        for st in self._unrolled():
            if m._next > limits.MAX_NODES:       # declarations count too
                raise GdslLimitError(f"the model has more than {limits.MAX_NODES} nodes", st.span,
                                     help="the limit is gdsl.limits.MAX_NODES")
            if isinstance(st, S.Assign):
                target = self._target(st)
                n = self.expr(st.value, st.span)
                d = m.node(n)
                if d["name"] is None and d["op"] not in ("literal",):
                    d["name"] = target
                    d["line"] = st.span
                m.names[target] = n
                self.defined_at[target] = st.target_span
                last_assign = target
                if self.loops and m.folded:
                    self.step_values[st.target] = n
                elif st.index is not None:
                    self.family_last[st.target] = n
            elif isinstance(st, (S.Input, S.Param)):
                self._define_check(st.name, st.name_span)
                kind = "input" if isinstance(st, S.Input) else "param"
                # `param b`: a scalar (an input without brackets takes its shape at call time)
                shape = (None if kind == "input" else ()) if st.shape is None else \
                    tuple(ds.value for ds in st.shape)
                extra = {"init": self._init(st.init)} if kind == "param" and st.init else {}
                n = m.add(kind, name=st.name, span=st.name_span, line=st.span, shape=shape,
                          declared=True, **extra)
                (m.inputs if kind == "input" else m.params)[st.name] = n
                m.names[st.name] = n
                self.defined_at[st.name] = st.name_span
            elif isinstance(st, S.Const):
                self._define_check(st.name, st.name_span)
                n = m.add("const", name=st.name, span=st.name_span, line=st.span, shape=(),
                          value=st.value, declared=True)
                m.consts[st.name] = n
                m.names[st.name] = n
                self.defined_at[st.name] = st.name_span
            elif isinstance(st, S.Loss):
                if loss_stmt is not None:
                    raise GdslNameError("the loss is named twice", st.span,
                                        notes=[f"first named at {loss_stmt.span}"])
                loss_stmt = st
            elif isinstance(st, S.Output):
                outputs.extend(st.names)
            elif isinstance(st, S.Train):
                self._train(st)
            elif isinstance(st, S.DimDecl):
                self._dim(st)
            elif isinstance(st, S.Metric):
                self._metric(st)
            elif isinstance(st, S.State):
                self._state(st)
            elif isinstance(st, S.Update):
                self._update(st)
        if loss_stmt is not None:
            m.loss = self._lookup_final(loss_stmt.name, loss_stmt.name_span)
            m.loss_name = loss_stmt.name
        elif last_assign is not None:
            m.loss = m.names[last_assign]
            m.loss_name = last_assign
        else:
            if self.p.statements:
                what, span = "the model computes nothing: it has no assignment", \
                    self.p.statements[-1].span
            else:       # (at the end of the text, as the parser's "unexpected end of file")
                lines = m.source.split("\n")
                what, span = "the model is empty", Span(len(lines), len(lines[-1]) + 1,
                                                        len(lines), len(lines[-1]) + 1)
            raise GdslNameError(what, span, help="write what it computes, e.g. `s = W @ x` and "
                                "`J = xent(softmax(s), y)`; see models/ for whole examples")
        for o in outputs:
            if o.id in m.outputs:
                raise GdslNameError(f"`{o.id}` is listed as an output twice", o.span)
            if o.id in m.states:
                raise GdslNameError(f"`{o.id}` is a state: its new value is returned with the "
                                    f"outputs already, by its name", o.span,
                                    help="remove it from the output list")
            m.outputs[o.id] = self._lookup_final(o.id, o.span)
        for name, n in m.states.items():
            if name not in self.updated:
                d = m.node(n)
                raise GdslNameError(f"state `{name}` has no update", d["line"],
                                    help=f"say how training updates it, e.g. `{name} <- 0.9 * "
                                    f"{name} + 0.1 * ...`; a value that never changes is a const")
        self._choose_wrt()
        self._check_dims_and_label()
        for n, family in self.step_inputs:
            if family in self.step_values:
                m.node(n)["step_of"] = self.step_values[family]
        return m

    # -- loops ------------------------------------------------------------------------------
    def _unrolled(self):
        """The statements in the order they run: a loop's body once for each step, with
        self.env holding the loops' variables (an explicit stack: loops nest deep)."""
        todo = [iter(self.p.statements)]
        steps = [None]          # per level: the loop and its remaining values of the variable
        while todo:
            st = next(todo[-1], None)
            if st is None:
                loop = steps[-1]
                if loop is not None and loop[1]:           # the next step of the loop
                    self.env[loop[0].var] = loop[1].pop()
                    todo[-1] = iter(loop[0].body)
                    continue
                todo.pop()
                steps.pop()
                if loop is not None:
                    del self.env[loop[0].var]
                    self.loops.pop()
                continue
            if isinstance(st, S.For):
                values = self._loop_values(st) if not self.m.folded else [st.var]
                self.loops.append(st)
                self.env[st.var] = values.pop()
                todo.append(iter(st.body))
                steps.append((st, values))
                continue
            if self.loops and not isinstance(st, S.Assign):
                raise GdslNameError("a loop's body holds assignments and loops only", st.span,
                                    notes=[f"in the loop at {self.loops[-1].span}"],
                                    help="declare names and write `loss`, `output` and `train` "
                                    "outside the loop")
            yield st

    def _loop_values(self, loop: S.For) -> list[int]:
        """The values of the loop's variable, last first (popped in order)."""
        if loop.var in self.env:
            raise GdslNameError(f"`{loop.var}` is already the variable of an enclosing loop",
                                loop.var_span, notes=[f"that loop is at {self._loop_of(loop.var)}"],
                                help="give the inner loop a variable of its own, e.g. `s`")
        if loop.var in self.later or loop.var in self.m.names or loop.var in self.families:
            where = self.defined_at.get(loop.var) or self.later.get(loop.var) \
                or self.families.get(loop.var)
            raise GdslNameError(f"the loop's variable `{loop.var}` is already a name of the model",
                                loop.var_span, notes=[f"`{loop.var}` is defined at {where}"] if where else [],
                                help="choose another letter for the loop, e.g. `t`")
        start = self.index_value(loop.start, "the start of a loop")
        stop = self.index_value(loop.stop, "the end of a loop")
        span = Span.cover(loop.start.span, loop.stop.span)
        if stop < start:
            raise GdslValueError(f"the loop runs no step: it counts up from {start} to {stop}",
                                 span, help=f"both ends are included: `for {loop.var} in "
                                 f"{min(start, stop)}..{max(start, stop)}` runs "
                                 f"{abs(stop - start) + 1} steps")
        count = stop - start + 1
        for outer in self.loops:
            count *= len(range(*self._range_of(outer)))
        if count > limits.MAX_LOOP_STEPS:
            raise GdslLimitError(f"the loop unrolls into {count} steps, more than the limit of "
                                 f"{limits.MAX_LOOP_STEPS}", loop.span,
                                 help="the limit is gdsl.limits.MAX_LOOP_STEPS")
        return list(range(stop, start - 1, -1))

    def _range_of(self, loop: S.For) -> tuple[int, int]:
        return (self.index_value(loop.start, "the start of a loop"),
                self.index_value(loop.stop, "the end of a loop") + 1)

    def _loop_of(self, var: str) -> Span | None:
        return next((lp.span for lp in self.loops if lp.var == var), None)

    def index_value(self, root: S.Expr, what: str = "an index") -> int | str:
        """The whole number an index (or a loop's end) stands for at this step: numbers, the
        loops' variables and declared dims, with + - * (walked without recursion)."""
        walk, todo = [], [root]
        while todo:
            node = todo.pop()
            walk.append(node)
            if type(node) is S.BinOp and node.op in "+-*":
                todo += (node.left, node.right)
            elif type(node) is S.Unary:
                todo.append(node.operand)
        values: list[int] = []
        for node in reversed(walk):
            kind = type(node)
            if kind is S.Num and node.value == int(node.value):
                values.append(int(node.value))
            elif kind is S.Name and node.id in self.env:
                values.append(self.env[node.id])        # (folded: the variable's name)
            elif kind is S.Name and node.id in self.dim_values:
                # a loop's length is fixed when it compiles: so is the dim's size, which the
                # arrays of a call must then have
                values.append(int(self.dim_values[node.id]))
                self.m.dims.bound.setdefault(node.id, values[-1])
            elif kind is S.BinOp and node.op in "+-*" and self.m.folded:
                y, x = values.pop(), values.pop()
                values.append(f"{x} {node.op} {y}")
            elif kind is S.BinOp and node.op in "+-*":
                y, x = values.pop(), values.pop()
                values.append(x + y if node.op == "+" else x - y if node.op == "-" else x * y)
            elif kind is S.Unary and self.m.folded:
                values.append(f"{node.op}{values.pop()}")
            elif kind is S.Unary:
                values.append(-values.pop() if node.op == "-" else values.pop())
            else:
                loops = ", ".join(f"`{v}`" for v in self.env)
                raise GdslTypeError(
                    f"{what} is a whole number, a loop's variable or a dim, with + - * "
                    f"between them", node.span,
                    help="e.g. `h[t - 1]`, `x[1]` or `1..T` (`dim T = 8`)"
                    + (f"; the loops' variables here: {loops}" if loops else "")
                    if kind is not S.Name else
                    f"`{node.id}` is not a loop's variable nor a declared dim (`dim {node.id} = 8`)")
        return values[0]

    def _step_note(self) -> list[str]:
        return [", ".join(f"at {lp.var} = {self.env[lp.var]} of the loop at {lp.span}"
                          for lp in self.loops)] if self.loops else []

    def _target(self, st: S.Assign) -> str:
        """The name an assignment defines: `h` or, indexed, `h[3]`."""
        if st.index is None:
            if self.loops:
                raise GdslNameError(
                    f"`{st.target}` would be defined again at each step of the loop",
                    st.target_span, notes=[f"in the loop at {self.loops[-1].span}"],
                    help=f"index it by the loop: `{st.target}[{self.loops[-1].var}] = ...`")
            if st.target in self.families:
                raise GdslNameError(f"`{st.target}` is already defined as indexed values",
                                    st.target_span, notes=[(f"`{st.target}[...]` is defined at "
                                                           f"{self.families[st.target]}")],
                                    help="a name is defined once in gdsl; choose a new name")
            self._define_check(st.target, st.target_span)
            return st.target
        target = f"{st.target}[{self.index_value(st.index)}]"
        if st.target in self.defined_at or (st.target in self.m.names):
            raise GdslNameError(f"`{st.target}` is already defined, not as indexed values",
                                st.target_span, notes=[(f"first defined at "
                                                       f"{self.defined_at.get(st.target)}")],
                                help="a name is defined once in gdsl; choose a new name")
        if target in self.defined_at:
            raise GdslNameError(f"`{target}` is already defined", st.target_span,
                                notes=[f"first defined at {self.defined_at[target]}",
                                       *self._step_note()],
                                help="a name is defined once in gdsl: is an index off by one?")
        return target

    def _defined_so_far(self, name: str) -> list[str]:
        """[`defined so far: h[0] to h[8]`] (the indices, when they have gaps), or []."""
        ks = sorted(int(k[len(name) + 1:-1]) for k in self.m.names
                    if k.startswith(name + "[") and k[len(name) + 1:-1].lstrip("-").isdigit())
        if not ks:
            return []
        if ks == list(range(ks[0], ks[-1] + 1)) and len(ks) > 2:
            return [f"defined so far: {name}[{ks[0]}] to {name}[{ks[-1]}]"]
        shown = ", ".join(f"{name}[{k}]" for k in ks[:6]) + (", ..." if len(ks) > 6 else "")
        return [f"defined so far: {shown}"]

    def index(self, node: S.Index) -> int:
        """`h[k]`, a value a loop named, or the k-th slice of any other value along axis 0."""
        k = self.index_value(node.index)
        key = f"{node.name}[{k}]"
        m = self.m
        if key in m.names:
            return m.names[key]
        folded = self._folded_index(node, k, key) if m.folded else None
        if folded is not None:
            return folded
        if node.name in self.families:
            raise GdslNameError(f"`{key}` is used before its definition", node.span,
                                notes=[*self._step_note(), (f"`{node.name}[...]` is defined at "
                                       f"{self.families[node.name]}"),
                                       *self._defined_so_far(node.name)],
                                help=f"define `{key}` first (a loop's first step reads what "
                                     f"comes before it, e.g. `{node.name}[0] = ...`)")
        x = self.name(S.Name(node.name, node.name_span))
        shape = m.node(x)["shape"]
        size = shape[0] if shape else None
        size = int(self.dim_values[size]) if isinstance(size, str) and size in self.dim_values \
            else size
        if shape == () or k < 1 or isinstance(size, int) and k > size:
            what = (f"`{node.name}` is a scalar: it has no slices" if shape == () else
                    f"`{node.name}` has {size} slices along axis 0, {node.name}[1] .. "
                    f"{node.name}[{size}]" if isinstance(size, int) else
                    f"slices count from 1: {node.name}[1] is the first")
            raise GdslValueError(f"index {k} is out of range in `{key}`", node.span,
                                 notes=[what, *self._step_note()],
                                 help="an index counts slices from 1, as x_1 ... x_T")
        if (x, k) not in self.slices:
            self.slices[(x, k)] = m.add(TAKE_OP, (x,), attrs={"index": k - 1}, span=node.span,
                                        line=self.line, hint=f"{node.name}[{k}]")
        return self.slices[(x, k)]

    def _folded_index(self, node: S.Index, k, key: str) -> int | None:
        """Folded: `h[t - 1]` is the step's input, `h[8]` after the loop its last h[t], and
        `x[t]` the slice of x the step reads."""
        m = self.m
        if node.name in self.families:
            if isinstance(k, str):
                # (first the shape of the value before the loop, h[0]; then that of h[t])
                before = self.family_last.get(node.name)
                n = m.add("input", name=key, span=node.span, line=self.line,
                          shape=None if before is None else m.node(before)["shape"])
                m.inputs[key] = m.names[key] = n
                self.step_inputs.append((n, node.name))
                return n
            return self.step_values.get(node.name)
        if not isinstance(k, str):
            return None
        x = self.name(S.Name(node.name, node.name_span))
        if (x, k) not in self.slices:
            self.slices[(x, k)] = m.add(TAKE_OP, (x,), attrs={"index": k}, span=node.span,
                                        line=self.line, name=key)
        return self.slices[(x, k)]

    # -- names ------------------------------------------------------------------------------
    def _define_check(self, name: str, span: Span) -> None:
        if name in self.defined_at:
            raise GdslNameError(f"`{name}` is already defined", span,
                                notes=[f"first defined at {self.defined_at[name]}"],
                                help="a name is defined once in gdsl; choose a new name")

    def _lookup_final(self, name: str, span: Span) -> int:
        if name not in self.m.names:
            raise GdslNameError(f"undefined name `{name}`", span,
                                help=did_you_mean(name, self.m.names))
        return self.m.names[name]

    def name(self, node: S.Name) -> int:
        m = self.m
        if node.id in m.names:
            return m.names[node.id]
        if node.id in self.env and m.folded:      # drawn as the step's number, t, given to it
            n = m.add("input", name=node.id, span=node.span, line=node.span, shape=())
            m.inputs[node.id] = m.names[node.id] = n
            return n
        if node.id in self.env:         # a loop's variable, as a number: its value at this step
            return self.literal(float(self.env[node.id]), node.span)
        if node.id in self.families:
            raise GdslNameError(f"`{node.id}` names indexed values: write which, e.g. "
                                f"`{node.id}[{next(iter(self.env), 1)}]`", node.span,
                                notes=[f"`{node.id}[...]` is defined at {self.families[node.id]}"])
        size = self._size(node.id)
        if size is not None:
            return size
        if node.id in self.later:
            raise GdslNameError(f"`{node.id}` is used before its definition", node.span,
                                notes=[f"`{node.id}` is defined at {self.later[node.id]}"],
                                help="define a name before using it (definitions cannot form a cycle)")
        if m.declared:
            raise GdslNameError(f"undefined name `{node.id}`", node.span,
                                help=did_you_mean(node.id, m.names)
                                or f"declare it, e.g. `input {node.id}[d, n]` or `param {node.id}[C, d]`")
        n = m.add("input", name=node.id, span=node.span, line=node.span, shape=None)
        m.inputs[node.id] = n
        m.names[node.id] = n
        self.defined_at[node.id] = node.span
        return n

    # -- expressions, iteratively --------------------------------------------------------------
    def expr(self, root: S.Expr, line: Span) -> int:
        """The graph node of an expression. Its nodes are made operands first, left to right
        (as they are written): in the reverse of a root, right, left walk."""
        walk, todo = [], [root]
        while todo:
            node = todo.pop()
            walk.append(node)
            kind = type(node)
            if kind is S.BinOp:
                todo += (node.left, node.right)
            elif kind is S.Unary or kind is S.Transpose:
                todo.append(node.operand)
            elif kind is S.Call:
                todo += node.args           # keyword values are read by call()
            elif kind is S.Choice:          # the branch of the mode compiled: the other checked
                walk.pop()
                self.m.modal = True
                chosen, other = ((node.train, node.eval) if self.m.mode == "train"
                                 else (node.eval, node.train))
                self._check_names(other)
                todo.append(chosen)
        m, names, literals = self.m, self.m.names, self.literals
        self.line = line
        operands: list[int] = []
        for node in reversed(walk):
            kind = type(node)
            if kind is S.Name:
                operands.append(names[node.id] if node.id in names else self.name(node))
            elif kind is S.Index:
                operands.append(self.index(node))
            elif kind is S.Num:
                operands.append(literals[node.value] if node.value in literals
                                else self.literal(node.value, node.span))
            else:
                first = len(operands) - (2 if kind is S.BinOp else len(node.args) if kind is S.Call
                                         else 1)
                args = tuple(operands[first:])
                del operands[first:]
                operands.append(self.operation(node, args, line))
                if m._next > limits.MAX_NODES:
                    raise GdslLimitError(f"the model has more than {limits.MAX_NODES} nodes", node.span,
                                         help="the limit is gdsl.limits.MAX_NODES")
        return operands[0]

    def operation(self, node, args: tuple[int, ...], line: Span) -> int:
        kind = type(node)
        if kind is S.BinOp:
            return self.m.add(BINARY_OPERATORS[node.op], args, span=node.span, line=line)
        if kind is S.Unary:
            return args[0] if node.op == "+" else self.m.add(NEG_OP, args, span=node.span, line=line)
        if kind is S.Transpose:
            return self.m.add(TRANSPOSE_OP, args, span=node.span, line=line)
        return self.call(node, args, line)

    def literal(self, value: float, span: Span) -> int:
        if value not in self.literals:
            self.literals[value] = self.m.add("literal", value=value, span=span, shape=())
        return self.literals[value]

    def call(self, node: S.Call, args: tuple[int, ...], line: Span) -> int:
        op = OPS.get(node.func)
        if op is None or not op.user:
            raise GdslTypeError(f"unknown function `{node.func}`", node.func_span,
                                help=did_you_mean(node.func, user_functions())
                                or "functions: " + ", ".join(user_functions()))
        if len(args) != op.arity:
            raise GdslTypeError(
                f"`{node.func}` takes {op.arity} argument{'s' if op.arity != 1 else ''}, "
                f"got {len(args)}", node.span,
                help=f"e.g. `{node.func}({', '.join('xyz'[:op.arity])})`"
                + (f"; keywords: {', '.join(op.keywords)}" if op.keywords else ""))
        attrs = dict(op.keywords)
        seen = set()
        for kw in node.keywords:
            if kw.name not in op.keywords:
                choices = ", ".join(f"`{k}=`" for k in op.keywords) or "none"
                raise GdslTypeError(f"`{node.func}` has no keyword `{kw.name}`", kw.span,
                                    help=f"keywords of `{node.func}`: {choices}")
            if kw.name in seen:
                raise GdslTypeError(f"keyword `{kw.name}` given twice", kw.span)
            seen.add(kw.name)
            attrs[kw.name] = self._keyword_value(node.func, kw, op.whole.get(kw.name))
        for name in op.whole:
            if attrs[name] is None:
                raise GdslTypeError(f"`{node.func}` needs `{name}=`", node.span,
                                    help=f"e.g. `{node.func}(x, " + ", ".join(
                                        f"{k}={8 if v is None else v}" for k, v in
                                        op.keywords.items() if k in op.whole) + ")`")
        if op.labels is not None:       # an input given as class labels
            label = self.m.node(args[op.labels])
            if label["op"] == "input":
                self.m.labels.add(label["name"])
                self.label_use.setdefault(label["name"], f"`{node.func}` at {node.span}")
        return self.m.add(node.func, args, attrs=attrs, span=node.span, line=line)

    @staticmethod
    def _keyword_value(func: str, kw: S.Keyword, least: int | None = None):
        v = kw.value
        sign = 1
        if isinstance(v, S.Unary) and v.op == "-" and isinstance(v.operand, S.Num):
            sign, v = -1, v.operand
        if least is not None:       # a whole number: conv2d(x, K, stride=2, padding=1)
            if not (isinstance(v, S.Num) and v.value == int(v.value) and "." not in v.text
                    and "e" not in v.text.lower() and sign * v.value >= least):
                raise GdslTypeError(f"`{kw.name}=` of `{func}` takes a whole number"
                                    + (f" of at least {least}" if least else " (0 or more)"),
                                    kw.value.span, help=f"e.g. {kw.name}={max(least, 1)}")
            return int(v.value)
        if kw.name not in ("axis", "keepdims"):     # a number: huber(p, y, delta=0.5)
            if not isinstance(v, S.Num) or sign * v.value <= 0:
                raise GdslTypeError(f"`{kw.name}=` of `{func}` takes a positive number",
                                    kw.value.span, help=f"e.g. {kw.name}=1")
            return float(v.value)
        if kw.name == "keepdims":
            if isinstance(v, S.Name) and v.id in ("True", "False"):
                return v.id == "True"
            if isinstance(v, S.Num) and v.value in (0, 1):
                return bool(v.value)
            raise GdslTypeError("`keepdims=` takes True or False", kw.value.span)
        # axis
        if isinstance(v, S.Name) and v.id == "None" and sign == 1:
            return None
        if isinstance(v, S.Num) and v.value == int(v.value) and "." not in v.text and "e" not in v.text.lower():
            return sign * int(v.value)
        raise GdslTypeError(f"`axis=` of `{func}` takes an integer (or None)", kw.value.span,
                            help="e.g. axis=0 for classes along rows, axis=1 along columns")

    def _check_names(self, root: S.Expr) -> None:
        """The names and functions of a branch that this mode does not compute are defined
        (its shapes are checked when the other mode is compiled)."""
        todo = [root]
        while todo:
            node = todo.pop()
            kind = type(node)
            if kind is S.Name:
                if node.id not in self.m.names:
                    self.name(node)
            elif kind is S.BinOp:
                todo += (node.left, node.right)
            elif kind is S.Unary or kind is S.Transpose:
                todo.append(node.operand)
            elif kind is S.Choice:
                todo += (node.train, node.eval)
            elif kind is S.Index:
                todo.append(node.index)
            elif kind is S.Call:
                if node.func not in user_functions():
                    self.call(node, (), node.span)     # (raises: unknown function)
                todo += node.args

    def _size(self, name: str) -> int | None:
        """A dimension's name in an expression is its size: `n` is the number of examples of
        `input x[d, n]` (x.shape[1] at run time). None when no declaration has that dim."""
        if name in self.sizes:
            return self.sizes[name]
        m = self.m
        for leaf in [*m.inputs.values(), *m.params.values(), *m.states.values()]:
            d = m.node(leaf)
            shape = d["shape"] if d.get("declared") else None
            if shape and name in shape:
                self.sizes[name] = m.add(COUNT_OP, (leaf,), attrs={"axis": shape.index(name)},
                                         span=d["span"], line=d["line"], hint=name)
                return self.sizes[name]
        return None

    # -- state ---------------------------------------------------------------------------------
    def _state(self, st: S.State) -> None:
        self._define_check(st.name, st.name_span)
        m = self.m
        n = m.add("state", name=st.name, span=st.name_span, line=st.span,
                  shape=tuple(ds.value for ds in st.shape), value=st.value, declared=True)
        m.states[st.name] = n
        m.names[st.name] = n
        m.modal = True
        self.defined_at[st.name] = st.name_span

    def _update(self, st: S.Update) -> None:
        m = self.m
        if st.target not in m.states:
            n = m.names.get(st.target)
            if n is None:
                raise GdslNameError(f"`{st.target} <- ...` updates a state, but `{st.target}` is "
                                    f"not declared", st.target_span,
                                    help=did_you_mean(st.target, m.states) or
                                    f"declare it first, e.g. `state {st.target}[m, 1] = 0`")
            kind = m.node(n)["op"]
            what = {"param": "a param: the optimiser updates params by their gradient",
                    "input": "an input: the data give it", "const": "a const"}.get(
                kind, f"computed by the model (`{st.target} = ...`)")
            raise GdslNameError(f"`{st.target}` is not a state, it is {what}", st.target_span,
                                notes=[f"`{st.target}` is defined at {self.defined_at[st.target]}"],
                                help="`<-` updates a state declared with `state NAME[shape] = value`")
        if st.target in self.updated:
            raise GdslNameError(f"state `{st.target}` is updated twice", st.target_span,
                                notes=[f"first updated at {self.updated[st.target].span}"],
                                help="a state has one update; write it as one expression")
        self.updated[st.target] = st
        if m.mode != "train":           # evaluation updates nothing: the names are checked
            self._check_names(st.value)
            return
        n = self.expr(st.value, st.span)
        m.updates[st.target] = n
        d = m.node(n)
        if d["name"] is None and d["op"] != "literal":
            d["hint"] = f"{st.target}_new"      # (its name in emitted code)

    # -- declarations --------------------------------------------------------------------------
    def _init(self, init: S.Init):
        if init.name not in INITS:
            raise GdslTypeError(f"unknown initialiser `{init.name}`", init.span,
                                help=did_you_mean(init.name, INITS)
                                or "initialisers: " + ", ".join(INITS))
        params = INITS[init.name][0]
        if len(init.args) > len(params):
            raise GdslTypeError(f"`{init.name}` takes at most {len(params)} argument(s) "
                                f"({', '.join(params) or 'none'}), got {len(init.args)}", init.span)
        if init.name in ("normal",) and len(init.args) == 2 and init.args[1] < 0:
            raise GdslTypeError("the standard deviation of `normal` must not be negative", init.span)
        if init.name == "uniform":
            low, high = tuple(init.args) + INITS["uniform"][1][len(init.args):]
            if low > high:
                raise GdslTypeError(f"`uniform(low, high)` needs low <= high, got low = {low:g} "
                                    f"and high = {high:g}", init.span,
                                    help=None if len(init.args) == 2 else
                                    "high defaults to 0.01: give both, e.g. uniform(0.5, 1)")
        return (init.name, init.args)

    def _train(self, st: S.Train) -> None:
        for opt in st.options:
            kind = TRAIN_OPTIONS.get(opt.name)
            if kind is None:
                raise GdslNameError(f"unknown training option `{opt.name}`", opt.span,
                                    help=did_you_mean(opt.name, TRAIN_OPTIONS)
                                    or "options: " + ", ".join(TRAIN_OPTIONS))
            value = opt.value
            if kind is bool:
                if value not in ("true", "false", 0, 1):
                    raise GdslTypeError(f"training option `{opt.name}` takes true or false",
                                        opt.span)
                value = value in ("true", 1)
            elif kind is str and not isinstance(value, str) or kind is not str and isinstance(value, str):
                raise GdslTypeError(f"training option `{opt.name}` takes a "
                                    f"{'word' if kind is str else 'number'}", opt.span)
            if kind is int:
                if value != int(value):
                    raise GdslTypeError(f"training option `{opt.name}` takes an integer", opt.span)
                value = int(value)
            if opt.name == "label":
                self.label_option = opt
            self.train[opt.name] = value

    def _dim(self, st: S.DimDecl) -> None:
        if st.name in self.dims:
            raise GdslNameError(f"dimension `{st.name}` is already declared", st.name_span,
                                notes=[f"first declared at {self.dims[st.name].span}"])
        v = st.value
        if v != int(v) or v < 1 or v >= 2**63:
            raise GdslTypeError(f"the size of dimension `{st.name}` must be a positive whole "
                                f"number, not {v:g}", st.value_span, help=f"e.g. `dim {st.name} = 100`")
        self.dims[st.name] = st
        self.train[DIM_PREFIX + st.name] = int(v)

    def _metric(self, st: S.Metric) -> None:
        if self.metric_stmt is not None:
            raise GdslNameError("the metrics are named twice", st.span,
                                notes=[f"first named at {self.metric_stmt.span}"],
                                help="name them all in one statement: `metric rmse, r2`")
        self._check_metrics(st.names)
        self.metric_stmt = st
        self.train["metric"] = ",".join(dict.fromkeys(n.id for n in st.names))

    @staticmethod
    def _check_metrics(names) -> None:
        for n in names:
            if n.id not in METRICS:
                raise GdslNameError(f"unknown metric `{n.id}`", n.span,
                                    help=did_you_mean(n.id, METRICS)
                                    or "metrics: " + ", ".join(METRICS))

    def _check_dims_and_label(self) -> None:
        """A `dim` sizes a dimension some declaration uses; `train label=` names an input."""
        m = self.m
        used = {d for n in [*m.inputs.values(), *m.params.values(), *m.states.values()]
                for d in m.node(n)["shape"] or () if isinstance(d, str)}
        for name, st in self.dims.items():
            if name not in used:
                raise GdslNameError(f"dimension `{name}` is declared, but no input or param has it",
                                    st.name_span, help=did_you_mean(name, used)
                                    or f"use it in a shape, e.g. `param W[{name}, d]`")
        opt = self.label_option
        if opt is not None and opt.value not in m.inputs:
            raise GdslNameError(f"`train label={opt.value}`: the model has no input "
                                f"`{opt.value}`", opt.span,
                                help=did_you_mean(str(opt.value), m.inputs)
                                or "inputs: " + (", ".join(m.inputs) or "none"))

    def _choose_wrt(self) -> None:
        m = self.m
        if self.wrt is not None:
            for w in self.wrt:
                self._check_wrt(w)
            m.wrt = list(self.wrt)
        elif m.params:
            m.wrt = list(m.params)
        else:   # no params declared: every input that is not a label
            m.wrt = [name for name in m.inputs if name not in m.labels]

    def _check_wrt(self, w: str) -> None:
        """A name to differentiate with respect to: a param, an input or a const that is not
        used as class labels (a label is an index, not a number to move by a small step)."""
        m = self.m
        choices = [k for k in [*m.params, *m.inputs, *m.consts] if k not in m.labels]
        help = "choose among " + (", ".join(f"`{k}`" for k in choices) or "none")
        if w not in m.names:
            raise GdslNameError(f"cannot differentiate with respect to `{w}`: the model defines "
                                f"no such name", help=did_you_mean(w, choices) or help)
        d = m.node(m.names[w])
        if w in m.labels:
            raise GdslTypeError(
                f"cannot differentiate with respect to `{w}`: it is used as class labels "
                f"(by {self.label_use[w]}), which are not differentiable", d["span"], help=help)
        if d["op"] == "state":
            raise GdslTypeError(
                f"cannot differentiate with respect to `{w}`: it is a state, which training "
                f"updates by its rule (`{w} <- ...`), not by its gradient", d["span"],
                help=help)
        if d["op"] not in GIVEN:
            raise GdslTypeError(
                f"cannot differentiate with respect to `{w}`: it is computed by the model, "
                f"not given to it", d["span"],
                help="differentiate with respect to what goes in (params, inputs or consts): "
                + help)


def build(program: S.Program, model: Model, wrt: list[str] | None = None,
          fold_loops: bool = False, mode: str = "train") -> dict:
    """Resolve the program's names into the model's graph; returns the `train` line's settings.
    ``fold_loops``: each loop's body once, for a symbolic step (see the module's docstring).
    ``mode``: "train" (`a if training else b` is a, the states' updates are built) or "eval"
    (b, no updates)."""
    model.folded = fold_loops
    resolver = _Resolver(program, model, wrt, mode)
    resolver.run()
    return resolver.train

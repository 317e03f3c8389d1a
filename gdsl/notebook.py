"""gdsl in Jupyter and IPython: `%load_ext gdsl`, then

    %%gdsl net
    input x[d, n]
    param W[C, d]
    J = sum(square(W @ x))

compiles the cell and binds the model to `net` in the notebook. A mistake in the cell is
shown as on the command line, the message with its caret and no Python traceback (set
GDSL_DEBUG=1 for one). `net` alone displays the model's graph (its `_repr_svg_`), and

    %gdsl_explain net                 # or: gdsl.notebook.explain(net)

displays its forward and backward pass in the lecture's notation as Markdown
(`model.explain(format="markdown")`). Options of the cell magic: `--wrt W,b` (what to
differentiate, default the params) and `-O0` (no optimiser), as for `gdsl compile`.
"""

from __future__ import annotations

import keyword
import os

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import Markdown

from .errors import GdslError
from .runtime import CompiledModel, compile


def explain(model: CompiledModel, jacobians: bool = False) -> Markdown:
    """The model's forward and backward pass as Markdown that Jupyter renders
    (``model.explain(format="markdown")``); ``jacobians=True`` adds the explicit check."""
    return Markdown(model.explain(format="markdown", jacobians=jacobians))


@magics_class
class GdslMagics(Magics):
    """`%%gdsl NAME` and `%gdsl_explain NAME`."""

    @magic_arguments()
    @argument("name", help="the name the compiled model is bound to in the notebook")
    @argument("--wrt", metavar="NAMES",
              help="comma-separated names to differentiate with respect to (default: the params)")
    @argument("-O0", dest="optimize", action="store_false", help="turn the optimiser off")
    @cell_magic
    def gdsl(self, line: str, cell: str) -> None:
        """Compile the cell as a gdsl model and bind it to NAME."""
        args = parse_argstring(self.gdsl, line)
        name = _variable(args.name)
        wrt = [w.strip() for w in args.wrt.split(",") if w.strip()] if args.wrt else None
        try:
            model = compile(cell, wrt, filename=f"<cell {name}>", optimize=args.optimize)
        except GdslError as e:
            raise _without_traceback(e) from None
        self.shell.user_ns[name] = model

    @magic_arguments()
    @argument("name", help="a model compiled with %%gdsl (or any gdsl.CompiledModel)")
    @argument("--jacobians", action="store_true",
              help="add the explicit-Jacobian check for one example")
    @line_magic
    def gdsl_explain(self, line: str) -> Markdown:
        """Display a model's forward and backward pass as Markdown."""
        args = parse_argstring(self.gdsl_explain, line)
        model = self.shell.user_ns.get(args.name)
        if not isinstance(model, CompiledModel):
            raise UsageError(f"`{args.name}` is not a compiled gdsl model: compile one with "
                             f"`%%gdsl {args.name}`")
        try:
            return explain(model, jacobians=args.jacobians)
        except GdslError as e:
            raise _without_traceback(e) from None


def _variable(name: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"%%gdsl {name}: the model's name must be a Python name, e.g. %%gdsl net")
    return name


def _without_traceback(e: GdslError) -> GdslError:
    """IPython shows an exception that has a `_render_traceback_` method as the lines that
    method returns (its documented hook for custom tracebacks): here the message with its
    caret, no Python frames. The cell still fails, so "Run all" stops at it."""
    if os.environ.get("GDSL_DEBUG", "") in ("", "0"):
        e._render_traceback_ = lambda: e.render().split("\n")
    return e


def load_ipython_extension(ipython) -> None:
    """`%load_ext gdsl` (or gdsl.notebook): register the magics."""
    ipython.register_magics(GdslMagics)


def unload_ipython_extension(ipython) -> None:
    """`%unload_ext gdsl`: remove the magics again."""
    magics = ipython.magics_manager.magics
    magics["cell"].pop("gdsl", None)
    magics["line"].pop("gdsl_explain", None)

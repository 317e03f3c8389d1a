"""gdsl: a small language for computational graphs, compiled to forward and backward NumPy code.

    >>> import gdsl
    >>> m = gdsl.compile("z = W @ x; s = z + b; J = xent(softmax(s), y) + lam*sqnorm(W)")
    >>> loss, grads = m.value_and_grad(W=W, x=x, b=b, y=y, lam=0.01)
"""

from .errors import (
    GdslDataError,
    GdslDivergedError,
    GdslError,
    GdslLimitError,
    GdslNameError,
    GdslRuntimeError,
    GdslShapeError,
    GdslSyntaxError,
    GdslTypeError,
    GdslUsageError,
    GdslValueError,
)
from .runtime import CompiledModel, compile, compile_file
from .version import __version__ as __version__


def __getattr__(name: str):
    """gdsl.train and gdsl.check, the tools `gdsl run` and `gdsl check` use, imported when
    first asked for (importing gdsl alone loads only the compiler)."""
    if name == "train":
        from .tools.train import train
        return train
    if name == "check":
        from .tools.check import check
        return check
    raise AttributeError(f"module 'gdsl' has no attribute {name!r}")


def load_ipython_extension(ipython) -> None:
    """`%load_ext gdsl` in IPython or Jupyter: the `%%gdsl NAME` cell magic (gdsl.notebook,
    imported only then: importing gdsl does not load IPython)."""
    from .notebook import load_ipython_extension as load
    load(ipython)


def unload_ipython_extension(ipython) -> None:
    """`%unload_ext gdsl`."""
    from .notebook import unload_ipython_extension as unload
    unload(ipython)


__all__ = [
                     "CompiledModel",
                     "GdslDataError",
                     "GdslDivergedError",
                     "GdslError",
                     "GdslLimitError",
                     "GdslNameError",
                     "GdslRuntimeError",
                     "GdslShapeError",
                     "GdslSyntaxError",
                     "GdslTypeError",
                     "GdslUsageError",
                     "GdslValueError",
                     "check",
                     "compile",
                     "compile_file",
                     "train",
]

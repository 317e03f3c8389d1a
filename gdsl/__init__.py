"""gdsl: a small language for computational graphs, compiled to forward and backward NumPy code.

    >>> import gdsl
    >>> m = gdsl.compile("z = W @ x; s = z + b; J = xent(softmax(s), y) + lam*sqnorm(W)")
    >>> loss, grads = m.value_and_grad(W=W, x=x, b=b, y=y, lam=0.01)
"""

from .compiler import CompiledModel, compile, compile_file
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

__version__ = "0.1.0"

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
                     "compile",
                     "compile_file",
]

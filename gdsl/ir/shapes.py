"""Shapes with symbolic dimensions: how they meet (the op table's shape rules use these), and
how the arrays of a call bind them (Binding). Inference is a pass: gdsl.passes.infer.

A shape is a tuple of dims, each an int or a symbol such as ``"n"``, or
None when not known until call time (names that were never declared).
Symbols bind to ints as shapes meet (``W[10, d] @ x[d, n]`` keeps d; ``[C, n] +
[10, n]`` binds C = 10); two different symbols must not meet, since a user
who wrote ``d`` and ``e`` meant two sizes.
"""

from __future__ import annotations

from typing import NamedTuple

Dim = int | str
Shape = tuple[Dim, ...] | None


class Mismatch(Exception):
    """Raised by shape rules; the inference pass turns it into a GdslShapeError at the node."""


def show_shape(shape: Shape) -> str:
    if shape is None:
        return "?"
    return "[" + ", ".join(str(d) for d in shape) + "]"


class Dims:
    """Bindings of symbolic dims to sizes, found while shapes meet."""

    def __init__(self, bound: dict[str, int] | None = None):
        self.bound: dict[str, int] = dict(bound or {})

    def resolve(self, d: Dim) -> Dim:
        return self.bound.get(d, d) if isinstance(d, str) else d

    def shape(self, s: Shape) -> Shape:
        if s is None or not self.bound:
            return s
        bound = self.bound
        return tuple(bound.get(d, d) if isinstance(d, str) else d for d in s)

    def equal(self, a: Dim, b: Dim, what: str) -> Dim:
        a, b = self.resolve(a), self.resolve(b)
        if a == b:
            return a
        if isinstance(a, str) and isinstance(b, int):
            self.bound[a] = b
            return b
        if isinstance(b, str) and isinstance(a, int):
            self.bound[b] = a
            return a
        raise Mismatch(f"{what}: {a} and {b} differ")

    def broadcast(self, a: Dim, b: Dim) -> Dim:
        a, b = self.resolve(a), self.resolve(b)
        if a == b or b == 1:
            return a
        if a == 1:
            return b
        return self.equal(a, b, "dimensions do not broadcast")


def broadcast(dims: Dims, *shapes: Shape) -> Shape:
    if None in shapes:
        return None
    if shapes and shapes.count(shapes[0]) == len(shapes):     # the common case: x + y, x * x
        return dims.shape(shapes[0]) if dims.bound else tuple(shapes[0])
    shapes = [s for s in shapes if s]       # a scalar broadcasts against anything
    if not shapes:
        return ()
    if shapes.count(shapes[0]) == len(shapes):      # nothing to broadcast: x * 0.5
        return dims.shape(tuple(shapes[0]))
    out: list[Dim] = []
    for s in shapes:
        s = tuple(s)
        if len(s) > len(out):
            out = list(s[: len(s) - len(out)]) + out
        k = len(s)
        for i in range(1, k + 1):
            out[-i] = dims.broadcast(out[-i], s[-i])
    return tuple(dims.resolve(d) for d in out)


def matmul(dims: Dims, a: Shape, b: Shape) -> Shape:
    if a is None or b is None:
        return None
    if not (1 <= len(a) <= 2 and 1 <= len(b) <= 2):
        raise Mismatch(f"@ takes vectors and matrices, not {len(a)}-D and {len(b)}-D values")
    dims.equal(a[-1], b[0], "inner dimensions")
    out = tuple(a[:-1]) + tuple(b[1:])
    return tuple(dims.resolve(d) for d in out)


def normalize_axis(axis: int | None, ndim: int | None) -> int | None:
    if axis is None or ndim is None:
        return axis
    if not -ndim <= axis < ndim:
        raise Mismatch(f"axis {axis} is out of range for a {ndim}-D value"
                       f" (valid: {-ndim}..{ndim - 1} or None)")
    return axis % ndim


def reduce(shape: Shape, axis, keepdims: bool) -> Shape:
    """Shape after reducing over ``axis`` (None, an int, or a tuple of ints)."""
    if shape is None:
        return None
    if axis is None:
        return (1,) * len(shape) if keepdims else ()
    axes = {normalize_axis(a, len(shape)) for a in (axis if isinstance(axis, tuple) else (axis,))}
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def labels_like(dims: Dims, scores: Shape, labels: Shape) -> None:
    """Labels go with scores [C, n...] as one-hot [C, n...] or as integers [n...] / [1, n...]."""
    if scores is None or labels is None:
        return
    if len(scores) == 0:
        raise Mismatch("class scores must have a class axis (axis 0), not be a scalar")
    if len(labels) == len(scores):
        if len(labels) >= 2 and dims.resolve(labels[0]) == 1 and dims.resolve(scores[0]) != 1:
            labels = labels[1:]      # integer labels as a row [1, n]
        else:
            for a, b in zip(scores, labels):
                dims.equal(a, b, "labels and scores")
            return
    if len(labels) == len(scores) - 1:
        for a, b in zip(scores[1:], labels):
            dims.equal(a, b, "labels and examples")
        return
    raise Mismatch(f"labels of shape {show_shape(labels)} do not fit scores of shape "
                   f"{show_shape(scores)}")


# -- binding dims at call time ---------------------------------------------------------------------

class Misfit(NamedTuple):
    """Where an array does not fit its declared shape."""

    axis: int | None          # None: the ranks differ
    want: Dim                 # the declared dim there (a size, or a symbol)
    got: int                  # the array's size there
    bound: int | None = None  # what the symbol was bound to before
    by: str | None = None     # and by whom


class Binding:
    """Sizes of symbolic dims bound from the arrays a call (or a data set) gives, each with
    who gave it, for the messages. The one call-time binder: CompiledModel checks every call's
    arrays with it, and gdsl run its data and params."""

    def __init__(self, sizes: dict | None = None, by: str = "the model"):
        self.sizes: dict[str, int] = dict(sizes or {})
        self.by: dict[str, str] = dict.fromkeys(self.sizes, by)

    def bind(self, declared: tuple, shape: tuple, who: str) -> Misfit | None:
        """Bind the symbols of ``declared`` to the sizes of ``shape``, given by ``who``; the
        first place they do not fit, or None."""
        if len(declared) != len(shape):
            return Misfit(None, len(declared), len(shape))
        for i, (want, got) in enumerate(zip(declared, shape)):
            if isinstance(want, int):
                if want != got:
                    return Misfit(i, want, got)
            elif want in self.sizes:
                if self.sizes[want] != got:
                    return Misfit(i, want, got, self.sizes[want], self.by[want])
            else:
                self.sizes[want] = got
                self.by[want] = who
        return None


def label_shape(declared: tuple, shape: tuple) -> tuple:
    """The declared shape of class labels as an array gives them: integer labels [n] or a row
    [1, n] for labels declared one-hot [C, n]."""
    if len(shape) == len(declared) - 1:
        return declared[1:]
    if len(shape) == len(declared) >= 2 and shape[0] == 1 and declared[0] != 1:
        return (1, *declared[1:])
    return declared

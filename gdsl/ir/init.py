"""Param initialisers: the `~ normal(0, 0.01)` part of a param declaration."""

from __future__ import annotations

import math

import numpy as np

# name -> (parameter names, defaults, what it draws)
INITS = {
    "normal": (("mean", "std"), (0.0, 0.01), "N(mean, std²)"),
    "uniform": (("low", "high"), (-0.01, 0.01), "U(low, high)"),
    "zeros": ((), (), "0"),
    "ones": ((), (), "1"),
    "constant": (("value",), (0.0,), "value"),
    "xavier": ((), (), "N(0, 1/fan_in) (Xavier/Glorot, as in the lecture's assignments)"),
    "he": ((), (), "N(0, 2/fan_in) (He, for ReLU layers)"),
}
DEFAULT_INIT = ("normal", (0.0, 0.01))


def draw(init: tuple[str, tuple[float, ...]], shape: tuple[int, ...], rng: np.random.Generator,
         dtype=np.float64) -> np.ndarray:
    """Draw one param's initial value; fan_in is the size of every axis but the first (W is
    out x in, kernels K are filters x channels x height x width), of the one axis of a vector."""
    name, args = init
    _, defaults, _ = INITS[name]
    args = tuple(args) + tuple(defaults[len(args):])
    fan_in = math.prod(shape[1:]) if len(shape) >= 2 else shape[-1] if shape else 1
    if name == "normal":
        out = rng.normal(args[0], args[1], size=shape)
    elif name == "uniform":
        out = rng.uniform(args[0], args[1], size=shape)
    elif name == "zeros":
        out = np.zeros(shape)
    elif name == "ones":
        out = np.ones(shape)
    elif name == "constant":
        out = np.full(shape, args[0])
    elif name == "xavier":
        out = rng.normal(0.0, 1.0 / math.sqrt(fan_in), size=shape)
    else:  # he
        out = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)
    return np.asarray(out, dtype=dtype)

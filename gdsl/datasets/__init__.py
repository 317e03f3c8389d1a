"""Data that ships inside gdsl, read with NumPy alone (no download, no scikit-learn).

    digits.npz   the 8x8 handwritten digits: X uint8 [1797, 64] (pixels 0..16, row by row),
                 y uint8 [1797] (the digit). Source and license: README.md beside it.
"""

from __future__ import annotations

from importlib import resources

import numpy as np


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits as scikit-learn's ``load_digits()`` gives them: X float64 [1797, 64] and
    y int64 [1797], the same values in the same order."""
    with resources.files(__name__).joinpath("digits.npz").open("rb") as f, \
            np.load(f, allow_pickle=False) as z:
        return z["X"].astype(np.float64), z["y"].astype(np.int64)

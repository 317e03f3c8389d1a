"""Bad data files for `gdsl run`: each one clear error naming the array, exit 1, no traceback."""

from __future__ import annotations

import numpy as np
import pytest
from fuzzkit import record

from gdsl.cli import main

SOFTMAX = "models/linear_softmax.gdsl"
rng = np.random.default_rng(0)
X = rng.normal(size=(8, 20))            # d = 8 features, n = 20 examples as columns
Y = np.arange(20) % 3


def with_x(value):
    return {"x": value, "y": Y}


BAD = {
    "nan in x": (with_x(np.where(np.eye(8, 20) > 0, np.nan, X)), "`x`"),
    "inf in x": (with_x(np.where(np.eye(8, 20) > 0, np.inf, X)), "`x`"),
    "complex x": (with_x(X + 1j), "`x`"),
    "string x": (with_x(X.astype(str)), "`x`"),
    "3-D x": (with_x(X[None]), "`x`"),
    "empty x": ({"x": np.zeros((8, 0)), "y": np.zeros(0, dtype=int)}, "0 examples"),
    "examples disagree": ({"x": X, "y": Y[:7]}, "number of examples"),
    "negative label": ({"x": X, "y": np.where(Y == 0, -1, Y)}, "`y`"),
    "fractional label": ({"x": X, "y": Y + 0.5}, "`y`"),
    "nan label": ({"x": X, "y": np.where(Y == 0, np.nan, Y)}, "`y`"),
    "missing y": ({"x": X}, "`y`"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_data_file(case, tmp_path, capsys, request):
    arrays, names = BAD[case]
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    code = main(["run", SOFTMAX, "--data", str(path), "--epochs", "1", "-q"])
    out, err = capsys.readouterr()
    assert code == 1, (case, out, err)
    assert "Traceback" not in err and len([ln for ln in err.splitlines() if "error:" in ln]) == 1
    assert names in err, (case, err)
    record(request.config, "bad data files tried", 1)


def test_a_pickled_object_array_is_never_unpickled(tmp_path, capsys):
    path = tmp_path / "data.npz"
    np.savez(path, x=np.array([{"evil": 1}] * 20, dtype=object), y=Y)
    code = main(["run", SOFTMAX, "--data", str(path), "--epochs", "1", "-q"])
    _, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err

"""Saving is atomic: a process killed in the middle of writing leaves the old file whole."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gdsl.tools.train import load_params, save_params

# The child saves a large params file and SIGKILLs itself in the middle of the write: after half
# of the bytes (inside f.write) or after all of them but before the rename (at fsync).
CHILD = """
import os, signal, sys
import numpy as np
from gdsl.tools.train import save_params
where = sys.argv[2]
real_write, real_fsync = os.write, os.fsync

class Dying:
    def __init__(self, f): self.f = f
    def write(self, data):
        if where == "write":
            self.f.write(data[: len(data) // 2]); self.f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.f.write(data)
    def __getattr__(self, k): return getattr(self.f, k)
    def __enter__(self): return self
    def __exit__(self, *a): return self.f.__exit__(*a)

import gdsl.files as c
real_fdopen = c.os.fdopen
c.os.fdopen = lambda *a, **k: Dying(real_fdopen(*a, **k))
if where == "fsync":
    c.os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
save_params(sys.argv[1], {"W": np.arange(2_000_000, dtype=float)})
"""


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_killed_mid_write_leaves_the_old_params(tmp_path, where):
    path = tmp_path / "params.npz"
    old = {"W": np.ones((3, 2)), "b": np.zeros((3, 1))}
    save_params(path, old)
    before = path.read_bytes()
    p = subprocess.run([sys.executable, "-c", CHILD, str(path), where], capture_output=True,
                       check=False, timeout=120)
    assert p.returncode == -9, p.stderr                  # it really was killed mid-write
    assert path.read_bytes() == before                   # the old file, whole
    np.testing.assert_array_equal(load_params(path)["W"], old["W"])
    leftovers = [f.name for f in tmp_path.iterdir() if f.name != "params.npz"]
    assert all(name.startswith(".params.npz.") and name.endswith(".tmp") for name in leftovers)

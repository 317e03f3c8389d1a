"""`gdsl stats`: the cost model of one step."""

from __future__ import annotations

import subprocess

from helpers import GDSL

import gdsl
from gdsl.views.cost import cost


def test_flops_kept_bytes_and_pruned_gradients():
    m = gdsl.compile_file("models/linear_softmax.gdsl")
    C, d, n = 10, 3072, 100
    c = cost(m, {"C": C, "d": d, "n": n})
    matmuls = [r.flops for r in c.rows if r.op == "matmul"]
    assert matmuls == [2 * C * d * n, 2 * C * n * d]       # W @ x forward, g_s @ x.T backward
    assert sorted(c.pruned) == ["lam", "x", "y"]
    # the backward pass keeps s, p and the one-hot labels (C x n each) and nothing bigger
    assert c.kept_bytes == 3 * C * n * 8
    assert cost(m, {"C": C, "d": d, "n": n}, itemsize=4).kept_bytes == 3 * C * n * 4


def test_stats_command():
    r = subprocess.run([*GDSL, "stats", "models/mlp2.gdsl", "--dims", "n=100,d=3072,C=10,m=50"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0
    assert "total: forward" in r.stdout and "∂J/∂x" in r.stdout
    r = subprocess.run([*GDSL, "stats", "models/mlp2.gdsl", "--dims", "n=100"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 2 and "give a size for dim" in r.stderr


def test_stats_sizes_a_dim_by_its_declaration_and_refuses_bad_dims():
    def stats(dims):
        return subprocess.run([*GDSL, "stats", "models/mlp_bn.gdsl", "--dims", dims],
                              capture_output=True, text=True, check=False)
    # `dim m = 100` in the model: 100 hidden units, as `gdsl run` takes it
    declared, given = stats("n=10,d=64,C=10"), stats("n=10,d=64,C=10,m=100")
    assert declared.returncode == 0, declared.stderr
    assert declared.stdout == given.stdout
    assert stats("n=10,d=64,C=10,m=7").stdout != declared.stdout
    for bad, says in [("n=0,d=64,C=10", "positive sizes"), ("n=10,d=64,C=10,zz=3", "`zz`")]:
        r = stats(bad)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr

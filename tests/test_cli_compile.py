"""`gdsl compile`: exit codes, messages with a caret, no tracebacks, files written whole."""

from __future__ import annotations

import subprocess

from helpers import GDSL


def gdsl(*args, env=None, cwd=None):
    return subprocess.run([*GDSL, *args], capture_output=True, text=True, env=env, cwd=cwd, check=False)


def test_compile_to_stdout_and_file(tmp_path):
    r = gdsl("compile", "models/linear_softmax.gdsl")
    assert r.returncode == 0 and "def value_and_grad(*, x, y, W, b, lam=0.01):" in r.stdout
    out = tmp_path / "m.py"
    r = gdsl("compile", "models/linear_softmax.gdsl", "-o", str(out))
    assert r.returncode == 0 and out.read_text() == gdsl("compile", "models/linear_softmax.gdsl").stdout


def test_target_array_api_is_spelt_either_way():
    # Python takes target="array_api" or "array-api"; so does the command line
    dash = gdsl("compile", "models/mlp2.gdsl", "--target", "array-api")
    under = gdsl("compile", "models/mlp2.gdsl", "--target", "array_api")
    assert under.returncode == 0, under.stderr
    assert under.stdout == dash.stdout and "array_namespace" in under.stdout


def test_user_error_exits_1_with_a_caret_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.gdsl"
    bad.write_text("input x[d, n]\nparam W[C, d]\nz = W @ q\n")
    r = gdsl("compile", str(bad))
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0] == f"{bad}:3:9: error: undefined name `q`"
    assert lines[2] == "3 | z = W @ q" and lines[3] == "  |         ^"
    assert "Traceback" not in r.stderr


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.gdsl"
    bad.write_text("z = (\n")
    r = gdsl("--debug", "compile", str(bad))
    assert r.returncode == 1 and "Traceback" in r.stderr
    import os
    r = gdsl("compile", str(bad), env={**os.environ, "GDSL_DEBUG": "1"})
    assert r.returncode == 1 and "Traceback" in r.stderr


def test_usage_errors_exit_2():
    assert gdsl("compile", "no/such/file.gdsl").returncode == 2
    assert gdsl("compile", "models/mlp2.gdsl", "--no-such-flag").returncode == 2
    assert gdsl("compile", "models/mlp2.gdsl", "--dump-after", "nonsense").returncode == 2
    r = gdsl()
    assert r.returncode == 2


def test_a_failed_compile_leaves_the_old_output_alone(tmp_path):
    out = tmp_path / "m.py"
    out.write_text("precious\n")
    bad = tmp_path / "bad.gdsl"
    bad.write_text("J = softmx(x)\n")
    assert gdsl("compile", str(bad), "-o", str(out)).returncode == 1
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.gdsl", "m.py"]


def test_wrt_and_O0(tmp_path):
    r = gdsl("compile", "models/oneliner.gdsl", "--wrt", "W,b")
    assert r.returncode == 0 and "return (J, {'W': g_W, 'b': " in r.stdout
    r = gdsl("compile", "models/linear_softmax.gdsl", "-O0")
    assert r.returncode == 0 and "_xent_logits" not in r.stdout and "_xent(" in r.stdout
    r = gdsl("compile", "models/linear_softmax.gdsl", "--wrt", "z")
    assert r.returncode == 1 and "cannot differentiate with respect to `z`" in r.stderr


def test_dump_after_prints_the_ir():
    r = gdsl("compile", "models/linear_softmax.gdsl", "--dump-after", "shapes")
    assert r.returncode == 0
    assert "z = matmul(W, x) : [C, n]" in r.stderr and "s = add(z, b) : [C, n]" in r.stderr
    r = gdsl("compile", "models/linear_softmax.gdsl", "--dump-after", "grad")
    assert "(grad of s)" in r.stderr and "grads W=g_W, b=g_b" in r.stderr


def test_a_command_imports_only_its_own_module(tmp_path):
    """`gdsl compile` does not pay for importing training, checking or drawing."""
    import sys
    code = ("import sys; from gdsl.cli import main; rc = main(sys.argv[1:]); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('gdsl.')))); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, "compile", "models/mlp2.gdsl", "-o",
                        str(tmp_path / "m.py")], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    loaded = set(r.stdout.split())
    assert "gdsl.cli.compile" in loaded and "gdsl.backend.numpy_target" in loaded
    assert not loaded & {"gdsl.cli.run", "gdsl.tools.train", "gdsl.tools.data", "gdsl.tools.check", "gdsl.views.draw",
                         "gdsl.views.explain", "gdsl.views.cost"}


def test_help_and_a_mistyped_command_list_every_command():
    for args in (["--help"], ["--debug", "compil", "m.gdsl"]):
        r = gdsl(*args)
        text = r.stdout + r.stderr
        assert r.returncode == (0 if args == ["--help"] else 2)
        for name in ("compile", "run", "check", "graph", "explain", "stats"):
            assert name in text, (args, text)

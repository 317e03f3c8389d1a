"""CLI hygiene for `gdsl compile`: one clear message per mistake, the right exit status, no traceback.

For every tests/bad/NAME.gdsl: a user error exits 1 and prints NAME.expected as its first line,
then the source line with a caret under the place; nothing on standard output; no "Traceback"
unless GDSL_DEBUG=1 (or --debug) asks for one. Usage errors exit 2.

Starting `gdsl` costs about a second (NumPy, NetworkX), so every bad model is run through the
CLI's entry point gdsl.cli.main inside one subprocess, and a sample of them, the usage errors
and the debug switches through the real `gdsl` command, one process each.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fuzzkit import record
from helpers import GDSL

ROOT = Path(__file__).resolve().parent.parent
BAD = sorted((ROOT / "tests" / "bad").glob("*.gdsl"))
NO_PLACE = {"not_utf8"}          # a file that is not text has no line to show
SAMPLE = ["undefined", "syntax_missing_operator", "shape_mismatch", "not_utf8"]

DRIVER = """
import contextlib, io, json, os, sys
from gdsl.cli import main
results = []
for path, debug in json.loads(sys.argv[1]):
    os.environ.pop("GDSL_DEBUG", None)
    if debug:
        os.environ["GDSL_DEBUG"] = "1"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["compile", path])
        except SystemExit as e:
            code = e.code
    results.append((code, out.getvalue(), err.getvalue()))
print(json.dumps(results))
"""


def run(*args, debug=False):
    """The real `gdsl` command."""
    env = {k: v for k, v in os.environ.items() if k != "GDSL_DEBUG"}
    if debug:
        env["GDSL_DEBUG"] = "1"
    return subprocess.run([*GDSL, *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          check=False, timeout=120)


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture(scope="module")
def results():
    """stem -> (result, result with GDSL_DEBUG=1), all from one subprocess."""
    jobs = [(str(p.relative_to(ROOT)), debug) for debug in (False, True) for p in BAD]
    env = {k: v for k, v in os.environ.items() if k != "GDSL_DEBUG"}
    r = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(jobs)], capture_output=True,
                       text=True, cwd=ROOT, env=env, check=False, timeout=300)
    assert r.returncode == 0, r.stderr
    out = [Result(*x) for x in json.loads(r.stdout)]
    n = len(BAD)
    return {p.stem: (plain, debug) for p, plain, debug in zip(BAD, out[:n], out[n:])}


@pytest.fixture(scope="module")
def sample():
    """The same models through the real command, in parallel."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda stem: run("compile", f"tests/bad/{stem}.gdsl"), SAMPLE))
    return dict(zip(SAMPLE, got))


def test_there_are_bad_models(request):
    assert len(BAD) >= 20
    for p in BAD:
        assert p.with_suffix(".expected").exists(), f"{p.name} has no .expected beside it"
    record(request.config, "bad models checked through the CLI", len(BAD))


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_model_message(path, results):
    r, debug = results[path.stem]
    expected = path.with_suffix(".expected").read_text(encoding="utf-8").rstrip("\n")
    assert r.returncode == 1, r.stderr
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    lines = r.stderr.rstrip("\n").split("\n")
    assert lines[0] == expected
    assert all(c == "\n" or c.isprintable() for c in r.stderr), repr(r.stderr)
    if path.stem not in NO_PLACE:
        m = re.match(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): error: ", lines[0])
        assert m and m["file"] == str(path.relative_to(ROOT))
        line, col = int(m["line"]), int(m["col"])
        source = path.read_text(encoding="utf-8").split("\n")[line - 1].rstrip("\r")
        width = len(str(line))
        assert lines[1] == " " * width + " |"
        shown = lines[2]
        assert shown.startswith(f"{line} | ")
        assert len(shown) == len(f"{line} | ") + len(source.expandtabs(1))
        caret = lines[3]
        assert caret.startswith(" " * width + " | ")
        marks = caret[width + 3:]
        assert marks.index("^") == col - 1 and set(marks.strip()) == {"^"}
    # the same error with GDSL_DEBUG=1: the traceback, then the same message
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and expected in debug.stderr


@pytest.mark.parametrize("stem", SAMPLE)
def test_the_real_command_exits_1_with_the_same_message(stem, sample, results):
    r = sample[stem]
    assert r.returncode == 1 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr == results[stem][0].stderr


def test_a_model_without_a_subcommand_is_a_usage_error():
    r = run("tests/bad/undefined.gdsl")
    assert r.returncode == 2 and "Traceback" not in r.stderr


USAGE = [
    ("compile", "tests/bad/no_such_model.gdsl"),
    ("compile", "tests/bad"),                                    # a directory
    ("compile", "models/mlp2.gdsl", "--no-such-flag"),
    ("compile", "models/mlp2.gdsl", "--dump-after", "nonsense"),
    ("compile", "models/mlp2.gdsl", "-O", "7"),
    ("compile", "models/mlp2.gdsl", "--wrt", ","),
    ("compile",),
    ("frobnicate", "models/mlp2.gdsl"),
    (),
]


@pytest.mark.parametrize("args", USAGE, ids=[" ".join(a) or "(nothing)" for a in USAGE])
def test_usage_errors_exit_2(args):
    r = run(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.strip()
    assert r.stdout == ""


def test_a_bad_wrt_name_is_a_user_error():
    r = run("compile", "models/mlp2.gdsl", "--wrt", "W1,nope")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "nope" in r.stderr.split("\n")[0]


@pytest.mark.parametrize("args, debug", [
    (("--debug", "compile", "tests/bad/undefined.gdsl"), False),
    (("compile", "--debug", "tests/bad/shape_mismatch.gdsl"), False),
    (("compile", "tests/bad/syntax_missing_operator.gdsl"), True),
])
def test_debug_shows_the_traceback(args, debug):
    r = run(*args, debug=debug)
    assert r.returncode == 1 and "Traceback" in r.stderr
    assert r.stderr.rstrip("\n").split("\n")[-1].strip()      # the message still comes


def test_an_endless_file_is_a_clear_error():
    """/dev/zero is read only up to the size limit, not into a MemoryError."""
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    r = run("compile", "/dev/zero")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("/dev/zero: error: the model file is larger than the limit of")


def test_dump_after_an_optimisation_that_removes_a_differentiated_node(tmp_path):
    """x + -W -> x - W leaves the gradient of the removed -W: the IR dump still names it."""
    model = tmp_path / "m.gdsl"
    model.write_text("param W[1, n]\ninput x[C, 1]\nJ = sum(x + -W)\n")
    r = run("compile", str(model), "--dump-after", "optimise")
    assert r.returncode == 0 and "Traceback" not in r.stderr and "grads W=" in r.stderr

"""The adversarial corpus: every command on every kind of bad input a user can give.

Each case runs the real command in a fresh process and must exit 1 with one message (one
`error:` line, no Python traceback) and leave every file it was given as it was (checksums
before and after; no file added either). Exit 3, a traceback, is for gdsl's own bugs only.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import GDSL, ROOT

LECTURE = (ROOT / "models" / "linear_softmax.gdsl").read_text()
INTEGER_LABELS = "input x[d, n]\ninput y[n]\nparam W[C, d]\nparam b[C, 1]\nJ = xent(softmax(W @ x + b), y)\n"

FILES = {
    "m.gdsl": LECTURE,
    "int.gdsl": INTEGER_LABELS,
    "empty.gdsl": "",
    "comment.gdsl": "# only a comment\n\n",
    "inputs.gdsl": "input x[d, n]\ninput y[C, n]\n",
    "noparams.gdsl": "input x[d, n]\nJ = sum(x * x)\n",
    "huge.gdsl": "param V[100000, 100000]\nJ = sqnorm(V)\n",
    "long.gdsl": "J = " + " + ".join(["a"] * 9000) + " @@ b\n",
    "g.csv": "a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n0,1,1\n",
    "big12.csv": "a,b,label\n1,2,0\n3,4,1e12\n5,6,0\n7,8,1\n",
    "big30.csv": "a,b,label\n1,2,0\n3,4,1e30\n5,6,0\n7,8,1\n",
}


def _binary_files() -> dict[str, bytes]:
    out = {}
    buf = io.BytesIO()
    np.save(buf, np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 1e12], [5.0, 6.0, 1.0]]))
    out["big12.npy"] = buf.getvalue()
    buf = io.BytesIO()
    np.savez(buf, x=np.ones((2, 3)), y=np.array([0, 10**12, 1]))
    out["big12.npz"] = buf.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:             # members that are not .npy arrays
        z.writestr("x", "hello")
        z.writestr("y", "world")
    out["notnpy.npz"] = buf.getvalue()
    header = io.BytesIO()                             # a header that claims 8 TB
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**6, 10**6)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.npy", header.getvalue() + bytes(16))
        z.writestr("y.npy", header.getvalue())
    out["lying.npz"] = buf.getvalue()
    out["lying.npy"] = header.getvalue() + bytes(8)
    return out


ALL = ["compile", "run", "check", "graph", "explain", "stats"]
TRAIN = ("run", "int.gdsl", "--data")       # training the integer-label model on a file
RUN = (*TRAIN, "g.csv")
CASES = [
    # a model that defines nothing
    *[(cmd, model) for model in ("empty.gdsl", "comment.gdsl", "inputs.gdsl") for cmd in ALL],
    ("run", "noparams.gdsl", "--data", "g.csv"),
    ("compile", "long.gdsl"),
    # not differentiable, or not a name of the model
    ("compile", "m.gdsl", "--wrt", "y"),
    ("check", "m.gdsl", "--wrt", "y"),
    ("compile", "m.gdsl", "--wrt", "z"),
    ("compile", "m.gdsl", "--wrt", "nope"),
    # outputs over inputs
    ("compile", "m.gdsl", "-o", "m.gdsl"),
    ("compile", "m.gdsl", "-o", "./m.gdsl"),
    ("compile", "m.gdsl", "-o", "link.gdsl"),         # a symbolic link to m.gdsl
    ("explain", "m.gdsl", "-o", "m.gdsl"),
    ("graph", "m.gdsl", "-o", "g.csv"),
    (*RUN, "--save", "./g.csv"),
    (*RUN, "--plot", "./g.csv"),
    (*RUN, "--save", "p.npz", "--plot", "./p.npz"),
    # bad paths and formats, found before any training
    (*RUN, "--save", "nonexistent/dir/p.npz"),
    (*RUN, "--plot", "nonexistent/c.png"),
    (*RUN, "--plot", "c.jpgx"),
    (*RUN, "--save", "p.csv"),
    ("graph", "m.gdsl", "-o", "g.jpgx"),
    ("graph", "m.gdsl", "-o", "nonexistent/g.svg"),
    ("explain", "m.gdsl", "-o", "nonexistent/e.md"),
    ("compile", "m.gdsl", "-o", "nonexistent/m.py"),
    # bad settings
    (*RUN, "--seed", "-1"),
    (*RUN, "--classes", "0"),
    # huge labels and sizes: refused before anything is allocated
    (*TRAIN, "big12.csv"),
    (*TRAIN, "big30.csv"),
    (*TRAIN, "big12.npy"),
    (*TRAIN, "big12.npz"),
    (*TRAIN, "notnpy.npz"),
    (*TRAIN, "lying.npz"),
    (*TRAIN, "lying.npy"),
    ("check", "huge.gdsl"),
]


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file() and not p.is_symlink()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Every case run once in its own copy of the files (processes, two at a time)."""
    base = tmp_path_factory.mktemp("adversarial")

    def one(i, args, pre=()):
        folder = base / f"case{i}"
        folder.mkdir()
        for name, text in FILES.items():
            (folder / name).write_text(text)
        for name, data in _binary_files().items():
            (folder / name).write_bytes(data)
        (folder / "link.gdsl").symlink_to(folder / "m.gdsl")
        before = _digest(folder)
        r = subprocess.run([*pre, *args], capture_output=True, text=True, cwd=folder,
                           timeout=300, check=False,
                           env={"PATH": "/usr/bin:/bin", "GDSL_CACHE": str(base / "cache"),
                                "HOME": str(base)})
        return r, before, _digest(folder)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda ia: one(ia[0], [*GDSL, *ia[1]]), enumerate(CASES)))
        # the README's plain install: neither Graphviz's dot nor matplotlib
        # (Graphviz may be installed here, as .ci/run installs it: hide its `dot` too)
        no_renderer = ("import sys, shutil; sys.modules['matplotlib'] = None; "
                       "which = shutil.which; shutil.which = lambda c, *a, **k: "
                       "None if c == 'dot' else which(c, *a, **k); from gdsl.cli import main; "
                       "sys.exit(main(sys.argv[1:]))")
        missing = one(len(CASES), ["graph", "m.gdsl", "-o", "g.svg"],
                      pre=(sys.executable, "-c", no_renderer))
    return dict(zip(CASES, results)), missing


def _one_message(r) -> None:
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ": error: " in ln]
    assert len(errors) == 1, r.stderr


@pytest.mark.parametrize("case", CASES, ids=[" ".join(c) for c in CASES])
def test_each_bad_input_exits_1_with_one_message_and_changes_no_file(corpus, case):
    r, before, after = corpus[0][case]
    _one_message(r)
    assert after == before, "a user file was changed or a file was added"


def test_drawing_without_any_renderer_says_what_to_install(corpus):
    r, before, after = corpus[1]
    _one_message(r)
    assert "Graphviz" in r.stderr and "matplotlib" in r.stderr
    assert after == before


def test_the_messages_name_the_place(corpus):
    results = corpus[0]
    assert "m.gdsl:4:7: error: cannot differentiate with respect to `y`: it is used as class " \
        "labels" in results[("compile", "m.gdsl", "--wrt", "y")][0].stderr
    assert "this is the input file m.gdsl" in results[("compile", "m.gdsl", "-o", "link.gdsl")][0].stderr
    big = results[(*TRAIN, "big12.csv")][0].stderr
    assert "int.gdsl:3:7: error: " in big and "param `W`" in big and "largest label" in big
    assert "huge.gdsl:1:7: error: " in results[("check", "huge.gdsl")][0].stderr
    long = results[("compile", "long.gdsl")][0].stderr
    assert max(len(line) for line in long.splitlines()) < 200

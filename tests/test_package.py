"""The grammar ships inside the package: a plain (non-editable) install compiles models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_installed_package_finds_its_grammar(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True)
    assert (target / "gdsl" / "grammars" / "gdsl.lark").is_file()
    script = ("import gdsl, sys; m = gdsl.compile('z = W @ x; s = z + b; J = xent(softmax(s), y) + lam*sqnorm(W)'); "
              "assert gdsl.__file__.startswith(sys.argv[1]); print(sorted(m.inputs))")
    out = subprocess.run([sys.executable, "-c", script, str(target)], cwd=tmp_path, check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(target), "PATH": ""})
    assert out.stdout.strip() == "['W', 'b', 'lam', 'x', 'y']"


def test_source_tree_without_install_finds_its_grammar(tmp_path):
    """`python3 -c 'import gdsl ...'` from the repository's root imports the plain gdsl/
    directory, where the gdsl.grammars mapping of pyproject.toml does not exist."""
    script = ("import gdsl, sys; m = gdsl.compile('J = sum(x * x)'); "
              "assert gdsl.__file__.startswith(sys.argv[1]); print(sorted(m.inputs))")
    out = subprocess.run([sys.executable, "-S", "-c", script, str(ROOT / "gdsl")], cwd=ROOT, check=False,
                         capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT) + ":" + ":".join(p for p in sys.path if "site-packages" in p),
                              "PATH": "", "GDSL_CACHE": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['x']"

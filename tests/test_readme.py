"""The README's Python example runs as written, from the repository's root."""

from __future__ import annotations

import os
import re

from helpers import ROOT


def python_blocks() -> list[str]:
    """The README's Python examples (an indented block is an excerpt of emitted code)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL) if not b[0].isspace()]


def test_the_readme_has_a_python_example():
    assert python_blocks()


def test_every_python_block_of_the_readme_runs(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    for block in python_blocks():
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)    # noqa: S102 (our own README)
    assert "def value_and_grad" in capsys.readouterr().out      # print(model.source) ran


def test_the_readme_links_files_that_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#:]+)\)", text):
        assert (ROOT / target).exists(), target
    assert os.path.exists(ROOT / "docs" / "backprop-lecture.txt")

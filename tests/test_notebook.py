"""`%load_ext gdsl` and `%%gdsl NAME` in a headless IPython shell (gdsl/notebook.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("IPython")

from IPython.core.interactiveshell import InteractiveShell

import gdsl

CELL = """\
input x[d, n]
input y[C, n]
param W[C, d] ~ normal(0, 0.01)
param b[C, 1] ~ zeros
s = W @ x + b
J = xent(softmax(s), y)
"""


@pytest.fixture
def shell(tmp_path, monkeypatch):
    monkeypatch.setenv("GDSL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GDSL_DEBUG", raising=False)
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "gdsl")
    yield sh
    sh.run_line_magic("unload_ext", "gdsl")
    sh.user_ns.pop("net", None)


def test_the_cell_magic_compiles_and_binds_the_model(shell, capsys):
    r = shell.run_cell(f"%%gdsl net\n{CELL}")
    assert r.success, r.error_in_exec
    net = shell.user_ns["net"]
    assert isinstance(net, gdsl.CompiledModel)
    assert net.filename == "<cell net>" and net.wrt == ["W", "b"]
    assert capsys.readouterr().out == ""          # quiet on success
    r = shell.run_cell("import numpy as np\n"
                       "loss, grads = net.value_and_grad(x=np.ones((4, 5)), y=np.arange(5) % 3,"
                       " **net.init_params({'C': 3, 'd': 4}))\nsorted(grads)")
    assert r.result == ["W", "b"]


def test_options_wrt_and_no_optimiser(shell):
    assert shell.run_cell(f"%%gdsl net --wrt W -O0\n{CELL}").success
    net = shell.user_ns["net"]
    assert net.wrt == ["W"]
    assert net.source == gdsl.compile(CELL, ["W"], filename="<cell net>", optimize=False).source


def test_an_error_shows_the_message_and_caret_without_a_traceback(shell, capsys):
    shell.user_ns["net"] = "before"
    r = shell.run_cell("%%gdsl net\ninput x[d, n]\nparam W[C, d]\nz = W @ y\n")
    assert not r.success
    assert isinstance(r.error_in_exec, gdsl.GdslError)
    out = capsys.readouterr()
    shown = out.out + out.err
    assert "<cell net>:3:9: error: undefined name `y`" in shown     # lines of the cell's body
    assert "3 | z = W @ y\n  |         ^" in shown
    assert "Traceback" not in shown and "File " not in shown and "notebook.py" not in shown
    assert shell.user_ns["net"] == "before"        # a failed cell binds nothing


def test_a_syntax_error_points_at_its_character(shell, capsys):
    r = shell.run_cell("%%gdsl net\ninput x[d, n]\nz = W $ x\n")
    assert not r.success
    shown = capsys.readouterr().out
    assert shown.startswith("<cell net>:2:7: error: unexpected character '$'\n")
    assert "2 | z = W $ x\n  |       ^" in shown and "Traceback" not in shown


def test_gdsl_debug_shows_the_traceback(shell, capsys, monkeypatch):
    monkeypatch.setenv("GDSL_DEBUG", "1")
    assert not shell.run_cell("%%gdsl net\nz = W $ x\n").success
    assert "Traceback" in capsys.readouterr().out


def test_a_name_that_is_not_a_python_name_is_a_usage_error(shell, capsys):
    r = shell.run_cell(f"%%gdsl 2net\n{CELL}")
    assert not r.success
    out = capsys.readouterr()
    assert "must be a Python name" in out.out + out.err


def test_the_model_displays_its_graph(shell):
    shell.run_cell(f"%%gdsl net\n{CELL}")
    data, _ = shell.display_formatter.format(shell.user_ns["net"])
    svg = data["image/svg+xml"]
    assert svg.lstrip().startswith("<?xml") or svg.lstrip().startswith("<svg")
    assert "</svg>" in svg


def test_explain_displays_markdown(shell):
    shell.run_cell(f"%%gdsl net\n{CELL}")
    r = shell.run_cell("%gdsl_explain net")
    assert r.success
    data, _ = shell.display_formatter.format(r.result)
    markdown = data["text/markdown"]
    assert markdown == shell.user_ns["net"].explain(format="markdown")
    assert "## Backward pass" in markdown and "`∂J/∂W" in markdown
    from gdsl.notebook import explain
    assert explain(shell.user_ns["net"])._repr_markdown_() == markdown


def test_explain_of_something_else_is_a_usage_error(shell, capsys):
    shell.user_ns["x"] = 3
    assert not shell.run_cell("%gdsl_explain x").success
    out = capsys.readouterr()
    assert "is not a compiled gdsl model" in out.out + out.err


def test_unload_removes_the_magics(shell):
    shell.run_line_magic("unload_ext", "gdsl")
    assert "gdsl" not in shell.magics_manager.magics["cell"]
    assert "gdsl_explain" not in shell.magics_manager.magics["line"]
    shell.run_line_magic("load_ext", "gdsl")
    assert "gdsl" in shell.magics_manager.magics["cell"]

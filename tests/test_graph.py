"""gdsl graph / model.draw: the lecture's drawing, as DOT, SVG and PNG."""

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import pydot
import pytest
from helpers import run_cli

import gdsl
from gdsl.pipeline import run_pipeline
from gdsl.views.draw import to_dot
from gdsl.views.view import View

ROOT = Path(__file__).resolve().parents[1]
LECTURE = ROOT / "models" / "linear_softmax.gdsl"
MODELS = sorted((ROOT / "models").glob("*.gdsl"))

# the slides: x z s p l J on top, W b y λ below, r = ‖W‖², J = l + λr
LECTURE_NODES = {"x": "input", "y": "input", "W": "param", "b": "param", "λ": "const",
                 "z": "op", "s": "op", "p": "op", "l": "op", "r": "op", "J": "op"}
LECTURE_EDGES = {("x", "z"), ("W", "z"), ("z", "s"), ("b", "s"), ("s", "p"), ("p", "l"),
                 ("y", "l"), ("W", "r"), ("l", "J"), ("r", "J"), ("λ", "J")}
LECTURE_LABELS = {"z": "Wx", "s": "z + b", "p": "softmax(s)", "l": "−log(yᵀp)", "r": "‖W‖²",
                  "J": "l + λr"}


@pytest.fixture(scope="module")
def lecture():
    return gdsl.compile_file(LECTURE)


def _unquote(s):
    return s[1:-1].replace('\\"', '"') if s and s.startswith('"') else s


VALUES = ("input", "param", "const", "op", "grad")


def parse_dot(text):
    """(attributes by label of each value node, with its op label as "xlabel"; set of
    (label, label) edges between values, through bends) from DOT text, through pydot."""
    graphs = pydot.graph_from_dot_data(text)
    assert graphs and len(graphs) == 1
    g = graphs[0]
    nodes = {}
    for node in g.get_nodes():
        if node.get_name() in ("node", "edge", "graph"):
            continue
        a = node.get_attributes()
        nodes[node.get_name()] = {k: _unquote(v) for k, v in a.items()}
    for name, a in nodes.items():     # an op's label is the label node L<id> of its node n<id>
        if a.get("class") == "label" and name.startswith("L") and "n" + name[1:] in nodes:
            nodes["n" + name[1:]]["xlabel"] = a["label"]
    into = {}
    for e in g.get_edges():
        into.setdefault(_unquote(e.get_source()), []).append(_unquote(e.get_destination()))
    labels = {n: a["label"] for n, a in nodes.items() if a.get("class") in VALUES}
    edges = set()
    for src, name in labels.items():
        for dst in into.get(src, []):
            while nodes[dst].get("class") == "bend":      # an edge bent around something
                dst = into[dst][0]
            edges.add((name, labels[dst]))
    by_label = {a["label"]: a for n, a in nodes.items() if a.get("class") in VALUES}
    return by_label, edges


def test_lecture_graph_has_exactly_the_slides_nodes_and_edges(lecture):
    nodes, edges = parse_dot(lecture.draw("dot"))
    assert {k: a["class"] for k, a in nodes.items()} == LECTURE_NODES
    assert edges == LECTURE_EDGES
    assert {k: a["xlabel"] for k, a in nodes.items() if "xlabel" in a} == LECTURE_LABELS


def test_inputs_params_consts_are_styled_apart(lecture):
    nodes, _ = parse_dot(lecture.draw("dot"))
    styles = {kind: {(a.get("style"), a.get("fillcolor")) for a in nodes.values()
                     if a["class"] == kind} for kind in ("input", "param", "const", "op")}
    assert all(len(s) == 1 for s in styles.values())
    assert len({next(iter(s)) for s in styles.values()}) == 4


def test_dot_parses_with_networkx_too(lecture, tmp_path):
    path = tmp_path / "g.dot"
    lecture.draw(str(path))
    G = nx.nx_pydot.read_dot(str(path))
    values = [n for n, a in G.nodes(data=True) if _unquote(a.get("class")) in VALUES]
    assert len(values) == 11 and G.subgraph(values).number_of_edges() == 11


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_every_model_draws_valid_dot_forward_and_backward(path):
    view = View(run_pipeline(path.read_text(encoding="utf-8"), filename=str(path),
                             optimize=False).model)
    for backward in (False, True):
        nodes, edges = parse_dot(to_dot(view, backward=backward, shapes=True))
        assert nodes and edges
        for a, b in edges:
            assert a in nodes and b in nodes


def test_backward_adds_one_gradient_node_per_value_on_the_path(lecture):
    nodes, edges = parse_dot(lecture.draw("dot", backward=True))
    grads = {k for k, a in nodes.items() if a["class"] == "grad"}
    assert grads == {f"∂J/∂{n}" for n in ("J", "r", "l", "p", "s", "z", "b", "W")}
    assert ("∂J/∂z", "∂J/∂W") in edges and ("∂J/∂r", "∂J/∂W") in edges
    assert ("∂J/∂J", "∂J/∂r") in edges and ("∂J/∂s", "∂J/∂b") in edges


def test_svg_and_png_are_valid_files(lecture, tmp_path):
    svg = tmp_path / "g.svg"
    png = tmp_path / "g.png"
    assert lecture.draw(str(svg)) == str(svg)
    lecture.draw(str(png), backward=True)
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert lecture.draw("png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))       # written atomically: no leftovers


def test_repr_svg_is_svg(lecture):
    root = ET.fromstring(lecture._repr_svg_().encode("utf-8"))
    assert root.tag.endswith("svg")


def test_unknown_format_is_an_error(lecture):
    with pytest.raises(gdsl.GdslError, match="format"):
        lecture.draw("graph.jpeg")


def test_graphviz_is_used_when_installed(lecture, tmp_path, monkeypatch):
    # a stand-in `dot` that answers with a fixed SVG: the renderer must call it with -Tsvg
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\ncat > /dev/null\necho '<svg xmlns=\"http://www.w3.org/2000/svg\" "
                    "data-format=\"'$1'\"/>'\n")
    fake.chmod(0o755)
    monkeypatch.setattr("gdsl.views.draw.graphviz", lambda: str(fake))
    svg = lecture.draw("svg")
    assert 'data-format="-Tsvg"' in svg


_cli = run_cli


def test_cli_graph_writes_each_format(tmp_path):
    for ext in ("dot", "svg", "png"):
        out = tmp_path / f"lecture.{ext}"
        r = _cli("graph", str(LECTURE), "-o", str(out), "--backward", "--shapes")
        assert r.returncode == 0, r.stderr
        assert out.exists() and out.stat().st_size > 0
        if ext != "dot" and not shutil.which("dot"):
            assert "matplotlib" in r.stderr and len(r.stderr.strip().splitlines()) == 2
    parse_dot((tmp_path / "lecture.dot").read_text(encoding="utf-8"))


def test_cli_graph_usage_errors(tmp_path):
    r = _cli("graph", str(LECTURE), "-o", str(tmp_path / "g.gif"))
    assert r.returncode == 1 and "Traceback" not in r.stderr and "g.gif: error:" in r.stderr
    r = _cli("graph", str(tmp_path / "missing.gdsl"))
    assert r.returncode == 2 and "no such model file" in r.stderr

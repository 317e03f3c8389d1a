"""The package's layers, kept as they are drawn in docs/architecture.md.

Every module of gdsl belongs to one layer; it may import (at the top or inside a function)
only from its own layer or the layers below it, and no import cycle may run between modules.
The library never imports the command line.
"""

from __future__ import annotations

import ast

import networkx as nx
import pytest
from helpers import ROOT

# lowest first; a module is in the first layer one of whose prefixes it starts with
LAYERS = [
    ("base", ("gdsl.errors", "gdsl.files", "gdsl.limits", "gdsl.version", "gdsl.datasets")),
    ("lang", ("gdsl.lang",)),             # text -> AST
    ("ir", ("gdsl.ir",)),                 # the graph, shapes, the op table, the evaluator
    ("passes", ("gdsl.passes",)),         # resolve .. schedule: IR -> IR
    ("backend", ("gdsl.backend",)),       # targets: IR -> code
    ("pipeline", ("gdsl.pipeline",)),     # the stages in order
    ("views", ("gdsl.views",)),           # draw, explain, cost: read the IR
    ("runtime", ("gdsl.runtime",)),       # CompiledModel: the emitted code, called
    ("tools", ("gdsl.tools",)),           # train, data, check
    ("cli", ("gdsl.cli",)),               # one module per command
    ("package", ("gdsl.notebook", "gdsl.__main__", "gdsl")),
]


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted((ROOT / "gdsl").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return out


MODULES = modules()


def layer_of(module: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and to "
                         f"docs/architecture.md")


def imports(module: str, tree: ast.Module) -> set[str]:
    """The gdsl modules this one imports, anywhere in it."""
    package = module if (ROOT / module.replace(".", "/") / "__init__.py").exists() \
        else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "gdsl"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "gdsl":
                target = node.module
            else:
                continue
            for a in node.names:     # `from . import x` imports the module x
                found.add(f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target)
    return {m for m in found if m in MODULES and m != module}


GRAPH = nx.DiGraph((m, t) for m, tree in MODULES.items() for t in imports(m, tree))
GRAPH.add_nodes_from(MODULES)


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module):
    here = layer_of(module)
    upward = [f"{t} ({LAYERS[layer_of(t)][0]})" for t in GRAPH.successors(module)
              if layer_of(t) > here]
    assert not upward, f"{module} ({LAYERS[here][0]}) imports from a higher layer: {upward}"


def test_no_import_cycles():
    cycles = list(nx.simple_cycles(GRAPH))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles)


def test_the_library_never_imports_the_command_line():
    cli = layer_of("gdsl.cli")
    for m in MODULES:
        if layer_of(m) < cli:
            assert not any(layer_of(t) == cli for t in GRAPH.successors(m)), m


def test_the_check_sees_imports():
    """Not vacuous: known imports are found, relative and inside functions alike."""
    assert "gdsl.ir.ops" in GRAPH.successors("gdsl.passes.resolve")
    assert "gdsl.views.draw" in GRAPH.successors("gdsl.runtime")     # imported in a method
    assert layer_of("gdsl.passes.cse") > layer_of("gdsl.ir.graph")

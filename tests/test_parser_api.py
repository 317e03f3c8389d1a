"""gdsl uses Lark through its documented API only: read with the ast module, no module of
gdsl imports from Lark's internal modules or names anything of Lark's starting with `_`."""

from __future__ import annotations

import ast
from pathlib import Path

import lark
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "gdsl").rglob("*.py"))

# module -> the names gdsl may import from it (None: any name not starting with `_`)
PUBLIC = {"lark": None, "lark.exceptions": None, "lark.lexer": {"Lexer", "Token"}}
# what `lark.<name>` may name: the package's exports and its version
PUBLIC_ATTRIBUTES = set(lark.__all__) | {"exceptions", "__version__"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_lark_uses(source: str) -> list[str]:
    """Each private use of Lark in a module: an import from a module not in PUBLIC, an import
    of a name it does not allow, `lark.<internal module>`, `<Lark name>._private`."""
    tree = ast.parse(source)
    found, modules, names = [], set(), set()     # what the module binds to Lark's package/objects
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] != "lark":
                    continue
                if PUBLIC.get(a.name, set()) is not None:       # not a module to import whole
                    found.append(f"{node.lineno}: import {a.name}")
                if a.asname is None or a.name == "lark":
                    modules.add(a.asname or "lark")
                else:
                    names.add(a.asname)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "lark":
            allowed = PUBLIC.get(node.module, set())
            for a in node.names:
                if _private(a.name) or allowed is not None and a.name not in allowed:
                    found.append(f"{node.lineno}: from {node.module} import {a.name}")
                names.add(a.asname or a.name)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
            continue
        owner = node.value.id
        if owner in modules and node.attr not in PUBLIC_ATTRIBUTES or \
                owner in modules | names and _private(node.attr):
            found.append(f"{node.lineno}: {owner}.{node.attr}")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_only_lark_public_api(path):
    assert private_lark_uses(path.read_text(encoding="utf-8")) == []


def test_the_parser_is_read():
    """The check sees gdsl's use of Lark (it is not vacuous)."""
    assert ROOT / "gdsl" / "lang" / "parse.py" in SOURCES
    tree = ast.parse((ROOT / "gdsl" / "lang" / "parse.py").read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "lark"
                for a in n.names}
    assert {"Lark", "Transformer"} <= imported


@pytest.mark.parametrize("line", [
    "from lark.lexer import Lexer, PatternStr, _regexp_has_newline",
    "from lark.parse_tree_builder import ExpandSingleChild",
    "from lark.parsers.lalr_analysis import Shift",
    "import lark.parsers.lalr_analysis as la",
    "import lark.lexer",
    "import lark\nx = lark.parsers.lalr_analysis.Shift",
    "import lark as L\nx = L.lexer.Token",
    "from lark import Lark\nLark._load_from_dict({}, {})",
    "from lark import Lark as L\nL._load_from_dict({}, {})",
    "from lark import _private_helper",
    "from lark.exceptions import UnexpectedToken\nUnexpectedToken._format_expected",
])
def test_private_uses_are_found(line):
    """Negative controls: what the parser used before (Lark's internal modules and names)."""
    assert private_lark_uses(line)


def test_public_uses_pass():
    source = ("import lark\nfrom lark import Lark, Token, Transformer\n"
              "from lark.exceptions import UnexpectedToken\nfrom lark.lexer import Lexer\n"
              "import lark.exceptions\nimport lark.exceptions as E\nE.UnexpectedInput\n"
              "v = lark.__version__\nLark.open\nToken.__new__\nUnexpectedToken.match_examples\n")
    assert private_lark_uses(source) == []

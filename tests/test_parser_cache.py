"""The parser's tables come from a per-user cache file; a bad or unwritable file only means
building them again, never a crash or a different parser."""

from __future__ import annotations

import hashlib
import pickle

import pytest

from gdsl import parse as P

MODEL = "param W[C, d]\ninput x[d, n]\ns = W @ x + 0.5 * tanh(x.T @ W.T).T\nJ = sum(s ** 2)\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GDSL_CACHE", str(tmp_path))
    return P._parser_cache_path(P.grammar_text())


def _parses(lark_parser) -> bool:
    """The parser gives the AST and the errors of a fresh build."""
    assert lark_parser is not None
    built, tables = P._tables.__wrapped__(), P._read_tables(lark_parser)
    for text in (MODEL, "x = (1 +\n", "param W[C, d]\nW = 2\n"):
        assert _run_or_error(built, text) == _run_or_error(tables, text)
    return True


def _run_or_error(tables, text):
    tables.transformer.operations, tables.transformer.max_operations = 0, 10**6
    try:
        return repr(P._run(tables, text))      # (syntax nodes compare by identity)
    except Exception as e:      # noqa: BLE001
        return type(e).__name__, str(e)


def test_saved_then_loaded(cache):
    assert not cache.exists()
    P._lark()
    assert cache.exists()                                  # saved by the first build
    assert _parses(P._load_parser(cache))                  # and the next process loads it


@pytest.mark.parametrize("damage", ["empty", "truncated", "flipped", "garbage", "checksummed garbage",
                                    "foreign class", "directory"])
def test_a_bad_cache_file_is_rebuilt(cache, damage):
    P._lark()
    data = cache.read_bytes()
    digest, _, payload = data.partition(b"\n")
    if damage == "empty":
        data = b""
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped":       # one byte changed in a string of the pickle
        i = payload.index(b"NAME")
        data = digest + b"\n" + payload[:i] + b"NAMF" + payload[i + 4:]
    elif damage == "garbage":
        data = b"not a parser at all"
    elif damage == "checksummed garbage":
        junk = pickle.dumps({"data": {"x": 1}, "memo": {}})
        data = hashlib.sha256(junk).hexdigest().encode() + b"\n" + junk
    elif damage == "foreign class":         # a pickle that would run code when loaded
        evil = pickle.dumps(print)
        data = hashlib.sha256(evil).hexdigest().encode() + b"\n" + evil
    if damage == "directory":
        cache.unlink()
        cache.mkdir()
    else:
        cache.write_bytes(data)
        assert P._load_parser(cache) is None
    assert _parses(P._lark())                              # built instead
    if damage != "directory":
        assert _parses(P._load_parser(cache))              # and the file is whole again


def test_unwritable_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("GDSL_CACHE", str(blocker / "cache"))      # no directory can be made
    path = P._parser_cache_path(P.grammar_text())     # a private directory of the process's
    assert path is None or blocker not in path.parents
    assert _parses(P._lark())


def test_unwritable_file(cache, monkeypatch):
    import gdsl.files

    def refuse(*a, **k):
        raise PermissionError("read-only")

    monkeypatch.setattr(gdsl.files, "write_atomic", refuse)
    assert _parses(P._lark())
    assert not cache.exists()


def test_the_key_covers_grammar_and_lark(cache, monkeypatch):
    text = P.grammar_text()
    assert P._parser_cache_path(text + "\n// changed\n") != cache
    monkeypatch.setattr(P.lark, "__version__", "0.0.0")
    assert P._parser_cache_path(text) != cache

"""Lark's parser tables come from Lark's cache file (its `cache=` option) in gdsl's per-user
cache directory; a bad or unwritable file only means building them again, never a crash, a
message on the terminal or a different parser."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

import gdsl.files
from gdsl.errors import GdslError
from gdsl.lang import parse as P

MODEL = "param W[C, d]\ninput x[d, n]\ns = W @ x + 0.5 * tanh(x.T @ W.T).T\nJ = sum(s ** 2)\n"
TEXTS = [MODEL, "x = (1 +\n", "param W[C, d]\nW = 2\n", "input = 3", "z = W x", "a = $"]
OLD = 1_000_000_000         # a time stamp long past: a file still carrying it was not written again


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GDSL_CACHE", str(tmp_path))
    return Path(P.parser_cache_file(P.grammar_text()))


def outcomes(parser) -> list:
    """What gdsl.lang.parse gives for TEXTS with this parser: the AST (syntax nodes compare by
    identity, their repr says everything) or the error."""
    out = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(P, "_parser", lambda: parser)
        for text in TEXTS:
            try:
                out.append(repr(P.parse(text)))
            except GdslError as e:
                out.append((type(e).__name__, e.message, e.span, e.notes, e.help))
    return out


def without_cache_file(path=False):
    """A parser made with parser_cache_file giving ``path`` (False: no cache)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(P, "parser_cache_file", lambda text: path)
        return P.make_parser()


@pytest.fixture
def fresh():
    """The outcomes of a parser built without any cache."""
    return outcomes(without_cache_file())


def built_then_loaded(cache: Path) -> bool:
    """A parser made now from the cache file, without writing it again."""
    os.utime(cache, (OLD, OLD))
    P.make_parser()
    return cache.stat().st_mtime == OLD


def test_saved_then_loaded(cache, fresh):
    assert not cache.exists()
    P.make_parser()
    assert cache.exists()                                  # saved by the first build
    assert cache.parent == gdsl.files.cache_dir()
    assert built_then_loaded(cache)                        # the next process loads it
    assert outcomes(P.make_parser()) == fresh


@pytest.mark.parametrize("damage", ["empty", "truncated", "key flipped", "pickle flipped", "garbage",
                                    "another grammar's", "old gdsl format", "directory"])
def test_a_bad_cache_file_is_ignored_and_the_parser_built(cache, fresh, damage, capfd):
    P.make_parser()
    data = cache.read_bytes()
    key, _, payload = data.partition(b"\n")
    if damage == "empty":
        data = b""
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "key flipped":
        data = key[:-1] + bytes([key[-1] ^ 1]) + b"\n" + payload
    elif damage == "pickle flipped":        # its last byte, pickle's STOP
        data = data[:-1] + b"\0"
    elif damage == "garbage":
        data = b"not a parser at all"
    elif damage == "another grammar's":     # a whole cache file, under another key
        data = b"0" * len(key) + b"\n" + payload
    elif damage == "old gdsl format":       # sha256 of a pickle, then the pickle
        data = b"0" * 64 + b"\n" + pickle.dumps({"data": {}, "memo": {}})
    if damage == "directory":
        cache.unlink()
        cache.mkdir()
    else:
        cache.write_bytes(data)
        os.utime(cache, (OLD, OLD))
    assert outcomes(P.make_parser()) == fresh        # built instead
    if damage != "directory":
        assert cache.stat().st_mtime != OLD                         # and saved again:
        assert built_then_loaded(cache)                             # the file is whole
    out, err = capfd.readouterr()
    assert out == err == ""                                         # and nothing was said


def test_no_cache_directory(tmp_path, monkeypatch, fresh):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("GDSL_CACHE", str(blocker / "cache"))      # no directory can be made
    path = P.parser_cache_file(P.grammar_text())     # a private directory of the process's
    assert path is False or blocker not in Path(path).parents
    assert outcomes(P.make_parser()) == fresh


def test_a_directory_others_can_write_is_not_used(tmp_path, monkeypatch):
    """Lark unpickles the file: it is read and written only where no one else can write."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("GDSL_CACHE", str(shared))
    P.make_parser()
    assert list(shared.iterdir()) == []
    assert Path(P.parser_cache_file(P.grammar_text())).parent == gdsl.files.cache_dir() != shared


def test_an_unwritable_cache_only_skips_the_save(tmp_path, capfd, fresh):
    gone = tmp_path / "removed" / "parser.lark"          # its directory went away meanwhile
    assert outcomes(without_cache_file(str(gone))) == fresh
    assert not gone.parent.exists()
    out, err = capfd.readouterr()
    assert out == err == ""


def test_the_key_covers_grammar_lark_and_python(cache):
    text = P.grammar_text()
    assert P.parser_cache_file(text + "\n// changed\n") != str(cache)
    for module, name, value in [(P.lark, "__version__", "0.0.0"), (P.sys, "version", "2.7.18 (old)")]:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(module, name, value)
            assert P.parser_cache_file(text) != str(cache)
    assert P.parser_cache_file(text) == str(cache)

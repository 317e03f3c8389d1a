"""The fast printer says exactly what the ast says: every emitted statement parses back to it."""

from __future__ import annotations

import ast
import itertools

import pytest
from helpers import MODELS

import gdsl
import gdsl.backend.numpy_target
from gdsl.backend import unparse


def check_roundtrip(node):
    text = unparse.statement(node)
    back = ast.parse(text).body[0]
    assert ast.dump(back) == ast.dump(node), text
    return text


@pytest.fixture
def checked(monkeypatch):
    seen = []

    def statement(node):
        seen.append(node)
        return check_roundtrip(node)

    monkeypatch.setattr(gdsl.backend.numpy_target, "statement", statement)
    return seen


EXPRESSIONS = ["-a ** 2", "(-a) ** 2", "a ** -b", "(a ** b) ** a", "a ** (b ** a)", "a - (b - a)",
               "(a - b) - a", "a / (b * a)", "a * relu(b) * abs(a)", "-(a + b)", "(a + b).T", "a.T @ b",
               "-a.T", "sum(a * b, axis=0, keepdims=True)", "maximum(a, -1) - minimum(-a, 2.5)",
               "exp(-(a - b)) / (1 + exp(a))", "a @ b @ a", "a @ (b @ a)", "mean(a) ** 0.5",
               "sqrt(abs(a)) + 1e300 * 1e300 * a"]


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_models_roundtrip(path, checked):
    gdsl.compile_file(path)
    gdsl.compile_file(path, optimize=False)
    assert checked


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_expressions_roundtrip(expr, checked):
    gdsl.compile(f"input a[3, 3]\ninput b[3, 3]\nJ = sum({expr})", wrt=["a", "b"])
    assert checked


def test_constants_and_precedence():
    cases = {"x = 1e309": "x = 1e309", "x = (2).T": "x = (2).T", "x = a[0].size": "x = a[0].size",
             "x = (a > 0) * b": "x = (a > 0) * b", "x = -(-a)": "x = --a", "x = (a,)": "x = (a,)"}
    for src, want in cases.items():
        node = ast.parse(src).body[0]
        assert check_roundtrip(node) == want


def test_all_binary_pairs_roundtrip():
    ops = ["+", "-", "*", "/", "@", "**"]
    for o1, o2 in itertools.product(ops, ops):
        for src in (f"x = (a {o1} b) {o2} c", f"x = a {o1} (b {o2} c)", f"x = -a {o1} b {o2} c"):
            check_roundtrip(ast.parse(src).body[0])

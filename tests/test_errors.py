"""Each kind of user mistake: the exception class, message, line and column."""

from __future__ import annotations

import numpy as np
import pytest

import gdsl
from gdsl.errors import (
    GdslError,
    GdslNameError,
    GdslRuntimeError,
    GdslShapeError,
    GdslSyntaxError,
    GdslTypeError,
    GdslValueError,
)

HEAD = "input x[d, n]\ninput y[C, n]\nparam W[C, d]\nparam b[C, 1]\n"

CASES = [
    # (text, error class, line, column, words in the message)
    ("z = W x", GdslSyntaxError, 1, 7, "unexpected `x`"),
    ("z = (W @ x", GdslSyntaxError, 1, 11, "unexpected end of file"),
    ("z = W @ $", GdslSyntaxError, 1, 9, "unexpected character '$'"),
    ("input = 3", GdslSyntaxError, 1, 7, "`input` is a keyword"),
    (HEAD + "z = W @ q", GdslNameError, 5, 9, "undefined name `q`"),
    (HEAD + "z = W @ x\nz = z + b", GdslNameError, 6, 1, "`z` is already defined"),
    (HEAD + "W = 3", GdslNameError, 5, 1, "`W` is already defined"),
    (HEAD + "s = z + b\nz = W @ x", GdslNameError, 5, 5, "`z` is used before its definition"),
    ("a = a + 1", GdslNameError, 1, 5, "`a` is used before its definition"),
    (HEAD + "s = softmx(W @ x)", GdslTypeError, 5, 5, "unknown function `softmx`"),
    (HEAD + "s = exp(x, W)", GdslTypeError, 5, 5, "`exp` takes 1 argument, got 2"),
    (HEAD + "s = softmax(x, dim=0)", GdslTypeError, 5, 16, "`softmax` has no keyword `dim`"),
    (HEAD + "s = sum(x, axis=0.5)", GdslTypeError, 5, 17, "`axis=` of `sum` takes an integer"),
    (HEAD + "s = sum(x, axis=2)", GdslShapeError, 5, 5, "axis 2 is out of range for a 2-D value"),
    (HEAD + "s = W @ y", GdslShapeError, 5, 5, "inner dimensions: d and C differ"),
    (HEAD + "s = x + y", GdslShapeError, 5, 5, "d and C differ"),
    (HEAD + "J = sum(argmax(W @ x))", GdslTypeError, 5, 9, "`argmax` is not differentiable"),
    (HEAD + "loss q", GdslNameError, 5, 6, "undefined name `q`"),
    (HEAD + "param W2[C, d] ~ gaussian(0, 1)", GdslTypeError, 5, 18, "unknown initialiser `gaussian`"),
    (HEAD + "train lr=fast", GdslTypeError, 5, 7, "takes a number"),
    (HEAD + "train speed=1", GdslNameError, 5, 7, "unknown training option `speed`"),
]


@pytest.mark.parametrize("text, cls, line, col, words", CASES, ids=[c[4][:30] for c in CASES])
def test_compile_errors(text, cls, line, col, words):
    with pytest.raises(cls) as info:
        gdsl.compile(text, filename="bad.gdsl")
    e = info.value
    assert isinstance(e, GdslError)
    assert words in e.message
    assert (e.line, e.column) == (line, col), e.render()
    rendered = e.render()
    assert rendered.startswith(f"bad.gdsl:{line}:{col}: error: ")
    caret_line = rendered.splitlines()[3]
    assert caret_line.index("^") - caret_line.index("|") - 2 == col - 1   # the caret sits under col


def test_shape_error_names_both_shapes_and_places():
    with pytest.raises(GdslShapeError) as info:
        gdsl.compile(HEAD + "s = W @ y", filename="m.gdsl")
    text = info.value.render()
    assert "W has shape [C, d], declared at 3:7" in text
    assert "y has shape [C, n], declared at 2:7" in text


def test_did_you_mean():
    with pytest.raises(GdslTypeError) as info:
        gdsl.compile(HEAD + "s = softmx(W @ x)")
    assert "did you mean `softmax`?" in info.value.render()


@pytest.fixture
def lecture():
    return gdsl.compile_file("models/linear_softmax.gdsl")


def good_arrays(rng, C=3, d=4, n=5):
    return {"x": rng.normal(size=(d, n)), "y": np.eye(C)[rng.integers(0, C, n)].T,
                "W": rng.normal(size=(C, d)), "b": np.zeros((C, 1))}


def test_missing_array(lecture, rng):
    A = good_arrays(rng)
    del A["b"]
    with pytest.raises(GdslValueError) as info:
        lecture.value_and_grad(**A)
    assert "missing array `b`" in info.value.message and info.value.line == 6


def test_unknown_array(lecture, rng):
    with pytest.raises(GdslValueError) as info:
        lecture.forward(**good_arrays(rng), bias=1.0)
    assert "unknown array `bias`" in info.value.message
    assert "x, y, W, b, lam" in info.value.render()


def test_call_time_shape_mismatch_names_the_array_and_both_shapes(lecture, rng):
    A = good_arrays(rng)
    A["W"] = rng.normal(size=(3, 7))
    with pytest.raises(GdslShapeError) as info:
        lecture.value_and_grad(**A)
    msg = info.value.message
    assert "`W` has shape (3, 7)" in msg and "[C, d]" in msg and "d = 4 (from array `x`)" in msg
    assert info.value.line == 5


def test_call_time_rank_mismatch(lecture, rng):
    A = good_arrays(rng)
    A["b"] = np.zeros(3)
    with pytest.raises(GdslShapeError) as info:
        lecture.forward(**A)
    assert "array `b` has shape (3,), but it is declared [C, 1]" in info.value.message


def test_call_time_shape_error_for_free_names_points_at_the_model_line(rng):
    m = gdsl.compile("z = W @ x\ns = z + b\nJ = sum(s)", wrt=["W"], filename="free.gdsl")
    with pytest.raises(GdslShapeError) as info:
        m.value_and_grad(W=rng.normal(size=(3, 4)), x=rng.normal(size=(5, 2)), b=np.zeros((3, 1)))
    e = info.value
    assert (e.line, e.column) == (1, 5) and "inner dimensions: 4 and 5 differ" in e.message
    assert "W has shape [3, 4]" in e.render() and "x has shape [5, 2]" in e.render()


def test_labels_out_of_range_are_reported_at_the_model_line(lecture, rng):
    A = good_arrays(rng)
    A["y"] = np.array([0, 1, 2, 3, 1])
    with pytest.raises(GdslRuntimeError) as info:
        lecture.forward(**A)
    e = info.value
    assert "labels must lie in 0..2" in e.message and e.line == 12   # l = xent(p, y)
    assert "linear_softmax.gdsl:12:" in e.render()


@pytest.mark.parametrize("bad", [np.array([["a"]]), np.array([[1 + 2j]]), np.array([[None]], dtype=object)])
def test_bad_dtypes(lecture, rng, bad):
    A = good_arrays(rng)
    A["x"] = bad
    with pytest.raises(GdslValueError) as info:
        lecture.forward(**A)
    assert "array `x` has" in info.value.message and "dtype" in info.value.message


def test_const_must_be_scalar(lecture, rng):
    with pytest.raises(GdslShapeError) as info:
        lecture.forward(**good_arrays(rng), lam=np.ones(2))
    assert "const `lam` must be a scalar" in info.value.message


@pytest.mark.parametrize("m", [0, -1, 2.5, True])
def test_init_params_refuses_a_size_that_is_no_positive_whole_number(m):
    # m=0 was a ZeroDivisionError in `he`'s fan-in, -1 and 2.5 NumPy's own errors
    model = gdsl.compile_file("models/mlp2.gdsl")
    with pytest.raises(GdslShapeError, match=f"`W1` needs `m` to be a positive whole number, "
                                             f"got {m!r}") as e:
        model.init_params({"d": 3, "C": 2, "m": m})
    assert (e.value.line, e.value.column) == (4, 7)
    assert model.init_params({"d": np.int64(3), "C": 2, "m": 2})["W2"].shape == (2, 2)
    bn = gdsl.compile_file("models/mlp_bn.gdsl")        # and the states' sizes
    with pytest.raises(GdslShapeError, match="state `mu1` needs `m` to be a positive whole"):
        bn.init_state({"m": m})


def test_writing_into_a_directory_that_does_not_exist_is_one_error(tmp_path):
    # m.draw and save_params named a temporary file in a FileNotFoundError
    from gdsl.tools.train import save_params
    model = gdsl.compile_file("models/mlp2.gdsl")
    missing = tmp_path / "nope"
    with pytest.raises(GdslError, match=f"the directory {missing} does not exist"):
        model.draw(str(missing / "g.svg"))
    with pytest.raises(GdslError, match=f"the directory {missing} does not exist"):
        save_params(missing / "p.npz", model.init_params({"d": 3, "C": 2, "m": 2}))
    assert not missing.exists()


@pytest.mark.parametrize("line, column", [("train data=mydata.csv", 18),
                                          ("train data=train.csv", 12),       # a keyword
                                          ('train lr=0.1, data="train.csv"', 20),
                                          ("train data=../d/x.csv, epochs=3", 12)])
def test_a_file_path_in_a_train_line_says_where_a_file_goes(line, column):
    """`train data=` takes a built-in set's name; a path is a syntax error that says to give
    the file with --data (the place is the first character the line cannot take)."""
    with pytest.raises(GdslSyntaxError) as e:
        gdsl.compile(HEAD + "J = sum(W @ x)\n" + line)
    assert (e.value.span.line, e.value.span.col) == (6, column)
    assert "--data FILE" in e.value.help
    with pytest.raises(GdslSyntaxError) as e:        # elsewhere no such help
        gdsl.compile(HEAD + "J = sum(W @ x)\nz = train.csv")
    assert not e.value.help or "--data" not in e.value.help

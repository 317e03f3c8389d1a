"""Data loading: files, built-in sets, layouts and label encodings."""

import numpy as np
import pytest

from gdsl.errors import GdslDataError
from gdsl.tools import data as D

INPUTS = {"x": ("d", "n"), "y": ("C", "n")}


def test_builtin_digits_and_spiral():
    t = D.load("digits")
    assert t.X.shape == (1797, 64) and t.y.shape == (1797,) and set(t.y) == set(range(10))
    assert abs(t.X.mean()) < 1e-9
    s = D.load("spiral")
    assert s.X.shape == (900, 2) and set(s.y) == {0, 1, 2}
    arrays = D.to_model(s, INPUTS, ["y"], "spiral")
    assert arrays["x"].shape == (2, 900) and arrays["y"].shape == (900,)


def test_csv_with_header_and_names(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n")
    t = D.load(str(f))
    assert t.X.tolist() == [[1, 2], [3, 4], [5, 6]] and t.y.tolist() == [0, 1, 0]
    assert t.classes == ["cat", "dog"]
    g = tmp_path / "e.csv"
    g.write_text("0,1,2\n2,3,4\n")     # no header: label = last column; or pick one by index
    assert D.load(str(g)).y.tolist() == [2, 4]
    assert D.load(str(g), "0").y.tolist() == [0, 2]


def test_csv_with_a_byte_order_mark(tmp_path):
    # Excel's "CSV UTF-8" starts with a byte-order mark: the first column keeps its name, so
    # a label column named `target` is found where it is, not replaced by the last column
    f = tmp_path / "excel.csv"
    f.write_bytes(b"\xef\xbb\xbftarget,a,b\n1.5,2,3\n4.5,5,6\n")
    t = D.load(str(f))
    assert t.y.tolist() == [1.5, 4.5] and t.X.tolist() == [[2, 3], [5, 6]]
    assert D.load(str(f), "a").y.tolist() == [2, 5]


def test_npy_rows_with_label_column(tmp_path):
    f = tmp_path / "d.npy"
    np.save(f, np.array([[0.5, 1.0, 2], [1.5, 2.0, 0]]))
    t = D.load(str(f))
    arrays = D.to_model(t, INPUTS, ["y"], "d")
    assert arrays["x"].tolist() == [[0.5, 1.5], [1.0, 2.0]] and arrays["y"].tolist() == [2, 0]


@pytest.mark.parametrize("layout", ["columns", "rows", "onehot_columns", "onehot_rows"])
def test_npz_layouts(tmp_path, layout):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(7, 3))
    y = rng.integers(0, 4, 7)
    Y = np.eye(4)[y]
    arrays = {"columns": {"x": X.T, "y": y}, "rows": {"x": X, "y": y},
              "onehot_columns": {"x": X.T, "y": Y.T}, "onehot_rows": {"x": X, "y": Y}}[layout]
    f = tmp_path / "d.npz"
    np.savez(f, **arrays)
    out = D.to_model(D.load(str(f)), INPUTS, ["y"], "d")
    assert np.array_equal(out["x"], X.T) and np.array_equal(out["y"], y)


def test_bad_files(tmp_path):
    with pytest.raises(GdslDataError, match="no such data file"):
        D.load(str(tmp_path / "missing.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(GdslDataError, match="not a .npz archive"):
        D.load(str(bad))
    npy = tmp_path / "bad.npy"
    npy.write_bytes(b"garbage")
    with pytest.raises(GdslDataError, match="not a .npy file"):
        D.load(str(npy))
    obj = tmp_path / "obj.npz"
    np.savez(obj, x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    with pytest.raises(GdslDataError):
        D.to_model(D.load(str(obj)), INPUTS, ["y"], "obj")
    c = tmp_path / "ragged.csv"
    c.write_text("1,2,0\n3,1\n")
    with pytest.raises(GdslDataError, match="expected 3 columns"):
        D.load(str(c))
    c.write_text("1,2,0\n1,x,0\n")
    with pytest.raises(GdslDataError, match="not a number"):
        D.load(str(c))
    w = tmp_path / "data.txt.gz"
    w.write_text("x")
    with pytest.raises(GdslDataError, match="unknown data file type"):
        D.load(str(w))


def test_a_missing_or_non_numeric_cell_is_named_by_row_and_column(tmp_path):
    def error(text):
        f = tmp_path / "t.csv"
        f.write_text(text)
        with pytest.raises(GdslDataError) as e:
            D.load(str(f))
        return e.value.message
    # a target left out among numbers: an error, not 3 "classes" numbered as sorted strings
    assert error("a,b,target\n1,2,1.5\n3,4,\n5,6,2.5\n") == \
        f"{tmp_path / 't.csv'}:3: column `target`: a missing value (an empty cell)"
    assert error("a,b,target\n1,2,1.5\n3,4,NA\n5,6,2.5\n").endswith(
        ":3: column `target`: `NA` is not a number, as the other labels are")
    # the line as the file counts it, blank lines included; the column by its name
    assert error("a,b,label\n\n1,2,cat\n\n3,,dog\n").endswith(
        "t.csv:5: column `b`: a missing value (an empty cell)")
    assert error("1,nan,0\n2,3,1\n").endswith("t.csv:1: column 1: `nan` is not a finite number")
    f = tmp_path / "words.csv"       # class names are words: still read as classes
    f.write_text("a,label\n1,cat\n2,dog\n")
    assert D.load(str(f)).classes == ["cat", "dog"]


def test_a_table_separated_by_semicolons_says_so(tmp_path):
    # Excel writes `;` where the decimal mark is a comma: the rows read as one column, and
    # the message only said a label column was needed
    f = tmp_path / "excel.csv"
    f.write_text("a;b;label\n1;2;0\n3;4;1\n")
    with pytest.raises(GdslDataError, match="its rows have one column") as e:
        D.load(str(f))
    assert e.value.help.startswith("its values seem separated by `;`")


def test_a_cell_cannot_write_to_the_terminal(tmp_path):
    # an escape sequence or a line break in a cell (or a file name) is quoted in the
    # message: shown as U+FFFD, one line, as a model file's characters are
    f = tmp_path / "t.csv"
    f.write_text('a,b,label\n1,\x1b[2Jx,0\n1,"2\n3",0\n')
    with pytest.raises(GdslDataError) as e:
        D.load(str(f))
    text = e.value.render()
    assert "\x1b" not in text and "`\ufffd[2Jx` is not a number" in text
    f.write_text('a,b,label\n1,"2\n3",0\n')
    with pytest.raises(GdslDataError) as e:
        D.load(str(f))
    assert len(e.value.render().splitlines()) == 1 and "`2\ufffd3`" in e.value.render()


def test_label_column_of_a_file_without_columns_is_refused(tmp_path):
    # --label-column was ignored without a word for .npz files and the built-in sets
    f = tmp_path / "d.npz"
    np.savez(f, x=np.zeros((4, 2)), y=np.zeros(4))
    for spec, what in [(str(f), "holds arrays by name"), ("digits", "is a built-in data set")]:
        with pytest.raises(GdslDataError, match=f"--label-column chooses a column .* {what}"):
            D.load(spec, "y")
    assert D.load(str(f)).arrays["x"].shape == (4, 2)


def test_labels():
    assert D.as_int_labels(np.array([0.0, 2.0]), "d").tolist() == [0, 2]
    with pytest.raises(GdslDataError, match="whole numbers"):
        D.as_int_labels(np.array([0.5, 1.0]), "d")
    with pytest.raises(GdslDataError, match="out of range"):
        D.as_int_labels(np.array([-1, 1]), "d")
    with pytest.raises(GdslDataError, match="one-hot"):
        D.as_int_labels(np.array([[0.2, 0.8], [1, 0]]), "d")
    with pytest.raises(GdslDataError, match="out of range"):
        D.check_labels(np.array([0, 10]), 10, "d")


def test_split_is_seeded_and_disjoint():
    arrays = {"x": np.arange(20.0).reshape(2, 10), "y": np.arange(10)}
    tr, va = D.split(arrays, ["y"], 0.3, seed=1)
    _tr2, va2 = D.split(arrays, ["y"], 0.3, seed=1)
    assert np.array_equal(va["y"], va2["y"]) and len(va["y"]) == 3 and len(tr["y"]) == 7
    assert sorted(tr["y"].tolist() + va["y"].tolist()) == list(range(10))
    assert np.array_equal(tr["x"][0], tr["y"].astype(float))

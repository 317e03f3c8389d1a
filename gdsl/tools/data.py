"""Data for `gdsl run`: files (.npz, .npy, .csv) and built-in data sets.

A data set here is a ``Table``: features as rows ``X [n, d]`` and labels ``y [n]``
(class numbers, 0/1, or real-valued targets; ``[n, k]`` for k target columns), or, for .npz
files, arrays keyed by the model's input names. ``to_model`` turns either into the arrays the
model declares, one example per column (x [d, n]): integer labels [n] for the inputs the
model uses as class labels, float targets laid out as declared ([n], [1, n] or [k, n]) for
the input it uses as its target.

Built-in sets (no download; gdsl/datasets/README.md says where each comes from):
    digits         the 8x8 handwritten digits (UCI, as scikit-learn ships them; the copy in
                   gdsl/datasets), 1797 x 64, each pixel standardised
    spiral         three interleaved 2-D spirals (the classic non-linear toy set), 900 x 2
    diabetes       disease progression after one year (a real number, 25..346) of 442
                   patients from 10 measurements (Efron et al. 2004), raw values: regression
    breast_cancer  malignant (0) or benign (1) from 30 features of a cell-nucleus image, 569
                   tumours (UCI, Wolberg et al.), raw values: binary classification
"""

from __future__ import annotations

import csv
import io
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..datasets import load_digits
from ..errors import GdslDataError


@dataclass
class Table:
    """Examples as rows. ``arrays`` holds named arrays (from .npz) instead of X/y."""

    X: np.ndarray | None = None
    y: np.ndarray | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    classes: list | None = None     # class names when the labels were strings


# -- built-in data sets -----------------------------------------------------------------------

def digits() -> Table:
    """The 8x8 digits, scikit-learn's ``load_digits()`` values read from gdsl's own copy
    (importing scikit-learn took longer than training a model on them)."""
    X, y = load_digits()
    # each pixel standardised over the whole set (constant pixels stay 0)
    sd = X.std(axis=0)
    X = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return Table(X=X, y=y, source="digits (the 8x8 handwritten digits scikit-learn ships)")


def spiral(n_per_class: int = 300, classes: int = 3, noise: float = 0.2, seed: int = 0) -> Table:
    """Interleaved spirals: no line separates them (a linear model stays near 1/classes)."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n_per_class * classes, 2))
    y = np.zeros(n_per_class * classes, dtype=np.int64)
    for k in range(classes):
        i = slice(n_per_class * k, n_per_class * (k + 1))
        r = np.linspace(0.0, 1.0, n_per_class)
        t = np.linspace(k * 4.0, (k + 1) * 4.0, n_per_class) + rng.normal(0, noise, n_per_class)
        X[i] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[i] = k
    return Table(X=X, y=y, source=f"spiral ({classes} classes, {n_per_class} points each)")


def _shipped(name: str) -> tuple[np.ndarray, np.ndarray]:
    """X [n, d] and y [n] of gdsl/datasets/NAME.npz (package data: read with NumPy alone)."""
    from importlib import resources
    with resources.files("gdsl.datasets").joinpath(f"{name}.npz").open("rb") as f, \
            np.load(f, allow_pickle=False) as z:
        return z["X"].astype(np.float64), z["y"]


def diabetes() -> Table:
    """Regression: a measure of disease progression one year after baseline (25..346) from
    age, sex, body-mass index, blood pressure and six blood serum measurements (442 x 10,
    raw values, as scikit-learn's ``load_diabetes(scaled=False)`` gives them)."""
    X, y = _shipped("diabetes")
    return Table(X=X, y=y.astype(np.float64), source="diabetes (442 patients, 10 measurements: "
                 "regression)")


def breast_cancer() -> Table:
    """Binary classification: malignant (0) or benign (1) from 30 features of a digitised
    image of a breast mass (569 x 30, raw values, as scikit-learn's ``load_breast_cancer()``)."""
    X, y = _shipped("breast_cancer")
    return Table(X=X, y=y.astype(np.int64), source="breast_cancer (569 tumours, 30 features: "
                 "malignant 0 / benign 1)", classes=["malignant", "benign"])


BUILTIN = {"digits": digits, "spiral": spiral, "diabetes": diabetes,
           "breast_cancer": breast_cancer}


# -- files ------------------------------------------------------------------------------------

def load(spec: str, label_column: str | list[str] | None = None,
         classes: list | None = None) -> Table:
    """A built-in set by name, or a .npz / .npy / .csv file. ``label_column``: the label
    column of a .npy/.csv file (a header name or an index), or several for several targets.
    ``classes``: the class names word labels are numbered by (the training data's, for a
    validation file). Raises GdslDataError."""
    path = Path(spec)
    named = spec in BUILTIN and not path.exists() or path.suffix.lower() == ".npz"
    if label_column is not None and named and (spec in BUILTIN or path.exists()):
        what = "is a built-in data set with its labels" if spec in BUILTIN and \
            not path.exists() else "holds arrays by name (the labels under the input's name)"
        raise GdslDataError(f"--label-column chooses a column of a .csv or .npy table, but "
                            f"{spec} {what}", filename=spec, help="leave --label-column out")
    if spec in BUILTIN and not path.exists():
        return BUILTIN[spec]()
    if not path.exists():
        raise GdslDataError(f"no such data file: {spec} (built-in data sets: "
                            f"{', '.join(BUILTIN)})", filename=spec)
    if path.is_dir():
        raise GdslDataError(f"{spec} is a directory, not a data file", filename=spec)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            return _load_npz(path)
        if suffix == ".npy":
            return _load_npy(path, label_column)
        if suffix in (".csv", ".txt", ".tsv"):
            return _load_csv(path, label_column, classes)
    except GdslDataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise GdslDataError(f"cannot read data file {spec}: {_why(e)}", filename=spec) from None
    raise GdslDataError(f"unknown data file type `{suffix or path.name}`: use .npz, .npy or .csv",
                        filename=spec)


def _why(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def _check_header(f, name: str, size: int, path: Path) -> None:
    """An .npy stream holds an array whose header claims no more bytes than the stream has:
    np.load allocates what the header says before it reads (a 60-byte file could ask for
    terabytes)."""
    if f.read(6) != b"\x93NUMPY":
        raise GdslDataError(f"cannot read data file {path}: {name} is not a NumPy array (.npy)",
                            filename=str(path))
    f.seek(0)
    version = np.lib.format.read_magic(f)
    read = {(1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read is None:
        return
    shape, _, dtype = read(f)
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > size:
        raise GdslDataError(f"cannot read data file {path}: {name} claims shape {shape} "
                            f"({claimed} bytes of {dtype}), but holds only {size} bytes",
                            filename=str(path))


def _load_npz(path: Path) -> Table:
    if not zipfile.is_zipfile(path):
        raise GdslDataError(f"cannot read data file {path}: not a .npz archive (corrupt or "
                            f"another format)", filename=str(path))
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            with z.open(info) as f:
                _check_header(f, f"member `{info.filename}`", info.file_size, path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: np.asarray(z[k]) for k in z.files}
    if not arrays:
        raise GdslDataError(f"data file {path} holds no arrays", filename=str(path))
    return Table(arrays=arrays, source=str(path))


def _label_columns(label_column) -> list:
    if label_column is None:
        return [None]
    if isinstance(label_column, (str, int)):
        return [label_column]
    return list(label_column) or [None]


def _load_npy(path: Path, label_column) -> Table:
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise GdslDataError(f"cannot read data file {path}: not a .npy file (corrupt or "
                                f"another format)", filename=str(path))
        f.seek(0)
        _check_header(f, "the array", os.fstat(f.fileno()).st_size, path)
    a = np.load(path, allow_pickle=False)
    if a.ndim != 2 or a.shape[1] < 2:
        raise GdslDataError(f"data file {path} holds an array of shape {a.shape}; a .npy data file "
                            f"holds one example per row with the label in the last column",
                            filename=str(path))
    cols = _indices(label_column, None, a.shape[1], path)
    X = np.delete(a, cols, axis=1).astype(np.float64)
    return Table(X=X, y=a[:, cols[0]] if len(cols) == 1 else a[:, cols], source=str(path))


def _indices(label_column, header, ncols, path) -> list[int]:
    """The label columns' indices, each once, leaving at least one feature column."""
    cols = [_column_index(c, header, ncols, path) for c in _label_columns(label_column)]
    if len(set(cols)) != len(cols):
        raise GdslDataError(f"a label column of {path} is named twice", filename=str(path))
    if len(cols) >= ncols:
        raise GdslDataError(f"{path} has {ncols} columns: no feature column is left beside the "
                            f"{len(cols)} label columns", filename=str(path))
    return cols


def _column_index(label_column, header, ncols, path) -> int:
    if label_column is None:
        if header:
            for name in ("label", "labels", "y", "target", "class"):
                if name in header:
                    return header.index(name)
        return ncols - 1
    if header and label_column in header:
        return header.index(label_column)
    try:
        i = int(label_column)
    except ValueError:
        raise GdslDataError(f"no column `{label_column}` in {path}"
                            + (f" (columns: {', '.join(header)})" if header else ""),
                            filename=str(path)) from None
    if not -ncols <= i < ncols:
        raise GdslDataError(f"label column {i} is out of range: {path} has {ncols} columns",
                            filename=str(path))
    return i % ncols


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


SEPARATORS = {";": "`;`", "\t": "tabs", " ": "spaces", "|": "`|`"}    # not a .csv's comma
MISSING = {"na", "n/a", "nan", "null", "none", "?", "-"}    # how tables write a missing value


def _load_csv(path: Path, label_column, known: list | None = None) -> Table:
    """``known``: the class names of the training data, which number word labels here as
    they do there (a validation file that lacks a class must not shift the others)."""
    text = path.read_text(encoding="utf-8-sig")   # Excel's "CSV UTF-8" starts with a BOM
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    reader = csv.reader(io.StringIO(text), dialect)
    rows, lines = [], []        # the non-blank rows and the line each ends on, for messages
    for r in reader:
        if r and any(c.strip() for c in r):
            rows.append(r)
            lines.append(reader.line_num)
    if not rows:
        raise GdslDataError(f"data file {path} is empty", filename=str(path))
    header = None
    if not all(_is_number(c) for c in rows[0]):
        header = [c.strip() for c in rows[0]]
        rows, lines = rows[1:], lines[1:]
    if not rows:
        raise GdslDataError(f"data file {path} has a header but no examples", filename=str(path))
    ncols = len(rows[0])
    if ncols < 2:
        row = rows[0][0].strip()
        other = next((sep for sep in SEPARATORS if sep in row), None)
        raise GdslDataError(
            f"data file {path} needs feature columns and a label column, but its rows have "
            f"one column" + (f" (`{row[:40]}`)" if other else ""), filename=str(path),
            help=None if other is None else
            f"its values seem separated by {SEPARATORS[other]}: "
            f"gdsl reads .csv files separated by commas and .tsv files by tabs")
    cols = _indices(label_column, header, ncols, path)
    keep = [j for j in range(ncols) if j not in cols]
    X = np.empty((len(rows), len(keep)))
    labels = []

    def column(j):
        return f"column `{header[j]}`" if header else f"column {j}"

    def cell_error(line, j, cell, also=""):
        cell = cell.strip()
        missing = not cell or cell.lower() in MISSING
        what = "a finite number" if _is_number(cell) else "a number"
        return GdslDataError(
            f"{path}:{line}: {column(j)}: " + ("a missing value (an empty cell)" if not cell
                                               else f"`{cell}` is not {what}{also}"),
            filename=str(path), help="gdsl reads every cell as it is and fills in nothing: "
            "fill in the missing values, or drop their rows" if missing else None)

    for i, r in enumerate(rows):
        line = lines[i]
        if len(r) != ncols:
            raise GdslDataError(f"{path}:{line}: expected {ncols} columns, found {len(r)}",
                                filename=str(path))
        for j in keep:
            if not _is_number(r[j]) or not math.isfinite(float(r[j])):
                raise cell_error(line, j, r[j])
        X[i] = [float(r[j]) for j in keep]
        labels.append([r[j].strip() for j in cols])
    classes = None
    numbers = [[_is_number(c) for c in row] for row in labels]
    for i, row in enumerate(labels):    # a label left out, or one word among numbers
        for k, c in enumerate(row):
            if not c or (not numbers[i][k] and any(map(any, numbers))) or \
                    (numbers[i][k] and not math.isfinite(float(c))):
                raise cell_error(lines[i], cols[k], c, ", as the other labels are")
    if all(map(all, numbers)):
        y = np.array([[float(c) for c in row] for row in labels])
    elif len(cols) == 1:    # class names: numbered in sorted order, or as the training set's
        classes = list(known) if known is not None else sorted({row[0] for row in labels})
        index = {c: k for k, c in enumerate(classes)}
        for i, row in enumerate(labels):
            if row[0] not in index:
                raise GdslDataError(f"{path}:{lines[i]}: {column(cols[0])}: `{row[0]}` is not a "
                                    f"class of the training data ({', '.join(classes)})",
                                    filename=str(path))
        y = np.array([[index[row[0]]] for row in labels], dtype=np.int64)
    else:
        bad = next(c for row in labels for c in row if not _is_number(c))
        raise GdslDataError(f"{path}: label `{bad}` is not a number; several label columns "
                            f"hold targets, which are numbers", filename=str(path))
    return Table(X=X, y=y[:, 0] if len(cols) == 1 else y, source=str(path), classes=classes)


# -- labels -----------------------------------------------------------------------------------

def _p(what: str) -> str:
    return f"{what}: " if what else ""


def as_int_labels(y: np.ndarray, what: str) -> np.ndarray:
    """Integer class labels [n] from integers, integral floats or one-hot rows [n, C]."""
    y = np.asarray(y)
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y.dtype.kind not in "iuf":
        raise GdslDataError(f"{_p(what)}labels must be numbers, got {y.dtype}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2:
        ok = np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()
        if not ok:
            raise GdslDataError(f"{_p(what)}2-D labels must be one-hot (one 1 per example, "
                                f"the rest 0), got values like {y.ravel()[:4].tolist()}")
        return y.argmax(axis=1).astype(np.int64)
    if y.ndim != 1:
        raise GdslDataError(f"{_p(what)}labels must be integers [n] or one-hot [n, C], "
                            f"got shape {y.shape}")
    if y.dtype.kind == "f" and (not np.isfinite(y).all() or (y != np.round(y)).any()):
        raise GdslDataError(f"{_p(what)}class labels must be whole numbers, got e.g. "
                            f"{y[(~np.isfinite(y)) | (y != np.round(y))][0]}")
    if y.size and y.max() >= 2**53:     # (a float64 is exact up to 2**53; no model has more classes)
        raise GdslDataError(f"{_p(what)}label {y.max():g} is too large to be a class number "
                            f"(classes are numbered 0..C-1)")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise GdslDataError(f"{_p(what)}labels out of range: {y.min()} is negative "
                            f"(classes are numbered 0..C-1)")
    return y


def check_labels(y: np.ndarray, C: int, what: str) -> None:
    if y.size and y.max() >= C:
        raise GdslDataError(f"{_p(what)}labels out of range: found label {y.max()}, but the model "
                            f"has {C} classes (labels 0..{C - 1})")


# -- into the model's arrays ------------------------------------------------------------------

def to_model(table: Table, inputs: dict, labels: list[str], what: str,
             targets: list[str] = ()) -> dict[str, np.ndarray]:
    """The arrays a model takes, one example per column; label inputs as integers [n],
    target inputs as floats laid out as declared ([n], [1, n], [k, n]).

    ``inputs`` maps input names to declared shapes (symbolic, or None); ``labels``
    names the inputs used as class labels, ``targets`` the one that takes real-valued
    targets (a table's label columns go to one or the other). Examples given as rows are
    transposed. Raises GdslDataError naming the file and the array.
    """
    if table.arrays:
        return _npz_to_model(table, inputs, labels, what, targets)
    supervised = [k for k in inputs if k in labels or k in targets]
    features = [k for k in inputs if k not in supervised]
    if len(features) != 1 or len(supervised) > 1:
        raise GdslDataError(
            f"{_p(what)}a table of features and labels fits a model with one feature input and "
            f"one label input, but this model takes {', '.join(inputs) or 'no inputs'}; "
            f"give a .npz file with one array per input")
    X = np.asarray(table.X, dtype=np.float64)
    if not np.isfinite(X).all():
        raise GdslDataError(f"{_p(what)}the features contain NaN or infinite values")
    out = {features[0]: _columns(X, inputs[features[0]], features[0], what)}
    if supervised and supervised[0] in labels:
        y = np.asarray(table.y)
        if y.ndim == 2 and y.shape[1] > 1:
            raise GdslDataError(f"{_p(what)}{y.shape[1]} label columns, but `{supervised[0]}` "
                                f"takes class labels: one column of class numbers")
        out[supervised[0]] = as_int_labels(y, what)
    elif supervised:
        name = supervised[0]
        out[name] = as_targets(table.y, inputs[name], name, what)
    return out


def as_targets(y: np.ndarray, declared, name: str, what: str) -> np.ndarray:
    """Real-valued targets from label columns (rows [n] or [n, k]), laid out as the model
    declares the input: [n], [1, n] or [k, n] (undeclared: [n], or [k, n] for k columns)."""
    y = np.asarray(y)
    if y.dtype.kind == "b":
        y = y.astype(np.float64)
    if y.dtype.kind not in "iuf":
        raise GdslDataError(f"{_p(what)}targets must be numbers, got {y.dtype}")
    y = y.astype(np.float64)
    if not np.isfinite(y).all():
        raise GdslDataError(f"{_p(what)}the targets contain NaN or infinite values")
    k = 1 if y.ndim == 1 else y.shape[1]
    rows = y.reshape(len(y), k).T                          # [k, n]
    rank = None if declared is None else len(declared)
    if rank == 2:
        want = declared[0]
        if isinstance(want, int) and want != k:
            raise GdslDataError(f"{_p(what)}input `{name}` is declared with {want} target "
                                f"row{'s' if want != 1 else ''}, but the data have {k} label "
                                f"column{'s' if k != 1 else ''}",
                                help="choose the target columns with --label-column (repeat it "
                                "for several)")
        return np.ascontiguousarray(rows)
    if rank in (None, 1) and k == 1:
        return np.ascontiguousarray(rows[0])
    if rank is None:
        return np.ascontiguousarray(rows)
    raise GdslDataError(f"{_p(what)}input `{name}` is declared "
                        + (f"with one target per example, but the data have {k} label columns"
                           if rank == 1 else f"with {rank} axes; a table fills [n], [1, n] or "
                           f"[k, n]"))


def _columns(X: np.ndarray, declared, name: str, what: str) -> np.ndarray:
    """Rows [n, d] -> the declared layout [d, n] (a 1-row input [n] stays 1-D); for an input
    of more axes, [d1, d2, ..., n] with d = d1 d2 ..., each row read in row-major order (the
    64 pixels of an 8x8 digit as 8 rows of 8: `input x[8, 8, n]`)."""
    if declared is not None and len(declared) == 1:
        if X.shape[1] != 1:
            raise GdslDataError(f"{_p(what)}input `{name}` is declared 1-D, but the data has "
                                f"{X.shape[1]} feature columns")
        return np.ascontiguousarray(X[:, 0])
    if declared is not None and len(declared) > 2:
        axes = declared[:-1]
        shown = "[" + ", ".join(map(str, declared)) + "]"
        if not all(isinstance(d, int) for d in axes):
            raise GdslDataError(f"{_p(what)}input `{name}` is declared {shown}; a table's features "
                                f"fill axes of known sizes only",
                                help="give the sizes as numbers, e.g. `input x[8, 8, n]`, or the "
                                "data as a .npz file of that shape")
        if math.prod(axes) != X.shape[1]:
            raise GdslDataError(f"{_p(what)}input `{name}` is declared {shown}: "
                                f"{' x '.join(map(str, axes))} = {math.prod(axes)} features an "
                                f"example, but the data has {X.shape[1]}",
                                help="the features of each example fill the axes row-major "
                                "(the last axis before n fastest)")
        return np.ascontiguousarray(np.moveaxis(X.reshape(len(X), *axes), 0, -1))
    if declared is not None and len(declared) != 2:
        raise GdslDataError(f"{_p(what)}input `{name}` is declared with {len(declared)} axes; "
                            f"a table fills only [d, n]")
    if declared is not None and isinstance(declared[0], int) and declared[0] != X.shape[1]:
        raise GdslDataError(f"{_p(what)}input `{name}` is declared with {declared[0]} features, "
                            f"but the data has {X.shape[1]}")
    return np.ascontiguousarray(X.T)


def _npz_to_model(table: Table, inputs: dict, labels: list[str], what: str,
                  targets=()) -> dict:
    arrays = table.arrays
    missing = [k for k in inputs if k not in arrays]
    if missing:
        raise GdslDataError(f"{_p(what)}no array named {', '.join(f'`{k}`' for k in missing)} "
                            f"(the file holds {', '.join(arrays)}; the model takes "
                            f"{', '.join(inputs)})")
    # the example count: what every array shares, on its first or last axis
    cands = None
    for k in inputs:
        a = arrays[k]
        if a.ndim == 0:
            continue
        s = {a.shape[0], a.shape[-1]}
        cands = s if cands is None else cands & s
    if cands and len(cands) > 1:
        # square-ish ambiguity (as many examples as features or classes): the larger is n
        cands = {max(cands)}
    if not cands:
        raise GdslDataError(f"{_p(what)}the arrays disagree on the number of examples: "
                            + ", ".join(f"{k} {arrays[k].shape}" for k in inputs))
    out = {}
    for k, declared in inputs.items():
        a = arrays[k]
        if a.dtype.kind not in "biuf":
            raise GdslDataError(f"{_p(what)}array `{k}` has dtype {a.dtype}; expected numbers")
        if k in labels:
            if a.ndim == 2 and a.shape[0] == 1 and a.shape[1] in cands:
                a = a[0]    # integer labels as a row [1, n]
            elif a.ndim == 2 and a.shape[1] in cands and (a.shape[0] not in cands
                                                         or a.shape[1] != a.shape[0]):
                a = a.T     # one-hot in the model's layout [C, n] -> rows [n, C]
            out[k] = as_int_labels(a, f"{_p(what)}array `{k}`")
            continue
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise GdslDataError(f"{_p(what)}array `{k}` contains NaN or infinite values")
        if k in targets and declared is not None:       # [n] and [1, n] are the same targets
            if a.ndim == len(declared) - 1 == 1:
                a = a[None]
            elif a.ndim == len(declared) + 1 == 2 and 1 in a.shape:
                a = a.reshape(-1)
        if a.ndim >= 2 and a.shape[-1] not in cands and a.shape[0] in cands:
            a = np.ascontiguousarray(np.moveaxis(a, 0, -1))    # examples as rows -> columns
        elif (a.ndim == 2 and declared is not None and len(declared) == 2
              and isinstance(declared[0], int) and a.shape[0] != declared[0] == a.shape[1]):
            a = np.ascontiguousarray(a.T)
        out[k] = a
    return out


def n_examples(arrays: dict, labels) -> int:
    ns = set()
    for k, a in arrays.items():
        if a.ndim:
            ns.add(a.shape[-1] if k not in labels else a.shape[0])
    if len(ns) != 1:
        raise GdslDataError("the arrays disagree on the number of examples: "
                            + ", ".join(f"{k} {a.shape}" for k, a in arrays.items()))
    return ns.pop()


def take(arrays: dict, idx: np.ndarray, labels) -> dict:
    """The examples ``idx`` of every array (examples along the last axis; labels along axis 0)."""
    return {k: (a[idx] if k in labels else a[..., idx]) if a.ndim else a for k, a in arrays.items()}


def examples(arrays: dict, start: int, stop: int, labels) -> dict:
    """Examples ``start`` to ``stop`` of every array, as views (a slice of each: no copy)."""
    return {k: (a[start:stop] if k in labels else a[..., start:stop]) if a.ndim else a
            for k, a in arrays.items()}


def split(arrays: dict, labels, fraction: float, seed: int) -> tuple[dict, dict | None]:
    """Shuffle once with ``seed`` and hold out ``fraction`` of the examples for validation."""
    n = n_examples(arrays, labels)
    if fraction <= 0:
        return arrays, None
    if not 0 < fraction < 1:
        raise GdslDataError(f"the validation fraction must lie in [0, 1), got {fraction}")
    n_val = max(1, math.floor(n * fraction + 0.5))
    if n_val >= n:
        raise GdslDataError(f"only {n} examples: too few to hold out {fraction:g} for validation")
    perm = np.random.default_rng([seed, 7]).permutation(n)
    return take(arrays, np.sort(perm[n_val:]), labels), take(arrays, np.sort(perm[:n_val]), labels)

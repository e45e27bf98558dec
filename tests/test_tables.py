"""CSV tables, labels and NPZ files: what is guessed is said, both readers agree, every bad
table or label is refused with its line, and reading stays within its memory bound."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from flexnet import datasets
from flexnet.cli import main
from flexnet.data import (
    DataFileError,
    csv_layout,
    read_csv,
    read_npz,
    read_table,
    sniff_csv,
)

ENGINES = ("numpy", "pyarrow")


def write(path, text: str, encoding="utf-8"):
    with open(path, "w", newline="", encoding=encoding) as f:
        f.write(text)
    return path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *fragments):
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for f in fragments:
        assert f in err, err


# -- both readers give the same table ----------------------------------------------

GOOD = {
    "header": "a,b,label\n1,2,0\n3.5,-4,1\n5,6e-1,2\n",
    "no header, text labels": "1,2,cat\n3,4,dog\n5,6,cat\n",
    "pandas column numbers": "0,1,2,3\n0.5,1,2,0\n1,1,1,1\n",
    "semicolons": "a;b;y\n1;2;0\n3;4;1\n",
    "tabs": "1\t2\t0\n3\t4\t1\n",
    "pipes": "a|b|y\n1|2|0\n3|4|1\n",
    "bom and crlf": "\ufeffa,b,y\r\n1,2,0\r\n3,4,1\r\n",
    "bom, no header": "\ufeff1,2,0\n3,4,1\n",
    "cr only": "a,b,y\r1,2,0\r3,4,1\r",
    "quoted cells": 'a,b,y\n"1","2","big, red"\n3," 4","small ""x"""\n',
    "blank lines": "a,b,y\n\n1,2,0\n   \n3,4,1\n\n",
    "no final newline": "a,b,y\n1,2,0\n3,4,1",
    "spaces around numbers": "a,b,y\n 1 ,2\t, 3 \n3,4,1\n",
    "signs, points, exponents": "a,b,y\n+1,.5,0\n-2.,1E-3,1\n",
    "label first": "y,a,b\n0,1,2\n1,3,4\n",
    "text labels with spaces": "a,b,kind\n1,2, cat\n3,4,cat \n5,6,dog\n",
    "quotes inside cells": 'a,b,size\n1,2,5"\n3,"4",6" x 2"\n5,6,5"\n',  # a quote opens a cell only at its start
}


@pytest.mark.parametrize("name", list(GOOD))
def test_both_readers_read_the_same_table(tmp_path, name):
    p = write(tmp_path / "t.csv", GOOD[name])
    label = 0 if name == "label first" else -1
    a, b = (read_table(p, label, engine=e) for e in ENGINES)
    assert a.engine == "numpy"
    assert np.array_equal(a.X, b.X) and a.X.dtype == b.X.dtype == np.float32
    assert np.array_equal(a.labels, b.labels) and a.labels.dtype == b.labels.dtype
    assert a.label_names == b.label_names and a.describe() == b.describe()
    assert len(a.X) == ROWS.get(name, 2)
    if name == "quotes inside cells":
        assert a.label_names == ['5"', '6" x 2"'] and a.X.tolist() == [[1, 2], [3, 4], [5, 6]]


ROWS = {"header": 3, "no header, text labels": 3, "text labels with spaces": 3, "quotes inside cells": 3}


def test_both_readers_agree_on_a_bigger_file_and_float64(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 7)) * 10.0 ** rng.integers(-8, 8, size=(5000, 7))
    y = rng.integers(0, 4, 5000)
    lines = ["x" + ",x".join(map(str, range(7))) + ",y"] + [",".join(map(repr, r)) + f",{c}"
                                                          for r, c in zip(X.tolist(), y.tolist())]
    p = write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    for dtype in ("float32", "float64"):
        (Xa, ya), (Xb, yb) = (read_csv(p, dtype=dtype, engine=e) for e in ENGINES)
        assert np.array_equal(Xa, Xb) and np.array_equal(ya, yb) and ya.dtype == np.int64
        assert np.array_equal(Xa, X.astype(dtype))  # each value rounded once, from its decimal text
        assert ya.tolist() == y.tolist()


def test_pyarrow_is_the_default_and_the_environment_forces_numpy(tmp_path, monkeypatch):
    p = write(tmp_path / "t.csv", GOOD["header"])
    assert read_table(p).engine == "pyarrow"
    monkeypatch.setenv("FLEXNET_CSV_ENGINE", "numpy")
    assert read_table(p).engine == "numpy"
    monkeypatch.setenv("FLEXNET_CSV_ENGINE", "pandas")
    with pytest.raises(ValueError, match="FLEXNET_CSV_ENGINE must be 'numpy' or 'pyarrow'"):
        read_table(p)


def test_without_pyarrow_numpy_reads_and_asking_for_pyarrow_says_how_to_install(tmp_path, monkeypatch):
    p = write(tmp_path / "t.csv", GOOD["header"])
    monkeypatch.setitem(sys.modules, "pyarrow.csv", None)  # import pyarrow.csv now fails
    assert read_table(p).engine == "numpy"
    with pytest.raises(ImportError, match=r'pip install "flexnet\[tables\]"'):
        read_table(p, engine="pyarrow")


# -- bad tables: the same message from both readers, naming line and column ------------

BAD = [
    ("a,b,y\n1,2,0\n3,4\n", "line 3: expected 3 cells (as in line 1), got 2"),
    ("a,b,y\n1,2,0\n3,4,5,6\n", "line 3: expected 3 cells (as in line 1), got 4"),
    ("a,b,y\n1,2,0\n3;4;1\n", "line 3: expected 3 cells (as in line 1), got 1 (the line holds no ',')"),
    ("a,b,y\n1,2,0\n,,\n", "line 3, column 1 (a): missing value ''"),
    ("a,b,y\n1,2,0\n3,,1\n", "line 3, column 2 (b): missing value ''"),
    ("a,b,y\n1,2,0\n3,NaN,1\n", "line 3, column 2 (b): missing value 'NaN'"),
    ("a,b,y\n1,2,0\n3,?,1\n", "line 3, column 2 (b): missing value '?'"),
    ("a,b,y\n1,2,0\n3,abc,1\n", "line 3, column 2 (b): expected a number, got 'abc'"),
    ("a,b,y\n1,2,0\n3,1_0,1\n", "line 3, column 2 (b): expected a number, got '1_0'; digits grouped"),
    ("a,b,y\n1,2,0\n3,0x1F,1\n", "line 3, column 2 (b): expected a number, got '0x1F'"),
    ("a,b,y\n1,2,0\n3,\u0663,1\n", "line 3, column 2 (b): expected a number, got '\u0663'"),
    ("a;b;y\n1;2;0\n3;1,5;1\n", "line 3, column 2 (b): expected a number, got '1,5'; write decimals with a point"),
    ("a,b,y\n1,2,0\n3,inf,1\n", "line 3, column 2 (b): 'inf' is not a finite float32 value"),
    ("a,b,y\n1,2,0\n3,-Infinity,1\n", "line 3, column 2 (b): '-Infinity' is not a finite float32 value"),
    ("a,b,y\n1,2,0\n3,1e39,1\n", "line 3, column 2 (b): '1e39' is not a finite float32 value"),
    ("a,b,y\n1,2,0\n3,4,\n", "line 3, column 3 (y): missing label"),
    ("a,b,y\n1,2,0\n3,4,nan\n", "line 3, column 3 (y): missing label"),
    ("a,b,y\n1,2,0\n3,4,inf\n", "line 3, column 3 (y): label 'inf' is not a finite number"),
    ("a,b,y\n1,2,0\n3,4,2**63\n", "line 3, column 3 (y): label '2**63' is not a number, but the labels before it are"),
    ("a,b,y\n1,2,0\n3,4,1_0\n", "line 3, column 3 (y): label '1_0' is not a number"),
    ("a,b,y\n1,2,0\n3,4,0x1\n", "line 3, column 3 (y): label '0x1' is not a number"),
    ("a,b,y\n1,2,cat\n3,4,3\n", "line 3, column 3 (y): label '3' is a number, but the labels before it are names"),
    ("a,b,y\n1,2,cat\n\n3,4,NA\n", "line 4, column 3 (y): missing label"),
    ('a,b,y\n1,2,cat\n3,4,"two\nlines"\n', "line 3, column 3 (y): label 'two\\nlines' holds a line break"),
    ("a,b,y\n1,2,\n", "line 2, column 3 (y): missing label"),
    ("", "the file is empty (0 bytes)"),
    ("\n\n  \n", "the file holds no rows, only blank lines"),
    ("a,b,y\n", "the file has a header row but no data rows"),
    ("a;b;y\n1;2;0\n", "one column per line"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_bad_tables_get_the_same_message_from_both_readers(tmp_path, text, message):
    p = write(tmp_path / "bad.csv", text)
    delimiter = "," if "one column" in message else None
    errors = []
    for engine in ENGINES:
        with pytest.raises(DataFileError) as err:
            read_table(p, "y" if text.startswith("a,") else -1, delimiter=delimiter, engine=engine)
        errors.append(str(err.value))
    assert errors[0] == errors[1]
    assert str(p) in errors[0] and message in errors[0], errors[0]


def test_a_bad_row_far_down_a_file_is_named_by_its_line(tmp_path):
    lines = ["a,b,y"] + [f"{i},{i % 7},{i % 3}" for i in range(30000)]
    lines[25001] = "1,oops,2"
    p = write(tmp_path / "long.csv", "\n".join(lines) + "\n")
    for engine in ENGINES:
        with pytest.raises(DataFileError, match=r"line 25002, column 2 \(b\): expected a number, got 'oops'"):
            read_table(p, engine=engine)


def test_binary_and_foreign_text_files_are_named(tmp_path):
    np.savez(tmp_path / "a.npz", X=np.zeros((2, 2)))
    (tmp_path / "zip.csv").write_bytes((tmp_path / "a.npz").read_bytes())
    with pytest.raises(DataFileError, match=r"not a CSV text file: it holds a zip archive \(an .npz file\?\)"):
        read_csv(tmp_path / "zip.csv")
    write(tmp_path / "utf16.csv", "a,b,y\n1,2,0\n", encoding="utf-16")
    with pytest.raises(DataFileError, match="UTF-16 text; save the CSV as UTF-8"):
        read_csv(tmp_path / "utf16.csv")
    (tmp_path / "latin.csv").write_bytes("a,b,y\n1,2,0\n3,4,caf\xe9\n".encode("latin-1"))
    for engine in ENGINES:
        with pytest.raises(DataFileError, match=r"line 3: not a UTF-8 text file \(byte b'\\xe9' at column 8\)"):
            read_table(tmp_path / "latin.csv", engine=engine)


# -- what is guessed, and the options that decide it ------------------------------------


def test_a_headerless_file_with_text_labels_keeps_its_first_row(tmp_path):
    p = write(tmp_path / "t.csv", "1,2,cat\n3,4,dog\n5,6,cat\n")
    X, y = read_csv(p)
    assert X.tolist() == [[1, 2], [3, 4], [5, 6]] and y.tolist() == ["cat", "dog", "cat"]
    assert sniff_csv(p).header is False


def test_a_header_of_column_numbers_is_a_header(tmp_path):
    """pandas writes unnamed columns as 0, 1, ..., 64: that row is not data, and 64 is no class."""
    X = np.arange(40, dtype=np.float32).reshape(10, 4) % 5
    lines = [",".join(map(str, range(5)))] + [",".join(map(str, r)) + f",{i % 2}" for i, r in enumerate(X.tolist())]
    p = write(tmp_path / "pd.csv", "\n".join(lines) + "\n")
    Xr, y = read_csv(p)
    assert Xr.shape == (10, 4) and set(y.tolist()) == {0, 1}
    # A first row that merely looks like column numbers, with a label seen below, is data.
    q = write(tmp_path / "data.csv", "0,1\n1,0\n2,1\n")
    assert len(read_csv(q)[0]) == 3


def test_header_and_delimiter_options_decide(tmp_path):
    p = write(tmp_path / "t.csv", "1;2;0\n3;4;1\n")
    layout = sniff_csv(p)
    assert (layout.delimiter, layout.delimiter_guessed, layout.header, layout.header_guessed) == (";", True, False, True)
    assert layout.describe(2) == "no header row (guessed), delimiter ';' (guessed), label column 3"
    X, _ = read_csv(p, header=True, delimiter=";")
    assert X.tolist() == [[3, 4]]
    assert sniff_csv(p, header=True, delimiter=";").describe(2) == \
        "header row (given), delimiter ';' (given), label column 3 (0)"
    q = write(tmp_path / "h.csv", "a,b,y\n1,2,0\n")
    with pytest.raises(DataFileError, match=r"line 1, column 1: expected a number, got 'a'"):
        read_csv(q, header=False)
    with pytest.raises(DataFileError, match=r"one column per line.*is the delimiter ','\? \(pass --delimiter ','\)"):
        read_csv(q, delimiter=";")
    with pytest.raises(ValueError, match="delimiter: expected one character"):
        read_csv(q, delimiter="ab")
    assert csv_layout.check_delimiter("tab") == csv_layout.check_delimiter("\\t") == "\t"


def test_a_label_named_in_the_first_row_makes_it_a_header(tmp_path):
    # Numbers as names ("2019"), and a text label column: only the label's name says "header".
    p = write(tmp_path / "years.csv", "2019,2020,kind\n1,2,cat\n3,4,dog\n")
    X, y = read_csv(p, "kind")
    assert X.tolist() == [[1, 2], [3, 4]] and y.tolist() == ["cat", "dog"]


# -- labels -> class ids ---------------------------------------------------------------


def labelled(tmp_path, labels, name="l.csv"):
    lines = ["a,b,y"] + [f"{i},{i % 3},{lab}" for i, lab in enumerate(labels)]
    return write(tmp_path / name, "\n".join(lines) + "\n")


@pytest.mark.parametrize("bad, message", [
    ("1e20", "line 5: label 1e+20 would make 100,000,000,000,000,000,001 classes"),
    ("20000000", "line 5: label 20000000 would make 20,000,001 classes, but the file holds 4 distinct label(s)"),
    ("9223372036854775808", "line 5: label 9.223372036854776e+18 would make"),
    ("1.5", "line 5: label 1.5 is not a class id"),
    ("-1", "line 5: label -1 is negative"),
    ("2**63", "line 5, column 3 (y): label '2**63' is not a number"),
    ("1_0", "line 5, column 3 (y): label '1_0' is not a number"),
    ("0x1", "line 5, column 3 (y): label '0x1' is not a number"),
    ("inf", "line 5, column 3 (y): label 'inf' is not a finite number"),
    ("nan", "line 5, column 3 (y): missing label"),
])
def test_labels_that_are_not_class_ids_are_refused_with_their_line(tmp_path, bad, message):
    p = labelled(tmp_path, ["0", "1", "2", bad, "1", "0"])
    for engine in ENGINES:
        os.environ["FLEXNET_CSV_ENGINE"] = engine
        try:
            with pytest.raises(DataFileError) as err:
                datasets.load(str(p))
        finally:
            del os.environ["FLEXNET_CSV_ENGINE"]
        assert str(p) in str(err.value) and message in str(err.value), str(err.value)


def test_spaces_around_a_label_are_ignored(tmp_path):
    ds = datasets.load(str(labelled(tmp_path, ["0", " 1 ", "2\t", "1"])))
    assert ds.y_train.tolist() == [0, 1, 2, 1] and ds.y_train.dtype == np.int64 and ds.n_classes == 3


def test_class_ids_may_leave_a_few_unused(tmp_path):
    ds = datasets.load(str(labelled(tmp_path, ["0", "3", "10", "3"])))  # 11 ids, 3 seen: 8 unused <= 10
    assert ds.n_classes == 11
    with pytest.raises(DataFileError, match=r"line 3: label 12 would make 13 classes.*at most max\(10, distinct labels\) = 10"):
        datasets.load(str(labelled(tmp_path, ["0", "12", "0"])))


def test_one_class_is_refused_for_training_and_accepted_to_score_a_model(tmp_path):
    with pytest.raises(DataFileError, match="every label is 'cat', one class; a classifier needs at least two"):
        datasets.load(str(labelled(tmp_path, ["cat", "cat"])))
    with pytest.raises(DataFileError, match="every label is 0, one class"):
        datasets.load(str(labelled(tmp_path, ["0", "0", "0"])))
    ds = datasets.load(str(labelled(tmp_path, ["dog", "dog"])), classes=["cat", "dog", "eel"])
    assert ds.y_train.tolist() == [1, 1] and ds.class_names == ["cat", "dog", "eel"]


def test_a_models_classes_decide_what_a_files_labels_mean(tmp_path):
    p = labelled(tmp_path, ["eel", "dog", "eel"])
    assert datasets.load(str(p)).y_train.tolist() == [1, 0, 1]  # numbered afresh: dog 0, eel 1
    ds = datasets.load(str(p), classes=["cat", "dog", "eel"])
    assert ds.y_train.tolist() == [2, 1, 2]
    with pytest.raises(DataFileError, match=r"line 3: label 'cow' is not one of the model's classes \('cat', 'dog', 'eel'\)"):
        datasets.load(str(labelled(tmp_path, ["dog", "cow"], "cow.csv")), classes=["cat", "dog", "eel"])
    with pytest.raises(DataFileError, match="line 3: label 3 is out of range: the model has 3 classes, ids 0..2"):
        datasets.load(str(labelled(tmp_path, ["0", "3"], "ids.csv")), classes=3)
    with pytest.raises(DataFileError, match="the labels are names .* but the model has no class names"):
        datasets.load(str(p), classes=3)


def test_npz_labels_follow_the_same_rules(tmp_path):
    X = np.zeros((4, 2), np.float32)
    np.savez(tmp_path / "big.npz", X=X, y=np.array([0, 1, 20_000_000, 1]))
    with pytest.raises(DataFileError, match=r"'y' row 2: label 20000000 would make 20,000,001 classes"):
        datasets.load(str(tmp_path / "big.npz"))
    np.savez(tmp_path / "names.npz", X=X, y=np.array(["eel", "dog", "eel", "dog"]))
    assert datasets.load(str(tmp_path / "names.npz"), classes=["cat", "dog", "eel"]).y_train.tolist() == [2, 1, 2, 1]
    np.savez(tmp_path / "huge.npz", X=X, y=np.array([0, 1, 2**63 - 1, 1], dtype=np.int64))
    with pytest.raises(DataFileError, match="label 9223372036854775807 would make"):
        datasets.load(str(tmp_path / "huge.npz"))


# -- NPZ files that are not what they claim --------------------------------------------


def test_npz_files_that_are_not_archives_are_named_for_what_they_are(tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")
    np.save(tmp_path / "one.npy", np.zeros((3, 2)))
    os.rename(tmp_path / "one.npy", tmp_path / "one.npz")
    write(tmp_path / "text.npz", "a,b,y\n1,2,0\n")
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps({"X": [1, 2]}))
    np.savez(tmp_path / "none.npz")
    np.savez(tmp_path / "rows.npz", X=np.zeros((0, 3)), y=np.zeros(0))
    for name, words in [("empty", "the file is empty (0 bytes)"),
                        ("one", "a single NumPy array (.npy), not an .npz archive; save the data with np.savez"),
                        ("text", "a text file (it begins 'a,b,y'), not an .npz archive; if it is a CSV table, name it .csv"),
                        ("pickle", "a Python pickle, which flexnet never loads"),
                        ("none", "an .npz archive that holds no arrays"),
                        ("rows", "'X' holds no data (shape (0, 3))")]:
        with pytest.raises(DataFileError) as err:
            read_npz(tmp_path / f"{name}.npz")
        assert f"{name}.npz" in str(err.value) and words in str(err.value), str(err.value)


# -- the command line ---------------------------------------------------------------


def clusters(n=60, names=("cat", "dog", "eel"), seed=0):
    """Three well-separated clusters in two features: any small network learns them exactly."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [10, 0], [0, 10]], dtype=float)
    k = np.arange(n) % 3
    X = centres[k] + rng.normal(scale=0.5, size=(n, 2))
    return X, [names[i] for i in k]


def table_text(X, labels, header="x1,x2,kind"):
    rows = [f"{a:.4f},{b:.4f},{lab}" for (a, b), lab in zip(X, labels)]
    return "\n".join(([header] if header else []) + rows) + "\n"


@pytest.fixture(scope="module")
def animals(tmp_path_factory):
    d = tmp_path_factory.mktemp("animals")
    X, labels = clusters()
    write(d / "train.csv", table_text(X, labels))
    model = d / "m.npz"
    assert main(["train", "--data", str(d / "train.csv"), "--label", "kind", "--arch", "2,16,3", "--epochs", "60",
                 "--lr", "0.05", "--val-split", "0", "--quiet", "--figure", "-", "--out", str(model)]) == 0
    return d, model


def test_evaluate_maps_a_files_names_through_the_models_classes(animals, tmp_path, capsys):
    _, model = animals
    X, labels = clusters(seed=1)
    keep = [i for i, lab in enumerate(labels) if lab != "cat"]
    write(tmp_path / "dog_eel.csv", table_text(X[keep], [labels[i] for i in keep]))
    code, out, _ = run(["evaluate", model, "--data", tmp_path / "dog_eel.csv", "--figures", "-"], capsys)
    assert code == 0 and "accuracy  100.00%" in out, out  # the stored label column 'kind' is used
    assert "read as   header row (guessed), delimiter ',' (guessed), label column 3 (kind)" in out
    write(tmp_path / "cow.csv", table_text(X[:4], ["dog", "eel", "cow", "dog"]))
    code, _, err = run(["evaluate", model, "--data", tmp_path / "cow.csv", "--figures", "-"], capsys)
    one_line_error(code, err, "cow.csv line 4", "label 'cow' is not one of the model's classes")


def test_predict_leaves_out_the_models_label_column(animals, tmp_path, capsys):
    d, model = animals
    code, out, err = run(["predict", model, d / "train.csv"], capsys)
    assert code == 0 and "leaving out column 3 (kind), the model's label column" in err
    assert out.count("\n") == 61
    X, labels = clusters(seed=2)
    write(tmp_path / "other.csv", table_text(X, labels, header="x1,x2,species"))
    code, _, err = run(["predict", model, tmp_path / "other.csv"], capsys)
    one_line_error(code, err, "other.csv has 3 columns", "takes 2 features", "pass --label NAME|INDEX")
    code, out, _ = run(["predict", model, tmp_path / "other.csv", "--label", "species"], capsys)
    assert code == 0 and out.count("\n") == 61


def test_predict_leaves_out_a_headerless_label_column_by_index(tmp_path, capsys):
    X, labels = clusters()
    write(tmp_path / "t.csv", table_text(X, labels, header=None))
    model = tmp_path / "m.npz"
    code, out, _ = run(["train", "--data", tmp_path / "t.csv", "--arch", "2,8,3", "--epochs", "2", "--quiet",
                        "--figure", "-", "--out", model], capsys)
    assert code == 0 and "no header row (guessed), delimiter ',' (guessed), label column 3\n" in out
    code, _, err = run(["predict", model, tmp_path / "t.csv"], capsys)
    assert code == 0 and "leaving out column 3" in err


def test_train_says_what_it_guessed_and_takes_the_options(tmp_path, capsys):
    X, labels = clusters()
    write(tmp_path / "semi.csv", table_text(X, labels).replace(",", ";"))
    code, out, _ = run(["train", "--data", tmp_path / "semi.csv", "--epochs", "1", "--figure", "-",
                        "--out", tmp_path / "m.npz"], capsys)
    assert code == 0
    assert "semi.csv: header row (guessed), delimiter ';' (guessed), label column 3 (kind)" in out
    assert "semi.csv: 60 rows, 2 features, 3 classes (cat, dog, eel)" in out
    code, _, err = run(["train", "--data", tmp_path / "semi.csv", "--delimiter", ",", "--epochs", "1",
                        "--out", tmp_path / "m.npz"], capsys)
    one_line_error(code, err, "one column per line", "is the delimiter ';'?")
    code, _, err = run(["train", "--data", tmp_path / "semi.csv", "--no-header", "--epochs", "1",
                        "--out", tmp_path / "m.npz"], capsys)
    one_line_error(code, err, "semi.csv line 1, column 1: expected a number, got 'x1'")
    code, _, err = run(["train", "--data", tmp_path / "semi.csv", "--delimiter", "ab"], capsys)
    assert code == 2 and "--delimiter" in err


@pytest.mark.parametrize("labels, split, words", [
    (["0", "1"], "0.2", "the 20% validation split of 2 row(s) holds no rows"),
    (["0", "1", "0", "1"], "0.9", "no rows left for training after the 90% validation split of 4 row(s)"),
])
def test_a_split_that_leaves_nothing_says_so(tmp_path, capsys, labels, split, words):
    p = labelled(tmp_path, labels)
    code, _, err = run(["train", "--data", p, "--val-split", split, "--epochs", "1", "--out", tmp_path / "m.npz"], capsys)
    one_line_error(code, err, words)


def test_a_typo_in_one_label_is_refused_before_any_network_is_built(tmp_path, capsys, monkeypatch):
    from flexnet.training import network

    built = []
    monkeypatch.setattr(network.Network, "__init__", lambda self, *a, **k: built.append(a))
    p = labelled(tmp_path, ["0", "1", "2"] * 10 + ["20000000"])
    code, _, err = run(["train", "--data", p, "--epochs", "1", "--out", tmp_path / "m.npz"], capsys)
    one_line_error(code, err, "l.csv line 32", "label 20000000 would make 20,000,001 classes")
    assert not built and not (tmp_path / "m.npz").exists()


def test_every_command_that_reads_csv_has_the_table_options(capsys):
    for command in ("train", "evaluate", "predict", "compare", "sweep"):
        code, out, _ = run([command, "--help"], capsys)
        assert code == 0
        assert "--header, --no-header" in out and "--delimiter CHAR" in out and "--label COLUMN" in out, command


# -- memory: within twice the final arrays plus a constant ----------------------------

MEMORY_CHILD = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    import flexnet.data
    engine, path, tiny = sys.argv[1:4]
    flexnet.data.read_csv(tiny, engine=engine)  # lazy imports and thread pools: part of the start
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    X, y = flexnet.data.read_csv(path, engine=engine)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"above_start": (peak - start) * 1024, "arrays": X.nbytes + y.nbytes, "rows": len(X)}))
""")


@pytest.mark.parametrize("engine", ENGINES)
def test_reading_a_table_stays_within_twice_its_arrays(tmp_path, engine):
    # Short cells ("42,"): the float32 array is larger than the file, so a reader that keeps
    # the text as Python strings (50+ bytes a cell) shows at once: the old one took 600 MB here.
    rng = np.random.default_rng(0)
    block = "\n".join(",".join(map(str, r)) for r in rng.integers(10, 100, (1000, 129)).tolist()) + "\n"
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.writelines(block for _ in range(80))  # 80,000 rows x 129 cells, 31 MB; X is 41 MB
    tiny = write(tmp_path / "tiny.csv", "1,2,0\n3,4,1\n")
    proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD, engine, str(path), str(tiny)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert r["rows"] == 80_000
    assert r["above_start"] <= 2 * r["arrays"] + 100 * 2**20, r


def test_python_scores_a_saved_model_on_a_file_by_its_classes(animals, tmp_path):
    import flexnet
    from flexnet.data import model_classes

    _, model = animals
    net = flexnet.load(model)
    assert model_classes(net) == ["cat", "dog", "eel"]
    X, labels = clusters(seed=3)
    keep = [i for i, lab in enumerate(labels) if lab != "cat"]
    write(tmp_path / "dog_eel.csv", table_text(X[keep], [labels[i] for i in keep]))
    ds = datasets.load(str(tmp_path / "dog_eel.csv"), classes=model_classes(net))
    result = flexnet.evaluate(net, flexnet.data.prepare_input(ds.X_train, net.metadata), ds.y_train)
    assert result["accuracy"] == 1.0
    assert model_classes(flexnet.Network([2, 1], loss="bce")) == 2


def test_a_column_of_row_ids_is_not_taken_for_classes(tmp_path):
    ids = [str(i) for i in range(3000)]
    with pytest.raises(DataFileError, match="3,000 distinct labels among 3,000 rows, fewer than two rows a class"):
        datasets.load(str(labelled(tmp_path, ids)))
    with pytest.raises(DataFileError, match="3,000 distinct labels among 3,000 rows"):
        datasets.load(str(labelled(tmp_path, [f"id{i}" for i in ids], "names.csv")))
    ds = datasets.load(str(labelled(tmp_path, [str(i % 1500) for i in range(3000)], "pairs.csv")))
    assert ds.n_classes == 1500  # two rows a class: accepted

"""``flexnet train --data x.parquet`` and ``--data x.csv --stream``: tables read in blocks into a memmap cache.

A table trained through its cache must give the model the same table gives in
memory, bit for bit; the cache is written once and reused; a cache folder that
cannot take it is refused before training, with exit 2 and one line.
"""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

import flexnet
from flexnet.cli import main
from flexnet.data import streaming

pa = pytest.importorskip("pyarrow")  # the 'tables' extra: installed by the test extra
pq = pytest.importorskip("pyarrow.parquet")

TRAIN = ["--epochs", "2", "--quiet", "--figure", "-", "--arch", "6,12,3", "--batch-size", "16"]


def write_tables(folder, n=700, text_labels=True):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 6)) * [1, 10, 100, 1, 0.01, 1] + [0, 5, 0, -3, 0, 0]
    codes = rng.integers(0, 3, n)
    labels = np.array(["cat", "dog", "eel"])[codes] if text_labels else codes
    columns = {f"f{i}": X[:, i] for i in range(6)}
    pq.write_table(pa.table({**columns, "kind": labels}), folder / "t.parquet", row_group_size=150)
    with open(folder / "t.csv", "w") as f:
        f.write(",".join([*columns, "kind"]) + "\n")
        for row, label in zip(X, labels):
            f.write(",".join(repr(float(v)) for v in row) + f",{label}\n")
    return X, labels


def weights(path):
    net = flexnet.load(path)
    return net, [p.copy() for p in net.parameters().values()]


def assert_same_model(a, b):
    net_a, wa = weights(a)
    net_b, wb = weights(b)
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb))
    assert net_a.metadata["scaler"] == net_b.metadata["scaler"]
    assert net_a.metadata.get("class_names") == net_b.metadata.get("class_names")


@pytest.mark.parametrize("scale", ["minmax", "standard"])
def test_parquet_and_csv_stream_train_what_memory_trains(tmp_path, capsys, scale):
    write_tables(tmp_path)
    common = TRAIN + ["--label", "kind", "--scale", scale]
    assert main(["train", "--data", str(tmp_path / "t.csv"), "--out", str(tmp_path / "mem.npz"), *common]) == 0
    assert "cache" not in capsys.readouterr().out
    assert main(["train", "--data", str(tmp_path / "t.csv"), "--stream", "--out", str(tmp_path / "csv.npz"),
                 *common]) == 0
    out = capsys.readouterr().out
    assert "cache" in out and "(written)" in out
    assert main(["train", "--data", str(tmp_path / "t.parquet"), "--out", str(tmp_path / "pq.npz"), *common]) == 0
    assert_same_model(tmp_path / "mem.npz", tmp_path / "csv.npz")
    assert_same_model(tmp_path / "mem.npz", tmp_path / "pq.npz")
    assert flexnet.load(tmp_path / "pq.npz").metadata["class_names"] == ["cat", "dog", "eel"]


def test_the_cache_is_written_once_and_reused(tmp_path, capsys):
    write_tables(tmp_path, text_labels=False)
    cache = tmp_path / "cache"
    args = ["train", "--data", str(tmp_path / "t.parquet"), "--cache", str(cache), *TRAIN]
    assert main([*args, "--out", str(tmp_path / "a.npz")]) == 0
    files = sorted(cache.iterdir())
    assert [f.suffix for f in files] == [".json", ".npy", ".npy"]  # features, labels, what the model keeps
    stamps = [f.stat().st_mtime_ns for f in files]
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "b.npz")]) == 0
    out = capsys.readouterr().out
    assert "(reused)" in out and str(cache) in out
    assert [f.stat().st_mtime_ns for f in sorted(cache.iterdir())] == stamps
    assert_same_model(tmp_path / "a.npz", tmp_path / "b.npz")
    # another split is another cache, beside the first
    assert main([*args, "--val-split", "0.3", "--out", str(tmp_path / "c.npz")]) == 0
    assert len(list(cache.iterdir())) == 6
    features = np.load(files[1], mmap_mode="r")
    assert features.dtype == np.float32 and features.shape == (700, 6)


def test_a_resumed_parquet_run_ends_as_one_never_stopped(tmp_path):
    write_tables(tmp_path)
    data = ["--data", str(tmp_path / "t.parquet"), "--label", "kind"]
    assert main(["train", *data, *TRAIN, "--epochs", "3", "--out", str(tmp_path / "ref.npz")]) == 0
    assert main(["train", *data, *TRAIN, "--epochs", "1", "--out", str(tmp_path / "part.npz")]) == 0
    assert main(["train", "--resume", str(tmp_path / "part.ckpt.npz"), "--epochs", "3", "--quiet",
                 "--out", str(tmp_path / "done.npz")]) == 0
    assert_same_model(tmp_path / "ref.npz", tmp_path / "done.npz")


def test_a_cache_folder_that_cannot_take_the_cache_is_refused_before_training(tmp_path, capsys, monkeypatch):
    write_tables(tmp_path)
    args = ["train", "--data", str(tmp_path / "t.parquet"), "--label", "kind", *TRAIN,
            "--out", str(tmp_path / "m.npz")]
    (tmp_path / "file").write_text("not a folder")
    assert main([*args, "--cache", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert "--cache" in err and "not a folder" in err and "Traceback" not in err

    def no_room(folder):
        return os.statvfs_result((4096, 4096, 1000, 10, 10, 100, 10, 10, 0, 255))

    monkeypatch.setattr(streaming.os, "statvfs", no_room)
    assert main([*args, "--cache", str(tmp_path / "small")]) == 2
    err = capsys.readouterr().err
    assert "--cache" in err and "needs" in err and "free" in err and len(err.strip().splitlines()) == 1
    monkeypatch.undo()

    def read_only(path):
        raise OSError(errno.EROFS, f"cannot write {path}: Read-only file system")

    monkeypatch.setattr(streaming, "check_writable", read_only)
    assert main([*args, "--cache", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    assert "--cache" in err and "no file can be written" in err
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "m.ckpt.npz").exists()  # nothing trained
    for folder in ("small", "ro"):
        assert list((tmp_path / folder).iterdir()) == []  # and nothing left behind


def test_bad_parquet_tables_are_named(tmp_path, capsys):
    base = {"a": [1.0, 2.0, 3.0, 4.0], "b": [0.5, 0.1, 0.2, 0.3], "y": [0, 1, 0, 1]}
    cases = {
        "null.parquet": ({**base, "b": [0.5, None, 0.2, 0.3]}, "row 1, column 'b': missing value"),
        "text.parquet": ({**base, "a": ["x", "y", "z", "w"]}, "column 'a' holds string"),
        "nolabel.parquet": (base, "no column named 'kind'"),
    }
    for name, (columns, expected) in cases.items():
        pq.write_table(pa.table(columns), tmp_path / name)
        label = ["--label", "kind"] if name == "nolabel.parquet" else []
        assert main(["train", "--data", str(tmp_path / name), *label, *TRAIN[:-4],
                     "--out", str(tmp_path / "m.npz")]) == 2, name
        err = capsys.readouterr().err
        assert expected in err and name in err, err
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    assert main(["train", "--data", str(tmp_path / "junk.parquet"), "--out", str(tmp_path / "m.npz")]) == 2
    assert "not a readable Parquet file" in capsys.readouterr().err


def test_tables_that_would_train_wrongly_are_refused(tmp_path, capsys):
    base = {"a": [1.0, 2.0, 3.0, 4.0], "b": [0.5, 0.1, 0.2, 0.3], "y": ["u", "v", "u", "v"]}
    cases = {
        "zero.parquet": (pa.table({k: pa.array([], pa.float64()) for k in "aby"}), "the table has no rows"),
        "blank.parquet": (pa.table({**base, "y": ["u", "  ", "u", "v"]}), "row 1, column 'y': missing label"),
        # two columns named alike: reading by name would give one of them twice
        "twice.parquet": (pa.Table.from_arrays([pa.array(base["a"]), pa.array(base["b"]), pa.array(base["y"])],
                                               names=["a", "a", "y"]), "column name 'a' is used by 2 columns"),
    }
    for name, (table, expected) in cases.items():
        pq.write_table(table, tmp_path / name)
        assert main(["train", "--data", str(tmp_path / name), *TRAIN[:-4], "--out", str(tmp_path / "m.npz")]) == 2
        err = capsys.readouterr().err
        assert expected in err and name in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m.npz").exists()
    # a damaged page (here the first page header) is named by file and rows, as a table's other faults
    pq.write_table(pa.table({"a": np.arange(40.0), "y": np.arange(40) % 2}), tmp_path / "ok.parquet",
                   compression="none")
    damaged = bytearray((tmp_path / "ok.parquet").read_bytes())
    damaged[4:60] = b"\xff" * 56
    (tmp_path / "damaged.parquet").write_bytes(bytes(damaged))
    assert main(["train", "--data", str(tmp_path / "damaged.parquet"), *TRAIN[:-4], "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert "damaged.parquet rows 0..39: cannot be read" in err and len(err.strip().splitlines()) == 1, err


def test_integers_past_two_to_the_53_are_read_as_numpy_converts_them(tmp_path, capsys):
    big = np.array([2**60 + 1, 0, 2**64 - 1, 7] * 5, dtype=np.uint64)
    pq.write_table(pa.table({"a": pa.array(big, pa.uint64()), "b": np.arange(20.0), "y": np.arange(20) % 2}),
                   tmp_path / "big.parquet")
    assert main(["train", "--data", str(tmp_path / "big.parquet"), "--scale", "none", *TRAIN[:-4],
                 "--out", str(tmp_path / "m.npz")]) == 0, capsys.readouterr().err
    cache = [p for p in tmp_path.glob("big.*.npy") if not p.name.endswith(".y.npy")]
    assert np.array_equal(np.load(cache[0])[:, 0], big.astype(np.float32))


def test_a_disk_that_fills_while_the_cache_is_written_is_refused_cleanly(tmp_path, capsys, monkeypatch):
    """The free-space check passes, then the disk fills: an error, never a crash (SIGBUS) through the mapping."""
    write_tables(tmp_path)

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(streaming.os, "posix_fallocate", full, raising=False)
    args = ["train", "--data", str(tmp_path / "t.parquet"), "--label", "kind", *TRAIN, "--out", str(tmp_path / "m.npz")]
    assert main([*args, "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "--cache" in err and "No space left" in err and len(err.strip().splitlines()) == 1, err
    assert list((tmp_path / "c").iterdir()) == [] and not (tmp_path / "m.npz").exists()
    monkeypatch.undo()
    assert main([*args, "--cache", ""]) == 2
    assert "--cache: expected a folder" in capsys.readouterr().err
    # the cache where the model goes: refused before training, not found when saving after it
    args[args.index("--out") + 1] = str(tmp_path / "same")
    assert main([*args, "--cache", str(tmp_path / "same")]) == 2
    err = capsys.readouterr().err
    assert "the same path as --out" in err and not (tmp_path / "same").exists()


def test_stream_and_cache_are_refused_where_they_mean_nothing(tmp_path, capsys):
    out = ["--out", str(tmp_path / "m.npz"), *TRAIN[:2]]
    assert main(["train", "--data", "edges", "--stream", *out]) == 2
    assert "--stream reads a .csv file" in capsys.readouterr().err
    assert main(["train", "--data", "edges", "--cache", str(tmp_path), *out]) == 2
    assert "read into memory" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()


def test_a_streamed_run_resumes_read_either_way(tmp_path, capsys):
    """--stream and --cache say how the table is read, not what is trained: a resume may change them."""
    write_tables(tmp_path)
    data = ["--data", str(tmp_path / "t.csv"), "--label", "kind"]
    assert main(["train", *data, *TRAIN, "--epochs", "3", "--out", str(tmp_path / "ref.npz")]) == 0
    assert main(["train", *data, "--stream", "--cache", str(tmp_path / "c1"), *TRAIN, "--epochs", "1",
                 "--out", str(tmp_path / "part.npz")]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "part.ckpt.npz"), "--epochs", "2", "--quiet",
                 "--cache", str(tmp_path / "c2"), "--out", str(tmp_path / "two.npz")]) == 0
    assert "cache" in capsys.readouterr().err  # said, and applied
    assert len(list((tmp_path / "c2").iterdir())) == 3
    assert main(["train", "--resume", str(tmp_path / "two.ckpt.npz"), "--epochs", "3", "--quiet", "--no-stream",
                 "--out", str(tmp_path / "done.npz")]) == 0
    assert_same_model(tmp_path / "ref.npz", tmp_path / "done.npz")

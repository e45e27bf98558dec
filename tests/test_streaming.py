"""Data that is not in memory: memmaps, .npy paths and Dask arrays in fit, evaluate and predict.

The same seed must give bit-identical weights from each source and from the
array in memory; checks walk the data a block at a time; a run stopped in the
middle of a streamed epoch resumes exactly; and a subprocess trains on a file
larger than the memory it is allowed to use.
"""

import os
import pickle
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import flexnet
from flexnet import TrainingInterrupted
from flexnet.data import sources
from flexnet.files.archive import read_archive
from flexnet.training.callbacks import Callback
from flexnet.training.loop import FitLoop

da = pytest.importorskip("dask.array")  # the test extra installs dask


def make_data(n=600, d=12, classes=3, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    X = (rng.normal(0, 2, size=(classes, d))[y] + rng.normal(size=(n, d))).astype(dtype)
    return X, y


def save_npy(tmp_path, X, name="x.npy"):
    path = tmp_path / name
    np.save(path, X)
    return path


def train(X, y, epochs=3, **kw):
    net = flexnet.Network([X.shape[1] if hasattr(X, "shape") else 12, 16, 3], seed=1, dropout=0.1)
    kw.setdefault("batch_size", 32)
    hist = net.fit(X, y, epochs=epochs, seed=5, lr=0.05, **kw)
    return net, hist


def weights(net):
    return {k: v.copy() for k, v in net.parameters().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def sources_of(tmp_path, X):
    path = save_npy(tmp_path, X)
    mm = np.load(path, mmap_mode="r")
    return {
        "memmap": mm,
        "np.memmap": np.memmap(path, dtype=X.dtype, mode="r", offset=mm.offset, shape=X.shape),
        "npy path": str(path),
        "dask": da.from_array(X, chunks=(97, X.shape[1])),
        "dask over a memmap": da.from_array(mm, chunks=(250, X.shape[1])),
        "dask, one chunk": da.from_array(X, chunks=X.shape),
    }


@pytest.mark.parametrize("kw", [{}, {"validation_split": 0.25}, {"shuffle": False},
                                {"diagnostics": True, "validation_split": 0.1, "batch_size": 50}],
                         ids=["shuffle", "split", "no-shuffle", "diagnostics"])
def test_every_source_trains_bit_identical_weights(tmp_path, kw):
    X, y = make_data()  # float64 on disk, float32 network: converted a batch at a time
    ref, ref_hist = train(X, y, **kw)
    for name, src in sources_of(tmp_path, X).items():
        net, hist = train(src, y, **kw)
        assert_same(weights(net), weights(ref))
        for key in ref_hist.history:
            if key != "time":  # losses, accuracies, gradient norms, dead ReLUs...
                assert hist.history[key] == ref_hist.history[key], (name, key)


def test_validation_data_and_targets_from_disk(tmp_path):
    X, y = make_data(dtype=np.float32)
    Xv, yv = make_data(n=200, dtype=np.float32, seed=3)
    onehot = np.eye(3, dtype=np.float32)[y]
    ref, ref_hist = train(X, onehot, validation_data=(Xv, yv))
    mm_y = np.load(save_npy(tmp_path, onehot, "y.npy"), mmap_mode="r")
    net, hist = train(str(save_npy(tmp_path, X)), mm_y,
                      validation_data=(da.from_array(Xv, chunks=(64, 12)), da.from_array(yv, chunks=64)))
    assert_same(weights(net), weights(ref))
    assert hist.history["val_loss"] == ref_hist.history["val_loss"]
    assert hist.history["val_accuracy"] == ref_hist.history["val_accuracy"]


def test_a_split_holds_out_rows_without_copying_them(tmp_path):
    X, y = make_data()
    net = flexnet.Network([12, 8, 3], seed=0)
    loop = FitLoop(
        net, np.load(save_npy(tmp_path, X), mmap_mode="r"), y, epochs=1, batch_size=16, optimizer=None,
        lr=0.1, validation_data=None, validation_split=0.2, shuffle=True, callbacks=(), scheduler=None,
        seed=0, progress=False, diagnostics=False, checkpoint=None, checkpoint_every=1)
    assert isinstance(loop.X, sources.Rows) and isinstance(loop.Xv, sources.Rows)
    assert len(loop.X) + len(loop.Xv) == len(X)
    assert np.array_equal(loop.Xv[:], X[loop.val_index].astype(np.float32))


def test_evaluate_and_predict_stream_and_agree(tmp_path):
    X, y = make_data(n=9000)  # more rows than one evaluation chunk
    net, _ = train(X[:600], y[:600], epochs=1)
    expected = flexnet.evaluate(net, X, y)
    for name, src in sources_of(tmp_path, X).items():
        assert flexnet.evaluate(net, src, y) == expected, name
        assert np.array_equal(net.predict(src), net.predict(X)), name
        assert np.array_equal(net.predict_proba(src), net.predict_proba(X)), name


def test_bad_rows_are_named_wherever_they_lie(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "BLOCK_BYTES", 1000)  # many blocks: the row number must be global
    X, y = make_data()
    X[437, 3] = np.nan
    for name, src in sources_of(tmp_path, X).items():
        with pytest.raises(ValueError, match="fit\\(X\\): row 437 holds NaN"):
            train(src, y)
    bad = y.copy()
    bad[512] = 7
    with pytest.raises(ValueError, match="label 7 at row 512"):
        train(da.from_array(make_data()[0], chunks=100), bad)
    with pytest.raises(ValueError, match="X has 600 rows but y has 599"):
        train(str(save_npy(tmp_path, make_data()[0], "ok.npy")), y[:-1])


def test_refusals_name_the_input(tmp_path):
    X, y = make_data()
    with pytest.raises(ValueError, match="2-D input"):
        train(str(save_npy(tmp_path, X.reshape(600, 3, 4), "three.npy")), y)
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        train(str(tmp_path / "missing.npy"), y)
    (tmp_path / "folder.npy").mkdir()
    with pytest.raises(OSError, match="folder.npy"):
        train(str(tmp_path / "folder.npy"), y)
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError, match="junk.npy"):
        train(str(tmp_path / "junk.npy"), y)
    with pytest.raises(TypeError, match="numeric"):
        train(str(save_npy(tmp_path, np.array([["a"] * 12] * 600), "text.npy")), y)
    with pytest.raises(ValueError, match="shuffle='window'.*in memory"):
        train(X, y, shuffle="window")
    with pytest.raises(ValueError, match="shuffle"):
        train(da.from_array(X, chunks=100), y, shuffle="window:0")
    for spelling in ("window:-1", "windows", "window:abc", "window:", "window:1.5"):
        with pytest.raises(ValueError, match="fit\\(shuffle\\)"):
            train(da.from_array(X, chunks=100), y, shuffle=spelling)
    with pytest.raises(TypeError, match="fit\\(shuffle\\)"):  # not read as a true value: an exact shuffle
        train(da.from_array(X, chunks=100), y, shuffle=b"window")


def test_hostile_inputs_are_refused_naming_the_argument(tmp_path):
    X, y = make_data()
    net = flexnet.Network([12, 16, 3], seed=1)
    with pytest.raises(FileNotFoundError, match=r"fit\(X\): no such file"):
        train(str(tmp_path / "missing.npy"), y)
    with pytest.raises(FileNotFoundError, match=r"evaluate\(X\): no such file"):
        flexnet.evaluate(net, str(tmp_path / "missing.npy"), y)
    # a path that names some other file: refused as a path, not read as a string array
    (tmp_path / "x.csv").write_text("1,2\n")
    for call in (lambda p: train(p, y), lambda p: net.predict(p), lambda p: flexnet.evaluate(net, p, y)):
        with pytest.raises(ValueError, match=r"\([Xx]\).*path of a \.npy file.*x\.csv"):
            call(str(tmp_path / "x.csv"))
        with pytest.raises(ValueError, match=r"path of a \.npy file"):
            call(tmp_path / "x.csv")
    with pytest.raises(TypeError, match="path of a .npy file"):  # (a text is no array either)
        net.predict("hello")
    with pytest.raises(ValueError, match=r"fit\(y\).*path of a \.npy file"):
        train(str(save_npy(tmp_path, X)), str(tmp_path / "y.txt"))
    # a header that claims gigabytes is refused before numpy reads it
    (tmp_path / "huge.npy").write_bytes(b"\x93NUMPY\x02\x00" + (2**31).to_bytes(4, "little") + b"{}" * 8)
    with pytest.raises(ValueError, match="huge.npy.*header claims"):
        net.predict(str(tmp_path / "huge.npy"))
    (tmp_path / "long.npy").write_bytes(b"\x93NUMPY\x01\x00" + (20000).to_bytes(2, "little") + b" " * 20000)
    with pytest.raises(ValueError, match="long.npy.*header claims") as refused:
        net.predict(str(tmp_path / "long.npy"))
    assert "allow_pickle" not in str(refused.value)  # never advice to unpickle
    # a pickle or a zip (.npz) named .npy is refused by its first bytes, never handed to a loader
    class Loud:
        def __reduce__(self):
            return (print, ("unpickled",))

    (tmp_path / "pickled.npy").write_bytes(pickle.dumps(Loud()))
    np.savez(tmp_path / "zipped.npz", X=X)
    (tmp_path / "zipped.npz").rename(tmp_path / "zipped.npy")
    for name in ("pickled.npy", "zipped.npy"):
        for call in (lambda p: train(p, y), lambda p: train(X, p)):
            with pytest.raises(ValueError, match=rf"{name} is not a \.npy array.*x93NUMPY") as refused:
                call(str(tmp_path / name))
            assert "allow_pickle" not in str(refused.value)
    # labels from a file beside inputs in memory, as beside inputs on disk
    np.save(tmp_path / "y.npy", y)
    assert_same(weights(train(X, str(tmp_path / "y.npy"))[0]), weights(train(X, y)[0]))
    # a Dask array whose chunk sizes are unknown until computed
    dx = da.from_array(X, chunks=(100, 12))
    unknown = dx[dx[:, 0] > -1e9]
    for call in (lambda: train(unknown, y), lambda: net.predict(unknown), lambda: flexnet.evaluate(net, unknown, y)):
        with pytest.raises(ValueError, match=r"\([Xx]\): a Dask array with unknown chunk sizes.*compute_chunk_sizes"):
            call()


# -- windowed shuffling ---------------------------------------------------------


class Orders(Callback):
    """Records the row order of every epoch."""

    def __init__(self):
        self.orders = []

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        if batch == 1:
            self.orders.append(self.loop.perm.copy())


def test_a_windowed_shuffle_sees_every_row_once_per_epoch_in_a_seeded_order():
    X, y = make_data(n=1000)
    dx = da.from_array(X, chunks=(100, 12))
    rec, again, other = Orders(), Orders(), Orders()
    train(dx, y, epochs=3, shuffle="window:3", callbacks=[rec])
    train(dx, y, epochs=3, shuffle="window:3", callbacks=[again])
    net = flexnet.Network([12, 16, 3], seed=1)
    net.fit(dx, y, epochs=1, batch_size=32, seed=6, shuffle="window:3", callbacks=[other])
    assert len(rec.orders) == 3
    for order in rec.orders:
        assert np.array_equal(np.sort(order), np.arange(1000))  # every row, once
        windows = [set(order[i:i + 300] // 100) for i in range(0, 1000, 300)]
        assert all(len(w) <= 3 for w in windows)  # each window holds the rows of 3 chunks
        assert not np.array_equal(order, np.arange(1000))
    assert not np.array_equal(rec.orders[0], rec.orders[1])  # a new order every epoch
    for a, b in zip(rec.orders, again.orders):
        assert np.array_equal(a, b)  # the same for the same seed
    assert not np.array_equal(rec.orders[0], other.orders[0])


def test_window_order_on_a_split_keeps_chunks_together():
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(7), [5, 9, 1, 12, 3, 8, 2])
    order = sources.window_order(rng, ids, 2)
    assert np.array_equal(np.sort(order), np.arange(len(ids)))
    chunks_seen = ids[order]
    # the window of each row: consecutive chunks of a permutation, two at a time
    changes = [c for i, c in enumerate(chunks_seen) if c not in chunks_seen[:i]]
    for w in range(0, 7, 2):
        members = set(changes[w:w + 2])
        rows = [i for i, c in enumerate(chunks_seen) if c in members]
        assert rows == list(range(rows[0], rows[0] + len(rows)))


def test_a_windowed_shuffle_trains_from_cached_chunks(monkeypatch):
    X, y = make_data(n=1000)
    computed = []
    real = sources.DaskRows._compute

    def counting(self, lazy):
        computed.append(lazy.shape[0])
        return real(self, lazy)

    monkeypatch.setattr(sources.DaskRows, "_compute", counting)
    train(da.from_array(X, chunks=(100, 12)), y, epochs=2, shuffle="window:2")
    # each epoch reads each chunk about once (a batch across two windows reads its rows alone)
    assert sum(computed) <= 2 * 1000 * 1.2 + 1000  # + the checks' one pass


# -- exact resume in a streamed epoch ---------------------------------------------


class CtrlC(Callback):
    def on_batch_end(self, batch, logs=None):
        if self.loop.epoch == 1 and batch == 7:  # in the middle of the second epoch
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("kind", ["memmap", "dask", "window"])
def test_resume_in_the_middle_of_a_streamed_epoch_is_bit_identical(tmp_path, kind):
    X, y = make_data(n=500, dtype=np.float32)
    path = save_npy(tmp_path, X)
    kw = {"validation_split": 0.2}
    if kind == "memmap":
        src = lambda: np.load(path, mmap_mode="r")  # noqa: E731
    else:
        src = lambda: da.from_array(np.load(path, mmap_mode="r"), chunks=(60, 12))  # noqa: E731
        if kind == "window":
            kw["shuffle"] = "window:2"
    ref, ref_hist = train(src(), y, epochs=4, **kw)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(TrainingInterrupted) as info:
        train(src(), y, epochs=4, checkpoint=ckpt, callbacks=[CtrlC()], **kw)
    assert (info.value.epoch, info.value.step) == (1, 7)
    header, arrays = read_archive(ckpt)
    assert max(a.nbytes for a in arrays.values()) < X.nbytes / 4  # row numbers, never the rows
    net, hist = train(src(), y, epochs=4, resume=ckpt, **kw)
    assert_same(weights(net), weights(ref))
    assert hist.history["val_loss"] == ref_hist.history["val_loss"]
    if kind == "memmap":  # the data's fingerprint is that of its values: memory resumes it too
        net, _ = train(X, y, epochs=4, resume=ckpt, **kw)
        assert_same(weights(net), weights(ref))


def test_resume_refuses_other_data_on_disk(tmp_path):
    X, y = make_data(n=300, dtype=np.float32)
    ckpt = tmp_path / "run.ckpt"
    train(str(save_npy(tmp_path, X)), y, epochs=1, checkpoint=ckpt)
    X2 = X.copy()
    X2[299, 0] += 1
    with pytest.raises(flexnet.files.model_file.ModelFileError, match="training data"):
        train(str(save_npy(tmp_path, X2, "other.npy")), y, epochs=2, resume=ckpt)


# -- memory -------------------------------------------------------------------------

MEMORY_SCRIPT = textwrap.dedent("""
    import sys, threading, time
    import numpy as np
    import flexnet

    def anon_kib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])

    path, rows = sys.argv[1], int(sys.argv[2])
    y = np.arange(rows) % 10
    net = flexnet.Network([784, 16, 10], seed=0)
    net.fit(np.zeros((64, 784), np.float32), y[:64], epochs=1, batch_size=64)  # warm up the code paths
    base = anon_kib()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anon_kib())
            time.sleep(0.002)

    t = threading.Thread(target=sample)
    t.start()
    net.fit(path, y, epochs=1, batch_size=256, seed=0, validation_split=0.1, threads=1)
    flexnet.evaluate(net, path, y)
    done.set()
    t.join()
    print((peak[0] - base) // 1024)
""")


def test_training_on_a_file_keeps_anonymous_memory_bounded(tmp_path):
    rows = 60_000  # a 376 MB file of float64, read as float32: a copy alone would add 188 MB
    path = tmp_path / "big.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(rows, 784))
    for start in range(0, rows, 10_000):
        mm[start:start + 10_000] = np.random.default_rng(start).random((10_000, 784))
    mm.flush()
    del mm
    script = tmp_path / "mem.py"
    script.write_text(MEMORY_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(path), str(rows)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    grew_mib = int(proc.stdout.split()[-1])
    assert grew_mib < 100, f"training on a {path.stat().st_size >> 20} MiB file took {grew_mib} MiB more"


# -- sweeps ----------------------------------------------------------------------------


def test_a_sweep_on_a_file_shares_it_by_name_and_matches_memory(tmp_path):
    import importlib
    import pickle

    sw = importlib.import_module("flexnet.experiments.sweep")
    X, y = make_data(n=300)
    path = save_npy(tmp_path, X)
    grid = {"arch": [[12, 8, 3]], "lr": 0.05, "batch_size": 16, "seed": [0, 1]}
    in_memory = sw.sweep((X, y), grid, epochs=2, save_best=False)
    shared = sw.prepare_data((str(path), y), val_split=0.2)
    assert isinstance(shared.X, sources.Rows) and isinstance(shared.X_val, sources.Rows)
    assert len(pickle.dumps(shared.X)) < 4000  # the file's name and the rows' numbers, never the rows
    assert shared.fingerprint() == sw.prepare_data((X, y), val_split=0.2).fingerprint()
    for data, jobs in (((str(path), y), 1), ((np.load(path, mmap_mode="r"), y), 2)):
        result = sw.sweep(data, grid, epochs=2, jobs=jobs, save_best=False)
        strip = [{k: v for k, v in t.items() if k not in ("seconds", "worker")} for t in result.trials]
        assert strip == [{k: v for k, v in t.items() if k not in ("seconds", "worker")}
                         for t in in_memory.trials]


def test_sample_weights_with_data_on_disk_equal_those_in_memory(tmp_path):
    """Weighted training reads its rows from a memmap exactly as from memory,
    with a validation split holding rows (and their weights) out by index."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(96, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    w = rng.uniform(0.2, 3.0, size=96)
    path = tmp_path / "x.npy"
    np.save(path, X)
    nets = []
    for source in (X, str(path)):
        net = flexnet.Network([6, 8, 2], seed=0)
        net.fit(source, y, epochs=3, batch_size=16, sample_weight=w, validation_split=0.25, seed=1,
                progress=False)
        nets.append(net)
    for (name, a), b in zip(nets[0].parameters().items(), nets[1].parameters().values()):
        assert np.array_equal(a, b), name

"""Checkpoints and exact resume.

The central test trains in a real subprocess, kills it with SIGKILL at
several points, resumes from the checkpoint each time, and checks that the
final weights are bit-identical to a run that was never stopped. The model
uses dropout, batch normalisation, Adam, a cosine schedule with warm-up,
early stopping and a validation split, so every generator and every piece
of state has to survive the round trip.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import flexnet
from flexnet import EarlyStopping, TrainingInterrupted
from flexnet.files.model_file import ModelFileError
from flexnet.optim import Adam
from flexnet.optim.schedules import CosineWarmup
from flexnet.training.callbacks import Callback

SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import flexnet
    from flexnet.training.callbacks import Callback
    from flexnet.optim import Adam
    from flexnet.optim.schedules import CosineWarmup

    ckpt, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    rng = np.random.default_rng(0)
    y = np.arange(300) % 10
    X = (rng.normal(0, 2, size=(10, 64))[y] + rng.normal(size=(300, 64))).astype("float32")
    net = flexnet.Network([64, 32, 10], dropout=0.3, batchnorm=True, seed=1)
    opt = Adam(lr=0.01)

    class Slow(Callback):  # keeps the run alive long enough to be killed mid-way
        def on_batch_end(self, batch, logs=None):
            time.sleep(0.004)

    kw = dict(epochs=8, batch_size=16, optimizer=opt,
              scheduler=CosineWarmup(opt, 8, warmup_epochs=2, min_lr=1e-4), validation_split=0.2,
              seed=2, callbacks=[flexnet.EarlyStopping(patience=50), Slow()])
    if mode != "ref":
        kw.update(checkpoint=ckpt, checkpoint_every="2 batches")
    if mode == "resume":
        kw.update(resume=ckpt)
    try:
        h = flexnet.fit(net, X, y, **kw)
    except flexnet.TrainingInterrupted as exc:
        print(exc)
        sys.exit(3)
    np.savez(out, **net.parameters(), **dict(net.named_buffers()))
    print("epochs", len(h.epoch))
""")

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def start(tmp_path, mode, out="out.npz"):
    return subprocess.Popen(
        [sys.executable, str(tmp_path / "train.py"), str(tmp_path / "ckpt.npz"), str(tmp_path / out), mode],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def wait_for_checkpoints(proc, path, count, timeout=20.0):
    """Return once ``path`` has been (re)written ``count`` times, or the process ended."""
    seen, last, end = 0, mtime(path), time.monotonic() + timeout
    while seen < count and proc.poll() is None and time.monotonic() < end:
        now = mtime(path)
        if now != last:
            seen, last = seen + 1, now
        time.sleep(0.001)
    return seen


def load_out(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture
def reference(tmp_path):
    (tmp_path / "train.py").write_text(SCRIPT)
    proc = start(tmp_path, "ref", "ref.npz")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return load_out(tmp_path / "ref.npz")


def assert_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_sigkill_at_several_points_then_resume_is_bit_identical(tmp_path, reference):
    ckpt = tmp_path / "ckpt.npz"
    kills = 0
    # Kill after 3, 10 and 25 more checkpoint writes, at staggered delays so that
    # some kills land mid-batch or mid-write rather than right after a write.
    for count, delay in [(3, 0.0), (10, 0.003), (25, 0.007)]:
        proc = start(tmp_path, "resume" if ckpt.exists() else "fresh")
        seen = wait_for_checkpoints(proc, ckpt, count)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=30)
        assert seen > 0
        flexnet.io.read_archive(ckpt)  # the checkpoint on disk is always whole
    assert kills >= 2, "the run finished before it could be killed; slow it down"
    proc = start(tmp_path, "resume")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert_identical(load_out(tmp_path / "out.npz"), reference)


def test_sigterm_writes_a_checkpoint_and_says_how_to_resume(tmp_path, reference):
    ckpt = tmp_path / "ckpt.npz"
    proc = start(tmp_path, "fresh")
    wait_for_checkpoints(proc, ckpt, 5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert "interrupted at" in out and f"resume='{ckpt}'" in out
    proc = start(tmp_path, "resume")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert_identical(load_out(tmp_path / "out.npz"), reference)


# -- in-process checks ---------------------------------------------------------------


def data(n=90):
    rng = np.random.default_rng(3)
    y = np.arange(n) % 3
    X = (rng.normal(0, 3, size=(3, 5))[y] + rng.normal(size=(n, 5))).astype("float32")
    return X, y


def run(epochs, X, y, **kw):
    net = flexnet.Network([5, 12, 3], dropout=0.2, seed=4)
    opt = Adam(lr=0.01)
    kw.setdefault("callbacks", [])
    history = flexnet.fit(net, X, y, epochs=epochs, batch_size=8, optimizer=opt,
                          scheduler=CosineWarmup(opt, epochs, warmup_epochs=1, min_lr=1e-4), validation_split=0.2,
                          seed=5, **kw)
    return net, history


def params(net):
    return {k: v.copy() for k, v in net.parameters().items()}


def test_ctrl_c_checkpoints_the_last_batch_and_resume_matches(tmp_path):
    X, y = data()
    ref, ref_hist = run(4, X, y, callbacks=[EarlyStopping(patience=10)])

    class CtrlC(Callback):
        def on_batch_end(self, batch, logs=None):
            if self.loop.epoch == 1 and batch == 4:  # during the second epoch
                os.kill(os.getpid(), signal.SIGINT)

    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(TrainingInterrupted) as info:
        run(4, X, y, checkpoint=ckpt, callbacks=[EarlyStopping(patience=10), CtrlC()])
    assert isinstance(info.value, KeyboardInterrupt)
    assert (info.value.epoch, info.value.step) == (1, 4)
    assert "epoch 2, batch 4" in str(info.value) and "resume=" in str(info.value)
    net, hist = run(4, X, y, resume=ckpt, callbacks=[EarlyStopping(patience=10), Callback()])
    assert all(np.array_equal(a, b) for a, b in zip(params(net).values(), params(ref).values()))
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert hist.history[key] == ref_hist.history[key]
    # The default SIGINT handler is back after fit.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_checkpoint_every_n_epochs_holds_the_epoch_and_no_row_order(tmp_path):
    X, y = data()
    ckpt = tmp_path / "a.npz"
    times = []

    class Watch(Callback):
        def on_epoch_end(self, epoch, logs=None):
            times.append(mtime(ckpt))

    run(4, X, y, checkpoint=ckpt, checkpoint_every="2 epochs", callbacks=[Watch()])
    # Seen at each epoch's end (before that epoch's checkpoint): none, none, after 2, after 2.
    assert times[0] is None and times[1] is None and times[2] == times[3] is not None
    header, arrays = flexnet.io.read_archive(ckpt)
    assert header["format"] == "flexnet-checkpoint"
    assert (header["training"]["epoch"], header["training"]["step"]) == (4, 0)
    assert "train/perm" not in arrays  # between epochs: the next order is drawn on resume
    net, h = run(4, X, y, resume=ckpt, callbacks=[Callback()])
    assert h.epoch == [1, 2, 3, 4]  # nothing left to do


def test_resume_continues_from_an_epoch_boundary(tmp_path):
    X, y = data()
    ref, ref_hist = run(5, X, y)
    ckpt = tmp_path / "b.npz"
    # A run of 5 epochs killed after epoch 3 is the same as one that wrote its epoch-3 checkpoint last.

    class Crash(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 3:
                raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        run(5, X, y, checkpoint=ckpt, callbacks=[Crash()])
    header, _ = flexnet.io.read_archive(ckpt)
    assert (header["training"]["epoch"], header["training"]["step"]) == (2, 0)
    net, hist = run(5, X, y, resume=ckpt, callbacks=[Callback()])
    assert all(np.array_equal(a, b) for a, b in zip(params(net).values(), params(ref).values()))
    assert hist.epoch == [1, 2, 3, 4, 5] and hist.history["val_loss"] == ref_hist.history["val_loss"]


def test_a_checkpoint_loads_as_a_model(tmp_path):
    X, y = data()
    ckpt = tmp_path / "c.npz"
    net, _ = run(2, X, y, checkpoint=ckpt)
    loaded = flexnet.io.load(ckpt)
    assert np.array_equal(loaded.predict_proba(X), net.predict_proba(X))


def test_resume_refuses_other_data_settings_or_network(tmp_path):
    X, y = data()
    ckpt = tmp_path / "d.npz"
    run(2, X, y, checkpoint=ckpt)
    X2 = X.copy()
    X2[0, 0] += 1
    with pytest.raises(ModelFileError, match="training data"):
        run(3, X2, y, resume=ckpt)
    with pytest.raises(ModelFileError, match="callbacks"):
        run(3, X, y, resume=ckpt, callbacks=[EarlyStopping()])
    net = flexnet.Network([5, 7, 3], seed=0)
    with pytest.raises(ModelFileError) as info:
        flexnet.fit(net, X, y, epochs=2, batch_size=4, resume=ckpt)
    text = str(info.value)
    assert "architecture" in text and "batch_size" in text  # every problem at once
    model = tmp_path / "model.npz"
    flexnet.io.save(net, model)
    with pytest.raises(ModelFileError, match="not a checkpoint"):
        flexnet.fit(net, X, y, resume=model)
    with pytest.raises(ModelFileError, match="no such file"):
        flexnet.fit(net, X, y, resume=tmp_path / "missing.npz")


def test_resume_refuses_fewer_epochs_than_done(tmp_path):
    X, y = data()
    ckpt = tmp_path / "e.npz"
    run(3, X, y, checkpoint=ckpt)
    with pytest.raises(ModelFileError, match="already trained 3 epochs"):
        run(2, X, y, resume=ckpt)


@pytest.mark.parametrize("key, value", [("history", 3), ("settings", []), ("epoch", "two")])
def test_a_malformed_checkpoint_changes_nothing(tmp_path, key, value):
    """A resume that fails while restoring leaves the network and optimizer as they were."""
    from flexnet.files.archive import read_archive, write_archive

    X, y = data()
    ckpt = tmp_path / "f.npz"
    run(2, X, y, checkpoint=ckpt)
    header, arrays = read_archive(ckpt)
    header.pop("arrays")  # write_archive lists the arrays itself
    header["training"][key] = value
    write_archive(ckpt, header, arrays)
    net = flexnet.Network([5, 12, 3], dropout=0.2, seed=4)
    opt = Adam(lr=0.01)
    scheduler = CosineWarmup(opt, 3, warmup_epochs=1, min_lr=1e-4)
    before = {k: v.copy() for k, v in net.parameters().items()}
    lr = opt.lr
    with pytest.raises(ModelFileError):
        flexnet.fit(net, X, y, epochs=3, batch_size=8, optimizer=opt, validation_split=0.2, seed=5,
                    scheduler=scheduler, resume=ckpt)
    for k, v in net.parameters().items():
        np.testing.assert_array_equal(v, before[k])
    assert opt.state == {} and opt.lr == lr


def test_a_stop_after_the_last_batch_of_an_epoch_resumes(tmp_path):
    """Interrupted after an epoch's last batch but before its end (validation, callbacks):
    the checkpoint's step equals the number of batches, and resuming finishes the epoch."""
    X, y = data()
    reference, _ = run(3, X, y)

    class StopAfterLastBatch(Callback):
        def on_batch_end(self, batch, logs=None):
            if self.loop.epoch == 1 and batch == self.loop.n_batches:
                self.loop.interrupt_requested = True  # what Ctrl-C sets

    ckpt = tmp_path / "g.npz"
    with pytest.raises(TrainingInterrupted):
        run(3, X, y, checkpoint=ckpt, callbacks=[StopAfterLastBatch()])
    net, _ = run(3, X, y, checkpoint=ckpt, resume=ckpt)
    for name, value in params(reference).items():
        np.testing.assert_array_equal(net.parameters()[name], value, err_msg=name)

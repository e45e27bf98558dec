"""The loggers: TensorBoard event files read back with TensorBoard's own reader, and the
CSV log, each compared with the History of the same run; both through interruption,
divergence and resume, and through `flexnet train --tensorboard / --csv-log`."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import flexnet
from flexnet.cli import main
from flexnet.optim import SGD, StepLR
from flexnet.training.callbacks import Callback


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = (rng.normal(0, 2, size=(3, 6))[y] + rng.normal(size=(n, 6))).astype("float32")
    return X, y


def read_events(folder) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def scalar_series(acc, tag):
    return [e.step for e in acc.Scalars(tag)], [e.value for e in acc.Scalars(tag)]


def assert_events_equal_history(acc, history):
    assert set(acc.Tags()["scalars"]) == set(history.history)
    for key, values in history.history.items():
        steps, got = scalar_series(acc, key)
        assert steps == history.epoch, key
        # TensorBoard keeps scalars as float32
        np.testing.assert_array_equal(np.float32(got), np.float32(values), err_msg=key)


def read_csv(path, separator=","):
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=separator))
    return rows[0], rows[1:]


def assert_csv_equals_history(path, history, separator=","):
    header, rows = read_csv(path, separator)
    assert header == ["epoch", *history.history]
    assert [int(r[0]) for r in rows] == history.epoch
    for j, key in enumerate(header[1:], start=1):
        assert [float(r[j]) for r in rows] == history.history[key], key  # exact: written with repr


def open_paths() -> set[str]:
    """The files this process holds open (Linux)."""
    fds = Path("/proc/self/fd")
    found = set()
    for fd in fds.iterdir():
        try:
            found.add(os.path.realpath(fd))
        except OSError:
            pass
    return found


# -- TensorBoard ---------------------------------------------------------------------


def test_tensorboard_scalars_and_histograms_equal_history(tmp_path):
    X, y = data()
    net = flexnet.Network([6, 8, 3], batchnorm=True, seed=0)
    opt = SGD(lr=0.1, momentum=0.9)
    tb = flexnet.TensorBoard(tmp_path / "runs" / "a", histogram_every=2)  # the folder is created
    history = net.fit(X, y, epochs=5, batch_size=16, optimizer=opt, scheduler=StepLR(opt, step_size=2, gamma=0.5),
                      validation_split=0.25, seed=0, diagnostics=True, callbacks=[tb], progress=False)
    acc = read_events(tmp_path / "runs" / "a")
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"} <= set(history.history)
    assert any(k.startswith("grad_norm/") for k in history.history)
    assert_events_equal_history(acc, history)
    assert scalar_series(acc, "lr")[1] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])  # the schedule
    params = [name for name, _, _ in net.named_parameters()]
    assert "layers.0.W" in params and "layers.1.gamma" in params
    assert set(acc.Tags()["histograms"]) == set(params) | {f"{p}/grad" for p in params}
    w = acc.Histograms("layers.0.W")
    assert [e.step for e in w] == [2, 4]
    last = w[-1].histogram_value  # the weights after epoch 4 ...
    assert last.num == net.layers[0].W.size
    assert [e.step for e in acc.Histograms("layers.0.W/grad")] == [2, 4]
    # ... and after epoch 5 (not written: histogram_every=2) they changed
    assert last.sum != pytest.approx(float(net.layers[0].W.sum()), abs=1e-6)
    assert tb.path.parent == tmp_path / "runs" / "a" and str(tb.path) not in open_paths()


def test_tensorboard_without_histograms_and_regression_targets(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([[1.0], [-2.0], [0.5]])
    net = flexnet.Sequential([flexnet.Linear(3, 4), flexnet.Tanh(), flexnet.Linear(4, 1)], loss=flexnet.MSE(),
                             dtype="float64", seed=0)
    history = net.fit(X, y, epochs=3, batch_size=8, callbacks=[flexnet.TensorBoard(tmp_path, histogram_every=0)],
                      progress=False)
    acc = read_events(tmp_path)
    assert acc.Tags()["histograms"] == []
    assert set(acc.Tags()["scalars"]) == {"loss", "lr", "time"}
    assert_events_equal_history(acc, history)


class Boom(Callback):
    """Ends the run after epoch ``at``: raises, makes the loss diverge or asks to stop as Ctrl-C does."""

    def __init__(self, at, how):
        self.at, self.how = at, how

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at and self.how == "raise":
            raise RuntimeError("a callback failed")
        if epoch == self.at and self.how == "diverge":
            self.loop.optimizer.lr = 1e300

    def on_batch_end(self, batch, logs=None):
        if self.how == "interrupt" and self.loop.epoch == self.at and batch == 2:
            self.loop.interrupt_requested = True


@pytest.mark.parametrize("how, error", [("raise", RuntimeError), ("diverge", flexnet.TrainingDiverged),
                                        ("interrupt", flexnet.TrainingInterrupted)])
def test_files_are_complete_and_closed_when_fit_raises(tmp_path, how, error):
    X, y = data()
    tb, log = flexnet.TensorBoard(tmp_path / "tb"), flexnet.CSVLogger(tmp_path / "log.csv")
    net = flexnet.Network([6, 8, 3], seed=0)
    with pytest.raises(error), np.errstate(all="ignore"):
        net.fit(X, y, epochs=6, batch_size=16, seed=0, callbacks=[tb, log, Boom(2, how)],
                checkpoint=tmp_path / "c.npz", progress=False)
    still_open = open_paths()
    assert str(tb.path) not in still_open and str(tmp_path / "log.csv") not in still_open
    _, rows = read_csv(tmp_path / "log.csv")
    assert [int(r[0]) for r in rows] == [1, 2]
    assert scalar_series(read_events(tmp_path / "tb"), "loss")[0] == [1, 2]


def test_a_resumed_run_continues_the_files_without_repeating_an_epoch(tmp_path):
    """A run stopped at epoch 4 whose last checkpoint is from epoch 2 (as after a kill):
    the resumed run drops what epochs 3-4 wrote, so every epoch is there once."""
    X, y = data()
    ckpt, at2 = tmp_path / "c.npz", tmp_path / "c-epoch2.npz"

    def loggers():
        return [flexnet.TensorBoard(tmp_path / "tb"), flexnet.CSVLogger(tmp_path / "log.csv")]

    def run(epochs, resume=None):
        net = flexnet.Network([6, 8, 3], dropout=0.2, seed=0)
        h = net.fit(X, y, epochs=epochs, batch_size=16, optimizer="adam", lr=0.01, validation_split=0.25, seed=0,
                    checkpoint=ckpt, resume=resume, callbacks=loggers(), progress=False)
        return h

    run(2)
    shutil.copy(ckpt, at2)
    first = run(4, resume=ckpt)  # epochs 3 and 4 logged, then "killed" with its checkpoint at epoch 2
    assert first.epoch == [1, 2, 3, 4]
    final = run(5, resume=at2)
    assert final.epoch == [1, 2, 3, 4, 5]
    acc = read_events(tmp_path / "tb")
    assert_events_equal_history(acc, final)  # the times of the first epochs 3 and 4 are gone
    assert [e.step for e in acc.Histograms("layers.0.W")] == [1, 2, 3, 4, 5]
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 3
    assert_csv_equals_history(tmp_path / "log.csv", final)


def test_loggers_added_on_resume_start_with_the_run_so_far(tmp_path):
    X, y = data()
    ckpt = tmp_path / "c.npz"
    flexnet.Network([6, 8, 3], seed=0).fit(X, y, epochs=2, batch_size=16, seed=0, checkpoint=ckpt, progress=False)
    net = flexnet.Network([6, 8, 3], seed=0)
    history = net.fit(X, y, epochs=4, batch_size=16, seed=0, checkpoint=ckpt, resume=ckpt, progress=False,
                      callbacks=[flexnet.TensorBoard(tmp_path / "tb"), flexnet.CSVLogger(tmp_path / "log.csv")])
    assert history.epoch == [1, 2, 3, 4]
    assert_csv_equals_history(tmp_path / "log.csv", history)
    assert_events_equal_history(read_events(tmp_path / "tb"), history)


def test_the_tensorboard_folder_is_checked_before_training(tmp_path):
    X, y = data()
    (tmp_path / "file").write_text("not a folder")
    net = flexnet.Network([6, 8, 3], seed=0)
    before = {k: v.copy() for k, v in net.parameters().items()}
    with pytest.raises(NotADirectoryError, match="TensorBoard.*is a file"):
        net.fit(X, y, epochs=1, callbacks=[flexnet.TensorBoard(tmp_path / "file")], progress=False)
    with pytest.raises(OSError, match="TensorBoard"):
        net.fit(X, y, epochs=1, callbacks=[flexnet.TensorBoard(tmp_path / "file" / "sub")], progress=False)
    for k, v in before.items():
        np.testing.assert_array_equal(net.parameters()[k], v)
    with pytest.raises(ValueError, match="histogram_every"):
        flexnet.TensorBoard(tmp_path, histogram_every=-1)
    with pytest.raises(TypeError, match="logdir"):
        flexnet.TensorBoard(None)


# -- CSV -------------------------------------------------------------------------------


def test_csv_rows_equal_history_and_a_new_run_starts_afresh(tmp_path):
    X, y = data()
    path = tmp_path / "log.csv"
    path.write_text("old contents\n")
    net = flexnet.Network([6, 8, 3], seed=0)
    history = net.fit(X, y, epochs=3, batch_size=16, validation_data=data(30, seed=1), seed=0,
                      callbacks=[flexnet.CSVLogger(path)], progress=False)
    assert_csv_equals_history(path, history)
    assert read_csv(path)[0] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]
    again = net.fit(X, y, epochs=2, batch_size=16, seed=0, callbacks=[flexnet.CSVLogger(path)], progress=False)
    assert_csv_equals_history(path, again)


def test_csv_append_continues_a_file_and_grows_its_columns(tmp_path):
    X, y = data()
    path = tmp_path / "log.tsv"
    net = flexnet.Network([6, 8, 3], seed=0)
    first = net.fit(X, y, epochs=2, batch_size=16, seed=0, progress=False,
                    callbacks=[flexnet.CSVLogger(path, append=True, separator="\t")])
    second = net.fit(X, y, epochs=2, batch_size=16, seed=0, validation_split=0.25, progress=False,
                     callbacks=[flexnet.CSVLogger(path, append=True, separator="\t")])
    header, rows = read_csv(path, "\t")
    assert header == ["epoch", "loss", "accuracy", "lr", "time", "val_loss", "val_accuracy"]
    assert [r[0] for r in rows] == ["1", "2", "1", "2"]
    assert [float(r[1]) for r in rows] == first["loss"] + second["loss"]
    assert [r[5] for r in rows[:2]] == ["", ""]  # the first run had no validation
    assert [float(r[6]) for r in rows[2:]] == second["val_accuracy"]


def test_csv_refuses_to_append_to_a_file_it_did_not_write(tmp_path):
    X, y = data()
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"data\.csv is not a log written by CSVLogger: its first column is 'a'"):
        flexnet.Network([6, 8, 3], seed=0).fit(X, y, epochs=1, callbacks=[flexnet.CSVLogger(path, append=True)],
                                               progress=False)
    assert path.read_text() == "a,b\n1,2\n"


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe\x00binary\n\x80", r"not a log written by CSVLogger \('utf-8' codec can't decode"),
    (b'epoch,loss\n1,"unterminated\n', r", line 2 is not a log written by CSVLogger \(unexpected end of data\)"),
])
def test_csv_refuses_a_file_that_is_not_utf8_csv_and_leaves_it_as_it_was(tmp_path, content, message):
    X, y = data()
    path = tmp_path / "log.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        flexnet.Network([6, 8, 3], seed=0).fit(X, y, epochs=1, callbacks=[flexnet.CSVLogger(path, append=True)],
                                               progress=False)
    assert path.read_bytes() == content


def test_csv_checks_its_path_and_arguments_before_training(tmp_path):
    X, y = data()
    net = flexnet.Network([6, 8, 3], seed=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        net.fit(X, y, epochs=1, callbacks=[flexnet.CSVLogger(tmp_path / "no" / "log.csv")], progress=False)
    with pytest.raises(IsADirectoryError):
        net.fit(X, y, epochs=1, callbacks=[flexnet.CSVLogger(tmp_path)], progress=False)
    with pytest.raises(ValueError, match="separator"):
        flexnet.CSVLogger(tmp_path / "x.csv", separator=";;")
    with pytest.raises(TypeError, match="append"):
        flexnet.CSVLogger(tmp_path / "x.csv", append="yes")


# -- the command line ------------------------------------------------------------------

TRAIN = ["train", "--data", "edges", "--arch", "25,8,2", "--quiet", "--figure", "-"]


def test_cli_train_writes_both_logs_and_a_resume_continues_them(tmp_path):
    out, tb, log = tmp_path / "m.npz", tmp_path / "tb", tmp_path / "log.csv"
    assert main([*TRAIN, "--epochs", "2", "--out", str(out), "--tensorboard", str(tb), "--csv-log", str(log)]) == 0
    # the options travel in the checkpoint: a plain --resume keeps logging to the same places
    assert main(["train", "--resume", str(tmp_path / "m.ckpt.npz"), "--epochs", "4", "--quiet"]) == 0
    header, rows = read_csv(log)
    assert header[:2] == ["epoch", "loss"] and [r[0] for r in rows] == ["1", "2", "3", "4"]
    acc = read_events(tb)
    steps, losses = scalar_series(acc, "loss")
    assert steps == [1, 2, 3, 4]
    np.testing.assert_array_equal(np.float32(losses), np.float32([float(r[1]) for r in rows]))
    assert {"layers.0.W", "layers.0.W/grad"} <= set(acc.Tags()["histograms"])


def test_cli_refuses_unwritable_log_paths_before_training(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "m.npz"
    for option, value, message in [
        ("--tensorboard", tmp_path / "file", "is not a folder"),
        ("--tensorboard", tmp_path / "file" / "tb", "is not a folder"),
        ("--csv-log", tmp_path / "missing" / "log.csv", "does not exist"),
        ("--csv-log", tmp_path, "folder"),
    ]:
        assert main([*TRAIN, "--epochs", "1", "--out", str(out), option, str(value)]) == 2
        err = capsys.readouterr().err
        assert option in err and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not out.exists()


def test_cli_refuses_a_csv_log_that_is_another_file_of_the_run(tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_text("a,b,label\n" + "".join(f"{i % 3},{i % 5},{i % 2}\n" for i in range(40)))
    before = data.read_bytes()
    out = tmp_path / "m.npz"
    for log, option in [(data, "--data"), (out, "--out"), (tmp_path / "m.ckpt.npz", "--checkpoint"),
                        (tmp_path / "." / "m-curves.png", "--figure")]:
        args = ["train", "--data", str(data), "--label", "label", "--epochs", "1", "--out", str(out),
                "--quiet", "--csv-log", str(log)]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"is the {option} file too" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert data.read_bytes() == before and not out.exists()


HIDE = """
import importlib.abc, json, sys
hidden, argv = json.loads(sys.argv[1])
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NotInstalled())
from flexnet.cli import main
sys.exit(main(argv))
"""


def test_cli_tensorboard_without_tensorboardx_is_exit_2_with_the_extra(tmp_path):
    out = tmp_path / "m.npz"
    argv = [*TRAIN, "--epochs", "1", "--out", str(out), "--tensorboard", str(tmp_path / "tb")]
    proc = subprocess.run([sys.executable, "-c", HIDE, json.dumps([["tensorboardX"], argv])], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert 'pip install "flexnet[tensorboard]"' in proc.stderr and "--tensorboard needs tensorboardX" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_the_python_logger_without_tensorboardx_names_the_extra(tmp_path):
    code = HIDE.split("from flexnet.cli")[0] + (
        "import flexnet\n"
        "try:\n"
        "    flexnet.TensorBoard('tb')\n"
        "except ImportError as e:\n"
        "    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps([["tensorboardX"], []])], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, check=True)
    assert proc.stdout.strip() == ('the TensorBoard logger needs tensorboardX; install it with: '
                                   'pip install "flexnet[tensorboard]"')


def test_a_failing_on_exception_does_not_hide_the_error_that_stopped_fit():
    """Every callback's on_exception runs, and fit raises the run's own error."""
    import warnings as _warnings

    class Broken(flexnet.training.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyError("the run's own error")

        def on_exception(self, exc, logs=None):
            raise OSError("cleanup failed")

    class Records(flexnet.training.Callback):
        seen = None

        def on_exception(self, exc, logs=None):
            Records.seen = exc

    X = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = np.arange(32) % 2
    net = flexnet.Network([4, 8, 2], seed=0)
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        with pytest.raises(KeyError, match="own error"):
            net.fit(X, y, epochs=2, batch_size=8, callbacks=[Broken(), Records()], progress=False)
    assert isinstance(Records.seen, KeyError)
    assert any("on_exception failed too" in str(w.message) for w in caught)

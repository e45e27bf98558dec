"""Command-line details a new user meets: the progress bar, which weights were saved,
--restore-best, a resumed run's time, predict's background check, help texts, repr."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest

import flexnet
from flexnet.cli import main
from flexnet.cli import predict as cli_predict
from flexnet.cli import train as cli_train
from flexnet.training import callbacks
from flexnet.training.callbacks import ProgressBar, progress_text, terminal_width

tqdm = pytest.importorskip("tqdm").tqdm


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def summary(out: str) -> dict:
    """The rows of train's summary table, by name."""
    rows = {}
    for line in out.splitlines():
        m = re.match(r"(\S+(?: \S+)*)\s{2,}(.*)$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


# -- the progress bar -----------------------------------------------------------------------------


def draw(lines="run", epochs=3, n_batches=5, val=True):
    f = io.StringIO()
    bar = ProgressBar(tqdm, epochs=epochs, n_batches=n_batches, lines=lines, file=f)
    for e in range(1, epochs + 1):
        bar.start_epoch(e)
        for b in range(n_batches):
            bar.update({"loss": 0.31234, "accuracy": 0.886} if b % 2 == 0 else None)
        logs = {"loss": 0.3, "accuracy": 0.9}
        if val:
            logs.update(val_loss=0.35, val_accuracy=0.8777)
        bar.end_epoch(logs)
    bar.close()
    return f.getvalue()


def screen_lines(text: str) -> list[str]:
    """What stays on the screen: each line as its last carriage return left it."""
    return [line.split("\r")[-1] for line in text.split("\n")[:-1]]


def test_progress_bar_leaves_one_line_per_run_within_80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    text = draw("run")
    assert text.count("\n") == 1
    last, = screen_lines(text)
    assert last.startswith("epoch 3/3, loss 0.3, acc 90.0%, val acc 87.8%") and "100%" in last
    assert all(len(part) <= 80 for part in text.replace("\n", "\r").split("\r"))


def test_progress_bar_can_leave_one_line_per_epoch(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    text = draw("epoch")
    lines = screen_lines(text)
    assert [line.split(",")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("val acc 87.8%" in line and len(line) <= 80 for line in lines)
    with pytest.raises(ValueError, match="'run', 'epoch'"):
        ProgressBar(tqdm, epochs=1, n_batches=1, lines="batch")


@pytest.mark.parametrize("columns", ["50", "30"])
def test_a_narrow_terminal_cuts_the_bar_not_the_validation_accuracy(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    last = screen_lines(draw("run"))[-1]
    assert len(last) <= int(columns)
    assert "val" in last and "87.8%" in last


def test_a_terminal_of_unknown_size_counts_as_80_columns(monkeypatch):
    import shutil

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=(80, 24): __import__("os").terminal_size(fallback))
    assert terminal_width() == 80
    monkeypatch.setenv("COLUMNS", "not-a-number")
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=(80, 24): (_ for _ in ()).throw(ValueError("x")))
    assert terminal_width() == 80
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=(80, 24): __import__("os").terminal_size((0, 0)))
    assert terminal_width() == 80


def test_progress_text_forms():
    logs = {"loss": 0.31234, "accuracy": 0.886, "val_loss": 0.4, "val_accuracy": 0.8777}
    assert progress_text(logs) == "loss 0.3123, acc 88.6%, val acc 87.8%"
    assert progress_text(logs, 1) == "loss 0.3123 acc 88.6% val 87.8%"
    assert progress_text(logs, 2) == "val 87.8%"
    assert progress_text({"loss": 2.5, "val_loss": 2.75}) == "loss 2.5, val loss 2.75"  # regression


def test_fit_draws_one_line_per_run_or_per_epoch(monkeypatch):
    X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    for progress, lines in ((True, 1), ("run", 1), ("epoch", 3)):
        err = io.StringIO()
        monkeypatch.setattr(sys, "stderr", err)
        flexnet.fit(flexnet.Network([4, 8, 2], seed=0), X, y, epochs=3, batch_size=16, seed=0,
                    validation_split=0.25, progress=progress)
        monkeypatch.undo()
        assert err.getvalue().count("\n") == lines, (progress, err.getvalue())
        assert "val acc" in screen_lines(err.getvalue())[-1]
    with pytest.raises(ValueError, match="fit\\(progress\\)"):
        flexnet.fit(flexnet.Network([4, 8, 2], seed=0), X, y, epochs=1, progress="lines")


def test_train_says_once_how_to_get_a_progress_bar(monkeypatch, tmp_path, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tqdm" else real(name, *a))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    hint = cli_train.progress_hint()
    assert hint is not None and 'pip install "flexnet[progress]"' in hint
    monkeypatch.setattr(callbacks, "terminal_width", lambda default=80: 80)
    code, _, err = run(["train", "--data", "edges", "--arch", "25,4,2", "--epochs", "3", "--figure", "-",
                        "--out", tmp_path / "m.npz"], capsys)
    assert code == 0 and err.count('pip install "flexnet[progress]"') == 1
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert cli_train.progress_hint() is None  # no terminal: no bar to miss


# -- which weights were saved, --restore-best ---------------------------------------------------


@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory):
    """The same run twice, a learning rate high enough for the last epoch not to be the best:
    saving the last epoch's weights, and with --restore-best."""
    d = tmp_path_factory.mktemp("best")
    argv = ["train", "--data", "digits", "--epochs", "8", "--lr", "0.05", "--quiet", "--figure", "-"]
    outs = {}
    for name, extra in (("last", []), ("best", ["--restore-best"])):
        capture = io.StringIO()
        old, sys.stdout = sys.stdout, capture
        try:
            assert main(argv + ["--out", str(d / f"{name}.npz")] + extra) == 0
        finally:
            sys.stdout = old
        outs[name] = (summary(capture.getvalue()), d / f"{name}.npz")
    return outs


def validation_accuracy(path) -> float:
    """The model's accuracy on train's validation split, recomputed from the file."""
    from flexnet import data as fdata

    net = flexnet.load(path)
    ds = fdata.datasets.load("digits")
    _, X_val, _, y_val = fdata.train_test_split(fdata.flatten(ds.X_train), ds.y_train, 0.1, seed=0,
                                                 part="validation")
    return float((net.predict(fdata.prepare_input(X_val, net.metadata)) == y_val).mean())


def test_train_says_it_saved_the_last_epoch_and_which_was_best(digits_runs):
    rows, path = digits_runs["last"]
    best = int(rows["validation accuracy"].split("at epoch ")[1].rstrip(")"))
    assert best != 8, "the run should have a best epoch before the last"
    assert rows["weights saved"] == (f"epoch 8, the last (the best validation accuracy was epoch {best}'s: "
                                     "--restore-best saves that one)")
    assert f"{100 * validation_accuracy(path):.2f}%" == rows["validation accuracy"].split()[0]


def test_restore_best_saves_the_best_validation_epoch(digits_runs):
    last_rows, _ = digits_runs["last"]
    rows, path = digits_runs["best"]
    best = int(last_rows["validation accuracy"].split("at epoch ")[1].rstrip(")"))
    assert rows["weights saved"] == f"epoch {best} of 8, the best validation accuracy (--restore-best)"
    best_acc = rows["validation accuracy"].split("(best ")[1].split()[0]
    assert rows["validation accuracy"].split()[0] == best_acc  # the saved epoch's numbers
    assert f"{100 * validation_accuracy(path):.2f}%" == best_acc  # and the file holds its weights


def test_restore_best_needs_validation_data(tmp_path, capsys):
    code, _, err = run(["train", "--data", "edges", "--epochs", "2", "--val-split", "0", "--restore-best",
                        "--out", tmp_path / "m.npz", "--quiet"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--val-split 0" in err
    assert not (tmp_path / "m.npz").exists()


def test_a_resumed_runs_time_reads_in_all_and_in_this_run(tmp_path, capsys):
    base = ["train", "--data", "edges", "--arch", "25,4,2", "--quiet", "--figure", "-", "--out", tmp_path / "m.npz"]
    code, out, _ = run(base + ["--epochs", "3"], capsys)
    assert code == 0 and re.fullmatch(r"\d+\.\d s", summary(out)["time"])
    code, out, _ = run(["train", "--resume", tmp_path / "m.ckpt.npz", "--epochs", "6", "--quiet"], capsys)
    assert code == 0
    m = re.fullmatch(r"(\d+\.\d) s in all, (\d+\.\d) s in this run", summary(out)["time"])
    assert m and float(m.group(1)) >= float(m.group(2))


# -- predict's background check -------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("bg")
    out = d / "digits.npz"
    assert main(["train", "--data", "digits", "--epochs", "1", "--quiet", "--figure", "-", "--out", str(out)]) == 0
    return out


def write_png(path, dark_ink_on_white: bool):
    from PIL import Image

    img = np.zeros((32, 32), np.uint8)
    img[6:26, 14:18] = 255  # a light "1" on black
    if dark_ink_on_white:
        img = 255 - img
    Image.fromarray(img).save(path)
    return path


def test_predict_says_when_an_image_is_dark_ink_on_white(tmp_path, digits_model, capsys):
    net = flexnet.load(digits_model)
    assert 0 <= net.metadata["border_brightness"] < 0.5  # the digits are light on dark
    white = write_png(tmp_path / "white.png", True)
    black = write_png(tmp_path / "black.png", False)
    code, out, err = run(["predict", digits_model, white, black], capsys)
    assert code == 0 and len(out.strip().splitlines()) == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "white.png: its background is light" in lines[0] and "--invert" in lines[0]
    code, _, err = run(["predict", digits_model, white, black, "--invert"], capsys)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "black.png" in lines[0] and "leave out --invert" in lines[0]
    code, _, err = run(["predict", digits_model, white, "--invert"], capsys)
    assert code == 0 and err == ""


def test_background_check_for_models_without_the_training_images_brightness():
    images = np.full((1, 8, 8), 16.0)  # all white
    old = {"dataset": "digits", "pixel_max": 16.0}  # a model saved before the brightness was kept
    assert cli_predict.background_warnings(["a.png"], images, old, False)
    assert cli_predict.background_warnings(["a.png"], images, {"dataset": "my.npz"}, False) == []  # unknown
    grey = np.full((1, 8, 8), 7.0)
    assert cli_predict.background_warnings(["a.png"], grey, old, False) == []  # not clearly the opposite
    ring = np.zeros((1, 5, 5))
    ring[0, 1:-1, 1:-1] = 255
    assert cli_predict.border_brightness(ring)[0] == 0.0


# -- evaluate's weights figure: the change since initialisation ------------------------------------


def test_evaluate_draws_what_training_changed_in_the_first_layer(digits_model, tmp_path, capsys):
    from flexnet.cli.evaluate import initial_weights

    net = flexnet.load(digits_model)
    W0 = initial_weights(net)
    fresh = flexnet.Network(net.layer_sizes, seed=0)
    np.testing.assert_array_equal(W0, fresh.layers[0].W)
    assert not np.array_equal(W0, net.layers[0].W)
    net.metadata["initial_weights"]["crc32"] = "00000000"  # drawn otherwise: not shown as the start
    assert initial_weights(net) is None
    pytest.importorskip("matplotlib")
    code, out, _ = run(["evaluate", digits_model, "--figures", tmp_path / "f"], capsys)
    assert code == 0 and (tmp_path / "f-weights.png").is_file()


# -- smaller things --------------------------------------------------------------------------------


def test_network_repr_shows_a_loss_other_than_the_default():
    assert repr(flexnet.Network([3, 16, 1], loss="mse")) == "Network([3, 16, 1], loss=MSE(), dtype='float32')"
    assert repr(flexnet.Network([3, 16, 2])) == "Network([3, 16, 2], dtype='float32')"


def test_scale_help_says_what_each_data_set_is_divided_by(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "pixels are divided by 255" in text and "digits by 16" in text
    assert "--restore-best" in text and "--progress-lines" in text


def test_compare_panels_option(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    code, out, _ = run(["compare", "--epochs", "2", "--panels", "--out", tmp_path / "c.png"], capsys)
    assert code == 0 and (tmp_path / "c.png").is_file()
    assert re.search(r"\[25, 2\]\s+52\s+1\s+0\.\d{3}", out)  # three significant digits


def test_the_bar_shows_on_a_terminal_that_reports_no_size():
    """A bare pseudo-terminal reports 0 columns and 0 lines (as under `script` or some CI
    runners): the bar is still drawn, 80 columns wide, and leaves its one line."""
    import os
    import pty
    import select
    import subprocess
    import time

    code = ("import numpy as np, flexnet\n"
            "X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)\n"
            "y = (X[:, 0] > 0).astype(np.int64)\n"
            "flexnet.fit(flexnet.Network([4, 8, 2], seed=0), X, y, epochs=3, batch_size=16, seed=0,\n"
            "            validation_split=0.25)\n")
    master, slave = pty.openpty()  # a new pty: 0x0 until someone sets its size
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=slave, env=env)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed its side
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
        os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    last = screen_lines(text)[-1]
    assert last.startswith("epoch 3/3, loss ") and "val acc" in last and "100%" in last
    assert len(last) <= 80

"""``flexnet train --resume``: the last checkpoint of any finished run resumes, and every
option given again is either the checkpoint's, applied with a line saying so, or refused
by name, with the checkpoint's value and the given one; never silently ignored."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import flexnet
from flexnet.cli import build_parser, main
from flexnet.cli.resume import FREE, MAY_CHANGE
from flexnet.files.archive import read_archive, write_archive

BASE = ["--data", "edges", "--arch", "25,8,2", "--quiet", "--figure", "-"]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def weights(path):
    return {k: v.copy() for k, v in flexnet.load(path).parameters().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def finished_run(tmp_path, capsys, *options, epochs=3):
    """Train to the end, then delete the model: the state of a run killed after writing its
    last checkpoint and before writing the model."""
    out = tmp_path / "m.npz"
    code, _, err = run(["train", *BASE, "--epochs", epochs, "--out", out, *options], capsys)
    assert code == 0, err
    model = weights(out)
    out.unlink()
    return out, tmp_path / "m.ckpt.npz", model


# -- the last checkpoint of a finished run ----------------------------------------------


@pytest.mark.parametrize("schedule", [["--schedule", "cosine"], ["--schedule", "cosine", "--warmup", "1"],
                                      ["--schedule", "step"], ["--schedule", "plateau"], []])
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adamw", "rmsprop", "adagrad"])
def test_the_last_checkpoint_of_a_finished_run_writes_its_model(tmp_path, capsys, schedule, optimizer):
    out, ckpt, model = finished_run(tmp_path, capsys, "--optimizer", optimizer, "--lr", "0.01", *schedule)
    if schedule[:2] == ["--schedule", "cosine"]:
        assert read_archive(ckpt)[0]["training"]["optimizer"]["config"]["lr"] == 0.0
    code, stdout, err = run(["train", "--resume", ckpt], capsys)  # nothing else: the checkpoint knows
    assert code == 0, err
    assert "nothing left to train" in err and "3 epoch(s) of 3" in err and "Traceback" not in err
    assert "summary" in stdout
    assert_same(weights(out), model)


# -- options given again -------------------------------------------------------------------

# For every option that must be the run's: one value other than the run's below. A new
# option of `flexnet train` fails test_every_option_has_a_rule until it is given one here,
# in MAY_CHANGE or in FREE.
RUN = ["--lr", "0.01", "--optimizer", "adam", "--batch-size", "16", "--seed", "3", "--dropout", "0.1",
       "--schedule", "step", "--val-split", "0.2"]
DIFFERENT = {
    "data": ("digits", "--data edges"),
    "label": ("0", "no --label"),
    "arch": ("25,4,2", "--arch 25,8,2"),
    "activation": ("tanh", "--activation relu"),
    "dropout": ("0.2", "--dropout 0.1"),
    "batchnorm": (None, "no --batchnorm"),
    "restore_best": (None, "no --restore-best"),
    "batch_size": ("8", "--batch-size 16"),
    "optimizer": ("sgd", "--optimizer adam"),
    "lr": ("0.001", "--lr 0.01"),  # the default, given: still refused
    "weight_decay": ("0.01", "--weight-decay 0.0"),
    "schedule": ("none", "--schedule step"),
    "warmup": ("1", "--warmup 0"),
    "scale": ("standard", "--scale none"),  # edges' own default
    "seed": ("0", "--seed 3"),
    "val_split": ("0.1", "--val-split 0.2"),
    "header": (None, "no --header"),
    "delimiter": (";", "no --delimiter"),
}


def train_options():
    parser = build_parser()
    train = next(a for a in parser._actions if a.dest == "command").choices["train"]
    return {a.dest: a.option_strings[0] for a in train._actions if a.option_strings and a.dest != "help"}


def test_every_option_has_a_rule():
    options = set(train_options())
    ruled = set(DIFFERENT) | set(MAY_CHANGE) | set(FREE)
    assert options - ruled == set(), "options of flexnet train with no rule for --resume"


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A run of 4 epochs stopped after 2 (its checkpoint at the end of epoch 2), with a
    reference run of 4 epochs and the same options."""
    d = tmp_path_factory.mktemp("stopped")
    ref = d / "ref.npz"
    assert main(["train", *BASE, "--epochs", "4", "--out", str(ref), *RUN]) == 0
    assert main(["train", *BASE, "--epochs", "2", "--out", str(d / "m.npz"), *RUN]) == 0
    return d / "m.ckpt.npz", weights(ref)


@pytest.mark.parametrize("option", sorted(DIFFERENT))
def test_an_option_that_differs_from_the_checkpoint_is_refused_by_name(tmp_path, capsys, stopped_run, option):
    ckpt = tmp_path / "m.ckpt.npz"
    shutil.copyfile(stopped_run[0], ckpt)
    before = ckpt.read_bytes()
    value, saved = DIFFERENT[option]
    flag = "--" + option.replace("_", "-")
    code, _, err = run(["train", "--resume", ckpt, "--epochs", "4", "--out", tmp_path / "new.npz",
                          flag, *([] if value is None else [value])], capsys)
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    given = flag if value is None else f"{flag} {value}"
    assert f"{given} differs from the checkpoint's {saved}" in err, err
    assert not (tmp_path / "new.npz").exists() and ckpt.read_bytes() == before  # nothing trained


def test_several_differences_are_listed_at_once(tmp_path, capsys, stopped_run):
    code, _, err = run(["train", "--resume", stopped_run[0], "--lr", "0.5", "--seed", "9", "--arch", "25,3,2"],
                       capsys)
    assert code == 2
    for fragment in ("--lr 0.5", "--lr 0.01", "--seed 9", "--seed 3", "--arch 25,3,2", "--arch 25,8,2"):
        assert fragment in err


def test_options_left_out_take_the_checkpoints_and_more_epochs_are_applied(tmp_path, capsys, stopped_run):
    ckpt = tmp_path / "m.ckpt.npz"
    shutil.copyfile(stopped_run[0], ckpt)
    out = tmp_path / "resumed.npz"
    code, _, err = run(["train", "--resume", ckpt, "--epochs", "4", "--out", out], capsys)
    assert code == 0, err
    assert "--epochs 4: applied (the run started with --epochs 2)" in err
    assert f"--out {out}: applied" in err
    assert_same(weights(out), stopped_run[1])  # as if the run had asked for 4 epochs from the start


def test_options_given_with_the_checkpoints_values_say_nothing(tmp_path, capsys, stopped_run):
    ckpt = tmp_path / "m.ckpt.npz"
    shutil.copyfile(stopped_run[0], ckpt)
    out = stopped_run[0].with_name("m.npz")  # the run's own
    code, _, err = run(["train", "--resume", ckpt, *BASE, *RUN, "--epochs", "2", "--out", out], capsys)
    assert code == 0, err
    assert "applied" not in err and "differs" not in err


def test_fewer_epochs_than_done_are_refused(tmp_path, capsys, stopped_run):
    code, _, err = run(["train", "--resume", stopped_run[0], "--epochs", "1"], capsys)
    assert code == 2 and "--epochs 1" in err and "already trained 2 epochs" in err


def test_a_cosine_run_keeps_its_epochs(tmp_path, capsys):
    _, ckpt, _ = finished_run(tmp_path, capsys, "--schedule", "cosine", epochs=2)
    code, _, err = run(["train", "--resume", ckpt, "--epochs", "5"], capsys)
    assert code == 2 and "--epochs 5 differs from the checkpoint's --epochs 2" in err and "cosine" in err


def test_a_resume_from_another_folder_writes_where_the_run_did(tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, _, err = run(["train", *BASE, "--epochs", "2", "--out", "m.npz"], capsys)  # relative paths
    assert code == 0, err
    (work / "m.npz").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = run(["train", "--resume", work / "m.ckpt.npz"], capsys)
    assert code == 0, err
    assert (work / "m.npz").is_file() and not (elsewhere / "m.npz").exists()


def write_csv(path, seed=0, n=80):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 4)) + y[:, None]
    lines = [",".join(f"{v:.4f}" for v in row) + f",{label}\n" for row, label in zip(X, y)]
    path.write_text("a,b,c,d,label\n" + "".join(lines))


def test_data_moved_to_another_path_is_applied_other_data_refused(tmp_path, capsys):
    data = tmp_path / "a.csv"
    write_csv(data)
    out = tmp_path / "m.npz"
    argv = ["train", "--data", data, "--arch", "4,6,2", "--quiet", "--figure", "-", "--out", out]
    assert run([*argv, "--epochs", "2"], capsys)[0] == 0
    ckpt = tmp_path / "m.ckpt.npz"
    other = tmp_path / "other.csv"
    write_csv(other, seed=1)
    code, _, err = run(["train", "--resume", ckpt, "--data", other, "--epochs", "3"], capsys)
    assert code == 2 and f"--data {other} differs from the checkpoint's --data {data}" in err
    moved = tmp_path / "moved.csv"
    data.rename(moved)
    code, _, err = run(["train", "--resume", ckpt, "--epochs", "3"], capsys)  # the run's file is gone
    assert code == 2 and "no such file" in err
    code, _, err = run(["train", "--resume", ckpt, "--data", other, "--epochs", "3"], capsys)
    assert code == 2 and "training data" in err  # the checksum tells other rows
    code, _, err = run(["train", "--resume", ckpt, "--data", moved, "--epochs", "3"], capsys)
    assert code == 0, err
    assert f"--data {moved}: applied in place of the checkpoint's {data}" in err


def strip_options(ckpt):
    """The checkpoint as a release that kept no options wrote it."""
    header, arrays = read_archive(ckpt)
    header.pop("arrays")
    callbacks = header["training"]["callbacks"]
    header["training"]["callbacks"] = [cb for cb in callbacks if cb["class"] != "TrainOptions"]
    write_archive(ckpt, header, arrays)


def test_a_checkpoint_that_keeps_no_options_resumes_with_the_options_given(tmp_path, capsys, stopped_run):
    ckpt = tmp_path / "m.ckpt.npz"
    shutil.copyfile(stopped_run[0], ckpt)
    strip_options(ckpt)
    out = tmp_path / "r.npz"
    code, _, err = run(["train", "--resume", ckpt, *BASE, *RUN, "--epochs", "4", "--out", out], capsys)
    assert code == 0, err
    assert "does not keep the options of its run" in err
    assert_same(weights(out), stopped_run[1])
    # the fit's own checks still refuse what the state tells: another lr, another architecture
    code, _, err = run(["train", "--resume", ckpt, *BASE, *RUN, "--lr", "0.5", "--epochs", "4", "--out", out],
                       capsys)
    assert code == 2 and "learning rate" in err and "0.5" in err
    code, _, err = run(["train", "--resume", ckpt, "--epochs", "4", "--out", out], capsys)
    assert code == 2 and "architecture" in err


def test_a_model_file_or_a_damaged_record_is_refused(tmp_path, capsys, stopped_run):
    out, _, _ = finished_run(tmp_path, capsys, epochs=1)
    flexnet.save(flexnet.Network([25, 8, 2], seed=0), out)
    code, _, err = run(["train", "--resume", out], capsys)
    assert code == 2 and "not a checkpoint" in err
    ckpt = tmp_path / "bad.ckpt.npz"
    header, arrays = read_archive(stopped_run[0])
    header.pop("arrays")
    for cb in header["training"]["callbacks"]:
        if cb["class"] == "TrainOptions":
            cb["state"]["options"]["lr"] = "fast"
    write_archive(ckpt, header, arrays)
    code, _, err = run(["train", "--resume", ckpt], capsys)
    assert code == 2 and "--lr" in err and "'fast'" in err and "Traceback" not in err


def test_the_interrupted_runs_resume_command_is_its_checkpoint(tmp_path, capsys, stopped_run):
    """The command printed after Ctrl-C still works, and so does --resume alone."""
    ckpt = tmp_path / "m.ckpt.npz"
    shutil.copyfile(stopped_run[0], ckpt)
    code, _, err = run(["train", "--resume", ckpt, "--epochs", "4", "--out", tmp_path / "a.npz"], capsys)
    assert code == 0, err
    shutil.copyfile(stopped_run[0], ckpt)
    code, _, err = run(["train", "--resume", os.fspath(ckpt), "--epochs", "4", "--out", tmp_path / "b.npz",
                        *BASE, *RUN], capsys)
    assert code == 0, err
    assert_same(weights(tmp_path / "a.npz"), weights(tmp_path / "b.npz"))

"""The command line: every command's exit code, output and files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from flexnet.cli import main

FAST = ["--epochs", "3", "--quiet"]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for f in fragments:
        assert f in err, err


@pytest.fixture(scope="module")
def edges_model(tmp_path_factory):
    """One small model on the edge data, trained once for the module."""
    d = tmp_path_factory.mktemp("edges")
    out = d / "edges.npz"
    assert main(["train", "--data", "edges", "--arch", "25,8,2", "--epochs", "20", "--lr", "0.01",
                 "--quiet", "--out", str(out)]) == 0
    return out


def test_help_has_examples_for_every_command(capsys):
    for command in ("train", "evaluate", "predict", "gradcheck", "datasets", "compare", "info", "export",
                    "sweep"):
        assert main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "example" in out and f"flexnet {command}" in out


def test_train_writes_model_checkpoint_and_figure(edges_model, capsys):
    assert edges_model.is_file()
    assert edges_model.with_name("edges.ckpt.npz").is_file()
    curves = edges_model.with_name("edges-curves.png")
    assert curves.is_file() and curves.stat().st_size > 10_000


def test_train_summary_and_metadata(tmp_path, capsys):
    code, out, _ = run(["train", "--data", "edges", "--out", tmp_path / "m.npz", "--figure", "-"] + FAST, capsys)
    assert code == 0
    for row in ("epochs", "training loss", "validation accuracy", "test accuracy", "model"):
        assert row in out
    import flexnet.files.model_file

    net = flexnet.io.load(tmp_path / "m.npz")
    assert net.metadata["input_shape"] == [5, 5] and net.metadata["class_names"] == ["edge", "no edge"]
    assert net.metadata["scaler"]["kind"] == "none"
    assert not (tmp_path / "m-curves.png").exists()


@pytest.mark.parametrize("argv, fragments", [
    (["--data", "nowhere.csv"], ["no such file"]),
    (["--data", "imagenet"], ["expected a data set name"]),
    (["--data", "edges", "--arch", "10,2"], ["first size must be the number of input features, 25"]),
    (["--data", "edges", "--arch", "25,1"], ["number of classes, 2"]),
    (["--data", "edges", "--val-split", "1.5"], ["--val-split"]),
    (["--data", "edges", "--optimizer", "adamax"], ["unknown name 'adamax'"]),
])
def test_train_bad_input_is_one_line(tmp_path, capsys, argv, fragments):
    code, _, err = run(["train", "--out", tmp_path / "m.npz"] + FAST + argv, capsys)
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "m.npz").exists()


def test_argparse_mistakes_exit_2(capsys):
    code, _, err = run(["train", "--epochs", "zero"], capsys)
    assert code == 2 and "positive integer" in err
    assert err.count("\n") == 1 and "see flexnet train --help" in err  # one line, no usage block


@pytest.mark.parametrize("out, words", [("{tmp}", "is a folder"), ("{tmp}/missing/m.npz", "does not exist")])
def test_train_refuses_an_unwritable_output_before_training(tmp_path, capsys, out, words):
    code, stdout, err = run(["train", "--epochs", "1", "--out", out.format(tmp=tmp_path)], capsys)
    assert code == 2 and words in err and "--out" in err and "Training" not in stdout


def test_user_data_mistakes_name_the_file_and_row(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X, y = rng.random((20, 4)).astype(np.float32), np.arange(20) % 2
    bad_x = X.copy()
    bad_x[17, 2] = np.nan
    np.savez(tmp_path / "nan.npz", X=bad_x, y=y)
    bad_y = y.copy()
    bad_y[7] = -1
    np.savez(tmp_path / "neg.npz", X=X, y=bad_y)
    (tmp_path / "cut.npz").write_bytes((tmp_path / "nan.npz").read_bytes()[:200])
    (tmp_path / "latin.csv").write_bytes("a,b,label\n1,2,caf\xe9\n".encode("latin-1"))
    (tmp_path / "inf.csv").write_text("a,b,label\n1,2,0\n1,inf,1\n")
    for name, words in [("nan.npz", "'X': row 17 holds NaN"), ("neg.npz", "'y' row 7: label -1 is negative"),
                        ("cut.npz", "not a readable .npz file"), ("latin.csv", "not a UTF-8 text file"),
                        ("inf.csv", "line 3, column 2 (b): 'inf' is not a finite")]:
        code, _, err = run(["train", "--data", tmp_path / name, "--arch", "4,2", "--epochs", "1",
                            "--out", tmp_path / "m.npz"], capsys)
        assert code == 2 and err.count("\n") == 1 and name in err and words in err, err


def test_csv_train_evaluate_predict(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    kinds = np.array(["low", "mid", "high"])[np.digitize(X[:, 0], [-0.4, 0.4])]
    lines = ["a,b,c,kind"] + [f"{r[0]:.4f},{r[1]:.4f},{r[2]:.4f},{k}" for r, k in zip(X, kinds)]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    model = tmp_path / "csv.npz"
    code, out, _ = run(["train", "--data", tmp_path / "train.csv", "--label", "kind", "--arch", "3,16,3",
                        "--epochs", "30", "--lr", "0.01", "--quiet", "--out", model], capsys)
    assert code == 0 and "test accuracy" not in out  # a user's file has no test split

    code, out, _ = run(["evaluate", model, "--data", tmp_path / "train.csv", "--label", "kind",
                        "--figures", tmp_path / "ev"], capsys)
    assert code == 0 and "accuracy" in out and "macro mean" in out
    for name in ("high", "low", "mid"):
        assert name in out
    assert (tmp_path / "ev-confusion.png").stat().st_size > 10_000
    assert not (tmp_path / "ev-mistakes.png").exists()  # not images

    features = ["a,b,c"] + [f"{r[0]:.4f},{r[1]:.4f},{r[2]:.4f}" for r in X[:5]]
    (tmp_path / "new.csv").write_text("\n".join(features) + "\n")
    code, out, _ = run(["predict", model, tmp_path / "new.csv"], capsys)
    assert code == 0
    rows = out.strip().splitlines()
    assert rows[0].startswith("input,class,label,confidence,p_high,p_low,p_mid") and len(rows) == 6

    code, _, err = run(["predict", model, tmp_path / "new.csv", "--output", tmp_path / "p.json"], capsys)
    assert code == 0 and "5 prediction(s)" in err
    records = json.loads((tmp_path / "p.json").read_text())
    assert len(records) == 5 and {"label", "confidence", "p_mid"} <= set(records[0])
    assert abs(sum(records[0][f"p_{k}"] for k in ("high", "low", "mid")) - 1) < 1e-4


def test_digits_evaluate_figures_and_image_predict(tmp_path, capsys):
    pytest.importorskip("sklearn")
    Image = pytest.importorskip("PIL.Image")
    model = tmp_path / "digits.npz"
    code, _, _ = run(["train", "--data", "digits", "--epochs", "5", "--quiet", "--out", model,
                      "--figure", "-"], capsys)
    assert code == 0
    code, out, _ = run(["evaluate", model, "--data", "digits"], capsys)
    assert code == 0 and "test split, 359 rows" in out
    for tail in ("confusion", "mistakes", "weights"):
        assert (tmp_path / f"digits-{tail}.png").stat().st_size > 10_000

    from flexnet import datasets

    ds = datasets.load("digits")
    seven = ds.X_test[ds.y_test == 7][0]  # pixel values 0..16
    Image.fromarray((seven * 255 / 16).astype(np.uint8)).resize((32, 32), Image.NEAREST).save(tmp_path / "7.png")
    np.savez(tmp_path / "few.npz", X=ds.X_test[:4], y=ds.y_test[:4])
    code, out, _ = run(["predict", model, tmp_path / "7.png", "--format", "json"], capsys)
    assert code == 0
    (record,) = json.loads(out)
    assert record["input"].endswith("7.png") and 0 <= record["class"] <= 9
    code, out, _ = run(["predict", model, tmp_path / "few.npz"], capsys)
    assert code == 0 and len(out.strip().splitlines()) == 5


def test_evaluate_and_predict_bad_input(edges_model, tmp_path, capsys):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a model")
    code, _, err = run(["evaluate", junk, "--data", "edges"], capsys)
    assert_one_line_error(code, err, "junk.npz")
    code, _, err = run(["predict", edges_model, tmp_path / "x.txt"], capsys)
    assert_one_line_error(code, err, "expected one .csv or .npz file")
    (tmp_path / "wide.csv").write_text("1,2,3\n4,5,6\n")
    code, _, err = run(["predict", edges_model, tmp_path / "wide.csv"], capsys)
    assert_one_line_error(code, err, "25 features, got 3")
    (tmp_path / "bad.csv").write_text("a,b,y\n1,2,0\n3,x,1\n")
    code, _, err = run(["evaluate", edges_model, "--data", tmp_path / "bad.csv"], capsys)
    assert_one_line_error(code, err, "line 3, column 2 (b): expected a number, got 'x'")


def test_gradcheck_passes_and_fails_on_tolerance(capsys):
    code, out, _ = run(["gradcheck", "--arch", "6,5,3", "--activation", "tanh"], capsys)
    assert code == 0 and "layers.0.W" in out and "FAIL" not in out
    code, out, err = run(["gradcheck", "--arch", "6,5,3", "--tolerance", "1e-300"], capsys)
    assert code == 1 and "FAIL" in out and "above the tolerance" in err


@pytest.mark.parametrize("arch", ["784,32,10", "25,8,2"])
def test_gradcheck_with_batchnorm_passes(capsys, arch):
    # The bias in front of training-mode batch norm has a true gradient of 0:
    # gradcheck must not call its rounding noise a failure (the README example).
    code, out, _ = run(["gradcheck", "--arch", arch, "--activation", "tanh", "--batchnorm"], capsys)
    assert code == 0 and "layers.0.b" in out and "FAIL" not in out


def test_datasets_lists_each(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("FLEXNET_DATA", str(tmp_path))
    code, out, _ = run(["datasets"], capsys)
    assert code == 0
    for name in ("edges", "digits", "mnist", "fashion-mnist"):
        assert name in out
    assert "built in" in out and str(tmp_path / "mnist") in out


def test_compare_with_data(tmp_path, capsys):
    code, out, _ = run(["compare", "--epochs", "3", "--out", tmp_path / "c.png"], capsys)
    assert code == 0 and "[25, 16, 8, 2]" in out and (tmp_path / "c.png").is_file()
    pytest.importorskip("sklearn")
    code, out, _ = run(["compare", "--data", "digits", "--epochs", "2", "--arch", "64,10",
                        "--arch", "64,16,10", "--out", "-"], capsys)
    assert code == 0 and "[64, 16, 10]" in out
    code, _, err = run(["compare", "--data", "digits", "--arch", "25,2", "--epochs", "1", "--out", "-"], capsys)
    assert_one_line_error(code, err, "input features, 64 for digits")


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_writes_checkpoint_and_resume_finishes_bit_identical(tmp_path, capsys, signum, code):
    """SIGTERM or Ctrl-C mid-training: the exit code, a checkpoint, and the command that
    resumes; the resumed model equals one trained without a stop."""
    out = tmp_path / "m.npz"
    ckpt = tmp_path / "m.ckpt.npz"
    argv = [sys.executable, "-m", "flexnet", "train", "--data", "edges", "--arch", "25,8,2",
            "--epochs", "100000", "--quiet", "--figure", "-", "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "checkpoint written to" in err and "--resume" in err and "Traceback" not in err
    assert ckpt.is_file() and not out.exists()
    done = int(err.split("interrupted after ", 1)[1].split()[0])
    resume = err.strip().splitlines()[-1].split("resume with: ", 1)[1].split()
    assert resume[:2] == ["flexnet", "train"] and resume[-2:] == ["--resume", str(ckpt)]
    resume[resume.index("--epochs") + 1] = str(done + 2)
    assert main(resume[1:] + ["--quiet", "--figure", "-"]) == 0 and out.is_file()
    assert "s in this run" in capsys.readouterr().out  # it went on from the checkpoint
    ref = tmp_path / "ref.npz"
    plain = resume[1:resume.index("--resume")]
    plain[plain.index("--out") + 1] = str(ref)
    assert main(plain + ["--quiet", "--figure", "-"]) == 0
    import flexnet

    resumed, reference = flexnet.load(out).parameters(), flexnet.load(ref).parameters()
    for name, value in reference.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)

"""Files that are not what they claim, and faults that must lose nothing (flexnet.filesystem).

- Reading: a model, checkpoint or data path that names a named pipe, a device, a
  socket, a folder or a /proc or /sys file is refused at once (exit 2 on the
  command line), by every reader; nothing waits on a pipe.
- Writing: a folder, a device, a pipe or a socket is never replaced; a symbolic
  link is replaced by the new file and its target left untouched.
- Names as long as the file system allows (255 bytes) save.
- A writer killed mid-save leaves a temporary file that the next save to the same
  path removes; a live writer's is never touched.
- A full disk (a small tmpfs, else a file-size limit) leaves every kind of output
  as it was, with no temporary file; a read-only file system is refused before
  any training, on every output option of every command.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import selectors
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import flexnet
from flexnet import filesystem
from flexnet.cli import main
from flexnet.data import datasets, sha256_of
from flexnet.data.readers import (
    DataFileError,
    read_csv,
    read_idx,
    read_images,
    read_npz,
    write_idx,
)
from flexnet.files.archive import ModelFileError, read_archive, write_archive
from flexnet.files.model_file import describe
from flexnet.filesystem import NotARegularFileError

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEMP = filesystem.TEMP_SUFFIX


@pytest.fixture(autouse=True)
def no_hang():
    """Fail, rather than hang, a test whose code waits on a special file (opening a
    named pipe waits for a writer): SIGALRM interrupts the wait after 60 s."""

    def alarm(signum, frame):
        raise TimeoutError("blocked for 60 s: a special file was opened and waited on")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code, err, *fragments):
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(TEMP))


# -- special files ------------------------------------------------------------------------

KINDS = ["named pipe", "character device", "block device", "socket", "folder"]
WORDS = {"named pipe": "is a named pipe (FIFO), not a regular file", "character device": "is a character device",
         "block device": "is a block device", "socket": "is a socket", "folder": "is a folder"}


def _mknod(path: Path, kind: int, device: int) -> None:
    try:
        os.mknod(path, kind | 0o600, device)
    except PermissionError:  # only root makes device files
        if CI:
            raise
        pytest.skip("making a device file needs root")


def make_special(path: Path, kind: str) -> Path:
    """Put a special file of ``kind`` at ``path``."""
    if kind == "named pipe":
        os.mkfifo(path)
    elif kind == "character device":
        _mknod(path, stat.S_IFCHR, os.makedev(1, 3))  # the numbers of /dev/null
    elif kind == "block device":
        _mknod(path, stat.S_IFBLK, os.makedev(7, 0))  # the numbers of a loop device
    elif kind == "socket":
        with contextlib.chdir(path.parent), socket.socket(socket.AF_UNIX) as s:
            s.bind(path.name)  # relative: a socket's path must be short
    elif kind == "folder":
        path.mkdir()
    else:
        raise ValueError(kind)
    return path


def is_still(path: Path, kind: str) -> bool:
    test = {"named pipe": stat.S_ISFIFO, "character device": stat.S_ISCHR, "block device": stat.S_ISBLK,
            "socket": stat.S_ISSOCK, "folder": stat.S_ISDIR}[kind]
    return test(os.lstat(path).st_mode)


# Files of the kernel: a device that streams forever, /proc files that claim 0 bytes.
SYSTEM_FILES = [p for p in ("/dev/zero", "/proc/self/status", "/proc/self/mounts",
                            "/sys/kernel/mm/transparent_hugepage/enabled") if os.path.exists(p)]

rng = np.random.default_rng(0)
X4 = rng.random((40, 4)).astype(np.float32)
Y4 = np.arange(40) % 2


def _resume(path):
    net = flexnet.Network([4, 2], seed=0)
    flexnet.fit(net, X4, Y4, epochs=1, resume=path, progress=False)


def _load_torch(path):
    pytest.importorskip("torch")
    from flexnet.bridges.pytorch import load_torch

    load_torch(path)


# Every way flexnet reads a model, a checkpoint or a data file: (call, the error it raises).
READERS = {
    "flexnet.load": (flexnet.load, ModelFileError),
    "read_archive": (read_archive, ModelFileError),
    "describe": (describe, ModelFileError),
    "fit(resume=)": (_resume, ModelFileError),
    "read_csv": (read_csv, DataFileError),
    "read_npz": (read_npz, DataFileError),
    "read_idx": (read_idx, DataFileError),
    "read_images": (lambda p: read_images([p], (8, 8)), DataFileError),
    "datasets.load": (lambda p: datasets.load(str(p)), DataFileError),
    "load_torch": (_load_torch, NotARegularFileError),
    "sha256_of": (sha256_of, NotARegularFileError),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reader", READERS)
def test_every_reader_refuses_a_special_file_at_once(tmp_path, reader, kind):
    if reader == "read_images":
        pytest.importorskip("PIL")
    call, error = READERS[reader]
    path = make_special(tmp_path / "input.csv", kind)
    with pytest.raises(error) as info:
        call(path)
    assert str(path) in str(info.value) and WORDS[kind] in str(info.value)
    assert is_still(path, kind)


@pytest.mark.parametrize("system_file", SYSTEM_FILES)
@pytest.mark.parametrize("reader", ["flexnet.load", "read_csv", "read_npz", "read_idx"])
def test_devices_and_kernel_files_are_refused(reader, system_file):
    call, error = READERS[reader]
    with pytest.raises(error, match="not a regular file") as info:
        call(system_file)
    words = "character device" if system_file.startswith("/dev") else "pseudo-file"
    assert system_file in str(info.value) and words in str(info.value)


def test_a_path_swapped_for_a_pipe_after_the_check_is_refused_without_waiting(tmp_path, monkeypatch):
    pipe = make_special(tmp_path / "model.npz", "named pipe")
    # As if the path held a regular file when it was looked at, and a pipe when opened:
    monkeypatch.setattr(filesystem, "check_regular", lambda path: None)
    with pytest.raises(NotARegularFileError, match="named pipe"):
        filesystem.open_regular(pipe)
    with pytest.raises(ModelFileError, match="named pipe"):
        flexnet.load(pipe)
    with pytest.raises(DataFileError, match="named pipe"):
        read_csv(pipe)


def test_a_device_is_refused_before_it_is_opened(tmp_path, monkeypatch):
    device = make_special(tmp_path / "model.npz", "character device")
    opened = []
    real_open = os.open

    def recording_open(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    with pytest.raises(ModelFileError, match="character device"):
        flexnet.load(device)
    assert str(device) not in opened  # opening a device can do something of its own


def test_symlinks_to_regular_files_still_read(tmp_path):
    net = flexnet.Network([4, 3, 2], seed=0)
    net.save(tmp_path / "real.npz")
    (tmp_path / "link.npz").symlink_to("real.npz")
    assert np.array_equal(flexnet.load(tmp_path / "link.npz").layers[0].W, net.layers[0].W)
    (tmp_path / "pipe").symlink_to(make_special(tmp_path / "fifo", "named pipe"))
    with pytest.raises(ModelFileError, match="named pipe"):
        flexnet.load(tmp_path / "pipe")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small classifier trained by ``flexnet train`` on a CSV: (model, the labelled
    table, the same table without its labels)."""
    folder = tmp_path_factory.mktemp("model")
    rows = [",".join(f"{v:.4f}" for v in x) for x in X4]
    table, inputs = folder / "data.csv", folder / "inputs.csv"
    table.write_text("a,b,c,d,label\n" + "".join(f"{r},{c}\n" for r, c in zip(rows, Y4)))
    inputs.write_text("a,b,c,d\n" + "".join(f"{r}\n" for r in rows))
    assert main(["train", "--data", str(table), "--arch", "4,8,2", "--epochs", "2", "--quiet",
                 "--out", str(folder / "m.npz"), "--figure", "-"]) == 0
    return folder / "m.npz", table, inputs


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    """A model of 5x5 images (the edge patches), for ``predict IMAGE``."""
    out = tmp_path_factory.mktemp("images") / "edges.npz"
    assert main(["train", "--data", "edges", "--epochs", "1", "--quiet", "--out", str(out), "--figure", "-"]) == 0
    return out


def _commands(model_path, table, inputs, special, image_model=None):
    return {
        "info": ["info", special],
        "evaluate": ["evaluate", special, "--data", table, "--figures", "-"],
        "evaluate --data": ["evaluate", model_path, "--data", special.with_suffix(".csv"), "--figures", "-"],
        "predict": ["predict", special, inputs],
        "predict csv": ["predict", model_path, special.with_suffix(".csv")],
        "predict npz": ["predict", model_path, special],
        "predict image": ["predict", image_model, special.with_suffix(".png")],
        "train --data": ["train", "--data", special.with_suffix(".csv"), "--epochs", "1", "--quiet",
                         "--out", special.parent / "out.npz"],
        "train --resume": ["train", "--data", table, "--epochs", "1", "--quiet", "--resume", special,
                           "--out", special.parent / "out.npz"],
    }


@pytest.mark.parametrize("command", ["info", "evaluate", "evaluate --data", "predict", "predict csv",
                                     "predict npz", "predict image", "train --data", "train --resume"])
def test_commands_refuse_a_named_pipe_in_a_real_process(tmp_path, model, image_model, command):
    special = make_special(tmp_path / "pipe.npz", "named pipe")
    make_special(tmp_path / "pipe.csv", "named pipe")
    make_special(tmp_path / "pipe.png", "named pipe")
    argv = [str(a) for a in _commands(*model, special, image_model)[command]]
    proc = subprocess.run([sys.executable, "-m", "flexnet", *argv], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "is a named pipe (FIFO), not a regular file" in proc.stderr
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("kind", ["character device", "socket", "folder"])
@pytest.mark.parametrize("command", ["info", "evaluate", "predict", "predict csv", "train --data",
                                     "train --resume"])
def test_commands_refuse_other_special_files(tmp_path, model, capsys, command, kind):
    special = make_special(tmp_path / "s.npz", kind)
    make_special(tmp_path / "s.csv", kind)
    code, _, err = run(_commands(*model, special)[command], capsys)
    assert_refused(code, err, WORDS[kind])


@pytest.mark.parametrize("system_file", SYSTEM_FILES)
def test_info_refuses_devices_and_kernel_files(capsys, system_file):
    code, _, err = run(["info", system_file], capsys)
    assert_refused(code, err, system_file, "not a regular file")


# -- what saving replaces ------------------------------------------------------------------


def _figure(path):
    pytest.importorskip("matplotlib")
    from flexnet.plots import training_curves

    training_curves({"loss": [1.0, 0.5, 0.25], "val_loss": [1.1, 0.6, 0.4]}, path)


def _torch(path):
    pytest.importorskip("torch")
    from flexnet.bridges.pytorch import save_torch

    save_torch(flexnet.Network([4, 3, 2], seed=0), path)


def _onnx(path):
    pytest.importorskip("onnx")
    flexnet.to_onnx(flexnet.Network([4, 3, 2], seed=0), path)


def _checkpoint(path, epochs=1):
    net = flexnet.Network([4, 3, 2], seed=0)
    flexnet.fit(net, X4, Y4, epochs=epochs, checkpoint=path, progress=False)


# Every way flexnet writes a file from the Python API.
WRITERS = {
    "flexnet.save": lambda p: flexnet.save(flexnet.Network([4, 3, 2], seed=0), p),
    "write_archive": lambda p: write_archive(p, {"format": "x"}, {"a": np.arange(3)}),
    "checkpoint": _checkpoint,
    "figure": _figure,
    "write_idx": lambda p: write_idx(p, np.zeros((3, 2, 2), np.uint8)),
    "torch export": _torch,
    "onnx export": _onnx,
    "write_text": lambda p: filesystem.write_text(p, "text\n"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("writer", WRITERS)
def test_saving_never_replaces_a_special_file(tmp_path, writer, kind):
    path = make_special(tmp_path / "out.png", kind)
    error = IsADirectoryError if kind == "folder" else NotARegularFileError
    with pytest.raises(error) as info:
        WRITERS[writer](path)
    assert str(path) in str(info.value)
    assert is_still(path, kind)
    assert leftovers(tmp_path) == []


def test_a_device_in_the_path_stays_a_device_even_for_root(tmp_path):
    null = make_special(tmp_path / "null", "character device")  # /dev/null's numbers, in a folder of ours
    with pytest.raises(NotARegularFileError, match="character device, not a regular file; flexnet replaces only"):
        flexnet.save(flexnet.Network([2, 2]), null)
    assert stat.S_ISCHR(os.lstat(null).st_mode) and os.lstat(null).st_rdev == os.makedev(1, 3)
    assert sorted(os.listdir(tmp_path)) == ["null"]


@pytest.mark.parametrize("kind", ["named pipe", "character device", "socket"])
@pytest.mark.parametrize("option", ["--out", "--checkpoint", "--figure"])
def test_train_refuses_a_special_output_before_training(tmp_path, capsys, monkeypatch, option, kind):
    monkeypatch.setattr("flexnet.training.loop.fit", _no_training)
    special = make_special(tmp_path / "special", kind)
    argv = ["train", "--data", "edges", "--epochs", "1", "--quiet", "--out", tmp_path / "m.npz", option, special]
    code, _, err = run(argv, capsys)
    assert_refused(code, err, option, WORDS[kind])
    assert is_still(special, kind) and not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("kind", ["named pipe", "character device"])
def test_every_command_refuses_a_special_output(tmp_path, model, capsys, kind):
    model_path, table, inputs = model
    special = make_special(tmp_path / "special.png", kind)
    make_special(tmp_path / "special-confusion.png", kind)
    for argv in (["predict", model_path, inputs, "--output", special],
                 ["export", model_path, "--format", "onnx", "--out", special],
                 ["compare", "--epochs", "1", "--out", special],
                 ["evaluate", model_path, "--data", table, "--figures", tmp_path / "special"]):
        code, _, err = run(argv, capsys)
        assert_refused(code, err, "special", WORDS[kind])
        assert is_still(special, kind)
    (tmp_path / "sweep").mkdir()
    make_special(tmp_path / "sweep" / "trials.csv", kind)
    code, _, err = run(["sweep", "--data", table, "--arch", "4,2", "--epochs", "1", "--out", tmp_path / "sweep"],
                       capsys)
    assert_refused(code, err, "trials.csv", WORDS[kind])
    assert not (tmp_path / "sweep" / "trials.jsonl").exists()
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "sweep") == []


def test_a_sweep_log_that_is_a_pipe_is_refused_not_waited_on(tmp_path):
    make_special(tmp_path / "trials.jsonl", "named pipe")
    with pytest.raises(NotARegularFileError, match="trials.jsonl: is a named pipe"):
        flexnet.sweep((X4, Y4), {"arch": [[4, 2]]}, epochs=1, out=tmp_path)
    with pytest.raises(NotARegularFileError, match="trials.jsonl: is a named pipe"):
        flexnet.sweep((X4, Y4), {"arch": [[4, 2]]}, epochs=1, out=tmp_path, resume=True)


def test_a_symlink_is_replaced_and_its_target_left_untouched(tmp_path):
    """The documented behaviour: saving to a link writes a new file in the link's place."""
    target = tmp_path / "target.npz"
    target.write_bytes(b"the target's own bytes")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    net = flexnet.Network([4, 3, 2], seed=0)
    flexnet.save(net, link)
    assert not link.is_symlink() and np.array_equal(flexnet.load(link).layers[0].W, net.layers[0].W)
    assert target.read_bytes() == b"the target's own bytes"
    dangling = tmp_path / "dangling.npz"
    dangling.symlink_to(tmp_path / "nowhere.npz")
    flexnet.save(net, dangling)
    assert not dangling.is_symlink() and not (tmp_path / "nowhere.npz").exists()


@pytest.mark.parametrize("kind", ["named pipe", "character device", "folder"])
def test_a_symlink_to_a_special_file_is_refused_and_kept(tmp_path, kind):
    special = make_special(tmp_path / "special", kind)
    link = tmp_path / "link.npz"
    link.symlink_to(special)
    error = IsADirectoryError if kind == "folder" else NotARegularFileError
    with pytest.raises(error, match="link"):
        flexnet.save(flexnet.Network([2, 2]), link)
    assert link.is_symlink() and is_still(special, kind) and leftovers(tmp_path) == []


def test_a_link_into_proc_like_dev_stdout_is_never_replaced(tmp_path, model, capsys):
    """/dev/stdout is a link to /proc/self/fd/1; when standard output is a file, that is a link
    to a regular file. Replacing it would turn a system link into a file: refused. (The same
    kind of link is made here, in a folder of the test's own.)"""
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        f.write("kept")
        f.flush()
        stdout = tmp_path / "stdout"
        stdout.symlink_to(f"/proc/self/fd/{f.fileno()}")
        for writer in ("flexnet.save", "figure", "write_text"):
            with pytest.raises(NotARegularFileError, match="link into the kernel's proc file system"):
                WRITERS[writer](stdout)
        model_path, _, inputs = model
        code, _, err = run(["predict", model_path, inputs, "--output", stdout], capsys)
        assert_refused(code, err, "--output", "link into the kernel's proc file system")
        assert stdout.is_symlink() and log.read_text() == "kept" and leftovers(tmp_path) == []


@pytest.mark.parametrize("system_file", ["/proc/self/status", "/proc/self/mounts"])  # files no write can change
def test_kernel_files_are_never_replaced(system_file):
    with pytest.raises(NotARegularFileError, match="proc pseudo-file"):
        filesystem.check_writable(system_file)
    with pytest.raises(NotARegularFileError, match="proc pseudo-file"):
        filesystem.write_text(system_file, "x")
    assert stat.S_ISREG(os.lstat(system_file).st_mode)


# -- names as long as the file system allows -----------------------------------------------


@pytest.mark.parametrize("length", [250, 255])
@pytest.mark.parametrize("writer", WRITERS)
def test_a_name_as_long_as_allowed_saves(tmp_path, writer, length):
    path = tmp_path / ("m" * (length - 4) + ".png")
    WRITERS[writer](path)
    assert path.is_file() and path.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # nothing else, nothing temporary


def test_a_name_of_250_characters_round_trips(tmp_path):
    path = tmp_path / ("é" * 2 + "m" * 242 + ".npz")  # 250 characters, 252 bytes
    net = flexnet.Network([4, 3, 2], seed=0)
    flexnet.save(net, path)
    flexnet.save(net, path)  # and replaces itself
    assert np.array_equal(flexnet.load(path).layers[0].W, net.layers[0].W)


@pytest.mark.parametrize("length", [250, 255])
def test_commands_write_long_names(tmp_path, model, capsys, length):
    _, table, inputs = model
    out = tmp_path / ("m" * (length - 4) + ".npz")
    code, _, err = run(["train", "--data", table, "--arch", "4,8,2", "--epochs", "1", "--quiet", "--out", out],
                       capsys)
    assert code == 0, err
    written = sorted(tmp_path.iterdir())
    assert len(written) == 3 and all(len(p.name.encode()) <= 255 for p in written)  # model, checkpoint, curves
    assert any(p.name.endswith("-curves.png") for p in written) and any(".ckpt" in p.name for p in written)
    predictions = tmp_path / ("p" * (length - 4) + ".csv")
    code, _, err = run(["predict", out, inputs, "--output", predictions], capsys)
    assert code == 0 and predictions.read_text().startswith("input,class"), err
    code, _, err = run(["evaluate", out, "--data", table], capsys)
    assert code == 0, err
    assert leftovers(tmp_path) == []


def test_a_name_too_long_is_refused_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("flexnet.training.loop.fit", _no_training)
    code, _, err = run(["train", "--epochs", "1", "--out", tmp_path / ("m" * 253 + ".npz")], capsys)
    assert_refused(code, err, "--out", "file name is 257 bytes long", "allows 255")


# -- killed writers ----------------------------------------------------------------------

_HELD_SAVER = textwrap.dedent("""
    import os, sys, time
    import flexnet
    net = flexnet.Network([64, 64, 10], seed=int(sys.argv[2]))

    def held_fsync(fd):  # the temporary file is written: stop here until killed
        print("writing", flush=True)
        time.sleep(600)

    os.fsync = held_fsync
    net.save(sys.argv[1])
""")


def _start_held_writer(path: Path, seed: int) -> subprocess.Popen:
    """A process stopped inside ``save(path)``, its temporary file written."""
    proc = subprocess.Popen([sys.executable, "-c", _HELD_SAVER, str(path), str(seed)], stdout=subprocess.PIPE,
                            text=True)
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout=60)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "writing":
        proc.kill()
        proc.wait(timeout=60)
        pytest.fail(f"the writer did not reach its save (said {line!r})")
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)  # reaped: its pid is gone


def test_the_next_save_removes_what_killed_writers_left(tmp_path):
    path = tmp_path / "model.npz"
    flexnet.save(flexnet.Network([64, 64, 10], seed=99), path)
    before = path.read_bytes()
    writers = []
    try:
        for seed in range(3):
            writers.append(_start_held_writer(path, seed))
        assert len(leftovers(tmp_path)) == 3  # one temporary file per writer, each mid-save
        live = writers[-1]
        for proc in writers[:-1]:
            _kill(proc)
        assert path.read_bytes() == before  # no kill touched the file
        flexnet.save(flexnet.Network([64, 64, 10], seed=7), path)
        # the dead writers' files are gone; the live writer's is kept
        assert leftovers(tmp_path) == [f for f in os.listdir(tmp_path) if f".{live.pid}." in f]
        assert len(leftovers(tmp_path)) == 1
        _kill(live)
        flexnet.save(flexnet.Network([64, 64, 10], seed=8), path)
        assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    finally:
        for proc in writers:
            if proc.poll() is None:
                _kill(proc)


def test_only_this_targets_leftovers_are_removed(tmp_path):
    """Another target's temporary files, and files that only look temporary, stay."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, timeout=60, check=True)
    pid = int(dead.stdout)  # a process that ran and was reaped
    mine = tmp_path / filesystem.temporary_name("model.npz", pid)
    other = tmp_path / filesystem.temporary_name("other.npz", pid)
    odd = tmp_path / f".{mine.name.split('.')[1]}.notapid.x{TEMP}"
    for p in (mine, other, odd):
        p.write_bytes(b"partial")
    flexnet.save(flexnet.Network([2, 2]), tmp_path / "model.npz")
    assert sorted(os.listdir(tmp_path)) == sorted(["model.npz", other.name, odd.name])


def test_a_locked_temporary_file_is_kept_even_if_its_pid_looks_dead(tmp_path):
    """A writer in another pid namespace has a pid that means nothing here: its lock says it is alive."""
    fcntl = pytest.importorskip("fcntl")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, timeout=60, check=True)
    held = tmp_path / filesystem.temporary_name("model.npz", int(dead.stdout))
    with open(held, "wb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        flexnet.save(flexnet.Network([2, 2]), tmp_path / "model.npz")
        assert held.exists()
    flexnet.save(flexnet.Network([2, 2]), tmp_path / "model.npz")
    assert not held.exists()


def test_temporary_names_are_short_whatever_the_target():
    for name in ("m.npz", "m" * 255, "é" * 127):
        tmp = filesystem.temporary_name(name)
        assert len(tmp) <= 48 and tmp.startswith(".") and tmp.endswith(TEMP)
        assert filesystem.temporary_name(name) != tmp  # fresh each time


# -- a full disk ---------------------------------------------------------------------------


def _mount(*args) -> bool:
    try:
        proc = subprocess.run(["mount", *map(str, args)], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _umount(folder: Path) -> None:
    for args in (["umount", str(folder)], ["umount", "-l", str(folder)]):
        if subprocess.run(args, capture_output=True, timeout=60, check=False).returncode == 0:
            return


class SmallDisk:
    """A folder on a 4 MiB tmpfs that :meth:`full` fills, a real full disk.

    Where mounting is not permitted, :meth:`full` sets a file-size limit
    (RLIMIT_FSIZE) instead: the kernel then fails writes past the limit with
    EFBIG, as a full disk fails them with ENOSPC.
    """

    def __init__(self, folder: Path, mounted: bool):
        self.folder, self.mounted = folder, mounted

    @contextlib.contextmanager
    def full(self, leave: int = 0):
        """Writes fail once ``leave`` more bytes (rounded to pages on tmpfs) are written."""
        if not self.mounted:
            limit = resource.getrlimit(resource.RLIMIT_FSIZE)
            handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (leave, limit[1]))
            try:
                yield
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, limit)
                signal.signal(signal.SIGXFSZ, handler)
            return
        filler, reserve = self.folder / "filler", self.folder / "reserve"
        if leave:
            reserve.write_bytes(b"r" * leave)
        with open(filler, "wb", buffering=0) as f:
            for chunk in (1 << 16, 1 << 12, 1):
                with contextlib.suppress(OSError):
                    while True:
                        f.write(b"f" * chunk)
        reserve.unlink(missing_ok=True)
        try:
            yield
        finally:
            filler.unlink()

    def error_numbers(self):
        return (errno.ENOSPC,) if self.mounted else (errno.EFBIG,)


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", folder)
    try:
        yield SmallDisk(folder, mounted)
    finally:
        if mounted:
            _umount(folder)


def _whole_or_nothing(disk: SmallDisk, name: str, write, write_again=None, leave: int = 0):
    """``write`` a good file, then write again on a full disk: the good file is intact, no
    temporary file remains. Returns the error raised."""
    path = disk.folder / name
    write(path)
    before = path.read_bytes()
    assert before
    with disk.full(leave), pytest.raises(OSError) as info:
        (write_again or write)(path)
    assert info.value.errno in disk.error_numbers(), info.value
    assert str(path) in str(info.value)  # the message names the file asked for
    assert path.read_bytes() == before
    assert sorted(os.listdir(disk.folder)) == [name]
    return info.value


@pytest.mark.parametrize("writer", WRITERS)
def test_a_full_disk_loses_nothing(small_disk, writer):
    _whole_or_nothing(small_disk, "out.png", WRITERS[writer])


def test_a_full_disk_after_8_kib_loses_nothing(small_disk):
    big = flexnet.Network([64, 64, 10], seed=1)  # about 20 KB: the disk fills in the middle
    _whole_or_nothing(small_disk, "m.npz", WRITERS["flexnet.save"], lambda p: flexnet.save(big, p), leave=8192)


def test_a_checkpoint_on_a_full_disk_keeps_the_last_good_one(small_disk):
    path = small_disk.folder / "run.ckpt.npz"
    _checkpoint(path, epochs=1)
    before = path.read_bytes()
    with small_disk.full(), pytest.raises(OSError) as info:
        _checkpoint(path, epochs=3)
    assert info.value.errno in small_disk.error_numbers()
    assert path.read_bytes() == before and sorted(os.listdir(small_disk.folder)) == ["run.ckpt.npz"]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_predictions_on_a_full_disk_keep_the_previous_file(small_disk, model, capsys, tmp_path, fmt):
    model_path = model[0]
    many = tmp_path / "many.csv"  # 800 rows: far more than 8 KiB of predictions
    many.write_text("a,b,c,d\n" + "".join(f"{i % 7},{i % 5},{i % 3},{i % 2}\n" for i in range(800)))
    out = small_disk.folder / f"p.{fmt}"
    assert run(["predict", model_path, many, "--output", out], capsys)[0] == 0
    before = out.read_bytes()
    assert len(before) > 16384
    with small_disk.full(leave=8192):
        code, _, err = run(["predict", model_path, many, "--output", out], capsys)
    assert code == 1 and "Traceback" not in err and str(out) in err, err
    assert out.read_bytes() == before and sorted(os.listdir(small_disk.folder)) == [out.name]


def test_sweep_tables_and_figures_on_a_full_disk_keep_the_previous_ones(small_disk):
    pytest.importorskip("matplotlib")
    from flexnet.experiments.results import write_outputs

    result = flexnet.sweep((X4, Y4), {"arch": [[4, 2], [4, 3, 2]], "seed": [0, 1]}, epochs=2)
    files = write_outputs(result, small_disk.folder, figures=True, top=2)
    assert {"trials_csv", "configs_csv", "trials_json", "best_model", "accuracy_figure"} <= set(files)
    before = {p.name: p.read_bytes() for p in small_disk.folder.iterdir()}
    with small_disk.full(), pytest.raises(OSError):
        write_outputs(result, small_disk.folder, figures=True, top=2)
    assert {p.name: p.read_bytes() for p in small_disk.folder.iterdir()} == before
    from flexnet.plots import sweep_accuracy_figure

    figure = small_disk.folder / "accuracy_vs_params.png"
    with small_disk.full(), pytest.raises(OSError):
        sweep_accuracy_figure(result.configs, figure)
    assert figure.read_bytes() == before[figure.name] and leftovers(small_disk.folder) == []


def test_exports_on_a_full_disk_keep_the_previous_file(small_disk, model, capsys):
    model_path = model[0]
    for fmt, name in (("onnx", "m.onnx"), ("torch", "m.pt")):
        pytest.importorskip(fmt)
        out = small_disk.folder / name
        assert run(["export", model_path, "--format", fmt, "--out", out], capsys)[0] == 0
        before = out.read_bytes()
        with small_disk.full():
            code, _, err = run(["export", model_path, "--format", fmt, "--out", out], capsys)
        assert code == 1 and str(out) in err, err
        assert out.read_bytes() == before and leftovers(small_disk.folder) == []


# -- a read-only file system ----------------------------------------------------------------


class ReadOnlyFolder:
    """A folder on a read-only file system, holding one file ``old.npz``.

    A tmpfs remounted read-only where mounting is permitted; else every creation
    of a file under the folder fails with EROFS (os.open, open, os.mkdir patched).
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.old = folder / "old.npz"


def _refuse_writes_under(folder: Path, monkeypatch) -> None:
    real_os_open, real_open, real_mkdir = os.open, open, os.mkdir
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def under(path) -> bool:
        try:
            return Path(os.path.abspath(os.fspath(path))).is_relative_to(folder)
        except TypeError:
            return False

    def read_only():
        return OSError(errno.EROFS, os.strerror(errno.EROFS))

    def os_open(path, flags, *args, **kwargs):
        if flags & writing and under(path):
            raise read_only()
        return real_os_open(path, flags, *args, **kwargs)

    def builtin_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and under(file):
            raise read_only()
        return real_open(file, mode, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        if under(path):
            raise read_only()
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr("builtins.open", builtin_open)
    monkeypatch.setattr(os, "mkdir", mkdir)


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", folder)
    flexnet.save(flexnet.Network([4, 2], seed=0), folder / "old.npz")
    if mounted and not _mount("-o", "remount,ro", folder):
        _umount(folder)
        mounted = False
    if not mounted:
        _refuse_writes_under(folder, monkeypatch)
    try:
        yield ReadOnlyFolder(folder)
    finally:
        if mounted:
            _umount(folder)


def _no_training(*args, **kwargs):
    raise AssertionError("training started although an output cannot be written")


def test_the_read_only_folder_is_read_only(read_only):
    with pytest.raises(OSError) as info:
        flexnet.save(flexnet.Network([4, 2], seed=1), read_only.old)
    assert info.value.errno == errno.EROFS and "old.npz" in str(info.value)
    assert flexnet.load(read_only.old).layers[0].W.shape == (4, 2)  # reading still works


@pytest.mark.parametrize("option", ["--out", "--checkpoint", "--figure"])
def test_train_refuses_a_read_only_output_before_training(read_only, tmp_path, capsys, monkeypatch, option):
    monkeypatch.setattr("flexnet.training.loop.fit", _no_training)
    outputs = {"--out": tmp_path / "m.npz", "--checkpoint": tmp_path / "c.npz", "--figure": tmp_path / "f.png"}
    outputs[option] = read_only.folder / "x.npz"
    argv = ["train", "--data", "edges", "--epochs", "1"] + [a for kv in outputs.items() for a in kv]
    code, out, err = run(argv, capsys)
    assert_refused(code, err, option, "Read-only file system")
    assert "Training" not in out


def test_every_command_refuses_a_read_only_output_before_its_work(read_only, model, capsys, monkeypatch):
    model_path, table, inputs = model
    monkeypatch.setattr(sys.modules["flexnet.experiments.compare"], "compare", _no_training)
    monkeypatch.setattr(sys.modules["flexnet.experiments.sweep"], "sweep", _no_training)
    monkeypatch.setattr("flexnet.files.model_file.load", _no_training)  # predict and export: before loading
    ro = read_only.folder
    for argv, option in [
        (["predict", model_path, inputs, "--output", ro / "p.csv"], "--output"),
        (["export", model_path, "--format", "onnx", "--out", ro / "m.onnx"], "--out"),
        (["export", model_path, "--format", "torch", "--out", ro / "m.pt"], "--out"),
        (["compare", "--epochs", "1", "--out", ro / "c.png"], "--out"),
        (["sweep", "--data", table, "--arch", "4,2", "--out", ro], "--out"),
        (["sweep", "--data", table, "--arch", "4,2", "--out", ro / "new" / "folder"], "--out"),
    ]:
        code, _, err = run(argv, capsys)
        assert_refused(code, err, option, "Read-only file system")


def test_evaluate_refuses_read_only_figures_before_evaluating(read_only, model, capsys, monkeypatch):
    model_path, table, _ = model
    monkeypatch.setattr("flexnet.training.loop.evaluate", _no_training)
    code, _, err = run(["evaluate", model_path, "--data", table, "--figures", read_only.folder / "fig"], capsys)
    assert_refused(code, err, "--figures", "Read-only file system", "--figures - writes none")


def test_fit_refuses_a_read_only_checkpoint_before_training(read_only, monkeypatch):
    from flexnet.training.loop import FitLoop

    monkeypatch.setattr(FitLoop, "run", _no_training)
    with pytest.raises(OSError) as info:
        flexnet.fit(flexnet.Network([4, 2]), X4, Y4, epochs=1, checkpoint=read_only.folder / "c.npz")
    assert info.value.errno == errno.EROFS and "c.npz" in str(info.value)


# -- the command line's own messages -----------------------------------------------------------


def test_check_output_names_the_option_and_the_reason(tmp_path):
    from flexnet.cli.common import UsageError, check_output, check_output_folder

    make_special(tmp_path / "pipe", "named pipe")
    (tmp_path / "file").write_text("x")
    for path, words in [(tmp_path / "pipe", "named pipe"), (tmp_path / "nope" / "m.npz", "does not exist"),
                        (tmp_path, "is a folder"), (tmp_path / "file" / "m.npz", "Not a directory")]:
        with pytest.raises(UsageError, match=words) as info:
            check_output(path, "--out")
        assert str(info.value).startswith("--out: ")
    with pytest.raises(UsageError, match="is not a folder"):
        check_output_folder(tmp_path / "file", "--out")
    check_output_folder(tmp_path / "new" / "deeper", "--out")  # created later by the sweep
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []


def test_predictions_are_utf8_whatever_the_locale(tmp_path, model, capsys):
    model_path, _, inputs = model
    out = tmp_path / "p.json"
    assert run(["predict", model_path, inputs, "--output", out], capsys)[0] == 0
    records = json.loads(out.read_text(encoding="utf-8"))
    assert len(records) == 40 and {"input", "class", "confidence"} <= set(records[0])

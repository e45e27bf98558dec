"""The BLAS thread policy: who decides how many threads a piece of work gets.

flexnet chooses (``flexnet.ops.threads.choose``) unless told (``fit(threads=)``,
``--threads``); the count is recorded in History and in sweep rows, and a
resumed run keeps the count it was started with.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import flexnet
from flexnet.cli import main
from flexnet.experiments.compare import compare
from flexnet.ops import threads
from flexnet.training.callbacks import Callback

FIXTURES = Path(__file__).parent / "fixtures" / "v1"
sys.path.insert(0, str(FIXTURES.parent))
import make_files  # noqa: E402


@pytest.fixture
def machine(monkeypatch):
    """A machine of ``cores`` cores of which ``busy`` are taken by others, with no env caps."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    state = {"cores": 4, "busy": 0.0, "watched": 0}

    def busy(*args, **kwargs):
        state["watched"] += 1
        return state["busy"]

    monkeypatch.setattr(threads, "cores", lambda: state["cores"])
    monkeypatch.setattr(threads, "busy_cores", busy)
    return state


# -- the choice -------------------------------------------------------------------


def test_small_products_get_one_thread_without_watching_the_machine(machine):
    assert threads.choose(0) == 1
    assert threads.choose(64 * 784 * 128) == 1  # W's largest product: a second thread gains little
    assert threads.choose(threads.WORK_PER_THREAD * 2 - 1) == 1
    assert machine["watched"] == 0  # a small fit never waits to look at the machine


def test_big_products_get_a_thread_per_share_of_work_up_to_the_free_cores(machine):
    w = threads.WORK_PER_THREAD
    assert threads.choose(2 * w) == 2
    assert threads.choose(3 * w + 1) == 3
    assert threads.choose(100 * w) == 4  # never more than the cores
    machine["busy"] = 1.0  # another process keeps one core busy
    assert threads.choose(100 * w) == 3
    machine["busy"] = 3.9
    assert threads.choose(100 * w) == 1  # never fewer than one
    machine["busy"], machine["cores"] = 1.0, 2
    assert threads.choose(256 * 784 * 512) == 1  # W-big with one of two cores busy


def test_a_core_busy_most_of_the_time_counts_as_taken(machine):
    machine["busy"] = 0.85
    assert threads.choose(100 * threads.WORK_PER_THREAD) == 3
    machine["busy"] = 0.6
    assert threads.choose(100 * threads.WORK_PER_THREAD) == 3
    machine["busy"] = 0.4
    assert threads.choose(100 * threads.WORK_PER_THREAD) == 4
    machine["busy"] = 0.1
    assert threads.choose(100 * threads.WORK_PER_THREAD) == 4


@pytest.mark.parametrize("var", ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"])
def test_the_environment_caps_the_count(machine, monkeypatch, var):
    monkeypatch.setenv(var, "2")
    assert threads.env_cap() == 2
    assert threads.choose(100 * threads.WORK_PER_THREAD) == 2
    monkeypatch.setenv(var, "1")
    assert threads.choose(100 * threads.WORK_PER_THREAD) == 1


@pytest.mark.parametrize("text", ["", "0", "-1", "two", "2.5"])
def test_settings_that_are_not_a_count_are_no_cap(monkeypatch, text):
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", text)
    assert threads.env_cap() is None


def test_busy_cores_is_the_mean_count_of_other_threads_ready_to_run(monkeypatch):
    looks = iter([1, 1, 0, 1, 1])
    monkeypatch.setattr(threads, "_runnable_elsewhere", lambda: next(looks))
    monkeypatch.setattr(threads, "_seen", {"at": -float("inf"), "busy": 0.0})
    assert threads.busy_cores(5, 0.0) == pytest.approx(0.8)
    assert threads.busy_cores(5, 0.0) == pytest.approx(0.8)  # a second look within a second is the first


def test_busy_cores_is_zero_where_the_os_does_not_say(monkeypatch):
    monkeypatch.setattr(threads, "_runnable_elsewhere", lambda: None)
    monkeypatch.setattr(threads, "_seen", {"at": -float("inf"), "busy": 0.0})
    assert threads.busy_cores() == 0.0


def test_busy_cores_sees_a_process_that_spins_and_not_this_ones_own_threads():
    """A real spinning process counts as about one busy core; this process's BLAS
    threads, just used, do not count. Measured, so compared loosely."""
    import numpy as np

    a = np.ones((400, 400))
    with threads.limited(2):
        a @ a  # this process's BLAS threads may spin for a while after the product
        threads._seen["at"] = -float("inf")
        quiet_here = threads._runnable_elsewhere()
    assert quiet_here is not None and quiet_here >= 0
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        seen, deadline = [], time.monotonic() + 60  # until the spinner runs: Python takes a moment to start
        while time.monotonic() < deadline and (not seen or seen[-1] < 0.6):
            threads._seen["at"] = -float("inf")
            seen.append(threads.busy_cores(5, 0.002))
        assert seen[-1] >= 0.6, seen[-20:]
    finally:
        spinner.kill()
        spinner.wait(timeout=30)


def test_limited_sets_and_restores_the_blas_threads():
    before = threads.in_use()
    with threads.limited(1):
        assert threads.in_use() == 1
    assert threads.in_use() == before
    with threads.limited(None):  # None: leave them as they are
        assert threads.in_use() == before


# -- fit ----------------------------------------------------------------------------


def _data(n=256, d=20, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = (rng.normal(size=(k, d))[y] + rng.normal(size=(n, d))).astype("float32")
    return X, y


class _SeeThreads(Callback):
    """Records the BLAS thread count in force while training."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(threads.in_use())


@pytest.mark.parametrize("count", [1, 2])
def test_fit_trains_with_the_count_asked_and_records_it(count):
    X, y = _data()
    net = flexnet.Network([20, 16, 3], seed=0)
    see = _SeeThreads()
    before = threads.in_use()
    history = flexnet.fit(net, X, y, epochs=2, batch_size=32, seed=0, threads=count, callbacks=[see])
    assert history.params["threads"] == count
    assert see.seen == [min(count, threads.cores())] * 2
    assert threads.in_use() == before  # restored after fit


def test_fit_chooses_a_count_by_default_and_records_it(monkeypatch):
    asked = []
    monkeypatch.setattr(threads, "choose", lambda work: asked.append(work) or 1)
    X, y = _data()
    net = flexnet.Network([20, 16, 3], seed=0)
    history = flexnet.fit(net, X, y, epochs=1, batch_size=32, seed=0)
    assert history.params["threads"] == 1
    assert asked == [32 * 20 * 16]  # the largest product of a step: batch x the first layer's weights


def test_the_largest_product_counts_the_last_smaller_batch_of_a_small_data_set(monkeypatch):
    asked = []
    monkeypatch.setattr(threads, "choose", lambda work: asked.append(work) or 1)
    X, y = _data(n=10)
    flexnet.fit(flexnet.Network([20, 64, 3], seed=0), X, y, epochs=1, batch_size=32, seed=0)
    assert asked == [10 * 20 * 64]


@pytest.mark.parametrize("count", [1, 2])
def test_the_same_count_gives_the_same_bits(count):
    X, y = _data()
    weights = []
    for _ in range(2):
        net = flexnet.Network([20, 64, 32, 3], seed=3)
        flexnet.fit(net, X, y, epochs=3, batch_size=16, seed=4, threads=count, optimizer="adam", lr=0.01)
        weights.append(net.parameters())
    for name in weights[0]:
        assert np.array_equal(weights[0][name], weights[1][name]), name


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_fit_refuses_a_thread_count_that_is_not_a_positive_int(bad):
    X, y = _data()
    with pytest.raises((TypeError, ValueError), match=r"fit\(threads\)"):
        flexnet.fit(flexnet.Network([20, 3], seed=0), X, y, epochs=1, threads=bad)


def test_a_resumed_run_keeps_the_count_it_was_started_with(tmp_path, monkeypatch):
    X, y = _data()
    ckpt = tmp_path / "run.ckpt.npz"
    whole = flexnet.Network([20, 16, 3], seed=0)
    flexnet.fit(whole, X, y, epochs=4, batch_size=32, seed=0, threads=1)
    part = flexnet.Network([20, 16, 3], seed=0)
    flexnet.fit(part, X, y, epochs=2, batch_size=32, seed=0, threads=1, checkpoint=ckpt)

    monkeypatch.setattr(threads, "choose", lambda work: pytest.fail("a resumed run must not choose again"))
    resumed = flexnet.Network([20, 16, 3], seed=0)
    history = flexnet.fit(resumed, X, y, epochs=4, batch_size=32, seed=0, resume=ckpt)
    assert history.params["threads"] == 1
    assert len(history) == 4
    for name, p in whole.parameters().items():
        assert np.array_equal(p, resumed.parameters()[name]), name


def test_a_checkpoint_of_the_previous_release_resumes_with_the_blas_default(tmp_path, monkeypatch):
    copy = tmp_path / "checkpoint.npz"
    shutil.copyfile(FIXTURES / "checkpoint.npz", copy)  # written before threads were recorded
    monkeypatch.setattr(threads, "choose", lambda work: pytest.fail("it must resume as it was written"))
    seen = []
    original = threads.limited

    def spy(n):
        seen.append(n)
        return original(n)

    monkeypatch.setattr(threads, "limited", spy)
    make_files.checkpoint_run(epochs=12, resume=copy)
    assert seen == [None]  # no limit: as 0.1 trained it


# -- where else the count is set and recorded -----------------------------------------


def test_compare_and_sweep_rows_record_their_thread_count(tmp_path):
    rows = flexnet.sweep("edges", {"arch": [[25, 2]], "lr": [0.1]}, epochs=2, blas_threads=1,
                         out=None).trials
    assert [r["blas_threads"] for r in rows] == [1]
    with pytest.raises(ValueError, match=r"compare\(threads\)"):
        compare([[25, 2]], epochs=1, threads=0)
    assert compare([[25, 2]], epochs=2, threads=1)[0].final_loss > 0


@pytest.mark.parametrize("command", [
    ["train", "--data", "edges", "--epochs", "1", "--quiet"],
    ["evaluate", "MODEL", "--data", "edges", "--figures", "-"],
    ["predict", "MODEL", "INPUT"],
    ["compare", "--epochs", "1", "--out", "-"],
    ["sweep", "--arch", "25,2", "--epochs", "1", "--quiet"],
    ["gradcheck"],
])
def test_every_command_that_computes_takes_threads(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "m.npz"
    net = flexnet.Network([25, 2], seed=0)
    flexnet.save(net, model)
    np.savetxt(tmp_path / "x.csv", np.zeros((3, 25)), delimiter=",")
    argv = [{"MODEL": str(model), "INPUT": str(tmp_path / "x.csv")}.get(a, a) for a in command]
    if command[0] == "train":
        argv += ["--out", str(tmp_path / "t.npz")]
    if command[0] == "sweep":
        argv += ["--out", str(tmp_path / "sweep")]
    assert main([*argv, "--threads", "1"]) == 0, capsys.readouterr()
    capsys.readouterr()
    assert main([*argv, "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_a_command_leaves_the_thread_limits_as_it_found_them(tmp_path, capsys):
    model = tmp_path / "m.npz"
    flexnet.save(flexnet.Network([25, 2], seed=0), model)
    np.savetxt(tmp_path / "x.csv", np.zeros((3, 25)), delimiter=",")
    with threads.limited(2):
        assert main(["predict", str(model), str(tmp_path / "x.csv"), "--threads", "1"]) == 0
        assert threads.in_use() == min(2, threads.cores())


def test_train_says_which_thread_count_it_used(tmp_path, capsys):
    code = main(["train", "--data", "edges", "--epochs", "1", "--quiet", "--threads", "1",
                 "--out", str(tmp_path / "m.npz")])
    assert code == 0
    assert any(line.split() == ["BLAS", "threads", "1"] for line in capsys.readouterr().out.splitlines())


def test_a_blas_default_of_one_thread_in_the_environment_is_kept_by_a_subprocess(tmp_path):
    """The user's OPENBLAS_NUM_THREADS=1 is a cap flexnet honours, even for a big network."""
    code = (
        "import numpy as np, flexnet\n"
        "from flexnet.ops import threads\n"
        "X = np.zeros((512, 784), np.float32); y = np.arange(512) % 10\n"
        "h = flexnet.fit(flexnet.Network([784, 512, 512, 10], seed=0), X, y, epochs=1, batch_size=256)\n"
        "print(h.params['threads'])\n"
    )
    env = {**__import__("os").environ, "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize(("cpu_max", "expected"), [("max 100000\n", None), ("100000 100000\n", 1),
                                                    ("150000 100000\n", 2), ("garbage", None)])
def test_a_containers_cpu_quota_caps_the_cores(monkeypatch, cpu_max, expected):
    import io

    real_open = open

    def fake_open(path, *args, **kwargs):
        if str(path) == "/sys/fs/cgroup/cpu.max":
            return io.StringIO(cpu_max)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(threads, "open", fake_open, raising=False)
    assert threads.cores() == (8 if expected is None else expected)

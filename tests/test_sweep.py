"""Sweeps: the same trials serially, on local processes and on Dask; failures; resuming."""

import importlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import flexnet
from flexnet.cli import main
from flexnet.data.datasets import edges
from flexnet.experiments.compare import compare

sw = importlib.import_module("flexnet.experiments.sweep")  # the module; flexnet.sweep is the function
trial = importlib.import_module("flexnet.experiments.trial")

# Dropout, shuffling and Adam: every source of randomness a trial has.
GRID = {"arch": [[25, 2], [25, 8, 2]], "dropout": [0.0, 0.2], "optimizer": ["sgd", "adam"],
        "lr": 0.05, "batch_size": 16, "seed": [0, 1]}


def _data():
    return edges(120, seed=0)


@pytest.fixture(scope="module")
def dask_client():
    """Two worker processes with one thread each, on 127.0.0.1, for this module's Dask tests."""
    distributed = pytest.importorskip("dask.distributed")
    pytest.importorskip("joblib")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        yield client


def _trials(result):
    """Rows without what depends on the machine (time, worker)."""
    return [{k: v for k, v in t.items() if k not in ("seconds", "worker")} for t in result.trials]


# -- grids and seeds -----------------------------------------------------------


def test_grid_expands_every_setting_times_every_seed():
    configs = sw.expand_grid({"arch": [25, 8, 2], "lr": [0.1, 1], "seed": range(3)}, epochs=5)
    assert len(configs) == 2 * 3
    assert configs[0] == {"arch": [25, 8, 2], "activation": "relu", "lr": 0.1, "batch_size": 32,
                          "dropout": 0.0, "optimizer": "sgd", "epochs": 5, "seed": 0}
    assert configs[3]["lr"] == 1.0 and isinstance(configs[3]["lr"], float)  # 1 and 1.0 are one setting
    # a list of grids is their union; a point listed twice runs once
    both = sw.expand_grid([{"arch": [25, 2]}, {"arch": [25, 2], "lr": [0.01, 0.5]}], epochs=1)
    assert [c["lr"] for c in both] == [0.01, 0.5]


def test_random_sample_is_seeded_and_keeps_every_seed():
    grid = {"arch": [[25, 2], [25, 8, 2]], "lr": [0.01, 0.1, 1.0], "batch_size": [8, 16, 32], "seed": [0, 1]}
    a = sw.expand_grid(grid, epochs=1, n_random=4, seed=7)
    assert a == sw.expand_grid(grid, epochs=1, n_random=4, seed=7)
    assert len(a) == 8 and [c["seed"] for c in a] == [0, 1] * 4
    assert len({json.dumps({**c, "seed": 0}) for c in a}) == 4
    assert a != sw.expand_grid(grid, epochs=1, n_random=4, seed=8)


@pytest.mark.parametrize("grid, match", [
    ({"lr": [0.1]}, "'arch' is required"),
    ({"arch": [25, 2], "learning_rate": 0.1}, "unknown setting"),
    ({"arch": [25, 2], "lr": []}, "has no values"),
    ({"arch": [25, 2], "lr": -1}, "finite number > 0"),
    ({"arch": [25, 2], "dropout": 1.0}, r"\[0, 1\)"),
    ({"arch": [25]}, "at least two sizes"),
])
def test_bad_grid_is_refused_before_training(grid, match):
    with pytest.raises((ValueError, TypeError), match=match):
        sw.sweep(_data(), grid)


def test_architecture_that_does_not_fit_the_data_is_refused():
    with pytest.raises(ValueError, match="data's 25 features"):
        sw.sweep(_data(), {"arch": [[25, 2], [24, 2]]})


def test_trial_seed_is_a_stable_hash_of_the_configuration():
    config = {"arch": [25, 8, 2], "lr": 0.1}
    # SHA-256 of '{"arch":[25,8,2],"lr":0.1}': fixed forever, whatever the process or machine.
    assert sw.trial_key(config) == "5c830c2a6b83e206"
    assert sw.trial_seed(config) == sw.trial_seed({"lr": 0.1, "arch": [25, 8, 2]})
    assert sw.trial_seed(config) != sw.trial_seed({**config, "lr": 0.2})


# -- the same trials wherever they run -------------------------------------------


def test_serial_local_processes_and_dask_give_identical_trials(dask_client):
    serial = sw.sweep(_data(), GRID, epochs=4, save_best=False)
    assert len(serial.trials) == 16 and all(t["status"] == "ok" for t in serial.trials)
    assert {t["blas_threads"] for t in serial.trials} == {1}  # and so on every worker below
    assert {t["worker"].rsplit(":", 1)[1] for t in serial.trials} == {str(os.getpid())}

    local = sw.sweep(_data(), GRID, epochs=4, jobs=2, save_best=False)
    assert str(os.getpid()) not in {t["worker"].rsplit(":", 1)[1] for t in local.trials}
    assert _trials(local) == _trials(serial)

    on_dask = sw.sweep(_data(), GRID, epochs=4, scheduler=dask_client, save_best=False)
    assert len({t["worker"] for t in on_dask.trials}) == 2
    assert _trials(on_dask) == _trials(serial)
    # the scheduler's address, as `flexnet sweep --scheduler tcp://HOST:PORT` passes it, from
    # another process as in real use (a second client inside the scheduler's own process can
    # hang in Client.scatter: dask/distributed#4907)
    address = dask_client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    code = (
        "import importlib, json, sys; from flexnet.data.datasets import edges\n"
        "sw = importlib.import_module('flexnet.experiments.sweep')\n"
        "r = sw.sweep(edges(120, seed=0), json.loads(sys.argv[1]), epochs=4, scheduler=sys.argv[2], "
        "save_best=False)\n"
        "print(json.dumps(r.trials))"
    )
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(GRID), address], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    by_address = [{k: v for k, v in t.items() if k not in ("seconds", "worker")}
                  for t in json.loads(out.splitlines()[-1])]
    assert by_address == json.loads(json.dumps(_trials(serial)))
    # every seed gives its own numbers; the curves really were compared
    assert len({t["loss"] for t in serial.trials}) == 16


def test_local_workers_use_the_blas_threads_they_are_given():
    grid = {"arch": [[25, 2]], "seed": [0, 1, 2, 3]}
    for threads in (1, 2):
        result = sw.sweep(_data(), grid, epochs=1, jobs=2, blas_threads=threads, save_best=False)
        assert {t["blas_threads"] for t in result.trials} == {threads}


def test_a_trial_is_the_same_in_any_grid_and_any_order():
    """Its seed comes from its configuration, not from its place in the sweep."""
    one = sw.sweep(_data(), {"arch": [[25, 8, 2]], "optimizer": "adam", "lr": 0.05, "seed": [1]},
                   epochs=3, save_best=False)
    many = sw.sweep(_data(), {"arch": [[25, 2], [25, 16, 2], [25, 8, 2]], "optimizer": ["sgd", "adam"],
                              "lr": [0.05, 0.1], "seed": [0, 1]}, epochs=3, save_best=False)
    row = _trials(one)[0]
    same = [t for t in _trials(many) if t["key"] == row["key"]]
    assert len(same) == 1 and same[0]["index"] != row["index"]
    assert {**same[0], "index": 0} == {**row, "index": 0}


def test_local_workers_receive_a_memory_map_not_a_copy():
    """What ``_execute`` relies on: joblib sends a memmap by file name, a plain array by value."""
    joblib = pytest.importorskip("joblib")
    X = np.arange(12.0, dtype=np.float32).reshape(4, 3)
    with sw._memmapped((X, None)) as (shared, none):
        assert none is None and isinstance(shared, np.memmap) and np.array_equal(shared, X)
        got = joblib.Parallel(n_jobs=2)(
            joblib.delayed(getattr)(a, "filename") for a in (shared, shared, shared))
        assert set(got) == {shared.filename}  # each task opened the one file
        types = joblib.Parallel(n_jobs=2)(joblib.delayed(type)(a) for a in (shared, X))
        assert types == [np.memmap, np.ndarray]


def test_dask_data_is_scattered_once_and_tasks_carry_futures(dask_client, monkeypatch):
    from dask.distributed import Future

    scattered, submitted = [], []
    scatter, submit = dask_client.scatter, dask_client.submit

    def spy_scatter(data, **kw):
        scattered.append((len(data), kw.get("broadcast")))
        return scatter(data, **kw)

    def spy_submit(*args, **kw):
        submitted.extend(kw.get("tasks", ()))
        return submit(*args, **kw)

    monkeypatch.setattr(dask_client, "scatter", spy_scatter)
    monkeypatch.setattr(dask_client, "submit", spy_submit)
    result = sw.sweep(_data(), {"arch": [25, 2], "seed": [0, 1, 2]}, epochs=2, scheduler=dask_client,
                      save_best=False)
    assert len(result.trials) == 3
    assert scattered == [(4, True)]  # X, y, X_val, y_val: once, to every worker
    assert len(submitted) == 3
    for _, args, _ in submitted:  # (spec, X, y, X_val, y_val, blas_threads)
        assert all(isinstance(a, Future) for a in args[1:5])


# -- failures, Ctrl-C and resuming -------------------------------------------------


def test_failed_and_diverged_trials_are_reported_and_the_sweep_goes_on(tmp_path):
    grid = {"arch": [25, 8, 2], "lr": [0.1, 1e30], "activation": ["relu", "no-such-activation"]}
    result = sw.sweep(_data(), grid, epochs=3, out=tmp_path, figures=False)
    status = {(t["lr"], t["activation"]): t["status"] for t in result.trials}
    assert status == {(0.1, "relu"): "ok", (1e30, "relu"): "diverged",
                      (0.1, "no-such-activation"): "failed", (1e30, "no-such-activation"): "failed"}
    diverged = next(t for t in result.trials if t["status"] == "diverged")
    assert "diverged at epoch 1" in diverged["error"] and diverged["val_accuracy"] is None
    assert "unknown name 'no-such-activation'" in result.trials[2]["error"]
    assert result.best["lr"] == 0.1 and result.configs[0]["ok"] == 1
    table = result.format_table()
    assert "diverged: training diverged" in table and "failed: ValueError" in table
    rows = (tmp_path / "trials.csv").read_text().splitlines()
    assert len(rows) == 5 and ",diverged," in rows[2]


def _counting(monkeypatch):
    calls = []
    real = trial.train_trial

    def counted(spec, *arrays):
        calls.append(spec["key"])
        return real(spec, *arrays)

    monkeypatch.setattr(trial, "train_trial", counted)  # run_trial's, in the serial sweep
    return calls


def test_ctrl_c_returns_finished_trials_and_resume_runs_only_the_rest(tmp_path, monkeypatch):
    grid = {"arch": [[25, 2], [25, 8, 2]], "lr": [0.05, 0.2], "seed": [0, 1]}
    full = sw.sweep(_data(), grid, epochs=3, save_best=False)

    calls = _counting(monkeypatch)

    def ctrl_c_after_three(row, done, total):
        if done == 3:
            raise KeyboardInterrupt

    first = sw.sweep(_data(), grid, epochs=3, out=tmp_path, on_trial=ctrl_c_after_three, figures=False)
    assert first.interrupted and len(first.trials) == 3 and first.pending == 5
    assert first.best_model is None and len(calls) == 3
    log = tmp_path / "trials.jsonl"
    assert len(log.read_text().splitlines()) == 1 + 3
    with open(log, "a") as f:  # killed while writing the fourth line
        f.write('{"index": 3, "key": "cut sh')

    with pytest.raises(ValueError, match="resume=True"):
        sw.sweep(_data(), grid, epochs=3, out=tmp_path)
    with pytest.raises(ValueError, match="other data"):
        sw.sweep(edges(120, seed=5), grid, epochs=3, out=tmp_path, resume=True)

    calls.clear()
    done = sw.sweep(_data(), grid, epochs=3, out=tmp_path, resume=True, figures=False)
    assert len(calls) == 5 + 1  # the five missing trials, and the best one trained again to keep it
    assert not done.interrupted and _trials(done) == _trials(full)
    assert len(log.read_text().splitlines()) == 1 + 8

    calls.clear()
    again = sw.sweep(_data(), grid, epochs=3, out=tmp_path, resume=True, save_best=False, figures=False)
    assert calls == [] and _trials(again) == _trials(full)


def test_outputs_best_model_and_figures(tmp_path):
    pytest.importorskip("matplotlib")
    X, y = _data()
    result = sw.sweep((X, y), {"arch": [[25, 2], [25, 8, 2]], "lr": [0.05, 0.5], "seed": [0, 1]},
                      epochs=5, out=tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert names >= {"trials.jsonl", "trials.csv", "trials.json", "configs.csv", "best_model.npz",
                     "accuracy_vs_params.png", "top_curves.png"}
    for fig in ("accuracy_vs_params.png", "top_curves.png"):
        assert (tmp_path / fig).stat().st_size > 10_000
    saved = json.loads((tmp_path / "trials.json").read_text())
    assert len(saved["trials"]) == 8 and len(saved["configs"]) == 4
    assert len(saved["trials"][0]["curves"]["val_loss"]) == 5
    configs = (tmp_path / "configs.csv").read_text().splitlines()
    assert configs[0].startswith("rank,arch") and len(configs) == 5

    best = result.best
    assert best["rank"] == 1 and best["seeds"] == 2
    accs = [c["val_accuracy_mean"] for c in result.configs]
    assert accs == sorted(accs, reverse=True)
    net = flexnet.load(tmp_path / "best_model.npz")
    assert net.metadata["sweep"]["arch"] == best["arch"] and net.metadata["sweep"]["lr"] == best["lr"]
    assert np.array_equal(net.predict(X), result.best_model.predict(X))


def test_named_data_set_is_split_and_scaled():
    result = flexnet.sweep("edges", {"arch": [25, 2]}, epochs=2, val_split=0.25)
    assert result.best_model.metadata["dataset"] == "edges"
    assert result.best_model.metadata["class_names"] == ["edge", "no edge"]
    assert result.trials[0]["val_accuracy"] is not None


# -- compare is a small sweep --------------------------------------------------------


def test_compare_runs_the_tutorial_experiment_the_same_in_parallel():
    pytest.importorskip("joblib")
    archs = [[25, 2], [25, 8, 2]]
    serial = compare(archs, seeds=(42, 0), epochs=40)
    parallel = compare(archs, seeds=(42, 0), epochs=40, jobs=2)
    assert [(r.arch, r.seed, r.losses, r.accuracy) for r in serial] == \
           [(r.arch, r.seed, r.losses, r.accuracy) for r in parallel]
    # the seed is the network's own seed, as in the tutorial: same weights as Network(arch, seed=42)
    X, y = edges(200, seed=0)
    net = flexnet.Network([25, 8, 2], seed=42)
    history = flexnet.fit(net, X, y, epochs=40, batch_size=16, lr=0.1, shuffle=False, progress=False)
    assert serial[2].losses == history.history["loss"]


def test_compare_checks_its_runs_as_a_sweep_does():
    """compare runs its trials itself, through the sweep's own trial functions: duplicate
    runs are run once, bad seeds are refused before any training, numpy integers are fine."""
    assert len(compare([[25, 2], [25, 2]], seeds=(1, 1), epochs=2)) == 1
    assert compare([[25, 2]], seeds=(np.int64(3),), epochs=2)[0].seed == 3
    for seeds, err in [((-1,), TypeError), ((1.5,), TypeError), ((), ValueError)]:
        with pytest.raises(err, match="seed"):
            compare([[25, 2]], seeds=seeds, epochs=2)
    with pytest.raises(RuntimeError, match=r"\[25, 2\] seed 0: training diverged"):
        compare([[25, 2]], seeds=(0,), epochs=5, lr=1e38)  # float32 overflows: the run says it diverged


# -- the command line ----------------------------------------------------------------


def test_cli_sweep_writes_results_and_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "s"
    code = main(["sweep", "--data", "edges", "--arch", "25,2", "25,8,2", "--lr", "0.1,0.5",
                 "--optimizer", "sgd", "--optimizer", "adam", "--epochs", "3", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "[8/8]" in printed and "rank  configuration" in printed and "best model:" in printed
    assert (out / "best_model.npz").exists()
    assert main(["sweep", "--arch", "24,2", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "25 features" in err
    assert main(["sweep", "--arch", "25,2", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["_retrain_best", "write_outputs"])
def test_ctrl_c_after_the_last_trial_still_returns_every_trial(tmp_path, monkeypatch, where):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sw, where, ctrl_c)
    grid = {"arch": [[25, 2], [25, 8, 2]], "seed": [0, 1]}
    result = sw.sweep(_data(), grid, epochs=2, out=tmp_path, figures=False)
    assert result.interrupted and result.pending == 0 and len(result.trials) == 4
    assert len((tmp_path / "trials.jsonl").read_text().splitlines()) == 1 + 4


def test_ctrl_c_on_the_command_line_keeps_finished_trials(tmp_path):
    """A real SIGINT to the process group, as a terminal sends it, with two workers."""
    pytest.importorskip("joblib")
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "flexnet", "sweep", "--arch", "25,8,2", "25,16,8,2", "--lr", "0.01,0.02,0.05",
           "--seeds", "0-9", "--epochs", "150", "--jobs", "2", "--quiet", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    log = out / "trials.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    finished = len(log.read_text().splitlines()) - 1
    assert 2 <= finished < 60
    assert len(json.loads((out / "trials.json").read_text())["trials"]) == finished


def test_spread_over_seeds_is_the_sample_standard_deviation():
    from flexnet.experiments.results import _mean_std

    # accuracies 0.90, 0.92, 0.97: mean 0.93, squared deviations 9e-4, 1e-4, 16e-4 -> sum 26e-4;
    # divided by n - 1 = 2 -> 13e-4, sd 0.03606 (dividing by n would understate it: 0.02944)
    mean, sd = _mean_std([0.90, 0.92, 0.97, None])
    assert mean == pytest.approx(0.93) and sd == pytest.approx(0.036056, rel=1e-4)
    assert _mean_std([0.5]) == (0.5, 0.0) and _mean_std([None]) == (None, None)

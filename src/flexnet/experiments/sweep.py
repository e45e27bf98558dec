"""Sweeps: train many configurations, in parallel, and rank them.

A sweep expands a grid (or a seeded random sample of it) into trials, one per
configuration and seed, and trains each with :func:`flexnet.fit`. Trials run
in this process (``jobs=1``), in local worker processes (joblib's loky
backend) or on a Dask cluster (``scheduler="tcp://HOST:PORT"``, joblib's dask
backend). A trial's result depends only on its configuration, never on where
or in which order it ran:

- its seed is a hash of its configuration (SHA-256 of canonical JSON), so the
  initial weights, the shuffling and the dropout masks are fixed by it;
- every trial runs with the same number of BLAS threads (``blas_threads``,
  default 1), because OpenBLAS sums in a different order with more threads
  and float32 results then differ in the last bits.

The data travels to each worker once: for local processes it is written once
to ``.npy`` files that every worker memory-maps (joblib sends a memmap as its
file name); for Dask it is scattered to every worker once
(``broadcast=True``) and the tasks carry only references to it.

Finished trials are appended to ``<out>/trials.jsonl`` as they come in, so a
sweep stopped by Ctrl-C, a crash or a lost worker resumes with
``resume=True``, skipping what is done.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import tempfile
import warnings
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.datasets import Dataset, load_prepared
from ..data.datasets import load_prepared as load_named  # noqa: F401  (its name before 0.2)
from ..data.extras import optional
from ..data.sources import Rows, as_rows, is_streamed
from ..nn.checks import as_float_dtype, check_positive_int
from ..ops import threads
from ..training.evaluation import labels_in_memory
from . import trial
from .results import (
    AXES,
    LOG_FORMAT,
    SweepResult,
    TrialLog,
    best_trial,
    finite_or_none,
    summarise,
    write_outputs,
)
from .trial import (  # noqa: F401  (trial_key, trial_seed, build_network: found here by earlier callers)
    MAX_TRIALS,
    build_network,
    expand_grid,
    run_trial,
    train_trial,
    trial_key,
    trial_seed,
)

# -- data --------------------------------------------------------------------


@dataclass
class SweepData:
    """Training and validation arrays shared by every trial, and where they came from."""

    X: np.ndarray
    y: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    metadata: dict = field(default_factory=dict)  # scaler, class names: kept with the best model

    @property
    def arrays(self) -> tuple:
        return (self.X, self.y, self.X_val, self.y_val)

    def fingerprint(self) -> str:
        """SHA-256 of the arrays (shapes, dtypes, bytes): a resumed sweep must use the same data."""
        h = hashlib.sha256()
        for a in self.arrays:
            if a is None:
                h.update(b"none")
                continue
            if isinstance(a, Rows):  # a block at a time: the same digest as the rows in memory
                h.update(f"{a.dtype.str}{tuple(a.shape)}".encode())
                for _, block in a.blocks():
                    h.update(np.ascontiguousarray(block).data)
                    del block
                continue
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.data)
        return h.hexdigest()[:16]


def prepare_data(data, *, val_split: float = 0.2, seed: int = 0, dtype="float32") -> SweepData:
    """Turn what the user gave into training and validation arrays.

    Args:
        data: ``(X, y)`` (``val_split`` of it is held out, stratified),
            ``(X_train, y_train, X_val, y_val)``, or the name of a data set
            flexnet loads (``"edges"``, ``"digits"``, ``"fashion-mnist"``, a
            ``.csv``/``.npz`` path) or a loaded ``datasets.Dataset``: its training part is scaled as
            ``flexnet train`` does and split; its test part is not touched.
        val_split: the held-out fraction for ``(X, y)`` and names; 0 trains
            on everything and ranks by training accuracy.
    """
    dtype = as_float_dtype(dtype, "sweep(dtype)")
    metadata: dict = {}
    if isinstance(data, (str, os.PathLike, Dataset)):
        X, y, X_val, y_val, metadata = load_prepared(data, dtype, val_split=val_split, seed=seed)
        data = (X, y, X_val, y_val) if val_split else (X, y)
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 4):
        raise TypeError(
            "sweep(data): expected (X, y), (X_train, y_train, X_val, y_val) or a data set name, "
            f"got {type(data).__name__}" + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else "")
        )
    if len(data) == 4:
        X, y, X_val, y_val = data
    elif val_split:
        from ..data import train_test_split

        if is_streamed(data[0]):  # rows of the file, held out by index: nothing copied
            rows = as_rows(data[0], dtype, "sweep(data)")
            y_all = labels_in_memory(data[1], "sweep(data)")
            train, held, y, y_val = train_test_split(np.arange(len(rows)), y_all, float(val_split), seed=seed)
            X, X_val = rows[train], rows[held]
        else:
            X, X_val, y, y_val = train_test_split(data[0], data[1], float(val_split), seed=seed)
    else:
        (X, y), X_val, y_val = data, None, None
    X = _shared(X, dtype, "sweep(data)")  # converted once here, not once per trial
    y = np.ascontiguousarray(labels_in_memory(y, "sweep(data)"))
    if X_val is not None:
        X_val = _shared(X_val, dtype, "sweep(data): X_val")
        y_val = np.ascontiguousarray(labels_in_memory(y_val, "sweep(data): y_val"))
    return SweepData(X, y, X_val, y_val, metadata)


def _shared(X, dtype, where: str):
    """An array in memory as one contiguous array of ``dtype``; data not in memory (a
    memmap, a .npy path, a Dask array) as :class:`~flexnet.data.sources.Rows`, which a
    worker receives as the file's name (a Dask array as its graph), never as a copy."""
    if is_streamed(X):
        return as_rows(X, dtype, where)
    return np.ascontiguousarray(X, dtype=dtype)


# -- running many trials -----------------------------------------------------


@contextmanager
def _memmapped(arrays):
    """Write each array once to a .npy file and open it as a read-only memory map.

    joblib sends a memmap to a worker as its file name and offset, so every
    task carries a few hundred bytes whatever the size of the data, and the
    workers share one copy in the page cache.
    """
    folder = tempfile.mkdtemp(prefix="flexnet-sweep-")
    try:
        shared = []
        for i, a in enumerate(arrays):
            if a is None or isinstance(a, Rows):  # None, or a file already: sent by its name
                shared.append(a)
                continue
            path = os.path.join(folder, f"{i}.npy")
            np.save(path, a, allow_pickle=False)
            shared.append(np.load(path, mmap_mode="r", allow_pickle=False))
        yield tuple(shared)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _dask_client(scheduler):
    """A ``distributed.Client`` for an address, or the Client the user gave."""
    Client = optional("dask.distributed", "a Dask cluster").Client
    if isinstance(scheduler, Client):
        return scheduler, nullcontext()
    if not isinstance(scheduler, str):
        raise TypeError(f"sweep(scheduler): expected an address such as 'tcp://10.0.0.5:8786' or a "
                        f"dask.distributed.Client, got {type(scheduler).__name__}")
    client = Client(scheduler, set_as_default=False)
    return client, client


def _check_packages(jobs: int, scheduler) -> None:
    """Refuse, before any work, a parallel sweep whose packages are missing
    (:class:`~flexnet.data.extras.MissingExtra`, as :func:`_execute` would raise later)."""
    if scheduler is not None or jobs != 1:
        optional("joblib", "parallel training (jobs > 1, or a Dask cluster)")
    if isinstance(scheduler, str):
        optional("dask.distributed", "a Dask cluster")


def _ignore_sigint() -> None:
    """Run in each local worker as it starts: Ctrl-C is the parent's to handle.

    A terminal sends SIGINT to the whole process group; without this, an idle
    worker would print a KeyboardInterrupt traceback of its own while the
    parent is already stopping the sweep (and the workers) cleanly.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _execute(specs: list[dict], data: SweepData, *, jobs: int, scheduler, blas_threads: int):
    """Yield the row of every trial as it finishes (in any order)."""
    if scheduler is None and jobs == 1:
        for spec in specs:
            yield trial.run_trial(spec, *data.arrays)
        return
    joblib = optional("joblib", "parallel training (jobs > 1, or a Dask cluster)")
    Parallel, delayed, parallel_config = joblib.Parallel, joblib.delayed, joblib.parallel_config
    if scheduler is None:
        with _memmapped(data.arrays) as shared, parallel_config(
            backend="loky", n_jobs=jobs, inner_max_num_threads=blas_threads,
            initializer=_ignore_sigint,
        ):
            parallel = Parallel(return_as="generator_unordered", batch_size=1)
            yield from parallel(delayed(run_trial)(s, *shared, blas_threads) for s in specs)
        return
    client, owned = _dask_client(scheduler)
    with owned:
        # The arrays go once to every worker (broadcast), and the trials carry their futures.
        # hash=False gives them keys of their own: named by their content, the keys of two
        # sweeps of the same data would be the same, and the first sweep's release of its
        # futures could delete the data the second had just scattered ("Could not find data").
        scattered = iter(client.scatter([a for a in data.arrays if a is not None], broadcast=True, hash=False))
        arrays = [None if a is None else next(scattered) for a in data.arrays]
        with parallel_config(backend="dask", client=client, n_jobs=jobs):
            parallel = Parallel(return_as="generator_unordered", batch_size=1)
            yield from parallel(delayed(run_trial)(s, *arrays, blas_threads) for s in specs)


# -- the sweep ---------------------------------------------------------------


def sweep(
    data,
    grid: dict | list[dict],
    *,
    n_random: int | None = None,
    epochs: int = 10,
    val_split: float = 0.2,
    shuffle: bool = True,
    dtype="float32",
    derive_seeds: bool = True,
    seed: int = 0,
    jobs: int | None = None,
    scheduler=None,
    blas_threads: int = 1,
    out=None,
    resume: bool = False,
    save_best: bool = True,
    figures: bool = True,
    top: int = 5,
    on_trial: Callable[[dict, int, int], None] | None = None,
) -> SweepResult:
    """Train every configuration of a grid with every seed, in parallel; rank them.

    Args:
        data: ``(X, y)``, ``(X_train, y_train, X_val, y_val)`` or a data set
            name / file that flexnet loads (see :func:`prepare_data`).
        grid: settings to vary, each a value or a list: ``arch`` (required,
            layer sizes), ``activation``, ``lr``, ``batch_size``, ``dropout``,
            ``optimizer``, ``epochs``, ``seed``. A list of dicts is their union.
        n_random: train only this many configurations drawn from the grid
            (with ``seed``), each with every seed.
        epochs: epochs per trial unless the grid sets ``epochs``.
        val_split: held-out fraction when ``data`` has no validation part.
        shuffle: reshuffle the rows every epoch (False: the rows' order).
        derive_seeds: True: a trial's seed is a hash of its configuration
            (grid seeds are replicate numbers); False: the grid's ``seed`` is
            used as the network's seed itself (``compare`` does this).
        seed: seeds the random choice of configurations and the validation split.
        jobs: parallel workers; default 1 locally, every core of a Dask
            cluster; -1 is every local core.
        scheduler: a Dask scheduler address ``"tcp://HOST:PORT"`` or a
            ``dask.distributed.Client``; None runs on this machine.
        blas_threads: BLAS threads per trial, the same wherever it runs (so
            results match; 1 lets N workers use N cores without contention).
        out: a folder for ``trials.jsonl`` (the resumable log), ``trials.csv``,
            ``trials.json``, ``configs.csv``, ``best_model.npz`` and figures;
            None writes nothing.
        resume: continue the sweep logged in ``out``, skipping finished trials.
        save_best: retrain the best configuration's best seed in this process
            (a trial depends only on its configuration, so this is the same
            model) and keep it in ``result.best_model`` (and ``out``).
        figures: write ``accuracy_vs_params.png`` and ``top_curves.png`` to
            ``out`` (needs matplotlib).
        top: how many configurations the curves figure shows.
        on_trial: called as ``on_trial(row, done, total)`` in this process
            after every finished trial (progress output).

    Returns:
        A :class:`SweepResult`. Ctrl-C returns the finished trials with
        ``interrupted=True`` instead of raising.

    Raises:
        ValueError/TypeError: a bad grid, data or option (before any training).
    """
    configs = expand_grid(grid, epochs=check_positive_int(epochs, "sweep(epochs)"), n_random=n_random, seed=seed)
    dtype = as_float_dtype(dtype, "sweep(dtype)")
    if jobs is None:
        jobs = 1 if scheduler is None else -1
    if jobs == -1 and scheduler is None:
        jobs = os.cpu_count() or 1
    elif jobs != -1:
        jobs = check_positive_int(jobs, "sweep(jobs)")
    blas_threads = check_positive_int(blas_threads, "sweep(blas_threads)")
    if resume and out is None:
        raise ValueError("sweep(resume=True): resuming needs the output folder of the sweep (out=...)")
    _check_packages(jobs, scheduler)
    shared = prepare_data(data, val_split=val_split, seed=seed, dtype=dtype)
    n_features = shared.X.shape[1]
    wrong = sorted({str(c["arch"]) for c in configs if c["arch"][0] != n_features})
    if wrong:
        raise ValueError(f"sweep(grid['arch']): {', '.join(wrong)} take(s) a different number of inputs "
                         f"than the data's {n_features} features; start every architecture with {n_features}")
    specs = trial.make_specs(configs, derive_seeds=derive_seeds, shuffle=bool(shuffle), dtype=dtype)

    log = None
    rows: dict[str, dict] = {}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        header = {"format": LOG_FORMAT, "version": 1, "data": shared.fingerprint(), "dtype": dtype.name,
                  "shuffle": bool(shuffle), "derive_seeds": bool(derive_seeds)}
        log = TrialLog(out / "trials.jsonl", header, resume)
        wanted = {s["key"] for s in specs}
        rows = {k: r for k, r in log.done.items() if k in wanted}
    todo = [s for s in specs if s["key"] not in rows]
    interrupted = False
    try:
        with threads.limited(blas_threads):
            finished = _execute(todo, shared, jobs=jobs, scheduler=scheduler, blas_threads=blas_threads)
            try:
                with closing(finished):  # closing it cancels the trials not started yet
                    for row in finished:
                        rows[row["key"]] = row
                        if log is not None:
                            log.write(row)
                        if on_trial is not None:
                            on_trial(row, len(rows), len(specs))
            except KeyboardInterrupt:
                interrupted = True
            trials = [{**rows[s["key"]], "index": s["index"]} for s in specs if s["key"] in rows]
            result = SweepResult(trials, summarise(trials), interrupted, len(specs) - len(trials))
            if save_best and not interrupted:
                try:
                    result.best_model = _retrain_best(result, shared, dtype, specs)
                except KeyboardInterrupt:  # every trial is in; only the best model is missing
                    result.interrupted = True
    finally:
        if log is not None:
            log.close()
    if out is not None:
        try:
            result.files = write_outputs(result, out, figures=figures, top=top)
        except KeyboardInterrupt:  # the log holds every finished trial; --resume writes the rest
            result.interrupted = True
    return result


def _retrain_best(result: SweepResult, shared: SweepData, dtype, specs: list[dict]):
    """Train the best trial again here and check it reproduces its row."""
    best = best_trial(result)
    if best is None:
        return None
    spec = next(s for s in specs if s["key"] == best["key"])
    net, history = trial.train_trial(spec, *shared.arrays)
    again = [finite_or_none(history.history[k][-1]) for k in ("loss", "val_loss") if k in history.history]
    if again != [best[k] for k in ("loss", "val_loss") if best[k] is not None]:
        warnings.warn(
            f"sweep: the best trial (key {best['key']}) gave other numbers when trained again here "
            f"({again} vs {[best['loss'], best['val_loss']]}); it ran on a machine with another BLAS "
            "or CPU. The model saved is the one trained here.",
            RuntimeWarning, stacklevel=3,
        )
    net.metadata = {**shared.metadata, "sweep": {**{a: best[a] for a in AXES}, "key": best["key"]}}
    return net

"""Trials: configurations, their seeds, and one training run from a configuration.

A configuration is a dict of settings (``arch``, ``activation``, ``dropout``,
``epochs``, ``batch_size``, ``optimizer``, ``lr``, ``seed``); :func:`expand_grid`
makes them from a grid and checks every value. Two seeds make a run
repeatable, one for the initial weights and one for the order of the batches.
:func:`run_trial` trains one and turns it into a row of results, whether the
run went well, diverged or failed. A comparison runs its trials one after the
other with these; a sweep runs them in parallel (:mod:`flexnet.experiments.sweep`).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import socket
import time

import numpy as np

from ..nn.checks import check_layer_sizes, check_lr, check_positive_int
from ..ops import threads
from ..training.loop import TrainingDiverged, fit
from ..training.network import Network
from .results import AXES, CURVES, canonical_json, finite_or_none

MAX_TRIALS = 1_000_000


# -- configurations and their seeds ------------------------------------------


def trial_key(config: dict) -> str:
    """A short stable name of a configuration: 16 hex digits of its SHA-256."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


def trial_seed(config: dict) -> int:
    """The seed a configuration trains with: the first 8 bytes of its SHA-256.

    Stable across processes, machines and Python versions (unlike ``hash()``).
    """
    digest = hashlib.sha256(canonical_json(config).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _as_list(value, axis: str) -> list:
    if axis == "arch":  # one architecture [25, 8, 2] or several [[25, 2], [25, 8, 2]]
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, np.integer)) for v in value):
            return [value]
    if isinstance(value, (list, tuple, range, np.ndarray)):
        values = list(value)
        if not values:
            raise ValueError(f"sweep(grid): {axis!r} has no values; give at least one or leave it out")
        return values
    return [value]


def _normalise(axis: str, value, where: str):
    """One grid value in the type its canonical JSON uses (lr 1 -> 1.0)."""
    if axis == "arch":
        return check_layer_sizes(value)
    if axis in ("batch_size", "epochs"):
        return check_positive_int(value, where)
    if axis == "seed":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise TypeError(f"{where}: expected a non-negative integer seed, got {value!r}")
        return int(value)
    if axis == "lr":
        return check_lr(value, where)
    if axis == "dropout":
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise TypeError(f"{where}: expected a probability in [0, 1), got {value!r}")
        if not 0.0 <= float(value) < 1.0:
            raise ValueError(f"{where}: expected a probability in [0, 1), got {value}")
        return float(value)
    if not isinstance(value, str):
        raise TypeError(f"{where}: expected a name such as {AXES[axis]!r}, got {value!r}")
    return value.lower()


def expand_grid(grid, *, epochs: int, n_random: int | None = None, seed: int = 0) -> list[dict]:
    """Every configuration of a grid, or ``n_random`` of them, times every seed.

    Args:
        grid: a dict from setting (see :data:`AXES`) to a value or a list of
            values, or a list of such dicts (their union). ``arch`` is
            required; the other settings default to :data:`AXES`.
        epochs: the default of the ``epochs`` setting.
        n_random: draw this many distinct configurations (without the seed
            axis) uniformly, with ``seed``; every one is run with every seed.

    Returns:
        Configurations as dicts with every setting, configurations in grid
        order, each followed by its seeds.
    """
    grids = [grid] if isinstance(grid, dict) else list(grid)
    if not grids or not all(isinstance(g, dict) for g in grids):
        raise TypeError(f"sweep(grid): expected a dict of settings or a list of dicts, got {grid!r}")
    points, seed_lists = [], []
    for g in grids:
        unknown = sorted(set(g) - set(AXES))
        if unknown:
            raise ValueError(f"sweep(grid): unknown setting(s) {unknown}; expected some of {list(AXES)}")
        if "arch" not in g:
            raise ValueError("sweep(grid): 'arch' is required, e.g. {'arch': [[25, 8, 2], [25, 16, 2]]}")
        values = {}
        for axis, default in AXES.items():
            raw = g.get(axis, epochs if axis == "epochs" else default)
            values[axis] = [_normalise(axis, v, f"sweep(grid[{axis!r}])") for v in _as_list(raw, axis)]
        seeds = values.pop("seed")
        total = math.prod(len(v) for v in values.values()) * len(seeds)
        if total > MAX_TRIALS:
            raise ValueError(f"sweep(grid): {total:,} trials is more than {MAX_TRIALS:,}; use fewer values")
        for combo in itertools.product(*values.values()):
            points.append(dict(zip(values, combo)))
            seed_lists.append(seeds)
    chosen = range(len(points))
    if n_random is not None:
        n_random = check_positive_int(n_random, "sweep(n_random)")
        rng = np.random.default_rng(seed)
        chosen = sorted(rng.choice(len(points), size=min(n_random, len(points)), replace=False).tolist())
    configs, seen = [], set()
    for i in chosen:
        for s in seed_lists[i]:
            config = {**points[i], "seed": s}
            text = canonical_json(config)
            if text not in seen:  # the same point listed twice runs once
                seen.add(text)
                configs.append(config)
    return configs


def fit_seed(init_seed: int) -> int:
    """The seed of the batch order, derived from the weights' seed: shuffling gets
    a stream of its own, not the one the weights were drawn from."""
    return int(np.random.SeedSequence([init_seed, 1]).generate_state(1, np.uint64)[0])


def build_network(config: dict, dtype, seed: int) -> Network:
    """The network a configuration describes."""
    return Network(config["arch"], activation=config["activation"], dropout=config["dropout"],
                   dtype=dtype, seed=seed)


def train(config: dict, X, y, X_val, y_val, *, dtype, init_seed: int, fit_seed: int, shuffle: bool,
          threads: int | None = None):
    """Train one configuration; returns ``(net, history)``. Raises what fit raises."""
    net = build_network(config, dtype, init_seed)
    history = fit(
        net, X, y, epochs=config["epochs"], batch_size=config["batch_size"],
        optimizer=config["optimizer"], lr=config["lr"],
        validation_data=None if X_val is None else (X_val, y_val),
        shuffle=shuffle, seed=fit_seed, progress=False, threads=threads,
    )
    return net, history


def train_trial(spec: dict, X, y, X_val, y_val, threads: int | None = None):
    """Train one trial; returns ``(net, history)``. Raises what fit raises."""
    return train(spec["config"], X, y, X_val, y_val, dtype=spec["dtype"], init_seed=spec["init_seed"],
                 fit_seed=spec["fit_seed"], shuffle=spec["shuffle"], threads=threads)


def run_trial(spec: dict, X, y, X_val, y_val, blas_threads: int | None = None) -> dict:
    """Run one trial wherever it lands; returns its row. Never raises for a bad trial.

    A diverged run (``TrainingDiverged``) or a bad setting (any other
    Exception) becomes a row with ``status`` "diverged" or "failed" and the
    error; Ctrl-C (KeyboardInterrupt) still stops the sweep.
    """

    threads.limit(blas_threads)
    row = {"index": spec["index"], "key": spec["key"], **spec["config"], "trial_seed": spec["init_seed"],
           "status": "ok", "error": "", "n_params": None, "curves": {}}
    start = time.perf_counter()
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run says so in its row
            net, history = train_trial(spec, X, y, X_val, y_val, blas_threads or threads.in_use())
        row["n_params"] = net.n_params()
        row["curves"] = {k: [finite_or_none(v) for v in history.history[k]] for k in CURVES if k in history.history}
    except TrainingDiverged as exc:
        row["status"], row["error"] = "diverged", str(exc)
    except Exception as exc:  # a bad setting must not stop the sweep
        row["status"], row["error"] = "failed", f"{type(exc).__name__}: {exc}"
    row["seconds"] = time.perf_counter() - start
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    row["blas_threads"] = threads.in_use()
    for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
        values = row["curves"].get(metric)
        row[metric] = values[-1] if values else None
    return row


def make_specs(configs: list[dict], *, derive_seeds: bool, shuffle: bool, dtype) -> list[dict]:
    specs = []
    for i, config in enumerate(configs):
        base = trial_seed(config) if derive_seeds else config["seed"]
        specs.append({"index": i, "key": trial_key(config), "config": config, "init_seed": base,
                      "fit_seed": fit_seed(base), "shuffle": shuffle, "dtype": dtype.name})
    return specs

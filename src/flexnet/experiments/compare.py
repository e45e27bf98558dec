"""The tutorial's experiment: train several architectures on the same data.

One run per architecture and seed, trained by :func:`flexnet.fit` with the
tutorial's settings (batches in order, plain SGD), the seed used as the
network's seed itself so that every architecture starts from the same
generator, as the tutorial's ``np.random.seed(42)`` does. Each run is a
trial as a sweep trains it (:mod:`flexnet.experiments.trial`), so a
comparison and the same grid swept give the same numbers; the runs go one
after the other here, or to :func:`flexnet.sweep` when asked to run in
parallel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.datasets import edges, load_prepared
from ..nn.checks import as_float_dtype, check_layer_sizes, check_lr, check_positive_int
from ..ops import threads as blas_threads
from . import trial

#: The tutorial's three architectures: no hidden layer, one, two.
TUTORIAL_ARCHITECTURES = ([25, 2], [25, 8, 2], [25, 16, 8, 2])


@dataclass
class CompareResult:
    """One architecture trained with one seed."""

    arch: list[int]
    seed: int
    n_params: int
    losses: list[float] = field(repr=False)  # mean training loss per epoch
    accuracy: float  # on the test set, in [0, 1]
    seconds: float

    @property
    def final_loss(self) -> float:
        return self.losses[-1]


def _test_data(data, dtype) -> tuple:
    """``(X_train, y_train, X_test, y_test)`` from None, a data set name or a 4-tuple."""
    if data is None:  # the tutorial's data: 200 training and 50 test patches
        return (*edges(200, seed=0, dtype=dtype), *edges(50, seed=1, dtype=dtype))
    if isinstance(data, str):
        X_train, y_train, X_test, y_test, _ = load_prepared(data, dtype)
        if X_test is None:
            raise ValueError(f"compare(data={data!r}): the data has no test part; pass "
                             "(X_train, y_train, X_test, y_test)")
        return X_train, y_train, X_test, y_test
    if not isinstance(data, (tuple, list)) or len(data) != 4:
        raise TypeError("compare(data): expected (X_train, y_train, X_test, y_test) or a data set name, "
                        f"got {type(data).__name__}")
    return tuple(data)


def compare(
    architectures=TUTORIAL_ARCHITECTURES,
    *,
    data=None,
    seeds=(42,),
    epochs: int = 200,
    batch_size: int = 16,
    lr: float = 0.1,
    dtype="float32",
    jobs: int | None = None,
    scheduler=None,
    threads: int = 1,
) -> list[CompareResult]:
    """Train every architecture with every seed on the same data.

    Args:
        architectures: lists of layer sizes, such as ``[[25, 2], [25, 8, 2]]``.
        data: ``(X_train, y_train, X_test, y_test)`` or a data set name; by
            default 200 training and 50 test edge patches (seeds 0 and 1).
        seeds: one training run per seed; the seed sets the initial weights.
        epochs, batch_size, lr: the tutorial's defaults are 200, 16 and 0.1.
        jobs, scheduler: run the trials in parallel, as :func:`flexnet.sweep`
            does (default: one after the other in this process).
        threads: BLAS threads per run (default 1, as in a sweep: the
            tutorial's networks are far too small to gain from more, and the
            same count gives the same numbers wherever a run is done).

    Returns:
        One :class:`CompareResult` per (architecture, seed), in that order.

    Raises:
        RuntimeError: a run diverged or failed (all runs are finished first).
    """
    archs = [check_layer_sizes(a) for a in architectures]
    if not archs:
        raise ValueError("compare: expected at least one architecture")
    epochs = check_positive_int(epochs, "compare(epochs)")
    batch_size = check_positive_int(batch_size, "compare(batch_size)")
    lr = check_lr(lr, "compare(lr)")
    threads_n = check_positive_int(threads, "compare(threads)")
    data = _test_data(data, dtype)
    n_features = np.shape(data[0])[1]
    for arch in archs:
        if arch[0] != n_features:
            raise ValueError(
                f"compare: architecture {arch} takes {arch[0]} inputs, "
                f"but the data has {n_features} features"
            )
    grid = {"arch": archs, "seed": list(seeds), "lr": lr, "batch_size": batch_size, "optimizer": "sgd"}
    if jobs is not None or scheduler is not None:  # the same trials, on local processes or a Dask cluster
        from .sweep import sweep

        result = sweep(data, grid, epochs=epochs, shuffle=False, derive_seeds=False, dtype=dtype, jobs=jobs,
                       scheduler=scheduler, save_best=False, blas_threads=threads_n)
        if result.interrupted:
            raise KeyboardInterrupt
        rows = result.trials
    else:
        dtype = as_float_dtype(dtype, "compare(dtype)")
        specs = trial.make_specs(trial.expand_grid(grid, epochs=epochs), derive_seeds=False, shuffle=False,
                                 dtype=dtype)
        X, X_test = np.ascontiguousarray(data[0], dtype=dtype), np.ascontiguousarray(data[2], dtype=dtype)
        y, y_test = np.ascontiguousarray(data[1]), np.ascontiguousarray(data[3])
        with blas_threads.limited(threads_n):  # as in a sweep trial: the same sums in the same order
            rows = [trial.run_trial(spec, X, y, X_test, y_test) for spec in specs]
    failed = [t for t in rows if t["status"] != "ok"]
    if failed:
        raise RuntimeError("; ".join(f"{t['arch']} seed {t['seed']}: {t['error']}" for t in failed))
    return [
        CompareResult(t["arch"], t["seed"], t["n_params"], t["curves"]["loss"], t["val_accuracy"], t["seconds"])
        for t in rows
    ]


def format_table(results: list[CompareResult]) -> str:
    """Architecture, parameters, final loss and test accuracy (mean and spread over seeds).

    Losses keep three significant digits (0.00521, never 0.0052 next to
    0.0001); the accuracy's spread is the sample standard deviation over seeds,
    or "identical over N seeds" when every seed scored the same.
    """
    from ..plots import format_loss, seed_spread

    groups: dict[tuple, list[CompareResult]] = {}
    for r in results:
        groups.setdefault(tuple(r.arch), []).append(r)
    several = any(len(rs) > 1 for rs in groups.values())
    header = ("architecture", "params", "seeds", "final loss" + (" (mean)" if several else ""),
              "test accuracy" + (" (mean ± sd)" if several else ""), "time (s)")
    rows = [header]
    for arch, rs in groups.items():
        acc = np.array([r.accuracy for r in rs]) * 100
        loss = np.array([r.final_loss for r in rs])
        spread = seed_spread(acc, unit="%").removesuffix(" (sd)")  # the header says sd
        spread = f", {spread}" if spread.startswith("identical") else f" {spread}" if spread else ""
        rows.append((
            "[" + ", ".join(map(str, arch)) + "]",
            f"{rs[0].n_params:,}",
            str(len(rs)),
            format_loss(loss.mean()),
            f"{acc.mean():.1f}%{spread}",
            f"{sum(r.seconds for r in rs):.2f}",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)

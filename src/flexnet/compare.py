"""The tutorial's experiment: train several architectures on the same data."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ._checks import check_layer_sizes, check_lr, check_positive_int
from .datasets import edges
from .network import Network

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


def train_epochs(net: Network, X, y, *, epochs: int, batch_size: int, lr: float) -> list[float]:
    """The tutorial's training loop: batches in order, one SGD step each.

    Returns the mean batch loss of every epoch.
    """
    losses = []
    n = len(X)
    for _ in range(epochs):
        total, batches = 0.0, 0
        for start in range(0, n, batch_size):
            total += net.train_step(X[start:start + batch_size], y[start:start + batch_size], lr)
            batches += 1
        losses.append(total / batches)
    return losses


def compare(
    architectures=TUTORIAL_ARCHITECTURES,
    *,
    data=None,
    seeds=(42,),
    epochs: int = 200,
    batch_size: int = 16,
    lr: float = 0.1,
    dtype="float32",
) -> list[CompareResult]:
    """Train every architecture with every seed on the same data.

    Args:
        architectures: lists of layer sizes, such as ``[[25, 2], [25, 8, 2]]``.
        data: ``(X_train, y_train, X_test, y_test)``; default 200 training and
            50 test edge patches (seeds 0 and 1), as in the tutorial.
        seeds: one training run per seed; the seed sets the initial weights.
        epochs, batch_size, lr: the tutorial's defaults are 200, 16 and 0.1.

    Returns:
        One :class:`CompareResult` per (architecture, seed), in that order.
    """
    archs = [check_layer_sizes(a) for a in architectures]
    if not archs:
        raise ValueError("compare: expected at least one architecture")
    epochs = check_positive_int(epochs, "compare(epochs)")
    batch_size = check_positive_int(batch_size, "compare(batch_size)")
    lr = check_lr(lr, "compare(lr)")
    if data is None:
        X_train, y_train = edges(200, seed=0, dtype=dtype)
        X_test, y_test = edges(50, seed=1, dtype=dtype)
    else:
        X_train, y_train, X_test, y_test = data
    n_features = np.shape(X_train)[1]
    results = []
    for arch in archs:
        if arch[0] != n_features:
            raise ValueError(
                f"compare: architecture {arch} takes {arch[0]} inputs, "
                f"but the data has {n_features} features"
            )
        for seed in seeds:
            net = Network(arch, seed=seed, dtype=dtype)
            start = time.perf_counter()
            losses = train_epochs(net, X_train, y_train, epochs=epochs, batch_size=batch_size, lr=lr)
            seconds = time.perf_counter() - start
            pred = net.predict(X_test)
            truth = np.asarray(y_test)
            if truth.ndim == 2:
                truth = truth.argmax(axis=1)
            results.append(
                CompareResult(arch, int(seed), net.n_params(), losses, float((pred == truth).mean()), seconds)
            )
    return results


def format_table(results: list[CompareResult]) -> str:
    """Architecture, parameters, final loss and test accuracy (mean and spread over seeds)."""
    groups: dict[tuple, list[CompareResult]] = {}
    for r in results:
        groups.setdefault(tuple(r.arch), []).append(r)
    header = ("architecture", "params", "seeds", "final loss", "test accuracy", "time (s)")
    rows = [header]
    for arch, rs in groups.items():
        acc = np.array([r.accuracy for r in rs]) * 100
        loss = np.array([r.final_loss for r in rs])
        spread = f" ± {acc.std():.1f}" if len(rs) > 1 else ""
        rows.append((
            "[" + ", ".join(map(str, arch)) + "]",
            f"{rs[0].n_params:,}",
            str(len(rs)),
            f"{loss.mean():.4f}",
            f"{acc.mean():.1f}%{spread}",
            f"{sum(r.seconds for r in rs):.2f}",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)

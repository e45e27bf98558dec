"""One training run from a configuration: what a comparison and every sweep trial do.

A configuration is a dict of settings (``arch``, ``activation``, ``dropout``,
``epochs``, ``batch_size``, ``optimizer``, ``lr``); two seeds make the run
repeatable, one for the initial weights and one for the order of the batches.
"""

from __future__ import annotations

import numpy as np

from ..training.loop import fit
from ..training.network import Network


def fit_seed(init_seed: int) -> int:
    """The seed of the batch order, derived from the weights' seed: shuffling gets
    a stream of its own, not the one the weights were drawn from."""
    return int(np.random.SeedSequence([init_seed, 1]).generate_state(1, np.uint64)[0])


def build_network(config: dict, dtype, seed: int) -> Network:
    """The network a configuration describes."""
    return Network(config["arch"], activation=config["activation"], dropout=config["dropout"],
                   dtype=dtype, seed=seed)


def train(config: dict, X, y, X_val, y_val, *, dtype, init_seed: int, fit_seed: int, shuffle: bool):
    """Train one configuration; returns ``(net, history)``. Raises what fit raises."""
    net = build_network(config, dtype, init_seed)
    history = fit(
        net, X, y, epochs=config["epochs"], batch_size=config["batch_size"],
        optimizer=config["optimizer"], lr=config["lr"],
        validation_data=None if X_val is None else (X_val, y_val),
        shuffle=shuffle, seed=fit_seed, progress=False,
    )
    return net, history

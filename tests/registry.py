"""Every layer and every loss, built small, for tests that must cover them all.

To add a layer: one entry in LAYER_FACTORIES, ``name -> make(n_features,
dtype, seed)`` returning a layer whose input width is ``n_features`` (its
output width is ``layer.output_size(n_features)``). Put the name in
LAYER_TRAINING if it is to be run with ``training=True``. Names with a
bracketed suffix ("BatchNorm1d[eval]") are the same class in another mode.

To add a loss: one entry in LOSS_FACTORIES, ``name -> make(n, rng)``
returning ``(loss, n_outputs, y)``: the loss, the width of the outputs it
expects and valid targets for a batch of ``n`` rows.
"""

from __future__ import annotations

import numpy as np

from flexnet import (
    GELU,
    L1,
    MSE,
    BatchNorm1d,
    BCEWithLogits,
    Dropout,
    Huber,
    LayerNorm,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    Softmax,
    SoftmaxCrossEntropy,
    Tanh,
)


def _batchnorm_with_history(n, dtype, seed):
    """A BatchNorm1d whose running statistics and affine parameters are not the defaults."""
    rng = np.random.default_rng(seed)
    layer = BatchNorm1d(n, dtype=dtype)
    layer.running_mean[...] = rng.standard_normal((1, n))
    layer.running_var[...] = rng.uniform(0.5, 2.0, (1, n))
    layer.gamma[...] = rng.uniform(0.5, 1.5, (1, n))
    layer.beta[...] = rng.standard_normal((1, n))
    return layer


def _layernorm(n, dtype, seed):
    rng = np.random.default_rng(seed)
    layer = LayerNorm(n, dtype=dtype)
    layer.gamma[...] = rng.uniform(0.5, 1.5, (1, n))
    layer.beta[...] = rng.standard_normal((1, n))
    return layer


LAYER_FACTORIES = {
    "Linear": lambda n, dtype, seed: Linear(n, 3, dtype=dtype, seed=seed),
    "Linear[glorot_uniform]": lambda n, dtype, seed: Linear(n, 3, dtype=dtype, seed=seed,
                                                            init="glorot_uniform"),
    "Linear[no bias]": lambda n, dtype, seed: Linear(n, 3, dtype=dtype, seed=seed, bias=False),
    "ReLU": lambda n, dtype, seed: ReLU(),
    "LeakyReLU": lambda n, dtype, seed: LeakyReLU(0.1),
    "Sigmoid": lambda n, dtype, seed: Sigmoid(),
    "Tanh": lambda n, dtype, seed: Tanh(),
    "GELU": lambda n, dtype, seed: GELU(),
    "GELU[tanh]": lambda n, dtype, seed: GELU(approximate="tanh"),
    "Softmax": lambda n, dtype, seed: Softmax(),
    "Dropout": lambda n, dtype, seed: Dropout(0.3, seed=seed),
    "BatchNorm1d[train]": _batchnorm_with_history,
    "BatchNorm1d[eval]": _batchnorm_with_history,
    "BatchNorm1d[no affine]": lambda n, dtype, seed: BatchNorm1d(n, affine=False, dtype=dtype),
    "BatchNorm1d[cumulative]": lambda n, dtype, seed: BatchNorm1d(n, momentum=None, dtype=dtype),
    "LayerNorm": _layernorm,
}

#: Cases run with ``forward(x, training=True)``; all others use inference mode.
LAYER_TRAINING = {"Dropout", "BatchNorm1d[train]", "BatchNorm1d[no affine]", "BatchNorm1d[cumulative]"}


def _class_ids(n_classes):
    def make(n, rng):
        return SoftmaxCrossEntropy(), n_classes, rng.integers(0, n_classes, n)
    return make


def _soft_targets(n, rng):
    y = rng.uniform(0.1, 1.0, (n, 4))
    return SoftmaxCrossEntropy(label_smoothing=0.2, class_weights=[1.0, 2.0, 0.5, 3.0]), 4, y / y.sum(1, keepdims=True)


LOSS_FACTORIES = {
    "SoftmaxCrossEntropy": _class_ids(4),
    "SoftmaxCrossEntropy[smoothing+weights]": lambda n, rng: (
        SoftmaxCrossEntropy(label_smoothing=0.1, class_weights=[1.0, 2.0, 0.5, 3.0]), 4,
        rng.integers(0, 4, n)),
    "SoftmaxCrossEntropy[soft targets]": _soft_targets,
    "BCEWithLogits": lambda n, rng: (BCEWithLogits(), 1, rng.integers(0, 2, n)),
    "BCEWithLogits[multi-label probs]": lambda n, rng: (BCEWithLogits(), 3, rng.uniform(0, 1, (n, 3))),
    "MSE": lambda n, rng: (MSE(), 2, rng.standard_normal((n, 2))),
    "L1": lambda n, rng: (L1(), 1, rng.standard_normal(n)),
    "Huber": lambda n, rng: (Huber(delta=0.5), 2, rng.standard_normal((n, 2))),
}

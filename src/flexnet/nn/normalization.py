"""Normalisation layers: BatchNorm1d (across the batch) and LayerNorm (across features).

Both keep their per-feature arrays, parameters and running statistics alike,
in shape ``(1, F)``, the shape of a Linear bias, so they broadcast against a
batch ``(N, F)`` without reshaping. (PyTorch stores them as ``(F,)``; the
PyTorch bridge reshapes.)
"""

from __future__ import annotations

import numpy as np

from .. import ops
from .checks import as_float_dtype, check_flag, check_float_input, check_number, check_positive_int
from .layers import Layer


def _normalised_backward(dxhat: np.ndarray, xhat: np.ndarray, inv_std: np.ndarray, axis: int) -> np.ndarray:
    """dL/dx for ``xhat = (x - mean(x)) * inv_std`` with mean and variance over ``axis``.

    The mean and the (biased) variance both depend on every x along ``axis``,
    which adds two correction terms to the plain ``dxhat * inv_std``:
    ``dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))``.
    """
    xp = ops.xp(dxhat)
    mean_d = xp.mean(dxhat, axis=axis, keepdims=True)
    mean_dx = xp.mean(dxhat * xhat, axis=axis, keepdims=True)
    return inv_std * (dxhat - mean_d - xhat * mean_dx)


class _Normalization(Layer):
    """What both share: ``xhat = (x - mean) * inv_std``, then ``gamma * xhat + beta``."""

    def __init__(self, num_features: int, eps: float, affine: bool, dtype):
        where = type(self).__name__
        self.num_features = check_positive_int(num_features, f"{where}(num_features)")
        self.eps = check_number(eps, f"{where}(eps)", low_open=True)
        self.dtype = as_float_dtype(dtype, f"{where}(dtype)")
        self.affine = check_flag(affine, f"{where}(affine)")
        self.params = ("gamma", "beta") if self.affine else ()
        if self.affine:
            self.gamma = np.ones((1, self.num_features), dtype=self.dtype)
            self.beta = np.zeros((1, self.num_features), dtype=self.dtype)
            self.dgamma = self.dbeta = None
        self.xhat = self.inv_std = None

    def _input(self, x) -> np.ndarray:
        x = check_float_input(self, x, self.num_features)
        return x if ops.dtype(x) == self.dtype else ops.astype(x, self.dtype)

    def _normalise(self, x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        self.inv_std = 1 / ops.xp(var).sqrt(var + self.eps)  # (1, F) or (N, 1)
        self.xhat = (x - mean) * self.inv_std  # (N, F)
        return self.xhat * self.gamma + self.beta if self.affine else self.xhat

    def _affine_backward(self, grad: np.ndarray) -> np.ndarray:
        """Store dgamma and dbeta; return dL/dxhat."""
        self._check_grad(grad, self.xhat)
        if not self.affine:
            return grad
        xp = ops.xp(grad)
        self.dgamma = xp.sum(grad * self.xhat, axis=0, keepdims=True)  # (1, F)
        self.dbeta = xp.sum(grad, axis=0, keepdims=True)  # (1, F)
        return grad * self.gamma


class BatchNorm1d(_Normalization):
    """Normalise each feature over the batch, then scale and shift: ``gamma * xhat + beta``.

    Training (``forward(x, training=True)``) normalises with the batch mean and
    biased variance and updates the running statistics with the unbiased
    variance, exactly as ``torch.nn.BatchNorm1d``:
    ``running = (1 - momentum) * running + momentum * batch_stat``.
    Inference normalises with the running statistics, so a prediction does not
    depend on the other rows in its batch.

    Args:
        num_features: F, the width of the input.
        eps: added to the variance before the square root.
        momentum: weight of the newest batch in the running statistics, in
            [0, 1]; or None for PyTorch's cumulative average, where batch t
            weighs 1/t.
        affine: learn ``gamma`` and ``beta`` (else the output is just ``xhat``).
        dtype: float32 (default) or float64.

    The buffer ``num_batches_tracked`` counts the training batches seen, as
    PyTorch's does, in the layer's float dtype like every buffer (exact up to
    2**24 batches in float32). A layer loaded from a file written before the
    count was kept, with a momentum, has none and counts nothing.

    Shapes:
        x: (N, F) -> (N, F); gamma, beta, running_mean, running_var: (1, F).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, *, dtype="float32"):
        super().__init__(num_features, eps, affine, dtype)
        self.momentum = None if momentum is None else check_number(
            momentum, "BatchNorm1d(momentum)", high=1.0, high_open=False)
        self.running_mean = np.zeros((1, self.num_features), dtype=self.dtype)
        self.running_var = np.ones((1, self.num_features), dtype=self.dtype)
        self.num_batches_tracked = np.zeros((), dtype=self.dtype)
        self.buffers = ("running_mean", "running_var", "num_batches_tracked")
        self.batch_stats = False  # whether the last forward used batch statistics

    def forward(self, x, training=False):
        x = self._input(x)
        if not training:
            self.batch_stats = False
            return self._normalise(x, self.running_mean, self.running_var)
        n = x.shape[0]
        if n < 2:
            raise ValueError(f"{self.where()} needs at least 2 rows per batch when training, got {n}; "
                             "a variance over one row is 0. Use a larger batch or drop the last one.")
        xp = ops.xp(x)
        mean = xp.mean(x, axis=0, keepdims=True)  # (1, F)
        var = xp.var(x, axis=0, keepdims=True)  # (1, F), biased: divides by n
        if "num_batches_tracked" in self.buffers:
            self.num_batches_tracked += 1
        m = self.momentum
        if m is None:  # cumulative average: the t-th batch weighs 1/t
            m = 1.0 / float(self.num_batches_tracked)
        # In place, so references to the buffers (optimizers, io) stay valid.
        self.running_mean *= 1 - m
        self.running_mean += m * mean
        self.running_var *= 1 - m
        self.running_var += m * var * (n / (n - 1))  # unbiased, as PyTorch keeps it
        self.batch_stats = True
        return self._normalise(x, mean, var)

    def backward(self, grad, input_grad=True):
        dxhat = self._affine_backward(grad)
        if not input_grad:
            return None
        if not self.batch_stats:
            return dxhat * self.inv_std  # running statistics are constants
        return _normalised_backward(dxhat, self.xhat, self.inv_std, axis=0)

    def config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine}

    def __repr__(self):
        return f"BatchNorm1d({self.num_features}{'' if self.affine else ', affine=False'})"


class LayerNorm(_Normalization):
    """Normalise each row over its features, then scale and shift: ``gamma * xhat + beta``.

    Unlike BatchNorm the statistics come from the row itself, so training and
    inference compute the same thing and any batch size works (even 1).
    Matches ``torch.nn.LayerNorm(num_features)`` (biased variance).

    Args:
        num_features: F, the width of the input.
        eps: added to the variance before the square root.
        dtype: float32 (default) or float64.

    Shapes:
        x: (N, F) -> (N, F); gamma, beta: (1, F).
    """

    params, affine = ("gamma", "beta"), True  # always: also what a LayerNorm pickled by 0.1 lacks

    def __init__(self, num_features: int, eps: float = 1e-5, *, dtype="float32"):
        super().__init__(num_features, eps, True, dtype)

    def forward(self, x, training=False):
        x = self._input(x)
        xp = ops.xp(x)
        return self._normalise(x, xp.mean(x, axis=1, keepdims=True), xp.var(x, axis=1, keepdims=True))  # (N, 1) each

    def backward(self, grad, input_grad=True):
        dxhat = self._affine_backward(grad)
        return _normalised_backward(dxhat, self.xhat, self.inv_std, axis=1) if input_grad else None

    def config(self):
        return {"num_features": self.num_features, "eps": self.eps}

    def __repr__(self):
        return f"LayerNorm({self.num_features})"

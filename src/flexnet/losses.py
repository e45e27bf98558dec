"""Losses: ``forward(z, y)`` returns the mean loss, ``backward()`` returns dL/dz.

A loss divides by the batch size, once; layers only pass gradients along.
Each loss also says how to turn the network's raw outputs into predictions
(``predict``) and probabilities (``proba``).
"""

from __future__ import annotations

import numpy as np

from ._checks import check_labels, check_targets


class Loss:
    """Base class of every loss."""

    #: True when targets are class ids and accuracy means something.
    is_classifier: bool = False

    def forward(self, z: np.ndarray, y) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def predict(self, z: np.ndarray) -> np.ndarray:
        """Predictions from raw outputs (class ids for classifiers)."""
        return z

    def proba(self, z: np.ndarray) -> np.ndarray:
        raise TypeError(f"{type(self).__name__} does not give probabilities")

    def config(self) -> dict:
        return {}

    def _where(self) -> str:
        return f"{type(self).__name__}.forward"

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def log_softmax(z: np.ndarray) -> np.ndarray:
    """``log(softmax(z))`` per row, exact for logits of any size.

    Subtracting the row maximum first keeps ``exp`` in [0, 1], so nothing
    overflows; the log is taken of a sum >= 1, so nothing underflows to -inf.
    """
    shifted = z - z.max(axis=1, keepdims=True)  # (N, C), max 0 per row
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for logits of any size."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, fused.

    ``y`` is either integer class ids of shape (N,) or a target distribution of
    shape (N, C) (one-hot rows, as in the tutorial).

    Fusing the two matters: for ``L = -sum(y * log softmax(z)) / N`` the
    gradient with respect to the logits collapses to ``(p - y) / N``. The
    softmax Jacobian and the ``1/p`` from the log cancel, so the backward pass
    never divides by a probability that may have underflowed to 0.

    Shapes:
        z: (N, C), y: (N,) ints or (N, C) -> loss: scalar; backward: (N, C).
    """

    is_classifier = True

    def __init__(self):
        self.p = None  # softmax probabilities from the last forward
        self.y = None  # targets as given: ids (N,) or distribution (N, C)

    def forward(self, z, y):
        n, c = z.shape
        y = np.asarray(y)
        if y.ndim == 2:
            y = check_targets(y, z.shape, z.dtype, self._where())
            if (y < 0).any() or not np.allclose(y.sum(axis=1), 1.0, atol=1e-3):
                raise ValueError(
                    f"{self._where()}: 2-D targets must be one-hot rows or "
                    "probabilities summing to 1; for class ids pass a 1-D array"
                )
        else:
            y = check_labels(y, n, c, self._where())
        logp = log_softmax(z)  # (N, C)
        self.p = np.exp(logp)
        self.y = y
        if y.ndim == 1:
            return float(-logp[np.arange(n), y].sum() / n)
        return float(-(y * logp).sum() / n)

    def backward(self):
        n = len(self.p)
        if self.y.ndim == 1:
            grad = self.p.copy()
            grad[np.arange(n), self.y] -= 1  # p - one_hot(y), no one-hot array built
        else:
            grad = self.p - self.y
        grad /= n
        return grad

    def predict(self, z):
        return z.argmax(axis=1)

    def proba(self, z):
        return softmax(z)

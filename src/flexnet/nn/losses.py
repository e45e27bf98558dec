"""Losses: ``forward(z, y)`` returns the mean loss, ``backward()`` returns dL/dz.

A loss divides by the batch size, once; layers only pass gradients along.
Each loss also says how to turn the network's raw outputs into predictions
(``predict``) and probabilities (``proba``).

Classification: :class:`SoftmaxCrossEntropy` (C classes, C outputs) and
:class:`BCEWithLogits` (two classes, one output). Regression: :class:`MSE`,
:class:`L1`, :class:`Huber`. :func:`get` finds a loss by name.
"""

from __future__ import annotations

import math

import numpy as np

from .. import ops
from .activations import log_softmax, sigmoid, softmax
from .checks import FLOAT_DTYPES, check_labels, check_number, check_targets, lookup


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

    def where(self) -> str:
        """How error messages name this loss: ``SoftmaxCrossEntropy.forward``."""
        return f"{type(self).__name__}.forward"

    _where = where  # its name in 0.1, which custom losses may call

    def _after_forward(self, cached) -> None:
        """Refuse a backward with nothing cached by a forward to go back from."""
        if cached is None:
            raise RuntimeError(f"{type(self).__name__}.backward: no forward pass to go back "
                               "through; call forward(z, y) first")

    def _check_outputs(self, z) -> np.ndarray:
        """The network's raw outputs must be a 2-D float batch (N, K)."""
        if not isinstance(z, np.ndarray) or z.dtype not in FLOAT_DTYPES:
            array = isinstance(z, np.ndarray) or ops.is_foreign(z)
            if not array or ops.dtype(z) not in FLOAT_DTYPES:
                got = f"dtype {z.dtype}" if array else type(z).__name__
                raise TypeError(f"{self.where()}: expected float32 or float64 outputs, got {got}")
        if z.ndim != 2 or z.shape[0] == 0:
            raise ValueError(f"{self.where()}: expected outputs of shape (batch, outputs), got {z.shape}")
        return z

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, fused.

    ``y`` is either integer class ids of shape (N,) or a target distribution of
    shape (N, C) (one-hot rows, as in the tutorial).

    Fusing the two matters: for ``L = -sum(y * log softmax(z)) / N`` the
    gradient with respect to the logits collapses to ``(p - y) / N``. The
    softmax Jacobian and the ``1/p`` from the log cancel, so the backward pass
    never divides by a probability that may have underflowed to 0.

    Args:
        label_smoothing: eps in [0, 1]; the target becomes
            ``(1 - eps) * y + eps / C``, discouraging over-confident logits.
        class_weights: C non-negative weights, one per class, for unbalanced
            data. With class ids the mean is weighted, ``sum_i w[y_i] l_i /
            sum_i w[y_i]``; with (N, C) targets each class's term is scaled by
            its weight and the sum divided by N. Both as in
            ``torch.nn.CrossEntropyLoss(weight=, label_smoothing=)``.

    Shapes:
        z: (N, C), y: (N,) ints or (N, C) -> loss: scalar; backward: (N, C).
    """

    is_classifier = True

    def __init__(self, label_smoothing: float = 0.0, class_weights=None):
        self.label_smoothing = check_number(label_smoothing, "SoftmaxCrossEntropy(label_smoothing)",
                                            high=1.0, high_open=False)
        self.class_weights = None if class_weights is None else np.asarray(class_weights, dtype=np.float64)
        w = self.class_weights
        if w is not None and (w.ndim != 1 or len(w) == 0 or not np.isfinite(w).all() or (w < 0).any()):
            raise ValueError("SoftmaxCrossEntropy(class_weights): expected one finite weight >= 0 per class, "
                             f"got {class_weights!r}")
        self.p = None  # softmax probabilities from the last forward
        self.y = None  # targets as given: ids (N,) or distribution (N, C)
        self._scale = None  # weighted/smoothed case: what backward needs

    def forward(self, z, y, *, checked: bool = False):
        """The mean loss. ``checked=True`` says ``y`` holds int64 class ids (or
        targets of the outputs' dtype) already checked against the outputs:
        ``fit`` checks every label once, before its loop, so its batches skip
        that check; so do the other losses' ``forward(z, y, checked=True)``.
        Wrong labels then give a wrong loss, not an error: pass it only for
        labels checked so."""
        z = self._check_outputs(z)  # cheap; the labels' check is the costly one
        if not checked:
            y = self._check_targets(z, y)
        self.y = y
        if y.ndim == 1 and self.class_weights is None and self.label_smoothing == 0:
            return self._ids_forward(z, y)
        logp = log_softmax(z)  # (N, C)
        self.p = ops.xp(z).exp(logp)
        if self.class_weights is not None or self.label_smoothing > 0:
            return self._weighted_forward(logp, y)
        self._scale = None
        xp = ops.xp(z)
        return float(-xp.sum(ops.like(y, z) * logp) / z.shape[0])  # (N, C) targets

    def _check_targets(self, z, y) -> np.ndarray:
        n, c = z.shape
        y = np.asarray(y)
        if y.ndim == 2 and y.shape == (n, 1) and c > 1:
            raise ValueError(f"{self.where()}: got labels of shape {y.shape} for {c} outputs; class ids belong "
                             f"in a 1-D array (y.ravel()), one-hot targets in shape ({n}, {c})")
        if y.ndim != 2:
            return check_labels(y, n, c, self.where())
        y = check_targets(y, tuple(z.shape), ops.dtype(z), self.where())
        if (y < 0).any() or not np.allclose(y.sum(axis=1), 1.0, atol=1e-3):
            raise ValueError(f"{self.where()}: 2-D targets must be one-hot rows or probabilities summing to 1; "
                             "for class ids pass a 1-D array")
        return y

    def _ids_forward(self, z: np.ndarray, y: np.ndarray) -> float:
        """The common case, class ids without weights or smoothing: one exp and no
        (N, C) log array. With s = z - rowmax(z) and S = sum_c exp(s) per row,
        p = exp(s) / S and -log p[y] = log S - s[y]."""
        self._scale = None
        xp = ops.xp(z)
        s = z - ops.row_max(z)  # (N, C), max 0 per row
        p = xp.exp(s)
        total = ops.sum_features(p)  # (N, 1) row sums, each >= 1
        p /= total
        self.p = p
        return float(ops.total(xp.log(total[:, 0]) - ops.pick(s, y)) / z.shape[0])  # mean of log S - s[y]

    def _weights(self, c: int, dtype) -> np.ndarray:
        if self.class_weights is None:
            return np.ones(c, dtype=dtype)
        if len(self.class_weights) != c:
            raise ValueError(f"{self.where()}: got {len(self.class_weights)} class weights for {c} outputs; "
                             "pass one weight per class")
        return self.class_weights.astype(dtype)

    def _weighted_forward(self, logp, y) -> float:
        # Every case is  L = sum_ic q_ic * (-logp_ic) / D  for some target
        # weights q >= 0 and divisor D, with gradient (s_i p_ic - q_ic) / D
        # where s_i = sum_c q_ic. Only q and D differ between the cases.
        n, c = logp.shape
        eps = self.label_smoothing
        w = self._weights(c, logp.dtype)  # (C,)
        if y.ndim == 2:
            q = (y * (1 - eps) + eps / c) * w  # (N, C)
            self._scale = (q, n)
            return float(-(q * logp).sum() / n)
        rows = np.arange(n)
        wy = w[y]  # (N,) weight of each row's own class
        total = wy.sum()
        if total == 0:
            raise ValueError(f"{self.where()}: every label in this batch has class weight 0, so the "
                             "weighted mean is undefined; give those classes a weight > 0")
        # q = (1 - eps) * w[y_i] * onehot(y_i) + (eps / C) * w, never built as an array
        nll = -logp[rows, y]  # (N,)
        smooth = -(logp @ w)  # (N,) = sum_c w_c * (-logp_ic)
        self._scale = ((1 - eps) * wy, w * (eps / c), total)
        return float(((1 - eps) * (wy * nll).sum() + eps / c * smooth.sum()) / total)

    def backward(self):
        self._after_forward(self.p)
        n = self.p.shape[0]
        if self._scale is not None:
            return self._weighted_backward()
        if self.y.ndim == 1:
            grad = ops.pick_add(ops.copy(self.p), self.y, -1)  # p - one_hot(y), no one-hot array
        else:
            grad = self.p - ops.like(self.y, self.p)
        grad /= n
        return grad

    def _weighted_backward(self) -> np.ndarray:
        if self.y.ndim == 2:
            q, n = self._scale
            return (q.sum(axis=1, keepdims=True) * self.p - q) / n
        on_label, spread, total = self._scale  # (N,), (C,), scalar
        n = len(self.p)
        s = on_label + spread.sum()  # (N,) = sum_c q_ic
        grad = s[:, None] * self.p - spread  # (N, C)
        grad[np.arange(n), self.y] -= on_label
        grad /= total
        return grad

    def predict(self, z):
        return z.argmax(axis=1) if type(z) is np.ndarray else ops.xp(z).argmax(z, axis=1)

    def proba(self, z):
        return softmax(z)

    def config(self):
        weights = None if self.class_weights is None else self.class_weights.tolist()
        return {"label_smoothing": self.label_smoothing, "class_weights": weights}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if v not in (None, 0.0))
        return f"SoftmaxCrossEntropy({args})"


def _dense_targets(loss: Loss, z: np.ndarray, y) -> np.ndarray:
    """Targets shaped like ``z`` (N, K); a 1-D ``y`` of length N is accepted when K is 1.

    Anything else is refused: ``(N, 1) - (N,)`` would broadcast to (N, N) and
    give a wrong loss without any error.
    """
    y = np.asarray(y)
    n, k = z.shape
    if y.ndim == 1 and k == 1 and len(y) == n:
        y = y.reshape(n, 1)
    elif y.shape != z.shape:
        want = f"({n},) or ({n}, 1)" if k == 1 else f"({n}, {k})"
        raise ValueError(f"{loss.where()}: expected targets of shape {want} for outputs of shape "
                         f"{z.shape}, got {y.shape}")
    return check_targets(y, tuple(z.shape), ops.dtype(z), loss.where())


def _one_or_many(z: np.ndarray) -> np.ndarray:
    """(N,) for a single output column, so it compares directly with (N,) targets."""
    return z[:, 0] if z.shape[1] == 1 else z


class BCEWithLogits(Loss):
    """Binary cross-entropy on raw logits, with the sigmoid fused in.

    Per element, ``l = -[y log s(z) + (1 - y) log(1 - s(z))]`` with ``s`` the
    sigmoid, computed as ``max(z, 0) - z y + log(1 + exp(-|z|))``: the same
    value, but ``exp`` only sees ``-|z| <= 0``, so logits of any size give a
    finite loss. The gradient collapses to ``(s(z) - y) / count`` as for
    softmax cross-entropy. The loss is the mean over all N*K elements, as in
    ``torch.nn.BCEWithLogitsLoss``.

    Use one output unit for a two-class problem (targets 0/1 or probabilities),
    or K outputs for K independent yes/no labels.

    ``predict`` gives int 0/1 of shape (N,) for one output, (N, K) otherwise.
    ``proba`` gives (N, 2) ``[P(0), P(1)]`` columns for one output, like a
    two-class softmax (so ``argmax`` agrees with ``predict``), and the (N, K)
    sigmoids otherwise.

    Shapes:
        z: (N, 1) with y: (N,) or (N, 1); or z: (N, K) with y: (N, K).
    """

    is_classifier = True

    def __init__(self):
        self.z = None
        self.y = None

    def forward(self, z, y, *, checked: bool = False):
        z = self._check_outputs(z)
        if checked:  # targets of z's dtype that fit checked, all of them, before its loop
            y = y.reshape(tuple(z.shape))
        else:
            y = _dense_targets(self, z, y)
            if ((y < 0) | (y > 1)).any():
                bad = float(y[(y < 0) | (y > 1)][0])
                raise ValueError(f"{self.where()}: targets must be 0/1 or probabilities in [0, 1], got {bad}")
        xp, y = ops.xp(z), ops.like(y, z)
        self.z, self.y = z, y
        loss = xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))  # (N, K)
        return float(xp.mean(loss))

    def backward(self):
        self._after_forward(self.z)
        return (sigmoid(self.z) - self.y) / math.prod(self.z.shape)

    def predict(self, z):
        return ops.astype(_one_or_many(z > 0), np.int64)

    def proba(self, z):
        if z.shape[1] == 1:
            return ops.xp(z).concat([sigmoid(-z), sigmoid(z)], axis=1)  # (N, 2), exact for both tails
        return sigmoid(z)


class _Regression(Loss):
    """Mean over all N*K elements of ``f(z - y)``; subclasses give f and f'."""

    def __init__(self):
        self.diff = None  # z - y from the last forward, (N, K)

    def forward(self, z, y, *, checked: bool = False):
        z = self._check_outputs(z)
        y = y.reshape(tuple(z.shape)) if checked else _dense_targets(self, z, y)  # checked: as for BCEWithLogits
        self.diff = z - ops.like(y, z)  # (N, K)
        return float(ops.xp(z).mean(self._value(self.diff)))

    def backward(self):
        self._after_forward(self.diff)
        return self._slope(self.diff) / math.prod(self.diff.shape)

    def predict(self, z):
        return _one_or_many(z)

    def _value(self, d: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _slope(self, d: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class MSE(_Regression):
    """Mean squared error, ``mean((z - y)**2)``; gradient ``2 (z - y) / count``.

    ``predict`` returns the outputs, as (N,) when there is one.

    Shapes:
        z: (N, K), y: (N, K), or (N,) when K is 1.
    """

    def _value(self, d):
        return d * d

    def _slope(self, d):
        return 2 * d


class L1(_Regression):
    """Mean absolute error, ``mean(|z - y|)``; gradient ``sign(z - y) / count``.

    Less swayed by outliers than MSE; the gradient at exactly 0 is 0, as in
    PyTorch. Shapes as for :class:`MSE`.
    """

    def _value(self, d):
        return ops.xp(d).abs(d)

    def _slope(self, d):
        return ops.xp(d).sign(d)


class Huber(_Regression):
    """Squared error near 0, absolute error beyond ``delta``.

    Per element, ``0.5 d**2`` if ``|d| <= delta`` else ``delta (|d| - 0.5 delta)``,
    with ``d = z - y``; the two pieces meet with the same slope at ``|d| =
    delta``, so the gradient is ``clip(d, -delta, delta) / count``. Matches
    ``torch.nn.HuberLoss(delta=)``. Shapes as for :class:`MSE`.
    """

    def __init__(self, delta: float = 1.0):
        super().__init__()
        self.delta = check_number(delta, "Huber(delta)", low_open=True)

    def _value(self, d):
        xp = ops.xp(d)
        a = xp.abs(d)
        return xp.where(a <= self.delta, 0.5 * d * d, self.delta * (a - 0.5 * self.delta))

    def _slope(self, d):
        return ops.xp(d).clip(d, -self.delta, self.delta)

    def config(self):
        return {"delta": self.delta}


#: Names the CLI and model files use -> classes.
LOSSES: dict[str, type[Loss]] = {
    "cross_entropy": SoftmaxCrossEntropy, "bce_with_logits": BCEWithLogits, "mse": MSE, "l1": L1,
    "huber": Huber,
}
_ALIASES = {
    "softmax_cross_entropy": "cross_entropy", "ce": "cross_entropy", "softmaxcrossentropy": "cross_entropy",
    "bce": "bce_with_logits", "bcewithlogits": "bce_with_logits", "mae": "l1",
}


def get(name) -> type[Loss]:
    """The loss class for ``name`` ("cross_entropy", "bce", "mse", "mae", "huber", ...).

    A Loss subclass is returned unchanged, so callers accept either.
    """
    if isinstance(name, type) and issubclass(name, Loss):
        return name
    return lookup(name, LOSSES, "loss", _ALIASES, "a name or a Loss class")

"""Sample weights: how much each training row counts.

A loss of :mod:`flexnet.nn` returns the mean over its batch, ``L = sum_i u_i / D``
(``D`` is the batch size, or the sum of the rows' class weights for a
class-weighted cross-entropy, ``D = sum_i c_i``). With a weight ``w_i`` per row,
training minimises the weighted mean instead, as scikit-learn's MLP does on
each batch::

    L_w = sum_i w_i u_i / sum_i w_i c_i

Its gradient is the loss's own gradient with row ``i`` scaled by
``w_i D / sum_j w_j c_j``, so the losses themselves stay as they are: the
weighting happens here, between the loss and the network's backward pass.
Equal weights give exactly the unweighted run (the scale is then 1 and the
loss's own value is used), and a row of weight 0 counts as if it were not there.
"""

from __future__ import annotations

import numpy as np

from ..nn.activations import log_softmax
from ..nn.losses import L1, MSE, BCEWithLogits, Huber, SoftmaxCrossEntropy

__all__ = ["check_sample_weight", "row_losses", "weighted_loss"]


def check_sample_weight(sample_weight, n: int, where: str) -> np.ndarray | None:
    """``sample_weight`` as a float64 array of ``n`` finite weights >= 0, not all 0.

    None stays None (every row counts once). Weights whose largest is beyond
    ``2**900 / n`` or below ``2**-300`` are rescaled by a power of two (their
    ratios, all that counts, stay exact), so no sum overflows. A clear error names ``where``
    (e.g. ``fit(sample_weight)``), what was expected and what was got.
    """
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: expected one number per row, got {type(sample_weight).__name__}") from exc
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{where}: expected numbers (one weight per row), got dtype {w.dtype}")
    if w.ndim == 0:
        w = np.full(n, w, dtype=np.float64)  # one number for every row, as scikit-learn allows
    w = w.astype(np.float64)
    if w.ndim != 1 or len(w) != n:
        raise ValueError(f"{where}: expected shape ({n},), one weight per row of X, got shape {w.shape}")
    bad = np.flatnonzero(~np.isfinite(w))
    if len(bad):
        raise ValueError(f"{where}: weights must be finite; row {bad[0]} holds {w[bad[0]]}")
    neg = np.flatnonzero(w < 0)
    if len(neg):
        raise ValueError(f"{where}: weights must be >= 0; row {neg[0]} holds {w[neg[0]]}")
    if n and not w.any():
        raise ValueError(f"{where}: every weight is zero, so no row would count; give some rows a weight > 0")
    top = float(w.max()) if n else 1.0
    if top < 2.0 ** -300 or top > 2.0 ** 900 / n:
        # Only the weights' ratios count. Ones so large (1e300) that their sums (times a
        # loss) would overflow, or so small (1e-300) that the epoch's means lose their
        # digits, are brought to a largest weight in [0.5, 1) by a power of two, which
        # keeps every ratio exact.
        w = np.ldexp(w, -np.frexp(top)[1])
    return w


def row_losses(loss_fn, z: np.ndarray, y) -> tuple[np.ndarray, np.ndarray | None]:
    """Each row's share of ``loss_fn.forward(z, y)``: ``(u, c)`` with the loss
    equal to ``sum(u) / sum(c)`` (``c`` None means one per row: a plain mean).

    flexnet's losses are known here; a loss of your own takes part by defining
    ``row_losses(z, y)`` returning the same pair.
    """
    own = getattr(loss_fn, "row_losses", None)
    if callable(own):
        return own(z, y)
    kind = type(loss_fn)
    y = np.asarray(y)
    if kind is SoftmaxCrossEntropy:
        return _cross_entropy_rows(loss_fn, z, y)
    if kind is BCEWithLogits:
        y = y.reshape(z.shape)
        e = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))  # (N, K), as the loss computes it
        return e.mean(axis=1), None
    if kind in (MSE, L1, Huber):
        d = z - y.reshape(z.shape)
        if kind is MSE:
            e = d * d
        elif kind is L1:
            e = np.abs(d)
        else:
            a, delta = np.abs(d), loss_fn.delta
            e = np.where(a <= delta, 0.5 * d * d, delta * (a - 0.5 * delta))
        return e.mean(axis=1), None
    raise TypeError(f"sample_weight: {kind.__name__} does not say what each row's loss is; give it a "
                    "method row_losses(z, y) -> (per-row losses, None) to train it with sample weights")


def _cross_entropy_rows(loss_fn, z, y):
    logp = log_softmax(z)  # (N, C)
    n, c = z.shape
    eps = loss_fn.label_smoothing
    w = loss_fn.class_weights
    if y.ndim == 2:  # target rows: a plain mean over rows
        q = y if w is None and eps == 0 else (y * (1 - eps) + eps / c) * (1.0 if w is None else w)
        return -(q * logp).sum(axis=1), None
    nll = -logp[np.arange(n), y]
    if w is None and eps == 0:
        return nll, None
    w = np.ones(c) if w is None else w
    wy = w[y]  # the class weight of each row's label: the mean's divisor
    return (1 - eps) * wy * nll - (eps / c) * (logp @ w), wy


def weighted_loss(loss_fn, z, y, w: np.ndarray, loss: float) -> tuple[float, np.ndarray | None, float]:
    """The weighted mean loss of one batch, the factor for each row of the
    loss's gradient, and the batch's total weight.

    ``loss`` is ``loss_fn.forward(z, y)``, already computed. Weights equal
    across the batch change nothing: ``(loss, None, sum(w))``. A batch whose
    weights are all 0 gives ``(0.0, None, 0.0)``: there is nothing to learn from it.
    """
    total = float(w.sum())
    if total == 0:
        return 0.0, None, 0.0
    if (w == w[0]).all():
        return loss, None, total
    # The batch's weights by a power of two, its largest in [0.5, 1): the same ratios,
    # exactly, and a batch of tiny weights (1e-320) beside larger ones elsewhere
    # cannot overflow the gradient's scale below.
    w = np.ldexp(w, -np.frexp(w.max())[1])
    u, c = row_losses(loss_fn, z, y)
    keep = w > 0  # a row of weight 0 is not there, even if its loss is infinite
    u, wk = u[keep], w[keep]
    if c is None:
        divisor, weighted_divisor = len(w), float(w.sum())
    else:
        divisor, weighted_divisor = float(np.sum(c)), float(np.sum(w * c))
        if weighted_divisor == 0:
            return 0.0, None, 0.0
    value = float(np.dot(wk, u) / weighted_divisor)
    return value, w * (divisor / weighted_divisor), total

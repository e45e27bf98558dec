"""Scoring a network on data, and the checks that data passes before fit or evaluate use it.

``prepare_xy`` is the boundary where data comes into training: it checks the
whole of ``X`` and ``y`` once (shapes, NaN and infinity, every class id
against the network's outputs), so the loop's batches need no check of their own.
"""

from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..data.sources import Rows, as_rows, is_npy_path, is_streamed, open_npy
from ..nn.checks import as_input, check_finite_rows, check_labels
from ..nn.losses import SoftmaxCrossEntropy
from .weights import check_sample_weight, row_losses

#: Rows per forward pass when evaluating (bounds memory, not results).
EVAL_CHUNK = 4096



def largest_product(net, rows: int) -> int:
    """Multiply-adds of the largest matrix product a pass over ``rows`` rows makes
    (rows x the size of each 2-D weight): what the BLAS thread count depends on."""
    return max((rows * math.prod(p.shape) for p in net.parameters().values() if p.ndim == 2), default=0)

def prepare_xy(net, X, y, where: str):
    """Validate ``(X, y)`` for ``net`` once; returns arrays ready for the loop.

    Returns ``(X, y, y_ids)``: X as a C-contiguous array of the network's
    dtype, y as the loss wants it (class ids as int64, dense targets in the
    network's dtype) and ``y_ids``, the class of each row comparable with
    ``loss.predict`` (None for regression).

    ``X`` may also be an array that is not in memory (a memmap, a ``.npy``
    path, a Dask array: :mod:`flexnet.data.sources`); it is returned as a
    :class:`~flexnet.data.sources.Rows` and checked a block at a time, never
    read whole. ``y``, a small array beside it, is brought into memory.
    """
    streamed = is_streamed(X)
    if streamed:
        X = as_rows(X, net.dtype, f"{where}(X)")
        check_finite_blocks(X, f"{where}(X)")
        y = labels_in_memory(y, f"{where}(y)")
    else:
        X = as_input(X, net.dtype, f"{where}(X)")
        X = np.ascontiguousarray(X)
        check_finite_rows(X, f"{where}(X)")
        y = labels_in_memory(y, f"{where}(y)")
    if y.ndim == 0 or len(y) != len(X):
        got = f"{len(y)} rows" if y.ndim else "a scalar"
        raise ValueError(f"{where}: X has {len(X)} rows but y has {got}; they must match")
    z_probe = net.forward(X[:2])  # shape errors name the layer
    loss_fn = net.loss_fn
    if y.dtype.kind == "f":
        check_finite_rows(y, f"{where}(y)")
    # The loss's own checks (label range, shapes), applied to every row at once.
    if isinstance(loss_fn, SoftmaxCrossEntropy) and y.ndim == 1:
        # Class ids: their check needs no (N, C) array of outputs, which would
        # be the largest temporary of a whole run; the loss's other checks
        # (class weights against the outputs) see the first rows.
        check_labels(y, len(X), z_probe.shape[1], loss_fn.where())
        loss_fn.forward(np.zeros((min(len(X), EVAL_CHUNK),) + z_probe.shape[1:], net.dtype), y[:EVAL_CHUNK])
    elif streamed:  # the same checks, a block of rows at a time
        for start in range(0, len(X), EVAL_CHUNK):
            part = y[start:start + EVAL_CHUNK]
            loss_fn.forward(np.zeros((len(part),) + z_probe.shape[1:], dtype=net.dtype), part)
    else:
        loss_fn.forward(np.zeros((len(X),) + z_probe.shape[1:], dtype=net.dtype), y)
    if loss_fn.is_classifier and y.ndim == 1 and z_probe.shape[1] > 1:  # class ids
        if y.dtype.kind in "fb":
            y = y.astype(np.int64)  # whole-number floats, as loaded from CSV
    elif y.dtype != net.dtype:
        y = y.astype(net.dtype)  # dense targets: converted once here, not in every batch
    y = np.ascontiguousarray(y)
    y_ids = None
    if loss_fn.is_classifier:
        pred = np.asarray(loss_fn.predict(z_probe))
        if pred.ndim == 1:
            if y.ndim == 1:
                y_ids = y  # the same array: the loop then gathers labels once per batch
            else:
                y_ids = y.argmax(axis=1) if y.shape[1] > 1 else y.reshape(len(y))
        else:
            y_ids = y.reshape(len(y), -1)
    return X, y, y_ids


def check_finite_blocks(X: Rows, where: str) -> None:
    """:func:`~flexnet.nn.checks.check_finite_rows` for rows not in memory, a block at a time."""
    for start, block in X.blocks():
        try:
            check_finite_rows(block, where)
        except ValueError:
            bad = int(np.flatnonzero(~np.isfinite(block.reshape(len(block), -1)).all(axis=1))[0])
            raise ValueError(f"{where}: row {start + bad} holds NaN or infinity; clean or drop it first") from None
        del block  # before the next block is read: one block in memory at a time


def labels_in_memory(y, where: str) -> np.ndarray:
    """Labels or targets as a NumPy array: a Dask array is computed, a ``.npy`` path opened
    (labels are a small part of the data beside the inputs)."""
    if isinstance(y, Rows):
        return y[:]
    if type(y).__module__.split(".")[0] == "dask" and hasattr(y, "compute"):
        return np.asarray(y.compute())
    if is_npy_path(y):
        return open_npy(y, where)
    try:
        return np.asarray(y)
    except (TypeError, ValueError, RuntimeError) as exc:  # ragged lists; a tensor on a GPU or one that requires grad
        kind = ValueError if isinstance(exc, ValueError) else TypeError
        raise kind(f"{where}: expected an array of labels or targets, got {type(y).__name__} ({exc})") from exc


def outputs(net, X: np.ndarray) -> np.ndarray:
    """Inference-mode outputs for every row, computed in chunks (``X`` may be
    :class:`~flexnet.data.sources.Rows`: then only a chunk is in memory at a time)."""
    if len(X) <= EVAL_CHUNK:
        return ops.to_numpy(net.forward(X if isinstance(X, np.ndarray) else X[:]))
    return np.concatenate([ops.to_numpy(net.forward(X[i:i + EVAL_CHUNK])) for i in range(0, len(X), EVAL_CHUNK)])


def loss_and_accuracy(net, X, y, y_ids, sample_weight=None) -> tuple[float, float | None]:
    """The loss and the accuracy (None for regression) on every row; with
    ``sample_weight`` (checked already) both are weighted means."""
    z = outputs(net, X)
    loss = net.loss_fn.forward(z, y)
    if sample_weight is not None:
        loss = weighted_mean_loss(net.loss_fn, z, y, sample_weight)
    if y_ids is None:
        return loss, None
    pred = np.asarray(net.loss_fn.predict(z))
    if sample_weight is not None:
        hit = (pred == y_ids).reshape(len(pred), -1).mean(axis=1)
        return loss, float(np.dot(sample_weight, hit) / sample_weight.sum())
    return loss, float(np.count_nonzero(pred == y_ids) / pred.size)


def weighted_mean_loss(loss_fn, z, y, w) -> float:
    """``sum w_i u_i / sum w_i c_i`` over every row (see :mod:`flexnet.training.weights`)."""
    u, c = row_losses(loss_fn, z, y)
    keep = w > 0
    divisor = w.sum() if c is None else np.dot(w, c)
    if divisor == 0:
        return float("nan")  # only rows of a class weighted 0 by the loss: undefined
    return float(np.dot(w[keep], u[keep]) / divisor)


def evaluate(net, X, y, sample_weight=None) -> dict:
    """Score ``net`` on ``(X, y)`` in inference mode.

    With ``sample_weight`` (one weight >= 0 per row, as scikit-learn's
    ``score(X, y, sample_weight)``), every number is weighted: the loss is the
    weighted mean, and each row adds its weight, not 1, to the confusion
    matrix, from which accuracy, precision, recall, f1 and support follow (as
    ``sklearn.metrics.confusion_matrix(sample_weight=)``); mae and rmse are
    weighted means.

    Returns a JSON-friendly dict. Classifiers: ``loss``, ``accuracy``,
    per-class ``precision``, ``recall``, ``f1`` and ``support`` (lists indexed
    by class id), their unweighted means ``macro_precision``/``macro_recall``/
    ``macro_f1``, and ``confusion`` (rows: true class, columns: predicted).
    A class never predicted gets precision 0. Regression: ``loss``, ``mae``
    and ``rmse`` over every output.

    Shapes:
        X: (N, in_features); y: class ids (N,), one-hot (N, C) or targets.
    """
    X, y, y_ids = prepare_xy(net, X, y, "evaluate")
    w = check_sample_weight(sample_weight, len(X), "evaluate(sample_weight)")
    z = outputs(net, X)
    result = {"loss": float(net.loss_fn.forward(z, y))}
    if w is not None:
        result["loss"] = weighted_mean_loss(net.loss_fn, z, y, w)
    if y_ids is None:
        pred = np.asarray(net.loss_fn.predict(z), dtype=np.float64)
        err = pred.reshape(len(pred), -1) - y.reshape(len(y), -1).astype(np.float64)
        if w is not None:
            row_w = w / w.sum()
            result["mae"] = float(np.dot(row_w, np.abs(err).mean(axis=1)))
            result["rmse"] = float(np.sqrt(np.dot(row_w, (err ** 2).mean(axis=1))))
            return result
        result["mae"] = float(np.abs(err).mean())
        result["rmse"] = float(np.sqrt((err ** 2).mean()))
        return result
    pred = np.asarray(net.loss_fn.predict(z))
    # One class per row from a softmax; otherwise each output is a yes/no answer.
    n_classes = z.shape[1] if pred.ndim == 1 and z.shape[1] > 1 else 2
    per_row = pred.size // len(pred)
    pred = pred.reshape(-1).astype(np.int64)
    true = np.rint(np.asarray(y_ids)).reshape(-1).astype(np.int64)
    counts = None if w is None else np.repeat(w, per_row)  # each label of a row weighs the row's weight
    confusion = np.bincount(true * n_classes + pred, weights=counts, minlength=n_classes * n_classes)
    confusion = confusion.reshape(n_classes, n_classes)  # (true, predicted)
    tp = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros(n_classes), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n_classes), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n_classes), where=denom > 0)
    result.update(
        accuracy=float(tp.sum() / confusion.sum()),
        precision=precision.tolist(), recall=recall.tolist(), f1=f1.tolist(),
        support=support.tolist(),
        macro_precision=float(precision.mean()), macro_recall=float(recall.mean()),
        macro_f1=float(f1.mean()),
        confusion=confusion.tolist(),
    )
    return result

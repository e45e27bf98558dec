"""The fit loop: mini-batch training with validation, callbacks and checkpoints.

``fit`` checks the whole data set once, then runs a tight loop in which each
batch is gathered by index into a reused buffer (:meth:`FitLoop._train_batch`
is the one place a batch is trained). Everything random comes from generators
that a checkpoint saves, so a resumed run ends bit-identical to one that was
never stopped.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import time
import warnings
import zlib

import numpy as np

from .. import ops
from ..data.sources import Rows, window_order
from ..files.model_file import non_finite
from ..filesystem import check_writable
from ..nn.checks import check_lr, check_positive_int
from ..nn.losses import L1, MSE, BCEWithLogits, Huber, SoftmaxCrossEntropy
from ..nn.normalization import BatchNorm1d
from ..ops import threads as blas_threads
from .callbacks import (
    PROGRESS_LINES,
    Callback,
    EarlyStopping,
    History,
    LRSchedulerCallback,
    ProgressBar,
    uses_batch_hooks,
)
from .checkpoint import SignalsToFlag, TrainingInterrupted, load_checkpoint, save_checkpoint
from .diagnostics import DIAG_ROWS, Diagnostics  # noqa: F401  (DIAG_ROWS: found here in 0.1)
from .evaluation import EVAL_CHUNK, evaluate, largest_product, loss_and_accuracy, prepare_xy  # noqa: F401  (EVAL_CHUNK: too)
from .notebook import progress_class, progress_kind
from .weights import check_sample_weight, weighted_loss

__all__ = [
    "Callback",
    "EarlyStopping",
    "FitLoop",
    "History",
    "LRSchedulerCallback",
    "TrainingDiverged",
    "TrainingInterrupted",
    "evaluate",
    "fit",
]



class TrainingDiverged(ArithmeticError):
    """The loss became NaN or infinite (the weights from before that batch are
    kept), or an update left a weight NaN or infinite (found at the end of the
    epoch, or before a checkpoint would have saved it).

    Attributes: ``epoch``, ``batch`` (both from 1) and ``loss`` (the last batch
    loss; NaN when unknown).
    """

    def __init__(self, message: str, epoch: int, batch: int, loss: float):
        super().__init__(message)
        self.epoch, self.batch, self.loss = epoch, batch, loss


# -- checks done once per fit ------------------------------------------------


def _check_batchnorm_batches(net, n: int, batch_size: int) -> None:
    """Refuse, before any training, a run whose last batch would hold a single
    row: batch statistics need at least two, and failing mid-epoch would leave
    the weights half-trained."""
    if min(n, batch_size) != 1 and n % batch_size != 1:
        return
    for layer in net.layers:
        if isinstance(layer, BatchNorm1d):
            if n < 2:
                raise ValueError(f"fit: {layer.where()} needs at least 2 training rows, got {n}")
            better = next(b for b in range(max(batch_size, 2), n + 2) if n % b != 1)
            raise ValueError(
                f"fit: with {n} training rows and batch_size={batch_size} a batch holds a single "
                f"row, but {layer.where()} needs at least 2 rows when training; choose a "
                f"batch_size that leaves a remainder other than 1 (e.g. {better})"
            )


def _stratified_split(n: int, y_ids, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of the validation rows; each class keeps its share in both parts."""
    if y_ids is None or y_ids.ndim != 1:
        groups = [np.arange(n)]
    else:
        groups = [np.flatnonzero(y_ids == c) for c in np.unique(y_ids)]
    val = []
    for idx in groups:
        idx = rng.permutation(idx)
        val.append(idx[: int(round(fraction * len(idx)))])
    val_idx = np.sort(np.concatenate(val))
    if len(val_idx) == 0 or len(val_idx) == n:
        raise ValueError(
            f"fit(validation_split={fraction}): leaves {n - len(val_idx)} training and "
            f"{len(val_idx)} validation rows out of {n}; pick a fraction that keeps both non-empty"
        )
    return val_idx


def _make_optimizer(optimizer, lr, scheduler):
    if optimizer is None and scheduler is not None and getattr(scheduler, "optimizer", None) is not None:
        return scheduler.optimizer
    if optimizer is None or isinstance(optimizer, str):
        from ..optim import SGD, make_optimizer

        lr = check_lr(lr, "fit(lr)")
        return SGD(lr=lr) if optimizer is None else make_optimizer(optimizer, lr=lr)
    if not callable(getattr(optimizer, "step", None)):
        raise TypeError(
            "fit(optimizer): expected a flexnet.optim optimizer or a name such as 'adam', "
            f"got {type(optimizer).__name__}"
        )
    sched_opt = getattr(scheduler, "optimizer", None)
    if sched_opt is not None and sched_opt is not optimizer:
        raise ValueError(
            "fit: the scheduler was built for a different optimizer than fit(optimizer=); "
            "build the schedule with the same optimizer object"
        )
    return optimizer


def _two_generators(seed) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the validation split and the shuffling."""
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2**63))
    elif seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"fit(seed): expected an int, None or np.random.Generator, got {seed!r}")
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))


def _arguments(optimizer, scheduler, seed, validation_split) -> dict:
    """What a fit was given that its checkpoints keep, so a resume given other
    values is refused (see :mod:`flexnet.training.checkpoint`). ``lr`` is the
    rate the run started from: the schedule's ``base_lr``, since a schedule
    changes the optimizer's own as it goes. None where there is nothing to
    compare (a Generator for a seed, no split, an optimizer without ``lr``)."""
    lr = getattr(scheduler, "base_lr", None) if scheduler is not None else getattr(optimizer, "lr", None)
    whole = isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
    return {"lr": float(lr) if isinstance(lr, (int, float)) and not isinstance(lr, bool) else None,
            "seed": int(seed) if whole else None,
            "validation_split": float(validation_split) if validation_split else None}


def _parse_shuffle(shuffle) -> tuple[bool | str, int]:
    """``shuffle`` -> ``(setting, window)``: True, False, or ``"window:K"`` with its K chunks."""
    if isinstance(shuffle, (bytes, bytearray)):  # a spelling, which bool() would read as True
        raise TypeError(f"fit(shuffle): expected True, False, 'window' or 'window:K' as text, got {shuffle!r}")
    if isinstance(shuffle, str):
        m = re.fullmatch(r"\s*window\s*(?::\s*(\d+)\s*)?", shuffle)
        if not m or (m.group(1) is not None and int(m.group(1)) <= 0):
            raise ValueError(f"fit(shuffle): expected True, False, 'window' or 'window:K' (K chunks, "
                             f"K >= 1), got {shuffle!r}")
        k = int(m.group(1) or WINDOW_CHUNKS)
        return f"window:{k}", k
    return bool(shuffle), 0


#: Chunks per window of ``fit(shuffle="window")``.
WINDOW_CHUNKS = 4
#: flexnet's losses of dense targets, whose every target ``fit`` checks before its loop
#: (and SoftmaxCrossEntropy's (N, C) targets); a subclass keeps its own ``forward``
#: (which may check more) in every batch.
TARGET_LOSSES = (MSE, L1, Huber, BCEWithLogits)


def _parse_every(every) -> tuple[int, int]:
    """``checkpoint_every`` -> ``(epochs, batches)``, one of them 0."""
    if isinstance(every, str):
        m = re.fullmatch(r"\s*(\d+)\s*(epochs?|batch(?:es)?|steps?)\s*", every)
        if not m or int(m.group(1)) <= 0:
            raise ValueError(
                f"fit(checkpoint_every): expected a positive number of epochs, or a string "
                f"such as '5 epochs' or '100 batches', got {every!r}"
            )
        n = int(m.group(1))
        return (n, 0) if m.group(2).startswith("epoch") else (0, n)
    return check_positive_int(every, "fit(checkpoint_every)"), 0


def _progress_factory(progress):
    """A tqdm constructor, or None when the bar should stay quiet: a text bar on a
    terminal, a widget in a notebook (:func:`flexnet.training.notebook.progress_kind`)."""
    if isinstance(progress, str):  # "run" or "epoch": a bar, however many lines it leaves
        progress = True
    return progress_class(progress_kind(progress))


# -- the loop ----------------------------------------------------------------


class FitLoop:
    """One training run; :func:`fit` builds and runs it.

    Callbacks reach it as ``self.loop``: ``net``, ``optimizer``, ``history``,
    ``epoch`` (completed epochs) and ``stop_training`` (set True to stop
    after the current epoch).
    """

    def __init__(self, net, X, y, *, epochs, batch_size, optimizer, lr, validation_data,
                 validation_split, shuffle, callbacks, scheduler, seed, progress,
                 diagnostics, checkpoint, checkpoint_every, threads=None, sample_weight=None):
        self.net = net
        self.threads = None if threads is None else check_positive_int(threads, "fit(threads)")
        self.epochs = check_positive_int(epochs, "fit(epochs)")
        self.batch_size = check_positive_int(batch_size, "fit(batch_size)")
        self.shuffle, self.window = _parse_shuffle(shuffle)
        X, y, y_ids = prepare_xy(net, X, y, "fit")
        self.full_weight = self.w = check_sample_weight(sample_weight, len(X), "fit(sample_weight)")
        self.wv = None  # the validation rows' weights
        if self.window and not isinstance(X, Rows):
            raise ValueError(f"fit(shuffle={shuffle!r}): a windowed shuffle permutes the chunks of data that "
                             "is not in memory (a Dask array, a memmap or a .npy path); for an in-memory "
                             "array use shuffle=True")
        split_rng, self.shuffle_rng = _two_generators(seed)
        self.val_index = None
        if validation_data is not None and validation_split:
            raise ValueError("fit: pass validation_data or validation_split, not both")
        self.Xv = self.yv = self.yv_ids = None
        self.full_data = (X, y, y_ids)  # every row, before any validation split
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3)):
                raise TypeError("fit(validation_data): expected a pair (X_val, y_val) or a triple "
                                "(X_val, y_val, sample_weight_val)")
            self.Xv, self.yv, self.yv_ids = prepare_xy(net, *validation_data[:2], "fit(validation_data)")
            if len(validation_data) == 3:
                self.wv = check_sample_weight(validation_data[2], len(self.Xv),
                                              "fit(validation_data) sample_weight_val")
        elif validation_split:
            frac = float(validation_split)
            if not 0.0 < frac < 1.0:
                raise ValueError(
                    f"fit(validation_split): expected a fraction in (0, 1), got {validation_split!r}")
            X, y, y_ids = self.use_split(_stratified_split(len(X), y_ids, frac, split_rng))
        self.X, self.y, self.y_ids = X, y, y_ids
        if self.w is not None and self.val_index is not None:
            for part, w in (("training", self.w), ("validation", self.wv)):
                if not w.any():
                    raise ValueError(f"fit(sample_weight): every {part} row of validation_split="
                                     f"{validation_split} has weight zero; give some of them a weight > 0")
        if self.window:
            # a window's chunks stay computed while its batches run (and a batch
            # across two windows finds the chunks of both)
            X.cache_chunks(2 * self.window)
        self.n = len(X)
        self.n_batches = -(-self.n // self.batch_size)
        _check_batchnorm_batches(net, self.n, self.batch_size)
        self.optimizer = _make_optimizer(optimizer, lr, scheduler)
        self.arguments = _arguments(self.optimizer, scheduler, seed, validation_split)
        self.callbacks = list(callbacks or ())
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"fit(callbacks): expected flexnet Callback objects, got {type(cb).__name__}")
        if scheduler is not None:
            self.callbacks.append(LRSchedulerCallback(scheduler))
        for cb in self.callbacks:
            cb.set_context(net, self)
        self.batch_callbacks = [cb for cb in self.callbacks if uses_batch_hooks(cb)]
        self.progress = _progress_factory(progress)
        self.progress_lines = progress if isinstance(progress, str) else "run"
        if self.progress_lines not in PROGRESS_LINES:
            raise ValueError(f"fit(progress): expected True, False, None, 'run' or 'epoch', got {progress!r}")
        self.bar = None  # the ProgressBar, drawn from the first epoch on
        self.diag = Diagnostics(net) if diagnostics else None
        self.checkpoint = checkpoint
        self.ckpt_epochs, self.ckpt_batches = _parse_every(checkpoint_every)
        self.history = History(params={
            "epochs": self.epochs, "batch_size": self.batch_size,
            "n_train": self.n, "n_val": 0 if self.Xv is None else len(self.Xv),
        })
        # Where the run stands; a checkpoint saves exactly these.
        self.epoch = 0  # completed epochs
        self.step = 0  # batches done in the current epoch
        self.global_step = 0
        self.perm: np.ndarray | None = None
        self.sums = {"loss": 0.0, "correct": 0, "count": 0, "time": 0.0}
        self.stop_training = False
        self.interrupt_requested = False  # set by Ctrl-C or SIGTERM (checkpoint.SignalsToFlag)
        self.resumed = False  # True once a checkpoint was loaded
        self._saved_mark = None  # (epoch, step, stop_training) of the last checkpoint written
        # Reused batch buffers: gathering by index never allocates per batch.
        bs = min(self.batch_size, self.n)
        self._xbuf = np.empty((bs,) + X.shape[1:], dtype=X.dtype)
        self._ybuf = np.empty((bs,) + y.shape[1:], dtype=y.dtype)
        # prepare_xy checked every class id against the outputs: int64 ids
        # (NumPy's default) need no check per batch; other dtypes take the full one
        self.labels_checked = y.ndim == 1 and y.dtype == np.int64
        # and targets (regression, yes/no labels), which prepare_xy gave the network's dtype:
        # the loss class that checked them, if it is one of flexnet's (else None)
        kind = type(net.loss_fn)
        dense = not self.labels_checked and y.dtype == net.dtype and (
            kind in TARGET_LOSSES or kind is SoftmaxCrossEntropy and y.ndim == 2)  # one-hot rows, distributions
        self.targets_checked = kind if dense else None
        self._idbuf = None
        if y_ids is not None and y_ids is not y:
            self._idbuf = np.empty((bs,) + y_ids.shape[1:], dtype=y_ids.dtype)
        self._wbuf = None if self.w is None else np.empty(bs)  # a batch's sample weights
        # Buffers (running statistics) change in a training forward; keep a
        # copy so a diverged batch can be undone.
        self._buffer_backup = [(layer, attr, ops.copy(getattr(layer, attr)))
                               for layer in net.layers for attr in layer.buffers]

    @functools.cached_property
    def data_crc(self) -> str:
        """A checksum of the whole training data (X, y and any sample weights), so
        a resume with other data is refused. Computed only when a checkpoint is
        written or read: a pass over every byte is a noticeable part of a short run."""
        return _fingerprint(*self.full_data[:2], self.full_weight)

    def use_split(self, val_index: np.ndarray):
        """Hold out rows ``val_index`` of the data for validation; returns the
        training part ``(X, y, y_ids)``."""
        X, y, y_ids = self.full_data
        train_idx = np.setdiff1d(np.arange(len(X)), val_index)
        self.val_index = val_index
        self.Xv, self.yv = X[val_index], y[val_index]
        self.yv_ids = None if y_ids is None else y_ids[val_index]
        self.X, self.y = X[train_idx], y[train_idx]
        self.y_ids = None if y_ids is None else (self.y if y_ids is y else y_ids[train_idx])
        if self.full_weight is not None:
            self.wv, self.w = self.full_weight[val_index], self.full_weight[train_idx]
        return self.X, self.y, self.y_ids

    def _move_data(self):
        """For a network on another array library: ``(namespace, X, y)``, the training
        data moved to the network's device once for the whole fit (``X`` None when it
        streams from disk: it then moves batch by batch; ``y`` None unless it holds
        class ids, which the loss takes on the device). None for a NumPy network."""
        net = self.net
        if net.backend == "numpy":
            return None
        if self.w is not None or self.diag is not None:
            raise ValueError(f"fit: sample_weight and diagnostics need a NumPy network, and this one is "
                             f"on {net.backend!r}; bring it back with net.to('numpy') first")
        space = ops.namespace(net.backend)
        X = None if isinstance(self.X, Rows) else ops.move(self.X, space, net.device)
        ids = self.labels_checked and type(net.loss_fn) is SoftmaxCrossEntropy
        return space, X, ops.move(self.y, space, net.device) if ids else None

    def _device_batch(self, idx: np.ndarray):
        """Rows ``idx`` of the data on the network's device: only the row numbers move."""
        space, X, y = self.device_data
        where = self.net.device
        rows = space.asarray(idx, device=where)
        xb = ops.move(self.X.take(idx, axis=0), space, where) if X is None else space.take(X, rows, axis=0)
        return xb, (self.y.take(idx, axis=0) if y is None else space.take(y, rows, axis=0))

    # -- one batch: the hot path -------------------------------------------------

    def _train_batch(self, idx: np.ndarray) -> float:
        """Forward, loss, backward and one optimizer step on rows ``idx``.

        Returns the batch loss. If it is NaN or infinite, nothing is updated
        and the caller raises :class:`TrainingDiverged`.
        """
        m = len(idx)
        if self.device_data is None:
            # (the methods, not np.take: its wrapper costs as much as taking 16 rows)
            xb = self.X.take(idx, axis=0, out=self._xbuf[:m], mode="clip")  # (m, D)
            yb = self.y.take(idx, axis=0, out=self._ybuf[:m], mode="clip")
            for layer, attr, backup in self._buffer_backup:
                np.copyto(backup, getattr(layer, attr))
        else:  # another array library: the batch is gathered on its device
            xb, yb = self._device_batch(idx)
            for layer, attr, backup in self._buffer_backup:
                backup[...] = getattr(layer, attr)  # in place, as np.copyto above: no new arrays per batch
        z = xb
        for layer in self.net.layers:
            z = layer.forward(z, True)
        loss_fn = self.net.loss_fn
        kind = type(loss_fn)  # flexnet's own loss, with its own forward: every label was checked before the loop
        if ((self.labels_checked and kind is SoftmaxCrossEntropy
                or kind is self.targets_checked and ops.dtype(z) == yb.dtype)  # targets in the outputs' dtype
                and "forward" not in vars(loss_fn)):
            loss = loss_fn.forward(z, yb, checked=True)
        else:
            loss = loss_fn.forward(z, yb)
        count, scale = m, None
        if self.w is not None:  # sample weights (flexnet.training.weights): the epoch counts weight, not rows
            wb = self.w.take(idx, out=self._wbuf[:m], mode="clip")
            loss, scale, count = weighted_loss(loss_fn, z, yb, wb, loss)
            if count == 0:  # a batch of weight 0 teaches nothing
                return loss
        if not math.isfinite(loss):
            return loss
        if self.y_ids is not None:
            ids = yb  # class ids are the labels themselves, unless y is one-hot
            if self._idbuf is not None:
                ids = self.y_ids.take(idx, axis=0, out=self._idbuf[:m], mode="clip")
            pred = loss_fn.predict(z)
            if self.device_data is not None:  # compared in the network's library, in the predictions' dtype
                ids = ops.astype(ops.like(ids, pred), ops.dtype(pred))
            hit = pred == ids
            if self.w is None:
                self.sums["correct"] += ops.count_nonzero(hit)
            else:
                self.sums["correct"] += float(np.dot(wb, hit if hit.ndim == 1 else hit.sum(axis=1)))
        grad = None
        if scale is not None:  # the loss's gradient with each row scaled by its weight's share
            grad = loss_fn.backward()
            grad *= scale.astype(grad.dtype).reshape((-1,) + (1,) * (grad.ndim - 1))
        self.net.backward(grad)
        if self.diag is not None:
            self.diag.after_backward(self.step == self.n_batches - 1)
        self.optimizer.step(self.net)
        self.sums["loss"] += loss * count
        self.sums["count"] += count
        return loss

    def _diverged(self, loss: float, epoch: int) -> TrainingDiverged:
        for layer, attr, backup in self._buffer_backup:
            setattr(layer, attr, ops.copy(backup))
        batch = self.step + 1
        kept = "The weights from before this batch are kept."
        if any(non_finite(name, p) for name, p, _ in self.net.named_parameters()):
            # The loss was finite, but the update after it overflowed; checking
            # every weight after every step would cost a pass over all of them.
            kept = ("The weights were already non-finite before this batch: the previous "
                    "update overflowed.")
        return TrainingDiverged(
            f"training diverged at epoch {epoch}, batch {batch} of {self.n_batches}: the loss is "
            f"{loss}. {kept} {self._causes()}",
            epoch, batch, loss,
        )

    def _check_weights(self, epoch: int, loss: float = math.nan) -> None:
        """Raise :class:`TrainingDiverged` when a parameter or buffer holds NaN or infinity.

        Each batch's loss is checked before its update, so a non-finite weight
        can only come from an update that overflowed; the next batch's loss
        finds it, but the epoch's last update has no next batch. So once per
        epoch, and before every checkpoint, one vectorised pass over the
        weights makes sure ``fit`` never returns, nor saves, what cannot predict.
        """
        net = self.net
        if self._weights_finite():
            return
        arrays = [(name, p) for name, p, _ in net.named_parameters()] + list(net.named_buffers())
        bad = [text for name, arr in arrays if (text := non_finite(name, arr))]
        if not bad:
            return
        more = len(bad) - 3
        listed = "; ".join(bad[:3]) + (f"; and {more} more array{'s' * (more > 1)}" if more > 0 else "")
        raise TrainingDiverged(
            f"training diverged at epoch {epoch}, batch {self.step} of {self.n_batches}: the loss "
            f"was finite, but an update overflowed and the weights are no longer finite ({listed}). "
            f"They cannot be used, and no checkpoint holds them. {self._causes()}",
            epoch, self.step, loss,
        )

    def _weights_finite(self) -> bool:
        """True when every parameter and buffer is a NumPy array with a finite sum
        (NaN and infinity propagate): one reduction per array, no temporaries."""
        with np.errstate(over="ignore", invalid="ignore"):
            for layer in self.net.layers:
                for attr in layer.params + layer.buffers:
                    a = getattr(layer, attr)
                    if type(a) is not np.ndarray or not math.isfinite(np.add.reduce(a, axis=None)):
                        return False  # or a sum that overflowed: non_finite looks closer
        return True

    def _causes(self) -> str:
        lr = getattr(self.optimizer, "lr", None)
        return (f"Usual causes: a learning rate too high (lr={lr}; try 10x smaller), inputs that are "
                "not scaled (standardise them or scale them to [0, 1]), or labels/targets far from "
                "the outputs' range.")

    # -- epochs --------------------------------------------------------------------

    def thread_count(self) -> int | None:
        """The BLAS threads this run trains with: ``fit(threads=)``; else, on
        resume, the count the run was written with (None for a checkpoint of
        0.1, which left the BLAS library's default); else
        :func:`flexnet.ops.threads.choose` for the largest matrix product of a step."""
        if self.threads is not None:
            return self.threads
        if self.resumed:
            return self.history.params.get("threads")
        return blas_threads.choose(largest_product(self.net, min(self.batch_size, self.n)))

    def run(self) -> History:
        self.device_data = self._move_data()
        count = self.thread_count()
        self.history.params["threads"] = count
        with blas_threads.limited(count):
            return self._run()

    def _run(self) -> History:
        try:
            try:
                for cb in self.callbacks:
                    cb.on_train_begin({"epoch": self.epoch, "step": self.step, "resumed": self.resumed})
                with SignalsToFlag(self if self.checkpoint is not None else None):
                    while self.epoch < self.epochs and not self.stop_training:
                        self._run_epoch(self.epoch + 1)
                        if self.checkpoint is not None and self.ckpt_epochs and self.epoch % self.ckpt_epochs == 0:
                            self.save_checkpoint()
                    if self.checkpoint is not None:
                        self.save_checkpoint()
            finally:
                if self.bar is not None:  # its last line stays
                    self.bar.close()
            logs = {"epoch": self.epoch}
            for cb in self.callbacks:
                cb.on_train_end(logs)
        except BaseException as exc:  # loggers close their files whatever ended the run
            for cb in self.callbacks:
                try:
                    cb.on_exception(exc, {"epoch": self.epoch})
                except Exception as inner:  # the run's own error is the one to report
                    warnings.warn(f"fit: {type(cb).__name__}.on_exception failed too ({inner!r}) "
                                  f"while fit was stopping for {type(exc).__name__}", RuntimeWarning,
                                  stacklevel=2)
            raise
        return self.history

    def _run_epoch(self, epoch: int) -> None:
        started = time.perf_counter()
        if self.step == 0:
            self.perm = self._epoch_order()
            self.sums = {"loss": 0.0, "correct": 0, "count": 0, "time": 0.0}
            for cb in self.callbacks:
                cb.on_epoch_begin(epoch, {"lr": self.optimizer.lr})
        lr = float(self.optimizer.lr)
        if self.progress is not None and self.bar is None:
            self.bar = ProgressBar(self.progress, epochs=self.epochs, n_batches=self.n_batches,
                                   lines=self.progress_lines, file=sys.stderr)
        bar = self.bar
        if bar is not None:
            bar.start_epoch(epoch, self.step)
        bs, perm = self.batch_size, self.perm
        if isinstance(self.X, Rows):
            self.X.plan(perm[self.step * bs:])  # data not in memory may read ahead
        loss = math.nan  # a run resumed after the epoch's last batch trains none
        try:
            for b in range(self.step, self.n_batches):
                for cb in self.batch_callbacks:
                    cb.on_batch_begin(b + 1, {"size": min(bs, self.n - b * bs)})
                loss = self._train_batch(perm[b * bs:(b + 1) * bs])
                if not math.isfinite(loss):
                    raise self._diverged(loss, epoch)
                self.step = b + 1
                self.global_step += 1
                for cb in self.batch_callbacks:
                    cb.on_batch_end(b + 1, {"loss": loss, "size": min(bs, self.n - b * bs)})
                if bar is not None:
                    bar.update(self._running_logs() if b % 10 == 0 else None)
                if self.ckpt_batches and self.global_step % self.ckpt_batches == 0:
                    self.sums["time"] += time.perf_counter() - started
                    started = time.perf_counter()
                    self.save_checkpoint()
                if self.interrupt_requested:
                    self.sums["time"] += time.perf_counter() - started
                    raise self._interrupted(epoch)
            self._check_weights(epoch, loss)
            logs = self._running_logs()
            if self.Xv is not None:
                val_loss, val_acc = loss_and_accuracy(self.net, self.Xv, self.yv, self.yv_ids, self.wv)
                logs["val_loss"] = val_loss
                if val_acc is not None:
                    logs["val_accuracy"] = val_acc
            logs["lr"] = lr
            if self.diag is not None:
                logs.update(self.diag.epoch_logs(self.X))
            logs["time"] = self.sums["time"] + time.perf_counter() - started
            if bar is not None:
                bar.end_epoch(logs)
        except BaseException:
            if bar is not None:  # the line stays, at the batch where training stopped
                bar.close()
            raise
        self.history.append(epoch, logs)
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)
        self.epoch, self.step, self.perm = epoch, 0, None
        if self.interrupt_requested:
            raise self._interrupted(epoch)

    def _epoch_order(self) -> np.ndarray:
        """The order of the training rows for a new epoch, drawn from the shuffle generator."""
        if self.window:
            return window_order(self.shuffle_rng, self.X.chunk_ids(), self.window)
        return self.shuffle_rng.permutation(self.n) if self.shuffle else np.arange(self.n)

    def _running_logs(self) -> dict:
        count = self.sums["count"] or 1  # rows, or their total weight (which may be below 1)
        logs = {"loss": self.sums["loss"] / count}
        if self.y_ids is not None:
            per_row = 1 if self.y_ids.ndim == 1 else self.y_ids.shape[1]
            logs["accuracy"] = self.sums["correct"] / (count * per_row)
        return logs

    def _interrupted(self, epoch: int) -> TrainingInterrupted:
        path = self.save_checkpoint()
        where = f"the end of epoch {self.epoch}"
        if self.step:
            where = f"epoch {self.epoch + 1}, batch {self.step}"
        return TrainingInterrupted(
            f"training interrupted at {where}; checkpoint written to {path}. "
            f"Resume with fit(..., resume={str(path)!r}) or `flexnet train --resume {path}`.",
            path, self.epoch, self.step,
        )

    # -- checkpoints -----------------------------------------------------------------

    def save_checkpoint(self):
        """Write the checkpoint unless this very state was just written; returns its path."""
        mark = (self.epoch, self.step, self.stop_training)
        if mark != self._saved_mark:
            if self.step:  # mid-epoch: never a checkpoint that cannot resume (an epoch's end was checked)
                self._check_weights(self.epoch + 1)
            save_checkpoint(self, self.checkpoint)
            self._saved_mark = mark
        return self.checkpoint

    def load_checkpoint(self, path) -> None:
        backend, device = self.net.backend, self.net.device
        if backend != "numpy":  # a checkpoint holds NumPy arrays: restored there, then moved back
            self.net.to("numpy")
        try:
            load_checkpoint(self, path)
        finally:
            if backend != "numpy":
                self.net.to(backend, device)
        self.resumed = True


def _fingerprint(X: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> str:
    """A checksum of the data (and the sample weights, if any), so a resume with
    other data is refused (the same for the same values in memory, in a memmap
    or in a Dask array)."""
    if isinstance(X, Rows):  # a block at a time: the CRC of the blocks in turn is the CRC of the whole
        crc = 0
        for _, block in X.blocks():
            crc = zlib.crc32(np.ascontiguousarray(block).view(np.uint8).reshape(-1), crc)
            del block  # one block in memory at a time
    else:
        crc = zlib.crc32(np.ascontiguousarray(X).view(np.uint8).reshape(-1))
    crc = zlib.crc32(np.ascontiguousarray(y).view(np.uint8).reshape(-1), crc)
    if w is not None:
        return f"{X.shape}/{X.dtype}/{y.shape}/{y.dtype}/{crc:08x}/weights:{zlib.crc32(w.view(np.uint8)):08x}"
    return f"{X.shape}/{X.dtype}/{y.shape}/{y.dtype}/{crc:08x}"


def fit(net, X, y, *, epochs: int = 10, batch_size: int = 32, optimizer=None, lr: float = 0.01,
        validation_data=None, validation_split: float = 0.0, shuffle: bool = True, callbacks=(),
        scheduler=None, seed=None, progress: bool | None = None, diagnostics: bool = False,
        checkpoint=None, checkpoint_every=1, resume=None, threads=None, sample_weight=None) -> History:
    """Train ``net`` on ``(X, y)`` with mini-batches; returns a :class:`History`.

    Args:
        net: a :class:`flexnet.Sequential` (or ``Network``).
        X, y: the training data; y as the network's loss wants it (class ids
            or one-hot rows for classifiers, targets for regression). X may
            live outside memory: a ``np.memmap``, the path of a ``.npy`` file
            or a Dask array (:mod:`flexnet.data.sources`); batches are then read
            as needed, never the whole array, and the weights are those of the
            same array in memory, bit for bit.
        epochs: total number of epochs (a resumed run counts the ones done).
        batch_size: rows per step; the last batch of an epoch may be smaller.
        optimizer: a :mod:`flexnet.optim` optimizer, a name such as ``"adam"``
            (built with ``lr``), or None for ``SGD(lr)`` (or the scheduler's).
        lr: learning rate when ``optimizer`` is None or a name.
        validation_data: ``(X_val, y_val)`` scored after every epoch, or
            ``(X_val, y_val, sample_weight_val)`` for a weighted ``val_loss``.
        validation_split: fraction of ``(X, y)`` held out instead (stratified
            by class for classifiers, drawn with ``seed``; the rows keep their
            ``sample_weight``).
        shuffle: draw a new order of the rows every epoch (True), keep their
            order (False), or ``"window"`` / ``"window:K"`` for data not in
            memory: permute its chunks, then the rows within each window of K
            chunks (4 by default), so only K chunks need to be computed at a
            time. Every row still comes once an epoch, in the same order for the
            same seed, but the order differs from ``True``'s: see docs/data.md.
        callbacks: :class:`Callback` objects (e.g. :class:`EarlyStopping`).
        scheduler: a learning-rate schedule stepped once per epoch
            (``ReduceLROnPlateau`` with ``val_loss``, else ``loss``).
        seed: int or None; drives the validation split and the shuffling. The
            network's own seed drives its initial weights and dropout masks.
        progress: True/False, or None for a tqdm bar only on a terminal. The
            bar leaves one line for the whole run; ``"epoch"`` draws one per
            epoch and leaves each (``"run"`` is the same as True).
        diagnostics: also record gradient norms, update-to-weight ratios and
            dead ReLUs per epoch.
        checkpoint: path of a checkpoint file to write (a safe ``.npz`` like
            model files), atomically, every ``checkpoint_every`` and at the end.
        checkpoint_every: epochs (int or ``"2 epochs"``) or ``"100 batches"``.
        resume: a checkpoint path to continue from; the same data and settings
            give weights bit-identical to a run that was never stopped. The
            checkpoint's weights, optimizer state, schedule, generators and
            history replace this call's; a setting given here that differs
            from the run's (data, ``batch_size``, ``shuffle``, ``seed``, the
            validation, the network, the optimizer and its hyper-parameters,
            ``lr``, the schedule and its settings, the stateful callbacks) is
            refused with every difference listed. ``epochs`` may differ (the
            total you want now, not fewer than done), as may ``checkpoint``,
            ``checkpoint_every``, ``progress`` and the callbacks' own options.
            The last checkpoint of a finished run resumes too (nothing is left
            to train; a schedule may have brought the lr to 0).
        threads: BLAS threads for the matrix products, or None to let flexnet
            choose (:func:`flexnet.ops.threads.choose`: one thread for the
            products of typical MLPs, more for big ones while cores are free;
            a resumed run keeps its count). The count used is in
            ``history.params["threads"]``; the same count gives the same bits.
        sample_weight: None, or one weight >= 0 per row of ``X``. Each batch
            then minimises the weighted mean of its rows' losses, as
            scikit-learn's MLP does (``sum w_i l_i / sum w_i``); ``loss`` and
            ``accuracy`` in the history are weighted means too. Equal weights
            train exactly as None does. Checkpoints keep a checksum of the
            weights: a resume needs the same ones.

    Raises:
        ValueError/TypeError: bad data or settings, before any training.
        OSError: ``checkpoint`` cannot be written (a missing folder, a read-only
            file system, a folder or a named pipe in its place), before any training.
        TrainingDiverged: the loss became NaN/inf (weights from before are kept),
            or an update left a weight NaN/inf (checked after every epoch and
            before every checkpoint): ``fit`` never returns non-finite weights.
        TrainingInterrupted: Ctrl-C or SIGTERM with ``checkpoint`` set; the
            checkpoint holds the last completed batch.

    Shapes:
        X: (N, in_features); y: (N,) class ids, (N, C) one-hot, or targets.
    """
    loop = FitLoop(net, X, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                   validation_data=validation_data, validation_split=validation_split,
                   shuffle=shuffle, callbacks=callbacks, scheduler=scheduler, seed=seed,
                   progress=progress, diagnostics=diagnostics, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every, threads=threads, sample_weight=sample_weight)
    if checkpoint is not None:  # a run whose checkpoint cannot be written fails now, not after an epoch
        check_writable(checkpoint)
    if resume is not None:
        loop.load_checkpoint(resume)
    return loop.run()

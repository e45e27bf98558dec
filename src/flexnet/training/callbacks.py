"""Training history and callbacks for :func:`flexnet.fit`.

A callback is a small object whose hooks the fit loop calls at the start and
end of training, of each epoch and (only if a callback defines them) of each
batch. Epochs and batches are counted from 1, as progress bars and error
messages show them. A callback stops training by setting
``self.loop.stop_training = True``.

Callbacks that keep state (early stopping's best value, a schedule's step
count) expose ``state_dict()`` / ``load_state_dict()``, so a checkpoint
written mid-run resumes them exactly.
"""

from __future__ import annotations

import html
import math

import numpy as np


class History:
    """What happened in each epoch of a training run.

    Attributes:
        history: dict of per-epoch lists. Always ``loss``, ``lr`` and
            ``time`` (seconds); ``accuracy`` for classifiers; ``val_loss`` and
            ``val_accuracy`` when there is validation data; with
            ``diagnostics=True`` also ``grad_norm/<param>``,
            ``update_ratio/<param>`` and ``dead_relu/<layer>``.
        epoch: the epoch numbers the lists refer to, counted from 1.
        params: the settings of the run (epochs, batch_size, n_train, n_val).
    """

    def __init__(self, history: dict | None = None, epoch=None, params: dict | None = None):
        self.history: dict[str, list] = {k: list(v) for k, v in (history or {}).items()}
        self.epoch: list[int] = list(epoch or [])
        self.params: dict = dict(params or {})

    def append(self, epoch: int, logs: dict) -> None:
        """Record one epoch's ``logs`` (metric name -> number)."""
        for key, value in logs.items():
            self.history.setdefault(key, []).append(_to_json_number(value))
        self.epoch.append(int(epoch))

    def to_dict(self) -> dict:
        """A JSON-friendly copy: ``{"history": ..., "epoch": ..., "params": ...}``."""
        return {
            "history": {k: [_to_json_number(v) for v in vals] for k, vals in self.history.items()},
            "epoch": list(self.epoch),
            "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        """Rebuild a History written by :meth:`to_dict`."""
        if not isinstance(data, dict) or "history" not in data:
            raise ValueError(
                "History.from_dict: expected a dict with keys 'history', 'epoch', 'params' "
                f"(as written by History.to_dict), got {type(data).__name__}"
            )
        return cls(data["history"], data.get("epoch"), data.get("params"))

    def __getitem__(self, key: str) -> list:
        return self.history[key]

    def __len__(self) -> int:
        return len(self.epoch)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"

    #: What :meth:`plot` draws with: :func:`flexnet.plots.history_figure`, put here when
    #: flexnet.plots is imported (``import flexnet`` does it; the figures sit above training).
    figure = None

    def plot(self, metrics=None, path=None, *, show: bool = False, title: str = "Training"):
        """Curves of the run: the loss and each metric per epoch, validation beside training.

        Args:
            metrics: the keys to draw, one panel each (``val_`` curves join their
                training curve); default: ``loss`` and the metrics recorded
                beside it (``accuracy``).
            path: also write the figure to this image file.
            show: open it in a window (in a notebook the returned figure shows inline).

        Returns:
            The matplotlib ``Figure`` (its panels are ``fig.axes``). Needs
            matplotlib: ``pip install "flexnet[plot]"``.
        """
        draw = type(self).figure
        if draw is None:
            raise RuntimeError("History.plot: flexnet.plots is not imported; import flexnet first")
        return draw(self, path, metrics=metrics, show=show, title=title)

    def _repr_html_(self) -> str:
        """A notebook's view: the final numbers, then a small table of epochs."""
        keys = [k for k in self.history if "/" not in k and k != "time"]
        n = len(self.epoch)
        parts = [f"<p><b>History</b>: {n} epoch{'s' * (n != 1)}"]
        if n:
            final = ", ".join(f"{html.escape(k)} {_cell(self.history[k][-1])}" for k in keys
                              if len(self.history[k]) == n)
            parts.append(f"; final {final}")
            if self.history.get("val_accuracy"):
                best = int(np.argmax(self.history["val_accuracy"]))
                parts.append(f"; best val_accuracy {_cell(self.history['val_accuracy'][best])} "
                             f"at epoch {self.epoch[best] if best < n else best + 1}")
        parts.append("</p>")
        if not n:
            return "".join(parts)
        shown = sorted({int(round(i)) for i in np.linspace(0, n - 1, min(n, 10))})
        cols = [k for k in keys if len(self.history[k]) == n] + (["time"] if len(self.history.get("time", [])) == n
                                                                  else [])
        head = "<th>epoch</th>" + "".join(f"<th>{html.escape(k)}</th>" for k in cols)
        body = "".join(f"<tr><td>{self.epoch[i]}</td>" + "".join(
            f'<td style="text-align:right">{_cell(self.history[k][i])}</td>' for k in cols) + "</tr>"
            for i in shown)
        note = f"<caption>{len(shown)} of {n} epochs</caption>" if len(shown) < n else ""
        parts.append(f"<table>{note}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return "".join(parts)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _to_json_number(value):
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    return value


class Callback:
    """Base class: every hook does nothing.

    The fit loop sets ``self.net`` (the network) and ``self.loop`` (the running
    fit: ``optimizer``, ``history``, ``stop_training``) before training starts.
    ``logs`` is a dict of the numbers known at that point: ``on_train_begin``
    gets ``resumed`` (True when continuing from a checkpoint); ``on_batch_end``
    gets ``loss`` and ``size``; ``on_epoch_end`` gets the epoch's ``loss``,
    ``accuracy``, ``val_loss``, ``val_accuracy`` and ``lr`` as available.
    """

    net = None
    loop = None

    def set_context(self, net, loop) -> None:
        self.net = net
        self.loop = loop

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass

    def on_train_end(self, logs: dict | None = None) -> None:
        pass

    def on_exception(self, exc: BaseException, logs: dict | None = None) -> None:
        """Called instead of ``on_train_end`` when ``fit`` ends by raising ``exc``
        (:class:`~flexnet.TrainingDiverged`, :class:`~flexnet.TrainingInterrupted`,
        Ctrl-C, an error in a callback); ``logs`` holds the completed ``epoch``.
        A callback that holds a file open closes it here."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        pass


def uses_batch_hooks(cb: Callback) -> bool:
    """True if ``cb`` overrides a per-batch hook (the loop skips them otherwise)."""
    cls = type(cb)
    return (
        getattr(cls, "on_batch_begin", None) is not Callback.on_batch_begin
        or getattr(cls, "on_batch_end", None) is not Callback.on_batch_end
    )


def _monitored(logs: dict, monitor: str, where: str) -> float:
    if monitor not in logs:
        hint = ""
        if monitor.startswith("val_"):
            hint = " Pass validation_data=(X_val, y_val) or validation_split=0.2 to fit."
        raise ValueError(
            f"{where}: monitor={monitor!r} is not among this run's metrics "
            f"{sorted(logs)}.{hint}"
        )
    return float(logs[monitor])


class EarlyStopping(Callback):
    """Stop when a metric has not improved for ``patience`` epochs.

    With ``restore_best_weights=True`` the network ends training with the
    parameters and buffers of its best epoch, whether training stopped early
    or ran out of epochs.

    Args:
        monitor: a key of the epoch logs, e.g. ``"val_loss"`` or ``"val_accuracy"``.
        patience: epochs without improvement before stopping.
        min_delta: the smallest change that counts as an improvement.
        restore_best_weights: put the best epoch's weights back at the end.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy-like
            metrics, min otherwise).
        rule: when an epoch counts as an improvement.

            - ``"keras"`` (the default, as Keras and PyTorch Lightning): an
              epoch improves when it beats the best value by more than
              ``min_delta``; only then does the best value move. Training stops
              once ``patience`` epochs in a row have not improved.
            - ``"sklearn"``, scikit-learn's MLP rule (its ``tol`` is
              ``min_delta``, its ``n_iter_no_change`` is ``patience``): an
              epoch that beats the best value by more than ``min_delta`` resets
              the count, any other adds one to it; the best value (and, with
              ``restore_best_weights``, the weights kept) moves on every
              strict improvement, however small. Training stops once the count
              exceeds ``patience``: ``patience`` epochs without improvement are
              tolerated and the next one stops, so ``EarlyStopping("loss",
              patience=10, min_delta=1e-4, rule="sklearn")`` stops at the epoch
              where ``MLPClassifier(tol=1e-4, n_iter_no_change=10)`` does.
              An epoch whose value is NaN resets the count, as there.

    Example:
        >>> stop = EarlyStopping("loss", patience=10, min_delta=1e-4, rule="sklearn")
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 restore_best_weights: bool = True, mode: str = "auto", rule: str = "keras"):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping(patience): expected an integer >= 0, got {patience!r}")
        if not (isinstance(min_delta, (int, float)) and min_delta >= 0):
            raise ValueError(f"EarlyStopping(min_delta): expected a number >= 0, got {min_delta!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping(mode): expected 'auto', 'min' or 'max', got {mode!r}")
        if rule not in ("keras", "sklearn"):
            raise ValueError(f"EarlyStopping(rule): expected 'keras' or 'sklearn', got {rule!r}")
        if mode == "auto":
            mode = "max" if any(k in monitor for k in ("acc", "f1", "precision", "recall")) else "min"
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.restore_best_weights = restore_best_weights
        self.mode = mode
        self.rule = rule
        self._reset()

    def _reset(self) -> None:
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0
        self.stopped_epoch = 0
        self.last_epoch = 0
        self.best_weights: dict[str, np.ndarray] = {}

    def on_train_begin(self, logs=None):
        if not (logs or {}).get("resumed"):  # a reused callback starts afresh
            self._reset()

    def _improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored(logs or {}, self.monitor, "EarlyStopping")
        self.last_epoch = epoch
        if self.rule == "sklearn":
            self._sklearn_rule(epoch, value)
            return
        if self._improved(value):
            self._keep_best(value, epoch)
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.loop.stop_training = True

    def _sklearn_rule(self, epoch: int, value: float) -> None:
        # Written as scikit-learn's _update_no_improvement_count writes it, NaN included.
        if self.mode == "min":
            best = math.inf if self.best is None else self.best
            no_improvement, better = value > best - self.min_delta, value < best
        else:
            best = -math.inf if self.best is None else self.best
            no_improvement, better = value < best + self.min_delta, value > best
        self.wait = self.wait + 1 if no_improvement else 0
        if better:
            self._keep_best(value, epoch)
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.loop.stop_training = True

    def _keep_best(self, value: float, epoch: int) -> None:
        self.best, self.best_epoch = value, epoch
        if self.restore_best_weights:
            self.best_weights = {name: arr.copy() for name, arr in _state_arrays(self.net)}

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights and self.best_epoch != self.last_epoch:
            restore_state_arrays(self.net, self.best_weights)

    def state_dict(self) -> dict:
        # "config": the settings that give the saved best value and count their meaning; a
        # resume with others is refused (patience may change: it only decides when to stop).
        config = {"monitor": self.monitor, "mode": self.mode, "rule": self.rule, "min_delta": self.min_delta,
                  "restore_best_weights": bool(self.restore_best_weights)}
        return {
            "best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
            "stopped_epoch": self.stopped_epoch, "last_epoch": self.last_epoch,
            "best_weights": dict(self.best_weights), "config": config,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best = None if state["best"] is None else float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.wait = int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self.last_epoch = int(state["last_epoch"])
        self.best_weights = {k: np.array(v) for k, v in state["best_weights"].items()}

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
                f"min_delta={self.min_delta}, restore_best_weights={self.restore_best_weights}"
                + (f", rule={self.rule!r})" if self.rule != "keras" else ")"))


class LRSchedulerCallback(Callback):
    """Step a learning-rate schedule once per epoch.

    ``ReduceLROnPlateau`` is stepped with the monitored metric (``monitor``,
    falling back to the training ``loss`` when there is no validation data);
    every other schedule is stepped without arguments.
    """

    def __init__(self, scheduler, monitor: str = "val_loss"):
        if not callable(getattr(scheduler, "step", None)):
            raise TypeError(
                f"LRSchedulerCallback: expected a schedule with a step() method, "
                f"got {type(scheduler).__name__}"
            )
        self.scheduler = scheduler
        self.monitor = monitor

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if getattr(self.scheduler, "needs_metric", False):
            monitor = self.monitor if self.monitor in logs else "loss"
            self.scheduler.step(_monitored(logs, monitor, "LRSchedulerCallback"))
        else:
            self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)

    def __repr__(self):
        return f"LRSchedulerCallback({type(self.scheduler).__name__})"


def _state_arrays(net):
    """Every parameter and buffer of ``net`` by name."""
    yield from ((name, p) for name, p, _ in net.named_parameters())
    yield from net.named_buffers()


def restore_state_arrays(net, arrays: dict[str, np.ndarray]) -> None:
    """Copy saved parameters and buffers back into ``net``.

    Parameters are overwritten in place, so an optimizer's references to them
    stay valid; buffers are replaced on their layer (some layers rebind them).
    """
    params = net.parameters()
    for name, value in arrays.items():
        if name in params:
            params[name][...] = value
            continue
        layer_name, _, attr = name.rpartition(".")
        layer = net.layers[int(layer_name.split(".")[1])]
        setattr(layer, attr, np.array(value, dtype=getattr(layer, attr).dtype))


#: How many lines a progress bar leaves: one for the whole run, or one per epoch.
PROGRESS_LINES = ("run", "epoch")
#: The widest a progress bar draws, whatever the terminal's width.
PROGRESS_WIDTH = 80


def progress_text(logs: dict, short: int = 0) -> str:
    """The numbers a progress bar shows: ``loss 0.312, acc 88.6%, val acc 87.8%``.

    The validation accuracy when there is one, else the validation loss.
    ``short=1`` drops the words a narrow terminal cannot spare
    (``loss 0.312 acc 88.6% val 87.8%``); ``short=2`` keeps only the
    validation number (the training loss when there is none).
    """
    val = None
    if logs.get("val_accuracy") is not None:
        val = (f"val acc {100 * logs['val_accuracy']:.1f}%", f"val {100 * logs['val_accuracy']:.1f}%")
    elif logs.get("val_loss") is not None:
        val = (f"val loss {logs['val_loss']:.4g}", f"val {logs['val_loss']:.4g}")
    loss = f"loss {logs['loss']:.4g}" if logs.get("loss") is not None else None
    if short >= 2:
        return val[1] if val else (loss or "")
    parts = [loss]
    if logs.get("accuracy") is not None:
        parts.append(f"acc {100 * logs['accuracy']:.1f}%")
    parts.append(None if val is None else val[short])
    return (", " if short == 0 else " ").join(p for p in parts if p)


def terminal_width(default: int = PROGRESS_WIDTH) -> int:
    """The terminal's width in columns, capped at :data:`PROGRESS_WIDTH`.

    A terminal of unknown size (no terminal, ``COLUMNS`` unset or not a
    number, a size of 0) counts as ``default`` columns.
    """
    columns = _terminal_size(default, 24)[0]
    return max(20, min(columns, PROGRESS_WIDTH))


def _terminal_size(columns: int, lines: int) -> tuple[int, int]:
    """The terminal's (columns, lines); each one it does not know (0, unset, not a number) as given."""
    import shutil

    try:
        size = shutil.get_terminal_size((columns, lines))
    except (OSError, ValueError):
        return columns, lines
    return (size.columns if size.columns > 0 else columns), (size.lines if size.lines > 0 else lines)


class ProgressBar:
    """The bar :func:`flexnet.fit` draws while it trains (with tqdm).

    ``epoch 3/10, loss 0.312, acc 88.6%, val acc 87.8%  45%|████ | 00:31<00:38``:
    the numbers come first, so on a narrow terminal the bar and the times are
    cut, never the validation accuracy. The line is at most 80 columns (or
    the terminal's width, when narrower).

    Args:
        tqdm: the tqdm class to draw with (``tqdm.auto.tqdm``).
        epochs, n_batches: the run's epochs and batches per epoch.
        lines: ``"run"`` (default): one bar for the whole run, which leaves
            one line when training ends; ``"epoch"``: one bar per epoch, each
            left on its own line.
        file: where to draw (default: standard error).
    """

    def __init__(self, tqdm, *, epochs: int, n_batches: int, lines: str = "run", file=None):
        if lines not in PROGRESS_LINES:
            raise ValueError(f"progress: expected one of {', '.join(map(repr, PROGRESS_LINES))}, got {lines!r}")
        import sys

        self.tqdm = tqdm
        self.epochs, self.n_batches, self.lines = int(epochs), int(n_batches), lines
        self.file = file if file is not None else sys.stderr
        self.bar = None
        self.width = terminal_width()
        self.epoch = 0
        self.last_val: dict = {}  # the last epoch's validation numbers, shown during the next

    def _desc(self, logs: dict) -> str:
        """The numbers in the longest form that leaves room for the percentage."""
        logs = {**self.last_val, **logs}
        for short in (0, 1, 2):
            text = progress_text(logs, short)
            where = f"epoch {self.epoch}/{self.epochs}" if short == 0 else f"{self.epoch}/{self.epochs}"
            desc = where + ((", " if short == 0 else " ") + text if text else "")
            if len(desc) + 7 <= self.width:
                break
        return desc

    def start_epoch(self, epoch: int, step: int = 0) -> None:
        """Begin epoch ``epoch`` (counted from 1), ``step`` batches of it already done."""
        self.epoch = epoch
        per_run = self.lines == "run"
        if self.bar is None or not per_run:
            done = ((epoch - 1) * self.n_batches if per_run else 0) + step
            total = self.epochs * self.n_batches if per_run else self.n_batches
            options = {}
            if not str(getattr(self.tqdm, "__module__", "")).startswith("tqdm.notebook"):  # a terminal's text line
                # Both sizes given: tqdm draws nothing on a terminal that reports 0 lines (a bare pty).
                options = {"ncols": self.width, "nrows": _terminal_size(self.width, 24)[1], "dynamic_ncols": False,
                           "bar_format": "{desc}  {percentage:3.0f}%|{bar}| {elapsed}<{remaining}"}
            self.bar = self.tqdm(total=total, initial=done, desc=self._desc({}), leave=True, file=self.file,
                                 unit="batch", **options)
        else:
            self.bar.set_description_str(self._desc({}), refresh=False)

    def update(self, logs: dict | None = None) -> None:
        """One batch done; ``logs`` (the running loss and accuracy) refresh the numbers."""
        if logs is not None:
            self.bar.set_description_str(self._desc(logs), refresh=False)
        self.bar.update()

    def end_epoch(self, logs: dict) -> None:
        """The epoch's final numbers; with ``lines="epoch"`` its line is left."""
        self.last_val = {k: logs[k] for k in ("val_loss", "val_accuracy") if logs.get(k) is not None}
        self.bar.set_description_str(self._desc(logs), refresh=True)
        if self.lines == "epoch":
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

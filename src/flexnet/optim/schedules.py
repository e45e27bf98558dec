"""Learning-rate schedules: set ``optimizer.lr`` once per epoch.

Call ``sched.step()`` at the end of every epoch (``sched.step(val_loss)`` for
:class:`ReduceLROnPlateau`, whose ``needs_metric`` is True). Each schedule
follows the PyTorch scheduler of the same name: the learning rate used in
epoch ``e`` (counting from 0) is the one set after ``e`` calls to ``step``.
A schedule works with any object that has a writable ``lr`` attribute.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any

from ..nn.checks import check_number

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineWarmup", "ReduceLROnPlateau",
           "make_scheduler"]


def _count(value, where: str, *, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{where}: expected a whole number >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{where}: expected a whole number >= {low}, got {value}")
    return int(value)


class LRScheduler:
    """Base class. Subclasses validate their arguments in ``_configure`` and
    compute the next learning rate in ``_compute_lr``.

    Attributes:
        optimizer: the optimizer whose ``lr`` is set.
        base_lr: the optimizer's ``lr`` when the schedule was built.
        last_epoch: number of ``step`` calls so far.
    """

    #: True when ``step`` needs the monitored metric (validation loss).
    needs_metric = False
    _config_keys: tuple[str, ...] = ()

    def __init__(self, optimizer):
        if not hasattr(optimizer, "lr"):
            raise TypeError(
                f"{type(self).__name__}: expected an optimizer with an lr attribute "
                f"(flexnet.optim.SGD, Adam, ...), got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0
        optimizer.lr = self._compute_lr()
        self._last_lr = float(optimizer.lr)

    def _configure(self, **kwargs) -> None:
        raise NotImplementedError

    def _compute_lr(self) -> float:
        raise NotImplementedError

    def step(self, metric: float | None = None) -> float:
        """Advance one epoch and set the optimizer's lr; returns the new lr.

        ``metric`` is ignored here (only :class:`ReduceLROnPlateau` reads it),
        so a training loop may pass its validation loss to any schedule.
        """
        self.last_epoch += 1
        self.optimizer.lr = self._compute_lr()
        self._last_lr = float(self.optimizer.lr)
        return self._last_lr

    def get_last_lr(self) -> float:
        """The learning rate set by the last ``step`` (or by the constructor)."""
        return self._last_lr

    def config(self) -> dict[str, Any]:
        """Constructor arguments other than the optimizer."""
        return {key: getattr(self, key) for key in self._config_keys}

    def _counters(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, "last_epoch": self.last_epoch}

    def state_dict(self) -> dict[str, Any]:
        """JSON-friendly state; the optimizer is saved separately."""
        return {"type": type(self).__name__, "config": self.config(),
                "last_lr": self._last_lr, **self._counters()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` and set the optimizer's lr to the
        saved one, so loading order (optimizer first or schedule first) does
        not matter."""
        kind = type(self).__name__
        where = f"{kind}.load_state_dict"
        needed = {"type", "config", "last_lr", *self._counters()}
        if not isinstance(state_dict, dict) or not needed <= set(state_dict):
            raise ValueError(f"{where}: expected a dict with keys {sorted(needed)} as made by state_dict()")
        if state_dict["type"] != kind:
            raise ValueError(f"{where}: this state was saved by {state_dict['type']}, not {kind}")
        config = dict(state_dict["config"])
        if set(config) != set(self._config_keys):
            raise ValueError(f"{where}: expected config keys {sorted(self._config_keys)}, "
                             f"got {sorted(config)}")
        self._configure(**config)
        self._restore_counters(state_dict, where)
        self._last_lr = check_number(state_dict["last_lr"], f"{where}(last_lr)")
        self.optimizer.lr = self._last_lr

    def _restore_counters(self, state_dict, where: str) -> None:
        self.base_lr = check_number(state_dict["base_lr"], f"{where}(base_lr)")
        self.last_epoch = _count(state_dict["last_epoch"], f"{where}(last_epoch)")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs.

    lr in epoch ``e`` is ``base_lr * gamma ** (e // step_size)``, computed as
    PyTorch does: by multiplying the current lr, so other changes to it carry on.
    """

    _config_keys = ("step_size", "gamma")

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        self._configure(step_size=step_size, gamma=gamma)
        super().__init__(optimizer)

    def _configure(self, step_size, gamma):
        self.step_size = _count(step_size, "StepLR(step_size)", low=1)
        self.gamma = check_number(gamma, "StepLR(gamma)", low_open=True)

    def _compute_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self.optimizer.lr
        return self.optimizer.lr * self.gamma


class ExponentialLR(LRScheduler):
    """Multiply the lr by ``gamma`` every epoch: ``base_lr * gamma ** e``."""

    _config_keys = ("gamma",)

    def __init__(self, optimizer, gamma: float):
        self._configure(gamma=gamma)
        super().__init__(optimizer)

    def _configure(self, gamma):
        self.gamma = check_number(gamma, "ExponentialLR(gamma)", low_open=True)

    def _compute_lr(self):
        if self.last_epoch == 0:
            return self.optimizer.lr
        return self.optimizer.lr * self.gamma


class CosineWarmup(LRScheduler):
    """Linear warm-up for ``warmup_epochs``, then cosine annealing to ``min_lr``.

    With ``W = warmup_epochs``, ``T = total_epochs`` and ``m = min_lr / base_lr``,
    the lr in epoch ``e`` is ``base_lr * f(e)``::

        f(e) = (e + 1) / (W + 1)                              for e < W
        f(e) = m + (1 - m) * (1 + cos(pi * (e - W) / (T - W))) / 2   for W <= e <= T
        f(e) = m                                              for e > T

    Warm-up starts at ``base_lr / (W + 1)`` rather than 0, so no epoch is
    wasted, and reaches ``base_lr`` at epoch W. This is exactly PyTorch's
    ``LambdaLR(opt, f)``, and up to rounding
    ``SequentialLR([LinearLR(start_factor=1/(W+1), total_iters=W),
    CosineAnnealingLR(T_max=T-W, eta_min=min_lr)], milestones=[W])``.
    """

    _config_keys = ("total_epochs", "warmup_epochs", "min_lr")

    def __init__(self, optimizer, total_epochs: int, warmup_epochs: int = 0, min_lr: float = 0.0):
        self._configure(total_epochs=total_epochs, warmup_epochs=warmup_epochs, min_lr=min_lr)
        super().__init__(optimizer)

    def _configure(self, total_epochs, warmup_epochs, min_lr):
        self.total_epochs = _count(total_epochs, "CosineWarmup(total_epochs)", low=1)
        self.warmup_epochs = _count(warmup_epochs, "CosineWarmup(warmup_epochs)")
        if self.warmup_epochs >= self.total_epochs:
            raise ValueError(
                f"CosineWarmup: warmup_epochs ({self.warmup_epochs}) must be smaller than "
                f"total_epochs ({self.total_epochs})"
            )
        self.min_lr = check_number(min_lr, "CosineWarmup(min_lr)")

    def factor(self, epoch: int) -> float:
        """The multiplier ``f(epoch)`` of ``base_lr`` (see the class docstring)."""
        w, t = self.warmup_epochs, self.total_epochs
        if epoch < w:
            return (epoch + 1) / (w + 1)
        m = self.min_lr / self.base_lr if self.base_lr > 0 else 0.0
        progress = min(epoch - w, t - w) / (t - w)
        return m + (1 - m) * (1 + math.cos(math.pi * progress)) / 2

    def _compute_lr(self):
        return self.base_lr * self.factor(self.last_epoch)


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` when a metric stops improving.

    Follows PyTorch's semantics: an epoch improves on the best so far when the
    metric beats it by ``threshold`` (relative: ``best * (1 - threshold)`` in
    "min" mode; absolute: ``best - threshold``). After more than ``patience``
    epochs without improvement the lr drops (never below ``min_lr``; changes
    smaller than ``eps`` are skipped), and the next ``cooldown`` epochs do not
    count as bad. A NaN metric counts as no improvement.
    """

    needs_metric = True
    _config_keys = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown",
                    "min_lr", "eps")

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8):
        self._configure(mode=mode, factor=factor, patience=patience, threshold=threshold,
                        threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr, eps=eps)
        self.best = self._worst()
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        super().__init__(optimizer)

    def _configure(self, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps):
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau(mode): expected 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(
                f"ReduceLROnPlateau(threshold_mode): expected 'rel' or 'abs', got {threshold_mode!r}")
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = check_number(factor, "ReduceLROnPlateau(factor)", low_open=True, high=1.0)
        self.patience = _count(patience, "ReduceLROnPlateau(patience)")
        self.threshold = check_number(threshold, "ReduceLROnPlateau(threshold)")
        self.cooldown = _count(cooldown, "ReduceLROnPlateau(cooldown)")
        self.min_lr = check_number(min_lr, "ReduceLROnPlateau(min_lr)")
        self.eps = check_number(eps, "ReduceLROnPlateau(eps)")

    def _compute_lr(self):
        return self.optimizer.lr

    def _worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def _is_better(self, value: float) -> bool:
        if self.mode == "min":
            bar = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return value < bar
        bar = self.best * (1 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold
        return value > bar

    def step(self, metric: float | None = None) -> float:
        """Record this epoch's ``metric`` (e.g. validation loss); returns the lr."""
        if metric is None:
            raise TypeError("ReduceLROnPlateau.step: expected the monitored metric, "
                            "e.g. sched.step(val_loss), got None")
        try:
            value = float(metric)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"ReduceLROnPlateau.step: expected a number, got {metric!r}") from exc
        self.last_epoch += 1
        if self._is_better(value):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            old = float(self.optimizer.lr)
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = float(self.optimizer.lr)
        return self._last_lr

    def _counters(self):
        # "no best yet" is saved as None: JSON has no infinity
        best = None if self.best == self._worst() else self.best
        return {"last_epoch": self.last_epoch, "best": best,
                "num_bad_epochs": self.num_bad_epochs, "cooldown_counter": self.cooldown_counter}

    def _restore_counters(self, state_dict, where):
        self.last_epoch = _count(state_dict["last_epoch"], f"{where}(last_epoch)")
        best = state_dict["best"]
        self.best = self._worst() if best is None else float(best)
        self.num_bad_epochs = _count(state_dict["num_bad_epochs"], f"{where}(num_bad_epochs)")
        self.cooldown_counter = _count(state_dict["cooldown_counter"], f"{where}(cooldown_counter)")


SCHEDULERS: dict[str, type[LRScheduler]] = {
    "step": StepLR, "exponential": ExponentialLR, "cosine": CosineWarmup,
    "plateau": ReduceLROnPlateau,
}


def make_scheduler(name: str, optimizer, **kwargs) -> LRScheduler:
    """Build a schedule from its name (``"step"``, ``"exponential"``, ``"cosine"``,
    ``"plateau"``), the optimizer and its arguments.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in SCHEDULERS:
        raise ValueError(f"scheduler: unknown name {name!r}; expected one of {', '.join(SCHEDULERS)}")
    return SCHEDULERS[key](optimizer, **kwargs)

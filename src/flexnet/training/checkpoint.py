"""Checkpoints: a model file plus everything a fit loop needs to continue exactly.

A checkpoint is the same safe ``.npz`` archive as a model file (so
``flexnet.load(checkpoint)`` gives the network), with header format
``"flexnet-checkpoint"`` and a ``"training"`` entry holding:

- where the run stands: completed epochs, batches done in the current epoch,
  the epoch's row order (``train/perm``) and its running loss/accuracy sums;
- the optimizer's and every stateful callback's ``state_dict()`` (schedule,
  early stopping with its best weights);
- the state of every random generator: the shuffling one, the network's (used
  for dropout masks) and any layer's own;
- the History so far, the validation split, and a checksum of the data and the
  settings that must not change on resume.

Checkpoints are written only between batches, so a resumed run replays exactly
the arithmetic of one that was never stopped. For the same reason Ctrl-C and
SIGTERM (:class:`SignalsToFlag`) let the current batch finish before the
checkpoint is written and :class:`TrainingInterrupted` is raised.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import numpy as np

from ..files.model_file import (
    CHECKPOINT_FORMAT,
    MODEL_FORMAT_VERSION,
    ModelFileError,
    flatten_state,
    flexnet_version,
    forget_counts,
    model_state,
    non_finite,
    read_archive,
    unflatten_state,
    unwritten_counts,
    write_archive,
)
from .callbacks import History, restore_state_arrays


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped (Ctrl-C or SIGTERM) and a checkpoint was written.

    A KeyboardInterrupt, so code that handles Ctrl-C keeps working.
    Attributes: ``path`` (the checkpoint), ``epoch`` and ``step`` (batches
    done in that epoch).
    """

    def __init__(self, message: str, path, epoch: int, step: int):
        super().__init__(message)
        self.path, self.epoch, self.step = path, epoch, step


class SignalsToFlag:
    """While training with a checkpoint, Ctrl-C and SIGTERM finish the current
    batch, write a checkpoint and raise :class:`TrainingInterrupted`.

    Stopping between batches is what makes the checkpoint exact: a signal
    that interrupted an optimizer step half-way would leave some parameters
    updated and others not. A second signal interrupts at once.
    """

    def __init__(self, loop):
        self.loop = loop
        self.previous = {}

    def _handler(self, signum, frame):
        if self.loop.interrupt_requested:  # asked twice: stop now
            raise KeyboardInterrupt
        self.loop.interrupt_requested = True

    def __enter__(self):
        if self.loop is None or threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handler)
            except (ValueError, OSError):
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


def _rng_states(net) -> dict:
    states = {"net": net.rng.bit_generator.state}
    for layer in net.layers:
        own = getattr(layer, "rng", None)
        if own is not None and own is not net.rng:
            states[layer.name] = own.bit_generator.state
    return states


def _stateful(loop) -> list:
    """The callbacks whose state a checkpoint keeps, in order."""
    return [cb for cb in loop.callbacks if hasattr(cb, "state_dict") and hasattr(cb, "load_state_dict")]


def _training_state(loop) -> dict:
    """Everything about a running fit besides the network's arrays, as a checkpoint keeps it."""
    return {
        "epoch": loop.epoch,
        "step": loop.step,
        "global_step": loop.global_step,
        "stop_training": bool(loop.stop_training),
        "settings": _settings(loop),
        "sums": dict(loop.sums),
        "perm": loop.perm,
        "val_index": loop.val_index,
        "history": loop.history.to_dict(),
        "rng": {"shuffle": loop.shuffle_rng.bit_generator.state, **_rng_states(loop.net)},
        "optimizer": loop.optimizer.state_dict(),
        "callbacks": [{"class": type(cb).__name__, "state": cb.state_dict()} for cb in _stateful(loop)],
        "diagnostics": None if loop.diag is None else loop.diag.state_dict(),
        "arguments": dict(loop.arguments),
    }


def save_checkpoint(loop, path) -> Path:
    """Write the state of a running :class:`~flexnet.training.loop.FitLoop` to ``path``, atomically."""
    path = Path(os.fspath(path))
    model, arrays = model_state(loop.net)
    training_json, training_arrays = flatten_state(_training_state(loop), prefix="train")
    header = {
        "format": CHECKPOINT_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "flexnet_version": flexnet_version(),
        "model": model,
        "training": training_json,
    }
    write_archive(path, header, {**arrays, **training_arrays})
    return path


def _settings(loop) -> dict:
    """What must be the same on resume for the run to continue exactly."""
    return {
        "data": loop.data_crc,
        "batch_size": loop.batch_size,
        "shuffle": loop.shuffle,
        "validation": "split" if loop.val_index is not None else ("data" if loop.Xv is not None else "none"),
    }


def load_checkpoint(loop, path) -> None:
    """Put the state saved in ``path`` into ``loop`` (its network, optimizer,
    callbacks, generators and counters).

    Raises:
        ModelFileError: the file is not a readable checkpoint, or it was written
            for another network, other data or other settings. Every problem
            is listed; nothing is changed when there is any.
    """
    header, arrays = read_archive(path)
    problems: list[str] = []
    bad = [text for name, arr in arrays.items() if name.startswith("layers.") and (text := non_finite(name, arr))]
    if bad:
        problems.append("the weights are not finite, as after a training run that diverged: " + "; ".join(bad))
    if header.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(path, f"not a checkpoint: format is {header.get('format')!r}, expected "
                                   f"{CHECKPOINT_FORMAT!r} (a model file starts a new run: load it "
                                   "with flexnet.load instead)")
    version = header.get("format_version")
    if not isinstance(version, int) or version > MODEL_FORMAT_VERSION:
        raise ModelFileError(path, f"format version {version!r} is newer than this flexnet reads "
                                   f"({MODEL_FORMAT_VERSION}); upgrade flexnet")
    try:
        training = unflatten_state(header["training"], arrays)
        _check_compatible(loop, header["model"], training, arrays, problems)
    except Exception as exc:  # any malformed value in a file we did not write
        problems.append(f"the training state is incomplete or malformed ({type(exc).__name__}: {exc})")
    if problems:
        raise ModelFileError(path, problems)
    before = _snapshot(loop)
    try:
        _apply(loop, training, arrays)
    except Exception as exc:
        _apply(loop, before, before["arrays"])  # values that were in place a moment ago: cannot fail
        raise ModelFileError(path, f"cannot restore the training state "
                                   f"({type(exc).__name__}: {exc})") from exc


def _whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0


def _check_position(loop, training: dict, problems: list) -> None:
    """Where the run stood (counters, row order, validation rows) must fit this data."""
    for key in ("epoch", "step", "global_step"):
        if not _whole(training[key]):
            problems.append(f"training.{key} must be a whole number >= 0, got {training[key]!r}")
    step, perm, n = training["step"], training["perm"], loop.n
    if _whole(step) and step > loop.n_batches:  # == n_batches: stopped after the epoch's last batch
        problems.append(f"training.step {step} is past the {loop.n_batches} batches of an epoch")
    elif _whole(step) and step > 0:
        if not (isinstance(perm, np.ndarray) and perm.shape == (n,) and perm.dtype.kind in "iu"
                and np.array_equal(np.sort(perm), np.arange(n))):
            problems.append(f"training.perm must be an order of the {n} training rows (the run "
                            "stopped in the middle of an epoch)")
    val_index, mine = training["val_index"], loop.val_index
    if val_index is None and mine is None:
        return
    fits = (isinstance(val_index, np.ndarray) and mine is not None and val_index.shape == mine.shape
            and val_index.dtype.kind in "iu" and val_index.min() >= 0
            and val_index.max() < len(loop.full_data[0]) and len(np.unique(val_index)) == len(val_index))
    if not fits:
        problems.append("training.val_index does not name the validation rows of this data")


def _architecture(model: dict):
    """Layers and loss by class name and config. Where a class lives does not
    count: checkpoints of earlier releases name modules that have since moved."""
    specs = list(model.get("layers") or []) + [model.get("loss")]
    return [(s.get("class"), s.get("config")) if isinstance(s, dict) else s for s in specs]


def _check_compatible(loop, model: dict, training: dict, arrays, problems: list) -> None:
    mine, my_arrays = model_state(loop.net)
    mine = json.loads(json.dumps(mine))  # compare as read back: tuples become lists
    if _architecture(model) != _architecture(mine):
        problems.append("it was written for another architecture or loss; build the same network to resume")
    if model.get("dtype") != mine["dtype"]:
        problems.append(f"it holds {model.get('dtype')} weights but the network is {mine['dtype']}")
    unwritten = {f"{layer.name}.num_batches_tracked" for layer in unwritten_counts(loop.net, arrays)}
    for name, arr in my_arrays.items():
        if name.startswith("metadata/") or name in unwritten:  # written before BatchNorm1d counted
            continue
        got = arrays.get(name)
        if got is None or got.shape != arr.shape or got.dtype != arr.dtype:
            problems.append(f"array {name!r} is missing or has the wrong shape/dtype")
    saved, now = training["settings"], _settings(loop)
    labels = {"data": "the training data (X, y, sample_weight)", "batch_size": "batch_size", "shuffle": "shuffle",
              "validation": "the kind of validation (validation_data / validation_split)"}
    for key, label in labels.items():
        if saved.get(key) != now[key]:
            problems.append(f"{label} differs from the run that wrote it "
                            f"({saved.get(key)!r} then, {now[key]!r} now); resume with the same settings")
    _check_position(loop, training, problems)
    if int(training["epoch"]) > loop.epochs:
        problems.append(f"it has already trained {training['epoch']} epochs but fit(epochs={loop.epochs}) "
                        "asks for fewer; pass epochs= the total you want")
    saved_cbs = [cb["class"] for cb in training["callbacks"]]
    my_cbs = [type(cb).__name__ for cb in _stateful(loop)]
    if saved_cbs != my_cbs:
        problems.append(f"it was written with stateful callbacks {saved_cbs} but this fit has {my_cbs} "
                        "(scheduler= counts as LRSchedulerCallback); pass the same ones")
    if type(loop.optimizer).__name__ != training["optimizer"].get("type"):
        problems.append(f"it holds {training['optimizer'].get('type')} state but the optimizer is "
                        f"{type(loop.optimizer).__name__}")
    else:
        _check_hyperparameters(loop, training, problems)
    if saved_cbs == my_cbs:
        _check_schedules(loop, training["callbacks"], problems)
    rngs = training["rng"]
    for name in _rng_states(loop.net):
        if name not in rngs:
            problems.append(f"it holds no generator state for {name}")
    if (training["diagnostics"] is None) != (loop.diag is None):
        problems.append("diagnostics= differs from the run that wrote it")


def _differs(saved, mine) -> bool:
    """Whether two settings differ once both are as JSON reads them back (tuples as lists)."""
    return json.loads(json.dumps(saved)) != json.loads(json.dumps(mine))


def _check_hyperparameters(loop, training: dict, problems: list) -> None:
    """The optimizer's settings, the learning rate, the seed and the split fraction
    must be the run's: the checkpoint's would replace them without a word."""
    saved_config = training["optimizer"].get("config") or {}
    config = getattr(loop.optimizer, "config", None)
    mine = config() if callable(config) else {}
    for key in sorted(set(saved_config) & set(mine) - {"lr"}):  # the lr changes as a schedule goes
        if _differs(saved_config[key], mine[key]):
            problems.append(f"the optimizer's {key} differs from the run that wrote it "
                            f"({saved_config[key]!r} then, {mine[key]!r} now); resume with the same settings")
    arguments = training.get("arguments")
    if arguments is None:  # written before checkpoints kept them: what the state itself tells
        schedules = [cb["state"] for cb in training["callbacks"]
                     if isinstance(cb.get("state"), dict) and "last_lr" in cb["state"]]
        arguments = {"lr": schedules[0].get("base_lr") if schedules else saved_config.get("lr")}
    labels = {"lr": "the learning rate (lr, or the schedule's base_lr)", "seed": "seed",
              "validation_split": "validation_split"}
    for key, label in labels.items():
        then, now = arguments.get(key), loop.arguments.get(key)
        if then is not None and now is not None and then != now:
            problems.append(f"{label} differs from the run that wrote it ({then!r} then, {now!r} now); "
                            "resume with the same settings")


def _check_schedules(loop, saved_callbacks: list, problems: list) -> None:
    """A schedule's settings (any stateful callback's ``config``) must be the run's:
    loading its state would put the saved ones in place of those given."""
    for cb, saved in zip(_stateful(loop), saved_callbacks):
        then = saved.get("state")
        now = cb.state_dict()
        if not (isinstance(then, dict) and isinstance(now, dict)):
            continue
        if "config" in then and "config" in now and _differs(then["config"], now["config"]):
            name = then.get("type") or saved["class"]
            problems.append(f"the settings of {name} differ from the run that wrote it "
                            f"({then['config']!r} then, {now['config']!r} now); resume with the same settings")


def _snapshot(loop) -> dict:
    """The state :func:`_apply` overwrites, in the form it reads (what a checkpoint
    would hold now), so a resume that fails halfway can put everything back."""
    net = loop.net
    arrays = {name: p.copy() for name, p, _ in net.named_parameters()}
    arrays.update({name: b.copy() for name, b in net.named_buffers()})
    return {**_training_state(loop), "arrays": arrays}


def _load_optimizer(optimizer, state) -> None:
    """``optimizer.load_state_dict(state)``, for any learning rate a run can reach.

    A schedule may bring the learning rate to 0 by its last epoch (cosine
    annealing to ``min_lr=0``, a decay that underflows), so the last checkpoint
    of a finished run holds ``lr`` 0. An optimizer's constructor refuses 0, as
    it should for a new run, and ``load_state_dict`` validates through it; so
    such a state is loaded with a stand-in lr, and the saved 0 is then set
    through ``optimizer.lr``, which accepts any finite value >= 0. Every other
    value, a negative or non-finite one included, is loaded and checked as is.
    """
    config = state.get("config") if isinstance(state, dict) else None
    lr = config.get("lr") if isinstance(config, dict) else None
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr == 0):
        optimizer.load_state_dict(state)
        return
    optimizer.load_state_dict({**state, "config": {**config, "lr": 1.0}})
    optimizer.lr = lr


def _apply(loop, training: dict, arrays) -> None:
    net = loop.net
    _load_optimizer(loop.optimizer, training["optimizer"])
    for cb, saved in zip(_stateful(loop), training["callbacks"]):
        cb.load_state_dict(saved["state"])
    if loop.diag is not None:
        loop.diag.load_state_dict(training["diagnostics"])
    forget_counts(unwritten_counts(net, arrays))  # the layers as the checkpoint wrote them
    names = [name for name, _, _ in net.named_parameters()] + [name for name, _ in net.named_buffers()]
    restore_state_arrays(net, {name: arrays[name] for name in names})
    rngs = training["rng"]
    loop.shuffle_rng.bit_generator.state = rngs["shuffle"]
    net.rng.bit_generator.state = rngs["net"]
    for layer in net.layers:
        if layer.name in rngs:
            layer.rng.bit_generator.state = rngs[layer.name]
    val_index = training["val_index"]
    if val_index is not None and not np.array_equal(val_index, loop.val_index):
        loop.use_split(np.asarray(val_index, dtype=np.intp))
    loop.history = History.from_dict(training["history"])
    saved = training.get("arguments") or {}  # keep what the run was given where this call said nothing
    loop.arguments = {**loop.arguments, **{k: v for k, v in saved.items() if v is not None}}
    loop.epoch = int(training["epoch"])
    loop.step = int(training["step"])
    loop.global_step = int(training["global_step"])
    loop.stop_training = bool(training["stop_training"])
    loop.sums = dict(training["sums"])
    perm = training["perm"]
    loop.perm = None if perm is None else np.asarray(perm, dtype=np.intp)

"""``flexnet train --resume``: which options a resumed run keeps, and which it may change.

A ``flexnet train`` run keeps its options in every checkpoint it writes
(:class:`TrainOptions`, a stateful callback, so they travel in the checkpoint's
training state). On ``--resume``, each option of ``flexnet train`` is one of:

- left out: the checkpoint's value is used (the run's data, architecture,
  optimizer, output paths ...), so ``flexnet train --resume run.ckpt.npz``
  alone finishes a run;
- given with the checkpoint's value: nothing to say;
- given with another value: applied, with one line saying so, for the options
  of :data:`MAY_CHANGE` (the total number of epochs, where files are written);
  refused (exit 2), naming the option, the checkpoint's value and the given
  one, for every other option: they decide what the run computes, and the
  checkpoint's state would silently win over them;
- :data:`FREE`: how this process shows its work, not part of the run.

A checkpoint written by ``flexnet.fit`` or by a release that did not keep the
options has none: the options given and the defaults apply, and the fit's
own checks refuse what does not match the state in the checkpoint.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

from ..training.callbacks import Callback
from .common import UsageError, label_arg

#: Options a resumed run may change: applied, with a line saying so. (``threads``:
#: how many BLAS threads compute, where a command has --threads; ``stream`` and
#: ``cache``: how a table is read, which gives the same rows either way.)
MAY_CHANGE = ("epochs", "out", "checkpoint", "figure", "threads", "tensorboard", "csv_log", "stream", "cache")
#: Options that are not part of the run: neither recorded nor compared.
FREE = ("resume", "quiet", "show", "progress_lines")
#: Options that name files (or a folder) the run writes (kept as absolute paths).
PATHS = ("out", "checkpoint", "figure", "tensorboard", "csv_log", "cache")


class TrainOptions(Callback):
    """The options of a ``flexnet train`` run, as its checkpoints keep them.

    It has a state only to be saved: :func:`settle` reads the options from the
    checkpoint and compares them before any training, so loading does nothing.
    """

    def __init__(self, options: dict):
        self.options = dict(options)

    def state_dict(self) -> dict:
        return {"options": dict(self.options)}

    def load_state_dict(self, state: dict) -> None:
        pass  # compared by settle() before the fit; the options in force are this run's

    def __repr__(self) -> str:
        return f"TrainOptions({len(self.options)} options)"


def track_given(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` leave out of its result every option the user did not give.

    The defaults go to ``args.option_defaults``, so :func:`settle` can tell an
    option given on the command line (even with its default value) from one
    left out. Call it after the last ``add_argument``.
    """
    defaults = vars(parser.parse_args([]))  # every default, converted as argparse does
    for action in parser._actions:  # argparse lists its options nowhere public
        if action.option_strings and action.dest in defaults:
            action.default = argparse.SUPPRESS
    parser.set_defaults(option_defaults={k: v for k, v in defaults.items() if k != "func"})


@dataclass
class Resumed:
    """What ``--resume`` found: the checkpoint's options (None when it keeps
    none), its completed epochs and whether its run had stopped."""

    path: str
    options: dict | None
    epochs_done: int | None
    stopped: bool = False
    notes: list[str] = field(default_factory=list)
    #: Seconds the run had trained before the checkpoint (its epochs' times and
    #: the part of an epoch it stopped in), None when the checkpoint does not say.
    seconds_before: float | None = None

    def finished(self, epochs: int) -> bool:
        """Whether the checkpoint holds the whole run: nothing is left to train."""
        return self.epochs_done is not None and (self.stopped or self.epochs_done >= epochs)


def settle(args) -> Resumed | None:
    """Give ``args`` every option of the run: the one given, else the
    checkpoint's (with ``--resume``), else the default. Returns what the
    checkpoint held, or None for a new run.

    Raises:
        UsageError: an option given that differs from the checkpoint's and may
            not change (all of them listed), or ``--epochs`` below the epochs done.
    """
    defaults = getattr(args, "option_defaults", None)
    if defaults is None:  # a Namespace built by hand (cmd_train of 0.1): every option is given
        defaults = args.option_defaults = {k: v for k, v in vars(args).items()
                                           if k not in ("func", "command", "debug")}
    given = {key: getattr(args, key) for key in defaults if hasattr(args, key)}
    resumed = None
    if given.get("resume") is not None:
        resumed = _read(given["resume"])
        _check_done(given, resumed)
        if resumed.options is not None:
            _merge(args, given, resumed)
        else:
            resumed.notes.append(f"{resumed.path} does not keep the options of its run (it was written "
                                 "by flexnet.fit or an earlier release): the options given and the "
                                 "defaults apply, and must be the run's")
    for key, value in defaults.items():
        if not hasattr(args, key):
            setattr(args, key, value)
    if resumed is not None and resumed.finished(args.epochs):
        done = resumed.epochs_done
        how = "stopped at" if resumed.stopped and done < args.epochs else "trained all"
        resumed.notes.append(f"nothing left to train: the checkpoint {resumed.path} {how} {done} epoch(s) "
                             f"of {args.epochs}; writing the model")
    return resumed


def recorded(args, **resolved) -> dict:
    """The options a checkpoint keeps: every one but :data:`FREE`, with the
    values ``flexnet train`` worked out (``arch``, ``scale``) in ``resolved``."""
    options = {key: getattr(args, key) for key in args.option_defaults if key not in FREE}
    options.update(resolved)
    options["data"] = data_key(options["data"])
    for key in PATHS:  # absolute, so that a run resumed from another folder writes where it did
        if options.get(key) not in (None, "-"):
            options[key] = os.path.abspath(options[key])
    return options


def data_key(spec):
    """A data set by name as the registry spells it, a file by its absolute path
    (so a run resumes from another folder)."""
    from ..data.datasets import REGISTRY

    if not isinstance(spec, str):
        return spec
    key = spec.lower().replace("_", "-")
    return key if key in REGISTRY else os.path.abspath(spec)


def report(resumed: Resumed | None) -> None:
    """Print the lines that say what ``--resume`` applied."""
    for note in resumed.notes if resumed is not None else ():
        print(f"flexnet train: {note}", file=sys.stderr)


# -- reading the checkpoint -----------------------------------------------------------


def _read(path) -> Resumed:
    """The options, epochs done and stop flag a checkpoint holds (None where it
    holds nothing readable: the fit's own checks then say what is wrong)."""
    from ..files.archive import read_archive
    from ..files.model_file import CHECKPOINT_FORMAT

    header, _ = read_archive(path)
    if header.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"--resume {path}: not a checkpoint (format {header.get('format')!r}); a model "
                         "file starts a new run, and flexnet train writes checkpoints with --checkpoint")
    training = header.get("training") if isinstance(header.get("training"), dict) else {}
    epoch = training.get("epoch")
    done = epoch if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0 else None
    options = None
    for cb in training.get("callbacks") or ():
        if isinstance(cb, dict) and cb.get("class") == TrainOptions.__name__:
            state = cb.get("state")
            options = state.get("options") if isinstance(state, dict) else None
            if not isinstance(options, dict):
                raise UsageError(f"--resume {path}: the options kept in the checkpoint are malformed")
    return Resumed(str(path), options, done, stopped=training.get("stop_training") is True,
                   seconds_before=_seconds_before(training))


def _seconds_before(training: dict) -> float | None:
    """The training time a checkpoint holds: its history's epoch times, and the
    time already spent in the epoch it stopped in."""
    try:
        times = training["history"]["history"].get("time") or []
        partial = training["sums"]["time"] if training.get("step") else 0.0
        total = float(sum(times)) + float(partial)
    except (KeyError, TypeError, AttributeError, ValueError):
        return None
    return total if total >= 0 and total == total else None


# -- the rules ---------------------------------------------------------------------------


def _merge(args, given: dict, resumed: Resumed) -> None:
    """Apply the rules of the module docstring to every option the checkpoint keeps."""
    saved = resumed.options
    conflicts = []
    for key, default in args.option_defaults.items():
        if key in FREE or key not in saved:
            continue  # an option newer than the checkpoint: the given one or the default
        value = saved[key]
        _check_type(key, value, default, resumed.path)
        if key not in given:
            setattr(args, key, value)
        elif _same(key, value, given[key]):
            pass
        elif key == "data" and os.path.isabs(value) and not os.path.exists(value):
            resumed.notes.append(f"--data {given[key]}: applied in place of the checkpoint's {value}, which "
                                 "is gone (the data must be the run's: its checksum is compared)")
        elif key in MAY_CHANGE:
            if key == "epochs" and saved.get("schedule") == "cosine":
                conflicts.append(f"{_show(key, given[key])} differs from the checkpoint's {_show(key, value)} "
                                 "(the cosine schedule spans the run's epochs, its lr reaching 0 at the end)")
            else:
                resumed.notes.append(f"{_show(key, given[key])}: applied (the run started with "
                                     f"{_show(key, value)})")
        else:
            conflicts.append(f"{_show(key, given[key])} differs from the checkpoint's {_show(key, value)}")
    if conflicts:
        raise UsageError(f"--resume {resumed.path}: " + "; ".join(conflicts) + ". A resumed run keeps the "
                         "options it started with: leave these out (the checkpoint's apply) or start a new "
                         "run without --resume")
    if "out" in given and "checkpoint" not in given and saved.get("checkpoint") is None:
        args.checkpoint = None  # derived from the new --out, as in a new run
    if "out" in given and "figure" not in given and saved.get("figure") is None:
        args.figure = None


def _check_done(given: dict, resumed: Resumed) -> None:
    """``--epochs`` is the total wanted, never fewer than the checkpoint has done."""
    done, epochs = resumed.epochs_done, given.get("epochs")
    if done is not None and epochs is not None and epochs < done:
        raise UsageError(f"--epochs {epochs}: the checkpoint {resumed.path} has already trained {done} "
                         f"epochs; give --epochs {done} or more, or leave it out")


def _check_type(key: str, value, default, path) -> None:
    """A value kept in a checkpoint is of the option's kind (a file may have been edited)."""
    if key == "arch":
        ok = value is None or (isinstance(value, list) and value
                               and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value))
    elif default is None:
        ok = value is None or isinstance(value, (str, int, float))
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise UsageError(f"--resume {path}: the checkpoint keeps an impossible value for "
                         f"--{key.replace('_', '-')}: {value!r}")


def _same(key: str, saved, given) -> bool:
    """Whether a given option means what the checkpoint's value means."""
    if key == "data":  # a data set by its name, a file by where it is (links followed)
        mine = data_key(given)
        return mine == saved or (isinstance(saved, str) and os.path.isabs(mine) and os.path.isabs(saved)
                                 and os.path.realpath(mine) == os.path.realpath(saved))
    if key == "label":
        return label_arg(None if saved is None else str(saved)) == label_arg(None if given is None else str(given))
    if key in PATHS and saved not in (None, "-") and given not in (None, "-"):
        return os.path.abspath(saved) == os.path.abspath(given)
    return saved == given


def _show(key: str, value) -> str:
    """An option as it is typed: ``--arch 25,8,2``, ``--batchnorm``, ``no --checkpoint``."""
    flag = "--" + key.replace("_", "-")
    if value is None or value is False:
        return f"no {flag}"
    if value is True:
        return flag
    if isinstance(value, list):
        return f"{flag} {','.join(map(str, value))}"
    return f"{flag} {value}"


__all__ = ["FREE", "MAY_CHANGE", "Resumed", "TrainOptions", "data_key", "recorded", "report", "settle",
           "track_given"]

"""Helpers the commands share: exit codes, argparse types, data loading, tables, figures, output checks."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in what the user asked for (exit code 2)."""


def parse_arch(text: str) -> list[int]:
    """``"25,8,2"`` -> ``[25, 8, 2]``."""
    try:
        sizes = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer sizes such as 25,8,2, got {text!r}"
        ) from None
    if len(sizes) < 2 or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected at least two positive layer sizes such as 25,8,2, got {text!r}"
        )
    return sizes


def parse_seeds(text: str) -> list[int]:
    """``"42"`` -> ``[42]``; ``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"1,5,9"`` -> ``[1, 5, 9]``."""
    try:
        if "-" in text.strip("-"):
            lo, hi = text.split("-", 1)
            seeds = list(range(int(lo), int(hi) + 1))
        else:
            seeds = [int(s) for s in text.split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds such as 42, 0-4 or 1,5,9, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"expected at least one seed, got {text!r}")
    return seeds


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def comma_list(convert):
    """An argparse type: ``"0.1,0.01"`` -> ``[0.1, 0.01]``, each item checked by ``convert``."""
    def parse(text: str) -> list:
        items = [t for t in text.replace(" ", "").split(",") if t]
        if not items:
            raise argparse.ArgumentTypeError(f"expected one or more comma-separated values, got {text!r}")
        return [convert(t) for t in items]
    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {value}")
    return value


def delimiter_arg(text: str) -> str:
    """``--delimiter ';'``, ``--delimiter tab`` (or ``'\\t'``) -> the one character."""
    from ..data.csv_layout import check_delimiter

    try:
        return check_delimiter(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("delimiter: ")) from None


def add_table_options(p, label_help: str = "label column of a CSV file, by name or index (default: the last)"):
    """``--label``, ``--header/--no-header`` and ``--delimiter``: how a CSV file is read."""
    p.add_argument("--label", default=None, metavar="COLUMN", help=label_help)
    p.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                   help="CSV: the first row holds column names (--no-header: it is data); default: guessed")
    p.add_argument("--delimiter", type=delimiter_arg, default=None, metavar="CHAR",
                   help="CSV: the cell separator, such as ';' or tab; default: guessed among , ; tab |")


def load_data(args, *, classes=None, stored_label=None):
    """The data of ``--data``, read as ``--label``, ``--header`` and ``--delimiter`` say.

    ``classes`` (a model's class names or class count) maps the labels onto a
    model's classes; ``stored_label`` (a model's training label column) is the
    label column of a CSV file when ``--label`` is not given and the file has it.
    """
    from ..data import datasets

    header, delimiter = getattr(args, "header", None), getattr(args, "delimiter", None)
    label = label_arg(getattr(args, "label", None))
    if getattr(args, "label", None) is None and stored_label is not None and str(args.data).lower().endswith(".csv"):
        label = _stored_label_of(args.data, stored_label, header, delimiter)
    return datasets.load(args.data, label=label, header=header, delimiter=delimiter, classes=classes,
                         progress=not getattr(args, "quiet", False))


def _stored_label_of(path, stored, header, delimiter):
    """The model's training label column, where the CSV file has it; else the last column."""
    from ..data.csv_layout import sniff_csv

    if not Path(path).is_file():
        return -1
    layout = sniff_csv(path, header=header, delimiter=delimiter, label=stored)
    if isinstance(stored, str):
        return stored if layout.header and stored in layout.columns else -1
    return stored if not layout.header and 0 <= stored < layout.n_columns else -1


def label_arg(text):
    """``--label 3`` is a column index, ``--label species`` a column name."""
    if text is None:
        return -1
    return int(text) if text.lstrip("-").isdigit() else text


def write_figure(path, draw, *args, **kwargs):
    """Draw one figure; a missing matplotlib costs the figure, not the run."""
    if path in (None, "-"):
        return None
    try:
        draw(*args, path=path, **kwargs)
    except ImportError as exc:
        print(f"flexnet: no figure written: {exc}", file=sys.stderr)
        return None
    return path


def check_output(path, option: str) -> None:
    """Refuse, before any work, an output path that cannot be written."""
    if path in (None, "-"):
        return
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name, such as {p / 'model.npz'}")
    if not p.parent.is_dir():
        raise UsageError(f"{option} {path}: the folder {p.parent} does not exist")


def with_suffix(path: str, tail: str) -> str:
    """``model.npz`` + ``-curves.png`` -> ``model-curves.png``."""
    root, _ = os.path.splitext(path)
    return root + tail


def text_table(rows, header, left: int = 1) -> str:
    """Rows of strings as aligned columns: the first ``left`` to the left, the rest right."""
    rows = [tuple(header)] + [tuple(r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    lines.insert(1, "-" * max(map(len, lines)))
    return "\n".join(lines)


def check_arch(arch, n_features: int, n_classes, data_name: str) -> list[int]:
    if arch is None:
        if n_classes is None:
            raise UsageError(f"--data {data_name}: labels are not class ids; give --arch explicitly")
        return [n_features, 128, 64, n_classes]
    if arch[0] != n_features:
        raise UsageError(
            f"--arch {','.join(map(str, arch))}: the first size must be the number of input features, "
            f"{n_features} for {data_name}; try --arch {n_features},{','.join(map(str, arch[1:]))}"
        )
    if n_classes is not None and arch[-1] < n_classes:
        raise UsageError(
            f"--arch {','.join(map(str, arch))}: the last size must be the number of classes, "
            f"{n_classes} for {data_name}"
        )
    return arch


class SigtermAsInterrupt:
    """SIGTERM raises KeyboardInterrupt (as Ctrl-C does), so a stopped run
    leaves a checkpoint, and the signals that arrived are remembered for the
    exit code (130 for Ctrl-C, 143 for SIGTERM).

    ``fit`` installs its own handlers while it trains, so the signal numbers
    are collected through ``signal.set_wakeup_fd``, which sees every signal
    whatever Python handler runs.
    """

    def __init__(self):
        self.received: set[int] = set()
        self.checkpoint = None  # set once training starts
        self.previous = None
        self._pipe = None
        self._old_fd = -1

    def _handler(self, signum, frame):
        self.received.add(signum)
        raise KeyboardInterrupt

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handler)
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            self._pipe = (r, w)
            self._old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        return self

    def __exit__(self, *exc):
        import signal

        if self._pipe is not None:
            signal.set_wakeup_fd(self._old_fd)
            self._drain()
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False

    def _drain(self) -> None:
        if self._pipe is not None:
            try:
                self.received.update(os.read(self._pipe[0], 256))
            except BlockingIOError:
                pass

    def exit_code(self) -> int:
        import signal

        self._drain()
        return 143 if signal.SIGTERM in self.received else 130

"""Helpers the commands share: exit codes, argparse types, data loading, tables, figures, output checks."""

from __future__ import annotations

import argparse
import hashlib
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


def add_threads_option(p, default: str = "chosen for the sizes at hand and the cores that are free") -> None:
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help=f"BLAS threads for the matrix products (default: {default})")


_LIMITS: list = []  # thread limits a command set; main() restores them


def limit_threads(args, net, rows: int) -> int:
    """Limit this process's BLAS threads for a pass of ``net`` over ``rows`` rows
    at a time: ``--threads``, or flexnet's choice. Returns the count; the
    limit lasts until the command returns."""
    from ..ops import threads
    from ..training.evaluation import largest_product

    count = args.threads or threads.choose(largest_product(net, rows))
    _LIMITS.append(threads.limit(count))
    return count


def restore_threads() -> None:
    """Undo the thread limits the command set (main() calls it as the command ends)."""
    while _LIMITS:
        _LIMITS.pop().restore_original_limits()


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


def check_figures(asked: bool) -> None:
    """Figures the user asked for (a path given, or --show) need matplotlib: without it,
    refuse before any work (exit 2 and what to install). Figures written only by
    default are skipped with a note instead (:func:`write_figure`)."""
    if asked:
        from ..data.extras import optional

        optional("matplotlib", "drawing figures")


def write_figure(path, draw, *args, **kwargs):
    """Draw one figure; a missing matplotlib costs a figure written by default, not the run."""
    if path in (None, "-"):
        return None
    try:
        draw(*args, path=path, **kwargs)
    except ImportError as exc:
        print(f"flexnet: no figure written: {exc}", file=sys.stderr)
        return None
    return path


def check_output(path, option: str, hint: str = "") -> None:
    """Refuse, before any work, an output path that cannot be written.

    What :func:`flexnet.filesystem.check_writable` refuses: a folder, a device,
    a named pipe or a socket in the file's place, a missing folder, a name too
    long for the file system, a folder where no file can be created (read-only
    file system, no permission). A run that would fail at its end fails here.
    """
    if path in (None, "-"):
        return
    from ..filesystem import check_writable

    try:
        check_writable(path)
    except OSError as exc:  # NotARegularFileError is one too
        text = exc.strerror if exc.errno is not None and exc.strerror else str(exc)  # no "[Errno 30]"
        raise UsageError(f"{option}: {text}{hint}") from None


def check_output_folder(folder, option: str, names=()) -> None:
    """Refuse, before any work, an output folder that cannot be created or written,
    or whose files ``names`` could not be replaced (one of them a pipe or a folder)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{option} {folder}: is not a folder; give a folder for the output files")
    existing = folder
    while not existing.exists() and existing != existing.parent:  # mkdir makes the rest
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {folder}: {existing} is not a folder")
    if existing == folder and names:
        for name in names:
            check_output(folder / name, option)
        return
    from ..filesystem import check_writable

    try:  # a name of our own: can a file be created there at all?
        check_writable(existing / ".flexnet-write-check")
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise UsageError(f"{option} {folder}: no file can be created in {existing}: {reason}") from None


#: The longest file name most file systems allow, in bytes.
NAME_MAX = 255


def with_suffix(path: str, tail: str) -> str:
    """``model.npz`` + ``-curves.png`` -> ``model-curves.png``.

    A name that would grow past :data:`NAME_MAX` bytes is cut and ends in a short
    hash of the whole name, so any model name that can be saved also gets its
    figures and checkpoints, and different long names keep different files.
    """
    root, _ = os.path.splitext(path)
    folder, stem = os.path.split(root)
    if len(os.fsencode(stem + tail)) <= NAME_MAX:
        return root + tail
    digest = hashlib.sha256(os.fsencode(stem)).hexdigest()[:8]
    keep = NAME_MAX - len(os.fsencode(tail)) - len(digest) - 1
    stem = os.fsencode(stem)[:keep].decode("utf-8", errors="ignore")  # never half a character
    return os.path.join(folder, f"{stem}-{digest}{tail}")


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

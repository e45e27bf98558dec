"""Loggers: callbacks that write a run's progress to files other tools read.

- :class:`TensorBoard` writes event files that TensorBoard opens: every number
  of the epoch logs as a scalar (the tags are :class:`~flexnet.History`'s
  keys, the step is the epoch) and histograms of every parameter and of its
  gradient. It needs tensorboardX (``pip install "flexnet[tensorboard]"``).
- :class:`CSVLogger` writes one row per epoch to a CSV file, as Keras's
  logger of that name does.

Both write each epoch as soon as it ends (flushed, so a run that crashes
keeps every finished epoch), close their files when ``fit`` ends, whether it
returns or raises, and continue their files when a run resumes from a
checkpoint: no epoch is written twice.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from pathlib import Path

import numpy as np

from ..data.extras import optional
from ..filesystem import check_writable, open_regular, write_text
from .callbacks import Callback

__all__ = ["CSVLogger", "TensorBoard"]


def _path_arg(path, where: str) -> Path:
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise TypeError(f"{where}: expected a file path (str or os.PathLike), got {path!r}")
    return Path(os.fspath(path))


def _numbers(logs: dict) -> dict[str, float]:
    """The real numbers among an epoch's logs, by key."""
    return {k: float(v) for k, v in logs.items()
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)}


# -- TensorBoard ---------------------------------------------------------------------


class TensorBoard(Callback):
    """Write scalars and histograms that TensorBoard shows (``tensorboard --logdir DIR``).

    After every epoch, each number of the epoch's logs is written as a scalar
    whose tag is its :class:`~flexnet.History` key (``loss``, ``accuracy``,
    ``val_loss``, ``val_accuracy``, ``lr``, ``time`` and, with
    ``fit(diagnostics=True)``, ``grad_norm/layers.0.W`` ...) and whose step is
    the epoch number (from 1). Every ``histogram_every`` epochs it also writes
    a histogram of each parameter, tagged with its name (``layers.0.W``), and
    of the gradient of the epoch's last batch (``layers.0.W/grad``).

    Each fit writes one new event file in ``logdir``, flushed after every
    epoch and closed when ``fit`` ends, also when it raises (divergence,
    Ctrl-C). A run resumed from a checkpoint continues the same curves: its
    file starts with a marker that tells TensorBoard to drop the steps from
    the checkpoint's next epoch on, written by the process that was stopped
    after its checkpoint, so no epoch appears twice. A new run in a folder
    that already holds events adds its curves to the old ones: give each run
    a folder of its own (TensorBoard shows each subfolder of ``--logdir`` as
    a run).

    TensorBoard keeps scalars as float32, so the values read back equal
    History's to float32 precision.

    Args:
        logdir: the folder for the event files (created if missing).
        histogram_every: write histograms every this many epochs; 0 for none.

    Raises:
        MissingExtra: tensorboardX is not installed (an ImportError naming
            ``pip install "flexnet[tensorboard]"``).
        OSError: when training starts, ``logdir`` cannot be created or
            written (before any training).
    """

    def __init__(self, logdir, histogram_every: int = 1):
        self.logdir = _path_arg(logdir, "TensorBoard(logdir)")
        if isinstance(histogram_every, bool) or not isinstance(histogram_every, (int, np.integer)) \
                or histogram_every < 0:
            raise ValueError(f"TensorBoard(histogram_every): expected an integer >= 0 (0 for no "
                             f"histograms), got {histogram_every!r}")
        self.histogram_every = int(histogram_every)
        _tensorboardx()  # a missing package fails here, not when training starts
        self._events = None
        self.path: Path | None = None  # the event file of the current (or last) fit

    def on_train_begin(self, logs=None):
        logs = logs or {}
        self.close()
        _make_folder(self.logdir, "TensorBoard(logdir)")
        had_events = any(self.logdir.glob("events.out.tfevents.*"))
        self._events = _EventFile(_tensorboardx(), self.logdir)
        self.path = self._events.path
        if logs.get("resumed"):
            done = int(logs.get("epoch", 0))
            self._events.purge_from(done + 1)  # what a stopped process wrote after its checkpoint
            if not had_events and self.loop is not None:  # a logger added on resume: the run so far
                history = self.loop.history
                for i, epoch in enumerate(history.epoch):
                    row = {k: v[i] for k, v in history.history.items() if i < len(v)}
                    self._events.scalars(_numbers(row), epoch)
        self._events.flush()

    def on_epoch_end(self, epoch, logs=None):
        if self._events is None:
            return
        self._events.scalars(_numbers(logs or {}), epoch)
        if self.histogram_every and epoch % self.histogram_every == 0 and self.net is not None:
            for name, p, g in self.net.named_parameters():
                self._events.histogram(name, p, epoch)
                if g is not None:
                    self._events.histogram(f"{name}/grad", g, epoch)
        self._events.flush()

    def on_train_end(self, logs=None):
        self.close()

    def on_exception(self, exc, logs=None):
        self.close()

    def close(self) -> None:
        """Flush and close the event file (done by ``fit`` itself at its end)."""
        if self._events is not None:
            events, self._events = self._events, None
            events.close()

    def __repr__(self):
        return f"TensorBoard(logdir={str(self.logdir)!r}, histogram_every={self.histogram_every})"


def _tensorboardx():
    """tensorboardX's modules this logger writes with."""
    purpose = "the TensorBoard logger"
    return {"summary": optional("tensorboardX.summary", purpose),
            "event_pb2": optional("tensorboardX.proto.event_pb2", purpose),
            "writer": optional("tensorboardX.event_file_writer", purpose)}


def _make_folder(folder: Path, where: str) -> None:
    """Create ``folder`` (and its parents) and check a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(f"{where}: {folder} is a file, not a folder") from None
    except OSError as exc:
        raise OSError(exc.errno, f"{where}: cannot create the folder {folder}: {exc.strerror or exc}") from None
    try:
        check_writable(folder / "events.out.tfevents.check")
    except OSError as exc:
        raise OSError(exc.errno, f"{where}: cannot write in {folder}: {exc.strerror or exc}") from None


class _EventFile:
    """One event file, written synchronously: ``flush`` puts every event written so
    far on disk (tensorboardX's ``SummaryWriter`` hands events to a thread, so
    its ``flush`` may leave some behind)."""

    def __init__(self, tbx: dict, folder: Path):
        self._summary, self._pb = tbx["summary"], tbx["event_pb2"]
        # The name ends in a number above those of the folder's event files, so two
        # files opened within the same second never share a name and sort in order.
        numbers = [int(m.group(1)) for p in folder.glob("events.out.tfevents.*")
                   if (m := re.search(r"\.(\d{4,})$", p.name))]
        suffix = f".{max(numbers, default=0) + 1:04d}"
        self._writer = tbx["writer"].EventsWriter(os.path.join(folder, "events"), suffix)
        self.path = max(folder.glob(f"events.out.tfevents.*{suffix}"), key=lambda p: p.stat().st_mtime_ns)

    def _write(self, event) -> None:
        event.wall_time = time.time()
        self._writer.write_event(event)

    def purge_from(self, step: int) -> None:
        """Tell TensorBoard to drop the steps >= ``step`` written before this file."""
        pb = self._pb
        self._write(pb.Event(step=step, session_log=pb.SessionLog(status=pb.SessionLog.START)))

    def scalars(self, values: dict[str, float], step: int) -> None:
        summary = None  # one event holds the epoch's scalars
        for tag, value in values.items():
            one = self._summary.scalar(tag, value)
            if summary is None:
                summary = one
            else:
                summary.value.extend(one.value)
        if summary is not None:
            self._write(self._pb.Event(step=step, summary=summary))

    def histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        values = np.asarray(values)
        if values.size == 0 or not np.isfinite(values).all():
            return  # TensorBoard's histograms hold finite numbers only
        self._write(self._pb.Event(step=step, summary=self._summary.histogram(tag, values, 64)))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


# -- CSV ---------------------------------------------------------------------------


class CSVLogger(Callback):
    """Write one row per epoch to a CSV file: ``epoch`` and every :class:`~flexnet.History` key.

    Each row is written and flushed when its epoch ends, so a run that stops
    keeps every finished epoch. Numbers are written as Python prints them
    (``repr``), so reading them back gives History's values exactly.

    Args:
        path: the CSV file.
        append: False (default): a new run starts the file afresh. True: a
            new run adds its rows after those already there (its epochs
            counted from 1 again).
        separator: the character between fields.

    A run resumed from a checkpoint continues the file, whatever ``append``:
    rows of epochs after the checkpoint's (written by the process that was
    stopped) are dropped, and epochs of the run missing from the file are
    added from the checkpoint's history, so every epoch is there once. When a
    run logs a column the file does not have, the file is rewritten (whole,
    atomically) with the new column added at the end and left empty in the
    older rows.

    Raises:
        ValueError: when training starts, with ``append=True`` or on resume,
            ``path`` holds a file that is not such a log (its first column
            is not ``epoch``).
        OSError: when training starts, ``path`` cannot be written (before any
            training).
    """

    def __init__(self, path, append: bool = False, separator: str = ","):
        self.path = _path_arg(path, "CSVLogger(path)")
        if not isinstance(append, (bool, np.bool_)):
            raise TypeError(f"CSVLogger(append): expected True or False, got {append!r}")
        if not (isinstance(separator, str) and len(separator) == 1 and separator not in '"\r\n'):
            raise ValueError(f"CSVLogger(separator): expected one character other than a quote or a "
                             f"line break, got {separator!r}")
        self.append = bool(append)
        self.separator = separator
        self._file = self._writer = None
        self._columns: list[str] | None = None

    # -- the file ----------------------------------------------------------------

    def _read(self) -> tuple[list[str] | None, list[list[str]]]:
        """The header and rows of the file now at ``path`` (None, [] when empty or absent)."""
        if not self.path.exists():
            return None, []
        try:
            with open_regular(self.path, "r", encoding="utf-8", newline="") as f:
                reader = csv.reader(f, delimiter=self.separator, strict=True)
                table = [row for row in reader if row]
        except (UnicodeDecodeError, csv.Error) as exc:
            where = f", line {reader.line_num}" if isinstance(exc, csv.Error) else ""
            raise ValueError(f"CSVLogger: {self.path}{where} is not a log written by CSVLogger ({exc}); give "
                             "another file, or append=False to replace it") from None
        if not table:
            return None, []
        header, rows = table[0], table[1:]
        if header[0] != "epoch":
            raise ValueError(
                f"CSVLogger: {self.path} is not a log written by CSVLogger: its first column is "
                f"{header[0]!r}, expected 'epoch' (separator {self.separator!r}); give another file, or "
                f"append=False to replace it")
        for n, row in enumerate(rows, start=2):
            if not _is_int(row[0]):
                raise ValueError(f"CSVLogger: {self.path}, line {n}: the epoch is {row[0]!r}, expected a "
                                 "whole number")
        return header, rows

    def _rewrite(self, header: list[str] | None, rows: list[list[str]]) -> None:
        """Replace the file, whole or not at all."""
        text = io.StringIO()
        if header is not None:
            w = csv.writer(text, delimiter=self.separator, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)
        write_text(self.path, text.getvalue())

    def _open(self) -> None:
        self._file = open(self.path, "a", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file, delimiter=self.separator, lineterminator="\n")

    def _row(self, epoch: int, logs: dict) -> list[str]:
        return [str(int(epoch))] + [_text(logs.get(c)) for c in self._columns[1:]]

    # -- the hooks -----------------------------------------------------------------

    def on_train_begin(self, logs=None):
        logs = logs or {}
        self.close()
        try:
            check_writable(self.path)
        except OSError as exc:
            raise OSError(exc.errno, f"CSVLogger: {exc.strerror or exc}") from None
        if logs.get("resumed"):
            header, rows = self._read()
            done = int(logs.get("epoch", 0))
            kept = list(rows)
            while kept and int(kept[-1][0]) > done:  # written after the checkpoint
                kept.pop()
            last = int(kept[-1][0]) if kept else 0
            history = self.loop.history if self.loop is not None else None
            missing = [(i, e) for i, e in enumerate(history.epoch) if last < e <= done] if history else []
            self._columns = header
            if missing:  # epochs of the run the file lacks: from the checkpoint's history
                self._columns = _merged(header, ["epoch", *history.history])
                kept = [_pad(r, len(self._columns)) for r in kept]
                for i, epoch in missing:
                    kept.append(self._row(epoch, {k: v[i] for k, v in history.history.items() if i < len(v)}))
            if kept != rows or self._columns != header:
                self._rewrite(self._columns, kept)
        elif self.append:
            self._columns, _ = self._read()
        else:
            self._rewrite(None, [])  # a new run: a new file
            self._columns = None
        self._open()

    def on_epoch_end(self, epoch, logs=None):
        if self._file is None:
            return
        logs = logs or {}
        columns = ["epoch", *logs]
        if self._columns is None:
            self._columns = columns
            self._writer.writerow(columns)
        elif not set(columns) <= set(self._columns):  # a new column: the file is rewritten with it
            self.close()
            header, rows = self._read()
            self._columns = _merged(header, columns)
            self._rewrite(self._columns, [_pad(r, len(self._columns)) for r in rows])
            self._open()
        self._writer.writerow(self._row(epoch, logs))
        self._file.flush()

    def on_train_end(self, logs=None):
        self.close()

    def on_exception(self, exc, logs=None):
        self.close()

    def close(self) -> None:
        """Close the file (done by ``fit`` itself at its end)."""
        if self._file is not None:
            f, self._file, self._writer = self._file, None, None
            f.close()

    def __repr__(self):
        return f"CSVLogger({str(self.path)!r}, append={self.append}, separator={self.separator!r})"


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _merged(header: list[str] | None, columns: list[str]) -> list[str]:
    """``header`` with the ``columns`` it lacks added at the end."""
    header = list(header or ["epoch"])
    return header + [c for c in columns if c not in header]


def _pad(row: list[str], n: int) -> list[str]:
    return list(row) + [""] * (n - len(row))


def _text(value) -> str:
    """A field: empty when missing, numbers as ``repr`` (exact on reading back)."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)

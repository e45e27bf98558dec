"""Tables bigger than memory: a Parquet or CSV file read in blocks into a memmap cache.

``flexnet train --data big.parquet`` (and ``--data big.csv --stream``) never
holds the table in memory:

1. **one pass over the file**, a block of rows at a time (pyarrow: ``pip install
   "flexnet[tables]"``): the features go, as float32, into a scratch file in the
   cache folder; the labels (one number a row) stay in memory, and the class
   names are collected.
2. **the split and the scaler**: the validation rows are drawn from the labels
   as :func:`~flexnet.data.prepare.train_test_split` draws them, and the
   :class:`~flexnet.data.prepare.Scaler` is fitted on the training rows, a
   block at a time, to the same statistics it would take in memory.
3. **the cache**: the scaled table is written once, atomically, as a ``.npy``
   file (``<name>.<key>.npy``, the key a hash of the file, its size and time, and
   the options that shape the cache), which training then reads as a memmap;
   the labels and what the model keeps (class names, scaler) go beside it.
   A later run with the same file and options (``--resume``) reuses it.

Before anything is written the cache folder is checked: it must be writable
and hold the scratch file and the cache (twice the table's features as float32).
The same data read in memory trains the same weights, bit for bit.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..filesystem import (
    atomic_write,
    check_regular,
    check_writable,
    temporary_name,
    write_text,
)
from .errors import DataFileError
from .extras import optional
from .labels import class_ids
from .prepare import Scaler, train_test_split
from .sources import as_rows

__all__ = ["CacheError", "StreamedTable", "cache_table", "streams"]

#: Bytes of features per block read from a Parquet file.
BLOCK_BYTES = 16 * 2**20
#: Free space kept beyond what the cache needs (the file system's own margin).
SPARE_BYTES = 64 * 2**20
CACHE_VERSION = 1


class CacheError(OSError):
    """The cache folder cannot take the cache: not writable, or not enough free space."""


def streams(path, stream: bool) -> bool:
    """Whether ``--data path`` is read through the cache: Parquet always, CSV with ``--stream``."""
    suffix = Path(os.fspath(path)).suffix.lower()
    return suffix == ".parquet" or (stream and suffix == ".csv")


@dataclass
class StreamedTable:
    """A table in its cache: scaled features (a read-only memmap), class ids, and what a model keeps."""

    name: str
    cache: Path
    X: np.ndarray  # (N, features) float32 memmap, scaled, rows in the file's order
    y: np.ndarray  # (N,) class ids
    class_names: list[str] | None
    scaler: Scaler
    train_index: np.ndarray
    val_index: np.ndarray | None
    read_as: str | None = None
    label_column: str | int | None = None
    reused: bool = False
    info: dict = field(default_factory=dict)

    def parts(self):
        """``(X_train, y_train, validation)``: rows of the memmap by index (no copy);
        ``validation`` is ``(X_val, y_val)`` or None."""
        rows = as_rows(self.X, np.float32, "cache")
        X_train, y_train = rows[self.train_index], self.y[self.train_index]
        if self.val_index is None:
            return X_train, y_train, None
        return X_train, y_train, (rows[self.val_index], self.y[self.val_index])


# -- reading a table a block at a time ----------------------------------------------


class _MappedArrays:
    """What :func:`flexnet.data.tables.read_table` writes its rows into, with ``X`` a
    file mapped from disk (a sparse file ``bound`` rows long, cut to the rows read)."""

    def __init__(self, path: Path, bound: int, n_features: int, dtype, label: bool, labels_are_text: bool):
        self.path, self.n, self.dtype = path, 0, np.dtype(dtype)
        self.n_features = n_features
        self._map(max(bound, 1))
        self.y = None if not label else np.empty(max(bound, 1), np.int64 if labels_are_text else np.float64)

    def _map(self, rows: int) -> None:
        size = rows * max(self.n_features, 1) * self.dtype.itemsize
        with open(self.path, "r+b" if self.path.exists() else "w+b") as f:
            f.truncate(size)
            _reserve(f.fileno(), size)
        self.X = np.memmap(self.path, dtype=self.dtype, mode="r+", shape=(rows, self.n_features))

    def room(self, m: int) -> None:
        if self.n + m > len(self.X):
            grow = max(m, len(self.X) // 2)
            self.X.flush()
            self._map(len(self.X) + grow)
            if self.y is not None:
                self.y = np.concatenate([self.y, np.empty(grow, self.y.dtype)])

    def finish(self):
        self.X.flush()
        return self.X[:self.n], (None if self.y is None else self.y[:self.n])


def _reserve(fd: int, size: int) -> None:
    """Give the file its disk blocks now: a full disk is then an ``OSError``
    (ENOSPC) here, not a crash (SIGBUS) when a row is written through the mapping."""
    try:
        os.posix_fallocate(fd, 0, size)
    except (AttributeError, OSError) as exc:  # no such call, or a file system without it
        if isinstance(exc, OSError) and exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


def _read_csv(path: Path, scratch: Path, label, header, delimiter):
    from . import tables

    def sink(bound, n_features, dtype, label, labels_are_text):
        return _MappedArrays(scratch, bound, n_features, dtype, label, labels_are_text)

    table = tables.read_table(path, label, header=header, delimiter=delimiter, sink=sink)
    if table.labels is None:
        raise DataFileError(f"{path}: no label column to train on")
    y, class_names = class_ids(table.labels, table.label_names, where=table.where, source=str(path))
    label_column = table.label_name if table.label_name is not None else table.label_column
    return table.X, y, class_names, table.describe(), label_column


def _parquet_columns(path: Path, label):
    pq = optional("pyarrow.parquet", "reading Parquet files")
    pa = optional("pyarrow", "reading Parquet files")

    try:
        f = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataFileError(f"{path}: not a readable Parquet file ({exc})") from None
    names = list(f.schema_arrow.names)
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:  # columns are read by name: a name held by two would read one of them twice
        raise DataFileError(f"{path}: column name {twice[0]!r} is used by {names.count(twice[0])} columns; "
                            "expected distinct column names")
    if len(names) < 2:
        raise DataFileError(f"{path}: {len(names)} column(s); a table to train on needs features and a label column")
    if label is None or label == -1:
        j = len(names) - 1
    elif isinstance(label, str) and not label.lstrip("-").isdigit():
        if label not in names:
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            raise DataFileError(f"{path}: no column named {label!r}; the columns are {shown}")
        j = names.index(label)
    else:
        j = int(label)
        if not -len(names) <= j < len(names):
            raise DataFileError(f"{path}: label column {j} is out of range for {len(names)} columns")
        j %= len(names)
    for k, column in enumerate(f.schema_arrow):
        t = column.type
        if k != j and not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
            raise DataFileError(f"{path}: column {column.name!r} holds {t}, not numbers; every column but "
                                f"the label ({names[j]!r}) must hold numbers")
    return f, names, j


def parquet_rows(path) -> int:
    """The rows of a Parquet file, from its footer (nothing else is read)."""
    f, _, _ = _parquet_columns(Path(path), None)
    return f.metadata.num_rows


def _read_parquet(path: Path, scratch: Path, label):
    pa = optional("pyarrow", "reading Parquet files")
    pc = optional("pyarrow.compute", "reading Parquet files")

    f, names, j = _parquet_columns(path, label)
    n, features = f.metadata.num_rows, [k for k in range(len(names)) if k != j]
    if n == 0:
        raise DataFileError(f"{path}: the table has no rows; expected at least one row to train on")
    label_type = f.schema_arrow.field(j).type
    text = pa.types.is_string(label_type) or pa.types.is_large_string(label_type) or pa.types.is_dictionary(label_type)
    if not (text or pa.types.is_integer(label_type) or pa.types.is_floating(label_type)):
        raise DataFileError(f"{path}: label column {names[j]!r} holds {label_type}; expected class ids or names")
    out = _MappedArrays(scratch, n, len(features), np.float32, True, text)

    def read(group, columns):
        """Columns of a row group; a damaged page is refused naming the file and the rows."""
        try:
            return f.read_row_group(group, columns=columns, use_threads=False)
        except (pa.ArrowException, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise
            last = out.n + f.metadata.row_group(group).num_rows - 1
            raise DataFileError(f"{path} rows {out.n}..{last}: cannot be read ({exc})") from None

    def as_float(column):
        # unchecked, as numpy's astype: integers past 2**53 round to the nearest float64
        return pc.cast(column, pa.float64(), safe=False)

    codes: dict[str, int] = {}
    for group in range(f.metadata.num_row_groups):
        m = f.metadata.row_group(group).num_rows
        out.room(m)
        # A few columns at a time: a Parquet reader decodes whole pages (often a
        # column's whole chunk in a row group), so memory follows rows x columns read.
        width = max(1, BLOCK_BYTES // (12 * max(m, 1)))
        for c0 in range(0, len(features), width):
            cols = features[c0:c0 + width]
            part = read(group, [names[k] for k in cols])
            block = np.empty((m, len(cols)), np.float32)
            with np.errstate(over="ignore", invalid="ignore"):
                for i, k in enumerate(cols):
                    column = part.column(i)
                    if column.null_count:
                        row = out.n + int(np.flatnonzero(np.asarray(column.is_null()))[0])
                        raise DataFileError(f"{path} row {row}, column {names[k]!r}: missing value")
                    block[:, i] = np.asarray(as_float(column))
            if not np.isfinite(block).all():
                r, i = np.argwhere(~np.isfinite(block))[0]
                raise DataFileError(f"{path} row {out.n + int(r)}, column {names[cols[i]]!r}: "
                                    f"{part.column(int(i))[int(r)]} is not a finite float32 number")
            out.X[out.n:out.n + m, c0:c0 + len(cols)] = block
            del part, block
        column = read(group, [names[j]]).column(0)
        if column.null_count:
            row = out.n + int(np.flatnonzero(np.asarray(column.is_null()))[0])
            raise DataFileError(f"{path} row {row}, column {names[j]!r}: missing label")
        if text:
            values = [v.strip() for v in column.cast(pa.string()).to_pylist()]
            if "" in values:  # a blank name is a missing label, as in a CSV file
                raise DataFileError(f"{path} row {out.n + values.index('')}, column {names[j]!r}: missing label")
            out.y[out.n:out.n + m] = [codes.setdefault(v, len(codes)) for v in values]
        else:
            out.y[out.n:out.n + m] = np.asarray(as_float(column))
        out.n += m
    X, raw = out.finish()
    names_found = list(codes) if text else None

    def where(row):
        return f"{path} row {row}, column {names[j]!r}"
    y, class_names = class_ids(raw, names_found, where=where, source=str(path))
    return X, y, class_names, f"Parquet, {len(features)} feature columns, label column {names[j]!r}", names[j]


# -- the cache ----------------------------------------------------------------------


def cache_key(path: Path, options: dict) -> str:
    """A hash of the file (path, size, time) and the options that shape its cache."""
    st = os.stat(path)
    what = {"path": str(path.resolve()), "size": st.st_size, "mtime": st.st_mtime_ns,
            "version": CACHE_VERSION, **options}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _features_bound(path: Path, label, header, delimiter) -> tuple[int, int]:
    """(rows, features) at most, before reading: the footer of a Parquet file,
    the line breaks and first lines of a CSV file."""
    if path.suffix.lower() == ".parquet":
        f, names, _ = _parquet_columns(path, label)
        return f.metadata.num_rows, len(names) - 1
    from . import tables
    from .csv_layout import sniff_csv

    layout = sniff_csv(path, header=header, delimiter=delimiter, label=label)
    return tables.count_rows(path), max(layout.n_columns - 1, 1)


def check_cache_room(folder: Path, needed: int) -> None:
    """Refuse a cache folder that is not writable or has less than ``needed`` bytes free."""
    try:
        check_writable(folder / ".flexnet-cache-check")
    except OSError as exc:
        raise CacheError(exc.errno, f"cache folder {folder}: no file can be written there "
                                    f"({exc.strerror or exc})") from None
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    if free < needed + SPARE_BYTES:
        raise CacheError(errno.ENOSPC, f"cache folder {folder}: the cache needs {_mib(needed + SPARE_BYTES)} "
                                       f"free, the disk has {_mib(free)}; free some space or pass --cache "
                                       "with a folder on a larger disk")


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n >= 2**20 else f"{n:,} bytes"


def cache_table(path, *, label=-1, header=None, delimiter=None, cache_dir, scale: str = "minmax",
                val_split: float = 0.0, seed: int = 0) -> StreamedTable:
    """Read ``path`` (Parquet or CSV) a block at a time into a scaled memmap cache in ``cache_dir``.

    Returns a :class:`StreamedTable` whose parts are the rows ``flexnet train``
    would train and validate on in memory, scaled the same way.

    Raises:
        CacheError: the folder is not writable or its disk lacks the room.
        DataFileError: a cell, a row or a label that cannot be read.
        ValueError: a validation split that leaves a part empty.
    """
    path = Path(os.fspath(path))
    check_regular(path)
    folder = Path(os.fspath(cache_dir))
    options = {"label": label, "header": header, "delimiter": delimiter, "scale": scale,
               "val_split": float(val_split), "seed": int(seed)}
    key = cache_key(path, options)
    target = folder / f"{path.stem}.{key}.npy"
    side = folder / f"{path.stem}.{key}.json"
    labels = folder / f"{path.stem}.{key}.y.npy"
    found = _reuse(path, target, side, labels)
    if found is not None:
        return found
    rows, features = _features_bound(path, label, header, delimiter)
    check_cache_room(folder, 2 * rows * features * 4 + rows * 8)
    scratch = folder / temporary_name(target.name)  # a leftover of a killed run is removed by the next write
    try:
        if path.suffix.lower() == ".parquet":
            raw, y, class_names, read_as, label_column = _read_parquet(path, scratch, label)
        else:
            raw, y, class_names, read_as, label_column = _read_csv(path, scratch, label, header, delimiter)
        n = len(raw)
        train_index, val_index = np.arange(n), None
        if val_split:
            train_index, val_index, _, _ = train_test_split(np.arange(n), y, val_split, seed=seed, part="validation")
        raw_rows = as_rows(raw, np.float32, str(path))
        scaler = Scaler(scale, per_feature=True).fit(raw_rows[train_index])
        with atomic_write(target) as f:  # the header, then the scaled rows in the file's order
            np.lib.format.write_array_header_1_0(
                f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                    "shape": raw.shape})
            for _, block in raw_rows.blocks():
                f.write(scaler.transform(block).tobytes())
        del raw, raw_rows
    finally:
        try:
            os.unlink(scratch)
        except OSError:
            pass
    with atomic_write(labels) as f:
        np.save(f, y, allow_pickle=False)
    info = {"version": CACHE_VERSION, "source": str(path.resolve()), "rows": int(n),
            "class_names": class_names, "scaler": scaler.to_dict(), "read_as": read_as,
            "label_column": label_column, "val_split": float(val_split), "seed": int(seed),
            "train_index_crc": _crc(train_index), "val_index_crc": None if val_index is None else _crc(val_index)}
    write_text(side, json.dumps(info, indent=1))  # last: its presence says the cache is whole
    table = _reuse(path, target, side, labels, train_index, val_index)
    table.reused = False
    return table


def _crc(a: np.ndarray) -> str:
    import zlib

    return f"{zlib.crc32(np.ascontiguousarray(a, dtype=np.int64).tobytes()):08x}"


def _reuse(path: Path, target: Path, side: Path, labels: Path, train_index=None, val_index=None):
    """The cache written before for this file and these options, or None."""
    try:
        info = json.loads(side.read_text())
        X = np.load(target, mmap_mode="r", allow_pickle=False)
        y = np.load(labels, allow_pickle=False)
        scaler = Scaler.from_dict(info["scaler"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if X.ndim != 2 or X.dtype != np.float32 or len(X) != info.get("rows") or y.shape != (len(X),):
        return None
    if train_index is None:  # drawn again from the labels: cheap, and what the key's options say
        train_index, val_index = np.arange(len(X)), None
        if info.get("val_split"):
            train_index, val_index, _, _ = train_test_split(np.arange(len(X)), y, info["val_split"],
                                                            seed=info["seed"], part="validation")
        if _crc(train_index) != info.get("train_index_crc"):
            return None
    return StreamedTable(path.name, target, X, y, info.get("class_names"), scaler, train_index, val_index,
                         info.get("read_as"), info.get("label_column"), reused=True, info=info)

"""Arrays that are not in memory: rows read from a file or a Dask array as they are needed.

``fit``, ``evaluate`` and ``predict`` accept, besides a NumPy array,

- a :class:`numpy.memmap` (or the array ``np.load(path, mmap_mode="r")`` gives),
- the path of a ``.npy`` file, opened read-only with ``mmap_mode="r"``,
- a Dask array, computed a piece at a time.

:func:`as_rows` turns each of these into a :class:`Rows` object, which the
training loop treats like an array: ``len``, ``shape``, ``dtype``,
``take(idx, axis=0, out=...)`` to gather a batch, ``X[a:b]`` for a block of
consecutive rows (a NumPy array) and ``X[index_array]`` for a subset (another
:class:`Rows`, no copy: how a validation split holds out rows). Nothing here
ever reads the whole array into memory: checks walk it in blocks
(:meth:`Rows.blocks`), batches are gathered row by row.

The rows a batch gets are exactly those (and in the order) an in-memory
array would give, converted to the network's dtype the same way, so the same
seed trains bit-identical weights from a memmap, a Dask array or memory.
"""

from __future__ import annotations

import errno
import mmap
import os
from collections import OrderedDict

import numpy as np

from ..filesystem import check_regular

__all__ = ["BLOCK_BYTES", "DaskRows", "MemmapRows", "Rows", "as_rows", "is_npy_path", "is_streamed", "window_order"]

#: Bytes per block when a check walks the rows of a file (bounds the memory it needs).
BLOCK_BYTES = 16 * 2**20


#: The longest ``.npy`` header read: numpy's own limit for files it does not trust
#: (a numeric array's header takes about a hundred bytes).
MAX_HEADER_BYTES = 10_000


def _is_dask(x) -> bool:
    return type(x).__module__.split(".")[0] == "dask" and hasattr(x, "chunks") and hasattr(x, "compute")


def _maps_a_file(x) -> bool:
    """True for a memmap, or an array view whose memory is a file's mapping."""
    while isinstance(x, np.ndarray):
        if isinstance(x, np.memmap):
            return True
        x = x.base
    return isinstance(x, mmap.mmap)


def is_npy_path(x) -> bool:
    """True for a path (a string or ``os.PathLike``): data given by name, which
    :func:`open_npy` opens when it names a ``.npy`` file and refuses otherwise."""
    return isinstance(x, (str, bytes, os.PathLike))


def is_streamed(x) -> bool:
    """True for the inputs :func:`as_rows` reads a piece at a time (never whole)."""
    return isinstance(x, Rows) or _is_dask(x) or is_npy_path(x) or _maps_a_file(x)


class NotAnArrayFile(TypeError, ValueError):
    """A path given where an array belongs, naming no ``.npy`` file: a wrong kind of
    input (TypeError, as any non-numeric input is) and a wrong value (ValueError)."""


def open_npy(path, where: str) -> np.ndarray:
    """``np.load(path, mmap_mode="r")`` of a regular ``.npy`` file, with errors that name it."""
    path = os.fsdecode(path)
    if not path.lower().endswith(".npy"):
        raise NotAnArrayFile(f"{where}: expected an array or the path of a .npy file, got the path {path!r}; "
                         "load other files first (a table: flexnet.data.read_table, or `flexnet train --data`)")
    try:
        check_regular(path)  # a folder, a pipe: refused naming the path
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"{where}: no such file: {path}") from None
    with open(path, "rb") as f:  # numpy reads a header whole before judging its length
        head = f.read(12)
    if not head.startswith(b"\x93NUMPY"):  # a pickle, a zip (.npz), text: never handed to np.load
        raise ValueError(f"{where}: {path} is not a .npy array: expected a file that begins with "
                         f"b'\\x93NUMPY', got {head[:8]!r}")
    if head[6:7] in (b"\x01", b"\x02", b"\x03"):
        length = int.from_bytes(head[8:10] if head[6:7] == b"\x01" else head[8:12], "little")
        if length > MAX_HEADER_BYTES:
            raise ValueError(f"{where}: {path} is not a readable .npy array: its header claims {length:,} bytes, "
                             f"expected at most {MAX_HEADER_BYTES:,} (a damaged file)")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except OSError as exc:
        raise OSError(exc.errno, f"{where}: cannot open {path} as a .npy array: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{where}: cannot open {path} as a .npy array: {exc}") from None


def as_rows(x, dtype, where: str) -> Rows:
    """The :class:`Rows` of ``x`` (see :func:`is_streamed`), read as ``dtype``.

    Refuses, naming ``where``, what a network cannot take: not 2-D, no rows,
    a dtype that is not a number.
    """
    if isinstance(x, Rows):
        rows = x if x.dtype == dtype else x.as_dtype(dtype)
    else:
        if is_npy_path(x):
            x = open_npy(x, where)
        if _is_dask(x):
            if any(s != s for s in x.shape):  # NaN: sizes Dask only learns by computing
                raise ValueError(f"{where}: a Dask array with unknown chunk sizes (shape {x.shape}); expected "
                                 "known sizes: call .compute_chunk_sizes() on it first")
            rows = DaskRows(x, dtype)
        else:
            rows = MemmapRows(x, dtype)
    kind = rows.source_dtype.kind
    if kind not in "biuf":
        raise TypeError(f"{where}: expected a numeric array, got dtype {rows.source_dtype}")
    if len(rows.shape) != 2:
        raise ValueError(f"{where} expected a 2-D input of shape (batch, features), got shape {rows.shape}."
                         + (" Flatten it first: x.reshape(len(x), -1)." if len(rows.shape) > 2 else ""))
    if rows.shape[0] == 0:
        raise ValueError(f"{where} got an empty batch (shape {rows.shape}); expected at least one row")
    return rows


class Rows:
    """The rows of a 2-D array that lives outside memory (see the module's text).

    Subclasses define ``_gather(idx, out)`` (rows ``idx``, any order, into
    ``out``) and ``_block(start, stop)`` (consecutive rows as a NumPy array of
    ``dtype``); ``chunk_starts`` are the first rows of the storage's chunks,
    the units a windowed shuffle permutes.
    """

    ndim = 2
    shape: tuple
    dtype: np.dtype
    source_dtype: np.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype.name})"

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def take(self, idx, axis=0, out=None, mode="clip") -> np.ndarray:
        """Rows ``idx``, in that order, as an array of :attr:`dtype` (into ``out`` if given)."""
        if axis != 0:
            raise ValueError(f"{type(self).__name__}.take: rows only (axis=0), got axis={axis}")
        idx = np.asarray(idx, dtype=np.intp)
        if out is None:
            out = np.empty((len(idx),) + tuple(self.shape[1:]), self.dtype)
        if len(idx):
            self._gather(np.clip(idx, 0, len(self) - 1) if mode == "clip" else idx, out)
        return out

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self._block(start, max(start, stop))
            return self.take(np.arange(start, stop, step))
        index = np.asarray(key)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        if index.ndim == 1 and index.dtype.kind in "iu":
            return IndexedRows(self, index.astype(np.intp))
        raise TypeError(f"{type(self).__name__}: index with a slice or an array of row numbers, got {key!r}")

    def blocks(self, rows: int | None = None):
        """Yield ``(start, block)``: every row, once, in blocks of bounded size."""
        if rows is None:
            row_bytes = max(1, int(np.prod(self.shape[1:])) * max(self.dtype.itemsize, self.source_dtype.itemsize))
            rows = max(1, BLOCK_BYTES // row_bytes)
        for start in range(0, len(self), rows):
            yield start, self[start:start + rows]

    def chunk_ids(self) -> np.ndarray:
        """The storage chunk of each row (non-decreasing)."""
        return np.searchsorted(self.chunk_starts, np.arange(len(self)), side="right") - 1

    def cache_chunks(self, count: int) -> None:
        """Keep up to ``count`` computed chunks in memory (a Dask array's; others have no cache)."""

    def plan(self, order) -> None:
        """The rows the next batches will ask for, in order (an epoch's rest): a
        source that gains from reading ahead (a Dask array) reads them in large
        pieces. Asking for other rows is still answered, only more slowly."""

    def as_dtype(self, dtype) -> Rows:
        raise NotImplementedError

    # (overridden)
    chunk_starts: np.ndarray

    def _gather(self, idx: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def _block(self, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError


class MemmapRows(Rows):
    """Rows of an array mapped from a file (``np.memmap``, ``np.load(mmap_mode=...)``).

    A batch is one ``take`` from the mapping: the kernel reads the pages it
    touches and may drop them again, so only the batch is the process's own
    memory. A file whose dtype is not the network's is converted a batch at a
    time, exactly as ``astype`` would convert it whole.
    """

    #: Rows per chunk for a windowed shuffle of a file.
    CHUNK_ROWS = 65536

    def __init__(self, array, dtype):
        self.file = _file_of(array)  # (name, offset) of the rows in their file, when known
        array = np.asarray(array)  # a plain ndarray view of the mapping: no copy
        self.array = array
        self.shape = array.shape
        self.source_dtype = array.dtype
        self.dtype = np.dtype(dtype)
        self.chunk_starts = np.arange(0, max(len(array), 1), self.CHUNK_ROWS)

    def as_dtype(self, dtype) -> Rows:
        rows = MemmapRows(self.array, dtype)
        rows.file = self.file
        return rows

    def __reduce__(self):
        """Pickled as the file's name and place, never its rows: a worker process
        (a sweep's) maps the same file, and the page cache holds one copy for all."""
        if self.file is None:
            return super().__reduce__()
        name, offset = self.file
        return _map_rows, (name, offset, self.source_dtype.str, self.shape, self.dtype.str)

    def _gather(self, idx, out):
        if self.array.dtype == self.dtype:
            self.array.take(idx, axis=0, out=out, mode="clip")
        else:
            np.copyto(out, self.array.take(idx, axis=0, mode="clip"), casting="unsafe")

    def _block(self, start, stop):
        block = self.array[start:stop]
        return block if block.dtype == self.dtype else block.astype(self.dtype)


def _file_of(array):
    """``(file name, byte offset)`` of a C-contiguous array mapped from a file, else None."""
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
        return None
    mm, base = None, array
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap) and mm is None:
            mm = base
        base = base.base
    if mm is None or not isinstance(base, mmap.mmap) or getattr(mm, "filename", None) is None:
        return None
    start = mm.offset - mm.offset % mmap.ALLOCATIONGRANULARITY  # where the mapping starts in the file
    mapped = np.frombuffer(base, dtype=np.uint8)
    return mm.filename, start + array.ctypes.data - mapped.ctypes.data


def _map_rows(name, offset, source_dtype, shape, dtype) -> MemmapRows:
    rows = MemmapRows(np.memmap(name, dtype=np.dtype(source_dtype), mode="r", offset=offset, shape=tuple(shape)),
                      dtype)
    return rows


class DaskRows(Rows):
    """Rows of a Dask array, computed a piece at a time by Dask's scheduler
    (the default one, or the cluster of a ``distributed.Client``).

    A batch whose rows lie in few chunks (no shuffle, a windowed shuffle)
    is served from whole chunks kept in a small cache; a batch spread over many
    chunks (an exact shuffle) asks Dask for just its rows, sorted, which reads
    only those rows where the storage allows it (arrays, ``.npy`` and Zarr
    files) and whole chunks where it does not (tables, computed arrays): there a
    windowed shuffle is much faster.
    """

    #: Chunks larger than this are not kept in the cache unless asked for
    #: (:meth:`cache_chunks`, which a windowed shuffle calls).
    CACHE_CHUNK_BYTES = 64 * 2**20
    #: Bytes of planned rows (an exact shuffle's next batches) computed at once.
    AHEAD_BYTES = 32 * 2**20

    def __init__(self, array, dtype, cache: int | None = None):
        self.array = array
        self.shape = tuple(int(s) for s in array.shape)
        if any(s != s for s in array.shape) or any(c != c for c in array.chunks[0]):  # NaN: unknown sizes
            raise ValueError("a Dask array with unknown chunk sizes: call .compute_chunk_sizes() on it first")
        self.source_dtype = np.dtype(array.dtype)
        self.dtype = np.dtype(dtype)
        sizes = np.asarray(array.chunks[0], dtype=np.intp)
        self.chunk_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._ends = np.cumsum(sizes)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        if cache is None:
            row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
            cache = 2 if int(sizes.max(initial=0)) * row_bytes <= self.CACHE_CHUNK_BYTES else 0
        self._capacity = cache
        self._plan, self._plan_pos, self._ahead = None, 0, None

    def as_dtype(self, dtype) -> Rows:
        return DaskRows(self.array, dtype, self._capacity)

    def cache_chunks(self, count: int) -> None:
        self._capacity = max(int(count), 1)

    def __getstate__(self):  # the graph travels; computed chunks and plans do not
        return {**self.__dict__, "_cache": OrderedDict(), "_plan": None, "_plan_pos": 0, "_ahead": None}

    def plan(self, order) -> None:
        self._plan = np.asarray(order, dtype=np.intp)
        self._plan_pos = 0
        self._ahead = None

    def _read_ahead(self, pos: int) -> None:
        """Compute the planned rows from ``pos`` on, :attr:`AHEAD_BYTES` of them, in one go."""
        row_bytes = max(1, int(np.prod(self.shape[1:])) * self.dtype.itemsize)
        rows = self._plan[pos:pos + max(1, self.AHEAD_BYTES // row_bytes)]
        unique, inverse = np.unique(rows, return_inverse=True)
        self._ahead = (pos, pos + len(rows), self._compute(self.array[unique]), inverse)

    def _chunk(self, c: int) -> np.ndarray:
        block = self._cache.get(c)
        if block is None:
            block = self._compute(self.array[self.chunk_starts[c]:self._ends[c]])
            self._cache[c] = block
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(c)
        return block

    def _compute(self, lazy) -> np.ndarray:
        block = np.asarray(lazy.compute())
        return block if block.dtype == self.dtype else block.astype(self.dtype)

    def _gather(self, idx, out):
        pos, m = self._plan_pos, len(idx)
        planned = self._plan is not None and np.array_equal(self._plan[pos:pos + m], idx)
        if planned:
            self._plan_pos = pos + m
        chunk = np.searchsorted(self._ends, idx, side="right")
        wanted = np.unique(chunk)
        if len(wanted) <= self._capacity:  # few chunks (no shuffle, a window): from the cache
            if len(wanted) == 1:
                c = int(wanted[0])
                self._chunk(c).take(idx - self.chunk_starts[c], axis=0, out=out)
                return
            for c in wanted:
                c = int(c)
                where = np.flatnonzero(chunk == c)
                out[where] = self._chunk(c)[idx[where] - self.chunk_starts[c]]
            return
        if planned:  # an exact shuffle: the next batches' rows, read in one go
            if self._ahead is None or not self._ahead[0] <= pos < pos + m <= self._ahead[1]:
                self._read_ahead(pos)
            start, _, block, inverse = self._ahead
            block.take(inverse[pos - start:pos - start + m], axis=0, out=out)
            return
        order = np.argsort(idx, kind="stable")
        out[order] = self._compute(self.array[idx[order]])

    def _block(self, start, stop):
        if stop <= start:
            return np.empty((0,) + self.shape[1:], self.dtype)
        first = int(np.searchsorted(self._ends, start, side="right"))
        if self._capacity and stop <= self._ends[first]:  # inside one chunk: served (and kept) whole
            return self._chunk(first)[start - self.chunk_starts[first]:stop - self.chunk_starts[first]]
        return self._compute(self.array[start:stop])

    def blocks(self, rows=None):
        """Yield ``(start, block)`` one Dask chunk at a time (``rows`` ignored)."""
        for start, end in zip(self.chunk_starts, self._ends):
            if end > start:
                yield int(start), self._compute(self.array[start:end])


class IndexedRows(Rows):
    """Rows ``index`` of another :class:`Rows` (a validation split's parts): no copy."""

    def __init__(self, base: Rows, index: np.ndarray):
        if len(index) and (index.min() < -len(base) or index.max() >= len(base)):
            raise IndexError(f"row index out of range for {len(base)} rows")
        self.base = base
        self.index = np.where(index < 0, index + len(base), index).astype(np.intp)
        self.shape = (len(self.index),) + tuple(base.shape[1:])
        self.dtype, self.source_dtype = base.dtype, base.source_dtype

    def as_dtype(self, dtype) -> Rows:
        return IndexedRows(self.base.as_dtype(dtype), self.index)

    @property
    def chunk_starts(self):
        ids = self.base.chunk_ids()[self.index]
        return np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(1, np.intp)

    def chunk_ids(self):
        ids = self.base.chunk_ids()[self.index]
        return np.cumsum(np.r_[0, ids[1:] != ids[:-1]]) if len(ids) else ids

    def cache_chunks(self, count):
        self.base.cache_chunks(count)

    def plan(self, order):
        self.base.plan(self.index[np.asarray(order, dtype=np.intp)])

    def _gather(self, idx, out):
        self.base.take(self.index[idx], out=out)

    def _block(self, start, stop):
        return self.base.take(self.index[start:stop])


def window_order(rng: np.random.Generator, chunk_ids: np.ndarray, window: int) -> np.ndarray:
    """An epoch's row order that reads ``window`` chunks at a time.

    The chunks are put in a random order, cut into windows of ``window``
    consecutive chunks, and the rows of each window are permuted; so every row
    comes once, the same seed gives the same order, and a batch needs at most
    the chunks of its window (two windows at a boundary). ``chunk_ids`` gives
    each row's chunk (non-decreasing).
    """
    n = len(chunk_ids)
    starts = np.flatnonzero(np.r_[True, chunk_ids[1:] != chunk_ids[:-1]]) if n else np.zeros(0, np.intp)
    ends = np.r_[starts[1:], n]
    chunks = rng.permutation(len(starts))
    parts = []
    for w in range(0, len(chunks), window):
        rows = np.concatenate([np.arange(starts[c], ends[c]) for c in chunks[w:w + window]])
        parts.append(rng.permutation(rows))
    return np.concatenate(parts) if parts else np.arange(0)

"""The speed seam: every fast path a layer or an optimizer takes, behind a few named operations.

Layers and optimizers are written as their math reads. Where NumPy's plain
expression would cost a temporary array, an extra pass over memory or a slow
reduction, they call one of these instead, with the formula beside the call::

    ops.axpy(-lr, g, p)             # p -= lr * g, in place, one pass
    ops.matmul(x.T, dz, out=dW)     # dW = x.T @ dz, into last step's array
    ops.sum_batch(dz, out=db)       # db = dz.sum(axis=0, keepdims=True)
    ops.sum_features(p)             # p.sum(axis=1, keepdims=True)
    ops.positive(z, out=mask)       # mask = z > 0, into last batch's array
    ops.row_max(z)                  # z.max(axis=1, keepdims=True)
    ops.pick(s, y)                  # s[arange(N), y]
    ops.pick_add(g, y, -1)          # g[arange(N), y] -= 1

Which path an operation takes inside depends only on its arguments (their
dtype, shape and layout) and on whether SciPy is installed, never on what ran
before, so a run is reproducible bit for bit within one installation. The
reuse of an array (``out=``) never changes a result's bits; BLAS's ``axpy``
and NumPy's two steps may round differently, so the same run with and without
SciPy can differ in the last bits. BLAS thread limits live beside this
module, in :mod:`flexnet.ops.threads`.

Why these are faster, measured on W's shapes (a (64, 10) batch of logits):
NumPy's ``sum`` along an axis costs about three times a product with a row
of ones (one BLAS call); ``max`` along rows costs twice ``argmax`` plus a
flat ``take``; and NumPy has no fused ``y += a * x``, so ``p -= lr * g``
makes a temporary the size of the weights. BLAS's ``axpy`` does it in one
pass, and SciPy exposes it (``scipy.linalg.blas``), imported at the first
update, not with flexnet.
"""

from __future__ import annotations

import functools

import numpy as np

from .backend import (  # noqa: F401  (the seam's names for other array libraries)
    astype,
    copy,
    device,
    dtype,
    is_foreign,
    like,
    move,
    name_of,
    namespace,
    to_numpy,
    xp,
)

#: Elements per BLAS axpy call. OpenBLAS hands a longer axpy to its thread
#: pool, and SciPy's OpenBLAS is a second library beside NumPy's with a pool
#: of its own: on 2 cores the two pools spin against each other (epochs took
#: 25 times as long). Calls of at most 10,000 elements stay on this thread.
CHUNK = 10_000


@functools.cache
def _kernels() -> dict:
    """``{dtype: axpy}`` from SciPy's BLAS; empty without SciPy (cached)."""
    try:
        from scipy.linalg.blas import daxpy, saxpy
    except ImportError:
        return {}
    return {np.dtype(np.float32): saxpy, np.dtype(np.float64): daxpy}


def load() -> bool:
    """Import SciPy's BLAS now, if installed; True when axpy will use it.

    Call it before limiting BLAS threads: threadpoolctl limits only the
    libraries already loaded, and SciPy brings its own OpenBLAS.
    """
    return bool(_kernels())


@functools.lru_cache(maxsize=64)
def _pieces(n: int) -> tuple[tuple[int, int], ...]:
    """``(offset, count)`` of each BLAS call for ``n`` elements."""
    return tuple((start, min(CHUNK, n - start)) for start in range(0, n, CHUNK))


def _kernel(x: np.ndarray, y: np.ndarray):
    """SciPy's axpy for these arrays, or None where NumPy must do it: BLAS needs
    both C-contiguous, aligned and writeable, of one shape and dtype."""
    if x.flags.carray and y.flags.carray and x.shape == y.shape and x.dtype == y.dtype:
        return _kernels().get(y.dtype)
    return None


def _blas_axpy(kernel, xs: np.ndarray, ys: np.ndarray, a: float, pieces) -> None:
    for start, count in pieces:
        # positional (x, y, n, a, offx, incx, offy, incy): keywords cost more than the work
        out = kernel(xs, ys, count, a, start, 1, start, 1)
        if out is not ys:  # the wrapper copied after all: write the result back
            np.copyto(ys, out)


def axpy(a: float, x: np.ndarray, y: np.ndarray) -> None:
    """``y += a * x`` in place, in one pass when SciPy's BLAS can take the arrays.

    ``a == 0`` takes NumPy's two steps too: BLAS would skip the work, while
    NumPy, like PyTorch, still spreads a NaN in ``x``.
    """
    if type(y) is not np.ndarray:  # another library: the standard's in-place add
        y += a * x
        return
    kernel = _kernel(x, y)
    if kernel is None or a == 0:
        np.add(y, a * x, out=y)
    else:
        _blas_axpy(kernel, x.ravel(), y.ravel(), a, _pieces(y.size))  # flat views: both are contiguous


def prepare_axpy(x: np.ndarray, y: np.ndarray):
    """``f(a)`` doing ``axpy(a, x, y)``, for a pair updated at every step: the
    checks, the choice of kernel and the flat views are made once, not per call."""
    if type(y) is not np.ndarray:
        return lambda a: axpy(a, x, y)
    kernel = _kernel(x, y)
    if kernel is None:
        return lambda a: np.add(y, a * x, out=y)
    xs, ys, pieces = x.reshape(-1), y.reshape(-1), _pieces(y.size)

    def update(a: float) -> None:
        if a == 0 or not y.flags.writeable:  # a y frozen since must raise, not be written
            np.add(y, a * x, out=y)
            return
        for start, count in pieces:  # _blas_axpy, inlined: this runs for every parameter at every step
            out = kernel(xs, ys, count, a, start, 1, start, 1)
            if out is not ys:
                np.copyto(ys, out)
    return update


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b``, written into ``out`` when it can hold the result, saving an
    allocation per step; else a new array. Returns the result."""
    if type(a) is not np.ndarray:
        return a @ b
    # out fits: same shape and dtype as the result, and writeable (inline: this runs per layer and step)
    if out is not None and out.shape == (a.shape[0], b.shape[1]) and out.dtype == a.dtype == b.dtype \
            and out.flags.writeable:
        return np.matmul(a, b, out=out)
    return a @ b


def positive(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``z > 0``, written into ``out`` when it is a writeable bool array of z's shape.
    A layer's mask never leaves the layer, so batches of one size reuse one array.
    In another library the mask is in z's dtype (the standard multiplies no bools by floats)."""
    if type(z) is not np.ndarray:
        return astype(z > 0, dtype(z))
    if out is None or out.shape != z.shape or out.dtype.kind != "b" or not out.flags.writeable:
        out = np.empty(z.shape, dtype=bool)
    return np.greater(z, 0, out=out)


@functools.lru_cache(maxsize=16)
def ones(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A read-only array of ones, cached (batches keep their size)."""
    out = np.ones(shape, dtype=dtype)
    out.flags.writeable = False
    return out


def sum_batch(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a.sum(axis=0, keepdims=True)``, (N, F) -> (1, F), as ``ones((1, N)) @ a``;
    into ``out`` when it can hold the result."""
    if type(a) is not np.ndarray:
        return xp(a).sum(a, axis=0, keepdims=True)
    row = ones((1, len(a)), a.dtype)
    if out is not None and out.shape == (1, a.shape[1]) and out.dtype == a.dtype and out.flags.writeable:
        return np.dot(row, a, out=out)
    return np.dot(row, a)


def sum_features(a: np.ndarray) -> np.ndarray:
    """``a.sum(axis=1, keepdims=True)``, (N, C) -> (N, 1), as ``a @ ones((C, 1))``."""
    if type(a) is not np.ndarray:
        return xp(a).sum(a, axis=1, keepdims=True)
    return a @ ones((a.shape[1], 1), a.dtype)


@functools.lru_cache(maxsize=8)
def _row_starts(n: int, c: int) -> np.ndarray:
    """``[0, c, 2c, ...]``: where each row of a C-ordered (n, c) array starts in its flat view."""
    starts = np.arange(0, n * c, c)
    starts.flags.writeable = False
    return starts


def row_max(z: np.ndarray) -> np.ndarray:
    """``z.max(axis=1, keepdims=True)``, (N, C) -> (N, 1), read at each row's argmax."""
    if type(z) is not np.ndarray:
        return xp(z).max(z, axis=1, keepdims=True)
    return z.take(_row_starts(*z.shape) + z.argmax(axis=1))[:, None]


def pick(a: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``a[arange(N), ids]``: one entry per row, (N,), by flat index."""
    if type(a) is not np.ndarray:
        space, n, c = xp(a), *a.shape
        starts = space.arange(0, n * c, c, device=device(a))
        return space.take(space.reshape(a, (-1,)), starts + space.asarray(ids, device=device(a)))
    return a.take(_row_starts(*a.shape) + ids)


def pick_add(a: np.ndarray, ids: np.ndarray, value: float) -> np.ndarray:
    """``a[arange(N), ids] += value``, in place for NumPy; returns ``a``. ``a`` must be
    C-contiguous (a fresh copy is): the flat view of any other layout is a copy, and
    would be written instead. Another library returns ``a + value * one_hot(ids)``
    (the standard has no assignment through an index array), equal bit for bit."""
    if type(a) is not np.ndarray:
        space = xp(a)
        columns = space.arange(a.shape[1], device=device(a))[None, :]
        hot = columns == space.asarray(ids, device=device(a))[:, None]  # (N, C) one-hot, bool
        return a + value * astype(hot, dtype(a))
    a.reshape(-1)[_row_starts(*a.shape) + ids] += value
    return a


def total(a: np.ndarray) -> float:
    """``a.sum()`` of a 1-D array, calling the ufunc directly (no ``sum`` wrapper)."""
    if type(a) is not np.ndarray:
        return float(xp(a).sum(a))
    return np.add.reduce(a)


def count_nonzero(a) -> int:
    """How many entries of ``a`` are true (non-zero)."""
    if type(a) is not np.ndarray:
        return int(xp(a).count_nonzero(a))
    return int(np.count_nonzero(a))


def all_finite(a) -> bool:
    """True when no entry of ``a`` is NaN or infinite."""
    if type(a) is not np.ndarray:
        space = xp(a)
        return bool(space.all(space.isfinite(a)))
    return bool(np.isfinite(a).all())


def maximum_into(a, b) -> None:
    """``a = maximum(a, b)`` in place."""
    if type(a) is not np.ndarray:
        a[...] = xp(a).maximum(a, b)
    else:
        np.maximum(a, b, out=a)

"""BLAS calls NumPy has no direct name for: the parameter updates' ``y += a * x``
and sums taken as products with ones.

NumPy has no fused multiply-add for arrays: ``p -= lr * g`` makes the
temporary ``lr * g`` and then subtracts it, two passes over memory and an
allocation the size of the parameter. BLAS's ``axpy`` does it in one pass,
in place. NumPy does not expose it, SciPy does (``scipy.linalg.blas``), so
when SciPy is installed the updates use it; without SciPy they use the two
NumPy operations. The BLAS call is the faster one at every size, a bias of
10 included (its call costs less than NumPy's). SciPy is imported at the
first update, not with flexnet (about 0.1 s, once per process).

Which path an array takes depends only on the array (its dtype and layout)
and on whether SciPy is installed, never on what ran before, so a
training run is reproducible bit for bit within one installation. The two
paths round differently (axpy may fuse the multiply and the add), so the
same run with and without SciPy can differ in the last bits.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def _kernels() -> dict | None:
    """``{dtype: axpy}`` from SciPy's BLAS, or None without SciPy (cached)."""
    try:
        from scipy.linalg.blas import daxpy, saxpy
    except ImportError:
        return None
    return {np.dtype(np.float32): saxpy, np.dtype(np.float64): daxpy}


def load() -> bool:
    """Import the kernels now, if SciPy is there; True when they are available.

    Call it before limiting BLAS threads with threadpoolctl, which limits only
    the libraries already loaded (SciPy brings its own copy of OpenBLAS).
    """
    return _kernels() is not None


#: Elements per axpy call. OpenBLAS hands an axpy of more than 10,000
#: elements to its thread pool, and SciPy's OpenBLAS is a second library beside
#: NumPy's, with a second pool: on a 2-core machine the two pools' threads
#: spin against each other, and an epoch on MNIST-sized data took 25 times as
#: long. Calls of at most 10,000 elements stay on the calling thread.
CHUNK = 10_000


def _kernel_for(x: np.ndarray, y: np.ndarray):
    """SciPy's axpy for these arrays, or None where NumPy must do it."""
    # carray: C-contiguous, aligned and writeable, what the wrapper can use in place
    if x.flags.carray and y.flags.carray and x.shape == y.shape and x.dtype == y.dtype:
        kernels = _kernels()
        return None if kernels is None else kernels.get(y.dtype)
    return None


def _pieces(n: int) -> list[tuple[int, int]]:
    """``(offset, count)`` of each BLAS call for ``n`` elements, at most CHUNK each."""
    return [(start, min(CHUNK, n - start)) for start in range(0, n, CHUNK)]


def _call(kernel, xs: np.ndarray, ys: np.ndarray, a: float, pieces) -> None:
    if a == 0:  # BLAS skips the work then; NumPy still spreads a NaN or inf in x, as PyTorch does
        np.add(ys, a * xs, out=ys)
        return
    for start, count in pieces:
        # positional (x, y, n, a, offx, incx, offy, incy): keywords cost more than the work
        out = kernel(xs, ys, count, a, start, 1, start, 1)
        if out is not ys:  # the wrapper copied after all: write the result back
            np.copyto(ys, out)


@functools.lru_cache(maxsize=16)
def ones(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A read-only array of ones, cached (batches keep their size).

    Sums along one axis of a small array are taken as a product with ones,
    ``ones((1, n)) @ a`` down the columns, ``a @ ones((c, 1))`` along the rows:
    one BLAS call, where NumPy's ``sum`` along an axis of a (64, 10) array
    costs three times as much.
    """
    out = np.ones(shape, dtype=dtype)
    out.flags.writeable = False
    return out


def axpy(a: float, x: np.ndarray, y: np.ndarray) -> None:
    """``y += a * x`` in place; ``x`` and ``y`` have the same shape and dtype."""
    kernel = _kernel_for(x, y)
    if kernel is None:
        y += a * x
    else:
        _call(kernel, x.ravel(), y.ravel(), a, _pieces(y.size))  # ravel: views, both are contiguous


def prepared_axpy(x: np.ndarray, y: np.ndarray):
    """A function ``f(a)`` that does ``y += a * x``, for arrays updated at every
    step: the checks, the choice of kernel and the flat views are made once."""
    kernel = _kernel_for(x, y)
    if kernel is None:
        def numpy_axpy(a):
            np.add(y, a * x, out=y)  # y += a * x
        return numpy_axpy
    xs, ys, pieces = x.ravel(), y.ravel(), _pieces(y.size)

    def blas_axpy(a):
        if not y.flags.writeable:  # frozen since: the flat view would still write
            raise ValueError("output array is read-only")
        _call(kernel, xs, ys, a, pieces)
    return blas_axpy


"""BLAS thread limits: how many threads the matrix products of a piece of work may use.

threadpoolctl does the work (it comes with the ``sweep`` extra); without it
these do nothing. Only libraries already loaded are limited, so SciPy's BLAS
(the updates' axpy, :func:`flexnet.ops.load`) is loaded first.
"""

from __future__ import annotations

from contextlib import contextmanager

from . import load


def limit(n: int | None) -> None:
    """Limit BLAS threads in this process for the rest of its life (None: leave them).

    A sweep worker calls this once: not restored on purpose, since with
    threaded Dask workers a trial that restored the limit would change it
    under a trial still running.
    """
    if n is None:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with the sweep extra
        return
    load()
    threadpool_limits(limits=n)


@contextmanager
def limited(n: int):
    """BLAS threads limited to ``n`` inside the ``with`` block, restored after it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a plain install runs compare without it
        yield
        return
    load()
    with threadpool_limits(limits=n):
        yield


def in_use() -> int | None:
    """The BLAS thread count in force (None without threadpoolctl). A result's
    rounding depends on it, so sweep rows record it."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl comes with the sweep extra
        return None
    counts = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return max(counts) if counts else None

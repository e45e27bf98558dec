"""BLAS threads: how many a piece of work gets, and the limits that enforce it.

flexnet decides the thread count itself instead of inheriting what the BLAS
library starts with (one thread per core). More threads pay only when each
matrix product is big enough to split, and only while the cores are free:

- a product smaller than :data:`WORK_PER_THREAD` multiply-adds runs on one
  thread (W's largest, 64 x 784 x 128 = 6.4 million, gains nothing from a
  second thread; W-big's 256 x 784 x 512 = 103 million runs 1.7x faster);
- a core that another process keeps busy is not counted (:func:`busy_cores`): an OpenBLAS product
  split over two threads waits for the slower one, so with one of two cores
  busy W's epoch took 4.5x as long on two threads as on one;
- ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS``, when
  set, cap the count: they are the user's word.

:func:`choose` makes that decision, :func:`limited` applies it to a block of
code. threadpoolctl does the limiting; it is imported on first use, not with
flexnet. Only libraries already loaded are limited, so SciPy's BLAS (the
updates' axpy, :func:`flexnet.ops.load`) is loaded first.
"""

from __future__ import annotations

import functools
import math
import os
import time
from contextlib import contextmanager

from . import load

#: Multiply-adds of the largest matrix product per thread: below this, one thread
#: (benchmarks/thread_policy.py: a second thread starts to pay, on a quiet machine, around
#: 10 million; below that it gains at most a tenth, and loses several times that on a busy one).
WORK_PER_THREAD = 10_000_000
#: How many times :func:`busy_cores` looks at the machine, and how far apart (seconds).
LOOKS, LOOK_EVERY = 5, 0.002
_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cores() -> int:
    """CPU cores this process may use: its affinity mask where the OS has one,
    less where a container's CPU quota (cgroup v2 ``cpu.max``) allows fewer."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            count = min(count, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, count)


def env_cap() -> int | None:
    """The smallest thread count set in the BLAS/OpenMP environment variables, or None."""
    caps = []
    for var in _ENV:
        text = os.environ.get(var, "").strip()
        if text.isdigit() and int(text) > 0:
            caps.append(int(text))
    return min(caps) if caps else None


def _runnable_elsewhere() -> int | None:
    """Threads ready to run on the machine at this instant, less this process's
    own (its BLAS threads may still spin after their last product). From
    ``/proc``; None where there is none (not Linux)."""
    try:
        with open("/proc/stat") as f:
            running = next(int(line.split()[1]) for line in f if line.startswith("procs_running"))
        own = 0
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat") as f:
                    text = f.read()
            except OSError:  # a thread that has just ended
                continue
            own += text[text.rindex(")") + 2] == "R"  # the state follows the name in brackets
    except (OSError, StopIteration, ValueError):
        return None
    return max(0, running - own)


_seen = {"at": -math.inf, "busy": 0.0}


def busy_cores(looks: int = LOOKS, every: float = LOOK_EVERY) -> float:
    """How many cores other processes keep busy now: the mean count of their
    threads ready to run, over ``looks`` looks ``every`` seconds apart (10 ms).

    0.0 where the OS does not say (not Linux). A look less than a second old is
    reused, so that many short fits in a row do not each wait.
    """
    if time.monotonic() - _seen["at"] < 1.0:
        return _seen["busy"]
    counts = []
    for i in range(looks):
        if i:
            time.sleep(every)
        count = _runnable_elsewhere()
        if count is None:
            return 0.0
        counts.append(count)
    busy = sum(counts) / len(counts)
    _seen.update(at=time.monotonic(), busy=busy)
    return busy


def choose(work: int) -> int:
    """The BLAS thread count for matrix products of at most ``work`` multiply-adds.

    One thread per :data:`WORK_PER_THREAD` multiply-adds, at most one per free
    core (cores less those other processes keep busy) and at most the
    environment's cap. Small work returns 1 at once, without watching the machine.
    """
    most = min(cores(), env_cap() or cores(), max(1, int(work // WORK_PER_THREAD)))
    if most <= 1:
        return 1
    free = cores() - busy_cores()
    return max(1, min(most, math.floor(free + 0.5)))  # a core busy more than half the time is taken


@functools.cache
def _controller():
    from threadpoolctl import ThreadpoolController

    load()  # SciPy's BLAS too, so that it is limited with NumPy's
    return ThreadpoolController()


def limit(n: int | None):
    """Limit BLAS threads in this process until told otherwise (None: leave them).

    A sweep worker calls this once: not restored on purpose, since with
    threaded Dask workers a trial that restored the limit would change it
    under a trial still running. Returns threadpoolctl's limiter, whose
    ``restore_original_limits()`` undoes it (None when ``n`` is None).
    """
    if n is not None:
        return _controller().limit(limits=n, user_api="blas")
    return None


@contextmanager
def limited(n: int | None):
    """BLAS threads limited to ``n`` inside the ``with`` block, restored after it (None: as they are)."""
    if n is None:
        yield
        return
    with _controller().limit(limits=n, user_api="blas"):
        yield


def in_use() -> int | None:
    """The BLAS thread count in force (None when no BLAS library is seen).
    A result's rounding may depend on it, so History and sweep rows record it."""
    counts = [lib.num_threads for lib in _controller().lib_controllers if lib.user_api == "blas"]
    return max(counts) if counts else None

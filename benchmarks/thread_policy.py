"""Is flexnet's thread choice right? One epoch of fit at each fixed thread count, against the choice.

    python benchmarks/thread_policy.py           # a quiet machine
    python benchmarks/thread_policy.py --busy    # another process keeps one core busy

For networks from the tutorial's sizes to W-big's, each trained for one epoch
of MNIST-shaped random data with ``fit(threads=N)`` for N = 1, 2, 4 ... up to
the cores, and with flexnet's own choice (``threads=None``). The runs go in
turns (1, 2, ..., choice), each first in turn, and the table gives medians, the count
flexnet chose, and its time over the best fixed count's.
:data:`flexnet.ops.threads.WORK_PER_THREAD` comes from this table: the
largest product (batch x the largest weight matrix, in multiply-adds) at
which a second thread starts to pay.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
from workers import Spinner  # noqa: E402

import flexnet  # noqa: E402
from flexnet.ops import threads  # noqa: E402

#: (layer sizes, batch size): small to big largest products.
CASES = [
    ([64, 256, 128, 10], 32),     # the README's digits network: 0.5 M
    ([784, 128, 64, 10], 64),     # W: 6.4 M
    ([784, 256, 128, 10], 64),    # 12.8 M
    ([784, 128, 64, 10], 256),    # 25.7 M
    ([784, 512, 256, 10], 128),   # the README's Fashion-MNIST network: 51 M
    ([784, 512, 512, 10], 256),   # W-big: 103 M
]


def one_epoch(sizes, batch, X, y, count) -> tuple[float, int]:
    net = flexnet.Network(sizes, seed=0)
    t0 = time.perf_counter()
    history = flexnet.fit(net, X, y, epochs=1, batch_size=batch, lr=0.1, seed=0, progress=False, threads=count)
    return time.perf_counter() - t0, history.params["threads"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=20_000, help="rows per epoch (default 20,000)")
    p.add_argument("--reps", type=int, default=5, help="runs of each count (default 5)")
    p.add_argument("--busy", action="store_true", help="keep one core busy with an unrelated process")
    args = p.parse_args(argv)
    counts = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= threads.cores()]
    rng = np.random.default_rng(0)
    spinner = Spinner() if args.busy else None
    time.sleep(0.5 if args.busy else 0)  # let the spinner start
    print(f"# {threads.cores()} cores{', one busy' if args.busy else ''}, {args.rows:,} rows, {args.reps} runs "
          f"each; WORK_PER_THREAD {threads.WORK_PER_THREAD:,}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| network | batch | largest product (M) | " + " | ".join(f"{n} thread(s) s" for n in counts)
          + " | flexnet's choice s | chose | choice / best |")
    print("|---" * (len(counts) + 6) + "|")
    try:
        for sizes, batch in CASES:
            X = rng.random((args.rows, sizes[0]), dtype=np.float32)
            y = rng.integers(0, sizes[-1], args.rows)
            one_epoch(sizes, batch, X[:2048], y[:2048], 1)  # warm-up
            fixed = {n: [] for n in counts}
            chosen, chose = [], []
            order = [*counts, None]
            for rep in range(args.reps):
                for n in order[rep % len(order):] + order[:rep % len(order)]:  # each goes first in turn
                    seconds, count = one_epoch(sizes, batch, X, y, n)
                    if n is None:
                        chosen.append(seconds)
                        chose.append(count)
                    else:
                        fixed[n].append(seconds)
            med = {n: statistics.median(v) for n, v in fixed.items()}
            mine = statistics.median(chosen)
            work = batch * max(a * b for a, b in zip(sizes[:-1], sizes[1:]))
            print(f"| {sizes} | {batch} | {work / 1e6:.1f} | " + " | ".join(f"{med[n]:.3f}" for n in counts)
                  + f" | {mine:.3f} | {'/'.join(str(c) for c in sorted(set(chose)))} | {mine / min(med.values()):.2f} |",
                  flush=True)
    finally:
        if spinner is not None:
            spinner.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

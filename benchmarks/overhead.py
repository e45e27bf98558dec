"""Where flexnet's time goes beyond the arithmetic, stage by stage, on workload W.

    python benchmarks/overhead.py              # 5 rounds of one epoch per variant, 1 BLAS thread
    python benchmarks/overhead.py --quick      # smoke run on 1,280 samples

The baseline is one training step written out by hand in NumPy: the same
products (the sums as products with ones, as flexnet takes them), the same
fused softmax cross-entropy, the same one-pass update (SciPy's axpy when SciPy
is installed, prepared once), no classes, no checks. Each next variant hands one
more stage to flexnet's own code: the layers' forward, the loss, the backward
pass, the optimizer, and last ``flexnet.fit`` itself. With SciPy installed, one
more variant runs ``fit`` with NumPy's two-pass update, as an install without
SciPy would. Variants run interleaved
(A B C ... A B C ...) and the medians are compared, so the difference between
two neighbours is what that stage of flexnet costs over the bare arithmetic.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads its BLAS

import numpy as np  # noqa: E402

import flexnet  # noqa: E402
from flexnet import ops as _blas  # noqa: E402
from flexnet.ops import axpy, ones  # noqa: E402
from flexnet.optim import SGD  # noqa: E402

SIZES, BATCH, LR = [784, 128, 64, 10], 64, 0.1
STAGES = ["by hand", "+ layers' forward", "+ loss", "+ backward", "+ optimizer", "fit()"]
#: A last variant, not a stage: fit() with NumPy's two-pass update instead of SciPy's axpy.
NUMPY_UPDATE = "fit(), NumPy update"


def epoch(level: int, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
    """One epoch with the first ``level`` stages done by flexnet; returns seconds."""
    net = flexnet.Network(SIZES, seed=0)
    if level == len(STAGES) - 1:
        start = time.perf_counter()
        flexnet.fit(net, X, y, epochs=1, batch_size=BATCH, lr=LR, seed=int(rng.integers(2**31)))
        return time.perf_counter() - start
    layers, loss_fn, opt = net.layers, net.loss_fn, SGD(LR)
    linears = layers[::2]
    dW = [np.empty_like(lin.W) for lin in linears]
    db = [np.empty_like(lin.b) for lin in linears]
    xb, yb = np.empty((BATCH, SIZES[0]), np.float32), np.empty(BATCH, np.int64)
    starts = np.arange(0, BATCH * SIZES[-1], SIZES[-1])
    perm = rng.permutation(len(X))
    updates = None
    start = time.perf_counter()
    for b in range(len(X) // BATCH):
        idx = perm[b * BATCH:(b + 1) * BATCH]
        X.take(idx, axis=0, out=xb)
        y.take(idx, out=yb)
        if level >= 1:
            z = xb
            for layer in layers:
                z = layer.forward(z, True)
            h1, h2, m1, m2 = layers[2].x, layers[4].x, layers[1].mask, layers[3].mask
        else:
            (W0, b0), (W1, b1), (W2, b2) = [(lin.W, lin.b) for lin in linears]
            h1 = xb @ W0
            h1 += b0
            m1 = h1 > 0
            h1 = np.maximum(h1, 0)
            h2 = h1 @ W1
            h2 += b1
            m2 = h2 > 0
            h2 = np.maximum(h2, 0)
            z = h2 @ W2
            z += b2
        if level >= 2:
            loss_fn.forward(z, yb)
        else:
            s = z - z.take(starts + z.argmax(axis=1))[:, None]
            p = np.exp(s)
            total = p @ ones((SIZES[-1], 1), p.dtype)  # row sums
            p /= total
            float(np.add.reduce(np.log(total[:, 0]) - s.take(starts + yb)))
            loss_fn.p, loss_fn.y = p, yb
        if level >= 3:
            net.backward()
            if level == 3 and updates is None:
                grads = [g for _, _, g in net.named_parameters()]
        else:
            g = loss_fn.p.copy()
            g.reshape(-1)[starts + yb] -= 1
            g /= BATCH
            for i, h in ((2, h2), (1, h1), (0, xb)):
                np.matmul(h.T, g, out=dW[i])
                np.dot(ones((1, BATCH), g.dtype), g, out=db[i])  # column sums
                if i:
                    g = (g @ linears[i].W.T) * (m2 if i == 2 else m1)
            grads = [a for pair in zip(dW, db) for a in pair]
        if level >= 4:
            opt.step(net)
        else:
            if updates is None:  # the gradient arrays are the same from step to step
                updates = [(g_, p_) for (_, p_, _), g_ in zip(net.named_parameters(), grads)]
            for g_, p_ in updates:
                axpy(-LR, g_, p_)  # p -= lr * g
    return time.perf_counter() - start


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1,280 samples, one round")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per variant (default 5)")
    args = ap.parse_args(argv)
    n = 1280 if args.quick else 60_000
    rounds = args.rounds or (1 if args.quick else 5)
    rng = np.random.default_rng(0)
    X = rng.random((n, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], n)
    variants = list(range(len(STAGES))) + ([NUMPY_UPDATE] if _blas.load() else [])

    def run(variant) -> float:
        if variant != NUMPY_UPDATE:
            return epoch(variant, X, y, rng)
        kernels = _blas._kernels
        _blas._kernels = lambda: {}  # what an install without SciPy does
        try:
            return epoch(len(STAGES) - 1, X, y, rng)
        finally:
            _blas._kernels = kernels

    for variant in variants:
        run(variant)  # warm-up: imports, first allocations
    times: dict = {variant: [] for variant in variants}
    for _ in range(rounds):
        for variant in variants:
            times[variant].append(run(variant))
    steps = n // BATCH
    print(f"# W {SIZES}, batch {BATCH}, {n:,} samples, {rounds} interleaved rounds, "
          f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")
    print("| variant | median s | us per step | this stage costs (us per step) |")
    print("|---|---|---|---|")
    previous = None
    for level, name in enumerate(STAGES):
        med = statistics.median(times[level])
        extra = "" if previous is None else f"{(med - previous) / steps * 1e6:+.1f}"
        print(f"| {name} | {med:.3f} | {med / steps * 1e6:.1f} | {extra} |")
        previous = med
    if NUMPY_UPDATE in times:
        med = statistics.median(times[NUMPY_UPDATE])
        print(f"| {NUMPY_UPDATE} | {med:.3f} | {med / steps * 1e6:.1f} | "
              f"{(med - previous) / steps * 1e6:+.1f} against fit() |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""flexnet on a GPU (through the Array API) against PyTorch eager on the same GPU.

Three workloads, one epoch of SGD each on MNIST-shaped random data:

- W:     [784, 128, 64, 10], batch 64
- W-big: [784, 512, 512, 10], batch 256
- wide:  [784, 4096, 4096, 10], batch 1024

flexnet: ``Network(sizes, backend=..., device=...).fit(X, y)``, which moves the
data to the device once and gathers each batch there. PyTorch: the same layers
(``nn.Linear`` + ``nn.ReLU``, ``CrossEntropyLoss``, ``optim.SGD``), the data moved
to the device once, a permutation per epoch, ``loss.item()`` per batch (as
flexnet reads each batch's loss to stop on divergence). Both timings include the
one move of the data and end with a device synchronisation. Prints one row per
workload: medians of ``--reps`` runs and the ratio flexnet / PyTorch (target on
the wide net: within 1.5x).

    python benchmarks/gpu.py                       # PyTorch CUDA tensors
    python benchmarks/gpu.py --backend cupy        # CuPy arrays
    python benchmarks/gpu.py --device cpu --n 2048 --reps 1   # a smoke run without a GPU

Needs torch (with CUDA for the GPU), array-api-compat, and cupy for ``--backend cupy``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import flexnet  # noqa: E402

WORKLOADS = {
    "W": {"sizes": [784, 128, 64, 10], "batch": 64},
    "W-big": {"sizes": [784, 512, 512, 10], "batch": 256},
    "wide": {"sizes": [784, 4096, 4096, 10], "batch": 1024},
}


def data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)


def sync(backend: str) -> None:
    if backend == "cupy":
        import cupy
        cupy.cuda.Device().synchronize()
    else:
        import torch
        if torch.cuda.is_available():
            torch.cuda.synchronize()


def time_flexnet(spec, X, y, backend, device) -> float:
    net = flexnet.Network(spec["sizes"], seed=0, backend=backend, device=device)
    sync(backend)
    start = time.perf_counter()
    net.fit(X, y, epochs=1, batch_size=spec["batch"], optimizer="sgd", lr=0.01, seed=0, progress=False)
    sync(backend)
    return time.perf_counter() - start


def time_torch(spec, X, y, device) -> float:
    import torch
    sizes = spec["sizes"]
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    sync("torch")
    start = time.perf_counter()
    Xd, yd = torch.as_tensor(X, device=device), torch.as_tensor(y, device=device)
    perm = torch.randperm(len(X), generator=gen).to(device)
    bs = spec["batch"]
    for i in range(0, len(X), bs):
        idx = perm[i:i + bs]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(Xd[idx]), yd[idx])
        loss.backward()
        opt.step()
        loss.item()
    sync("torch")
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="torch", choices=["torch", "cupy"])
    p.add_argument("--device", default="cuda", help="torch device for both (default cuda; cupy uses its own)")
    p.add_argument("--n", type=int, default=60_000, help="rows of data (default 60000)")
    p.add_argument("--reps", type=int, default=3, help="timed runs each, after one warm-up (default 3)")
    p.add_argument("--workloads", default="W,W-big,wide")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)
    X, y = data(args.n)
    device = None if args.backend == "cupy" else args.device
    rows = []
    print(f"{'workload':8} {'flexnet s':>10} {'torch s':>10} {'ratio':>7}   ({args.backend}, {args.device}, n={args.n})")
    for name in args.workloads.split(","):
        spec = WORKLOADS[name]
        time_flexnet(spec, X[:4 * spec["batch"]], y[:4 * spec["batch"]], args.backend, device)  # warm-up
        time_torch(spec, X[:4 * spec["batch"]], y[:4 * spec["batch"]], args.device)
        mine, theirs = [], []
        for _ in range(args.reps):  # interleaved, so drift hits both alike
            mine.append(time_flexnet(spec, X, y, args.backend, device))
            theirs.append(time_torch(spec, X, y, args.device))
        row = {"workload": name, "flexnet_s": statistics.median(mine), "torch_s": statistics.median(theirs)}
        row["ratio"] = row["flexnet_s"] / row["torch_s"]
        rows.append(row)
        print(f"{name:8} {row['flexnet_s']:10.3f} {row['torch_s']:10.3f} {row['ratio']:7.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

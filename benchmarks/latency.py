"""Prediction latency: one row at a time, and a batch of 1,000, for the README's Fashion-MNIST MLP.

    python benchmarks/latency.py               # each library's default threads
    python benchmarks/latency.py --threads 1   # one thread for every library

The network is the README's Fashion-MNIST model, [784, 512, 256, 10] with
dropout 0.3 (an identity at inference); its weights do not change the time,
so it is built untrained. The task is what a service does with a request: a
float32 NumPy array in, the class probabilities out as a NumPy array.

- **flexnet**: ``net.predict_proba(x)``.
- **PyTorch eager**: the same weights through ``flexnet.to_torch``;
  ``model(torch.from_numpy(x)).softmax(1).numpy()`` under ``torch.inference_mode()``.
- **ONNX Runtime**: ``flexnet.to_onnx(net, path, probabilities=True)``, run by an
  ``InferenceSession`` (all graph optimisations, the CPU provider).

Each implementation runs in its own process (thread pools never share one).
Within it: 200 untimed calls, then blocks of calls timed with
``perf_counter`` (2,000 calls a block for one row, 20 for 1,000 rows); the
per-call time of a block is its time over its calls, and the process reports
the median block. The processes run in turns, three rounds (A B C A B C ...),
and the table gives the median of the rounds.

Targets: single-row ``predict`` no slower than PyTorch eager, and within 2x of
ONNX Runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = [784, 512, 256, 10]
IMPLS = {"flexnet": "flexnet predict_proba", "torch": "PyTorch eager (inference_mode)",
         "onnxruntime": "ONNX Runtime"}


def _median_call(fn, calls: int, blocks: int = 7) -> float:
    for _ in range(200):
        fn()
    per_call = []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        per_call.append((time.perf_counter() - t0) / calls)
    return statistics.median(per_call)


def worker(name: str, threads: int | None, folder: str) -> dict:
    import numpy as np

    import flexnet

    net = flexnet.Network(SIZES, dropout=0.3, seed=0)
    rng = np.random.default_rng(0)
    one = rng.random((1, SIZES[0]), dtype=np.float32)
    batch = rng.random((1000, SIZES[0]), dtype=np.float32)
    if name == "flexnet":
        from flexnet.ops import threads as blas

        with blas.limited(threads):
            return {"one": _median_call(lambda: net.predict_proba(one), 2000),
                    "batch": _median_call(lambda: net.predict_proba(batch), 20)}
    if name == "torch":
        import torch

        if threads:
            torch.set_num_threads(threads)
        model = flexnet.to_torch(net)

        def run(x):
            with torch.inference_mode():
                return model(torch.from_numpy(x)).softmax(1).numpy()

        return {"one": _median_call(lambda: run(one), 2000), "batch": _median_call(lambda: run(batch), 20),
                "version": torch.__version__, "threads": torch.get_num_threads()}
    import onnxruntime as ort

    path = os.path.join(folder, "fashion.onnx")
    flexnet.to_onnx(net, path, probabilities=True)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    return {"one": _median_call(lambda: session.run(None, {feed: one})[0], 2000),
            "batch": _median_call(lambda: session.run(None, {feed: batch})[0], 20), "version": ort.__version__}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=None, help="threads for every library (default: each one's own)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of every implementation in turn (default 3)")
    p.add_argument("--impls", default=",".join(IMPLS), help="comma-separated, from: " + ", ".join(IMPLS))
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.threads, args.folder)))
        return 0
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(HERE, "..", "src"), env.get("PYTHONPATH", "")])
    if args.threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.threads)
    names = [n for n in args.impls.split(",") if n]
    results: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for n in names:
                cmd = [sys.executable, os.path.abspath(__file__), "--worker", n, "--folder", folder]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=True)
                results[n].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {n: {k: statistics.median(r[k] for r in results[n]) for k in ("one", "batch")} for n in names}
    extra = {n: {k: v for k, v in results[n][0].items() if k not in ("one", "batch")} for n in names}
    print(f"# {SIZES}, threads: {args.threads or 'each library default'}; {args.rounds} rounds; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {extra}")
    print("| implementation | 1 row, us | 1,000 rows, ms | 1 row x flexnet |\n|---|---|---|---|")
    for n in names:
        ratio = med[n]["one"] / med["flexnet"]["one"] if "flexnet" in med else float("nan")
        print(f"| {IMPLS[n]} | {1e6 * med[n]['one']:.1f} | {1e3 * med[n]['batch']:.2f} | {ratio:.2f} |")
    if {"flexnet", "torch", "onnxruntime"} <= set(med):
        vs_torch = med["flexnet"]["one"] / med["torch"]["one"]
        vs_ort = med["flexnet"]["one"] / med["onnxruntime"]["one"]
        print(f"\n- one row, flexnet / PyTorch eager: {vs_torch:.2f} (target <= 1): {'met' if vs_torch <= 1 else 'NOT met'}")
        print(f"- one row, flexnet / ONNX Runtime: {vs_ort:.2f} (target <= 2): {'met' if vs_ort <= 2 else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "results": results, "median": med, "info": extra}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

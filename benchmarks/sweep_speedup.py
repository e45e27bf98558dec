"""Speed-up of a sweep on N local worker processes over the same sweep run serially.

    python benchmarks/sweep_speedup.py            # 1 vs 2 workers, 16 trials on the digits data
    python benchmarks/sweep_speedup.py --jobs 4 --epochs 10 --json speedup.json

Every trial uses one BLAS thread (the sweep's default), so N workers use N
cores; the serial run uses one core. The workers are started once before the
timed parallel run (``--cold`` times their start too). The script also checks
that both runs gave the same trials, number for number. It prints the load
average, since on a busy machine the numbers say more about the neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import flexnet


def _rows(result):
    return [{k: v for k, v in t.items() if k not in ("seconds", "worker")} for t in result.trials]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="workers of the parallel run (default 2)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial (default 20)")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per configuration (default 4)")
    parser.add_argument("--cold", action="store_true", help="also time starting the worker processes")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()

    data = "digits"
    grid = {"arch": [[64, 128, 64, 10], [64, 256, 10]], "optimizer": ["sgd", "adam"], "lr": 0.01,
            "batch_size": 32, "seed": list(range(args.seeds))}
    common = dict(epochs=args.epochs, save_best=False)
    n_trials = 2 * 2 * args.seeds

    if not args.cold:  # start the workers outside the timing (loky keeps them for the next call)
        flexnet.sweep(data, {"arch": [64, 10]}, epochs=1, jobs=args.jobs, save_best=False)
    load_before = os.getloadavg()
    start = time.perf_counter()
    serial = flexnet.sweep(data, grid, jobs=1, **common)
    t1 = time.perf_counter() - start
    start = time.perf_counter()
    parallel = flexnet.sweep(data, grid, jobs=args.jobs, **common)
    tn = time.perf_counter() - start
    load_after = os.getloadavg()

    same = _rows(serial) == _rows(parallel)
    # Seconds of training done per second of wall time: ~N when N workers each get a whole core.
    busy = sum(t["seconds"] for t in parallel.trials) / tn
    report = {
        "trials": n_trials, "epochs": args.epochs, "jobs": args.jobs, "serial_s": round(t1, 2),
        "parallel_s": round(tn, 2), "speedup": round(t1 / tn, 2), "busy_workers": round(busy, 2),
        "identical_trials": same,
        "worker_start_timed": args.cold, "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }
    print(f"{n_trials} trials ({args.epochs} epochs each) on digits, {os.cpu_count()} CPUs")
    print(f"  1 worker:  {t1:7.2f} s")
    print(f"  {args.jobs} workers: {tn:7.2f} s   speed-up {t1 / tn:.2f}x"
          + ("  (worker start included)" if args.cold else ""))
    print(f"  trials running at once, on average: {busy:.2f}")
    print(f"  identical trials: {same}")
    print(f"  load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if not same:
        raise SystemExit("the parallel run gave other numbers than the serial run")


if __name__ == "__main__":
    main()

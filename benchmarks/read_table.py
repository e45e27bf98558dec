"""Reading a big CSV table: time and peak memory of flexnet's two readers and of pandas.

    python benchmarks/read_table.py               # a 200 MB file: 64 float columns and a label
    python benchmarks/read_table.py --mb 20 --runs 5 --json read_table.json

Writes the file once (into --dir, a temporary folder by default), then reads
it in a fresh process per reader and run, so one reader's memory never counts
against another's:

- **flexnet pyarrow**: ``flexnet.data.read_csv(path, engine="pyarrow")``
  (the ``flexnet[tables]`` extra);
- **flexnet numpy**: the same with ``engine="numpy"``, what runs without the extra;
- **pandas**: ``pandas.read_csv(path)``, the reference the extra is held to
  (at most twice its time).

Each child imports its libraries first, then times the read alone. Peak memory
is the child's ``ru_maxrss``; "above start" subtracts what the process held
after its imports, and is compared with the final arrays' size: flexnet
promises at most twice the arrays plus a constant.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

CHILD = r"""
import json, resource, sys, time
import numpy as np
kind, path = sys.argv[1], sys.argv[2]
if kind == "pandas":
    import pandas as pd
else:
    import flexnet.data
    if kind == "flexnet-pyarrow":
        import pyarrow.csv  # noqa: F401  (imported before the clock starts, as pandas is)
start_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if kind == "pandas":
    frame = pd.read_csv(path)
    seconds = time.perf_counter() - t
    nbytes = int(frame.memory_usage(index=False).sum())
    rows = len(frame)
else:
    X, y = flexnet.data.read_csv(path, engine=kind.split("-")[1])
    seconds = time.perf_counter() - t
    nbytes = X.nbytes + y.nbytes
    rows = len(X)
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "rows": rows, "array_mib": nbytes / 2**20,
                  "start_mib": start_kib / 1024, "peak_mib": peak_kib / 1024}))
"""

READERS = ("flexnet-pyarrow", "flexnet-numpy", "pandas")


def write_csv(path: str, mb: float, columns: int, seed: int = 0) -> int:
    """A CSV of about ``mb`` megabytes: ``columns`` floats with 6 digits and an int label 0..9."""
    rng = np.random.default_rng(seed)
    block_rows = 2000
    with open(path, "w") as f:
        f.write(",".join(f"f{j}" for j in range(columns)) + ",label\n")
        rows = 0
        while f.tell() < mb * 1e6:
            X = rng.normal(size=(block_rows, columns))
            y = rng.integers(0, 10, block_rows)
            lines = [",".join(f"{v:.6g}" for v in row) + f",{c}" for row, c in zip(X.tolist(), y.tolist())]
            f.write("\n".join(lines) + "\n")
            rows += block_rows
    return rows


def run_child(kind: str, path: str) -> dict:
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", CHILD, kind, path], capture_output=True, text=True, env=env,
                          timeout=3600, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=200, help="size of the CSV file in MB (default 200)")
    parser.add_argument("--columns", type=int, default=64, help="feature columns (default 64)")
    parser.add_argument("--runs", type=int, default=3, help="reads per reader, taken in turn (default 3)")
    parser.add_argument("--readers", default=",".join(READERS), help=f"comma-separated, of {','.join(READERS)}")
    parser.add_argument("--dir", default=None, help="folder for the CSV file (default: a temporary one)")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = os.path.join(tmp, "table.csv")
        t = time.perf_counter()
        rows = write_csv(path, args.mb, args.columns)
        size = os.path.getsize(path)
        print(f"wrote {path}: {size / 1e6:.0f} MB, {rows:,} rows x {args.columns + 1} columns "
              f"({time.perf_counter() - t:.1f} s)")
        # The runs go round the readers in turn (A B C A B C ...), so a busy moment on the
        # machine falls on every reader alike; the table shows the median and the best.
        kinds = args.readers.split(",")
        runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
        for _ in range(args.runs):
            for kind in kinds:
                runs[kind].append(run_child(kind, path))
        results = {}
        for kind in kinds:
            ok = [r for r in runs[kind] if "error" not in r]
            if not ok:
                results[kind] = runs[kind][0]
                continue
            seconds = sorted(r["seconds"] for r in ok)
            results[kind] = {**ok[0], "seconds": seconds[len(seconds) // 2], "best_seconds": seconds[0],
                             "all_seconds": [r["seconds"] for r in ok],
                             "peak_mib": max(r["peak_mib"] for r in ok),
                             "above_start_mib": max(r["peak_mib"] - r["start_mib"] for r in ok)}
    pandas = results.get("pandas", {})
    print("\n| reader | median s | best s | median vs pandas | peak RSS (MiB) | above start (MiB) | "
          "arrays (MiB) | above start / arrays |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, r in results.items():
        if "error" in r:
            print(f"| {kind} | failed: {r['error']} |")
            continue
        vs = f"{r['seconds'] / pandas['seconds']:.2f}x" if "seconds" in pandas else "-"
        print(f"| {kind} | {r['seconds']:.2f} | {r['best_seconds']:.2f} | {vs} | {r['peak_mib']:.0f} | "
              f"{r['above_start_mib']:.0f} | {r['array_mib']:.0f} | {r['above_start_mib'] / r['array_mib']:.2f} |")
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(), "cpu": platform.processor(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "file_mb": size / 1e6, "rows": rows, "columns": args.columns + 1,
            "command": " ".join([os.path.basename(sys.executable)] + sys.argv)}
    for name in ("pandas", "pyarrow"):
        try:
            meta[name] = __import__(name).__version__
        except ImportError:
            meta[name] = None
    print(f"\n{meta['date']}, {meta['cpus']} CPUs, Python {meta['python']}, NumPy {meta['numpy']}, "
          f"pandas {meta['pandas']}, pyarrow {meta['pyarrow']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()

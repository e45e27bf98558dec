"""Training on data bigger than memory: memory, speed and equality of the sources.

    python benchmarks/streaming.py                      # a 4 GB file (if the disk holds it)
    python benchmarks/streaming.py --gb 0.5 --speed-gb 0.25 --reps 3 --json streaming.json

Writes, into --dir (a temporary folder by default), a ``.npy`` file of
``--gb`` GB of float32 rows of 784 features (random pixels, 10 classes), the
same table as a Parquet file, and measures:

- **memory**: one epoch of a ``[784, 128, 10]`` network, batch 128, each in a
  fresh process: on a 40 MB array in memory (the reference), on the big file
  (its path, opened as a memmap), on a Dask array over it (chunks of 65,536
  rows read from the file as they are computed: :func:`dask_over`; note that
  ``da.from_array`` copies a NumPy array or memmap it is given), and
  ``flexnet train --data big.parquet`` (one pass into the memmap cache, then
  the epoch). A thread samples ``RssAnon`` in ``/proc/self/status`` every 2 ms:
  the process's own memory, not the file's pages the kernel caches. The target:
  each peak under 300 MB above the 40 MB run's.
- **speed**: epochs of the same network on ``--speed-gb`` GB, from the file
  (in the page cache: read once before) and from the same rows in memory,
  alternated, ``--reps`` times each; the median ratio must stay at most 1.3.
- **equality**: weights after two epochs from memory, a memmap and a Dask
  array (exact shuffle), compared bit for bit.
- **windowed shuffling**: a Dask array whose chunks must be computed whole (an
  elementwise step over the file, as tables and computed arrays are): the time
  of an epoch with ``shuffle=True`` and ``shuffle="window"``, and what the
  window costs in accuracy on rows stored sorted by class.

The disk must hold the ``.npy`` file, the Parquet file and the cache of the
Parquet run (about 4 x ``--gb``): ``--gb`` is lowered to what fits, and the
report says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

FEATURES, CLASSES = 784, 10
ROW_BYTES = FEATURES * 4

CHILD = r"""
import json, sys, threading, time
import numpy as np
sys.path.insert(0, sys.argv[-1])
from streaming import dask_over

def anon_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024

kind, path, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
import flexnet
if kind == "dask":
    import dask.array as da
if kind == "parquet":
    import pyarrow.parquet  # noqa: F401
    from flexnet.cli import main
start = anon_mib()
peak = [start]
done = threading.Event()

def sample():
    while not done.is_set():
        peak[0] = max(peak[0], anon_mib())
        time.sleep(0.002)

t = threading.Thread(target=sample, daemon=True)
t.start()
t0 = time.perf_counter()
if kind == "parquet":
    cache = sys.argv[4]
    code = main(["train", "--data", path, "--label", "y", "--arch", "784,128,10", "--epochs", "1",
                 "--batch-size", "128", "--val-split", "0", "--quiet", "--figure", "-", "--threads", "1",
                 "--optimizer", "sgd", "--lr", "0.05", "--cache", cache, "--out", cache + "/model.npz"])
    assert code == 0
else:
    y = np.load(path.replace(".npy", ".y.npy"))
    if kind == "array":
        X = np.load(path, mmap_mode="r")[:rows].copy()  # the 40 MB reference, in memory
        y = y[:rows]
    elif kind == "memmap":
        X = path
    elif kind == "dask":
        X = dask_over(path, 65536)
    net = flexnet.Network([784, 128, 10], seed=0)
    net.fit(X, y, epochs=1, batch_size=128, lr=0.05, seed=0, threads=1, progress=False)
seconds = time.perf_counter() - t0
done.set()
t.join()
print(json.dumps({"kind": kind, "start_mib": start, "peak_mib": peak[0], "seconds": seconds}))
"""


class OnDisk:
    """A memmap as Dask should see it: shape, dtype and slicing, and no ``copy``
    (``da.from_array`` copies an array, a memmap included, that has one)."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        return self.array[key]


def dask_over(path: str, chunk_rows: int, rows: int | None = None):
    """A Dask array of the rows of a ``.npy`` file, read as they are computed."""
    import dask.array as da

    mm = np.load(path, mmap_mode="r")[:rows]
    return da.from_array(OnDisk(mm), chunks=(chunk_rows, mm.shape[1]), name=f"npy-{path}-{len(mm)}")


def write_data(folder: str, rows: int) -> str:
    """The .npy features (float32 in [0, 1)), their labels beside them, and the same table as Parquet."""
    path = os.path.join(folder, "big.npy")
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, FEATURES))
    rng = np.random.default_rng(0)
    centres = rng.random((CLASSES, FEATURES), dtype=np.float32)
    y = rng.integers(0, CLASSES, rows)
    step = 32768
    for start in range(0, rows, step):
        part = y[start:start + step]
        noise = rng.random((len(part), FEATURES), dtype=np.float32)
        X[start:start + step] = 0.03 * centres[part] + 0.97 * noise  # classes that overlap a little
    X.flush()
    np.save(path.replace(".npy", ".y.npy"), y)
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(f"p{j}", pa.float32()) for j in range(FEATURES)] + [("y", pa.int64())])
    with pq.ParquetWriter(os.path.join(folder, "big.parquet"), schema, compression="none") as w:
        for start in range(0, rows, step):
            block = np.asarray(X[start:start + step])
            columns = [pa.array(block[:, j]) for j in range(FEATURES)] + [pa.array(y[start:start + step])]
            w.write_table(pa.Table.from_arrays(columns, schema=schema))
    del X
    return path


def child(kind: str, path: str, rows: int, *extra) -> dict:
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([sys.executable, "-c", CHILD, kind, path, str(rows), *extra, here], capture_output=True,
                          text=True, timeout=3600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"{kind}: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.splitlines()[-1])


def read_through(path: str) -> None:
    """Bring the file into the page cache."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def speed(path: str, rows: int, reps: int) -> dict:
    import flexnet

    mm = np.load(path, mmap_mode="r")[:rows]
    y = np.load(path.replace(".npy", ".y.npy"))[:rows]
    in_memory = np.array(mm)
    read_through(path)
    times = {"memmap": [], "memory": []}

    def epoch(X):
        net = flexnet.Network([784, 128, 10], seed=0)
        h = net.fit(X, y[:len(X)], epochs=1, batch_size=128, lr=0.05, seed=0, threads=1, progress=False)
        return h.history["time"][0]

    epoch(in_memory[:2048])  # warm up
    for _ in range(reps):
        times["memmap"].append(epoch(mm))
        times["memory"].append(epoch(in_memory))
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"rows": rows, "seconds": times, "median": med, "ratio": med["memmap"] / med["memory"]}


def equality(path: str) -> dict:
    import dask.array as da

    import flexnet

    rows = 20000
    mm = np.load(path, mmap_mode="r")[:rows]
    y = np.load(path.replace(".npy", ".y.npy"))[:rows]
    sources = {"memory": np.array(mm), "memmap": mm, "dask": dask_over(path, 3000, rows),
               "dask (from_array)": da.from_array(mm, chunks=(3000, 784))}
    weights = {}
    for name, X in sources.items():
        net = flexnet.Network([784, 128, 10], seed=0, dropout=0.1)
        net.fit(X, y, epochs=2, batch_size=64, lr=0.05, seed=3, validation_split=0.1, threads=1, progress=False)
        weights[name] = [p.copy() for p in net.parameters().values()]
    same = {name: all(np.array_equal(a, b) for a, b in zip(weights["memory"], w)) for name, w in weights.items()}
    return {"rows": rows, "bit_identical": same}


def windowed(folder: str, rows: int) -> dict:
    """Exact vs windowed shuffling on a Dask array whose chunks are computed whole,
    over rows stored sorted by class (the hard case for a window)."""
    import flexnet

    rng = np.random.default_rng(1)
    centres = rng.random((CLASSES, FEATURES), dtype=np.float32)
    y = np.sort(rng.integers(0, CLASSES, rows))
    sorted_path = os.path.join(folder, "sorted.npy")
    X = np.lib.format.open_memmap(sorted_path, mode="w+", dtype=np.float32, shape=(rows, FEATURES))
    for start in range(0, rows, 32768):
        part = y[start:start + 32768]
        X[start:start + 32768] = 0.1 * centres[part] + 0.9 * rng.random((len(part), FEATURES), dtype=np.float32)
    X.flush()
    held = np.sort(rng.choice(rows, 5000, replace=False))
    X_held, y_held = np.asarray(X[held]), y[held]
    del X
    result = {"rows": rows, "chunk_rows": 8192}
    for shuffle in (True, "window", "window:16"):
        computed = dask_over(sorted_path, 8192) + np.float32(0)  # chunks computed whole
        net = flexnet.Network([784, 128, 10], seed=0)
        t = time.perf_counter()
        net.fit(computed, y, epochs=1, batch_size=128, lr=0.05, seed=0, shuffle=shuffle, threads=1,
                progress=False)
        seconds = time.perf_counter() - t
        acc = flexnet.evaluate(net, X_held, y_held)["accuracy"]
        result[str(shuffle)] = {"seconds": seconds, "accuracy": acc}
    os.unlink(sorted_path)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gb", type=float, default=4.0, help="size of the big file in GB (default 4)")
    ap.add_argument("--speed-gb", type=float, default=1.0, help="data for the speed comparison (default 1)")
    ap.add_argument("--window-rows", type=int, default=131072, help="rows for the windowed-shuffle part")
    ap.add_argument("--reps", type=int, default=5, help="epochs per source in the speed part (default 5)")
    ap.add_argument("--dir", default=None, help="folder for the files (default: a temporary one)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--reuse", action="store_true", help="reuse the files of an earlier run in --dir")
    ap.add_argument("--memory-kinds", default="memmap,dask,parquet", help="the big runs of the memory part")
    ap.add_argument("--skip", default="", help="parts to skip, comma-separated: memory,speed,equality,window")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    folder = args.dir or tempfile.mkdtemp(prefix="flexnet-streaming-")
    os.makedirs(folder, exist_ok=True)
    free = shutil.disk_usage(folder).free
    wanted = args.gb * 1e9
    fits = min(wanted, (free - 2e9) / 4.2)
    note = None
    if fits < wanted:
        note = f"the disk of {folder} has {free / 1e9:.1f} GB free: the file is {fits / 1e9:.2f} GB, not {args.gb} GB"
        print(note)
    rows = int(fits // ROW_BYTES)
    print(f"writing {rows:,} rows x {FEATURES} float32 ({rows * ROW_BYTES / 1e9:.2f} GB) and the same as Parquet "
          f"into {folder} ...", flush=True)
    t = time.perf_counter()
    path = os.path.join(folder, "big.npy")
    if args.reuse and os.path.exists(os.path.join(folder, "big.parquet")) and \
            np.load(path, mmap_mode="r").shape == (rows, FEATURES):
        print("  reusing the files there")
    else:
        path = write_data(folder, rows)
        print(f"  written in {time.perf_counter() - t:.0f} s", flush=True)
    results = {"meta": {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.node(),
                        "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                        "python": platform.python_version(), "numpy": np.__version__,
                        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
                        "rows": rows, "gb": rows * ROW_BYTES / 1e9, "note": note}}
    try:
        if "memory" not in skip:
            small = int(40e6 // ROW_BYTES)
            mem = {"array": child("array", path, small)}
            kinds = args.memory_kinds.split(",")
            for kind in ("memmap", "dask"):
                if kind in kinds:
                    mem[kind] = child(kind, path, rows)
            if "parquet" in kinds:
                cache = os.path.join(folder, "cache")
                os.makedirs(cache, exist_ok=True)
                mem["parquet"] = child("parquet", os.path.join(folder, "big.parquet"), rows, cache)
                shutil.rmtree(cache, ignore_errors=True)
            base = mem["array"]["peak_mib"]
            print("\nmemory: one epoch of [784, 128, 10], peak RssAnon (MiB); the 40 MB array is the reference")
            print("| data | rows | peak RssAnon | above the 40 MB run | seconds |")
            print("|---|---|---|---|---|")
            for kind, r in mem.items():
                n = small if kind == "array" else rows
                size = f"{n * ROW_BYTES / 1e9:.2f} GB" if kind != "array" else "40 MB"
                print(f"| {kind} ({size}) | {n:,} | {r['peak_mib']:.0f} | {r['peak_mib'] - base:+.0f} | "
                      f"{r['seconds']:.1f} |")
            results["memory"] = mem
        if "equality" not in skip:
            eq = equality(path)
            print(f"\nequality after 2 epochs ({eq['rows']:,} rows): {eq['bit_identical']}")
            results["equality"] = eq
        if "speed" not in skip:
            n = min(rows, int(args.speed_gb * 1e9 // ROW_BYTES))
            sp = speed(path, n, args.reps)
            print(f"\nspeed: one epoch on {n:,} rows ({n * ROW_BYTES / 1e9:.2f} GB), median of {args.reps}")
            print("| source | median s | all |\n|---|---|---|")
            for k in ("memory", "memmap"):
                print(f"| {k} | {sp['median'][k]:.2f} | {', '.join(f'{s:.2f}' for s in sp['seconds'][k])} |")
            print(f"ratio memmap / memory: {sp['ratio']:.3f}")
            results["speed"] = sp
        if "window" not in skip:
            w = windowed(folder, args.window_rows)
            print(f"\nwindowed shuffling: Dask chunks of {w['chunk_rows']} rows computed whole, rows sorted by "
                  f"class, one epoch on {w['rows']:,} rows; accuracy on 5,000 of them")
            print("| shuffle | seconds | held-out accuracy |\n|---|---|---|")
            for k in ("True", "window", "window:16"):
                print(f"| {k} | {w[k]['seconds']:.1f} | {100 * w[k]['accuracy']:.1f}% |")
            results["window"] = w
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

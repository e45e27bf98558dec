"""flexnet against PyTorch, scikit-learn, the plain tutorial code and the GEMM floor.

    python benchmarks/run.py              # full suite, each library's default threads, 5-10 minutes
    python benchmarks/run.py --threads 1  # one BLAS/OpenMP thread for every implementation
    python benchmarks/run.py --busy       # while one unrelated process keeps a core busy
    python benchmarks/run.py --quick      # smoke run on a sliver of the data, < 30 s

Without ``--threads`` every implementation runs with its default settings:
flexnet's ``fit`` chooses its own thread count, PyTorch uses its own, and
``flexnet-fit@N`` rows (``fit(threads=N)`` for N = 1, 2, 4 ... up to the cores)
show how far flexnet's choice is from its best fixed count. ``--busy`` starts
a process that spins on the CPU before the workers start and stops it at the end.

Every implementation runs in its own worker process, started once and kept
for all workloads, so thread pools (OpenBLAS's, PyTorch's OpenMP) never fight
inside one process and each process's memory is its own. For each workload
the workers first do untimed runs each (warm-up, then memory), then the
timed runs go round the workers in turn (A B C A B C ...), so that a busy
moment on the machine hits every implementation alike. The table reports the
median, min and max of the timed runs.

Memory is measured on a second untimed run, after the warm-up, so that
one-time costs (imports, lazy initialisation) are left out: the worker builds
a fresh model, frees what it can (gc and glibc's malloc_trim), notes its
resident set (VmRSS), resets the kernel's high-water mark
(``echo 5 > /proc/self/clear_refs``), runs, and reads the high-water mark
(VmHWM). "peak extra" is VmHWM - VmRSS: the buffers and temporaries a run
needs on top of the model, the data and the imported libraries; the absolute
VmHWM is reported too. The same method for every implementation, NumPy or
not (tracemalloc would miss PyTorch's allocations). Where
/proc/self/clear_refs is unavailable (not Linux) memory is reported as null.

Results go to stdout as a markdown table and to ``--json`` (default
``benchmarks/results.json``).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from impls import IMPLS, WORKLOADS, make_data, make_impl, workload  # noqa: E402
from workers import Spinner, Worker  # noqa: E402

DEFAULT_IMPLS = list(IMPLS)
#: The implementation the targets and the README quote.
HEADLINE = "flexnet-fit"


# -- worker side ----------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def worker(name: str, threads: int | None) -> None:
    """Serve one implementation: JSON commands on stdin, JSON replies on stdout.

    ``threads`` None: each library's default settings (PyTorch's own thread count)."""
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    impl = make_impl(name)()
    if threads and name in ("torch", "floor-torch"):
        import torch

        torch.set_num_threads(threads)
    for line in sys.stdin:
        cmd = json.loads(line)
        reply: dict = {}
        if cmd["cmd"] == "setup":
            spec = workload(cmd["workload"], cmd["quick"])
            impl.setup(spec, *make_data(spec))
            impl.make()
            t0 = time.perf_counter()
            impl.run()  # warm-up: first-call costs (lazy init, page faults) land here
            reply["cold_seconds"] = time.perf_counter() - t0
            impl.make()  # memory: a fresh model, one more run, steady state
            gc.collect()
            can_measure = _reset_peak()
            base = _status_kib("VmRSS")
            impl.run()
            peak = _status_kib("VmHWM")
            if can_measure and base is not None and peak is not None:
                reply["peak_rss_mib"] = peak / 1024
                reply["peak_extra_mib"] = (peak - base) / 1024
            else:
                reply["peak_rss_mib"] = reply["peak_extra_mib"] = None
        elif cmd["cmd"] == "run":
            impl.make()
            gc.collect()
            t0 = time.perf_counter()
            impl.run()
            reply["seconds"] = time.perf_counter() - t0
            if threads is None and getattr(impl, "threads_used", None) is not None:
                reply["threads"] = impl.threads_used  # default settings: the count fit chose
        elif cmd["cmd"] == "teardown":
            impl = make_impl(name)()
            gc.collect()
        out.write(json.dumps(reply) + "\n")
        out.flush()


# -- the machine ------------------------------------------------------------------


def blas_threads() -> int:
    """The thread count NumPy's BLAS uses here; PyTorch is given the same."""
    try:
        import numpy  # noqa: F401  (loads the BLAS library so threadpoolctl sees it)
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            if pool["user_api"] == "blas" and "numpy" in pool["filepath"]:
                return int(pool["num_threads"])
    except ImportError:
        pass
    return os.cpu_count() or 1


def machine() -> dict:
    import numpy

    info: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        from threadpoolctl import threadpool_info

        info["numpy_blas"] = [
            {k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")}
            for p in threadpool_info() if p["user_api"] == "blas" and "numpy" in p["filepath"]
        ]
    except ImportError:
        info["numpy_blas"] = None
    for mod in ("torch", "sklearn"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    return info


# -- the run ------------------------------------------------------------------------


def summarise(rows: list[dict]) -> None:
    """Add ratios to PyTorch and to the floors, per workload."""
    by = {(r["workload"], r["impl"]): r for r in rows}
    for r in rows:
        for key, ref in (("vs_torch", "torch"), ("vs_floor_numpy", "floor-numpy"), ("vs_floor_torch", "floor-torch")):
            other = by.get((r["workload"], ref))
            r[key] = r["median"] / other["median"] if other and other["median"] else None


def targets(rows: list[dict], meta: dict | None = None) -> list[dict]:
    """The goals set for flexnet, checked on this run's numbers."""
    by = {(r["workload"], r["impl"]): r for r in rows}
    checks = []
    meta = meta or {}
    if meta.get("threads") == "default":  # every library's default settings
        busy = bool(meta.get("busy"))
        for w in ("W", "W-big"):
            mine, torch = by.get((w, HEADLINE)), by.get((w, "torch"))
            fixed = [r for (wl, impl), r in by.items() if wl == w and impl.startswith(HEADLINE + "@")]
            if w == "W" and mine and torch:
                checks.append(_check(f"W, default settings{', one core busy' if busy else ''}: "
                                     "flexnet / PyTorch time", mine["median"] / torch["median"],
                                     0.5 if busy else 0.6))
            if mine and fixed:
                best = min(fixed, key=lambda r: r["median"])
                checks.append(_check(f"{w}, default settings{', one core busy' if busy else ''}: flexnet's "
                                     f"choice / its best thread count ({best['impl'].split('@')[1]})",
                                     mine["median"] / best["median"], 1.3 if busy else 1.15))
        return checks

    def check(what: str, value, limit: float) -> None:
        if value is not None:
            checks.append({"target": what, "value": round(value, 3), "limit": limit, "met": value <= limit})

    def get(w, impl, key):
        r = by.get((w, impl))
        return None if r is None else r.get(key)

    check("W: flexnet / PyTorch time", get("W", HEADLINE, "vs_torch"), 0.6)
    check("W: flexnet / GEMM floor (NumPy)", get("W", HEADLINE, "vs_floor_numpy"), 2.5)
    check("W-big: flexnet / PyTorch time", get("W-big", HEADLINE, "vs_torch"), 1.1)
    check("tiny: flexnet / PyTorch time", get("tiny", HEADLINE, "vs_torch"), 0.3)
    mem, tmem = get("W", HEADLINE, "peak_extra_mib"), get("W", "torch", "peak_extra_mib")
    if mem is not None and tmem:
        check("W: flexnet / PyTorch peak extra memory", mem / tmem, 1.0)
    f32, f64 = get("W", "flexnet-step", "median"), get("W", "flexnet-f64", "median")
    if f32 and f64:
        check("W: float64 / float32 time", f64 / f32, 2.0)
        g32, g64 = get("W", "floor-numpy", "median"), get("W", "floor-numpy-f64", "median")
        if g32 and g64:  # context, not a target: the BLAS's own float64 / float32 ratio
            checks[-1]["gemm_floor_ratio"] = round(g64 / g32, 3)
    return checks


def _check(what: str, value: float, limit: float) -> dict:
    return {"target": what, "value": round(value, 3), "limit": limit, "met": value <= limit}


def fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def table(rows: list[dict]) -> str:
    head = ("workload", "implementation", "median s", "min s", "max s", "samples/s",
            "x PyTorch", "x floor (NumPy)", "peak extra MiB", "peak RSS MiB")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        label = r["label"]
        if r.get("threads_chosen"):  # flexnet's own choice: say which counts it chose
            label += " [chose " + "/".join(str(c) for c in sorted(set(r["threads_chosen"]))) + "]"
        cells = (r["workload"], label, fmt(r["median"], ".3f"), fmt(r["min"], ".3f"),
                 fmt(r["max"], ".3f"), fmt(r["samples_per_s"], ",.0f"), fmt(r["vs_torch"], ".2f"),
                 fmt(r["vs_floor_numpy"], ".2f"), fmt(r["peak_extra_mib"], ".1f"),
                 fmt(r["peak_rss_mib"], ".0f"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny data, one timed run each")
    p.add_argument("--reps", type=int, default=None, help="timed runs per implementation (default 5; quick 1)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated, from: " + ", ".join(WORKLOADS))
    p.add_argument("--impls", default=",".join(DEFAULT_IMPLS), help="comma-separated, from: " + ", ".join(IMPLS))
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS/OpenMP threads for every implementation (default: each library's own "
                        "default, and flexnet's choice)")
    p.add_argument("--busy", action="store_true",
                   help="keep one core busy with an unrelated process during the run")
    p.add_argument("--gap", type=float, default=0.25,
                   help="seconds of rest before each timed run, so that the threads a library leaves "
                        "spinning after its run (OpenBLAS, OpenMP: about 0.1 s) do not slow the next (default 0.25)")
    p.add_argument("--json", default=os.path.join(HERE, "results.json"), help="where to write the results")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker, args.threads)
        return 0

    names = [s for s in args.impls.split(",") if s]
    if args.threads is None and args.impls == p.get_default("impls"):
        # flexnet's best fixed thread count, beside its own choice
        counts = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= (os.cpu_count() or 1)]
        names[1:1] = [f"flexnet-fit@{n}" for n in counts]
    loads = [s for s in args.workloads.split(",") if s]
    for s in names:
        try:
            make_impl(s)
        except KeyError:
            p.error(f"--impls: unknown implementation {s!r}; choose from {', '.join(IMPLS)} or flexnet-fit@N")
    for s in loads:
        if s not in WORKLOADS:
            p.error(f"--workloads: unknown workload {s!r}; choose from {', '.join(WORKLOADS)}")
    reps = args.reps if args.reps is not None else (1 if args.quick else 5)
    if reps < 1:
        p.error("--reps: expected at least 1")
    env = dict(os.environ)
    if args.threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.threads)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(HERE, "..", "src"), HERE, env.get("PYTHONPATH", "")])
    threads = args.threads or "default"
    meta = machine()
    if args.threads:
        for pool in meta["numpy_blas"] or []:
            pool["num_threads"] = threads  # what the workers run with (env set above)
    meta.update(threads=threads, busy=args.busy, reps=reps, quick=args.quick,
                command="python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(f"# {meta['cpu']}, {meta['cpus']} CPUs, {threads} threads{', one core busy' if args.busy else ''}; "
          f"numpy {meta['numpy']} "
          f"({(meta['numpy_blas'] or [{}])[0].get('internal_api')}), torch {meta['torch']}, "
          f"sklearn {meta['sklearn']}; {reps} timed runs each", file=sys.stderr)

    load = meta.get("load_average", [0])[0]
    if load > 0.5 * (meta["cpus"] or 1) and not args.busy:
        print(f"# warning: load average {load} on {meta['cpus']} CPUs; other jobs will disturb the "
              "timings, multi-threaded BLAS most (consider --threads 1)", file=sys.stderr)
    started = time.perf_counter()
    spinner = Spinner() if args.busy else None
    thread_args = ["--threads", str(args.threads)] if args.threads else []
    workers = {n: Worker(n, [sys.executable, os.path.abspath(__file__), "--worker", n, *thread_args], env)
               for n in names}
    rows = []
    finished = False
    try:
        for w in loads:
            spec = workload(w, args.quick)
            cold = {n: wk.ask(cmd="setup", workload=w, quick=args.quick) for n, wk in workers.items()}
            times: dict[str, list[float]] = {n: [] for n in names}
            chose: dict[str, list[int]] = {n: [] for n in names}
            for _ in range(reps):
                for n, wk in workers.items():
                    time.sleep(args.gap)
                    reply = wk.ask(cmd="run")
                    times[n].append(reply["seconds"])
                    if "threads" in reply:
                        chose[n].append(reply["threads"])
            for n, wk in workers.items():
                wk.ask(cmd="teardown")
            per_run = spec["n"] * spec.get("epochs", spec.get("passes", 1))
            for n in names:
                med = statistics.median(times[n])
                rows.append({
                    "workload": w, "impl": n, "label": make_impl(n).label, "seconds": times[n],
                    "median": med, "min": min(times[n]), "max": max(times[n]),
                    "samples_per_s": per_run / med if med > 0 else None, **cold[n],
                    **({"threads_chosen": chose[n]} if chose[n] else {}),
                })
            print(f"# {w} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
        finished = True
    finally:
        for wk in workers.values():
            wk.close(kill=not finished)
        if spinner is not None:
            meta["busy_cpu_seconds"] = spinner.stop()
    summarise(rows)
    try:
        meta["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    result = {"meta": meta, "workloads": {w: workload(w, args.quick) for w in loads},
              "results": rows, "targets": targets(rows, meta)}
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    print(table(rows))
    print()
    for t in result["targets"]:
        floor = f"; the GEMM floor's own ratio: {t['gemm_floor_ratio']:.2f}" if "gemm_floor_ratio" in t else ""
        print(f"- {t['target']}: {t['value']:.2f} (target <= {t['limit']}) {'met' if t['met'] else 'NOT met'}{floor}")
    print(f"\n# wrote {args.json} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

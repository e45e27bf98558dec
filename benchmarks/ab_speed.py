"""Paired speed comparison of two flexnet trees with the project's own benchmark.

    python benchmarks/ab_speed.py --old /work/venv_old/bin/python --new /work/venv/bin/python
    python benchmarks/ab_speed.py --old ... --new ... --rounds 7 --workloads W,tiny --impls flexnet-fit,flexnet-step

Each tree is named by a Python interpreter whose ``import flexnet`` gives that tree
(``--new`` defaults to the interpreter running this script). Every implementation
of each tree runs in its own worker process, served by that tree's own
``benchmarks/run.py --worker`` (so the workload code is the version that came with
its library) with that tree's ``src`` and ``benchmarks`` on ``PYTHONPATH``, as
run.py starts its workers. The workers speak run.py's protocol (one JSON command
a line: ``setup`` = untimed warm-up and memory run, ``run`` = one timed run on a
fresh model, ``teardown``); run.py itself is not imported here, because importing
it imports flexnet into this process.

For each workload every worker is set up, then the timed runs go round by round,
each implementation's old and new runs back to back, in alternating order (old new,
new old, old new, ...), so that a busy moment on the machine hits both trees alike.
The table gives, per workload and implementation, the median time of each tree,
new/old as the ratio of the medians, and the spread of the per-round ratios (the
new run divided by the old run of the same round: min and max). ``--threads``
(default 1) sets ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``/``MKL_NUM_THREADS``
in the workers, as run.py's ``--threads`` does.

Before timing, the benchmark files of both trees are compared: if run.py,
impls.py or plain.py differ that is printed; if the workload definitions
(``impls.WORKLOADS``) differ the comparison is refused. Results go to ``--json``
(default ``benchmarks/ab_results.json``) and a markdown table to stdout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workers import Worker  # noqa: E402  (stdlib only: flexnet is never imported here)

#: The files a run.py worker runs: the protocol, the workloads and implementations, the plain baseline.
BENCHMARK_FILES = ("run.py", "impls.py", "plain.py")
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
TREES = ("old", "new")

#: Run in each tree's interpreter: its flexnet, its workloads and its implementations' labels.
DESCRIBE = """
import json, flexnet, impls
print(json.dumps({"flexnet": flexnet.__file__, "workloads": impls.WORKLOADS,
                  "labels": {name: impl.label for name, impl in impls.IMPLS.items()}}))
"""


def clean_env() -> dict:
    """This process's environment without PYTHONPATH: the interpreter alone picks its flexnet."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


class Tree:
    """One source tree: its interpreter, its folder and the environment its workers run in."""

    def __init__(self, name: str, python: str, threads: int):
        self.name, self.python = name, python
        self.root = self._locate()
        self.bench = self.root / "benchmarks"
        if not (self.bench / "run.py").exists():
            raise SystemExit(f"--{name}: {self.root} has no benchmarks/run.py")
        self.env = clean_env()
        self.env.update({var: str(threads) for var in THREAD_VARS})
        self.env["PYTHONPATH"] = os.pathsep.join([str(self.root / "src"), str(self.bench)])
        described = self._python("-c", DESCRIBE)
        self.info = json.loads(described.splitlines()[-1])

    def _python(self, *args: str, env=None) -> str:
        """Run this tree's interpreter; its stdout, or exit with its error."""
        out = subprocess.run([self.python, *args], capture_output=True, check=False, text=True, timeout=300,
                             env=env or self.env)
        if out.returncode != 0:
            raise SystemExit(f"--{self.name} {self.python}: {' '.join(args)[:60]!r} failed:\n{out.stderr.strip()}")
        return out.stdout

    def _locate(self) -> Path:
        """The tree whose ``src/flexnet`` this interpreter imports."""
        where = self._python("-c", "import flexnet; print(flexnet.__file__)", env=clean_env())
        return Path(where.strip()).resolve().parents[2]  # <root>/src/flexnet/__init__.py

    def git(self) -> dict:
        """The tree's commit and whether its src/ has uncommitted changes (None outside git)."""
        def git(*args):
            out = subprocess.run(["git", "-C", str(self.root), *args], capture_output=True, check=False, text=True)
            return out.stdout.strip() if out.returncode == 0 else None
        status = git("status", "--porcelain", "--", "src")
        return {"commit": git("rev-parse", "--short", "HEAD"), "src_changed": bool(status)}


def compare_benchmark_code(old: Tree, new: Tree) -> dict:
    """Which benchmark files differ between the trees; refuses different workloads."""
    if old.info["workloads"] != new.info["workloads"]:
        raise SystemExit("the two trees define different workloads (impls.WORKLOADS); their times don't compare:\n"
                         f"old: {old.info['workloads']}\nnew: {new.info['workloads']}")
    return {f: "identical" if (old.bench / f).read_bytes() == (new.bench / f).read_bytes() else "differs"
            for f in BENCHMARK_FILES}


def time_workload(workload: str, workers: dict, impls: list[str], rounds: int, quick: bool) -> list[dict]:
    """Set up every worker, time ``rounds`` interleaved rounds; one row per implementation."""
    setup = {key: w.ask(cmd="setup", workload=workload, quick=quick) for key, w in workers.items()}
    times = {key: [] for key in workers}
    for r in range(rounds):
        order = TREES if r % 2 == 0 else TREES[::-1]
        for impl in impls:
            for tree in order:
                times[tree, impl].append(workers[tree, impl].ask(cmd="run")["seconds"])
    for w in workers.values():
        w.ask(cmd="teardown")
    rows = []
    for impl in impls:
        old, new = times["old", impl], times["new", impl]
        per_round = [n / o for n, o in zip(new, old)]
        rows.append({
            "workload": workload, "impl": impl,
            "old_seconds": old, "new_seconds": new,
            "old_median": statistics.median(old), "new_median": statistics.median(new),
            "ratio": statistics.median(new) / statistics.median(old),
            "round_ratios": per_round, "round_ratio_min": min(per_round), "round_ratio_max": max(per_round),
            "round_ratio_median": statistics.median(per_round),
            **{f"{tree}_{k}": setup[tree, impl].get(k) for tree in TREES
               for k in ("cold_seconds", "peak_extra_mib", "peak_rss_mib")},
        })
    return rows


def fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def table(rows: list[dict], labels: dict) -> str:
    head = ("workload", "implementation", "old median s", "new median s", "new/old",
            "per-round new/old (min-max)", "peak extra MiB old/new")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = (r["workload"], labels.get(r["impl"], r["impl"]), f"{r['old_median']:.4f}",
                 f"{r['new_median']:.4f}", f"{r['ratio']:.3f}",
                 f"{r['round_ratio_min']:.3f}-{r['round_ratio_max']:.3f}",
                 f"{fmt(r['old_peak_extra_mib'], '.1f')} / {fmt(r['new_peak_extra_mib'], '.1f')}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", required=True, help="Python interpreter of the old tree")
    p.add_argument("--new", default=sys.executable, help="Python interpreter of the new tree (default: this one)")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds per workload (default 7)")
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads in every worker (default 1)")
    p.add_argument("--workloads", default="W,W-big,tiny,infer", help="comma-separated (default W,W-big,tiny,infer)")
    p.add_argument("--impls", default="flexnet-fit,flexnet-step",
                   help="comma-separated run.py implementations (default flexnet-fit,flexnet-step; "
                   "also flexnet-f64)")
    p.add_argument("--quick", action="store_true", help="run.py's --quick data sizes (a smoke run)")
    p.add_argument("--json", default=str(HERE / "ab_results.json"), help="where to write the results")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.threads < 1:
        p.error("--rounds and --threads: expected at least 1")

    trees = {name: Tree(name, python, args.threads) for name, python in zip(TREES, (args.old, args.new))}
    old, new = trees["old"], trees["new"]
    code = compare_benchmark_code(old, new)
    loads, impls = [s for s in args.workloads.split(",") if s], [s for s in args.impls.split(",") if s]
    for s in loads:
        if s not in old.info["workloads"]:
            p.error(f"--workloads: unknown workload {s!r}; choose from {', '.join(old.info['workloads'])}")
    for s in impls:
        if s not in old.info["labels"] or s not in new.info["labels"]:
            p.error(f"--impls: {s!r} is not an implementation of both trees' run.py")
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(), "cpus": os.cpu_count(), "load_average": load_average(),
        "threads": args.threads, "rounds": args.rounds, "quick": args.quick,
        "command": "python benchmarks/ab_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "trees": {t.name: {"python": t.python, "root": str(t.root), "flexnet": t.info["flexnet"], **t.git()}
                  for t in trees.values()},
        "benchmark_code": code,
    }
    for t in trees.values():
        print(f"# {t.name}: {t.python} -> {t.root} ({meta['trees'][t.name]['commit']}"
              f"{', uncommitted changes in src' if meta['trees'][t.name]['src_changed'] else ''})", file=sys.stderr)
    print("# benchmark code: " + ", ".join(f"{f} {v}" for f, v in code.items())
          + "; workload definitions identical", file=sys.stderr)
    print(f"# {args.threads} thread(s), {args.rounds} rounds, load average {meta['load_average']}", file=sys.stderr)

    started = time.perf_counter()
    workers = {(t.name, impl): Worker(f"{t.name} {impl}", [t.python, str(t.bench / "run.py"), "--worker", impl,
                                                          "--threads", str(args.threads)], t.env)
               for impl in impls for t in trees.values()}
    rows, finished = [], False
    try:
        for w in loads:
            rows += time_workload(w, workers, impls, args.rounds, args.quick)
            print(f"# {w} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
        finished = True
    finally:
        for w in workers.values():
            w.close(kill=not finished)
    meta["load_average_end"] = load_average()
    meta["seconds"] = round(time.perf_counter() - started, 1)
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "results": rows}, f, indent=1)
    print(table(rows, new.info["labels"]))
    print(f"\n# wrote {args.json} in {meta['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

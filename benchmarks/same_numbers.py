"""Train with two flexnet source trees and check that they give bit-identical weights.

    python benchmarks/same_numbers.py --old /work/venv_old/bin/python --new /work/venv/bin/python
    python benchmarks/same_numbers.py --old /work/venv_old/bin/python --quick   # Fashion-MNIST: 2 epochs

Each tree is named by a Python interpreter whose ``import flexnet`` gives that tree
(``--new`` defaults to the interpreter running this script). The README's commands
run in a fresh temporary folder per tree and workload, first with the old tree,
then with the new one, never both at once, with one BLAS/OpenMP thread
(``OPENBLAS_NUM_THREADS=1`` ...) so that the numbers don't depend on threading:

- ``edge``: ``flexnet compare``, the tutorial's experiment (three architectures on
  the edge patches). The command prints a table but does not save its networks, and
  ``compare()`` returns only their scores, so the command is run as
  ``python -m flexnet compare`` with one hook: the function that trains each run
  (which trains every compare run in-process, in both trees) is wrapped so that
  each trained network is saved as ``edge-<sizes>-seed<seed>.npz``. The printed
  output must say the same too, except the numbers of the ``time (s)`` column: the
  same words, and every number equal at the precision of the one that shows fewer
  digits (the table now prints three significant figures, ``0.00519`` for ``0.0052``).
- ``digits`` and ``fashion-mnist``: the README's ``flexnet train`` commands, as
  given there (``--quick`` gives the Fashion-MNIST one ``--epochs 2`` instead of 40;
  a full run takes about 1.5 min per tree). The data comes from scikit-learn and
  from ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``).

A pair of model files is identical when both hold the same array names and every
array has the same dtype, the same shape and the same bytes (stricter than
``np.array_equal``: a -0.0 against a 0.0 counts as a difference). Their JSON headers
(``__header__.json``) must match too, except the fields that legitimately change
with the code's layout (:data:`IGNORED_HEADER_KEYS`) and the facts the new tree
records beside the model (:data:`ADDED_HEADER_PARENTS`), which are listed but not
counted. One line per workload says identical or not (with the largest absolute
difference), and the wall time of each tree's run. The exit code is 1 when
anything differs or a run fails, else 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: The README's commands, word for word (checked against the README next to this script).
DIGITS_COMMAND = ("flexnet train --data digits --arch 64,256,128,10 --epochs 60 --optimizer adam "
                  "--lr 0.002 --dropout 0.2 --schedule cosine --out digits.npz")
FASHION_COMMAND = ("flexnet train --data fashion-mnist --arch 784,512,256,10 --epochs 40 --optimizer adam "
                   "--lr 0.001 --batch-size 128 --dropout 0.3 --scale standard --schedule cosine --seed 0 "
                   "--out fashion.npz")
COMPARE_COMMAND = "flexnet compare"
#: The architectures ``flexnet compare`` trains by default, with its default seed.
EDGE_MODELS = [f"edge-{sizes}-seed42.npz" for sizes in ("25-2", "25-8-2", "25-16-8-2")]

#: ``python -m flexnet compare`` with every network it trains saved as a model file. The
#: layout by architecture trains each run with ``flexnet.experiments.trial.train``; the flat
#: layout ran them as trials of the sweep module (``flexnet.sweep.train_trial``).
EDGE_SCRIPT = """
import importlib, runpy, sys
trained = []
try:
    trial = importlib.import_module("flexnet.experiments.trial")
    train = trial.train

    def saving_train(config, *data, **kwargs):
        net, history = train(config, *data, **kwargs)
        trained.append((config["arch"], kwargs["init_seed"], net))
        return net, history

    trial.train = saving_train
except ImportError:
    sweep = importlib.import_module("flexnet.sweep")
    train_trial = sweep.train_trial

    def saving_train_trial(spec, *data):
        net, history = train_trial(spec, *data)
        trained.append((spec["config"]["arch"], spec["config"]["seed"], net))
        return net, history

    sweep.train_trial = saving_train_trial
sys.argv = ["flexnet", *sys.argv[1:]]
try:
    runpy.run_module("flexnet", run_name="__main__", alter_sys=True)
finally:
    for arch, seed, net in trained:
        net.save("edge-" + "-".join(map(str, arch)) + f"-seed{seed}.npz")
"""

HEADER_MEMBER = "__header__.json"
#: Header fields that change with the code's layout, not with the numbers.
IGNORED_HEADER_KEYS = {"module", "flexnet_version"}
#: Where the new tree may write fields the old one did not: facts recorded for the
#: figures and for predict (``model.metadata``: the seed and a checksum of the first
#: layer's starting weights, the images' background), never a number that trains.
ADDED_HEADER_PARENTS = ("model.metadata.",)
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
TIMEOUT_S = 900
#: A row of compare's table ends with its time in seconds.
TIME_CELL = re.compile(r"(?<= )\d+\.\d+$")


@dataclasses.dataclass
class Workload:
    name: str
    argv: list[str]  # after the interpreter
    models: list[str]  # model files the run must write, compared pairwise
    compare_output: bool = False  # the printed text must be identical too (times masked)


@dataclasses.dataclass
class Run:
    ok: bool
    seconds: float
    stdout: str
    error: str = ""


def flexnet_argv(command: str) -> list[str]:
    """``flexnet train ...`` as ``-m flexnet train ...``."""
    words = shlex.split(command)
    assert words[0] == "flexnet", command
    return ["-m", "flexnet", *words[1:]]


def workloads(quick: bool) -> list[Workload]:
    fashion = FASHION_COMMAND.replace("--epochs 40", "--epochs 2") if quick else FASHION_COMMAND
    return [
        Workload("edge", ["-c", EDGE_SCRIPT, *shlex.split(COMPARE_COMMAND)[1:]], EDGE_MODELS, compare_output=True),
        Workload("digits", flexnet_argv(DIGITS_COMMAND), ["digits.npz"]),
        Workload("fashion-mnist", flexnet_argv(fashion), ["fashion.npz"]),
    ]


def check_readme() -> None:
    """Warn when the README no longer gives the commands this script runs."""
    readme = HERE.parent / "README.md"
    if not readme.exists():
        return
    text = " ".join(readme.read_text().split())
    for command in (COMPARE_COMMAND, DIGITS_COMMAND, FASHION_COMMAND):
        if command not in text:
            print(f"warning: README.md no longer contains `{command}`; update this script", file=sys.stderr)


def child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the interpreter picks the tree
    env.update({var: "1" for var in THREAD_VARS})
    env["MPLBACKEND"] = "Agg"
    return env


def flexnet_location(python: str) -> str:
    """Where ``import flexnet`` leads for this interpreter."""
    out = subprocess.run([python, "-c", "import flexnet; print(flexnet.__file__)"], capture_output=True, check=False,
                         text=True, env=child_env(), timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"{python}: import flexnet failed:\n{out.stderr.strip()}")
    return str(Path(out.stdout.strip()).parent)


def run(python: str, workload: Workload, folder: Path) -> Run:
    """One tree's run of a workload in its own folder."""
    folder.mkdir(parents=True)
    start = time.perf_counter()
    try:
        out = subprocess.run([python, *workload.argv], cwd=folder, env=child_env(), capture_output=True, check=False,
                             text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Run(False, time.perf_counter() - start, "", f"timed out after {TIMEOUT_S} s")
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        tail = "\n".join(out.stderr.strip().splitlines()[-15:])
        return Run(False, seconds, out.stdout, f"exit code {out.returncode}:\n{tail}")
    missing = [m for m in workload.models if not (folder / m).exists()]
    if missing:
        return Run(False, seconds, out.stdout, f"wrote no {', '.join(missing)}")
    return Run(True, seconds, out.stdout)


def mask_times(text: str) -> str:
    """The printed output with each table row's time replaced by x's of the same width."""
    return "\n".join(TIME_CELL.sub(lambda m: "x" * len(m.group()), line) for line in text.splitlines())


def _number(cell: str) -> tuple[float, int] | None:
    """``(value, decimals shown)`` of a printed number such as ``0.0052`` or ``100.0%``, else None."""
    text = cell.rstrip("%")
    try:
        value = float(text)
    except ValueError:
        return None
    return value, len(text.partition(".")[2]) if "e" not in text.lower() else 99


def same_printed_output(old: str, new: str) -> bool:
    """The two printed outputs say the same, times aside: the same words in the same
    places, and every number the same where the less precise of the two shows it
    (a table may print ``0.00519`` where it printed ``0.0052``, never ``0.0053``)."""
    old_lines, new_lines = mask_times(old).splitlines(), mask_times(new).splitlines()
    if len(old_lines) != len(new_lines):
        return False
    for a, b in zip(old_lines, new_lines):
        cells_a, cells_b = a.split(), b.split()
        if set(a) == {"-"} and set(b) == {"-"}:
            continue  # a rule under the table's head, as wide as the columns
        if len(cells_a) != len(cells_b):
            return False
        for x, y in zip(cells_a, cells_b):
            nx, ny = _number(x), _number(y)
            if x == y:
                continue
            if nx is None or ny is None or x.endswith("%") != y.endswith("%"):
                return False
            (vx, dx), (vy, dy) = nx, ny
            digits = min(dx, dy)
            if round(vx, digits) != round(vy, digits):
                return False
    return True


def header_differences(a, b, path: str = "") -> list[str]:
    """Paths of the fields where two JSON values differ (list indices shown as [*]); a field
    only the new header has is marked ``(added)``."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = [f"{path}.{k}".lstrip(".") for k in sorted(set(a) - set(b))]
        found += [f"{path}.{k} (added)".lstrip(".") for k in sorted(set(b) - set(a))]
        for k in sorted(set(a) & set(b)):
            found += header_differences(a[k], b[k], f"{path}.{k}".lstrip("."))
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for x, y in zip(a, b) for d in header_differences(x, y, f"{path}[*]")]
    return [] if a == b else [path]


def compare_models(old: Path, new: Path) -> tuple[list[str], float, list[str]]:
    """``(problems, max abs difference, ignored header fields that differ)`` of two model files."""
    problems, max_diff = [], 0.0
    with np.load(old) as za, np.load(new) as zb:
        names_a, names_b = set(za.files) - {HEADER_MEMBER}, set(zb.files) - {HEADER_MEMBER}
        if names_a != names_b:
            problems.append(f"arrays only in old: {sorted(names_a - names_b)}, "
                            f"only in new: {sorted(names_b - names_a)}")
        for name in sorted(names_a & names_b):
            x, y = za[name], zb[name]
            if x.dtype != y.dtype or x.shape != y.shape:
                problems.append(f"{name}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}")
            elif x.tobytes() != y.tobytes():
                diff = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0
                max_diff = max(max_diff, diff)
                problems.append(f"{name}: {np.count_nonzero(x != y)} of {x.size} values differ, max abs {diff:.3g}")
        diffs = header_differences(json.loads(za[HEADER_MEMBER]), json.loads(zb[HEADER_MEMBER]))
    ignored = sorted({d for d in diffs if d.rpartition(".")[2] in IGNORED_HEADER_KEYS})
    added = sorted({d for d in diffs if d.endswith(" (added)") and d.startswith(ADDED_HEADER_PARENTS)})
    problems += [f"header field {d} differs" for d in diffs if d not in ignored and d not in added]
    return problems, max_diff, ignored + added


def check(workload: Workload, old: Run, new: Run, old_dir: Path, new_dir: Path) -> bool:
    """Print the verdict on one workload; True when both trees gave the same numbers."""
    times = f"wall time: old {old.seconds:.1f} s, new {new.seconds:.1f} s"
    failed = [f"{tree} run failed ({run.error})" for tree, run in (("old", old), ("new", new)) if not run.ok]
    if failed:
        print(f"{workload.name:14} FAILED: {'; '.join(failed)}  [{times}]")
        return False
    problems, max_diff, ignored = [], 0.0, set()
    for model in workload.models:
        found, diff, skipped = compare_models(old_dir / model, new_dir / model)
        problems += [f"{model}: {p}" for p in found]
        max_diff, ignored = max(max_diff, diff), ignored | set(skipped)
    if workload.compare_output and not same_printed_output(old.stdout, new.stdout):
        problems.append("printed output differs:\n--- old\n" + old.stdout + "--- new\n" + new.stdout)
    verdict = "identical" if not problems else f"DIFFERENT (max abs difference {max_diff:.3g})"
    what = f"{len(workload.models)} model file(s)" + (", printed table" if workload.compare_output else "")
    print(f"{workload.name:14} {verdict}: {what}  [{times}]")
    if ignored:
        print(f"{'':14} header fields that differ or were added, ignored: {', '.join(sorted(ignored))}")
    for p in problems:
        print(f"{'':14} - {p}")
    return not problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", required=True, help="Python interpreter of the old tree")
    p.add_argument("--new", default=sys.executable, help="Python interpreter of the new tree (default: this one)")
    p.add_argument("--quick", action="store_true", help="Fashion-MNIST for 2 epochs instead of 40")
    p.add_argument("--workloads", default="edge,digits,fashion-mnist", help="comma-separated subset")
    p.add_argument("--keep", action="store_true", help="keep the run folders (their path is printed)")
    args = p.parse_args(argv)

    check_readme()
    chosen = [w for w in workloads(args.quick) if w.name in args.workloads.split(",")]
    trees = {"old": args.old, "new": args.new}
    for tree, python in trees.items():
        print(f"{tree}: {python} -> {flexnet_location(python)}")
    root = Path(tempfile.mkdtemp(prefix="flexnet-same-numbers-"))
    all_same = True
    try:
        for workload in chosen:
            folders = {tree: root / workload.name / tree for tree in trees}
            runs = {tree: run(python, workload, folders[tree]) for tree, python in trees.items()}
            all_same &= check(workload, runs["old"], runs["new"], folders["old"], folders["new"])
    finally:
        if args.keep:
            print(f"run folders kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("all identical" if all_same else "NOT identical")
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())

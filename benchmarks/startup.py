"""Start-up times: ``import flexnet`` against ``import numpy``, and the quick commands.

    python benchmarks/startup.py            # 15 runs of each, median, min and max wall seconds
    python benchmarks/startup.py --busy     # the same while another process keeps a core busy

Each command runs as a fresh process, the way a user starts it, in turns
(A B C ... A B C ...) so that a busy moment falls on every command alike.
Python writes its bytecode cache as an installed package has it: the
environment's PYTHONDONTWRITEBYTECODE is removed and one untimed round runs
first, so the times are those of every start after the first.

Targets: ``flexnet --help``, ``flexnet datasets`` and ``flexnet info`` under
0.5 s; ``import flexnet`` at most 0.1 s more than ``import numpy``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from workers import Spinner  # noqa: E402


def commands(model: str) -> dict[str, list[str]]:
    py = sys.executable
    script = shutil.which("flexnet", path=os.path.dirname(py)) or shutil.which("flexnet")
    flexnet = [script] if script else [py, "-m", "flexnet"]
    return {
        "python -c 'import numpy'": [py, "-c", "import numpy"],
        "python -c 'import flexnet'": [py, "-c", "import flexnet"],
        "flexnet --help": [*flexnet, "--help"],
        "flexnet datasets": [*flexnet, "datasets"],
        "flexnet info MODEL": [*flexnet, "info", model],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=15, help="timed runs of each command (default 15)")
    p.add_argument("--busy", action="store_true", help="keep one core busy with an unrelated process")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(HERE, "..", "src"), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "fashion.npz")
        subprocess.run([sys.executable, "-c", "import flexnet, sys; flexnet.save(flexnet.Network("
                        "[784, 512, 256, 10], dropout=0.3, seed=0), sys.argv[1])", model],
                       check=True, env=env, timeout=120)
        cmds = commands(model)
        times: dict[str, list[float]] = {name: [] for name in cmds}
        spinner = Spinner() if args.busy else None
        try:
            for round_ in range(args.runs + 1):
                for name, cmd in cmds.items():
                    t0 = time.perf_counter()
                    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, env=env, timeout=120)
                    if round_:  # the first round writes the bytecode cache
                        times[name].append(time.perf_counter() - t0)
        finally:
            if spinner is not None:
                spinner.stop()
    rows = [{"command": n, "median": statistics.median(t), "min": min(t), "max": max(t)} for n, t in times.items()]
    print(f"# {args.runs} runs each{', one core busy' if args.busy else ''}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {os.getloadavg()[0]:.2f}")
    print("| command | median s | min s | max s |\n|---|---|---|---|")
    for r in rows:
        print(f"| `{r['command']}` | {r['median']:.3f} | {r['min']:.3f} | {r['max']:.3f} |")
    med = {r["command"]: r["median"] for r in rows}
    extra = med["python -c 'import flexnet'"] - med["python -c 'import numpy'"]
    print(f"\n- import flexnet - import numpy: {extra:.3f} s (target <= 0.1): {'met' if extra <= 0.1 else 'NOT met'}")
    for name in ("flexnet --help", "flexnet datasets", "flexnet info MODEL"):
        print(f"- {name}: {med[name]:.3f} s (target < 0.5): {'met' if med[name] < 0.5 else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"busy": args.busy, "runs": args.runs, "results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

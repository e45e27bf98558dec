"""``flexnet sweep``: train a grid of architectures and settings over several seeds, in parallel."""

from __future__ import annotations

import argparse
import sys

from .common import (
    EXIT_OK,
    add_table_options,
    check_output_folder,
    comma_list,
    load_data,
    parse_arch,
    parse_seeds,
    positive_float,
    positive_int,
    probability,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="train a grid of architectures and settings over several seeds, in parallel",
        description="Train every combination of the given settings with every seed (or --random N of "
        "them), on local worker processes (--jobs) or a Dask cluster (--scheduler), and rank them by "
        "validation accuracy. Lists are comma-separated. Writes to --out: trials.csv, trials.json and "
        "configs.csv (mean and spread over seeds), best_model.npz, accuracy_vs_params.png, top_curves.png "
        "and trials.jsonl, the log --resume continues from. A trial's seed is a hash of its settings, so "
        "results are the same serially, in parallel or on a cluster.",
        epilog="examples:\n"
        "  flexnet sweep --data edges --arch 25,2 25,8,2 25,16,8,2 --lr 0.05,0.1,0.5 --seeds 0-4 --jobs 2\n"
        "  flexnet sweep --data digits --arch 64,32,10 64,128,10 --activation relu,tanh \\\n"
        "      --optimizer sgd,adam --lr 0.001,0.01,0.1 --dropout 0,0.2 --random 8 --seeds 0-2 --epochs 20\n"
        "  flexnet sweep --data digits --arch 64,64,10 --lr 0.01,0.1 --scheduler tcp://10.0.0.5:8786\n"
        "  flexnet sweep ... --out my-sweep --resume   # skip the trials already in my-sweep",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default="edges", help="data set name or .csv/.npz file (default edges)")
    add_table_options(p)
    p.add_argument("--arch", nargs="+", action="extend", type=parse_arch, required=True, metavar="SIZES",
                   help="layer sizes such as 25,8,2; several separated by spaces or repeated")
    p.add_argument("--activation", type=comma_list(str), action="extend", help="hidden activations, e.g. relu,tanh (default relu)")
    p.add_argument("--lr", type=comma_list(positive_float), action="extend", help="learning rates, e.g. 0.01,0.1 (default 0.01)")
    p.add_argument("--batch-size", type=comma_list(positive_int), action="extend", help="batch sizes, e.g. 16,64 (default 32)")
    p.add_argument("--dropout", type=comma_list(probability), action="extend", help="dropout probabilities, e.g. 0,0.2 (default 0)")
    p.add_argument("--optimizer", type=comma_list(str), action="extend", help="optimizers, e.g. sgd,adam (default sgd)")
    p.add_argument("--seeds", type=parse_seeds, default=[0], metavar="SEEDS",
                   help="replicates per configuration: 0-4 or 1,5,9 (default 0)")
    p.add_argument("--random", type=positive_int, metavar="N", help="train N configurations drawn from the grid")
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs per trial (default 10)")
    p.add_argument("--val-split", type=probability, default=0.2,
                   help="fraction of the training data held out to rank on (default 0.2)")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="parallel workers (default 1 locally, all cores of a cluster; -1: all local cores)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on this Dask scheduler")
    p.add_argument("--out", default="sweep-results", help="output folder (default sweep-results)")
    p.add_argument("--resume", action="store_true", help="continue the sweep in --out, skipping finished trials")
    p.add_argument("--top", type=positive_int, default=10, help="configurations shown in the table (default 10)")
    p.add_argument("--quiet", action="store_true", help="no line per finished trial")
    p.add_argument("--threads", type=positive_int, default=1, metavar="N",
                   help="BLAS threads per trial, the same wherever it runs (default 1)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..experiments.results import OUTPUT_FILES, config_label
    from ..experiments.sweep import sweep

    check_output_folder(args.out, "--out", OUTPUT_FILES.values())

    grid = {"arch": args.arch, "seed": args.seeds}
    for axis in ("activation", "lr", "batch_size", "dropout", "optimizer"):
        if getattr(args, axis):
            grid[axis] = getattr(args, axis)

    def report(row, done, total):
        if args.quiet:
            return
        config = config_label(row, [k for k in grid if k not in ("arch", "seed")])
        outcome = (f"val accuracy {100 * row['val_accuracy']:.1f}%" if row["val_accuracy"] is not None
                   else row["status"] + (f": {row['error'][:120]}" if row["error"] else ""))
        print(f"[{done}/{total}] {config} seed={row['seed']}: {outcome} ({row['seconds']:.2f} s)", flush=True)

    data = args.data
    if str(data).lower().endswith((".csv", ".npz")):  # a file: read as --label, --header, --delimiter say
        data = load_data(args)
        if data.read_as and not args.quiet:
            print(f"{args.data}: {data.read_as}")
    result = sweep(data, grid, n_random=args.random, epochs=args.epochs, val_split=args.val_split,
                   jobs=args.jobs, scheduler=args.scheduler, out=args.out, resume=args.resume, on_trial=report,
                   blas_threads=args.threads)
    print(result.format_table(top=args.top))
    for kind, path in result.files.items():
        print(f"{kind.replace('_', ' ')}: {path}")
    if result.interrupted:
        print(f"flexnet sweep: interrupted with {result.pending} trial(s) to go; continue with the same "
              "command and --resume", file=sys.stderr)
        return 130
    return EXIT_OK

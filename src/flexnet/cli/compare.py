"""``flexnet compare``: train several architectures on the same data and plot their loss curves."""

from __future__ import annotations

import argparse
import sys

from .common import (
    EXIT_OK,
    UsageError,
    add_table_options,
    add_threads_option,
    check_arch,
    check_figures,
    check_output,
    load_data,
    parse_arch,
    parse_seeds,
    positive_float,
    positive_int,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="train several architectures on the same data and plot their loss curves",
        description="Train several architectures on the same data, print a table and write a "
        "figure of their loss curves (the tutorial's experiment).",
        epilog="examples:\n"
        "  flexnet compare\n"
        "  flexnet compare --arch 25,2 --arch 25,32,2 --seeds 0-4 --out arch.png\n"
        "  flexnet compare --panels   # one panel per architecture\n"
        "  flexnet compare --epochs 50 --lr 0.05 --out -   # table only\n"
        "  flexnet compare --data digits --arch 64,10 --arch 64,32,10 --epochs 20 --seeds 0-2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--arch", action="append", type=parse_arch, metavar="SIZES",
                   help="layer sizes such as 25,8,2; repeat for several "
                   "(default: 25,2 25,8,2 25,16,8,2)")
    p.add_argument("--epochs", type=positive_int, default=200, help="epochs per run (default 200)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="batch size (default 16)")
    p.add_argument("--lr", type=positive_float, default=0.1, help="learning rate (default 0.1)")
    p.add_argument("--seeds", type=parse_seeds, default=[42], metavar="SEEDS",
                   help="initialisation seeds: 42, 0-4 or 1,5,9 (default 42)")
    p.add_argument("--out", default=None, help="figure path, or - for none (default compare.png)")
    p.add_argument("--panels", action="store_true",
                   help="one figure panel per architecture, instead of every loss curve on one log-scale "
                   "axis beside a panel of test accuracies")
    p.add_argument("--show", action="store_true", help="also open the figure in a window")
    p.add_argument("--data", default="edges", metavar="NAME|FILE",
                   help="data set name or .csv/.npz file (default edges, the tutorial's experiment)")
    add_table_options(p)
    p.add_argument("--jobs", type=int, metavar="N", help="train the runs on N local processes (default 1)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="train the runs on this Dask scheduler")
    add_threads_option(p, "1 per run: the tutorial's networks gain nothing from more")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..experiments.compare import TUTORIAL_ARCHITECTURES, compare, format_table

    check_figures(args.out not in (None, "-") or (args.show and args.out != "-"))  # asked for by name
    args.out = args.out or "compare.png"
    check_output(args.out, "--out")
    data, where = None, "the edge patches"
    archs = args.arch or [list(a) for a in TUTORIAL_ARCHITECTURES]
    if args.data != "edges":
        data, n_features, n_classes = _compare_data(args)
        where = args.data
        archs = args.arch or [[n_features, n_classes], [n_features, 64, n_classes],
                              [n_features, 128, 64, n_classes]]
        for arch in archs:
            check_arch(arch, n_features, n_classes, args.data)
    print(f"Training {len(archs)} architecture(s) x {len(args.seeds)} seed(s) on {where} "
          f"({args.epochs} epochs, batch {args.batch_size}, lr {args.lr})")
    results = compare(archs, data=data, seeds=args.seeds, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, jobs=args.jobs, scheduler=args.scheduler, threads=args.threads or 1)
    print(format_table(results))
    if args.out != "-":
        try:
            from ..plots import compare_figure
        except ImportError as exc:  # pragma: no cover - plots imports lazily
            raise UsageError(str(exc)) from exc
        try:
            seeds = f", {len(args.seeds)} seeds" if len(args.seeds) > 1 else ""
            compare_figure(results, args.out, show=args.show, panels=args.panels,
                           title=f"Comparing architectures on {where} ({args.epochs} epochs{seeds})")
        except ImportError as exc:
            print(f"flexnet: no figure written: {exc}", file=sys.stderr)
            return EXIT_OK
        print(f"Figure written to {args.out}")
    return EXIT_OK


def _compare_data(args):
    """``(X_train, y_train, X_test, y_test)`` scaled for ``compare``, the widths of input and output."""
    from .. import data as fdata

    ds = load_data(args)
    if ds.y_train is None or ds.n_classes is None:
        raise UsageError(f"--data {args.data}: compare needs class labels")
    if ds.read_as:
        print(f"{args.data}: {ds.read_as}")
    X, y = fdata.flatten(ds.X_train), ds.y_train
    if ds.X_test is not None:
        X_test, y_test = fdata.flatten(ds.X_test), ds.y_test
    else:  # a user's file: hold out a fifth for testing
        try:
            X, X_test, y, y_test = fdata.train_test_split(X, y, 0.2, seed=0, part="test")
        except ValueError as exc:
            raise UsageError(f"--data {args.data}: {exc}") from None
    scaler = fdata.Scaler(ds.default_scaler, per_feature=ds.per_feature).fit(X)
    return (scaler.transform(X), y, scaler.transform(X_test), y_test), X.shape[1], ds.n_classes

"""``flexnet trace``: one batch through a saved model, forward and back, layer by layer."""

from __future__ import annotations

import argparse

from .common import (
    EXIT_OK,
    UsageError,
    add_table_options,
    add_threads_option,
    limit_threads,
    load_data,
    positive_float,
    positive_int,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "trace",
        help="follow one batch through a saved model: shapes, activations, gradients",
        description="Run the first rows of a data set through a saved model, forward and back, and show\n"
        "for each layer the input and output shapes, the mean, standard deviation, min and max of\n"
        "its output, the fraction of zeros after each ReLU, the norm of each gradient and, with --lr,\n"
        "the update/weight ratio lr * ||grad|| / ||weight||. The model file is only read.\n"
        "The batch runs in training mode (dropout on, batch norm on the batch's statistics), as a\n"
        "training step would, unless --inference.",
        epilog="examples:\n"
        "  flexnet trace digits.npz --data digits --batch 16 --lr 0.01\n"
        "  flexnet trace iris.npz --data iris.csv --label species --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="model file written by flexnet train")
    p.add_argument("--data", default=None, metavar="NAME|FILE",
                   help="data set name or .csv/.npz file (default: the data set the model was trained on)")
    add_table_options(p, "label column of a CSV file, by name or index (default: the model's "
                      "training label column where the file has it, else the last)")
    p.add_argument("--split", choices=("train", "test"), default="train",
                   help="which split of a named data set the rows come from (default train; a file has one)")
    p.add_argument("--batch", type=positive_int, default=32, metavar="N",
                   help="how many rows, the first N of the split (default 32)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate for the update/weight ratios (default: the column is left out)")
    p.add_argument("--inference", action="store_true",
                   help="run the layers in inference mode (no dropout, batch norm's running statistics)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the dropout masks in training mode, so a trace repeats (default 0)")
    p.add_argument("--json", action="store_true", help="print the trace as JSON instead of a table")
    add_threads_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    import numpy as np

    from .. import data as fdata
    from ..files.model_file import load
    from ..training.trace import trace

    net = load(args.model)
    if args.data is None:
        args.data = net.metadata.get("dataset", "edges")
    ds = load_data(args, classes=fdata.model_classes(net), stored_label=net.metadata.get("label_column"))
    if args.split == "test" and ds.X_test is None:
        raise UsageError(f"--split test: --data {args.data} has no test split (a file is one split: "
                         "leave --split out)")
    X_raw, y = (ds.X_test, ds.y_test) if args.split == "test" else (ds.X_train, ds.y_train)
    X_raw = X_raw[: args.batch]
    y = None if y is None else y[: args.batch]
    X = fdata.prepare_input(X_raw, net.metadata)
    if net.in_features is not None and X.shape[1] != net.in_features:
        raise UsageError(f"{args.model} takes {net.in_features} input features, --data {args.data} has {X.shape[1]}")
    limit_threads(args, net, len(X))
    net.rng.bit_generator.state = np.random.default_rng(args.seed).bit_generator.state  # dropout's layers share it
    result = trace(net, X, y, args.lr, training=not args.inference)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
        return EXIT_OK
    print(f"{args.model} on the first {len(X)} rows of {ds.name}"
          + (f" ({args.split} split)" if ds.X_test is not None else "")
          + ("" if y is not None else ": no labels, forward only"))
    print(result)
    return EXIT_OK

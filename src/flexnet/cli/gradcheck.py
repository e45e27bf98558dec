"""``flexnet gradcheck``: compare backpropagation with finite differences."""

from __future__ import annotations

import argparse
import sys

from .common import (
    EXIT_FAILURE,
    EXIT_OK,
    add_threads_option,
    limit_threads,
    parse_arch,
    positive_float,
    positive_int,
    text_table,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "gradcheck",
        help="compare backpropagation with finite differences",
        description="Build a network in float64, run it on a small random batch and compare every "
        "backpropagated gradient with central finite differences. Exit code 1 if any relative error "
        "is above the tolerance.",
        epilog="examples:\n"
        "  flexnet gradcheck\n"
        "  flexnet gradcheck --arch 784,32,10 --activation tanh --batchnorm",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--arch", type=parse_arch, default=[25, 8, 2], metavar="SIZES",
                   help="layer sizes (default 25,8,2)")
    p.add_argument("--activation", default="relu", help="hidden activation (default relu)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout probability (default 0)")
    p.add_argument("--batchnorm", action="store_true", help="batch normalisation in hidden layers")
    p.add_argument("--batch", type=positive_int, default=8, help="rows in the random batch (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and data (default 0)")
    p.add_argument("--tolerance", type=positive_float, default=1e-5,
                   help="largest relative error accepted (default 1e-5)")
    add_threads_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from ..nn.gradcheck import gradcheck
    from ..training.network import Network

    net = Network(args.arch, activation=args.activation, dropout=args.dropout, batchnorm=args.batchnorm,
                  dtype="float64", seed=args.seed)
    rng = np.random.default_rng(args.seed)
    X = rng.normal(size=(args.batch, args.arch[0]))
    y = rng.integers(0, args.arch[-1], size=args.batch)
    limit_threads(args, net, args.batch)
    report = gradcheck(net, X, y)
    rows = [(name, f"{err:.2e}", "ok" if err <= args.tolerance else "FAIL") for name, err in report.items()]
    print(f"Gradient check of {net!r} on a random batch of {args.batch} (float64, central differences)")
    print(text_table(rows, ("array", "relative error", f"<= {args.tolerance:g}")))
    bad = [name for name, err in report.items() if not err <= args.tolerance]
    if bad:
        print(f"flexnet gradcheck: {len(bad)} array(s) above the tolerance: {', '.join(bad)}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK

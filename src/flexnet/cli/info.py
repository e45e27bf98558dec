"""``flexnet info``: describe a model or checkpoint file without training anything."""

from __future__ import annotations

import argparse

from .common import EXIT_OK


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="describe a model or checkpoint file without training anything",
        description="Check a model or checkpoint file as loading would, then print its format "
        "and flexnet versions, layers, parameter counts, dtype, loss and metadata.",
        epilog="example:\n  flexnet info model.npz",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="FILE", help="model (.npz) or checkpoint file")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..files.model_file import describe

    for i, path in enumerate(args.paths):
        print(("\n" if i else "") + describe(path))
    return EXIT_OK

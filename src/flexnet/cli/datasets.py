"""``flexnet datasets``: list the data sets --data knows and where their files are."""

from __future__ import annotations

import argparse

from .common import EXIT_OK, text_table


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "datasets",
        help="list the data sets --data knows and where they are",
        description="List the named data sets, what they hold, and whether their files are present "
        "(and where) or will be downloaded on first use. IDX files are looked for in $FLEXNET_DATA, "
        "~/.cache/flexnet and, for Fashion-MNIST, /usr/share/datasets/fashion-mnist.",
        epilog="example:\n  flexnet datasets",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.datasets import REGISTRY

    rows = [(info.name, info.description, info.where()) for info in REGISTRY.values()]
    print(text_table(rows, ("name", "description", "where"), left=3))
    print("\nAlso: --data path/to/file.csv (numeric columns, --label NAME|INDEX) or path/to/file.npz (arrays X, y).")
    return EXIT_OK

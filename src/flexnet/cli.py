"""The ``flexnet`` command line.

Every command is a function ``cmd_<name>(args) -> int``; ``main`` turns a
user's mistake into one line on stderr and exit code 2, a failure while
running into exit code 1, and shows a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in what the user asked for (exit code 2)."""


def parse_arch(text: str) -> list[int]:
    """``"25,8,2"`` -> ``[25, 8, 2]``."""
    try:
        sizes = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer sizes such as 25,8,2, got {text!r}"
        ) from None
    if len(sizes) < 2 or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected at least two positive layer sizes such as 25,8,2, got {text!r}"
        )
    return sizes


def parse_seeds(text: str) -> list[int]:
    """``"42"`` -> ``[42]``; ``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"1,5,9"`` -> ``[1, 5, 9]``."""
    try:
        if "-" in text.strip("-"):
            lo, hi = text.split("-", 1)
            seeds = list(range(int(lo), int(hi) + 1))
        else:
            seeds = [int(s) for s in text.split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds such as 42, 0-4 or 1,5,9, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"expected at least one seed, got {text!r}")
    return seeds


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


# -- commands ----------------------------------------------------------------


def cmd_compare(args) -> int:
    from .compare import TUTORIAL_ARCHITECTURES, compare, format_table

    archs = args.arch or [list(a) for a in TUTORIAL_ARCHITECTURES]
    print(f"Training {len(archs)} architecture(s) x {len(args.seeds)} seed(s) on the edge patches "
          f"({args.epochs} epochs, batch {args.batch_size}, lr {args.lr})")
    results = compare(archs, seeds=args.seeds, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    print(format_table(results))
    if args.out != "-":
        try:
            from .plots import compare_figure
        except ImportError as exc:  # pragma: no cover - plots imports lazily
            raise UsageError(str(exc)) from exc
        try:
            compare_figure(results, args.out, show=args.show)
        except ImportError as exc:
            print(f"flexnet: no figure written: {exc}", file=sys.stderr)
            return EXIT_OK
        print(f"Figure written to {args.out}")
    return EXIT_OK


def cmd_info(args) -> int:
    from .io import describe

    for i, path in enumerate(args.paths):
        print(("\n" if i else "") + describe(path))
    return EXIT_OK


def cmd_export(args) -> int:
    from .io import load

    out = args.out or str(Path(args.model).with_suffix(".onnx" if args.format == "onnx" else ".pt"))
    if args.probabilities and args.format != "onnx":
        raise UsageError("--probabilities applies to --format onnx only")
    net = load(args.model)
    try:
        if args.format == "onnx":
            from .onnx_bridge import to_onnx

            to_onnx(net, out, probabilities=args.probabilities)
        else:
            from .torch_bridge import save_torch

            save_torch(net, out)
    except ImportError as exc:  # the optional package is not installed
        raise UsageError(str(exc)) from exc
    print(f"Wrote {out} ({args.format}, {len(net.layers)} layers, {net.dtype.name})")
    return EXIT_OK


# -- parser ------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flexnet",
        description="Train and compare small neural networks written in NumPy.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "compare",
        help="train several architectures on the same data and plot their loss curves",
        description="Train several architectures on the same data, print a table and write a "
        "figure of their loss curves (the tutorial's experiment).",
        epilog="examples:\n"
        "  flexnet compare\n"
        "  flexnet compare --arch 25,2 --arch 25,32,2 --seeds 0-4 --out arch.png\n"
        "  flexnet compare --epochs 50 --lr 0.05 --out -   # table only",
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
    p.add_argument("--out", default="compare.png", help="figure path, or - for none (default compare.png)")
    p.add_argument("--show", action="store_true", help="also open the figure in a window")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "info",
        help="describe a model or checkpoint file without training anything",
        description="Check a model or checkpoint file as loading would, then print its format "
        "and flexnet versions, layers, parameter counts, dtype, loss and metadata.",
        epilog="example:\n  flexnet info model.npz",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="FILE", help="model (.npz) or checkpoint file")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser(
        "export",
        help="write a saved model as an ONNX or PyTorch file",
        description="Write a saved model for other runtimes: an ONNX inference graph (dropout left "
        "out, batch norm folded, dynamic batch size) or a PyTorch file that "
        "torch.load(path, weights_only=True) reads (layer list plus state dict; see docs/bridges.md).",
        epilog="examples:\n"
        "  flexnet export model.npz --format onnx --out model.onnx\n"
        "  flexnet export model.npz --format onnx --probabilities\n"
        "  flexnet export model.npz --format torch --out model.pt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="model file saved by flexnet (.npz)")
    p.add_argument("--format", choices=("onnx", "torch"), required=True, help="what to write")
    p.add_argument("--out", metavar="PATH", help="output file (default: MODEL with .onnx or .pt)")
    p.add_argument("--probabilities", action="store_true",
                   help="onnx only: end the graph with softmax/sigmoid to output probabilities")
    p.set_defaults(func=cmd_export)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted anywhere on the line, not only before the command.
    debug = "--debug" in argv[: argv.index("--")] if "--" in argv else "--debug" in argv
    if debug:
        argv.remove("--debug")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed usage and one error line (or --help)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    args.debug = debug
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("flexnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head`: not an error worth a message
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except (UsageError, ValueError, TypeError, FileNotFoundError, IsADirectoryError,
            NotADirectoryError, PermissionError) as exc:
        if debug:
            raise
        print(f"flexnet {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a failure while running
        if debug:
            raise
        print(f"flexnet {args.command}: failed: {type(exc).__name__}: {_one_line(exc)} "
              "(run with --debug for details)", file=sys.stderr)
        return EXIT_FAILURE


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (a traceback-free report fits one line)."""
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

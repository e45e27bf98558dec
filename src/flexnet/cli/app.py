"""The ``flexnet`` command line: the parser, and the rules for errors.

Each command lives in a module of its own beside this one, with
``add_parser(subparsers)`` for its options and ``run(args) -> int``. ``main``
turns a user's mistake into one line on stderr and exit code 2 (a missing
optional package is one: the line says which ``pip install "flexnet[...]"``
brings it), a failure while running into exit code 1, and shows a traceback
only with ``--debug``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from ..data.extras import as_missing_extra
from ..version import __version__
from . import compare, datasets, evaluate, export, gradcheck, info, predict, sweep, trace, train
from .common import EXIT_FAILURE, EXIT_USAGE, UsageError, restore_threads

#: The commands, in the order ``flexnet --help`` lists them.
COMMANDS = (compare, info, train, evaluate, predict, trace, gradcheck, datasets, sweep, export)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the usage block is what --help is for."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="flexnet",
        description="Train and compare small neural networks written in NumPy.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


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
        # NumPy's overflow warnings are noise on the command line: a run that
        # diverges says so itself, in one line (--debug shows them).
        with np.errstate(all="warn" if debug else "ignore"):
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
    except ImportError as exc:  # an optional package is missing: what to install, exit 2
        if debug:
            raise
        missing = as_missing_extra(exc, "this command")
        if missing is not None:
            print(f"flexnet {args.command}: error: {_one_line(missing)}", file=sys.stderr)
            return EXIT_USAGE
        print(_failure(args, exc), file=sys.stderr)  # an import of flexnet's own failed: a bug
        return EXIT_FAILURE
    except Exception as exc:  # a failure while running
        if debug:
            raise
        print(_failure(args, exc), file=sys.stderr)
        return EXIT_FAILURE
    finally:
        restore_threads()


def _failure(args, exc: BaseException) -> str:
    return (f"flexnet {args.command}: failed: {type(exc).__name__}: {_one_line(exc)} "
            "(run with --debug for details)")


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (a traceback-free report fits one line)."""
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

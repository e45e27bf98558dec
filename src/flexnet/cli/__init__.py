"""The `flexnet` command line: one module per command, and `app.py` that parses and dispatches."""

from . import compare, datasets, evaluate, export, gradcheck, info, predict, sweep, train
from .app import build_parser, main
from .common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, parse_arch, parse_seeds

# The names of 0.1's single-module command line, where each command was a function.
cmd_compare, cmd_datasets, cmd_evaluate, cmd_export, cmd_gradcheck = (
    compare.run, datasets.run, evaluate.run, export.run, gradcheck.run)
cmd_info, cmd_predict, cmd_sweep, cmd_train = info.run, predict.run, sweep.run, train.run

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main", "parse_arch",
           "parse_seeds"]

"""The `flexnet` command line: one module per command, and `app.py` that parses and dispatches."""

from .app import main

__all__ = ["main"]

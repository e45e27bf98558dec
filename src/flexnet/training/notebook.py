"""Where ``fit`` runs: a terminal, a Jupyter notebook, or neither (a log file, a pipe).

The progress bar is drawn on a terminal (stderr is a TTY) and, as a widget,
in a Jupyter notebook, whose stderr is not a terminal but shows output live.
Without ipywidgets the notebook gets tqdm's text bar instead, with no warning.
Nothing here imports IPython or tqdm unless they are in use or asked for.
"""

from __future__ import annotations

import os
import sys

__all__ = ["in_notebook", "progress_class", "progress_kind"]


def in_notebook(modules=None, environ=None) -> bool:
    """True inside a Jupyter kernel that shows rich output (a notebook, JupyterLab,
    VS Code): an IPython ``ZMQInteractiveShell`` is running.

    Plain IPython in a terminal, and the Qt console or Spyder (which do not show
    widgets), are not notebooks. ``modules`` (default ``sys.modules``) and
    ``environ`` (default ``os.environ``) are there for tests.
    """
    modules = sys.modules if modules is None else modules
    environ = os.environ if environ is None else environ
    if "ipykernel" not in modules or "IPython" not in modules:
        return False
    if any(k == "QT_API" or k.startswith("SPYDER") for k in environ):
        return False
    try:
        shell = modules["IPython"].get_ipython()
    except Exception:  # an IPython without get_ipython, or one that fails: not ours to judge
        return False
    name = type(shell).__name__ if shell is not None else ""
    return "ZMQ" in name and "qt" not in name.lower()


def progress_kind(progress, stderr=None, modules=None, environ=None) -> str | None:
    """How ``fit(progress=...)`` shows progress: ``"widget"``, ``"text"`` or None (no bar).

    ``progress=True`` asks for a bar, ``False`` for none; None (the default)
    chooses: a widget in a notebook, a text bar when stderr is a terminal,
    nothing elsewhere (a log file stays clean). ``True`` in a notebook is a
    widget too.
    """
    notebook = in_notebook(modules, environ)
    if progress is None:
        stream = sys.stderr if stderr is None else stderr
        isatty = getattr(stream, "isatty", None)
        progress = notebook or bool(stream is not None and isatty is not None and isatty())
    if not progress:
        return None
    return "widget" if notebook else "text"


def progress_class(kind: str | None):
    """The tqdm class for :func:`progress_kind`'s answer, or None (no bar, or no tqdm:
    the 'progress' extra is optional).

    A widget needs ipywidgets; without it the notebook gets the text bar, quietly
    (``tqdm.auto`` would warn first).
    """
    if kind is None:
        return None
    try:
        from tqdm.std import tqdm
    except ImportError:
        return None
    if kind == "widget":
        try:
            from tqdm import notebook
        except ImportError:  # an IPython too old for tqdm's widgets
            return tqdm
        if getattr(notebook, "IProgress", None) is not None:
            return notebook.tqdm
    return tqdm

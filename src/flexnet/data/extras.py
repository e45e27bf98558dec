"""Optional packages: import one where it is needed, or say which extra installs it.

flexnet needs only NumPy and threadpoolctl (the BLAS thread limits). Every other package is imported where it is used,
through :func:`optional`, so a missing one always raises the same error,
:class:`MissingExtra`, naming the package and the ``pip install "flexnet[...]"``
that brings it; the command line turns it into exit code 2 with that hint.
Packages whose absence costs only speed (SciPy's BLAS calls) or a progress bar (tqdm) are imported with a quiet fallback
instead, where they are used.

This module lives in ``data/`` because it is the lowest room that every user
of an optional package may import (data, plots, bridges, experiments, cli).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Top-level module -> (the package as pip names it, the flexnet extra that installs it).
EXTRAS: dict[str, tuple[str, str]] = {
    "matplotlib": ("matplotlib", "plot"),
    "tqdm": ("tqdm", "progress"),
    "PIL": ("Pillow", "images"),
    "sklearn": ("scikit-learn", "sklearn"),
    "torch": ("torch", "torch"),
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "joblib": ("joblib", "sweep"),
    "dask": ("dask[distributed]", "sweep"),
    "distributed": ("dask[distributed]", "sweep"),
    "scipy": ("scipy", "fast"),
    "pyarrow": ("pyarrow", "tables"),
    "tensorboardX": ("tensorboardX", "tensorboard"),
    "safetensors": ("safetensors", "safetensors"),
}


class MissingExtra(ImportError):
    """An optional package is not installed (or cannot be imported).

    An ImportError, so code that catches ImportError keeps working.

    Attributes:
        module: the module asked for (``"sklearn.datasets"``).
        package: the package as pip names it (``"scikit-learn"``).
        extra: the flexnet extra that installs it (``"sklearn"``).
        purpose: what needed it (``"the digits data set"``).
    """

    def __init__(self, module: str, purpose: str, cause: BaseException | None = None):
        package, extra = EXTRAS.get(module.split(".")[0], (module.split(".")[0], "all"))
        self.module, self.package, self.extra, self.purpose = module, package, extra, purpose
        # A package that is there but fails to import (a broken install) says why.
        broken = "" if cause is None or _not_installed(cause, module) else f" (importing it failed: {cause})"
        super().__init__(f'{purpose} needs {package}{broken}; install it with: pip install "flexnet[{extra}]"',
                         name=module)

    def __reduce__(self):  # picklable, as worker processes send errors back
        return (type(self), (self.module, self.purpose))


def optional(module: str, purpose: str) -> ModuleType:
    """``import module``, or raise :class:`MissingExtra` naming the extra that installs it.

    Args:
        module: a module of an optional package, such as ``"sklearn.datasets"``.
        purpose: what needs it, as the message starts: ``"the digits data set"``.

    Raises:
        MissingExtra: the package is not installed, or importing it failed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(module, purpose, exc) from exc


def as_missing_extra(exc: ImportError, purpose: str) -> MissingExtra | None:
    """The :class:`MissingExtra` an ImportError means, when it is about an optional
    package (an import that did not go through :func:`optional`); else None."""
    if isinstance(exc, MissingExtra):
        return exc
    name = getattr(exc, "name", None) or ""
    if name.split(".")[0] in EXTRAS:
        return MissingExtra(name, purpose, exc)
    return None


def _not_installed(exc: BaseException, module: str) -> bool:
    """Whether ``exc`` says the package itself is absent (not that it broke while importing)."""
    name = getattr(exc, "name", None) or ""
    return isinstance(exc, ModuleNotFoundError) and module.split(".")[0] == name.split(".")[0]

"""Module paths of earlier releases, kept working as aliases of their new homes.

flexnet was once one flat folder (``flexnet.layers``, ``flexnet.train``,
``flexnet.io`` ...). Those paths still import, and give the very module that
now holds the code, so ``from flexnet.callbacks import Callback`` and
``flexnet.torch_bridge.LAYERS`` keep working. A module that ``import flexnet``
has already loaded is aliased at once; the others (scikit-learn's estimators)
are aliased when first imported, so they cost nothing until then.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: old module path -> the module that holds its code now
MOVED = {
    "flexnet._blas": "flexnet.ops",
    "flexnet._checks": "flexnet.nn.checks",
    "flexnet.layers": "flexnet.nn.layers",
    "flexnet.activations": "flexnet.nn.activations",
    "flexnet.normalization": "flexnet.nn.normalization",
    "flexnet.dropout": "flexnet.nn.dropout",
    "flexnet.losses": "flexnet.nn.losses",
    "flexnet.init": "flexnet.nn.init",
    "flexnet.gradcheck": "flexnet.nn.gradcheck",
    "flexnet.network": "flexnet.training.network",
    "flexnet.schedules": "flexnet.optim.schedules",
    "flexnet.archive": "flexnet.files.archive",
    "flexnet.io": "flexnet.files.model_file",
    "flexnet.datasets": "flexnet.data.datasets",
    "flexnet.train": "flexnet.training.loop",
    "flexnet.callbacks": "flexnet.training.callbacks",
    "flexnet.checkpoint": "flexnet.training.checkpoint",
    "flexnet.torch_bridge": "flexnet.bridges.pytorch",
    "flexnet.onnx_bridge": "flexnet.bridges.onnx_export",
    "flexnet.sklearn": "flexnet.bridges.estimators",
    "flexnet.compare": "flexnet.experiments.compare",
    "flexnet.sweep": "flexnet.experiments.sweep",
    "flexnet.sweep_results": "flexnet.experiments.results",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old path by importing its new home and handing that module back."""

    def find_spec(self, name, path=None, target=None):
        if name in MOVED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def __init__(self):
        self._specs = {}  # old path -> the real module's own spec, put back after the import

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name])
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module):
        # The module ran when its new home was imported; the import machinery
        # has just replaced its __spec__ with the alias's, so put the real one back.
        module.__spec__ = self._specs.pop(module.__spec__.name)


def install() -> None:
    """Alias the old paths whose modules are loaded now; import the rest on demand."""
    package = sys.modules[__name__.rpartition(".")[0]]
    for old, new in MOVED.items():
        if new in sys.modules:
            sys.modules.setdefault(old, sys.modules[new])
            # as an import would; flexnet.sweep and flexnet.gradcheck stay the functions
            if not hasattr(package, old.rpartition(".")[2]):
                setattr(package, old.rpartition(".")[2], sys.modules[new])
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Alias())  # first: a file left at an old path must not shadow the alias

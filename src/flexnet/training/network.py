"""The networks you train and save: the plain stacks of :mod:`flexnet.nn`, plus ``fit`` and ``save``.

:mod:`flexnet.nn` knows nothing of training loops or files, so its
``Sequential`` and ``Network`` have ``forward``, ``backward``, ``update`` and
``train_step`` and stop there. The classes here add the conveniences a user
reaches for next, ``net.fit(X, y)``, ``net.save(path)`` and ``net.summary()``, and
every model file loads as them (:data:`flexnet.files.model_file.BUILDS`). These are the classes exported as
``flexnet.Sequential`` and ``flexnet.Network``.
"""

from __future__ import annotations

from ..files import model_file
from ..nn import network as plain
from .callbacks import History
from .loop import fit

__all__ = ["Network", "Sequential"]


class Sequential(plain.Sequential):
    __doc__ = plain.Sequential.__doc__

    def fit(self, X, y, **kwargs) -> History:
        """Train with :func:`flexnet.fit` (same arguments); returns its History."""
        return fit(self, X, y, **kwargs)

    def save(self, path) -> None:
        """Save to one safe ``.npz`` file with :func:`flexnet.save`; load with :func:`flexnet.load`."""
        model_file.save(self, path)

    def summary(self) -> str:
        """A table of layers, output shapes and parameter counts."""
        return model_file.summary(self)


class Network(plain.Network, Sequential):
    __doc__ = plain.Network.__doc__


# Every load builds these from now on (flexnet.load, flexnet.files.load, checkpoints).
model_file.BUILDS.update(Sequential=Sequential, Network=Network)

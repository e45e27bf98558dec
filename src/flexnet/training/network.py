"""The networks you train and save: the plain stacks of :mod:`flexnet.nn`, plus ``fit`` and ``save``.

:mod:`flexnet.nn` knows nothing of training loops or files, so its
``Sequential`` and ``Network`` have ``forward``, ``backward``, ``update`` and
``train_step`` and stop there. The classes here add the conveniences a user
reaches for next, ``net.fit(X, y)``, ``net.save(path)``, ``net.summary()`` and
``net.trace(x, y)`` (with a table of layers in a notebook), and
every model file loads as them (:data:`flexnet.files.model_file.BUILDS`). These are the classes exported as
``flexnet.Sequential`` and ``flexnet.Network``.
"""

from __future__ import annotations

import html

import numpy as np

from .. import ops
from ..data.sources import as_rows, is_streamed
from ..files import model_file
from ..nn import network as plain
from .callbacks import History
from .evaluation import check_finite_blocks, outputs
from .loop import fit
from .trace import Trace
from .trace import trace as trace_batch

__all__ = ["Network", "Sequential", "Summary"]


class Summary(str):
    """The text of ``net.summary()``: prints as the table, and shows as an HTML
    table in a notebook (rather than as one quoted string)."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        lines = str(self).splitlines()
        if not lines or "output" not in lines[0] or "params" not in lines[0]:  # not the usual table
            return f"<pre>{html.escape(str(self))}</pre>"
        rows = [line for line in lines[1:] if set(line) != {"-"}]
        cells = [_split_row(line, lines[0]) for line in rows]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in _split_row(lines[0], lines[0]))
        body = "".join("<tr>" + "".join(f'<td style="text-align:{"right" if i == 2 else "left"}">'
                                        f"{html.escape(c)}</td>" for i, c in enumerate(row)) + "</tr>"
                       for row in cells)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _split_row(line: str, header: str) -> list[str]:
    """The three cells of a summary line, cut where the header's columns start."""
    starts = [0, header.index("output"), header.index("params")]
    ends = starts[1:] + [None]
    return [line[a:b].strip() for a, b in zip(starts, ends)]


class Sequential(plain.Sequential):
    __doc__ = plain.Sequential.__doc__

    def fit(self, X, y, **kwargs) -> History:
        """Train with :func:`flexnet.fit` (same arguments); returns its History."""
        return fit(self, X, y, **kwargs)

    def save(self, path) -> None:
        """Save to one safe ``.npz`` file with :func:`flexnet.save`; load with :func:`flexnet.load`."""
        model_file.save(self, path)

    def summary(self) -> Summary:
        """A table of layers, output shapes and parameter counts.

        A ``str`` (``print(net.summary())``) that shows as an HTML table in a notebook.
        """
        return Summary(model_file.summary(self))

    def trace(self, x, y=None, lr=None, *, training: bool = True) -> Trace:
        """One batch forward (and backward with ``y``), layer by layer; see :func:`flexnet.training.trace.trace`.

        Shapes, activation statistics (mean, std, min, max; zeros after each
        ReLU), gradient norms and, with ``lr``, update/weight ratios. Runs in
        training mode by default, as ``fit`` does, on a copy: the network is
        left exactly as it was. Returns a :class:`~flexnet.training.trace.Trace`:
        ``print`` it, show it in a notebook, or read ``trace.rows``.
        """
        return trace_batch(self, x, y, lr, training=training)

    def _repr_html_(self) -> str:
        return f"<p><code>{html.escape(repr(self))}</code></p>" + self.summary()._repr_html_()

    def predict(self, x) -> np.ndarray:
        """Class ids for classifiers, raw outputs for regression.

        Raises:
            ValueError: a row of ``x`` holds NaN or infinity, or a row's outputs
                are not finite (a class picked from NaN would be a guess).
        """
        return self.loss_fn.predict(_finite_outputs(self, x, "predict"))

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities, shape (N, C); never NaN (see :meth:`predict`)."""
        return self.loss_fn.proba(_finite_outputs(self, x, "predict_proba"))


class Network(plain.Network, Sequential):
    __doc__ = plain.Network.__doc__


def _finite_outputs(net, x, where: str) -> np.ndarray:
    """``net.forward(x)``, refusing rows whose outputs are not finite.

    ``forward`` already names an input row that holds NaN or infinity; this
    catches finite inputs whose outputs overflow (inputs far outside the
    training range, or weights that diverged), so a prediction is never NaN.
    """
    if is_streamed(x):  # a memmap, a .npy path or a Dask array: forward a chunk at a time
        x = as_rows(x, net.dtype, f"{type(net).__name__}.{where}(x)")
        check_finite_blocks(x, f"{type(net).__name__}.{where}(x)")
        z = outputs(net, x)
    else:
        z = ops.to_numpy(net.forward(x))  # (N, outputs): small, so the check costs nothing
    if np.isfinite(z).all():
        return z
    bad = np.flatnonzero(~np.isfinite(z.reshape(len(z), -1)).all(axis=1))
    raise ValueError(
        f"{type(net).__name__}.{where}: the outputs of row {bad[0]} ({len(bad)} row(s) in all) are NaN "
        f"or infinite although the input is finite: the input overflows {net.dtype.name} in the "
        "network (values far outside the range it was trained on? prepare the input as in training)")


# Every load builds these from now on (flexnet.load, flexnet.files.load, checkpoints).
model_file.BUILDS.update(Sequential=Sequential, Network=Network)

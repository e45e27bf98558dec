"""One batch, forward and back, layer by layer: ``net.trace(x, y)``.

:func:`trace` runs a batch through a *copy* of the network, keeping what
every layer received and returned, then the loss and the backward pass,
keeping every gradient. The network itself is left exactly as it was: its
weights, its gradients from the last step, batch norm's running statistics
and the generator that draws dropout masks (so the next training step draws
the same masks it would have drawn without the trace).

The result, a :class:`Trace`, is plain data (``trace.rows``, a list of dicts;
``trace.to_dict()`` for JSON), prints as a table and shows as an HTML table in
a notebook.
"""

from __future__ import annotations

import copy
import html
import math
import textwrap

import numpy as np

from .. import ops
from ..nn.checks import as_input, check_finite_rows, check_lr
from ..nn.layers import ReLU
from ..nn.network import layer_backward

__all__ = ["Trace", "trace"]

#: The columns of the table, with the row key each one shows and the gap before it
#: (one space between numbers, so that the table fits 100 columns).
_COLUMNS = (("layer", "layer", 0), ("input", "input_shape", 2), ("output", "output_shape", 2),
            ("mean", "mean", 1), ("std", "std", 1), ("min", "min", 1), ("max", "max", 1),
            ("zeros", "zero_fraction", 1), ("dL/dout", "output_grad_norm", 1), ("param", None, 2),
            ("grad", "grad_norm", 2), ("update", "update_ratio", 1))


class Trace:
    """What one batch did in each layer, forward and back (made by :func:`trace`).

    A list of rows, one per layer: ``len(trace)``, ``trace[0]``, ``for row in
    trace``. Each row is a dict:

    - ``index`` (0, 1, ...), ``name`` (``"layers.0"``), ``layer``
      (``"0 Linear"``) and ``repr`` (``"Linear(4 -> 8)"``);
    - ``input_shape`` and ``output_shape``, tuples such as ``(32, 4)``;
    - ``mean``, ``std``, ``min``, ``max``: of the layer's output, over the batch;
    - ``zero_fraction``: after a ReLU, the fraction of its outputs that are 0;
      ``dead_fraction``: the fraction of its units that are 0 for every row of
      the batch; None for other layers;
    - with targets: ``output_grad_norm``, the norm of dL/d(output) that
      backward brought to the layer, and ``grad_norm``, the norm of each
      parameter's gradient by attribute (``{"W": 0.12, "b": 0.03}``, ``{}`` for
      a layer without parameters, None for a gradient its backward did not
      set); without targets both are None;
    - ``param_norm``: the norm of each parameter;
    - with ``lr``: ``update_ratio``, ``lr * ||grad|| / ||param||`` per
      parameter, the relative size of a plain SGD step (about 1e-3 is
      healthy; None for a parameter that is all zeros, a bias at its start).

    Attributes:
        rows: the list of row dicts.
        loss: the batch's mean loss (None without targets).
        lr: the learning rate of the update ratios (or None).
        training: whether the batch ran in training mode.
        batch: the number of rows in the batch.
        loss_name: the loss's repr.
    """

    def __init__(self, rows, loss=None, lr=None, training=True, batch=0, loss_name=""):
        self.rows: list[dict] = list(rows)
        self.loss = loss
        self.lr = lr
        self.training = training
        self.batch = batch
        self.loss_name = loss_name

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def __iter__(self):
        return iter(self.rows)

    def to_dict(self) -> dict:
        """A JSON-friendly copy: ``{"loss", "lr", "training", "batch", "loss_name", "rows"}``
        (shapes as lists)."""
        rows = [{k: (list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, dict) else v)
                 for k, v in row.items()} for row in self.rows]
        return {"loss": self.loss, "lr": self.lr, "training": self.training, "batch": self.batch,
                "loss_name": self.loss_name, "rows": rows}

    def caption(self) -> str:
        """The line under the table: the loss, the batch, the mode, what the columns mean."""
        mode = "training mode" if self.training else "inference mode"
        loss = f"loss {self.loss:.6g} ({self.loss_name})" if self.loss is not None else "forward only (no targets)"
        text = f"{loss}; a batch of {self.batch} rows in {mode}. mean/std/min/max: of each layer's output"
        if self.loss is not None:
            text += "; dL/dout: norm of the gradient reaching the output; grad: ||dL/dparam||"
        if self.lr is not None:
            text += f"; update: the update/weight ratio lr * ||grad|| / ||param|| for lr={self.lr:g}"
        return text

    def table(self) -> list[list[str]]:
        """The table as rows of cells, header first (what ``str`` and the HTML show).

        A layer with several parameters takes one line per parameter.
        """
        return [line for line, _ in self._lines()]

    def _columns(self):
        backward = self.loss is not None
        return [c for c in _COLUMNS if backward or c[1] not in ("output_grad_norm", None, "grad_norm", "update_ratio")
                if c[1] != "update_ratio" or self.lr is not None]

    def _lines(self):
        """``(cells, gaps)`` of the header and every line."""
        columns = self._columns()
        gaps = [gap for _, _, gap in columns]
        lines = [([title for title, _, _ in columns], gaps)]
        per_param = any(key is None for _, key, _ in columns)
        for row in self.rows:
            names = (list(row["param_norm"]) if per_param else []) or [None]
            for k, param in enumerate(names):
                cells = []
                for title, key, _ in columns:
                    if key is None:
                        cells.append(param or "")
                    elif key in ("grad_norm", "update_ratio"):
                        cells.append(_number((row[key] or {}).get(param)) if param else "")
                    elif k:
                        cells.append("")  # the layer's own cells only on its first line
                    elif key == "zero_fraction":
                        cells.append("-" if row[key] is None else f"{100 * row[key]:.1f}%")
                    elif key.endswith("_shape"):
                        cells.append(str(tuple(row[key])))
                    elif key == "layer":
                        cells.append(row[key])
                    else:
                        cells.append(_number(row[key]))
                lines.append((cells, gaps))
        return lines

    def __str__(self) -> str:
        lines = self.table()
        columns = self._columns()
        width = [max(len(line[i]) for line in lines) for i in range(len(columns))]
        out = []
        for line in lines:
            text = ""
            for cell, w, (_, key, gap) in zip(line, width, columns):
                left = key in ("layer", "input_shape", "output_shape", None)
                text += " " * gap + (cell.ljust(w) if left else cell.rjust(w))
            out.append(text.rstrip())
        out.insert(1, "-" * max(len(line) for line in out))
        return "\n".join(out + textwrap.wrap(self.caption(), width=max(60, len(out[0]))))

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        lines = self.table()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in lines[0])
        body = "".join("<tr>" + "".join(
            f'<td style="text-align:{"left" if i < 3 else "right"}">{html.escape(c)}</td>'
            for i, c in enumerate(line)) + "</tr>" for line in lines[1:])
        return (f"<table><caption>{html.escape(self.caption())}</caption><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table>")


def _number(value) -> str:
    if value is None:
        return "-"
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if 1e-2 <= abs(value) < 1e3:
        return f"{value:.3g}"  # 0.0123, 1.23, 123
    if 1e3 <= abs(value) < 1e5:
        return f"{value:.0f}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"  # 1.8e-8, not 1.77e-08: seven characters at most


def _norm(a) -> float:
    return float(np.linalg.norm(np.asarray(ops.to_numpy(a), dtype=np.float64)))


def trace(net, x, y=None, lr=None, *, training: bool = True) -> Trace:
    """Run one batch forward (and backward, given ``y``) and report each layer.

    Args:
        net: a flexnet ``Sequential`` or ``Network``.
        x: the batch, shape (N, features), prepared as for training.
        y: its targets; without them only the forward rows are filled in.
        lr: a learning rate for the update/weight ratios, ``lr * ||g|| / ||p||``.
        training: run the layers in training mode (the default), as a step of
            ``fit`` runs them: dropout drops units and batch norm normalises
            with the batch's own statistics. ``False`` shows what a prediction
            sees.

    The work is done on a copy of ``net``: its weights, gradients, running
    statistics and random generators are exactly as they were afterwards.

    Returns:
        A :class:`Trace`.

    Raises:
        TypeError / ValueError: ``x`` is not a 2-D numeric batch, holds NaN or
            infinity, does not fit the first layer, ``y`` does not fit the loss,
            or ``lr`` is not a positive finite number.
    """
    where = f"{type(net).__name__}.trace"
    if not hasattr(net, "layers") or not hasattr(net, "loss_fn"):
        raise TypeError(f"trace: expected a flexnet Sequential or Network, got {type(net).__name__}")
    if lr is not None:
        lr = check_lr(lr, f"{where}(lr)")
    if not isinstance(training, (bool, np.bool_)):  # "no" would be truthy: training mode
        raise TypeError(f"{where}(training): expected True or False, got {training!r:.40}")
    x = as_input(x, net.dtype, where)
    check_finite_rows(x, where)
    work = copy.deepcopy(net)  # every cache, statistic and generator the batch touches is the copy's
    rows, z = [], x
    if net.backend != "numpy":  # checked in NumPy, run on the network's array library and device
        z = ops.move(x, ops.namespace(net.backend), net.device)
    for i, layer in enumerate(work.layers):
        out = layer.forward(z, training)
        o = np.asarray(ops.to_numpy(out), dtype=np.float64)
        relu = isinstance(layer, ReLU)
        rows.append({
            "index": i, "name": layer.name, "layer": f"{i} {type(layer).__name__}", "repr": repr(layer),
            "input_shape": tuple(np.shape(z)), "output_shape": tuple(np.shape(out)),
            "mean": float(o.mean()), "std": float(o.std()), "min": float(o.min()), "max": float(o.max()),
            "zero_fraction": float(np.mean(o == 0)) if relu else None,
            "dead_fraction": float(np.mean((o == 0).all(axis=0))) if relu and o.ndim == 2 else None,
            "output_grad_norm": None, "grad_norm": None,
            "param_norm": {name: _norm(p) for name, p, _ in layer.named_parameters()},
            "update_ratio": None,
        })
        z = out
    loss = None
    if y is not None:
        for layer in work.layers:  # a gradient the backward leaves unset must not show the last step's
            for name in layer.params:
                setattr(layer, "d" + name, None)
        loss = float(work.loss_fn.forward(z, y))
        grad = work.loss_fn.backward()
        for i in range(len(work.layers) - 1, -1, -1):
            rows[i]["output_grad_norm"] = _norm(grad)
            grad = layer_backward(work.layers[i], grad, i > 0)
        for row, layer in zip(rows, work.layers):
            row["grad_norm"] = {name: None if g is None else _norm(g) for name, _, g in layer.named_parameters()}
    if lr is not None:
        for row in rows:
            if row["grad_norm"] is not None:
                row["update_ratio"] = {name: (lr * g / row["param_norm"][name] if g is not None and
                                              row["param_norm"][name] > 0 else None)
                                       for name, g in row["grad_norm"].items()}
    return Trace(rows, loss=loss, lr=lr, training=bool(training), batch=len(x), loss_name=repr(net.loss_fn))

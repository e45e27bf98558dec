"""Dropout: randomly silence units while training, so none can be relied on alone."""

from __future__ import annotations

from .. import ops
from .checks import check_float_input, check_number, make_rng
from .layers import Layer


class Dropout(Layer):
    """Inverted dropout: zero each unit with probability ``p`` when training.

    The kept units are scaled by ``1 / (1 - p)`` during training, so the
    expected activation is unchanged and inference is the plain identity (no
    rescaling to remember). Active only for ``forward(x, training=True)``.

    Masks come from ``self.rng``. Inside a network that is the network's own
    Generator, so one seed fixes every mask; a standalone layer makes its own
    from ``seed``.

    Args:
        p: probability of zeroing a unit, in [0, 1).
        seed: int, ``np.random.Generator`` or None, for standalone use.

    Shapes:
        x: (N, F) -> (N, F).
    """

    uses_rng = True

    def __init__(self, p: float = 0.5, *, seed=None):
        self.p = check_number(p, "Dropout(p)", high=1.0)  # p = 1 would drop every unit
        self.rng = make_rng(seed)
        self.mask = None  # kept units scaled by 1/(1-p); None when nothing was dropped
        self.shape = None  # shape of the last forward's input and output

    def forward(self, x, training=False):
        x = check_float_input(self, x)
        self.shape = x.shape
        if not training or self.p == 0:
            self.mask = None
            return x
        dtype = ops.dtype(x)
        keep = self.rng.random(x.shape, dtype=dtype) >= self.p  # (N, F) bool, drawn by NumPy in every library
        self.mask = ops.like(keep * dtype.type(1 / (1 - self.p)), x)  # (N, F), 0 or 1/(1-p), on x's device
        return x * self.mask

    def backward(self, grad, input_grad=True):
        # Each output is x * mask, so the gradient passes through the same mask.
        self._check_grad(grad, self.shape)
        if self.mask is None:
            return grad
        return grad * self.mask

    def config(self):
        return {"p": self.p}

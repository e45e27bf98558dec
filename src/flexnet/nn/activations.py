"""Activation layers: element-wise nonlinearities and Softmax.

Each class keeps in ``forward`` exactly what its ``backward`` needs (usually
its own output) and has no parameters. They follow the input's dtype, so a
float32 network stays float32. ``ReLU`` lives in :mod:`flexnet.nn.layers` with
``Linear``; :func:`get` finds any activation by name, ReLU included.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .. import ops
from .checks import check_float_input, check_number, lookup
from .layers import Layer, ReLU


@functools.cache
def _erf_function():
    """SciPy's vectorised erf when it is installed (imported on first use, not
    with flexnet), else ``math.erf``, exact too, one element at a time."""
    try:
        from scipy.special import erf
    except ImportError:  # pragma: no cover - exercised only without SciPy
        return np.vectorize(math.erf, otypes=[np.float64])
    return erf


def _erf(x: np.ndarray) -> np.ndarray:
    return _erf_function()(x)


def _foreign_erf(layer, x):
    """erf on another array library: PyTorch and CuPy have one; the standard has none."""
    try:
        return ops.backend.erf(x)
    except TypeError as exc:
        raise TypeError(f"{layer.where()}: the exact GELU needs erf: {exc}; use "
                        "GELU(approximate='tanh') there") from None


class LeakyReLU(Layer):
    """``h = z`` where ``z > 0``, else ``negative_slope * z``.

    The small slope keeps a gradient flowing through units that a plain ReLU
    would switch off for good.
    """

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = check_number(negative_slope, "LeakyReLU(negative_slope)", low=-math.inf)
        self.mask = None

    def forward(self, z, training=False):
        z = check_float_input(self, z)
        self.mask = z > 0
        return ops.xp(z).where(self.mask, z, z * self.negative_slope)

    def backward(self, dh, input_grad=True):
        self._check_grad(dh, self.mask)
        return ops.xp(dh).where(self.mask, dh, dh * self.negative_slope)

    def config(self):
        return {"negative_slope": self.negative_slope}


def sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` without overflow for any ``z``.

    ``exp`` is only ever taken of ``-|z| <= 0``, so it stays in (0, 1]:
    ``1 / (1 + e)`` for ``z >= 0`` and the equal ``e / (1 + e)`` for ``z < 0``.
    """
    xp = ops.xp(z)
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


def log_softmax(z: np.ndarray) -> np.ndarray:
    """``log(softmax(z))`` per row, exact for logits of any size.

    Subtracting the row maximum first keeps ``exp`` in [0, 1], so nothing
    overflows; the log is taken of a sum >= 1, so nothing underflows to -inf.
    """
    xp = ops.xp(z)
    shifted = z - xp.max(z, axis=1, keepdims=True)  # (N, C), max 0 per row
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for logits of any size."""
    xp = ops.xp(z)
    e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


class Sigmoid(Layer):
    """``h = 1 / (1 + exp(-z))``; its derivative is ``h * (1 - h)``."""

    def __init__(self):
        self.out = None

    def forward(self, z, training=False):
        self.out = sigmoid(check_float_input(self, z))
        return self.out

    def backward(self, dh, input_grad=True):
        self._check_grad(dh, self.out)
        return dh * self.out * (1 - self.out)


class Tanh(Layer):
    """``h = tanh(z)``; its derivative is ``1 - h**2``. Saturates, never overflows."""

    def __init__(self):
        self.out = None

    def forward(self, z, training=False):
        z = check_float_input(self, z)
        self.out = ops.xp(z).tanh(z)
        return self.out

    def backward(self, dh, input_grad=True):
        self._check_grad(dh, self.out)
        return dh * (1 - self.out * self.out)


class GELU(Layer):
    """Gaussian error linear unit, ``h = z * Phi(z)`` (Phi: the normal CDF).

    Args:
        approximate: ``"none"`` (default) for the exact erf form, or
            ``"tanh"`` for ``0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))``,
            both as in ``torch.nn.GELU``.
    """

    _C = math.sqrt(2 / math.pi)
    _K = 0.044715

    def __init__(self, approximate: str = "none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU(approximate): expected 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        self.z = None

    def forward(self, z, training=False):
        z = check_float_input(self, z)
        self.z = z
        if self.approximate == "tanh":
            return 0.5 * z * (1 + ops.xp(z).tanh(self._inner(z)))
        if type(z) is not np.ndarray:  # the standard has no erf: the library's own, if it has one
            return z * (0.5 * (1 + _foreign_erf(self, z * (1 / math.sqrt(2)))))
        cdf = 0.5 * (1 + _erf(z * (1 / math.sqrt(2))))
        return z * cdf.astype(z.dtype, copy=False)

    def _inner(self, z):
        zc = ops.xp(z).clip(z, -100, 100)  # tanh is +-1 long before; keeps z**3 finite in float32
        return self._C * (zc + self._K * zc * zc * zc)

    def backward(self, dh, input_grad=True):
        self._check_grad(dh, self.z)
        z = self.z
        if self.approximate == "tanh":
            t = ops.xp(z).tanh(self._inner(z))
            zc = ops.xp(z).clip(z, -100, 100)
            dinner = self._C * (1 + 3 * self._K * zc * zc)
            return dh * (0.5 * (1 + t) + 0.5 * z * (1 - t * t) * dinner)
        # d/dz [z Phi(z)] = Phi(z) + z phi(z), phi the normal density
        xp = ops.xp(z)
        if xp is np:
            cdf = (0.5 * (1 + _erf(z * (1 / math.sqrt(2))))).astype(z.dtype, copy=False)
        else:
            cdf = 0.5 * (1 + _foreign_erf(self, z * (1 / math.sqrt(2))))
        zc = xp.clip(z, -100, 100)  # phi is 0 there already; avoids z*z overflow
        pdf = xp.exp(-0.5 * zc * zc) * (1 / math.sqrt(2 * math.pi))
        return dh * (cdf + z * pdf)

    def config(self):
        return {"approximate": self.approximate}


class Softmax(Layer):
    """Softmax over the features of each row, as a layer (``dim=1``).

    For classification prefer a plain output with
    :class:`~flexnet.losses.SoftmaxCrossEntropy`, which fuses the two and
    never divides by an underflowed probability. This layer is for when the
    probabilities themselves feed something else.

    Shapes:
        z: (N, C) -> p: (N, C), each row summing to 1.
    """

    def __init__(self):
        self.out = None

    def forward(self, z, training=False):
        self.out = softmax(check_float_input(self, z))  # (N, C)
        return self.out

    def backward(self, dp, input_grad=True):
        # Jacobian-vector product of softmax: p * (g - sum_j g_j p_j), per row,
        # without building the (C, C) Jacobian.
        self._check_grad(dp, self.out)
        p = self.out
        return p * (dp - ops.xp(p).sum(dp * p, axis=1, keepdims=True))


#: Lower-case names (as the CLI and model files write them) -> classes.
ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU, "leaky_relu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh, "gelu": GELU, "softmax": Softmax,
}


def get(name) -> type[Layer]:
    """The activation class for ``name`` ("relu", "LeakyReLU", "leaky-relu", ...).

    A Layer subclass is returned unchanged, so callers accept either.
    """
    if isinstance(name, type) and issubclass(name, Layer):
        return name
    return lookup(name, ACTIVATIONS, "activation", {"leakyrelu": "leaky_relu"}, "a name or a Layer class")

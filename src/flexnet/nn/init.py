"""Weight initialisers: He (Kaiming), Glorot (Xavier) and LeCun, normal and uniform.

Each keeps the variance of the signal roughly steady from layer to layer, for
a different kind of activation:

- He, ``Var(W) = 2 / fan_in``: ReLU and its relatives, which zero half the input.
- Glorot, ``Var(W) = 2 / (fan_in + fan_out)``: tanh and sigmoid, balancing the
  forward and the backward pass.
- LeCun, ``Var(W) = 1 / fan_in``: SELU-style and linear units.

The uniform variants draw from ``U(-a, a)`` with ``a = sqrt(3 * Var)``, the
same variance. Every initialiser has the signature
``init(fan_in, fan_out, rng, dtype) -> array of shape (fan_in, fan_out)``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .checks import lookup

Initializer = Callable[[int, int, np.random.Generator, np.dtype], np.ndarray]


def _normal(std: float, shape, rng, dtype) -> np.ndarray:
    # Drawn in float64 then cast, so float32 and float64 get the same numbers.
    return (rng.standard_normal(shape) * std).astype(dtype)


def _uniform(variance: float, shape, rng, dtype) -> np.ndarray:
    a = math.sqrt(3 * variance)
    return rng.uniform(-a, a, size=shape).astype(dtype)


def he_normal(fan_in: int, fan_out: int, rng: np.random.Generator, dtype="float32") -> np.ndarray:
    """``N(0, 2 / fan_in)`` (Kaiming normal, ReLU gain)."""
    return _normal(math.sqrt(2.0 / fan_in), (fan_in, fan_out), rng, dtype)


def he_uniform(fan_in: int, fan_out: int, rng: np.random.Generator, dtype="float32") -> np.ndarray:
    """``U(-a, a)`` with ``a = sqrt(6 / fan_in)`` (Kaiming uniform, ReLU gain)."""
    return _uniform(2.0 / fan_in, (fan_in, fan_out), rng, dtype)


def glorot_normal(fan_in: int, fan_out: int, rng: np.random.Generator, dtype="float32") -> np.ndarray:
    """``N(0, 2 / (fan_in + fan_out))`` (Xavier normal)."""
    return _normal(math.sqrt(2.0 / (fan_in + fan_out)), (fan_in, fan_out), rng, dtype)


def glorot_uniform(fan_in: int, fan_out: int, rng: np.random.Generator, dtype="float32") -> np.ndarray:
    """``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))`` (Xavier uniform)."""
    return _uniform(2.0 / (fan_in + fan_out), (fan_in, fan_out), rng, dtype)


def lecun_normal(fan_in: int, fan_out: int, rng: np.random.Generator, dtype="float32") -> np.ndarray:
    """``N(0, 1 / fan_in)``."""
    return _normal(math.sqrt(1.0 / fan_in), (fan_in, fan_out), rng, dtype)


def lecun_uniform(fan_in: int, fan_out: int, rng: np.random.Generator, dtype="float32") -> np.ndarray:
    """``U(-a, a)`` with ``a = sqrt(3 / fan_in)``."""
    return _uniform(1.0 / fan_in, (fan_in, fan_out), rng, dtype)


INITIALIZERS: dict[str, Initializer] = {
    "he_normal": he_normal, "he_uniform": he_uniform, "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform, "lecun_normal": lecun_normal, "lecun_uniform": lecun_uniform,
}
# The other common spellings of the same two families.
_ALIASES = {f"{alias}_{kind}": f"{family}_{kind}" for alias, family in (("kaiming", "he"), ("xavier", "glorot"))
            for kind in ("normal", "uniform")}

#: Activation class name -> the initialiser that suits it.
DEFAULT_FOR_ACTIVATION = {
    "ReLU": "he_normal", "LeakyReLU": "he_normal", "GELU": "he_normal", "Tanh": "glorot_normal",
    "Sigmoid": "glorot_normal", "Softmax": "glorot_normal",
}
_BY_NAME = {cls.lower(): init for cls, init in DEFAULT_FOR_ACTIVATION.items()}  # "leakyrelu" -> ...


def get(name) -> Initializer:
    """The initialiser called ``name`` ("he_normal", "xavier_uniform", ...).

    A callable is returned unchanged, so a custom ``init(fan_in, fan_out,
    rng, dtype)`` works wherever a name does.
    """
    if callable(name):
        return name
    return lookup(name, INITIALIZERS, "init", _ALIASES, "a name such as 'he_normal' or a callable", "initialiser")


def default_for(activation) -> str:
    """The initialiser name that suits ``activation`` (a class, instance or name).

    He for the ReLU family and GELU, Glorot for tanh, sigmoid and softmax;
    He for anything unknown, as the most common case.
    """
    if isinstance(activation, str):  # "relu", "leaky_relu", "Leaky-ReLU" ...: flexnet's own activations
        return lookup(activation.replace("_", "").replace("-", ""), _BY_NAME, "activation")
    cls = activation if isinstance(activation, type) else type(activation)
    return DEFAULT_FOR_ACTIVATION.get(cls.__name__, "he_normal")

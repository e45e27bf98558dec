"""Layers: each one caches in ``forward`` what its ``backward`` needs.

The contract every layer follows:

- ``forward(x, training=False)`` returns the output and keeps what backward needs.
- ``backward(grad, input_grad=True)`` takes dL/d(output), stores the gradient
  of every parameter (``W`` -> ``dW``) and returns dL/d(input). A layer never
  changes its own parameters in ``backward``.
- ``update(lr)`` is plain gradient descent on the layer's parameters.

Parameters are listed by attribute name in ``params``; the gradient of
parameter ``name`` lives in attribute ``"d" + name``.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from .. import ops
from . import init as initializers  # "init" is Linear's argument
from .checks import as_float_dtype, check_float_input, check_lr, check_positive_int, make_rng


class Layer:
    """Base class of every layer, and the contract a layer of your own follows.

    A layer needs two methods; everything else has a default here:

    - ``forward(self, x, training=False)``: return the output for the batch
      ``x`` (shape ``(N, features)``) and keep on ``self`` what backward will
      need (the input, a mask). ``training`` is True inside ``fit`` (dropout
      drops, batch norm uses the batch's statistics) and False for predictions.
    - ``backward(self, grad)``, or ``backward(self, grad, input_grad=True)``:
      ``grad`` is dL/d(output) of the last forward, shape of that output.
      Store the gradient of each parameter ``W`` in ``self.dW`` and return
      dL/d(input), shape of ``x``. The network passes ``input_grad=False`` to
      the first layer, whose input gradient nobody uses, when backward accepts
      the argument; without it, backward always returns dL/d(input). Never
      change a parameter in backward.

    And, as the layer needs them:

    - ``params``: a tuple of attribute names of the trainable arrays,
      ``("W", "b")``; the gradient of ``W`` lives in ``dW`` (None until
      backward). Optimizers, ``update(lr)`` (``p -= lr * dp``), model files and
      ``gradcheck`` find the parameters through it. ``buffers``: arrays that are
      saved but not trained (running statistics).
    - ``config(self)``: the constructor's arguments as a JSON-friendly dict;
      loading rebuilds the layer as ``cls(**config())`` and then fills in the
      arrays. A layer whose constructor takes no arguments needs none; ``save``
      refuses one that cannot be rebuilt and says what to add.
    - ``output_size(in_features)``: the output width, for ``summary()``, when
      it differs from the input width.

    ``flexnet.gradcheck(layer, x)`` checks backward against central finite
    differences of ``sum(forward(x) * R)`` for a fixed random ``R``: every
    parameter's gradient and the returned input gradient (errors below about
    1e-6 mean they agree). To load a model that uses the layer in another
    program, pass ``flexnet.load(path, custom_layers={"Swish": Swish})`` or
    decorate the class with ``@flexnet.register_layer``. docs/layers.md walks
    through a layer written this way.
    """

    params: tuple[str, ...] = ()
    buffers: tuple[str, ...] = ()
    #: True for layers that draw random numbers in forward (Dropout); a
    #: network hands them its own generator so one seed controls everything.
    uses_rng: bool = False

    name: str | None = None  # "layers.3" once the layer belongs to a network

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError(f"{self.where()} has no forward(self, x, training=False): a layer must define it")

    def backward(self, grad: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        raise NotImplementedError(f"{self.where()} has no backward(self, grad): a layer that trains must define it")

    def named_parameters(self) -> Iterator[tuple[str, np.ndarray, np.ndarray | None]]:
        """Yield ``(name, parameter, gradient)``; gradient is None before backward."""
        for p in self.params:
            yield p, getattr(self, p), getattr(self, "d" + p, None)

    def update(self, lr: float) -> None:
        """One step of gradient descent: ``p -= lr * dp`` for every parameter."""
        if not (type(lr) is float and 0.0 < lr < math.inf):  # the message is built only on failure
            lr = check_lr(lr, f"{self.where()}.update(lr)")
        for name, p, g in self.named_parameters():
            if g is None:
                raise RuntimeError(f"{self.where()}.update: no gradient for {name}; call backward first")
            ops.axpy(-lr, g, p)  # p -= lr * g, in place, one pass

    def astype(self, dtype) -> "Layer":
        """Cast parameters and buffers to ``dtype`` in place; returns self."""
        dtype = as_float_dtype(dtype)
        for attr in self.params + self.buffers:
            setattr(self, attr, ops.astype(getattr(self, attr), dtype))
        for attr in self.params:
            setattr(self, "d" + attr, None)
        if hasattr(self, "dtype"):
            self.dtype = dtype
        return self

    def config(self) -> dict:
        """Constructor arguments that rebuild this layer (JSON-friendly)."""
        return {}

    def output_size(self, in_features: int) -> int:
        """Number of output features for ``in_features`` inputs."""
        return in_features

    def n_params(self) -> int:
        return sum(math.prod(getattr(self, p).shape) for p in self.params)

    def _check_grad(self, grad, like) -> np.ndarray:
        """Refuse a gradient that does not match the last forward's output, instead of
        letting it broadcast. ``like`` is an array of the output's shape cached by
        forward, or that shape; None when there was no forward."""
        if like is None:
            raise RuntimeError(f"{self.where()}.backward: no forward pass to go back through; "
                               "call forward first")
        shape = like if isinstance(like, tuple) else like.shape
        array = isinstance(grad, np.ndarray) or ops.is_foreign(grad)
        if not array or grad.shape != shape:
            got = grad.shape if array else type(grad).__name__
            raise ValueError(f"{self.where()}.backward expected a gradient of shape {shape}, "
                             f"the shape of the last forward's output, got {got}")
        return grad

    def where(self) -> str:
        """How error messages name this layer: ``Linear(784 -> 128) at layers.0``."""
        return repr(self) + (f" at {self.name}" if self.name else "")

    _where = where  # its name in 0.1, which custom layers may call

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Linear(Layer):
    """Fully connected layer, ``z = x @ W + b``.

    Args:
        in_features: size of each input row.
        out_features: size of each output row.
        dtype: float32 (default) or float64.
        seed: int, ``np.random.Generator`` or None, for the initial weights.
        init: a name from :mod:`flexnet.init` ("he_normal", "glorot_uniform",
            ...) or a callable ``init(fan_in, fan_out, rng, dtype)``.
        bias: learn ``b`` (default). ``bias=False`` gives ``z = x @ W``, with
            ``W`` its one parameter: the layer to put before a BatchNorm1d,
            whose shift ``beta`` already does a bias's job.

    Weights start He-normal by default, ``W ~ N(0, 2 / in_features)``, which
    keeps the activation variance steady through a stack of ReLUs; biases
    start at 0.

    ``backward`` writes ``dW`` and ``db`` into the arrays of the previous
    backward when it can: copy them if you need them after the next one.

    Shapes:
        x: (N, in_features) -> z: (N, out_features).
        W: (in_features, out_features), b: (1, out_features) (None without bias).
    """

    params = ("W", "b")

    def __init__(self, in_features: int, out_features: int, *, dtype="float32", seed=None,
                 init="he_normal", bias: bool = True):
        self.in_features = check_positive_int(in_features, "Linear(in_features)")
        self.out_features = check_positive_int(out_features, "Linear(out_features)")
        self.dtype = as_float_dtype(dtype, "Linear(dtype)")
        self.init = init
        rng = make_rng(seed)
        self.W = initializers.get(init)(in_features, out_features, rng, self.dtype)
        if self.W.shape != (in_features, out_features) or self.W.dtype != self.dtype:
            raise ValueError(f"Linear(init): {init!r} returned {self.W.dtype} {self.W.shape}; expected "
                             f"{self.dtype} ({in_features}, {out_features})")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"Linear(bias): expected True or False, got {bias!r}")
        self.b = np.zeros((1, out_features), dtype=self.dtype) if bias else None
        self.params = ("W", "b") if bias else ("W",)
        self.dW = None
        self.db = None
        self.x = None  # cached input

    def forward(self, x, training=False):
        if not isinstance(x, np.ndarray) and not ops.is_foreign(x):
            x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            if x.ndim > 2:
                hint = " If these are images, flatten them: x.reshape(len(x), -1)."
            elif x.ndim == 2 and self.name == "layers.0":
                hint = (f" The data has {x.shape[1]} features per row: make the network's first size "
                        f"{x.shape[1]}, or flatten images to one row each.")
            else:
                hint = ""
            raise ValueError(f"{self.where()} expected input of shape (batch, {self.in_features}), "
                             f"got {x.shape}.{hint}")
        if type(x) is not np.ndarray or x.dtype != self.dtype:  # another library: a no-op when it fits
            x = ops.astype(x, self.dtype)
        self.x = x
        z = x @ self.W  # (N, out), a new array: the caller may keep it
        if self.b is not None:
            z += self.b  # bias added in place, no second (N, out) temporary
        return z

    def backward(self, dz, input_grad=True):
        # Each weight W[i, j] touches every row through x[:, i], so its gradient
        # sums x[:, i] * dz[:, j] over the batch: x.T @ dz. The seam writes dW and
        # db into the previous step's arrays when they fit (copy them to keep them).
        self._check_grad(dz, None if self.x is None else (self.x.shape[0], self.out_features))
        self.dW = ops.matmul(self.x.T, dz, out=self.dW)  # dW = x.T @ dz            (in, out)
        if self.b is not None:
            self.db = ops.sum_batch(dz, out=self.db)  # db = dz.sum(axis=0)            (1, out)
        if not input_grad:
            return None  # the first layer's dx is never used: skip a whole matmul
        return dz @ self.W.T  # dx = dz @ W.T                                          (N, in)

    def output_size(self, in_features: int) -> int:
        return self.out_features

    def config(self):
        bias = {} if self.b is not None else {"bias": False}  # files of old keep their exact config
        return {"in_features": self.in_features, "out_features": self.out_features, **bias}

    def __repr__(self):
        return f"Linear({self.in_features} -> {self.out_features}{'' if self.b is not None else ', bias=False'})"


class ReLU(Layer):
    """Rectified linear unit, ``h = max(0, z)``.

    The gradient passes where ``z > 0`` and is blocked elsewhere (at exactly 0
    too, as in PyTorch).
    """

    def __init__(self):
        self.mask = None

    def forward(self, z, training=False):
        z = check_float_input(self, z)
        self.mask = ops.positive(z, out=self.mask)  # mask = z > 0, into the last batch's array
        return ops.xp(z).maximum(z, 0)

    def backward(self, dh, input_grad=True):
        self._check_grad(dh, self.mask)
        return dh * self.mask

    def __repr__(self):
        return "ReLU()"

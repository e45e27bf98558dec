"""Networks: a stack of layers and a loss.

Forward is a loop over the layers, backward the same loop reversed. Each
parameter is known by one name, ``layers.<index>.<attribute>`` (for example
``layers.0.W``), which keys optimizer state, model files and the PyTorch
mapping.
"""

from __future__ import annotations

from functools import cache
from inspect import signature
from typing import Iterator, Sequence

import numpy as np

from .. import ops
from . import init as initializers
from .activations import get as get_activation
from .checks import as_float_dtype, as_input, check_finite_rows, check_layer_sizes, check_lr, make_rng
from .dropout import Dropout
from .layers import Layer, Linear
from .losses import Loss, SoftmaxCrossEntropy
from .losses import get as get_loss
from .normalization import BatchNorm1d, LayerNorm


@cache
def _takes_input_grad(backward) -> bool:  # read once per method (not per class: classes stay collectable)
    return "input_grad" in signature(backward).parameters


def layer_backward(layer, grad, input_grad: bool = True):
    """``layer.backward(grad, input_grad=...)``, or ``layer.backward(grad)`` for a layer written
    without ``input_grad`` (its backward then always returns dL/d(input))."""
    out = layer.backward(grad, input_grad=input_grad) if _takes_input_grad(type(layer).backward) else layer.backward(grad)
    if input_grad and not hasattr(out, "shape"):  # not a later layer's error: this layer's
        raise TypeError(f"{layer.where()}.backward must return dL/d(input) as an array, got {type(out).__name__}")
    return out


class Sequential:
    """Any stack of layers followed by a loss.

    Args:
        layers: the layers, first to last.
        loss: the loss applied to the last layer's output
            (default :class:`SoftmaxCrossEntropy`).
        dtype: float32 or float64. Layers are cast to it; inputs are converted
            to it on the way in, so nothing is upcast quietly.
            Default: the dtype of the layers, else float32.
        seed: int, ``np.random.Generator`` or None. The network's generator
            drives every random choice made during training (dropout masks).
        backend: the array library that holds the parameters and computes:
            "numpy" (default), "torch", "cupy" or "array_api_strict" (see :meth:`to`).
        device: where, for that library ("cuda", "cpu", ...; None: its default).

    Shapes:
        x: (N, in_features) -> forward: (N, out_features).
    """

    backend, device = "numpy", None  # the array library and device of the parameters (see to())

    def __init__(self, layers: Sequence[Layer], loss: Loss | None = None, *, dtype=None, seed=None,
                 backend: str = "numpy", device=None):
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential: expected at least one layer, got an empty list")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: layers[{i}] must be a flexnet Layer, got {type(layer).__name__}")
            layer.params, layer.buffers = tuple(layer.params), tuple(layer.buffers)  # a list works too
        loss = SoftmaxCrossEntropy() if loss is None else loss
        if not isinstance(loss, Loss):
            raise TypeError(f"Sequential: loss must be a flexnet Loss, got {type(loss).__name__}")
        if dtype is None:  # the first parameter's
            dtype = next((getattr(layer, p).dtype for layer in layers for p in layer.params), "float32")
        self.dtype = as_float_dtype(dtype, "Sequential(dtype)")
        self.rng = make_rng(seed)
        self.layers = layers
        self.loss_fn = loss
        #: JSON-friendly facts about the data the network expects (input shape,
        #: scaling, class names); saved with the model so predict works on raw input.
        self.metadata: dict = {}
        for i, layer in enumerate(layers):
            layer.name = f"layers.{i}"
            if layer.uses_rng:
                layer.rng = self.rng
            if any(getattr(layer, p).dtype != self.dtype for p in layer.params + layer.buffers):
                layer.astype(self.dtype)
            elif hasattr(layer, "dtype"):
                layer.dtype = self.dtype
        if backend != "numpy" or device is not None:  # else the class's own: NumPy, on the CPU
            self.to(backend, device)

    def to(self, backend: str = "numpy", device=None):
        """Move every parameter and buffer to array library ``backend`` on ``device``; returns self.

        The layers then compute with that library's arrays (through the Array API
        standard), and ``forward``, ``fit``, ``predict`` and ``evaluate`` take NumPy
        input and move it. Dropout masks are still drawn by the network's NumPy
        generator and moved, so a run equals NumPy's to rounding. Gradients and
        what layers cached for backward are dropped. ``net.to("numpy")`` brings
        the network back.
        """
        space = ops.namespace(backend)
        if space is np and device not in (None, "cpu"):
            raise ValueError(f"{type(self).__name__}.to(device={device!r}): NumPy computes on the CPU only; name a backend too")
        try:
            ops.move(np.zeros(1, self.dtype), space, device)  # a device the library cannot use fails here, by name
        except Exception as exc:
            raise ValueError(f"{type(self).__name__}.to(device={device!r}): {backend} cannot place arrays there ({exc})") from exc
        if backend != "numpy" and (getattr(self.loss_fn, "class_weights", None) is not None
                                   or getattr(self.loss_fn, "label_smoothing", 0)):
            raise ValueError(f"{type(self).__name__}.to({backend!r}): class_weights and label_smoothing of "
                             f"{self.loss_fn!r} compute in NumPy only; train this network on NumPy")
        for layer in self.layers:
            for attr in layer.params + layer.buffers:
                if getattr(layer, attr) is not None:
                    setattr(layer, attr, ops.move(getattr(layer, attr), space, device))
            for attr, value in list(vars(layer).items()):  # gradients and caches: the next pass makes them
                if attr not in layer.params + layer.buffers and (isinstance(value, np.ndarray) or ops.is_foreign(value)):
                    setattr(layer, attr, None)
        self.backend, self.device = backend, device
        return self

    # -- the tutorial's loop -------------------------------------------------

    def forward(self, x, training: bool = False) -> np.ndarray:
        """Run ``x`` through every layer; returns the raw outputs (logits).

        ``training=True`` turns on dropout and batch statistics; the default is
        inference, so a forgotten flag never drops units from a prediction.
        """
        where = f"{type(self).__name__}.forward"
        x = z = as_input(x, self.dtype, where)
        if training and any(layer.buffers for layer in self.layers):
            check_finite_rows(x, where)  # running statistics must never take in a NaN
        if self.backend != "numpy":  # checked in NumPy, computed on the network's device
            z = ops.move(x, ops.namespace(self.backend), self.device)
        for layer in self.layers:
            z = layer.forward(z, training)
        # NaN or infinity in the input would reach the outputs: checking the
        # small (N, outputs) array is cheap, and only then is the input
        # searched for the row to name (train_step stops before any update).
        if not ops.all_finite(z):
            check_finite_rows(x, where)
        return z

    def backward(self, grad: np.ndarray | None = None, input_grad: bool = False):
        """Backpropagate from the loss (or from ``grad`` if given).

        Returns dL/dx when ``input_grad`` is True, else None: the data needs no
        gradient, so the first layer skips computing it.
        """
        if grad is None:
            grad = self.loss_fn.backward()
        layers = self.layers
        for layer in layers[:0:-1]:  # the last layer first, down to the second
            grad = layer_backward(layer, grad)  # dL/d(this layer's input): the gradient for the layer below
        return layer_backward(layers[0], grad, input_grad)

    def update(self, lr: float) -> None:
        """Plain gradient descent on every parameter."""
        lr = check_lr(lr)
        for layer in self.layers:
            layer.update(lr)

    def train_step(self, x, y, lr: float) -> float:
        """Forward, loss, backward and an SGD update; returns the batch loss."""
        lr = check_lr(lr)
        z = self.forward(x, training=True)
        loss = self.loss_fn.forward(z, y)
        self.backward()
        self.update(lr)
        return loss

    # -- predictions ---------------------------------------------------------

    def predict(self, x) -> np.ndarray:
        """Class ids for classifiers, raw outputs for regression."""
        return self.loss_fn.predict(self.forward(x))

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities, shape (N, C)."""
        return self.loss_fn.proba(self.forward(x))

    def loss(self, x, y) -> float:
        """Mean loss on ``(x, y)`` in inference mode (no parameter change)."""
        return self.loss_fn.forward(self.forward(x), y)

    # -- parameters by name --------------------------------------------------

    def named_parameters(self) -> Iterator[tuple[str, np.ndarray, np.ndarray | None]]:
        """Yield ``(name, parameter, gradient)`` such as ``("layers.0.W", W, dW)``."""
        for layer in self.layers:  # a plain loop: the optimizer walks it at every step
            prefix = layer.name + "."
            for attr, p, g in layer.named_parameters():
                yield prefix + attr, p, g

    def parameters(self) -> dict[str, np.ndarray]:
        """Every trainable array by name (the arrays themselves, not copies)."""
        return {name: p for name, p, _ in self.named_parameters()}

    def gradients(self) -> dict[str, np.ndarray | None]:
        """The gradient of every parameter by name, from the last backward."""
        return {name: g for name, _, g in self.named_parameters()}

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(name, array)`` for non-trained state such as running means."""
        for layer in self.layers:
            for attr in layer.buffers:
                yield f"{layer.name}.{attr}", getattr(layer, attr)

    def n_params(self) -> int:
        return sum(layer.n_params() for layer in self.layers)

    @property
    def in_features(self) -> int | None:
        """The first layer's input width (None when no layer says)."""
        return next((layer.in_features for layer in self.layers if hasattr(layer, "in_features")), None)

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"{type(self).__name__}(\n{inner}\n  loss={self.loss_fn!r}\n)"


class Network(Sequential):
    """The one-line builder: ``Network([784, 128, 64, 10])``.

    Builds Linear -> ReLU -> ... -> Linear from a list of sizes: the first is
    the number of input features, the last the number of outputs, the ones in
    between the hidden widths. All the Linears draw their weights in turn from
    one generator made from ``seed``, so the same seed always gives the same
    weights. Each hidden block is
    ``Linear -> [BatchNorm1d | LayerNorm] -> activation -> [Dropout]``.

    Args:
        layer_sizes: at least two positive integers.
        activation: a name ("relu", "tanh", "gelu", ...) or a Layer class.
        dropout: probability for a Dropout after each hidden activation
            (0 adds none).
        batchnorm: add a BatchNorm1d before each hidden activation.
        bias: False builds each Linear that a BatchNorm1d follows without a
            bias: in training the batch mean takes any bias away again, and
            BatchNorm's shift ``beta`` does its job (the layout PyTorch models
            usually have). Needs ``batchnorm=True``; the output layer keeps its bias.
        layernorm: add a LayerNorm there instead.
        loss: a Loss or its name (default :class:`SoftmaxCrossEntropy`).
        init: initialiser name or callable for every Linear; by default the
            one that suits the activation (:func:`flexnet.init.default_for`).
        dtype: float32 (default) or float64.
        seed: int, ``np.random.Generator`` or None.
        backend, device: the array library and device of the parameters, as for
            :class:`Sequential` (default NumPy).
    """

    def __init__(self, layer_sizes: Sequence[int], *, activation="relu", dropout: float = 0.0,
                 batchnorm: bool = False, layernorm: bool = False, loss: Loss | str | None = None,
                 init=None, dtype="float32", seed=None, bias: bool = True, backend: str = "numpy", device=None):
        sizes = check_layer_sizes(layer_sizes)
        dtype = as_float_dtype(dtype, "Network(dtype)")
        act = get_activation(activation)
        if batchnorm and layernorm:
            raise ValueError("Network: choose batchnorm=True or layernorm=True, not both")
        if not bias and not batchnorm:
            raise ValueError("Network(bias=False) drops the bias before each BatchNorm1d: it needs batchnorm=True")
        if dropout:
            Dropout(dropout)  # validates p with its own message
        if isinstance(loss, str):
            loss = get_loss(loss)()
        rng = make_rng(seed)
        init_used = initializers.default_for(act) if init is None else init
        layers: list[Layer] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            hidden = i < len(sizes) - 2
            layers.append(Linear(n_in, n_out, dtype=dtype, seed=rng, init=init_used, bias=bias or not hidden))
            if not hidden:
                break  # the output layer: raw outputs go to the loss
            if batchnorm:
                layers.append(BatchNorm1d(n_out, dtype=dtype))
            elif layernorm:
                layers.append(LayerNorm(n_out, dtype=dtype))
            layers.append(act())
            if dropout:
                layers.append(Dropout(dropout))
        super().__init__(layers, loss, dtype=dtype, seed=rng, backend=backend, device=device)
        self.layer_sizes = sizes
        #: The builder's options as given, for repr and model files.
        self.options = {"activation": activation if isinstance(activation, str) else act.__name__,
                        "dropout": float(dropout), "batchnorm": bool(batchnorm),
                        "layernorm": bool(layernorm), "init": init, **({} if bias else {"bias": False})}

    def __repr__(self) -> str:
        defaults = {"activation": ("relu", "ReLU"), "dropout": (0.0,), "batchnorm": (False,),
                    "layernorm": (False,), "init": (None,), "bias": (True,)}
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items() if v not in defaults[k])
        extra += "" if repr(self.loss_fn) == "SoftmaxCrossEntropy()" else f", loss={self.loss_fn!r}"
        extra += "" if self.backend == "numpy" else f", backend={self.backend!r}, device={self.device!r}"
        return f"Network({self.layer_sizes}{extra}, dtype={self.dtype.name!r})"

"""Export a network to ONNX for inference in ONNX Runtime and elsewhere.

The graph is the network's inference pass: dropout is left out and batch
normalisation, a multiply and an add from its running statistics, is folded
into the weights of the Linear layer right before it (or else right after it)
when there is one. The batch dimension is dynamic (``"batch"``). The graph is
built with the ``onnx`` package's helper API at opset :data:`OPSET`, so it runs
in any ONNX Runtime from 1.13 on.

Each piece is written as ONNX Runtime's graph optimiser recognises it, so a
session at ``ORT_ENABLE_ALL`` (its default) runs fused kernels: ``Gemm`` with
the activation after it (``FusedGemm``), ``LayerNormalization``, and GELU in
the node order ``torch.onnx`` writes (``Gelu``, ``FastGelu`` for the tanh form).

Each flexnet layer has one entry in :data:`EXPORTERS`; a new layer is a new
entry. ``onnx`` is imported only when :func:`to_onnx` is called.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..data.extras import optional
from ..filesystem import write_bytes
from ..nn.network import Sequential
from ..version import __version__
from .pytorch import flexnet_class

#: The ONNX operator set the graph uses, and the IR version that goes with it.
OPSET = 17
IR_VERSION = 8


def _onnx():
    return optional("onnx", "ONNX export")


class _Graph:
    """Collects nodes and constant tensors while the layers are exported."""

    def __init__(self, dtype: np.dtype):
        self.onnx = _onnx()
        self.dtype = dtype
        self.elem_type = self.onnx.TensorProto.DOUBLE if dtype == np.float64 else self.onnx.TensorProto.FLOAT
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value) -> str:
        """Add a constant in the graph's dtype; returns its name."""
        name = self._name(hint)
        array = np.asarray(value, dtype=self.dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, hint: str | None = None, **attrs) -> str:
        """Add a node with one output; returns the output's name."""
        out = self._name(hint or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def gemm(self, hint: str, x: str, w: np.ndarray, b: np.ndarray | None) -> str:
        """``x @ w + b`` as one Gemm (``w`` is (in, out), as flexnet keeps it)."""
        inputs = [x, self.const(f"{hint}.W", w)]
        if b is not None:
            inputs.append(self.const(f"{hint}.b", np.reshape(b, -1)))  # (out,)
        return self.op("Gemm", *inputs)


# -- one exporter per layer: (graph, layer, input name) -> output name -------------


def _linear(g: _Graph, layer, x: str) -> str:
    return g.gemm(layer.name, x, layer.W, layer.b)  # W (in, out): Gemm reads x @ W as is


def _leaky_relu(g: _Graph, layer, x: str) -> str:
    return g.op("LeakyRelu", x, alpha=float(layer.config().get("negative_slope", 0.01)))


def _gelu(g: _Graph, layer, x: str) -> str:
    # Written as ONNX Runtime's GeluFusion and FastGeluFusion look for them, so
    # a session fuses each into one node (Gelu, FastGelu). The exact form takes
    # torch.onnx's node order; a Mul by 1/sqrt(2) in place of the Div is left unfused.
    if layer.config().get("approximate", "none") == "tanh":
        # (0.5 x) (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2))),
        # which is 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) rearranged.
        half_x = g.op("Mul", x, g.const("half", 0.5))
        inner = g.op("Add", g.op("Mul", g.op("Mul", x, g.const("kappa", 0.044715)), x), g.const("one", 1.0))
        t = g.op("Tanh", g.op("Mul", g.op("Mul", x, g.const("sqrt_2_over_pi", math.sqrt(2 / math.pi))), inner))
        return g.op("Mul", half_x, g.op("Add", t, g.const("one", 1.0)))
    # (x (1 + erf(x / sqrt(2)))) 0.5. ONNX Runtime has no float64 Erf, so a
    # float64 graph takes erf in float32 (relative error about 1e-7).
    scaled = g.op("Div", x, g.const("sqrt2", math.sqrt(2)))
    if g.dtype == np.float64:
        f32 = g.op("Cast", scaled, to=g.onnx.TensorProto.FLOAT)
        t = g.op("Cast", g.op("Erf", f32), to=g.onnx.TensorProto.DOUBLE)
    else:
        t = g.op("Erf", scaled)
    return g.op("Mul", g.op("Mul", x, g.op("Add", t, g.const("one", 1.0))), g.const("half", 0.5))


def _batchnorm_affine(layer) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, shift)`` in float64, with ``BatchNorm1d(x) == x * scale + shift`` in inference:
    ``(x - mean) / sqrt(var + eps) * gamma + beta``."""
    mean = np.reshape(layer.running_mean, -1).astype(np.float64)
    var = np.reshape(layer.running_var, -1).astype(np.float64)
    gamma = np.reshape(getattr(layer, "gamma", np.ones_like(mean)), -1).astype(np.float64)
    beta = np.reshape(getattr(layer, "beta", np.zeros_like(mean)), -1).astype(np.float64)
    scale = gamma / np.sqrt(var + layer.config().get("eps", 1e-5))
    return scale, beta - mean * scale


def _batchnorm(g: _Graph, layer, x: str) -> str:
    # x * scale + shift, worked out once here in float64 and stored in the graph's dtype.
    scale, shift = _batchnorm_affine(layer)
    return g.op("Add", g.op("Mul", x, g.const(f"{layer.name}.scale", scale)),
                g.const(f"{layer.name}.shift", shift))


def _folded(layer, nxt) -> tuple[np.ndarray, np.ndarray] | None:
    """The weights ``(W, b)`` of one Gemm equal to ``layer`` then ``nxt``, when one is a
    Linear and the other a BatchNorm1d; else None. Worked out in float64:
    ``(x @ W + b) * scale + shift == x @ (W * scale) + (b * scale + shift)`` and
    ``(x * scale + shift) @ W + b == x @ (scale[:, None] * W) + (shift @ W + b)``."""
    kinds = (type(layer).__name__, type(nxt).__name__)  # flexnet's own classes: lookalikes were refused
    if kinds not in (("Linear", "BatchNorm1d"), ("BatchNorm1d", "Linear")):
        return None
    linear, bn = (layer, nxt) if kinds[0] == "Linear" else (nxt, layer)
    w = np.asarray(linear.W, dtype=np.float64)
    b = np.zeros(w.shape[1]) if linear.b is None else np.reshape(linear.b, -1).astype(np.float64)
    scale, shift = _batchnorm_affine(bn)
    if linear is layer:
        return w * scale, b * scale + shift
    return scale[:, None] * w, shift @ w + b


def _layernorm(g: _Graph, layer, x: str) -> str:
    return g.op("LayerNormalization", x, g.const(f"{layer.name}.gamma", np.reshape(layer.gamma, -1)),
                g.const(f"{layer.name}.beta", np.reshape(layer.beta, -1)),
                axis=-1, epsilon=float(layer.config().get("eps", 1e-5)))


#: flexnet layer class name -> exporter.
EXPORTERS: dict[str, Callable[[_Graph, object, str], str]] = {
    "Linear": _linear,
    "ReLU": lambda g, layer, x: g.op("Relu", x),
    "LeakyReLU": _leaky_relu,
    "Sigmoid": lambda g, layer, x: g.op("Sigmoid", x),
    "Tanh": lambda g, layer, x: g.op("Tanh", x),
    "GELU": _gelu,
    "Softmax": lambda g, layer, x: g.op("Softmax", x, axis=-1),
    "Dropout": lambda g, layer, x: x,  # inference: dropout is the identity
    "BatchNorm1d": _batchnorm,
    "LayerNorm": _layernorm,
}


def _probabilities(g: _Graph, loss, x: str, width: int) -> tuple[str, int]:
    """Append what turns the logits into ``loss.proba``'s output; returns it and its width."""
    name = type(loss).__name__
    if name == "SoftmaxCrossEntropy":
        return g.op("Softmax", x, axis=-1), width
    if name == "BCEWithLogits" and width == 1:
        # Two columns [P(0), P(1)] as BCEWithLogits.proba gives: sigmoid(-z), sigmoid(z).
        return g.op("Concat", g.op("Sigmoid", g.op("Neg", x)), g.op("Sigmoid", x), axis=1), 2
    if name == "BCEWithLogits":
        return g.op("Sigmoid", x), width
    raise ValueError(f"to_onnx(probabilities=True): {name} does not give probabilities; "
                     "export the raw outputs with probabilities=False")


def build_onnx(net: Sequential, *, probabilities: bool = False, in_features: int | None = None):
    """The network as an ``onnx.ModelProto`` (see :func:`to_onnx`)."""
    onnx = _onnx()
    if not isinstance(net, Sequential):
        raise TypeError(f"to_onnx: expected a flexnet Sequential or Network, got {type(net).__name__}")
    n_in = in_features or next((getattr(layer, a) for layer in net.layers
                                for a in ("in_features", "num_features") if hasattr(layer, a)), None)
    if n_in is None:
        raise ValueError("to_onnx: no layer tells the network's input width; pass in_features=")
    for layer in net.layers:
        export = EXPORTERS.get(type(layer).__name__)
        # Only flexnet's own classes: a lookalike with the same name may compute something else.
        if export is None or type(layer) is not flexnet_class(type(layer).__name__):
            raise ValueError(f"to_onnx: {layer.where()} ({type(layer).__name__}) has no ONNX "
                             f"exporter; supported layers: {', '.join(EXPORTERS)}")
    g = _Graph(net.dtype)
    x = "input"
    width = n_in
    layers = [layer for layer in net.layers if type(layer).__name__ != "Dropout"]  # identity in inference
    i = 0
    while i < len(layers):
        layer = layers[i]
        folded = _folded(layer, layers[i + 1]) if i + 1 < len(layers) else None
        if folded is not None:
            x = g.gemm(f"{layer.name}+{layers[i + 1].name}", x, *folded)
            width = layers[i + 1].output_size(layer.output_size(width))
            i += 2
            continue
        x = EXPORTERS[type(layer).__name__](g, layer, x)
        width = layer.output_size(width)
        i += 1
    if probabilities:
        x, width = _probabilities(g, net.loss_fn, x, width)
    out_name = "probabilities" if probabilities else "output"
    if x == "input":  # a network of identity layers only
        g.op("Identity", x)
    g.nodes[-1].output[0] = out_name  # the last node writes the graph's output: no Identity after it
    graph = onnx.helper.make_graph(
        g.nodes, "flexnet",
        [onnx.helper.make_tensor_value_info("input", g.elem_type, ["batch", n_in])],
        [onnx.helper.make_tensor_value_info(out_name, g.elem_type, ["batch", width])],
        g.initializers,
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   ir_version=IR_VERSION, producer_name="flexnet",
                                   producer_version=__version__)
    model.doc_string = repr(net)
    onnx.checker.check_model(model)
    return model


def to_onnx(net: Sequential, path, *, probabilities: bool = False, in_features: int | None = None) -> None:
    """Write the network's inference graph to an ONNX file.

    Args:
        net: the network; float32 or float64 gives a float or double graph.
        path: where to write (atomically: a failed export leaves no file).
        probabilities: append a softmax (softmax cross-entropy) or a sigmoid
            (BCEWithLogits) so the graph outputs ``net.predict_proba``'s
            probabilities instead of the raw outputs.
        in_features: the input width, for a network whose layers do not tell
            it (only activations).

    The graph has one input ``"input"`` of shape (batch, in_features) and one
    output, ``"output"`` (or ``"probabilities"``) of shape (batch, out), with
    the batch dimension dynamic. It passes ``onnx.checker.check_model``.

    Raises:
        ValueError: for a layer with no ONNX exporter (named with its index).
    """
    model = build_onnx(net, probabilities=probabilities, in_features=in_features)
    write_bytes(path, model.SerializeToString())

"""Export a network to ONNX for inference in ONNX Runtime and elsewhere.

The graph is the network's inference pass: dropout is left out and batch
normalisation is folded into one multiply and one add from its running
statistics. The batch dimension is dynamic (``"batch"``). The graph is built
with the ``onnx`` package's helper API at opset :data:`OPSET`, so it runs in
any ONNX Runtime from 1.13 on.

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


# -- one exporter per layer: (graph, layer, input name) -> output name -------------


def _linear(g: _Graph, layer, x: str) -> str:
    w = g.const(f"{layer.name}.W", layer.W)  # (in, out): Gemm reads x @ W as is
    b = g.const(f"{layer.name}.b", np.reshape(layer.b, -1))  # (out,)
    return g.op("Gemm", x, w, b)


def _leaky_relu(g: _Graph, layer, x: str) -> str:
    return g.op("LeakyRelu", x, alpha=float(layer.config().get("negative_slope", 0.01)))


def _gelu(g: _Graph, layer, x: str) -> str:
    half_x = g.op("Mul", x, g.const("half", 0.5))
    if layer.config().get("approximate", "none") == "tanh":
        # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.op("Mul", g.op("Mul", x, x), x)
        inner = g.op("Add", x, g.op("Mul", cube, g.const("c", 0.044715)))
        t = g.op("Tanh", g.op("Mul", inner, g.const("sqrt_2_over_pi", math.sqrt(2 / math.pi))))
    else:
        # 0.5 x (1 + erf(x / sqrt(2))). ONNX Runtime has no float64 Erf, so a
        # float64 graph takes erf in float32 (relative error about 1e-7).
        scaled = g.op("Mul", x, g.const("inv_sqrt2", 1 / math.sqrt(2)))
        if g.dtype == np.float64:
            f32 = g.op("Cast", scaled, to=g.onnx.TensorProto.FLOAT)
            t = g.op("Cast", g.op("Erf", f32), to=g.onnx.TensorProto.DOUBLE)
        else:
            t = g.op("Erf", scaled)
    return g.op("Mul", half_x, g.op("Add", t, g.const("one", 1.0)))


def _batchnorm(g: _Graph, layer, x: str) -> str:
    # (x - mean) / sqrt(var + eps) * gamma + beta  ==  x * scale + shift,
    # worked out once here in float64 and stored in the graph's dtype.
    cfg = layer.config()
    mean = np.reshape(layer.running_mean, -1).astype(np.float64)
    var = np.reshape(layer.running_var, -1).astype(np.float64)
    gamma = np.reshape(getattr(layer, "gamma", np.ones_like(mean)), -1).astype(np.float64)
    beta = np.reshape(getattr(layer, "beta", np.zeros_like(mean)), -1).astype(np.float64)
    scale = gamma / np.sqrt(var + cfg.get("eps", 1e-5))
    shift = beta - mean * scale
    return g.op("Add", g.op("Mul", x, g.const(f"{layer.name}.scale", scale)),
                g.const(f"{layer.name}.shift", shift))


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
    g = _Graph(net.dtype)
    x = "input"
    width = n_in
    for layer in net.layers:
        export = EXPORTERS.get(type(layer).__name__)
        # Only flexnet's own classes: a lookalike with the same name may compute something else.
        if export is None or type(layer) is not flexnet_class(type(layer).__name__):
            raise ValueError(f"to_onnx: {layer.where()} ({type(layer).__name__}) has no ONNX "
                             f"exporter; supported layers: {', '.join(EXPORTERS)}")
        x = export(g, layer, x)
        width = layer.output_size(width)
    if probabilities:
        x, width = _probabilities(g, net.loss_fn, x, width)
    out_name = "probabilities" if probabilities else "output"
    if x == "input":  # a network of identity layers only
        x = g.op("Identity", x)
    g.nodes.append(onnx.helper.make_node("Identity", [x], [out_name]))
    graph = onnx.helper.make_graph(
        g.nodes, "flexnet",
        [onnx.helper.make_tensor_value_info("input", g.elem_type, ["batch", n_in])],
        [onnx.helper.make_tensor_value_info(out_name, g.elem_type, ["batch", width])],
        g.initializers,
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   ir_version=IR_VERSION, producer_name="flexnet")
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

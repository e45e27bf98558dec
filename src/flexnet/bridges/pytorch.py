"""The bridge to PyTorch: the same network as a ``torch.nn.Sequential`` and back.

One table, :data:`LAYERS`, pairs each flexnet layer with its PyTorch module:
how the constructor arguments translate and which arrays correspond. A new
layer is one new entry. Weights are ``(in, out)`` in flexnet and
``(out, in)`` in PyTorch; this module is the one place that transposes.

PyTorch is imported only when a function here is called, so ``import
flexnet`` never needs it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import nn
from ..data.extras import optional
from ..filesystem import atomic_write, open_regular
from ..nn import network as plain
from ..nn.checks import as_float_dtype
from ..nn.layers import Layer
from ..nn.losses import Loss
from ..training.network import Sequential

#: Format tag of the files written by :func:`save_torch`.
EXPORT_FORMAT = "flexnet-torch-v1"


def _torch():
    return optional("torch", "the PyTorch bridge")


def flexnet_class(name: str) -> type:
    """The flexnet layer or loss class called ``name``."""
    found = getattr(nn, name, None)
    if not isinstance(found, type):
        raise LookupError(f"flexnet has no class {name}")
    return found


@dataclass(frozen=True)
class LayerPair:
    """How one flexnet layer and one ``torch.nn`` module correspond.

    Attributes:
        flexnet: flexnet class name (``"Linear"``).
        torch: ``torch.nn`` class name (``"Linear"``).
        to_torch: flexnet ``config()`` -> torch constructor kwargs.
        from_torch: torch module -> flexnet constructor kwargs; raises
            ValueError for settings flexnet does not have.
        arrays: ``(flexnet attribute, torch attribute)`` for every parameter
            and buffer. A 2-D flexnet weight is the transpose of torch's.
    """

    flexnet: str
    torch: str
    to_torch: Callable[[dict], dict] = lambda cfg: {}
    from_torch: Callable[[object], dict] = lambda m: {}
    arrays: tuple[tuple[str, str], ...] = field(default=())


def _refuse(module, what: str) -> None:
    raise ValueError(f"{type(module).__name__} with {what} has no flexnet equivalent")


def _linear_to_torch(cfg: dict) -> dict:
    return {"in_features": cfg["in_features"], "out_features": cfg["out_features"],
            "bias": cfg.get("bias", True)}


def _linear_from_torch(m) -> dict:
    bias = {} if m.bias is not None else {"bias": False}
    return {"in_features": m.in_features, "out_features": m.out_features, **bias}


def _softmax_from_torch(m) -> dict:
    if m.dim not in (1, -1):
        _refuse(m, f"dim={m.dim} (flexnet's Softmax normalises each row, dim=1)")
    return {}


def _batchnorm_to_torch(cfg: dict) -> dict:
    return {"num_features": cfg["num_features"], "eps": cfg.get("eps", 1e-5),
            "momentum": cfg.get("momentum", 0.1), "affine": cfg.get("affine", True)}


def _batchnorm_from_torch(m) -> dict:
    if not m.track_running_stats:
        _refuse(m, "track_running_stats=False")
    if m.affine and m.bias is None:
        _refuse(m, "bias=False")
    cfg = {"num_features": m.num_features, "eps": float(m.eps),
           "momentum": None if m.momentum is None else float(m.momentum)}
    if not m.affine:
        cfg["affine"] = False
    return cfg


def _layernorm_from_torch(m) -> dict:
    if len(m.normalized_shape) != 1:
        _refuse(m, f"normalized_shape={tuple(m.normalized_shape)} (flexnet normalises rows of features)")
    if not m.elementwise_affine or m.bias is None:
        _refuse(m, "elementwise_affine=False or bias=False")
    return {"num_features": m.normalized_shape[0], "eps": float(m.eps)}


#: Every layer the bridge knows, flexnet side first.
LAYERS: tuple[LayerPair, ...] = (
    LayerPair("Linear", "Linear", _linear_to_torch, _linear_from_torch, (("W", "weight"), ("b", "bias"))),
    LayerPair("ReLU", "ReLU"),
    LayerPair("LeakyReLU", "LeakyReLU", lambda c: {"negative_slope": c.get("negative_slope", 0.01)},
              lambda m: {"negative_slope": float(m.negative_slope)}),
    LayerPair("Sigmoid", "Sigmoid"),
    LayerPair("Tanh", "Tanh"),
    LayerPair("GELU", "GELU", lambda c: {"approximate": c.get("approximate", "none")},
              lambda m: {"approximate": m.approximate}),
    LayerPair("Softmax", "Softmax", lambda c: {"dim": 1}, _softmax_from_torch),
    LayerPair("Dropout", "Dropout", lambda c: {"p": c.get("p", 0.5)}, lambda m: {"p": float(m.p)}),
    LayerPair("BatchNorm1d", "BatchNorm1d", _batchnorm_to_torch, _batchnorm_from_torch,
              (("gamma", "weight"), ("beta", "bias"), ("running_mean", "running_mean"),
               ("running_var", "running_var"), ("num_batches_tracked", "num_batches_tracked"))),
    LayerPair("LayerNorm", "LayerNorm",
              lambda c: {"normalized_shape": c["num_features"], "eps": c.get("eps", 1e-5)},
              _layernorm_from_torch, (("gamma", "weight"), ("beta", "bias"))),
)

_BY_FLEXNET = {p.flexnet: p for p in LAYERS}
_BY_TORCH = {p.torch: p for p in LAYERS}


def _torch_dtype(dtype: np.dtype):
    torch = _torch()
    return torch.float64 if dtype == np.float64 else torch.float32


def _to_tensor(arr: np.ndarray, like):
    """A torch copy of flexnet's ``arr`` in the shape of torch's tensor ``like``."""
    torch = _torch()
    a = np.asarray(arr)
    if a.ndim == 2 and like.dim() == 2:
        a = a.T  # (in, out) -> (out, in)
    return torch.tensor(np.ascontiguousarray(a).reshape(tuple(like.shape)), dtype=like.dtype)


def _to_array(tensor, like: np.ndarray) -> np.ndarray:
    """A NumPy copy of torch's ``tensor`` in the shape and dtype of flexnet's ``like``."""
    a = tensor.detach().cpu().numpy()
    if a.ndim == 2 and like.ndim == 2:
        a = a.T  # (out, in) -> (in, out)
    return np.array(a.reshape(like.shape), dtype=like.dtype)


def torch_module(layer: Layer, dtype=None):
    """The ``torch.nn`` module equal to one flexnet ``layer``, weights copied."""
    torch = _torch()
    pair = _BY_FLEXNET.get(type(layer).__name__)
    if pair is None or type(layer) is not flexnet_class(pair.flexnet):  # not a lookalike or subclass
        supported = ", ".join(_BY_FLEXNET)
        raise ValueError(
            f"to_torch: {layer.where()} ({type(layer).__name__}) has no PyTorch equivalent; "
            f"supported layers: {supported}"
        )
    dtype = _torch_dtype(as_float_dtype(dtype or _layer_dtype(layer)))
    module = getattr(torch.nn, pair.torch)(**pair.to_torch(layer.config())).to(dtype)
    with torch.no_grad():
        for flex_attr, torch_attr in pair.arrays:
            target = getattr(module, torch_attr)
            if target is None or flex_attr not in _arrays(layer):  # no bias, BatchNorm1d(affine=False)
                continue
            target.copy_(_to_tensor(getattr(layer, flex_attr), target))
    return module


def torch_names(net: Sequential) -> dict[str, str]:
    """flexnet parameter and buffer names -> the matching ``to_torch(net)`` state-dict keys.

    For example ``{"layers.0.W": "0.weight", "layers.0.b": "0.bias"}``; the
    2-D arrays among them are transposed between the two.
    """
    names = {}
    for i, layer in enumerate(net.layers):
        pair = _BY_FLEXNET.get(type(layer).__name__)
        for flex_attr, torch_attr in pair.arrays if pair else ():
            if flex_attr in _arrays(layer):
                names[f"layers.{i}.{flex_attr}"] = f"{i}.{torch_attr}"
    return names


def _arrays(layer: Layer) -> tuple[str, ...]:
    """The names of ``layer``'s parameters and buffers: the arrays that cross."""
    return tuple(layer.params) + tuple(layer.buffers)


def _layer_dtype(layer: Layer) -> np.dtype:
    for attr in layer.params + layer.buffers:
        return getattr(layer, attr).dtype
    return np.dtype(getattr(layer, "dtype", np.float32))


def to_torch(net: Sequential):
    """The network as a ``torch.nn.Sequential`` with the same layers and weights.

    The module comes back in eval mode, like flexnet's ``forward`` default
    (dropout off, batch norm on its running statistics): call ``.train()``
    before training it. Its dtype is the network's (float32 or float64).
    The loss is not part of a ``torch.nn.Sequential``; :func:`torch_loss`
    gives the matching PyTorch loss.

    Raises:
        ValueError: for a layer with no PyTorch equivalent (named with its index).
    """
    torch = _torch()
    if not isinstance(net, plain.Sequential):
        raise TypeError(f"to_torch: expected a flexnet Sequential or Network, got {type(net).__name__}")
    modules = [torch_module(layer, net.dtype) for layer in net.layers]
    return torch.nn.Sequential(*modules).eval()


def from_torch(module, loss=None, *, dtype=None, seed=None) -> Sequential:
    """Build the flexnet network equal to a ``torch.nn.Sequential``.

    Args:
        module: a ``torch.nn.Sequential`` (or a list of modules) of supported
            layers: Linear (with or without bias), ReLU, LeakyReLU, Sigmoid,
            Tanh, GELU, Softmax(dim=1), Dropout, BatchNorm1d (running
            statistics and ``num_batches_tracked`` copied) and LayerNorm. Its
            weights are float32 or float64; float16 ones are converted, with a
            warning; bfloat16 and other types are refused (call ``.float()``).
            A module on a GPU is copied to the CPU.
        loss: a flexnet :class:`Loss`, a matching PyTorch loss module
            (``nn.CrossEntropyLoss``, ``nn.MSELoss``...), or None for
            softmax cross-entropy.
        dtype: float32 or float64; default float64 if any weight or buffer
            of the module is float64 (none is rounded), else float32.
        seed: seed or Generator for the network's random numbers (dropout).

    Raises:
        ValueError: for any module flexnet has no layer for, naming its index
            and type, e.g. ``module [2] (Conv1d) has no flexnet equivalent``,
            or whose weights are bfloat16 or not floating point.
    """
    torch = _torch()
    if isinstance(module, torch.nn.Module) and not isinstance(module, torch.nn.Sequential):
        raise TypeError(
            f"from_torch: expected a torch.nn.Sequential, got {type(module).__name__}; "
            "wrap a lone layer as torch.nn.Sequential(layer)"
        )
    modules = list(module)
    if not modules:
        raise ValueError("from_torch: the Sequential is empty; expected at least one layer")
    half = [i for i, m in enumerate(modules) if _check_tensor_dtypes(i, m)]
    if dtype is None:
        dtypes = {t.dtype for m in modules for t in (*m.parameters(), *m.buffers())}
        dtype = "float64" if torch.float64 in dtypes else "float32"  # a float64 tensor is never rounded
    dtype = as_float_dtype(dtype, "from_torch(dtype)")
    if half:
        warnings.warn(f"from_torch: module{'s' * (len(half) > 1)} {', '.join(f'[{i}]' for i in half)} "
                      f"hold{'s' * (len(half) == 1)} float16 weights; they are converted to {dtype.name} "
                      "(exactly: every float16 value is a float32 value) and the network computes in "
                      f"{dtype.name}, not float16", UserWarning, stacklevel=2)
    layers = [_flexnet_layer(i, m, dtype) for i, m in enumerate(modules)]
    if loss is not None and not isinstance(loss, Loss):
        loss = loss_from_torch(loss)
    return Sequential(layers, loss, dtype=dtype, seed=seed)


def _check_tensor_dtypes(index: int, m) -> bool:
    """Refuse a module whose weights are not float32 or float64; True when they are float16.

    NumPy has no bfloat16, and flexnet computes in float32 or float64.
    """
    torch = _torch()
    half = False
    for name, tensor in [*m.named_parameters(), *m.named_buffers()]:
        if name == "num_batches_tracked" or tensor.dtype in (torch.float32, torch.float64):
            continue  # the count is an integer in PyTorch
        where = f"from_torch: module [{index}] ({type(m).__name__}) holds {name} in {tensor.dtype}"
        if tensor.dtype == torch.bfloat16:
            raise ValueError(f"{where}, which flexnet does not compute in (NumPy has no bfloat16); "
                             "convert the model first with module.float() (or .double())")
        if tensor.dtype != torch.float16:
            raise ValueError(f"{where}; flexnet takes float32 or float64 weights (float16 is converted): "
                             "convert the model first with module.float() (or .double())")
        half = True
    return half


def _flexnet_layer(index: int, m, dtype: np.dtype) -> Layer:
    pair = _BY_TORCH.get(type(m).__name__)
    # The very torch.nn class, not a subclass or a namesake (torch.ao.nn.qat.Linear
    # fake-quantises its weights, and a user's subclass may change forward).
    if pair is None or type(m) is not getattr(_torch().nn, pair.torch, None):
        supported = ", ".join(_BY_TORCH)
        raise ValueError(
            f"from_torch: module [{index}] ({type(m).__name__}) has no flexnet equivalent; "
            f"supported modules: {supported}"
        )
    try:
        kwargs = pair.from_torch(m)
    except ValueError as exc:
        raise ValueError(f"from_torch: module [{index}]: {exc}") from None
    cls = flexnet_class(pair.flexnet)
    if "dtype" in _init_params(cls):
        kwargs["dtype"] = dtype
    layer = cls(**kwargs)
    for flex_attr, torch_attr in pair.arrays:
        tensor = getattr(m, torch_attr)
        if tensor is None or flex_attr not in _arrays(layer):
            continue
        if torch_attr == "num_batches_tracked" and int(tensor) < 0:
            raise ValueError(f"from_torch: module [{index}] ({type(m).__name__}): num_batches_tracked is "
                             f"{int(tensor)}, expected a count of batches >= 0")
        like = np.asarray(getattr(layer, flex_attr)).astype(dtype)
        setattr(layer, flex_attr, _to_array(tensor, like))
    return layer


def _init_params(cls) -> set[str]:
    import inspect

    return set(inspect.signature(cls.__init__).parameters)


# -- losses ----------------------------------------------------------------------


def torch_loss(loss: Loss, dtype="float32"):
    """The PyTorch loss module equal to a flexnet loss (mean reduction).

    SoftmaxCrossEntropy -> CrossEntropyLoss (class weights, label smoothing),
    BCEWithLogits -> BCEWithLogitsLoss, MSE -> MSELoss, L1 -> L1Loss,
    Huber -> HuberLoss. ``dtype`` is that of the class weights, which must
    match the network's.
    """
    torch = _torch()
    name = type(loss).__name__
    cfg = loss.config()
    if name == "SoftmaxCrossEntropy":
        weights = cfg.get("class_weights")
        dtype = as_float_dtype(dtype, "torch_loss(dtype)")
        return torch.nn.CrossEntropyLoss(
            weight=None if weights is None else torch.tensor(np.asarray(weights, dtype=dtype)),
            label_smoothing=float(cfg.get("label_smoothing", 0.0)),
        )
    simple = {"BCEWithLogits": "BCEWithLogitsLoss", "MSE": "MSELoss", "L1": "L1Loss"}
    if name in simple:
        return getattr(torch.nn, simple[name])()
    if name == "Huber":
        return torch.nn.HuberLoss(delta=float(cfg.get("delta", 1.0)))
    raise ValueError(f"torch_loss: {name} has no PyTorch equivalent")


def loss_from_torch(loss) -> Loss:
    """The flexnet loss equal to a PyTorch loss module (mean reduction only)."""
    name = type(loss).__name__
    if getattr(loss, "reduction", "mean") != "mean":
        raise ValueError(f"from_torch: {name}(reduction={loss.reduction!r}); flexnet losses take the mean")
    if name == "CrossEntropyLoss":
        kwargs = {}
        if loss.weight is not None:
            kwargs["class_weights"] = loss.weight.detach().cpu().numpy().tolist()
        if loss.label_smoothing:
            kwargs["label_smoothing"] = float(loss.label_smoothing)
        if loss.ignore_index != -100:
            raise ValueError(f"from_torch: CrossEntropyLoss(ignore_index={loss.ignore_index}) is not supported")
        return flexnet_class("SoftmaxCrossEntropy")(**kwargs)
    if name == "BCEWithLogitsLoss":
        if loss.weight is not None or loss.pos_weight is not None:
            raise ValueError("from_torch: BCEWithLogitsLoss with weight or pos_weight is not supported")
        return flexnet_class("BCEWithLogits")()
    simple = {"MSELoss": "MSE", "L1Loss": "L1"}
    if name in simple:
        return flexnet_class(simple[name])()
    if name == "HuberLoss":
        return flexnet_class("Huber")(delta=float(loss.delta))
    raise ValueError(f"from_torch: loss {name} has no flexnet equivalent")


# -- files -----------------------------------------------------------------------


def save_torch(net: Sequential, path) -> None:
    """Write the network as a file that ``torch.load(path, weights_only=True)`` reads.

    The file holds plain data only (no pickled classes): a dict with
    ``"format"``, ``"layers"`` (a list of ``{"type": torch.nn class name,
    "kwargs": constructor arguments}``), ``"state_dict"`` (the
    ``torch.nn.Sequential`` state dict), ``"dtype"`` and ``"metadata"``.
    :func:`load_torch` rebuilds the module from it with plain PyTorch calls.
    """
    torch = _torch()
    module = to_torch(net)
    layers = []
    for layer in net.layers:
        pair = _BY_FLEXNET[type(layer).__name__]
        layers.append({"type": pair.torch, "kwargs": pair.to_torch(layer.config())})
    payload = {
        "format": EXPORT_FORMAT,
        "layers": layers,
        "state_dict": dict(module.state_dict()),
        "dtype": net.dtype.name,
        "metadata": _plain(getattr(net, "metadata", {})),
    }
    with atomic_write(path) as f:  # whole or not at all
        torch.save(payload, f)


def load_torch(path):
    """Rebuild the ``torch.nn.Sequential`` written by :func:`save_torch` (eval mode).

    Equivalent plain PyTorch::

        d = torch.load(path, weights_only=True)
        m = torch.nn.Sequential(*[getattr(torch.nn, l["type"])(**l["kwargs"]) for l in d["layers"]])
        m.to(getattr(torch, d["dtype"])).load_state_dict(d["state_dict"])
    """
    torch = _torch()
    with open_regular(path) as f:  # a pipe or a device is refused, not waited on
        d = torch.load(f, weights_only=True)
    if not isinstance(d, dict) or d.get("format") != EXPORT_FORMAT:
        raise ValueError(f"load_torch: {path} is not a flexnet PyTorch export (format {EXPORT_FORMAT})")
    modules = []
    for i, spec in enumerate(d["layers"]):
        if spec["type"] not in _BY_TORCH:
            raise ValueError(f"load_torch: layer [{i}] has unknown type {spec['type']!r}")
        modules.append(getattr(torch.nn, spec["type"])(**spec["kwargs"]))
    module = torch.nn.Sequential(*modules).to(getattr(torch, d["dtype"]))
    module.load_state_dict(d["state_dict"])
    return module.eval()


def _plain(obj):
    """``obj`` with NumPy scalars and arrays turned into Python numbers and lists."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    return obj

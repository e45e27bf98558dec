"""Weights as a safetensors file, keyed as PyTorch's ``state_dict`` of the exported module.

``to_safetensors(net, path)`` writes the arrays of ``to_torch(net).state_dict()``
(names, shapes and dtypes) without PyTorch: only the small ``safetensors``
package is needed (``pip install "flexnet[safetensors]"``). A PyTorch or
Hugging Face user loads them with::

    from safetensors.torch import load_file
    module = flexnet.to_torch(net)            # or the same layers built in PyTorch
    module.load_state_dict(load_file(path))   # strict: every key, no other

The keys are those of the PyTorch bridge (:func:`flexnet.bridges.pytorch.torch_names`):
``0.weight``, ``0.bias``, ``1.running_mean``, ``1.num_batches_tracked`` ...
Linear weights are ``(out, in)``, transposed from flexnet's ``(in, out)``; vectors
are 1-D; ``num_batches_tracked`` is a 0-d int64, as in PyTorch.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..data.extras import optional
from ..files.model_file import non_finite
from ..filesystem import open_regular, write_bytes
from ..nn import network as plain
from ..version import __version__
from .pytorch import LAYERS, flexnet_class

__all__ = ["from_safetensors", "safetensors_arrays", "to_safetensors"]

_PAIRS = {pair.flexnet: pair for pair in LAYERS}
#: torch arrays that stay matrices (every other one is a vector, or a count).
_MATRICES = {("Linear", "weight")}
#: torch buffers that count (int64, 0-d) and their value in a new module.
_COUNTS = {"num_batches_tracked": 0}
#: the largest header the safetensors format allows (100 MB).
_MAX_HEADER = 100_000_000


def _safetensors_numpy():
    return optional("safetensors.numpy", "safetensors export")


def _pair(layer, where: str):
    pair = _PAIRS.get(type(layer).__name__)
    if pair is None or type(layer) is not flexnet_class(pair.flexnet):  # not a lookalike or subclass
        raise ValueError(f"{where}: {layer.where()} ({type(layer).__name__}) has no PyTorch equivalent; "
                         f"supported layers: {', '.join(_PAIRS)}")
    return pair


def safetensors_arrays(net, where: str = "to_safetensors") -> dict[str, np.ndarray]:
    """The arrays of ``to_torch(net).state_dict()`` as NumPy arrays, by key, computed without torch.

    Raises:
        ValueError: for a layer with no PyTorch equivalent (named with its index).
    """
    if not isinstance(net, plain.Sequential):
        raise TypeError(f"{where}: expected a flexnet Sequential or Network, got {type(net).__name__}")
    dtype = np.dtype(net.dtype)
    arrays = {}
    for i, layer in enumerate(net.layers):
        pair = _pair(layer, where)
        for flex_attr, torch_attr in pair.arrays:
            key = f"{i}.{torch_attr}"
            if torch_attr in _COUNTS:  # PyTorch keeps a count for every BatchNorm1d
                value = getattr(layer, flex_attr, _COUNTS[torch_attr])
                arrays[key] = np.array(int(round(float(np.asarray(value).reshape(())))), dtype=np.int64)
            elif getattr(layer, flex_attr, None) is not None:  # BatchNorm1d(affine=False) has no gamma,
                # nor Linear(bias=False) a b: nor has torch a weight or a bias then
                a = np.asarray(getattr(layer, flex_attr), dtype=dtype)
                a = a.T if (pair.torch, torch_attr) in _MATRICES else a.reshape(-1)
                arrays[key] = np.ascontiguousarray(a)
    return arrays


def to_safetensors(net, path) -> None:
    """Write the network's weights to ``path`` as a safetensors file, atomically.

    The tensors are those of ``to_torch(net).state_dict()``, by the same keys,
    shapes and dtypes (float32 or float64 as the network; int64 counts), so
    ``module.load_state_dict(safetensors.torch.load_file(path))`` loads them
    into the ``torch.nn.Sequential`` that :func:`flexnet.to_torch` builds.
    PyTorch is not needed to write them.

    The file's metadata holds ``format`` (``"pt"``, as Hugging Face writes for
    PyTorch weights), ``producer`` and ``producer_version``, ``dtype`` and
    ``layers``: a JSON list of ``{"type": torch.nn class name, "kwargs": its
    constructor arguments}``, from which the module can be built in plain PyTorch::

        import json, torch
        from safetensors import safe_open
        with safe_open(path, "pt") as f:
            layers = json.loads(f.metadata()["layers"])
        module = torch.nn.Sequential(*[getattr(torch.nn, l["type"])(**l["kwargs"]) for l in layers])

    Raises:
        MissingExtra: safetensors is not installed.
        ValueError: a layer has no PyTorch equivalent (nothing is written).
        OSError: ``path`` cannot be written (the file is written whole or not at all).
    """
    st = _safetensors_numpy()
    arrays = safetensors_arrays(net)
    layers = [{"type": _PAIRS[type(layer).__name__].torch,
               "kwargs": _PAIRS[type(layer).__name__].to_torch(layer.config())} for layer in net.layers]
    metadata = {"format": "pt", "producer": "flexnet", "producer_version": __version__,
                "dtype": np.dtype(net.dtype).name, "layers": json.dumps(layers)}
    write_bytes(path, st.save(arrays, metadata=metadata))


def from_safetensors(net, path) -> None:
    """Load the weights of a safetensors file written for this architecture into ``net``, in place.

    The file must hold exactly the keys :func:`to_safetensors` writes for
    ``net`` (PyTorch's ``state_dict`` names), each with its shape; values are
    converted to the network's dtype. A file saved from a PyTorch module of
    the same layers (``safetensors.torch.save_file(module.state_dict(), path)``)
    loads too.

    Raises:
        MissingExtra: safetensors is not installed.
        ValueError: the file is damaged or larger than these weights can be, a
            key is missing or extra, a shape differs, a weight is not a float
            or not finite, or a count is not an integer >= 0 (nothing is changed).
    """
    st = _safetensors_numpy()
    expected = safetensors_arrays(net, "from_safetensors")
    # The most a file of these tensors can hold: the header's bound (safetensors' own)
    # and every value in 8 bytes. A larger file is refused before it is read.
    most = 8 + _MAX_HEADER + 8 * sum(a.size for a in expected.values())
    with open_regular(path) as f:  # a pipe or a device is refused, not waited on
        size = os.fstat(f.fileno()).st_size
        if size > most:
            raise ValueError(f"from_safetensors: {path} holds {size} bytes, more than the weights of this "
                             f"network can take ({most} at most): it is not this network's weights file")
        data = f.read()
    try:
        loaded = st.load(data)
    except Exception as exc:  # the reader raises its own error type for a damaged file
        raise ValueError(f"from_safetensors: {path} is not a readable safetensors file: {exc}") from None
    missing, extra = sorted(set(expected) - set(loaded)), sorted(set(loaded) - set(expected))
    if missing or extra:
        raise ValueError(f"from_safetensors: {path} does not hold this network's weights: "
                         f"missing keys {missing}, unexpected keys {extra}")
    for key, like in expected.items():
        if loaded[key].shape != like.shape:
            raise ValueError(f"from_safetensors: {path}: {key} has shape {loaded[key].shape}, this network's "
                             f"is {like.shape}")
        kinds, wanted = ("iu", "integers") if like.dtype.kind in "iu" else ("f", "floating-point numbers")
        if loaded[key].dtype.kind not in kinds:
            raise ValueError(f"from_safetensors: {path}: {key} holds {loaded[key].dtype}, expected {wanted} "
                             f"(nothing was loaded)")
        if like.dtype.kind in "iu" and loaded[key].size and loaded[key].min() < 0:
            raise ValueError(f"from_safetensors: {path}: {key} is {loaded[key].min()}, expected a count >= 0 "
                             f"(nothing was loaded)")
        if (bad := non_finite(key, loaded[key])):
            raise ValueError(f"from_safetensors: {path}: refused, {bad}, as after a training run that "
                             f"diverged (nothing was loaded)")
    for i, layer in enumerate(net.layers):
        pair = _PAIRS[type(layer).__name__]
        for flex_attr, torch_attr in pair.arrays:
            current = getattr(layer, flex_attr, None)
            if current is None:
                continue
            value = loaded[f"{i}.{torch_attr}"]
            value = value.T if (pair.torch, torch_attr) in _MATRICES else value
            current[...] = np.asarray(value).reshape(current.shape).astype(current.dtype)

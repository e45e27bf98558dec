"""Model files: ``flexnet.save``, ``flexnet.load`` and ``flexnet info``.

A model file is an archive written by :func:`flexnet.files.archive.write_archive`
(one ``.npz``: the arrays by name plus a JSON header; atomic writes; reading
never unpickles). Its header holds::

    {"format": "flexnet-model", "format_version": 1, "flexnet_version": "0.1.0",
     "model": {"class": "Network", "dtype": "float32", "layer_sizes": [...],
               "options": {...}, "layers": [{"class", "module", "config"}, ...],
               "loss": {"class", "module", "config"}, "metadata": {...},
               "n_params": 226},
     "arrays": {"layers.0.W": {"shape": [25, 8], "dtype": "<f4"}, ...}}

Loading rebuilds each layer as ``cls(**config)``, looking ``cls`` up by name:
first in the ``custom_layers`` given to :func:`load`, then among the classes
:func:`register_layer` registered, then among the :class:`~flexnet.Layer` and
:class:`~flexnet.Loss` subclasses already imported (a file never makes flexnet
import a module). Saving refuses a layer that ``cls(**config())`` could not
rebuild, so a file that saves also loads. Loading then checks the arrays the
header declares against the rebuilt network *before* any is decompressed; only
the arrays the model uses are then read (a checkpoint's training state is not).
Loading never builds more than the arrays in the file: the layers together may
ask for at most a few times the elements the header declares for them. The
arrays must be finite, and the metadata ``predict`` relies on must fit the
network (:func:`check_metadata`).
Checkpoints use the same ``"model"`` entry beside their training state.
"""

from __future__ import annotations

import json
import math
import os
import sys
from inspect import Parameter, signature
from numbers import Integral
from pathlib import Path
from typing import Mapping

import numpy as np

from .. import ops
from ..nn.layers import Layer
from ..nn.losses import Loss
from ..nn.network import Network, Sequential
from ..nn.normalization import BatchNorm1d
from ..version import __version__
from .archive import (
    ArchiveReader,
    ModelFileError,
    ModelFileNotFoundError,
    describe_error,
    flatten_state,
    read_archive,
    state_array_refs,
    unflatten_state,
    write_archive,
)

MODEL_FORMAT = "flexnet-model"
#: Checkpoints hold a model (header key ``"model"``) plus training state.
CHECKPOINT_FORMAT = "flexnet-checkpoint"
#: The newest model format this flexnet writes and reads.
MODEL_FORMAT_VERSION = 1
#: The most layers a file may list: far more than any network flexnet trains,
#: and refused before a single layer is built.
MAX_LAYERS = 10_000
#: The layers of a file may together ask for ``BUILD_FACTOR`` times the elements the
#: header declares for their arrays, plus ``BUILD_FLOOR`` (what a layer asks for is
#: the product of the whole numbers in its config: ``Linear(784, 128)``, 100,352).
BUILD_FACTOR, BUILD_FLOOR = 4, 1 << 20
#: The scalers ``predict`` can apply (``flexnet.data.Scaler.KINDS``).
SCALER_KINDS = ("minmax", "standard", "none")

__all__ = [  # the archive functions too: checkpoints and users find them here
    "CHECKPOINT_FORMAT", "MODEL_FORMAT", "MODEL_FORMAT_VERSION", "ModelFileError",
    "ModelFileNotFoundError", "check_metadata", "describe", "flatten_state", "forget_counts", "load",
    "model_from_state", "model_state", "non_finite", "read_archive", "register_layer", "save", "summary",
    "unflatten_state", "unwritten_counts", "write_archive",
]


# -- models ------------------------------------------------------------------------


def save(net, path) -> None:
    """Save a network to one ``.npz`` file, atomically.

    The header records the format (``"flexnet-model"``, version
    :data:`MODEL_FORMAT_VERSION`), the flexnet version, every layer's class and
    ``config()``, the dtype, the loss and ``net.metadata``; the arrays are the
    parameters and buffers by name (``layers.0.W``). No pickle is involved, so
    the file is safe to share.

    The file is written whole or not at all: to a temporary file beside
    ``path`` (a short hidden name ending in ``.flexnet-tmp``), then renamed over
    it. Only a regular file is ever replaced: a folder, a device (``/dev/null``,
    even for root), a named pipe or a socket is refused and left as it was. A
    symbolic link is itself replaced by the new file; the file it pointed to is
    left untouched (write to the link's target to update that file instead).

    Raises:
        TypeError: ``net`` is not a network, or its metadata or a layer config
            cannot be stored as JSON and arrays, or a layer (or the loss) could
            not be rebuilt from its ``config()`` (a layer of your own whose
            constructor takes arguments needs a ``config()`` returning them).
        IsADirectoryError: ``path`` is a folder.
        NotARegularFileError: ``path`` is a device, a named pipe or a socket (an
            ``OSError`` and a ``ValueError``).
        ValueError: a parameter or buffer holds NaN or infinity (a run that
            diverged), or the metadata does not fit the network
            (:func:`check_metadata`): :func:`load` would refuse the file.
        OSError: the file cannot be written (the previous file is left as it was).
    """
    model, arrays = model_state(net)
    bad = [text for name, _ in _model_arrays(net) if (text := non_finite(name, arrays[name]))]
    if bad:
        raise ValueError(f"save({os.fspath(path)}): refused, the network's weights are not finite: "
                         + "; ".join(bad) + ". Training diverged (try a smaller learning rate); "
                         "nothing was written")
    problems: list[str] = []
    check_metadata(net, dict(net.metadata), problems)
    if problems:
        raise ValueError(f"save({os.fspath(path)}): refused, " + "; ".join(problems) + "; nothing was written")
    header = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
              "flexnet_version": flexnet_version(), "model": model}
    write_archive(path, header, arrays)


#: The classes :func:`load` builds, by the name a file gives. flexnet.nn's plain ones
#: until :mod:`flexnet.training.network` is imported (``import flexnet`` does it), which
#: puts its own here: the same networks with ``fit``, ``save`` and ``summary``. Files sit
#: below training, so they are told which classes to build rather than importing them.
BUILDS: dict[str, type] = {"Sequential": Sequential, "Network": Network}


def load(path, *, custom_layers: Mapping[str, type] | None = None, backend: str = "numpy", device=None):
    """Load a network saved by :func:`save` (or the model inside a checkpoint).

    Args:
        path: the model (or checkpoint) file.
        custom_layers: your own layer (or loss) classes by the name the file
            gives them, ``{"Swish": Swish}``; they come before the classes of
            :func:`register_layer` and before flexnet's own. Nothing is ever
            imported: a class the file names must be given here, registered, or
            already defined.
        backend, device: the array library (and device) to put the network on,
            as ``net.to(backend, device)``. A file is the same whatever library
            trained the network (its arrays are NumPy's), so any backend loads it.

    Returns:
        A ``Network`` when the file holds one built from layer sizes, else a
        ``Sequential`` (the classes of :data:`BUILDS`); predictions are
        identical to the saved network's.

    Raises:
        ModelFileError: the file is missing, unreadable or not a flexnet file,
            is truncated or corrupt, exceeds the reading limits of
            :mod:`flexnet.files.archive`, holds an object array, has missing,
            extra, misshapen or mistyped arrays, arrays holding NaN or infinity
            or metadata that does not fit the network, comes from a newer
            format version, or names a layer class flexnet does not know (the
            message says how to pass it). One error lists every problem;
            nothing is returned half-loaded.
        TypeError: ``custom_layers`` is not a dict of Layer or Loss classes.
    """
    net = _load(Path(os.fspath(path)), custom_layers)[1]
    return net if backend == "numpy" and device is None else net.to(backend, device)


#: Layer and loss classes of your own, by class name (:func:`register_layer`).
REGISTERED: dict[str, type] = {}


def register_layer(cls: type) -> type:
    """Make ``cls`` known to every :func:`load` (and checkpoint resume) by its name.

    Use it as a decorator, or call it once before loading::

        @flexnet.register_layer
        class Swish(flexnet.Layer):
            ...

    Returns ``cls``. Registering another class under a name already registered
    replaces the earlier one (a class redefined in a notebook).

    Raises:
        TypeError: ``cls`` is not a subclass of :class:`~flexnet.Layer` or :class:`~flexnet.Loss`.
        ValueError: ``cls`` has the name of one of flexnet's own classes (``Linear``).
    """
    name = _custom_class(cls, "register_layer")
    own = [c for base in (Layer, Loss) for c in _subclasses(base)
           if c.__name__ == name and c.__module__.startswith("flexnet.") and c is not cls]
    if own:  # registered, it would replace flexnet's own in every model file that uses it
        raise ValueError(f"register_layer: {name!r} is the name of flexnet's {own[0].__module__}.{name}; "
                         f"rename your class, or pass it to one load: load(path, custom_layers={{{name!r}: ...}})")
    REGISTERED[name] = cls
    return cls


def _custom_class(cls, where: str) -> str:
    """The name of a layer or loss class given by a user; TypeError for anything else."""
    if not (isinstance(cls, type) and issubclass(cls, (Layer, Loss))):
        got = f"the instance {cls!r:.60}" if isinstance(cls, (Layer, Loss)) else f"{cls!r:.60}"
        raise TypeError(f"{where}: expected a class that subclasses flexnet.Layer (or flexnet.Loss), "
                        f"got {got}")
    return cls.__name__


def _custom_classes(custom_layers) -> dict[str, type]:
    """``custom_layers`` checked, on top of the registered classes."""
    if custom_layers is None:
        return dict(REGISTERED)
    if not isinstance(custom_layers, Mapping):
        raise TypeError("load(custom_layers): expected a dict of class name -> layer class, such as "
                        f"{{'Swish': Swish}}, got {type(custom_layers).__name__}")
    for name, cls in custom_layers.items():
        if not isinstance(name, str):
            raise TypeError(f"load(custom_layers): keys are the class names a file gives, got {name!r:.60}")
        _custom_class(cls, f"load(custom_layers[{name!r}])")
    return {**REGISTERED, **custom_layers}


def _load(path: Path, custom_layers=None):
    """``(header, net, stored array names)``, or one ModelFileError listing every problem."""
    custom = _custom_classes(custom_layers)
    with ArchiveReader(path) as archive:
        header, net, problems = archive.header, None, archive.problems
        if header is not None:
            model = _model_header(header, problems)
            if model is not None:
                net = _build_model(model, archive, problems,
                                   only_model_arrays=header.get("format") != MODEL_FORMAT, custom=custom)
        if problems:
            raise ModelFileError(path, problems)
    return header, net, archive.stored


def model_state(net) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON description of ``net`` and its arrays, as stored in model files.

    Checkpoints embed the same pair: the dict under the header key ``"model"``
    and the arrays under their names (``layers.0.W``, ``metadata/...``).
    """
    if not isinstance(net, Sequential):
        raise TypeError(f"save: expected a flexnet Sequential or Network, got {type(net).__name__}")
    layers = []
    for layer in net.layers:
        config = _config_of(layer, f"save: {type(layer).__name__} at {layer.name}")
        _check_rebuild(layer, config, f"save: {layer.where()}")
        layers.append({"class": type(layer).__name__, "module": type(layer).__module__, "config": config})
    loss_config = _config_of(net.loss_fn, f"save: the loss {type(net.loss_fn).__name__}")
    _check_rebuild(net.loss_fn, loss_config, f"save: the loss {net.loss_fn!r}")
    meta_json, arrays = flatten_state(dict(net.metadata), prefix="metadata")
    for name, p in list(net.parameters().items()) + list(net.named_buffers()):
        arrays[name] = ops.to_numpy(p)  # one format, whatever library trained the network
    model = {
        "class": "Network" if isinstance(net, Network) else "Sequential",
        "dtype": net.dtype.name,
        "layers": layers,
        "loss": {"class": type(net.loss_fn).__name__, "module": type(net.loss_fn).__module__,
                 "config": loss_config},
        "metadata": meta_json,
        "n_params": int(net.n_params()),
    }
    if isinstance(net, Network):
        model["layer_sizes"] = list(net.layer_sizes)
        # The builder's options rebuild the same stack; an initialiser given as a
        # function cannot be stored, and needs not be: the weights are in the file.
        model["options"] = {k: v for k, v in getattr(net, "options", {}).items() if _is_json(v)}
    return model, arrays


def model_from_state(model: dict, arrays: Mapping[str, np.ndarray], path="<model>", *, custom_layers=None):
    """Rebuild a network from :func:`model_state`'s pair (as read from a file).

    ``custom_layers``: as for :func:`load`.

    Raises:
        ModelFileError: naming ``path`` and listing every problem.
    """
    problems: list[str] = []
    net = _build_model(model, _InMemory(arrays), problems, only_model_arrays=True,
                       custom=_custom_classes(custom_layers))
    if problems:
        raise ModelFileError(path, problems)
    return net


class _InMemory:
    """Arrays already in memory, offered the way an :class:`ArchiveReader` offers a file's."""

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        self.arrays = {name: np.asarray(arr) for name, arr in arrays.items()}
        self.declared = {name: (arr.shape, arr.dtype) for name, arr in self.arrays.items()}
        self.stored = self.listed = set(self.arrays)

    def read(self, names) -> dict[str, np.ndarray]:
        return {name: self.arrays[name] for name in names}


def _model_header(header: dict, problems: list) -> dict | None:
    """Check format name and version; return the model description."""
    fmt, version = header.get("format"), header.get("format_version")
    if fmt not in (MODEL_FORMAT, CHECKPOINT_FORMAT):
        problems.append(f"not a flexnet model file: format is {fmt!r}, expected {MODEL_FORMAT!r}")
        return None
    if isinstance(version, bool) or not isinstance(version, Integral) or version < 1:
        problems.append(f"bad format_version {version!r}")
        return None
    if version > MODEL_FORMAT_VERSION:
        problems.append(
            f"written by a newer flexnet ({header.get('flexnet_version', '?')}, format version {version}); "
            f"this flexnet {flexnet_version()} reads format version {MODEL_FORMAT_VERSION} and older: "
            "upgrade flexnet to load it")
        return None
    model = header.get("model")
    if not isinstance(model, dict):
        problems.append("the header has no 'model' description")
        return None
    return model


def _build_model(model: dict, source, problems: list, only_model_arrays: bool = False, custom=None):
    """Rebuild the network described by ``model`` and fill in its arrays.

    ``source`` is an :class:`ArchiveReader` (or :class:`_InMemory`): the layers
    are built and checked against the shapes and dtypes it *declares*, and only
    when everything agrees are the arrays the model uses read from it, after
    the layers' initial weights are let go (so loading holds one copy of the
    weights, not two). Every problem goes to ``problems``; returns None when
    there is any. ``only_model_arrays``: the file holds other arrays too (a
    checkpoint), so only ``layers.*`` and ``metadata/*`` names are checked for extras.
    ``custom``: classes of the user's by name, looked up first (:func:`load`'s ``custom_layers``).
    """
    custom = REGISTERED if custom is None else custom
    start = len(problems)
    declared, stored = source.declared, source.stored
    dtype = model.get("dtype")
    if dtype not in ("float32", "float64"):
        problems.append(f"model dtype must be 'float32' or 'float64', got {dtype!r}")
        dtype = None
    specs = model.get("layers")
    if not isinstance(specs, list) or not specs:
        problems.append("the model lists no layers")
        specs = []
    elif len(specs) > MAX_LAYERS:
        problems.append(f"the model lists {len(specs):,} layers, more than the {MAX_LAYERS:,} a file may list")
        specs = []
    # What the layers may build, in elements: a few times what the file declares for them.
    budget = [BUILD_FLOOR + BUILD_FACTOR * sum(
        math.prod(shape) for name, (shape, _) in declared.items() if name.startswith("layers."))]
    loss = _build_one(Loss, model.get("loss"), "loss", budget, problems, custom)
    net = None
    if model.get("class") == "Network" and len(problems) == start:
        net = _network_from_sizes(model, specs, loss, dtype, budget, custom)
    if net is None:
        layers = [_build_one(Layer, spec, f"layers.{i}", budget, problems, custom)
                  for i, spec in enumerate(specs)]
        if len(problems) == start:
            try:
                net = BUILDS["Sequential"](layers, loss, dtype=dtype)
            except Exception as exc:
                problems.append(f"cannot assemble the network: {describe_error(exc)}")

    meta_json = model.get("metadata", {})
    if not isinstance(meta_json, dict):
        problems.append(f"model metadata must be an object, got {meta_json!r:.80}")
        meta_json = {}
    expected = {name: None for name in state_array_refs(meta_json)}  # name: (shape, dtype)
    if net is not None:
        forget_counts(unwritten_counts(net, stored))
        for layer in net.layers:
            for attr in layer.params + layer.buffers:
                like = getattr(layer, attr)
                expected[f"{layer.name}.{attr}"] = (like.shape, like.dtype)
    for name, like in expected.items():
        if name not in stored:
            problems.append(f"missing array {name!r} (the model needs it)")
        elif like is not None and name in declared:
            shape, kind = declared[name]
            if shape != like[0]:
                problems.append(f"array {name!r} has shape {shape}, the model needs {like[0]}")
            if kind != like[1]:
                problems.append(f"array {name!r} has dtype {kind}, the model needs {like[1]}")
    if net is not None:  # with a layer unbuilt, which arrays are extra is unknowable
        for name in sorted(stored & source.listed - set(expected)):  # (unlisted ones: said already)
            if not only_model_arrays or name.startswith(("layers.", "metadata/")):
                problems.append(f"extra array {name!r} that the model does not use")
    if problems:  # the archive's own problems count too: nothing is decompressed then
        return None
    for layer in net.layers:  # the initial weights go before the file's come in
        for attr in layer.params + layer.buffers:
            setattr(layer, attr, None)
    arrays = source.read(list(expected))
    if problems:  # a corrupt or truncated member
        return None
    bad = [text for name, arr in arrays.items() if expected[name] is not None and (text := non_finite(name, arr))]
    if bad:
        problems.append("the weights are not finite, as after a training run that diverged: " + "; ".join(bad))
    metadata = unflatten_state(meta_json, arrays)
    if not isinstance(metadata, dict):  # {"__ndarray__": name} at the top
        problems.append("model metadata must be an object, got an array")
        return None
    check_metadata(net, metadata, problems)
    if problems:
        return None

    for layer in net.layers:
        for attr in layer.params + layer.buffers:
            # np.require, not ascontiguousarray, which makes a 0-d count 1-d
            setattr(layer, attr, np.require(arrays[f"{layer.name}.{attr}"], requirements="C"))
        for attr in layer.params:
            setattr(layer, "d" + attr, None)
    net.metadata = metadata
    return net


def unwritten_counts(net, stored) -> list:
    """The BatchNorm1d layers of ``net`` whose batch count is not among the array
    names ``stored``: files written before every BatchNorm1d counted its batches
    kept the count (``num_batches_tracked``) only with ``momentum=None``."""
    return [layer for layer in net.layers
            if isinstance(layer, BatchNorm1d) and layer.momentum is not None
            and "num_batches_tracked" in layer.buffers and f"{layer.name}.num_batches_tracked" not in stored]


def forget_counts(layers) -> None:
    """Make each BatchNorm1d of ``layers`` as such a file wrote it: without a
    batch count (its momentum makes the count change nothing it computes), so it
    saves the same arrays again and resumes its run exactly."""
    for layer in layers:
        layer.buffers = tuple(b for b in layer.buffers if b != "num_batches_tracked")


def _network_from_sizes(model: dict, specs: list, loss, dtype, budget: list, custom: Mapping = {}):
    """The :class:`Network` that the builder makes from the file's ``layer_sizes``
    and options, when it is exactly the stack ``specs`` lists; else None.

    So a file saved from a Network loads as one (its repr, its sizes), each
    layer built once. The builder is called only when the sizes are those of
    the Linear layers ``specs`` lists and within ``budget``, so it never
    allocates more than the file's own weights (whatever ``layer_sizes`` claims).
    """
    sizes = model.get("layer_sizes")
    if not (isinstance(sizes, list) and all(isinstance(spec, dict) for spec in specs)):
        return None
    linear = [spec.get("config") for spec in specs if spec.get("class") == "Linear"]
    if not linear or not all(isinstance(config, dict) for config in linear):
        return None
    if sizes != [linear[0].get("in_features")] + [config.get("out_features") for config in linear]:
        return None
    cost = sum(_elements(spec.get("config")) for spec in specs)
    if cost > budget[0]:
        return None  # building layer by layer says which one is too large
    try:
        options = {k: v for k, v in dict(model.get("options") or {}).items() if k != "init"}
        net = BUILDS["Network"](sizes, loss=loss, dtype=dtype, **options)
    except Exception:  # a builder option this flexnet lacks: a Sequential predicts the same
        return None
    same = len(net.layers) == len(specs) and all(
        type(layer) is _find_class(Layer, spec.get("class"), spec.get("module"), custom)
        and json.loads(json.dumps(layer.config())) == spec.get("config", {})
        for layer, spec in zip(net.layers, specs))
    if not same:
        return None
    budget[0] -= cost
    return net


def _elements(config) -> int:
    """What building a layer from ``config`` may allocate, in elements: the
    product of the whole numbers in it (``Linear(784, 128)``: 100,352)."""
    if not isinstance(config, dict):
        return 0
    return math.prod(v for k, v in config.items()
                     if isinstance(v, int) and not isinstance(v, bool) and v > 0 and k != "seed")


def _build_one(base, spec, where: str, budget: list, problems: list, custom: Mapping = {}):
    """One layer or loss from ``{"class", "module", "config"}``; None on a problem.

    ``budget``: ``[elements]`` the layers built so far have left; each takes the
    product of the whole numbers in its config from it, before it is built.
    """
    kind = "layer" if where.startswith("layers") else "loss"
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
        problems.append(f"{where}: expected {{'class': ..., 'config': ...}}, got {spec!r:.80}")
        return None
    name, module, config = spec["class"], spec.get("module"), spec.get("config", {})
    if not isinstance(config, dict):
        problems.append(f"{where}: config of {name} must be an object, got {config!r:.80}")
        return None
    cls = _find_class(base, name, module, custom)
    if cls is None and len([c for c in _subclasses(base) if c.__name__ == name]) > 1:
        problems.append(f"{where}: several {kind} classes named {name!r} are defined (one redefined?), and the "
                        f"file cannot say which: pass it, load(path, custom_layers={{{name!r}: {name}}})")
        return None
    if cls is None:
        where_defined = f"defined in {module}; " if isinstance(module, str) else ""
        problems.append(f"{where}: unknown {kind} class {name!r} ({where_defined}import that module before "
                        f"loading, or pass the class: load(path, custom_layers={{{name!r}: {name}}}), "
                        "or register it with flexnet.register_layer)")
        return None
    if not issubclass(cls, base):
        problems.append(f"{where}: the file's {kind} {name!r} was given as {cls.__name__}, which is not a "
                        f"flexnet {base.__name__}")
        return None
    if budget[0] < 0:  # spent at an earlier layer, which said so
        return None
    # Refuse before allocating: a crafted Linear(10**6, 10**6), or a thousand
    # Linear(2000, 2000) beside a few small arrays, would exhaust memory.
    size = _elements(config)
    if size > budget[0]:
        problems.append(f"{where}: {name}(**{config!r:.200}) would be far larger than the arrays in the "
                        "file (with the layers before it); nothing more is built")
        budget[0] = -1
        return None
    budget[0] -= size
    missing = _missing_arguments(cls, config)
    if missing:
        problems.append(f"{where}: cannot build {name}(**{config!r:.200}): its constructor needs "
                        f"{', '.join(missing)}, which the file does not record (the layer was saved "
                        f"without a config() returning them): define {name}.config() and save the "
                        "model again")
        return None
    try:
        return cls(**config)
    except Exception as exc:
        problems.append(f"{where}: cannot build {name}(**{config!r:.200}): {describe_error(exc)}")
        return None


def _model_arrays(net):
    """``(name, array)`` of every parameter and buffer of ``net``."""
    yield from ((name, p) for name, p, _ in net.named_parameters())
    yield from net.named_buffers()


def non_finite(name: str, arr: np.ndarray) -> str | None:
    """``"layers.0.W holds 3 NaN and 1 infinite value"``, or None when ``arr`` is finite.

    One vectorised pass: a sum is finite only if every term is (NaN and
    infinity propagate); only when it is not are the values counted.
    """
    arr = np.asarray(ops.to_numpy(arr))
    if arr.dtype.kind not in "fc" or arr.size == 0:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(abs(np.sum(arr))):
            return None
    nan = int(np.count_nonzero(np.isnan(arr)))
    inf = int(np.count_nonzero(np.isinf(arr)))
    if nan + inf == 0:  # the sum overflowed, the values are fine
        return None
    parts = ([f"{nan:,} NaN"] if nan else []) + ([f"{inf:,} infinite value{'s' * (inf > 1)}"] if inf else [])
    return f"{name} holds {' and '.join(parts)} (of {arr.size:,})"


def check_metadata(net, metadata: dict, problems: list) -> None:
    """Check what ``predict`` reads from ``net.metadata`` against the network.

    - ``input_shape``: positive whole numbers whose product is the number of
      input features (an image is resized to it, so a huge one would cost
      gigabytes before the network refused it);
    - ``pixel_max``: a finite number > 0;
    - ``scaler``: its numbers finite in the network's dtype, each array of
      length 1 (one value for all features) or the number of input features,
      ``scale`` > 0 (a zero or infinite scale sends every input to one class),
      ``n_features`` the number of input features;
    - ``class_names``: distinct strings, as many as the outputs encode (two for
      a classifier with a single output).

    Each problem names the field and goes to ``problems``.
    """
    n_in = net.in_features
    shape = metadata.get("input_shape")
    if shape is not None:
        if not (isinstance(shape, (list, tuple)) and shape and all(_positive_int(d) for d in shape)):
            problems.append(f"metadata.input_shape must be a list of positive whole numbers, got {shape!r:.80}")
        elif n_in is not None and math.prod(shape) != n_in:
            problems.append(f"metadata.input_shape {list(shape)} holds {math.prod(shape):,} values, but the "
                            f"network takes {n_in} input features")
    pixel_max = metadata.get("pixel_max")
    if pixel_max is not None and not (_number(pixel_max) and math.isfinite(pixel_max) and pixel_max > 0):
        problems.append(f"metadata.pixel_max must be a finite number > 0, got {pixel_max!r:.80}")
    scaler = metadata.get("scaler")
    if scaler is not None:
        if isinstance(scaler, dict):
            _check_scaler(scaler, n_in, net.dtype, problems)
        else:
            problems.append(f"metadata.scaler must be an object, got {scaler!r:.80}")
    names = metadata.get("class_names")
    if names is not None:
        _check_class_names(names, net, problems)


def _check_scaler(scaler: dict, n_in, dtype, problems: list) -> None:
    kind = scaler.get("kind", "minmax")
    if kind not in SCALER_KINDS:
        problems.append(f"metadata.scaler.kind must be one of {SCALER_KINDS}, got {kind!r:.40}")
    for key, value in scaler.items():
        where = f"metadata.scaler.{key}"
        if key == "n_features":
            if value is not None and n_in is not None and value != n_in:
                problems.append(f"{where} is {value!r:.40}, but the network takes {n_in} input features")
            continue
        if isinstance(value, (str, bool)) or value is None:
            continue
        try:
            arr = np.asarray(value)
        except ValueError:  # a ragged list
            arr = np.asarray(None)
        if arr.dtype.kind not in "iuf":
            problems.append(f"{where} must be numbers, got {value!r:.80}")
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            arr = arr.astype(dtype).reshape(-1)  # as predict uses it: 1e300 is infinite in float32
        if arr.size not in (1, n_in if n_in is not None else arr.size):
            problems.append(f"{where} holds {arr.size} values; expected 1 or one per input feature ({n_in})")
        elif not np.isfinite(arr).all():
            problems.append(f"{where} holds NaN or infinity (in {dtype.name}) at index "
                            f"{int(np.flatnonzero(~np.isfinite(arr))[0])}")
        elif key == "scale" and not (arr > 0).all():
            at = int(np.flatnonzero(~(arr > 0))[0])
            problems.append(f"{where} must be > 0 (inputs are divided by it), got {arr[at]} at index {at}")


def _check_class_names(names, net, problems: list) -> None:
    if isinstance(names, np.ndarray) and names.ndim == 1 and names.dtype.kind in "US":
        names = names.tolist()
    if not (isinstance(names, (list, tuple)) and all(isinstance(c, str) for c in names)):
        problems.append(f"metadata.class_names must be a list of strings, got {names!r:.80}")
        return
    seen = set()
    for name in names:
        if name in seen:
            problems.append(f"metadata.class_names names {name!r} twice: each class needs its own name")
            return
        seen.add(name)
    outputs = _output_width(net)
    if net.loss_fn.is_classifier and outputs is not None:
        classes = 2 if outputs == 1 else outputs
        if len(names) != classes:
            encode = "one output encodes 2 classes" if outputs == 1 else f"{outputs} outputs encode {outputs} classes"
            problems.append(f"metadata.class_names has {len(names)} names, but the network's {encode}")


def _output_width(net) -> int | None:
    """The number of outputs, followed through the layers (None when no layer says)."""
    width = net.in_features
    if width is None:
        return None
    try:
        for layer in net.layers:
            width = layer.output_size(width)
    except (TypeError, ValueError, AttributeError):  # a layer that cannot say
        return None
    return width if _positive_int(width) else None


def _positive_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and value > 0


def _number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _find_class(base, name: str, module, custom: Mapping = {}):
    """The class the user gave for ``name`` (``custom``), else the subclass of
    ``base`` called ``name``, preferring the one from ``module``.

    Only classes already imported are candidates: a file never makes flexnet
    import anything (even a flexnet module: ``flexnet.__main__`` runs the CLI).
    """
    if isinstance(name, str) and name in custom:  # a crafted file may give anything as a name
        return custom[name]
    found = [c for c in _subclasses(base) if c.__name__ == name]
    same = [c for c in found if c.__module__ == module]
    if len(same) > 1:  # a class redefined (in a notebook): the one its module's name holds now
        current = getattr(sys.modules.get(module), name, None)
        return current if current in same else None
    if same:
        return same[0]
    flexnet_own = [c for c in found if c.__module__.startswith("flexnet.")]
    if len(flexnet_own) == 1:
        return flexnet_own[0]
    return found[0] if len(found) == 1 else None


def _subclasses(base) -> list[type]:
    out, todo = [], [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in out:
                out.append(sub)
                todo.append(sub)
    return out


def _missing_arguments(cls, config: dict) -> list[str]:
    """The constructor arguments of ``cls`` that ``cls(**config)`` would lack."""
    try:
        params = signature(cls).parameters.values()
    except (TypeError, ValueError):  # a constructor Python cannot describe: let it try
        return []
    return [p.name for p in params if p.default is Parameter.empty and p.name not in config
            and p.kind in (Parameter.POSITIONAL_OR_KEYWORD, Parameter.KEYWORD_ONLY)]


def _check_rebuild(obj, config: dict, where: str) -> None:
    """Refuse to save a layer (or loss) that load could not rebuild as ``cls(**config)``.

    A constructor argument ``config()`` leaves out must have a default; for a
    class of the user's, an attribute of that argument's name that no longer
    holds the default (``Swish(beta=2.0)`` keeping ``self.beta``) must be in
    ``config()`` too, or the file would load as a different layer.
    """
    cls = type(obj)
    missing = _missing_arguments(cls, config)
    try:
        params = list(signature(cls).parameters.values())
    except (TypeError, ValueError):
        params = []
    changed = []  # arguments config() leaves out whose attribute no longer holds the default
    if params and not any(p.kind is Parameter.VAR_KEYWORD for p in params):
        names = {p.name for p in params if p.kind in (Parameter.POSITIONAL_OR_KEYWORD, Parameter.KEYWORD_ONLY)}
        changed += [f"{k!r:.40} is no argument of the constructor" for k in config if k not in names]
    if not missing and not cls.__module__.startswith("flexnet."):
        for p in params:
            value = getattr(obj, p.name, p.default)
            if (p.name not in config and p.default is not Parameter.empty and p.name not in ("dtype", "seed")
                    and isinstance(value, (bool, int, float, str, type(None))) and value != p.default):
                changed.append(f"{p.name} is {value!r:.40} here, and would load as the default {p.default!r:.40}")
    if not missing and not changed:
        return
    args = [p.name for p in params if p.kind in (Parameter.POSITIONAL_OR_KEYWORD, Parameter.KEYWORD_ONLY)]
    example = ", ".join(f"{n!r}: self.{n}" for n in args)
    lacks = f"without {', '.join(missing)}, which the constructor needs" if missing else "; ".join(changed)
    raise TypeError(
        f"{where} cannot be saved: load rebuilds it as {cls.__name__}(**config()), and config() returns "
        f"{config!r:.100}, {lacks}. Define config() in {cls.__name__} returning the constructor's "
        f"arguments, for example: def config(self): return {{{example}}}; nothing was written")


def _config_of(obj, where: str) -> dict:
    """``obj.config()``, checked to be a JSON-friendly dict keyed by argument names."""
    try:
        config = obj.config()
    except Exception as exc:
        raise TypeError(f"{where}: its config() failed: {describe_error(exc)}") from exc
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise TypeError(f"{where}: config() must return a dict of constructor argument names -> values, "
                        f"got {config!r:.100}")
    _check_json(config, f"{where}.config()")
    return config


def _check_json(value, where: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where} must be JSON-friendly: {exc}") from exc


def _is_json(value) -> bool:
    try:
        _check_json(value, "")
    except TypeError:
        return False
    return True


def flexnet_version() -> str:
    """The version written into file headers."""
    return __version__


def describe(path) -> str:
    """A readable description of a model or checkpoint file, for ``flexnet info``.

    The file is checked as fully as :func:`load` checks it; nothing is trained.

    Raises:
        ModelFileError: as :func:`load`.
    """
    path = Path(os.fspath(path))
    header, net, stored = _load(path)
    size = path.stat().st_size
    lines = [
        f"file: {path} ({size:,} bytes)",
        f"format: {header['format']} version {header['format_version']}, "
        f"written by flexnet {header.get('flexnet_version', '?')}",
    ]
    if header["format"] == CHECKPOINT_FORMAT:
        training = header.get("training")
        training = training if isinstance(training, dict) else header
        facts = [f"{k} {training[k]}" for k in ("epoch", "step", "global_step")
                 if isinstance(training.get(k), int)]
        extra = sorted(set(stored) - {n for n, _ in net.named_buffers()} - set(net.parameters())
                       - {n for n in stored if n.startswith("metadata/")})
        lines.append("checkpoint: " + (", ".join(facts) or "no epoch/step recorded")
                     + f"; {len(extra)} training-state arrays")
    lines.append(f"model: {net!r}" if type(net).__name__ == "Network" else f"model: {type(net).__name__}")
    lines.append(summary(net))
    if net.metadata:
        lines.append("metadata:")
        lines += [f"  {key}: {_short(value)}" for key, value in net.metadata.items()]
    else:
        lines.append("metadata: none (predict expects inputs prepared as in training)")
    return "\n".join(lines)


def _short(value, limit: int = 100) -> str:
    if isinstance(value, np.ndarray):
        text = f"array {value.shape} {value.dtype}"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {_short(v, 40)}" for k, v in value.items()) + "}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summary(net) -> str:
    """A table of ``net``'s layers, output shapes and parameter counts (``net.summary()``)."""
    rows = [("layer", "output", "params")]
    width = net.in_features
    for layer in net.layers:
        if width is not None:
            width = layer.output_size(width)
        rows.append((f"{layer.name}: {layer!r}", f"(N, {width})", f"{layer.n_params():,}"))
    rows.append((f"loss: {net.loss_fn!r}", "", ""))
    rows.append((f"total ({net.dtype.name})", "", f"{net.n_params():,}"))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{a:<{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}" for a, b, c in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)

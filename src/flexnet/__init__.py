"""flexnet: neural networks from scratch in NumPy, built to be read and relied on.

The core follows one idea: every layer is an object whose ``forward`` caches
what it needs and whose ``backward`` returns the gradient for the layer below.
A network is a list of layers, so ``Network([784, 128, 64, 10])`` is one line.

The package is laid out by architecture, each part building only on those
before it (ARCHITECTURE.md): ``nn`` (the network's parts), ``optim``,
``files``, ``data``, ``training``, ``bridges``, ``experiments``, ``plots``
and ``cli``. Everything a user needs is importable from here.
"""

from . import data, optim
from .data import Scaler, datasets, train_test_split
from .nn import activations, init, losses
from .nn.activations import GELU, LeakyReLU, Sigmoid, Softmax, Tanh
from .nn.dropout import Dropout
from .nn.gradcheck import gradcheck
from .nn.layers import Layer, Linear, ReLU
from .nn.losses import L1, MSE, BCEWithLogits, Huber, Loss, SoftmaxCrossEntropy
from .nn.normalization import BatchNorm1d, LayerNorm
from .files.model_file import ModelFileError, load, register_layer, save
from .filesystem import NotARegularFileError
from .training import (
    CSVLogger,
    EarlyStopping,
    History,
    Network,
    Sequential,
    TensorBoard,
    TrainingDiverged,
    TrainingInterrupted,
    evaluate,
    fit,
)
from .experiments import SweepResult, sweep
from .bridges import from_torch, to_onnx, to_safetensors, to_torch  # each imports its library only when called
from . import plots  # noqa: F401  (History.plot draws with it; matplotlib only when it draws)
from .version import __version__  # noqa: F401  (flexnet.__version__)
from . import _moved

_moved.install()

__all__ = [
    "BCEWithLogits",
    "BatchNorm1d",
    "CSVLogger",
    "Dropout",
    "EarlyStopping",
    "GELU",
    "History",
    "Huber",
    "L1",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "Loss",
    "MSE",
    "ModelFileError",
    "Network",
    "NotARegularFileError",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "Scaler",
    "SweepResult",
    "Tanh",
    "TensorBoard",
    "TrainingDiverged",
    "TrainingInterrupted",
    "activations",
    "init",
    "load",
    "losses",
    "data",
    "datasets",
    "evaluate",
    "fit",
    "from_torch",
    "gradcheck",
    "optim",
    "register_layer",
    "save",
    "sweep",
    "to_onnx",
    "to_safetensors",
    "to_torch",
    "train_test_split",
]

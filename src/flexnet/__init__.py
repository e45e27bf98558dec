"""flexnet: neural networks from scratch in NumPy, built to be read and relied on.

The core follows one idea: every layer is an object whose ``forward`` caches
what it needs and whose ``backward`` returns the gradient for the layer below.
A network is a list of layers, so ``Network([784, 128, 64, 10])`` is one line.
"""

from . import data, datasets, optim
from .data import Scaler, train_test_split
from .gradcheck import gradcheck
from .io import ModelFileError, load, save
from . import activations, init, losses
from .activations import GELU, LeakyReLU, Sigmoid, Softmax, Tanh
from .dropout import Dropout
from .layers import Layer, Linear, ReLU
from .losses import L1, MSE, BCEWithLogits, Huber, Loss, SoftmaxCrossEntropy
from .normalization import BatchNorm1d, LayerNorm
from .network import Network, Sequential
from .train import EarlyStopping, History, TrainingDiverged, TrainingInterrupted, evaluate, fit
from .sweep import SweepResult, sweep  # the function; the module is sys.modules["flexnet.sweep"]
from .onnx_bridge import to_onnx  # imports onnx only when called
from .torch_bridge import from_torch, to_torch  # imports torch only when called

__version__ = "0.1.0"

__all__ = [
    "BCEWithLogits",
    "BatchNorm1d",
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
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "Scaler",
    "SweepResult",
    "Tanh",
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
    "save",
    "sweep",
    "to_onnx",
    "to_torch",
    "train_test_split",
]

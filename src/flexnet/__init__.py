"""flexnet: neural networks from scratch in NumPy, built to be read and relied on.

The core follows one idea: every layer is an object whose ``forward`` caches
what it needs and whose ``backward`` returns the gradient for the layer below.
A network is a list of layers, so ``Network([784, 128, 64, 10])`` is one line.
"""

from . import datasets, optim
from .gradcheck import gradcheck
from .layers import Layer, Linear, ReLU
from .losses import Loss, SoftmaxCrossEntropy
from .network import Network, Sequential

__version__ = "0.1.0"

__all__ = [
    "Layer",
    "Linear",
    "Loss",
    "Network",
    "ReLU",
    "Sequential",
    "SoftmaxCrossEntropy",
    "datasets",
    "gradcheck",
    "optim",
]

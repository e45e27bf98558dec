"""The network's parts: the tutorial's ideas, and nothing about files or training loops.

Start here. ``layers.py`` holds the layer contract with ``Linear`` and ``ReLU``,
``losses.py`` the fused softmax + cross-entropy, ``network.py`` the stack of
layers with ``forward``, ``backward``, ``update`` and ``train_step``. The
update itself (``p -= lr * g``) is ``Layer.update``; richer rules live in
:mod:`flexnet.optim`. Nothing here imports anything above it: training, model
files, bridges, experiments and the command line all build on this package.
"""

from .activations import GELU, LeakyReLU, Sigmoid, Softmax, Tanh  # noqa: F401  (re-exported)
from .dropout import Dropout  # noqa: F401  (re-exported)
from .gradcheck import gradcheck  # noqa: F401  (re-exported)
from .layers import Layer, Linear, ReLU  # noqa: F401  (re-exported)
from .losses import L1, MSE, BCEWithLogits, Huber, Loss, SoftmaxCrossEntropy  # noqa: F401  (re-exported)
from .network import Network, Sequential  # noqa: F401  (re-exported)
from .normalization import BatchNorm1d, LayerNorm  # noqa: F401  (re-exported)

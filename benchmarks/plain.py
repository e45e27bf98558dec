"""The baseline: the tutorial's network written plainly, as a learner would.

float64 throughout (NumPy's default), one-hot targets, a gradient with respect
to every layer's input (the first layer's included), no buffers. flexnet's
speed is measured against this and against PyTorch.
"""

from __future__ import annotations

import numpy as np


class PlainLinear:
    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator):
        self.W = rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)
        self.b = np.zeros((1, n_out))

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dz):
        self.dW = self.x.T @ dz
        self.db = np.sum(dz, axis=0, keepdims=True)
        return dz @ self.W.T

    def update(self, lr):
        self.W -= lr * self.dW
        self.b -= lr * self.db


class PlainReLU:
    def forward(self, z):
        self.z = z
        return np.maximum(0, z)

    def backward(self, dh):
        return dh * (self.z > 0)

    def update(self, lr):
        pass


class PlainSoftmaxCE:
    def forward(self, z, y_onehot):
        e = np.exp(z - np.max(z, axis=1, keepdims=True))
        self.p = e / np.sum(e, axis=1, keepdims=True)
        self.y = y_onehot
        return -np.sum(y_onehot * np.log(self.p + 1e-8)) / len(y_onehot)

    def backward(self):
        return (self.p - self.y) / len(self.y)


class PlainNetwork:
    """Linear -> ReLU -> ... -> Linear with softmax cross-entropy, trained by SGD."""

    def __init__(self, sizes, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.layers = []
        for i in range(len(sizes) - 1):
            self.layers.append(PlainLinear(sizes[i], sizes[i + 1], rng))
            if i < len(sizes) - 2:
                self.layers.append(PlainReLU())
        self.loss_fn = PlainSoftmaxCE()

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def train_step(self, x, y_onehot, lr):
        loss = self.loss_fn.forward(self.forward(x), y_onehot)
        grad = self.loss_fn.backward()
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        for layer in self.layers:
            layer.update(lr)
        return loss

    def predict_proba(self, x):
        z = self.forward(x)
        e = np.exp(z - np.max(z, axis=1, keepdims=True))
        return e / np.sum(e, axis=1, keepdims=True)

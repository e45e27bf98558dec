"""Float32 Adam against torch.optim.Adam, with and without the bias before each BatchNorm1d.

    python benchmarks/batchnorm_bias.py [--steps 20] [--lr 0.01]

A Linear right before a training-mode BatchNorm1d has a bias whose true gradient is 0:
the batch mean takes it away again. Both libraries compute that gradient as rounding
noise of about 1e-8, and Adam divides a gradient by its own running size, so the noise
becomes full-size steps that differ between the two. The network here,
``Network([20, 32, 16, 4], batchnorm=True)``, is trained side by side with its
``to_torch`` copy on the same batches of Gaussian blobs, once with
those biases and once with ``Linear(bias=False)`` before each BatchNorm1d (the same
initial weights otherwise), and the largest absolute differences after the last step
are printed: over the redundant biases, over the Linear weights, over everything.

(Data with a feature that is constant within a batch, such as the blank corner pixels
of scikit-learn's digits after scaling, makes the weights of that feature another
parameter whose true gradient is 0, with the same effect on Adam; blobs have none.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import flexnet  # noqa: E402
from flexnet.bridges.pytorch import to_torch, torch_loss, torch_names  # noqa: E402
from flexnet.optim import Adam  # noqa: E402

SIZES = [20, 32, 16, 4]


def network(bias: bool, seed: int = 0) -> flexnet.Sequential:
    """``Network(SIZES, batchnorm=True)``; without bias, each Linear before a BatchNorm1d has none."""
    net = flexnet.Network(SIZES, batchnorm=True, seed=seed)
    if bias:
        return net
    layers = list(net.layers)
    for i, layer in enumerate(layers[:-1]):
        if isinstance(layer, flexnet.Linear) and isinstance(layers[i + 1], flexnet.BatchNorm1d):
            plain = flexnet.Linear(layer.in_features, layer.out_features, bias=False)
            plain.W = layer.W.copy()
            layers[i] = plain
    return flexnet.Sequential(layers, net.loss_fn)


def run(bias: bool, steps: int, lr: float, batch: int = 32) -> dict[str, float]:
    import torch

    rng = np.random.default_rng(1)
    y = np.arange(steps * batch) % SIZES[-1]
    X = (rng.normal(0, 2, size=(SIZES[-1], SIZES[0]))[y] + rng.normal(size=(len(y), SIZES[0]))).astype(np.float32)
    net = network(bias)
    module = to_torch(net).train()
    opt_f, opt_t = Adam(lr=lr), torch.optim.Adam(module.parameters(), lr=lr)
    crit = torch_loss(net.loss_fn)
    for step in range(steps):
        xb, yb = X[step * batch:(step + 1) * batch], y[step * batch:(step + 1) * batch]
        net.loss_fn.forward(net.forward(xb, training=True), yb)
        net.backward()
        opt_f.step(net)
        opt_t.zero_grad()
        crit(module(torch.tensor(xb)), torch.tensor(yb)).backward()
        opt_t.step()
    state = module.state_dict()
    before_bn = {f"{layer.name}.b" for layer, after in zip(net.layers, net.layers[1:])
                 if isinstance(layer, flexnet.Linear) and isinstance(after, flexnet.BatchNorm1d)}
    diffs = {}
    for name, p in net.parameters().items():
        t = state[torch_names(net)[name]].numpy()
        diffs[name] = float(np.abs(p - (t.T if t.ndim == 2 else t.reshape(p.shape))).max())
    return {"redundant biases": max((diffs[n] for n in before_bn if n in diffs), default=float("nan")),
            "Linear weights (W)": max(d for n, d in diffs.items() if n.endswith(".W")),
            "every parameter": max(diffs.values())}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args(argv)
    rows = {"with the redundant bias": run(True, args.steps, args.lr),
            "Linear(bias=False) before BatchNorm1d": run(False, args.steps, args.lr)}
    print(f"Network({SIZES}, batchnorm=True), float32, Adam(lr={args.lr}), {args.steps} batches of 32: "
          "largest |flexnet - torch.optim|")
    keys = list(next(iter(rows.values())))
    print(f"{'':40}" + "".join(f"{k:>22}" for k in keys))
    for label, row in rows.items():
        print(f"{label:40}" + "".join(f"{row[k]:>22.2e}" for k in keys))


if __name__ == "__main__":
    main()

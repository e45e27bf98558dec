"""Every activation, normalisation, dropout and loss against PyTorch, in float64.

Forward values and backward gradients (input and parameters) must agree to
round-off, in training and in inference. CI installs torch==2.13.0.
"""

import numpy as np
import pytest

import flexnet
from flexnet import (
    GELU,
    L1,
    MSE,
    BatchNorm1d,
    BCEWithLogits,
    Dropout,
    Huber,
    LayerNorm,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    SoftmaxCrossEntropy,
    Tanh,
)

torch = pytest.importorskip("torch")
F_ = torch.nn.functional

RTOL, ATOL = 1e-10, 1e-12


def close(ours, theirs):
    if isinstance(theirs, torch.Tensor):
        theirs = theirs.detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


def data(shape, seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


def leaf(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


# -- activations ---------------------------------------------------------------

ACTIVATIONS = [
    (ReLU(), torch.nn.ReLU()),
    (LeakyReLU(), torch.nn.LeakyReLU()),
    (LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
    (Sigmoid(), torch.nn.Sigmoid()),
    (Tanh(), torch.nn.Tanh()),
    (GELU(), torch.nn.GELU()),
    (GELU(approximate="tanh"), torch.nn.GELU(approximate="tanh")),
    (Softmax(), torch.nn.Softmax(dim=1)),
]


@pytest.mark.parametrize("ours, theirs", ACTIVATIONS, ids=[repr(a) for a, _ in ACTIVATIONS])
@pytest.mark.parametrize("scale", [1.0, 4.0, 40.0])
def test_activation_matches_torch(ours, theirs, scale):
    x = data((16, 7), scale=scale)
    x[0, :3] = [0.0, 1e4, -1e4]  # the kink and the far tails
    g = data((16, 7), seed=1)
    xt = leaf(x)
    out_t = theirs(xt)
    out_t.backward(torch.tensor(g))
    close(ours.forward(x, training=True), out_t)
    close(ours.backward(g), xt.grad)


# -- batch and layer normalisation ---------------------------------------------


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("eps, momentum", [(1e-5, 0.1), (1e-3, 0.3)])
def test_batchnorm_matches_torch_in_training_and_inference(affine, eps, momentum):
    n_features = 6
    ours = BatchNorm1d(n_features, eps=eps, momentum=momentum, affine=affine, dtype="float64")
    theirs = torch.nn.BatchNorm1d(n_features, eps=eps, momentum=momentum, affine=affine).double()
    if affine:
        ours.gamma[...] = data((1, n_features), seed=7)
        ours.beta[...] = data((1, n_features), seed=8)
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(ours.gamma[0]))
            theirs.bias.copy_(torch.tensor(ours.beta[0]))

    def step(x, g, training):
        theirs.train(training)
        if affine:
            theirs.weight.grad = theirs.bias.grad = None
        xt = leaf(x)
        out_t = theirs(xt)
        out_t.backward(torch.tensor(g))
        close(ours.forward(x, training=training), out_t)
        close(ours.backward(g), xt.grad)
        if affine:
            close(ours.dgamma[0], theirs.weight.grad)
            close(ours.dbeta[0], theirs.bias.grad)
        close(ours.running_mean[0], theirs.running_mean)
        close(ours.running_var[0], theirs.running_var)

    for i in range(4):  # running statistics accumulate over several batches
        step(data((10, n_features), seed=i, scale=3.0) + i, data((10, n_features), seed=50 + i), True)
    step(data((5, n_features), seed=99), data((5, n_features), seed=98), False)
    step(data((1, n_features), seed=97), data((1, n_features), seed=96), False)  # one row: fine in inference


def test_layernorm_matches_torch():
    n_features = 9
    ours = LayerNorm(n_features, eps=1e-4, dtype="float64")
    ours.gamma[...] = data((1, n_features), seed=3)
    ours.beta[...] = data((1, n_features), seed=4)
    theirs = torch.nn.LayerNorm(n_features, eps=1e-4).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.gamma[0]))
        theirs.bias.copy_(torch.tensor(ours.beta[0]))
    x = data((7, n_features), scale=5.0) + 2.0
    g = data((7, n_features), seed=1)
    xt = leaf(x)
    out_t = theirs(xt)
    out_t.backward(torch.tensor(g))
    for training in (True, False):  # no batch statistics: both modes are the same
        close(ours.forward(x, training=training), out_t)
        close(ours.backward(g), xt.grad)
        close(ours.dgamma[0], theirs.weight.grad)
        close(ours.dbeta[0], theirs.bias.grad)


# -- dropout -------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_matches_torch_with_the_same_mask(p):
    ours = Dropout(p, seed=0)
    x = data((50, 40)) + 3.0  # away from 0, so a zero output means "dropped"
    g = data((50, 40), seed=1)
    out = ours.forward(x, training=True)
    keep = out != 0
    # torch's training-mode dropout, replayed with our mask: x * mask / (1 - p)
    xt = leaf(x)
    out_t = xt * torch.tensor(keep, dtype=torch.float64) / (1 - p)
    out_t.backward(torch.tensor(g))
    close(out, out_t)
    close(ours.backward(g), xt.grad)
    # torch's own mask: the same scaling of the kept units, and about the same rate
    torch.manual_seed(0)
    theirs = F_.dropout(torch.tensor(x), p, training=True).numpy()
    kept_t = theirs != 0
    close(theirs[kept_t], x[kept_t] / (1 - p))
    assert abs(keep.mean() - (1 - p)) < 0.03 and abs(kept_t.mean() - (1 - p)) < 0.03
    # inference: the identity in both, gradient passed through unchanged
    close(ours.forward(x, training=False), F_.dropout(torch.tensor(x), p, training=False))
    np.testing.assert_array_equal(ours.backward(g), g)


def test_dropout_masks_come_from_the_network_generator():
    net = flexnet.Network([6, 32, 2], dropout=0.5, seed=3)
    x = data((8, 6)).astype(np.float32)
    a = net.forward(x, training=True)
    net.rng = np.random.default_rng(3)  # not the layer's generator: no effect
    assert net.layers[2].rng is not net.rng
    b = net.forward(x, training=True)
    assert not np.array_equal(a, b)  # a fresh mask each call
    np.testing.assert_array_equal(net.forward(x), net.forward(x))  # inference: no dropout


# -- losses --------------------------------------------------------------------


def loss_pair(ours, z, y, torch_loss):
    """Loss value and dL/dz from flexnet and from a torch function of (z, y)."""
    zt = leaf(z)
    value_t = torch_loss(zt)
    value_t.backward()
    close(ours.forward(z, y), value_t)
    close(ours.backward(), zt.grad)


CE_CASES = [
    {},
    {"label_smoothing": 0.1},
    {"class_weights": [1.0, 3.0, 0.5, 2.0, 0.0]},
    {"label_smoothing": 0.25, "class_weights": [1.0, 3.0, 0.5, 2.0, 0.0]},
    {"label_smoothing": 1.0},
]


@pytest.mark.parametrize("kw", CE_CASES, ids=str)
@pytest.mark.parametrize("targets", ["ids", "one-hot", "probabilities"])
def test_cross_entropy_matches_torch(kw, targets):
    rng = np.random.default_rng(0)
    z = data((12, 5), scale=3.0)
    z[0, 0] = 1e4  # a huge logit stays finite
    ids = rng.integers(0, 4, 12)  # class 4 (weight 0) only as a competitor
    y = {"ids": ids, "one-hot": np.eye(5)[ids], "probabilities": rng.dirichlet(np.ones(5), 12)}[targets]
    weight = None if "class_weights" not in kw else torch.tensor(kw["class_weights"], dtype=torch.float64)
    yt = torch.tensor(y) if targets != "ids" else torch.tensor(ids, dtype=torch.long)
    loss_pair(SoftmaxCrossEntropy(**kw), z, y,
              lambda zt: F_.cross_entropy(zt, yt, weight=weight, label_smoothing=kw.get("label_smoothing", 0.0)))


@pytest.mark.parametrize("shape, y_shape", [((10, 1), (10,)), ((10, 1), (10, 1)), ((10, 3), (10, 3))])
def test_bce_with_logits_matches_torch(shape, y_shape):
    z = data(shape, scale=4.0)
    z.flat[:2] = [800.0, -800.0]  # exp would overflow without the fused form
    y = np.random.default_rng(1).uniform(0, 1, y_shape)
    y.flat[:2] = [0.0, 1.0]  # confidently wrong: loss ~800 each
    yt = torch.tensor(y.reshape(shape))
    loss_pair(BCEWithLogits(), z, y, lambda zt: F_.binary_cross_entropy_with_logits(zt, yt))


@pytest.mark.parametrize("ours, theirs", [
    (MSE(), F_.mse_loss),
    (L1(), F_.l1_loss),
    (Huber(), lambda a, b: F_.huber_loss(a, b, delta=1.0)),
    (Huber(delta=0.3), lambda a, b: F_.huber_loss(a, b, delta=0.3)),
    (Huber(delta=5.0), lambda a, b: F_.huber_loss(a, b, delta=5.0)),
], ids=["MSE", "L1", "Huber1", "Huber0.3", "Huber5"])
@pytest.mark.parametrize("k", [1, 3])
def test_regression_losses_match_torch(ours, theirs, k):
    z = data((11, k), scale=2.0)
    y = data((11, k), seed=1, scale=2.0)
    y[0, 0] = z[0, 0]  # a zero residual: L1's gradient is 0 there, as in torch
    loss_pair(ours, z, y, lambda zt: theirs(zt, torch.tensor(y)))
    if k == 1:  # (N,) targets for one output
        loss_pair(ours, z, y[:, 0], lambda zt: theirs(zt, torch.tensor(y)))

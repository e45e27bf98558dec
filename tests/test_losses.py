"""Losses worked by hand, their edge cases, the initialisers and the Network builder,
and regression / binary / multi-class networks trained end to end."""

import math

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
    Linear,
    Network,
    ReLU,
    Sigmoid,
    SoftmaxCrossEntropy,
    Tanh,
    activations,
    init,
    losses,
)

# -- worked by hand --------------------------------------------------------------


def test_bce_with_logits_by_hand():
    # l(z, y) = max(z, 0) - z*y + log(1 + exp(-|z|)) = -[y log s(z) + (1-y) log(1 - s(z))]
    # z = 0,  y = 1: 0 - 0 + log(2)               = 0.693147
    # z = 2,  y = 0: 2 - 0 + log(1 + e^-2)        = log(1 + e^2) = 2.126928
    # z = -3, y = 0: 0 - 0 + log(1 + e^-3)        = 0.048587
    # mean = 2.868663 / 3                         = 0.956221
    # dL/dz = (s(z) - y) / 3: s(0) = 0.5, s(2) = 0.880797, s(-3) = 0.047426
    #       = [-0.5/3, 0.880797/3, 0.047426/3] = [-0.166667, 0.293599, 0.015809]
    bce = BCEWithLogits()
    z = np.array([[0.0], [2.0], [-3.0]])
    assert bce.forward(z, np.array([1, 0, 0])) == pytest.approx(0.9562208, abs=1e-7)
    np.testing.assert_allclose(bce.backward(), [[-0.1666667], [0.2935990], [0.0158086]], atol=1e-7)
    assert bce.predict(z).tolist() == [0, 1, 0]  # z > 0 means class 1; z = 0 is not > 0
    np.testing.assert_allclose(bce.proba(z)[1], [1 - 0.8807971, 0.8807971], atol=1e-7)


def test_bce_with_logits_is_finite_for_huge_logits():
    # Confidently wrong by 1e4: loss = |z| exactly (log(1 + e^-1e4) is 0), gradient +-1/N.
    for dtype in ("float32", "float64"):
        bce = BCEWithLogits()
        z = np.array([[1e4], [-1e4], [1e4]], dtype=dtype)
        with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
            loss = bce.forward(z, [0, 1, 1])
            grad = bce.backward()
        assert loss == pytest.approx((1e4 + 1e4 + 0) / 3)
        np.testing.assert_allclose(grad, [[1 / 3], [-1 / 3], [0]], atol=1e-7)
        assert grad.dtype == np.dtype(dtype)


def test_huber_by_hand():
    # d = z - y = [0.5, -2, 3], delta = 1
    #   |0.5| <= 1: 0.5 * 0.25           = 0.125
    #   |-2|  >  1: 1 * (2 - 0.5)        = 1.5
    #   |3|   >  1: 1 * (3 - 0.5)        = 2.5
    #   mean = 4.125 / 3                 = 1.375
    # gradient = clip(d, -1, 1) / 3 = [0.5, -1, 1] / 3
    z, y = np.array([[1.5], [0.0], [3.0]]), np.array([1.0, 2.0, 0.0])
    huber = Huber()
    assert huber.forward(z, y) == pytest.approx(1.375)
    np.testing.assert_allclose(huber.backward(), [[0.5 / 3], [-1 / 3], [1 / 3]])
    # delta = 2: 0.125 + 0.5 * 4 + 2 * (3 - 1) = 0.125 + 2 + 4 = 6.125; mean 6.125 / 3
    # gradient = clip(d, -2, 2) / 3 = [0.5, -2, 2] / 3
    huber2 = Huber(delta=2)
    assert huber2.forward(z, y) == pytest.approx(6.125 / 3)
    np.testing.assert_allclose(huber2.backward(), [[0.5 / 3], [-2 / 3], [2 / 3]])


def test_mse_and_l1_by_hand():
    # d = [1, -2]: MSE = (1 + 4) / 2 = 2.5, gradient 2d / 2 = [1, -2]
    #              L1  = (1 + 2) / 2 = 1.5, gradient sign(d) / 2 = [0.5, -0.5]
    z, y = np.array([[3.0], [0.0]]), np.array([2.0, 2.0])
    mse, l1 = MSE(), L1()
    assert mse.forward(z, y) == 2.5 and l1.forward(z, y) == 1.5
    np.testing.assert_allclose(mse.backward(), [[1.0], [-2.0]])
    np.testing.assert_allclose(l1.backward(), [[0.5], [-0.5]])
    assert mse.predict(z).shape == (2,)  # one output: (N,), comparable with y directly


def test_label_smoothing_by_hand():
    # Two classes, z = [0, 0] so p = [0.5, 0.5]; label 0, eps = 0.2
    # target q = (1 - eps) * onehot + eps / C = [0.8 + 0.1, 0.1] = [0.9, 0.1]
    # loss = -(0.9 log 0.5 + 0.1 log 0.5) = log 2; gradient p - q = [-0.4, 0.4]
    ce = SoftmaxCrossEntropy(label_smoothing=0.2)
    assert ce.forward(np.zeros((1, 2)), [0]) == pytest.approx(math.log(2))
    np.testing.assert_allclose(ce.backward(), [[-0.4, 0.4]])


def test_class_weights_by_hand():
    # row 0: z = [0, ln 3] -> p = [1/4, 3/4], label 0, weight 2: nll = ln 4
    # row 1: z = [0, 0]    -> p = [1/2, 1/2], label 1, weight 1: nll = ln 2
    # weighted mean = (2 ln 4 + 1 ln 2) / (2 + 1) = 5 ln 2 / 3 = 1.155245
    # gradient row i = w_i (p_i - onehot_i) / 3:
    #   row 0: 2 * [-3/4, 3/4] / 3 = [-0.5, 0.5];  row 1: [1/2, -1/2] / 3
    ce = SoftmaxCrossEntropy(class_weights=[2.0, 1.0])
    z = np.array([[0.0, math.log(3)], [0.0, 0.0]])
    assert ce.forward(z, [0, 1]) == pytest.approx(5 * math.log(2) / 3)
    np.testing.assert_allclose(ce.backward(), [[-0.5, 0.5], [1 / 6, -1 / 6]])


def test_cross_entropy_options_off_keep_the_plain_path():
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal((8, 4)), rng.integers(0, 4, 8)
    plain, ones = SoftmaxCrossEntropy(), SoftmaxCrossEntropy(class_weights=[1, 1, 1, 1])
    assert plain.forward(z, y) == pytest.approx(ones.forward(z, y))
    np.testing.assert_allclose(plain.backward(), ones.backward())
    assert repr(plain) == "SoftmaxCrossEntropy()" and plain._scale is None


# -- bad input -------------------------------------------------------------------


@pytest.mark.parametrize("make, match", [
    (lambda: SoftmaxCrossEntropy(label_smoothing=1.5), r"label_smoothing.*\[0, 1\]"),
    (lambda: SoftmaxCrossEntropy(class_weights=[1, -1]), "class_weights"),
    (lambda: SoftmaxCrossEntropy(class_weights=[[1, 2]]), "class_weights"),
    (lambda: Huber(delta=0), "delta"),
    (lambda: Dropout(1.0), r"\[0, 1\)"),
    (lambda: Dropout(-0.1), r"\[0, 1\)"),
    (lambda: BatchNorm1d(4, momentum=2), "momentum"),
    (lambda: LayerNorm(4, eps=0), "eps"),
    (lambda: GELU("fast"), "approximate"),
    (lambda: Network([4, 2], batchnorm=True, layernorm=True), "not both"),
    (lambda: Network([4, 3, 2], activation="swish"), "unknown name 'swish'"),
    (lambda: Linear(3, 2, init="orthogonal"), "unknown initialiser"),
])
def test_bad_options_are_refused_with_a_message(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_targets_are_refused_with_a_message():
    with pytest.raises(ValueError, match="got 3 class weights for 2 outputs"):
        SoftmaxCrossEntropy(class_weights=[1, 1, 1]).forward(np.zeros((2, 2)), [0, 1])
    with pytest.raises(ValueError, match="class weight 0"):
        SoftmaxCrossEntropy(class_weights=[0, 1]).forward(np.zeros((2, 2)), [0, 0])
    with pytest.raises(ValueError, match=r"BCEWithLogits.*\[0, 1\], got 2"):
        BCEWithLogits().forward(np.zeros((2, 1)), [0, 2])
    # (N, 1) outputs against (N, 2) targets would broadcast; refused instead
    with pytest.raises(ValueError, match=r"MSE.*\(3,\) or \(3, 1\).*got \(3, 2\)"):
        MSE().forward(np.zeros((3, 1)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"needs at least 2 rows"):
        BatchNorm1d(3).forward(np.zeros((1, 3), np.float32), training=True)
    with pytest.raises(TypeError, match=r"Sigmoid\(\).*int64.*astype"):
        Sigmoid().forward(np.zeros((2, 3), dtype=np.int64))


def test_names_find_classes():
    assert losses.get("mse") is MSE and losses.get("MAE") is L1 and losses.get("bce") is BCEWithLogits
    assert losses.get("cross-entropy") is SoftmaxCrossEntropy and losses.get(Huber) is Huber
    assert activations.get("relu") is ReLU and activations.get("LeakyReLU") is activations.LeakyReLU
    assert activations.get("leaky-relu") is activations.LeakyReLU and activations.get(Tanh) is Tanh
    with pytest.raises(ValueError, match="expected one of"):
        losses.get("hinge")


def test_gelu_without_scipy_gives_the_same_numbers(monkeypatch):
    # Without SciPy, GELU falls back to math.erf element by element.
    x = np.random.default_rng(0).standard_normal((20, 7)) * 3
    g = np.ones_like(x)
    with_scipy = GELU()
    expected, expected_dx = with_scipy.forward(x), with_scipy.backward(g)
    monkeypatch.setattr(activations, "_erf", np.vectorize(math.erf, otypes=[np.float64]))
    fallback = GELU()
    np.testing.assert_allclose(fallback.forward(x), expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(fallback.backward(g), expected_dx, rtol=1e-14, atol=1e-15)
    assert fallback.forward(x.astype(np.float32)).dtype == np.float32


# -- initialisers ----------------------------------------------------------------


@pytest.mark.parametrize("name, variance", [
    ("he_normal", 2 / 400), ("he_uniform", 2 / 400),
    ("glorot_normal", 2 / 700), ("xavier_uniform", 2 / 700),
    ("lecun_normal", 1 / 400), ("lecun_uniform", 1 / 400),
])
def test_initialiser_variance(name, variance):
    w = init.get(name)(400, 300, np.random.default_rng(0), np.float64)
    assert w.shape == (400, 300)
    assert w.var() == pytest.approx(variance, rel=0.02)
    if name.endswith("uniform"):  # U(-a, a) with a = sqrt(3 Var)
        assert np.abs(w).max() <= math.sqrt(3 * variance)
        assert np.abs(w).max() > 0.99 * math.sqrt(3 * variance)


def test_default_init_is_unchanged_and_follows_the_activation():
    rng = np.random.default_rng(5)
    expected = (rng.standard_normal((20, 10)) * np.sqrt(2.0 / 20)).astype(np.float32)
    np.testing.assert_array_equal(Network([20, 10, 3], seed=5).layers[0].W, expected)
    np.testing.assert_array_equal(Linear(20, 10, seed=5).W, expected)
    assert init.default_for("tanh") == "glorot_normal" and init.default_for(GELU()) == "he_normal"
    tanh_net = Network([400, 300, 2], activation="tanh", seed=0)
    assert tanh_net.layers[0].W.var() == pytest.approx(2 / 700, rel=0.02)
    custom = Linear(3, 2, init=lambda fan_in, fan_out, rng, dtype: np.full((fan_in, fan_out), 0.5, dtype))
    assert (custom.W == 0.5).all()


# -- the Network builder -------------------------------------------------------------


def kinds(net):
    return [type(layer).__name__ for layer in net.layers]


def test_network_blocks_in_order():
    assert kinds(Network([4, 8, 8, 2])) == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    net = Network([4, 8, 2], activation="gelu", batchnorm=True, dropout=0.2, seed=0)
    assert kinds(net) == ["Linear", "BatchNorm1d", "GELU", "Dropout", "Linear"]
    assert net.layers[3].rng is net.rng  # masks from the network's generator
    net = Network([4, 8, 2], activation=Tanh, layernorm=True, loss="mse", dtype="float64")
    assert kinds(net) == ["Linear", "LayerNorm", "Tanh", "Linear"]
    assert isinstance(net.loss_fn, MSE) and net.layers[1].gamma.dtype == np.float64
    assert repr(Network([4, 2])) == "Network([4, 2], dtype='float32')"
    assert "dropout=0.2" in repr(Network([4, 3, 2], dropout=0.2))


def test_dropout_masks_follow_the_network_seed():
    x = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
    a, b = Network([6, 32, 2], dropout=0.5, seed=3), Network([6, 32, 2], dropout=0.5, seed=3)
    first = a.forward(x, training=True)
    np.testing.assert_array_equal(first, b.forward(x, training=True))
    assert not np.array_equal(first, a.forward(x, training=True))  # a fresh mask each call
    np.testing.assert_array_equal(a.forward(x), a.forward(x))  # inference: no dropout


# -- end to end ------------------------------------------------------------------


def blobs(n, n_features, n_classes, seed, spread=1.0):
    """Gaussian clusters around random centres."""
    rng = np.random.default_rng(seed)
    centres = 3 * rng.standard_normal((n_classes, n_features))
    y = rng.integers(0, n_classes, n)
    return (centres[y] + spread * rng.standard_normal((n, n_features))).astype(np.float32), y


def train(net, X, y, epochs, lr, batch=32):
    for _ in range(epochs):
        for i in range(0, len(X), batch):
            net.train_step(X[i:i + batch], y[i:i + batch], lr)


def test_regression_network_end_to_end():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (256, 3)).astype(np.float32)
    y = (X @ np.array([1.5, -2.0, 0.5]) + 0.3 * np.sin(3 * X[:, 0])).astype(np.float32)
    for loss in (MSE(), L1(), Huber()):
        net = Network([3, 16, 1], loss=loss, seed=1)
        before = MSE().forward(net.forward(X), y)
        train(net, X, y, epochs=60, lr=0.05)
        pred = net.predict(X)
        assert pred.shape == (256,) and pred.dtype == np.float32
        assert np.mean((pred - y) ** 2) < 0.02 < before, loss


def test_binary_network_end_to_end():
    X, y = blobs(300, 2, 2, seed=4)
    net = Network([2, 16, 1], loss=BCEWithLogits(), seed=0)
    train(net, X, y, epochs=30, lr=0.1)
    assert np.mean(net.predict(X) == y) > 0.95
    proba = net.predict_proba(X)
    assert proba.shape == (300, 2) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(proba.argmax(axis=1), net.predict(X))


@pytest.mark.parametrize("options, documented", [
    ({}, 0.925), ({"dropout": 0.2}, 0.925), ({"batchnorm": True}, 0.944),
    ({"batchnorm": True, "dropout": 0.2}, 0.953), ({"layernorm": True, "activation": "gelu"}, 0.947),
    ({"activation": "tanh"}, 0.928), ({"loss": SoftmaxCrossEntropy(label_smoothing=0.1)}, 0.922),
])
def test_digits_classifier_end_to_end(options, documented):
    # scikit-learn's 8x8 digits (64 inputs, 10 classes): 500 training images,
    # 30 epochs of SGD, lr 0.1, batch 32, held-out accuracy on 359 images: the
    # README's table. One point of slack (3-4 images) for another CPU or BLAS,
    # whose rounding can flip a few predictions.
    (X, y), (X_test, y_test) = flexnet.datasets.digits(seed=0)
    net = Network([64, 32, 10], seed=0, **options)
    train(net, X[:500], y[:500], epochs=30, lr=0.1)
    assert np.mean(net.predict(X_test) == y_test) >= documented - 0.01, options

"""The tutorial's API, a hand-worked example, and every bad input of the core."""

import numpy as np
import pytest

import flexnet
from flexnet import Linear, Network, ReLU, Sequential, SoftmaxCrossEntropy
from flexnet.data.datasets import edges

# -- the tutorial, used exactly as the tutorial uses it ------------------------


def test_tutorial_api_trains_edge_detector_to_100_percent():
    X_train, y_train = edges(200, seed=0, one_hot=True)
    X_test, y_test = edges(50, seed=1, one_hot=True)
    for arch in ([25, 2], [25, 8, 2], [25, 16, 8, 2]):
        net = Network(arch, seed=42)
        assert [type(l).__name__ for l in net.layers][-1] == "Linear"
        assert isinstance(net.loss_fn, SoftmaxCrossEntropy)
        for _ in range(200):
            for i in range(0, len(X_train), 16):
                loss = net.train_step(X_train[i:i + 16], y_train[i:i + 16], lr=0.1)
        z = net.forward(X_test)
        accuracy = np.mean(np.argmax(z, axis=1) == np.argmax(y_test, axis=1))
        assert accuracy == 1.0, arch
        assert loss < 0.05


def test_network_builds_linear_relu_stack():
    net = Network([784, 128, 64, 10], seed=0)
    kinds = [type(l).__name__ for l in net.layers]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert net.layers[0].W.shape == (784, 128)
    assert net.layers[0].b.shape == (1, 128)
    assert net.n_params() == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert list(net.parameters()) == [
        "layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b", "layers.4.W", "layers.4.b"]


def test_layer_level_api_matches_tutorial():
    lin = Linear(3, 2, seed=0)
    x = np.ones((4, 3), dtype=np.float32)
    z = lin.forward(x)
    assert z.shape == (4, 2)
    dx = lin.backward(np.ones_like(z))
    assert lin.dW.shape == (3, 2) and lin.db.shape == (1, 2) and dx.shape == (4, 3)
    w0 = lin.W.copy()
    lin.update(0.5)
    np.testing.assert_allclose(lin.W, w0 - 0.5 * lin.dW)
    relu = ReLU()
    relu.update(0.1)  # no parameters: a no-op, as in the tutorial
    assert relu.forward(np.array([[-1.0, 2.0]])).tolist() == [[0.0, 2.0]]


def test_he_initialisation_scale():
    lin = Linear(400, 300, seed=1)
    assert abs(lin.W.std() - np.sqrt(2 / 400)) < 0.003
    assert not lin.b.any()


# -- a small network worked by hand -------------------------------------------


def test_hand_worked_two_layer_network():
    # x = [1, 2]; layer 1: W1 = [[1, -1], [0, 1]], b1 = [0, 0]
    #   z1 = [1*1 + 2*0, 1*-1 + 2*1] = [1, 1]; h1 = relu(z1) = [1, 1]
    # layer 2: W2 = [[1, 0], [0, 0]], b2 = [0, 0]  ->  z2 = [1, 0]
    # softmax(z2) = [e/(e+1), 1/(e+1)] = [0.7311, 0.2689]; label 0
    #   loss = -log(0.7311) = 0.3133
    # dz2 = p - y = [-0.2689, 0.2689]
    # dW2 = h1.T @ dz2 = [[-0.2689, 0.2689], [-0.2689, 0.2689]]; db2 = dz2
    # dh1 = dz2 @ W2.T = [-0.2689*1 + 0.2689*0, 0] = [-0.2689, 0]
    # dz1 = dh1 * (z1 > 0) = [-0.2689, 0]
    # dW1 = x.T @ dz1 = [[-0.2689, 0], [-0.5379, 0]]
    net = Network([2, 2, 2], dtype="float64")
    net.layers[0].W[...] = [[1, -1], [0, 1]]
    net.layers[2].W[...] = [[1, 0], [0, 0]]
    x = np.array([[1.0, 2.0]])
    loss = net.loss_fn.forward(net.forward(x, training=True), np.array([0]))
    net.backward()
    q = 1 / (np.e + 1)  # 0.2689
    assert loss == pytest.approx(-np.log(np.e / (np.e + 1)))
    np.testing.assert_allclose(net.layers[2].dW, [[-q, q], [-q, q]])
    np.testing.assert_allclose(net.layers[2].db, [[-q, q]])
    np.testing.assert_allclose(net.layers[0].dW, [[-q, 0], [-2 * q, 0]])
    np.testing.assert_allclose(net.layers[0].db, [[-q, 0]])


# -- the loss ------------------------------------------------------------------


def test_labels_and_one_hot_give_the_same_loss_and_gradient():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 3))
    y = np.array([0, 2, 1, 1, 0])
    a, b = SoftmaxCrossEntropy(), SoftmaxCrossEntropy()
    assert a.forward(z, y) == pytest.approx(b.forward(z, np.eye(3)[y]))
    np.testing.assert_allclose(a.backward(), b.backward())
    # backward is (p - y) / batch
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(a.backward(), (p - np.eye(3)[y]) / 5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loss_is_finite_for_huge_logits(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype)
    loss_fn = SoftmaxCrossEntropy()
    loss = loss_fn.forward(z, np.array([1, 0]))
    grad = loss_fn.backward()
    assert np.isfinite(loss) and loss == pytest.approx((2e4 + 2e4 + np.log(2)) / 2, rel=1e-6)
    assert np.isfinite(grad).all() and grad.dtype == np.dtype(dtype)


# -- dtype and randomness ------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_kept_through_training(dtype):
    X, y = edges(32, seed=3)
    net = Network([25, 8, 2], dtype=dtype, seed=0)
    net.train_step(X.astype(np.float64), y, 0.1)  # float64 input is converted, not upcast through
    for name, p, g in net.named_parameters():
        assert p.dtype == np.dtype(dtype), name
        assert g.dtype == np.dtype(dtype), name
    assert net.forward(X).dtype == np.dtype(dtype)
    assert net.predict_proba(X).dtype == np.dtype(dtype)


def test_same_seed_same_numbers_and_global_state_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = Network([25, 8, 2], seed=7)
    b = Network([25, 8, 2], seed=np.random.default_rng(7))
    c = Network([25, 8, 2], seed=8)
    X, y = edges(64, seed=1)
    edges(10)  # unseeded: fresh entropy, still not the global state
    for net in (a, b):
        for _ in range(5):
            net.train_step(X, y, 0.1)
    for (_, p, _), (_, q, _) in zip(a.named_parameters(), b.named_parameters()):
        assert np.array_equal(p, q)
    assert not np.array_equal(Network([25, 8, 2], seed=7).layers[0].W, c.layers[0].W)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_edges_dataset_is_seeded_and_shaped():
    X1, y1 = edges(100, seed=5)
    X2, y2 = edges(100, seed=5)
    assert X1.shape == (100, 25) and X1.dtype == np.float32 and y1.dtype.kind == "i"
    assert np.array_equal(X1, X2) and np.array_equal(y1, y2)
    assert set(np.unique(y1)) == {0, 1}
    patches = X1.reshape(-1, 5, 5)
    for patch, label in zip(patches, y1):
        if label == 0:  # dark-to-bright edge
            assert patch[0, 0] == pytest.approx(0.1) and patch[0, 4] == pytest.approx(0.9)
        else:
            assert not (patch[0, 0] < 0.5 < patch[0, 4])
    _, onehot = edges(10, seed=5, one_hot=True)
    assert onehot.shape == (10, 2) and np.allclose(onehot.sum(1), 1)


def test_predict_and_predict_proba():
    X, y = edges(50, seed=2)
    net = Network([25, 4, 2], seed=0)
    proba = net.predict_proba(X)
    assert proba.shape == (50, 2) and np.allclose(proba.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_array_equal(net.predict(X), proba.argmax(axis=1))


def test_repr_and_summary():
    net = Network([784, 128, 10], seed=0)
    assert repr(net.layers[0]) == "Linear(784 -> 128)"
    assert "Network([784, 128, 10]" in repr(net)
    text = net.summary()
    assert "Linear(784 -> 128)" in text and "(N, 128)" in text and f"{net.n_params():,}" in text


# -- gradcheck -----------------------------------------------------------------


def test_gradcheck_network_and_layer():
    X, y = edges(8, seed=0)
    report = flexnet.gradcheck(Network([25, 6, 4, 2], seed=0), X, y)
    assert set(report) == {"layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b",
                           "layers.4.W", "layers.4.b", "input"}
    assert max(report.values()) < 1e-6
    layer_report = flexnet.gradcheck(Linear(5, 3, seed=0), np.random.default_rng(0).standard_normal((4, 5)))
    assert set(layer_report) == {"W", "b", "input"} and max(layer_report.values()) < 1e-6


def test_gradcheck_catches_a_wrong_backward():
    class BrokenLinear(Linear):
        def backward(self, dz, input_grad=True):
            dx = super().backward(dz, input_grad)
            self.dW = self.dW * 1.01  # 1% off
            return dx

    x = np.random.default_rng(0).standard_normal((4, 5))
    report = flexnet.gradcheck(BrokenLinear(5, 3, seed=0), x)
    assert report["W"] > 1e-3 and report["b"] < 1e-6


# -- bad input -----------------------------------------------------------------


@pytest.mark.parametrize("sizes, err, words", [
    ([25], ValueError, "at least two"),
    ([], ValueError, "at least two"),
    ([25, 0, 2], ValueError, "positive integer"),
    ([25, -3, 2], ValueError, "positive integer"),
    ([25, 8.5, 2], TypeError, "positive integer"),
    ([25, True, 2], TypeError, "positive integer"),
    ("25,8,2", TypeError, "list of integers"),
    (25, TypeError, "list of integers"),
])
def test_invalid_layer_sizes(sizes, err, words):
    with pytest.raises(err, match=words):
        Network(sizes)


def test_wrong_feature_count_names_layer_and_hints():
    net = Network([784, 128, 10], seed=0)
    with pytest.raises(ValueError) as info:
        net.forward(np.zeros((32, 100)))
    msg = str(info.value)
    assert "Linear(784 -> 128) at layers.0" in msg and "(batch, 784)" in msg and "(32, 100)" in msg
    assert "first size 100" in msg and "flatten" in msg


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0 in a matmul
@pytest.mark.parametrize("where", ["train_step", "forward", "predict"])
def test_nan_or_inf_input_is_refused_with_its_row_and_weights_stay(where):
    net = Network([3, 2], seed=0)
    before = {k: v.copy() for k, v in net.parameters().items()}
    x = np.zeros((5, 3))
    x[3, 1] = np.nan if where != "predict" else np.inf
    call = {"train_step": lambda: net.train_step(x, np.array([0, 1, 0, 1, 0]), 0.1),
            "forward": lambda: net.forward(x), "predict": lambda: net.predict(x)}[where]
    with pytest.raises(ValueError, match="row 3 holds NaN or infinity"):
        call()
    for k, v in net.parameters().items():
        np.testing.assert_array_equal(v, before[k])


def test_nan_input_leaves_batchnorm_running_statistics_alone():
    net = Network([3, 4, 2], batchnorm=True, seed=0)
    x = np.ones((5, 3))
    x[2, 0] = np.nan
    with pytest.raises(ValueError, match="row 2 holds NaN"):
        net.train_step(x, np.array([0, 1, 0, 1, 0]), 0.1)
    assert np.isfinite(net.layers[1].running_mean).all() and np.isfinite(net.layers[1].running_var).all()


def test_labels_in_a_column_get_a_ravel_hint():
    with pytest.raises(ValueError, match="1-D array \\(y.ravel\\(\\)\\)"):
        Network([3, 2], seed=0).train_step(np.zeros((4, 3)), np.array([[0], [1], [1], [0]]), 0.1)


@pytest.mark.parametrize("seed", ["a", 1.5, True, [object()]])
def test_bad_seed_is_named(seed):
    with pytest.raises(TypeError, match="seed: expected an int, None or np.random.Generator"):
        Network([3, 2], seed=seed)


@pytest.mark.parametrize("shape, words", [((784,), "reshape\\(1, -1\\)"), ((4, 28, 28), "flatten"),
                                          ((0, 784), "empty batch")])
def test_bad_input_shapes(shape, words):
    net = Network([784, 10], seed=0)
    with pytest.raises(ValueError, match=words):
        net.forward(np.zeros(shape))


def test_non_numeric_input():
    with pytest.raises(TypeError, match="numeric"):
        Network([2, 2]).forward(np.array([["a", "b"]]))


@pytest.mark.parametrize("y, err, words", [
    (np.array([0, 1, 1]), ValueError, "3 labels for a batch of 4"),
    (np.array([0, 1, 2, 1]), ValueError, "label 2 at row 2 is out of range"),
    (np.array([0, -1, 1, 1]), ValueError, "out of range"),
    (np.array([0.0, 0.5, 1.0, 1.0]), ValueError, "whole-number"),
    (np.array([0.0, np.nan, 1.0, 1.0]), ValueError, "row 1 is nan"),
    (np.array(["a", "b", "a", "b"]), TypeError, "integer class labels"),
    (np.zeros((4, 3)), ValueError, "shape \\(4, 2\\)"),
    (np.array([[1, 0], [0.5, 0.2], [0, 1], [0, 1]]), ValueError, "one-hot"),
])
def test_bad_labels(y, err, words):
    net = Network([3, 2], seed=0)
    with pytest.raises(err, match=words):
        net.train_step(np.zeros((4, 3)), y, 0.1)


def test_float_labels_that_are_whole_numbers_are_accepted():
    net = Network([3, 2], seed=0)
    assert np.isfinite(net.train_step(np.zeros((4, 3)), np.array([0.0, 1.0, 1.0, 0.0]), 0.1))


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), "0.1", None])
def test_bad_learning_rate(lr):
    net = Network([3, 2], seed=0)
    with pytest.raises((ValueError, TypeError), match="lr"):
        net.train_step(np.zeros((4, 3)), np.array([0, 1, 1, 0]), lr)
    with pytest.raises((ValueError, TypeError), match="lr"):
        net.update(lr)


def test_bad_dtype():
    with pytest.raises(TypeError, match="float32' or 'float64"):
        Network([3, 2], dtype="float16")
    with pytest.raises(TypeError, match="float32' or 'float64"):
        Network([3, 2], dtype="int32")


def test_sequential_validates_its_layers():
    with pytest.raises(ValueError, match="at least one layer"):
        Sequential([])
    with pytest.raises(TypeError, match="layers\\[1\\]"):
        Sequential([Linear(2, 2), "relu"])
    net = Sequential([Linear(3, 4, seed=0), ReLU(), Linear(4, 2, seed=1)], dtype="float64")
    assert all(p.dtype == np.float64 for p in net.parameters().values())


# -- custom layers the network must keep working with ----------------------------


def test_a_composite_layer_that_lists_its_own_parameters_is_trained():
    from flexnet.nn.layers import Layer

    class Wrapped(Layer):
        """A layer holding another: no params of its own, named_parameters overridden."""

        def __init__(self):
            self.inner = flexnet.Linear(4, 3, seed=0)

        def forward(self, x, training=False):
            return self.inner.forward(x, training)

        def backward(self, grad, *, input_grad=True):  # keyword-only, as a user may write it
            return self.inner.backward(grad, input_grad=input_grad)

        def named_parameters(self):
            for attr, p, g in self.inner.named_parameters():
                yield "inner." + attr, p, g

    net = flexnet.Sequential([flexnet.Linear(5, 4, seed=1), flexnet.ReLU(), Wrapped()])
    assert list(net.parameters()) == ["layers.0.W", "layers.0.b", "layers.2.inner.W", "layers.2.inner.b"]
    before = net.layers[2].inner.W.copy()
    X = np.random.default_rng(0).standard_normal((8, 5))
    flexnet.fit(net, X, np.arange(8) % 3, epochs=2, batch_size=4, lr=0.1)
    assert not np.array_equal(net.layers[2].inner.W, before)


@pytest.mark.parametrize("dtype", ["uint64", ">u8", "uint8", "int8", ">i4"])
def test_class_ids_of_any_integer_dtype_train_and_score(dtype):
    X = np.random.default_rng(0).standard_normal((12, 4))
    y = (np.arange(12) % 3).astype(dtype)
    net = flexnet.Network([4, 5, 3], seed=0)
    want = flexnet.Network([4, 5, 3], seed=0)
    flexnet.fit(net, X, y, epochs=2, batch_size=4, lr=0.1, seed=0)
    flexnet.fit(want, X, y.astype(np.int64), epochs=2, batch_size=4, lr=0.1, seed=0)
    for a, b in zip(net.parameters().values(), want.parameters().values()):
        np.testing.assert_array_equal(a, b)
    assert net.loss(X, y) == want.loss(X, y.astype(np.int64))
    net.train_step(X[:4], y[:4], 0.1)

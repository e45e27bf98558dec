"""One contract, checked for every layer and every loss in tests/registry.py.

Shapes, dtype kept, gradient shapes, finite differences in float64 (alone and
inside a small network), same seed -> same numbers, errors that name the
layer, and a rebuild from ``config()``.
"""

import json

import numpy as np
import pytest
from registry import LAYER_FACTORIES, LAYER_TRAINING, LOSS_FACTORIES

from flexnet import Linear, Sequential, SoftmaxCrossEntropy, Tanh, gradcheck

DTYPES = ["float32", "float64"]
N, F = 6, 5  # batch rows, features
TOL = 1e-6  # worst relative error between backprop and central differences
EPS = 1e-5  # finite-difference step: small gradients (after a softmax) need more than 1e-6

def build(name, dtype="float64", seed=0):
    return LAYER_FACTORIES[name](F, dtype, seed)


def batch(dtype, seed=1, n=N, f=F):
    return np.random.default_rng(seed).standard_normal((n, f)).astype(dtype)


def inference_only(layer):
    """The same layer, with forward always in inference mode.

    gradcheck runs ``forward(training=True)``; this lets it check the
    inference path (BatchNorm with running statistics) as well.
    """
    cls = type(layer)

    def forward(self, x, training=False):
        return cls.forward(self, x, training=False)

    layer.__class__ = type(cls.__name__, (cls,), {"forward": forward})
    return layer


def checked(name, layer):
    return layer if name in LAYER_TRAINING else inference_only(layer)


def sandwich(layer, dtype="float32", seed=None):
    """Linear -> Tanh -> layer -> Linear with a softmax cross-entropy.

    The Tanh keeps the first bias's gradient away from 0: a bias right before
    a batch normalisation has an exact zero gradient, which a relative error
    cannot judge.
    """
    return Sequential([Linear(F, F, seed=1), Tanh(), layer, Linear(layer.output_size(F), 3, seed=2)],
                      SoftmaxCrossEntropy(), dtype=dtype, seed=seed)


# -- layers --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LAYER_FACTORIES)
def test_layer_shapes_and_dtype(name, dtype):
    layer = build(name, dtype)
    x = batch(dtype)
    out = layer.forward(x, training=name in LAYER_TRAINING)
    assert out.shape == (N, layer.output_size(F))
    assert out.dtype == np.dtype(dtype)
    grad_out = batch(dtype, seed=2, f=out.shape[1])
    dx = layer.backward(grad_out)
    assert dx.shape == x.shape and dx.dtype == np.dtype(dtype)
    for pname, p, g in layer.named_parameters():
        assert p.dtype == np.dtype(dtype), pname
        assert g.shape == p.shape and g.dtype == np.dtype(dtype), pname
    for bname in layer.buffers:
        assert getattr(layer, bname).dtype == np.dtype(dtype), bname
    assert layer.n_params() == sum(p.size for _, p, _ in layer.named_parameters())


@pytest.mark.parametrize("name", LAYER_FACTORIES)
def test_layer_gradients_match_finite_differences(name):
    layer = checked(name, build(name))
    errors = gradcheck(layer, batch("float64"), eps=EPS)
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("name", LAYER_FACTORIES)
def test_layer_gradients_inside_a_network(name):
    net = sandwich(checked(name, build(name)), dtype="float64", seed=3)
    x = batch("float64")
    y = np.array([0, 1, 2, 2, 1, 0])
    errors = gradcheck(net, x, y, eps=EPS)
    assert max(errors.values()) < TOL, errors
    assert set(errors) == {"input"} | set(net.parameters())


@pytest.mark.parametrize("name", LAYER_FACTORIES)
def test_layer_same_seed_same_numbers(name):
    training = name in LAYER_TRAINING
    x = batch("float32")
    a, b = build(name, "float32", seed=7), build(name, "float32", seed=7)
    np.testing.assert_array_equal(a.forward(x, training), b.forward(x, training))
    # ... and inside networks with the same seed, over a few training steps
    nets = [sandwich(build(name, "float32", seed=7), seed=11) for _ in range(2)]
    y = np.array([0, 1, 2, 0, 1, 0])
    losses = [[net.train_step(x, y, 0.1) for _ in range(3)] for net in nets]
    assert losses[0] == losses[1]
    for (_, p, _), (_, q, _) in zip(nets[0].named_parameters(), nets[1].named_parameters()):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("name", LAYER_FACTORIES)
def test_layer_bad_input_names_the_layer(name):
    layer = build(name, "float32")
    Sequential([layer])  # names it "layers.0"
    bad = [np.zeros((N, F, 2), dtype=np.float32)]  # 3-D: not a batch of rows
    if hasattr(layer, "in_features") or hasattr(layer, "num_features"):
        bad.append(np.zeros((N, F + 2), dtype=np.float32))  # wrong width
    for x in bad:
        with pytest.raises(ValueError) as err:
            layer.forward(x, training=name in LAYER_TRAINING)
        message = str(err.value)
        assert type(layer).__name__ in message and layer.name in message, message
        assert str(x.shape) in message, message


@pytest.mark.parametrize("name", LAYER_FACTORIES)
def test_layer_backward_refuses_a_gradient_of_the_wrong_shape(name):
    layer = build(name, "float32")
    Sequential([layer])
    with pytest.raises(RuntimeError, match="call forward first") as err:
        layer.backward(batch("float32"))
    assert layer.name in str(err.value)
    out = layer.forward(batch("float32"), training=name in LAYER_TRAINING)
    for shape in [(1, out.shape[1]), (N, 1), (N + 1, out.shape[1])]:
        with pytest.raises(ValueError) as err:
            layer.backward(np.ones(shape, dtype=np.float32))  # would broadcast, or fail inside NumPy
        message = str(err.value)
        assert layer.name in message and str(out.shape) in message and str(shape) in message, message


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LAYER_FACTORIES)
def test_layer_rebuilds_from_config(name, dtype):
    layer = build(name, dtype)
    config = layer.config()
    assert json.loads(json.dumps(config)) == config
    clone = type(layer)(**config).astype(dtype)
    for attr in layer.params + layer.buffers:
        setattr(clone, attr, getattr(layer, attr).copy())
    assert repr(clone) == repr(layer)
    assert clone.params == layer.params and clone.buffers == layer.buffers
    for obj in (layer, clone):
        if obj.uses_rng:
            obj.rng = np.random.default_rng(0)
    training = name in LAYER_TRAINING
    x = batch(dtype)
    np.testing.assert_array_equal(clone.forward(x, training), layer.forward(x, training))


# -- losses --------------------------------------------------------------------


def make_loss(name, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    loss, k, y = LOSS_FACTORIES[name](N, rng)
    z = (3 * rng.standard_normal((N, k))).astype(dtype)
    return loss, z, y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LOSS_FACTORIES)
def test_loss_value_gradient_shape_and_dtype(name, dtype):
    loss, z, y = make_loss(name, dtype)
    value = loss.forward(z, y)
    assert isinstance(value, float) and np.isfinite(value)
    grad = loss.backward()
    assert grad.shape == z.shape and grad.dtype == np.dtype(dtype)
    pred = loss.predict(z)
    assert len(pred) == N
    if loss.is_classifier:
        assert pred.dtype.kind == "i"
        proba = loss.proba(z)
        assert proba.dtype == np.dtype(dtype) and len(proba) == N
        assert ((proba >= 0) & (proba <= 1)).all()


@pytest.mark.parametrize("name", LOSS_FACTORIES)
def test_loss_gradients_match_finite_differences(name):
    loss, z, y = make_loss(name)
    net = Sequential([Linear(4, z.shape[1], seed=1)], loss, dtype="float64")
    errors = gradcheck(net, batch("float64", f=4), y, eps=EPS)
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("name", LOSS_FACTORIES)
def test_loss_same_seed_same_numbers(name):
    results = []
    for _ in range(2):
        loss, z, y = make_loss(name, "float32", seed=4)
        net = Sequential([Linear(F, 8, seed=5), build("Dropout"), Linear(8, z.shape[1], seed=6)],
                         loss, seed=9)
        results.append([net.train_step(batch("float32"), y, 0.05) for _ in range(3)])
    assert results[0] == results[1]


@pytest.mark.parametrize("name", LOSS_FACTORIES)
def test_loss_bad_input_names_the_loss(name):
    loss, z, y = make_loss(name)
    cls = type(loss).__name__
    with pytest.raises(ValueError, match=cls):
        loss.forward(z, np.asarray(y)[:-1])  # one target short
    with pytest.raises(ValueError, match=cls):
        loss.forward(z[:, 0], y)  # outputs not 2-D
    with pytest.raises(TypeError, match=cls):
        loss.forward(z.astype(np.int64), y)


@pytest.mark.parametrize("name", LOSS_FACTORIES)
def test_loss_backward_before_forward_is_refused(name):
    loss, _, _ = LOSS_FACTORIES[name](N, np.random.default_rng(0))
    with pytest.raises(RuntimeError, match=f"{type(loss).__name__}.backward.*forward"):
        loss.backward()


@pytest.mark.parametrize("name", LOSS_FACTORIES)
def test_loss_rebuilds_from_config(name):
    loss, z, y = make_loss(name)
    config = loss.config()
    assert json.loads(json.dumps(config)) == config
    clone = type(loss)(**config)
    assert repr(clone) == repr(loss)
    assert clone.forward(z, y) == loss.forward(z, y)
    np.testing.assert_array_equal(clone.backward(), loss.backward())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["Sigmoid", "Tanh", "GELU", "GELU[tanh]", "Softmax", "LeakyReLU"])
def test_activation_saturates_without_overflow_or_warning(name, dtype):
    # Underflow to 0 in a far tail is the right answer; overflow or NaN is not.
    layer = build(name, dtype)
    x = np.array([[1e4, -1e4, 0.0, 30.0, -30.0]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = layer.forward(x)
        dx = layer.backward(np.ones_like(out))
    assert np.isfinite(out).all() and np.isfinite(dx).all()
    if name == "Sigmoid":
        assert out[0, :3].tolist() == [1.0, 0.0, 0.5]
    if name == "Tanh":
        assert out[0, :3].tolist() == [1.0, -1.0, 0.0]

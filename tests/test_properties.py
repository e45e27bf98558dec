"""Property-based tests over random architectures, batch sizes and dtypes.

Hypothesis draws the architecture and a seed; the numbers themselves come from
NumPy generators seeded with it, so shrinking never walks inputs onto the
kinks of ReLU where finite differences are meaningless.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flexnet
from flexnet import ModelFileError, Network
from flexnet.files.model_file import describe

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

ACTIVATIONS = ["relu", "leaky_relu", "tanh", "sigmoid", "gelu"]


@st.composite
def networks(draw, dtypes=("float32", "float64")):
    """A random Network, a batch for it and targets."""
    norm = draw(st.sampled_from(["none", "batchnorm", "layernorm"]))
    # LayerNorm over one feature outputs a constant, which sits on ReLU's kink.
    smallest = 2 if norm == "layernorm" else 1
    sizes = [draw(st.integers(1, 6))] + draw(st.lists(st.integers(smallest, 6), max_size=2))
    sizes.append(draw(st.integers(2, 4)))  # classes
    net = Network(
        sizes,
        activation=draw(st.sampled_from(ACTIVATIONS)),
        dropout=draw(st.sampled_from([0.0, 0.3])),
        batchnorm=norm == "batchnorm",
        layernorm=norm == "layernorm",
        dtype=draw(st.sampled_from(dtypes)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )
    n = draw(st.integers(2, 9))  # BatchNorm needs two rows to have a variance
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    for layer in net.layers:
        # Nonzero biases and shifts: behind a dead unit a zero bias puts the next ReLU
        # exactly on its kink, where no finite difference agrees with anything. Batch
        # norm of a constant column (every row's unit dropped) outputs its shift alone.
        if isinstance(layer, flexnet.Linear):
            layer.b[...] = rng.uniform(-0.5, 0.5, layer.b.shape)
        elif isinstance(layer, (flexnet.BatchNorm1d, flexnet.LayerNorm)) and "beta" in layer.params:
            layer.beta[...] = rng.choice([-1, 1], layer.beta.shape) * rng.uniform(0.1, 0.5, layer.beta.shape)
    x = rng.standard_normal((n, sizes[0]))
    y = rng.integers(0, sizes[-1], n)
    return net, x, y


@SETTINGS
@given(networks())
def test_forward_backward_shapes_and_dtypes(case):
    net, x, y = case
    z = net.forward(x, training=True)
    assert z.shape == (len(x), net.layer_sizes[-1]) and z.dtype == net.dtype
    loss = net.loss_fn.forward(z, y)
    assert np.isfinite(loss)
    dx = net.backward(input_grad=True)
    assert dx.shape == x.shape and dx.dtype == net.dtype
    for name, p, g in net.named_parameters():
        assert g is not None, name
        assert g.shape == p.shape and g.dtype == p.dtype == net.dtype, name
    for name, buf in net.named_buffers():
        assert buf.dtype == net.dtype, name


@settings(max_examples=15, deadline=None)
@given(networks(dtypes=("float64",)))
def test_gradients_match_finite_differences(case):
    net, x, y = case
    report = flexnet.gradcheck(net, x, y, eps=1e-5, max_checks=8)
    # Random architectures put units near a ReLU kink (where a step of eps
    # crosses it) and make whole layers' gradients vanish; errors there reach
    # about 1e-4 with this eps. A wrong backward gives errors near 1.
    assert max(report.values()) < 1e-3, str(report)


@SETTINGS
@given(case=networks())
def test_save_load_round_trip_gives_identical_predictions(tmp_path, case):
    net, x, y = case
    net.forward(x, training=True)  # move BatchNorm's running statistics off their defaults
    path = tmp_path / "m.npz"
    net.save(path)
    back = flexnet.load(path)
    assert repr(back) == repr(net) and back.dtype == net.dtype
    np.testing.assert_array_equal(back.forward(x), net.forward(x))
    np.testing.assert_array_equal(back.predict_proba(x), net.predict_proba(x))


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    """A saved model with metadata, as bytes."""
    net = Network([4, 3, 2], batchnorm=True, seed=0)
    net.metadata = {"class_names": ["no", "yes"], "scaler": {"mean": np.zeros(4), "std": np.ones(4)}}
    path = tmp_path_factory.mktemp("fuzz") / "m.npz"
    net.save(path)
    return path.read_bytes()


def _load_or_refuse(path):
    """Load ``path``; the only error allowed is ModelFileError."""
    try:
        net = flexnet.load(path)
    except ModelFileError as exc:
        assert str(path) in str(exc)
        return None
    net.forward(np.zeros((1, 4)))  # whatever loads, works
    assert "format: flexnet-" in describe(path)  # and `flexnet info` can describe it
    return net


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=4))
def test_fuzzed_files_load_or_raise_model_file_error(tmp_path, model_bytes, flips):
    data = bytearray(model_bytes)
    for at, xor in flips:
        data[at % len(data)] ^= xor
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(bytes(data))
    _load_or_refuse(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)), min_size=1, max_size=3))
def test_fuzzed_headers_with_valid_checksums_load_or_raise_model_file_error(tmp_path, model_bytes, flips):
    # Flipped bytes inside the zip mostly fail its CRC; rewriting the archive
    # around a damaged header gets the damage past the CRC to the JSON checks.
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(model_bytes)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    text = bytearray(members["__header__.json"])
    for at, byte in flips:
        text[at % len(text)] = byte
    members["__header__.json"] = bytes(text)
    path = tmp_path / "header.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    _load_or_refuse(path)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(value, path=()):
    """Every place in a JSON value: the paths of all dict entries and list items."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, path + (i,))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_header_values_replaced_at_random_load_or_raise_model_file_error(tmp_path, model_bytes, data):
    import io
    import json
    import zipfile

    with zipfile.ZipFile(io.BytesIO(model_bytes)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    header = json.loads(members["__header__.json"])
    places = [p for p in _paths(header) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        *parents, last = data.draw(st.sampled_from(places))
        target = header
        try:
            for key in parents:
                target = target[key]
            target[last] = data.draw(JSON)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier replacement removed this place
    members["__header__.json"] = json.dumps(header).encode()
    path = tmp_path / "header.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    _load_or_refuse(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10**9))
def test_truncated_files_raise_model_file_error(tmp_path, model_bytes, cut):
    path = tmp_path / "cut.npz"
    path.write_bytes(model_bytes[: cut % len(model_bytes)])
    with pytest.raises(ModelFileError):
        flexnet.load(path)


# -- checkpoints with a fuzzed training state ------------------------------------------

_JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats(allow_nan=False)
                     | st.text(max_size=5), lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from flexnet.files.archive import read_archive

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)).astype("float32"), np.arange(40) % 2
    path = tmp_path_factory.mktemp("ckpt") / "c.npz"
    flexnet.fit(Network([4, 6, 2], dropout=0.2, seed=1), X, y, epochs=2, batch_size=8, optimizer="adam",
                validation_split=0.25, seed=2, checkpoint=path)
    header, arrays = read_archive(path)
    header.pop("arrays")
    return X, y, header, arrays


@SETTINGS
@given(data=st.data())
def test_resume_from_a_fuzzed_checkpoint_refuses_cleanly_and_changes_nothing(checkpoint, tmp_path, data):
    """Any value in any field of the training state: a ModelFileError or a resumed run,
    never another exception, and never a half-restored network."""
    import copy

    from flexnet.files.archive import write_archive

    X, y, header, arrays = checkpoint
    header = copy.deepcopy(header)
    key = data.draw(st.sampled_from(sorted(header["training"])))
    header["training"][key] = data.draw(_JSON)
    path = tmp_path / "fuzzed.npz"
    write_archive(path, header, arrays)
    net = Network([4, 6, 2], dropout=0.2, seed=1)
    before = {k: v.copy() for k, v in net.parameters().items()}
    try:
        flexnet.fit(net, X, y, epochs=3, batch_size=8, optimizer="adam", validation_split=0.25, seed=2,
                    resume=path)
    except ModelFileError:
        for k, v in net.parameters().items():
            np.testing.assert_array_equal(v, before[k])

"""Linear(bias=False), Network(batchnorm=True, bias=False), and the batch count every
BatchNorm1d keeps (num_batches_tracked): computed, saved, loaded and resumed."""

import json
import zipfile

import numpy as np
import pytest

import flexnet
from flexnet import BatchNorm1d, Linear, Network, Sequential
from flexnet.files.archive import read_archive


def _data(n=96, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = (rng.normal(0, 2, (classes, features))[y] + rng.normal(size=(n, features))).astype(np.float32)
    return X, y


# -- Linear(bias=False) ---------------------------------------------------------------


def test_linear_without_bias_computes_x_at_w_and_has_one_parameter():
    layer = Linear(4, 3, seed=0, bias=False)
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_array_equal(layer.forward(x), x @ layer.W)
    assert layer.params == ("W",) and layer.b is None and layer.n_params() == 12
    assert layer.config() == {"in_features": 4, "out_features": 3, "bias": False}
    assert repr(layer) == "Linear(4 -> 3, bias=False)"
    dz = np.ones((5, 3), np.float32)
    dx = layer.backward(dz)
    np.testing.assert_allclose(layer.dW, x.T @ dz, rtol=1e-6)
    np.testing.assert_allclose(dx, dz @ layer.W.T, rtol=1e-6)
    assert [name for name, _, _ in layer.named_parameters()] == ["W"]
    w = layer.W.copy()
    layer.update(0.1)
    np.testing.assert_allclose(layer.W, w - 0.1 * layer.dW, rtol=1e-6)
    # with a bias the config stays as files of old wrote it
    assert Linear(4, 3).config() == {"in_features": 4, "out_features": 3}
    assert Linear(4, 3).params == ("W", "b")


def test_linear_without_bias_passes_gradcheck_alone_and_in_a_network():
    x, y = _data(8)
    report = flexnet.gradcheck(Linear(5, 3, seed=0, bias=False), x.astype(np.float64))
    assert set(report) == {"W", "input"} and max(report.values()) < 1e-6
    net = Sequential([Linear(5, 6, seed=1, bias=False), BatchNorm1d(6), flexnet.Tanh(), Linear(6, 3, seed=2)])
    report = flexnet.gradcheck(net, x, y)
    assert "layers.0.b" not in report and max(report.values()) < 1e-6, report


def test_linear_without_bias_casts_and_trains_with_every_optimizer():
    X, y = _data()
    for opt in ("sgd", "adam", "adamw", "rmsprop", "adagrad"):
        net = Sequential([Linear(5, 8, seed=0, bias=False), flexnet.ReLU(), Linear(8, 3, seed=1)], dtype="float64")
        assert net.layers[0].W.dtype == np.float64 and net.layers[0].b is None
        history = flexnet.fit(net, X, y, epochs=3, batch_size=16, optimizer=opt, lr=0.01, seed=0)
        assert history.history["loss"][-1] < history.history["loss"][0], opt
        assert net.layers[0].b is None


# -- Network(batchnorm=True, bias=False) ----------------------------------------------


def test_network_bias_false_drops_only_the_biases_before_batchnorm():
    net = Network([5, 8, 6, 3], batchnorm=True, bias=False, seed=0)
    linears = [layer for layer in net.layers if isinstance(layer, Linear)]
    assert [layer.b is None for layer in linears] == [True, True, False]  # the output layer keeps its bias
    assert net.n_params() == 5 * 8 + 16 + 8 * 6 + 12 + 6 * 3 + 3
    assert repr(net) == "Network([5, 8, 6, 3], batchnorm=True, bias=False, dtype='float32')"
    # the same weights as with biases: a bias draws no random numbers
    with_bias = Network([5, 8, 6, 3], batchnorm=True, seed=0)
    for a, b in zip(linears, [layer for layer in with_bias.layers if isinstance(layer, Linear)]):
        np.testing.assert_array_equal(a.W, b.W)
    # by default every Linear has a bias, as in every file written before
    assert all(layer.b is not None for layer in with_bias.layers if isinstance(layer, Linear))
    assert "bias" not in with_bias.options


def test_network_bias_false_needs_batchnorm():
    with pytest.raises(ValueError, match=r"bias=False.*needs batchnorm=True"):
        Network([5, 8, 3], bias=False)
    with pytest.raises(ValueError, match=r"needs batchnorm=True"):
        Network([5, 8, 3], layernorm=True, bias=False)


def test_networks_without_bias_save_load_and_resume(tmp_path):
    X, y = _data()
    net = Network([5, 8, 3], batchnorm=True, bias=False, dropout=0.1, seed=0)
    flexnet.fit(net, X, y, epochs=2, batch_size=16, optimizer="adam", lr=0.01, seed=1)
    net.save(tmp_path / "m.npz")
    header, arrays = read_archive(tmp_path / "m.npz")
    assert "layers.0.b" not in arrays and header["model"]["options"]["bias"] is False
    assert header["model"]["layers"][0]["config"] == {"in_features": 5, "out_features": 8, "bias": False}
    back = flexnet.load(tmp_path / "m.npz")
    assert type(back).__name__ == "Network" and repr(back) == repr(net)
    np.testing.assert_array_equal(back.forward(X), net.forward(X))

    # a checkpointed run resumes to the weights of the run in one go
    def run(epochs, **kw):
        net = Network([5, 8, 3], batchnorm=True, bias=False, seed=0)
        flexnet.fit(net, X, y, epochs=epochs, batch_size=16, optimizer="adam", lr=0.01, seed=1, **kw)
        return net

    whole = run(4)
    run(2, checkpoint=tmp_path / "c.npz")
    resumed = run(4, resume=tmp_path / "c.npz")
    for (name, a), b in zip({**whole.parameters(), **dict(whole.named_buffers())}.items(),
                            {**resumed.parameters(), **dict(resumed.named_buffers())}.values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    # a checkpoint of a network with biases is not resumed into one without
    with pytest.raises(flexnet.ModelFileError, match="another architecture"):
        Network([5, 8, 3], batchnorm=True, seed=0).fit(X, y, epochs=4, batch_size=16, optimizer="adam",
                                                        lr=0.01, seed=1, resume=tmp_path / "c.npz")


# -- the batch count of BatchNorm1d -------------------------------------------------


@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0, 0.0, None])
def test_batchnorm_counts_training_batches_only(momentum):
    layer = BatchNorm1d(4, momentum=momentum)
    assert "num_batches_tracked" in layer.buffers and layer.num_batches_tracked == 0
    rng = np.random.default_rng(0)
    for _ in range(7):
        layer.forward(rng.normal(size=(6, 4)), training=True)
    layer.forward(rng.normal(size=(6, 4)))  # inference counts nothing
    assert layer.num_batches_tracked == 7 and layer.num_batches_tracked.dtype == np.float32


def test_a_network_trained_for_ten_batches_counts_ten_and_saves_it(tmp_path):
    X, y = _data(80)
    net = Network([5, 8, 6, 3], batchnorm=True, seed=0)
    flexnet.fit(net, X, y, epochs=2, batch_size=16, seed=0)  # 5 batches an epoch
    counts = [layer.num_batches_tracked for layer in net.layers if isinstance(layer, BatchNorm1d)]
    assert counts == [10, 10]
    net.save(tmp_path / "m.npz")
    _, arrays = read_archive(tmp_path / "m.npz")
    assert arrays["layers.1.num_batches_tracked"] == 10 and arrays["layers.1.num_batches_tracked"].shape == ()
    back = flexnet.load(tmp_path / "m.npz")
    assert back.layers[1].num_batches_tracked == 10
    flexnet.fit(back, X, y, epochs=1, batch_size=16, seed=0)
    assert back.layers[1].num_batches_tracked == 15


def _without_counts(src, dst):
    """``src`` as a flexnet from before the count wrote it: no count for a layer with a momentum."""
    with zipfile.ZipFile(src) as zf:
        raw = {name: zf.read(name) for name in zf.namelist()}
    header = json.loads(raw["__header__.json"])
    gone = [name for name in header["arrays"] if name.endswith("num_batches_tracked")]
    for name in gone:
        del header["arrays"][name]
    raw["__header__.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in raw.items():
            if not any(name.startswith(g) for g in gone):
                zf.writestr(name, data)
    return dst


def test_a_file_written_before_the_count_loads_as_written(tmp_path):
    X, y = _data()
    net = Network([5, 8, 3], batchnorm=True, seed=0)
    flexnet.fit(net, X, y, epochs=1, batch_size=16, seed=0)
    net.save(tmp_path / "new.npz")
    old = _without_counts(tmp_path / "new.npz", tmp_path / "old.npz")
    back = flexnet.load(old)
    assert back.layers[1].buffers == ("running_mean", "running_var")
    np.testing.assert_array_equal(back.forward(X), net.forward(X))
    back.save(tmp_path / "again.npz")  # the same arrays again, no count added
    assert set(read_archive(tmp_path / "again.npz")[1]) == set(read_archive(old)[1])
    flexnet.fit(back, X, y, epochs=1, batch_size=16, seed=0)  # trains on, counting nothing
    assert back.layers[1].buffers == ("running_mean", "running_var")


def test_a_cumulative_average_without_its_count_is_refused(tmp_path):
    # momentum=None weighs batch t by 1/t: its files always held the count
    X, y = _data()
    net = Sequential([Linear(5, 4, seed=0), BatchNorm1d(4, momentum=None), Linear(4, 3, seed=1)])
    flexnet.fit(net, X, y, epochs=1, batch_size=16, seed=0)
    net.save(tmp_path / "new.npz")
    with pytest.raises(flexnet.ModelFileError, match="missing array 'layers.1.num_batches_tracked'"):
        flexnet.load(_without_counts(tmp_path / "new.npz", tmp_path / "old.npz"))


def test_a_checkpoint_written_before_the_count_resumes_exactly(tmp_path):
    X, y = _data()

    def run(epochs, **kw):
        net = Network([5, 8, 3], batchnorm=True, seed=0)
        flexnet.fit(net, X, y, epochs=epochs, batch_size=16, optimizer="adam", lr=0.01, seed=1, **kw)
        return net

    whole = run(4)
    run(2, checkpoint=tmp_path / "c.npz")
    _without_counts(tmp_path / "c.npz", tmp_path / "old.npz")
    resumed = run(4, resume=tmp_path / "old.npz")
    assert resumed.layers[1].buffers == ("running_mean", "running_var")  # as the checkpoint was written
    for name, p in whole.parameters().items():
        np.testing.assert_array_equal(resumed.parameters()[name], p, err_msg=name)
    np.testing.assert_array_equal(resumed.layers[1].running_mean, whole.layers[1].running_mean)
    assert whole.layers[1].num_batches_tracked == 4 * 6


@pytest.mark.parametrize("value", ["no", 0, 1, None, "False"])
def test_batchnorm_affine_takes_true_or_false_only(value):
    with pytest.raises(TypeError, match=r"BatchNorm1d\(affine\): expected True or False"):
        flexnet.BatchNorm1d(4, affine=value)
    assert flexnet.BatchNorm1d(4, affine=np.bool_(False)).affine is False

"""net.trace: one batch forward and back, layer by layer, leaving the network as it was;
and ``flexnet trace`` on the command line."""

import json
import subprocess
import sys

import numpy as np
import pytest

import flexnet
from flexnet import Linear, ReLU, Sequential
from flexnet.training.trace import Trace


def _data(n=32, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)
    return x, y % classes


def _state(net):
    """Everything a trace must leave alone: weights, gradients, buffers, every array a
    layer keeps, and the state of every generator."""
    arrays = {}
    for i, layer in enumerate(net.layers):
        for k, v in vars(layer).items():
            if isinstance(v, np.ndarray):
                arrays[f"{i}.{k}"] = v.copy()
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                arrays[f"{i}.{k}"] = v
    rngs = {id(g): g.bit_generator.state for g in [net.rng] + [getattr(layer, "rng", None) for layer in net.layers]
            if isinstance(g, np.random.Generator)}
    loss = {k: v.copy() for k, v in vars(net.loss_fn).items() if isinstance(v, np.ndarray)}
    return arrays, json.dumps(rngs, sort_keys=True, default=str), loss


def _same(a, b):
    assert a[0].keys() == b[0].keys()
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k], err_msg=k)
    assert a[1] == b[1]
    assert a[2].keys() == b[2].keys()
    for k in a[2]:
        np.testing.assert_array_equal(a[2][k], b[2][k], err_msg=k)


def test_rows_hold_shapes_statistics_and_gradients():
    x, y = _data()
    net = flexnet.Network([4, 8, 3], seed=0)
    t = net.trace(x, y, lr=0.1)
    assert isinstance(t, Trace) and len(t) == 3 and [r["layer"] for r in t] == ["0 Linear", "1 ReLU", "2 Linear"]
    assert t[0]["input_shape"] == (32, 4) and t[0]["output_shape"] == (32, 8)
    assert t[1]["input_shape"] == (32, 8) and t[2]["output_shape"] == (32, 3)
    # the numbers are those of the batch, worked out again here
    h = x @ net.layers[0].W + net.layers[0].b
    assert t[0]["mean"] == pytest.approx(float(h.mean()), rel=1e-5)
    assert t[0]["std"] == pytest.approx(float(h.std()), rel=1e-5)
    assert t[0]["min"] == pytest.approx(float(h.min())) and t[0]["max"] == pytest.approx(float(h.max()))
    assert t[1]["zero_fraction"] == pytest.approx(float(np.mean(h <= 0)))
    assert t[1]["dead_fraction"] == pytest.approx(float(np.mean((h <= 0).all(axis=0))))
    assert t[0]["zero_fraction"] is None and t[2]["zero_fraction"] is None
    # gradients: those of a forward and backward done by hand
    ref = flexnet.Network([4, 8, 3], seed=0)
    assert t.loss == pytest.approx(ref.loss_fn.forward(ref.forward(x, training=True), y), rel=1e-6)
    ref.backward()
    for row, layer in zip(t, ref.layers):
        assert set(row["grad_norm"]) == set(layer.params)
        for name in layer.params:
            g, p = getattr(layer, "d" + name), getattr(layer, name)
            assert row["grad_norm"][name] == pytest.approx(float(np.linalg.norm(g)), rel=1e-5)
            assert row["param_norm"][name] == pytest.approx(float(np.linalg.norm(p)), rel=1e-5)
            expected = None if not np.any(p) else 0.1 * np.linalg.norm(g) / np.linalg.norm(p)
            assert row["update_ratio"][name] == (None if expected is None else pytest.approx(expected, rel=1e-5))
    assert t[0]["update_ratio"]["b"] is None  # biases start at 0: no ratio to a zero weight
    assert t[1]["grad_norm"] == {} and t[1]["output_grad_norm"] > 0
    assert t[2]["output_grad_norm"] == pytest.approx(float(np.linalg.norm(ref.loss_fn.backward())), rel=1e-5)


def test_forward_only_without_targets():
    x, _ = _data()
    t = flexnet.Network([4, 8, 3], seed=0).trace(x)
    assert t.loss is None and len(t) == 3
    assert all(r["grad_norm"] is None and r["output_grad_norm"] is None and r["update_ratio"] is None for r in t)
    text = str(t)
    assert "forward only" in text and "grad" not in text.splitlines()[0]


def test_the_network_is_left_exactly_as_it_was():
    """Weights, gradients, batch norm's running statistics and count, the dropout
    generator: all identical after a trace, in training mode and out of it."""
    x, y = _data(64)
    net = flexnet.Network([4, 16, 8, 3], dropout=0.3, batchnorm=True, seed=0)
    net.fit(x, y, epochs=1, batch_size=16, seed=0, progress=False)  # gradients and statistics to keep
    before = _state(net)
    for kwargs in ({}, {"training": False}, {"lr": 0.5}):
        net.trace(x, y, **kwargs)
        net.trace(x)
        _same(before, _state(net))
    # the next training step draws the same dropout masks it would have drawn without a trace
    twin = flexnet.Network([4, 16, 8, 3], dropout=0.3, batchnorm=True, seed=0)
    twin.fit(x, y, epochs=1, batch_size=16, seed=0, progress=False)
    net.fit(x, y, epochs=1, batch_size=16, seed=1, progress=False)
    twin.fit(x, y, epochs=1, batch_size=16, seed=1, progress=False)
    for (name, p, _), (_, q, _) in zip(net.named_parameters(), twin.named_parameters()):
        np.testing.assert_array_equal(p, q, err_msg=name)


def test_training_mode_is_the_default_and_can_be_turned_off():
    x, y = _data()
    net = flexnet.Network([4, 16, 3], dropout=0.5, seed=0)
    on, off = net.trace(x, y), net.trace(x, y, training=False)
    assert on.training and not off.training
    drop = [r for r in on if r["layer"].endswith("Dropout")][0]
    assert drop["zero_fraction"] is None  # zeros are counted after ReLUs only
    assert on[2]["max"] != off[2]["max"]  # dropout scaled the survivors up
    assert off.loss == pytest.approx(net.loss(x, y), rel=1e-6)  # inference mode: the plain loss


def test_plain_data_and_json():
    x, y = _data(8)
    t = flexnet.Network([4, 5, 3], seed=0).trace(x, y, lr=0.01)
    d = t.to_dict()
    assert d["loss"] == t.loss and d["lr"] == 0.01 and d["batch"] == 8 and d["training"] is True
    assert d["rows"][0]["input_shape"] == [8, 4]
    assert json.loads(json.dumps(d)) == d
    assert t.rows is not d["rows"] and t.rows[0]["input_shape"] == (8, 4)


def test_prints_as_a_table_that_fits_100_columns():
    x, y = _data(128, features=20)
    net = flexnet.Network([20, 64, 32, 10], batchnorm=True, dropout=0.1, seed=0)
    text = str(net.trace(x, y, lr=0.01))
    lines = text.splitlines()
    assert max(map(len, lines)) <= 100, text
    assert lines[0].split()[:4] == ["layer", "input", "output", "mean"] and "update" in lines[0]
    assert set(lines[1]) == {"-"}
    assert any(line.startswith("1 BatchNorm1d") for line in lines)
    assert any(line.strip().startswith("beta") for line in lines)  # one line per parameter
    assert "loss " in text and "training mode" in text and "lr=0.01" in text
    assert repr(net.trace(x, y)) == str(net.trace(x, y))  # the REPL shows the table too


def test_renders_as_html():
    x, y = _data(8)
    page = flexnet.Network([4, 5, 3], seed=0).trace(x, y, lr=0.1)._repr_html_()
    assert page.startswith("<table>") and page.count("<tr>") == 1 + 2 + 1 + 2  # header, W/b, ReLU, W/b
    assert "<th>update</th>" in page and "<caption>" in page and "0 Linear" in page


def test_custom_layers_and_sequential():
    class Square(flexnet.Layer):
        def forward(self, x, training=False):
            self.x = x
            return x * x

        def backward(self, grad):  # no input_grad
            return 2 * self.x * grad

    x, y = _data(8)
    net = Sequential([Linear(4, 6, seed=0), Square(), ReLU(), Linear(6, 3, seed=1)])
    t = net.trace(x, y)
    assert [r["layer"] for r in t] == ["0 Linear", "1 Square", "2 ReLU", "3 Linear"]
    assert t[1]["min"] >= 0 and t[0]["grad_norm"]["W"] > 0


@pytest.mark.parametrize("call, error, match", [
    (lambda net, x, y: net.trace(x[0], y), ValueError, "Network.trace expected a 2-D input"),
    (lambda net, x, y: net.trace(x[:, :3], y), ValueError, r"expected input of shape \(batch, 4\)"),
    (lambda net, x, y: net.trace(np.full_like(x, np.nan), y), ValueError, "row 0"),
    (lambda net, x, y: net.trace(x, y, lr=-1), ValueError, r"trace\(lr\)"),
    (lambda net, x, y: net.trace(x, y, lr="big"), TypeError, r"trace\(lr\)"),
    (lambda net, x, y: net.trace(x, y[:3]), ValueError, None),
    (lambda net, x, y: net.trace(x, y + 7), ValueError, None),
    (lambda net, x, y: net.trace(x[:0], y[:0]), ValueError, "empty batch"),
])
def test_bad_input_is_refused_with_the_place(call, error, match):
    x, y = _data(8)
    net = flexnet.Network([4, 5, 3], seed=0)
    before = _state(net)
    with pytest.raises(error, match=match):
        call(net, x, y)
    _same(before, _state(net))


# -- flexnet trace ------------------------------------------------------------------


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "flexnet", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from flexnet.data.datasets import edges

    folder = tmp_path_factory.mktemp("trace")
    X, y = edges(seed=0)
    net = flexnet.Network([25, 12, 2], dropout=0.2, seed=0)
    net.fit(X, y, epochs=2, batch_size=16, seed=0, progress=False)
    net.metadata["dataset"] = "edges"
    net.save(folder / "m.npz")
    return folder


def test_cli_table(model):
    r = _cli("trace", "m.npz", "--data", "edges", "--batch", "8", "--lr", "0.1", cwd=model)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "first 8 rows of edges (train split)" in lines[0]
    assert lines[1].split()[:3] == ["layer", "input", "output"] and "update" in lines[1]
    assert any(line.startswith("0 Linear") and "(8, 25)" in line for line in lines)
    assert max(map(len, lines)) <= 100
    again = _cli("trace", "m.npz", "--batch", "8", "--lr", "0.1", cwd=model)  # the model's data set
    assert again.stdout == r.stdout  # dropout masks come from --seed: a trace repeats


def test_cli_json(model):
    r = _cli("trace", "m.npz", "--batch", "4", "--json", "--split", "test", "--inference", cwd=model)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["batch"] == 4 and d["training"] is False and d["lr"] is None and d["loss"] > 0
    assert [row["layer"] for row in d["rows"]] == ["0 Linear", "1 ReLU", "2 Dropout", "3 Linear"]
    assert d["rows"][0]["input_shape"] == [4, 25] and set(d["rows"][0]["grad_norm"]) == {"W", "b"}


def test_cli_without_labels_is_forward_only(model):
    X = np.random.default_rng(0).random((5, 25))
    np.savez(model / "nolabels.npz", X=X)
    r = _cli("trace", "m.npz", "--data", "nolabels.npz", cwd=model)
    assert r.returncode == 0, r.stderr
    assert "no labels, forward only" in r.stdout and "first 5 rows" in r.stdout


@pytest.mark.parametrize("args, match", [
    (["missing.npz"], "missing.npz"),
    (["m.npz", "--data", "wide.npz"], "takes 25 input features, --data wide.npz has 30"),
    (["m.npz", "--batch", "0"], "--batch"),
    (["m.npz", "--lr", "-1"], "--lr"),
    (["m.npz", "--data", "nolabels.npz", "--split", "test"], "no test split"),
])
def test_cli_errors_exit_2_with_one_line(model, args, match):
    np.savez(model / "nolabels.npz", X=np.zeros((3, 25)))
    np.savez(model / "wide.npz", X=np.zeros((3, 30)), y=np.array([0, 1, 0]))
    r = _cli("trace", *args, cwd=model)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert match in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_cli_help_lists_trace():
    from flexnet.cli.app import build_parser

    assert "trace" in build_parser().format_help()


def test_training_must_be_a_bool():
    net = Sequential([Linear(4, 3)])
    x, y = _data(4)
    with pytest.raises(TypeError, match=r"Sequential.trace\(training\): expected True or False, got 'no'"):
        net.trace(x, y, training="no")


def test_a_gradient_backward_leaves_unset_shows_as_missing_not_stale():
    class Scale(flexnet.Layer):
        params = ("a",)

        def __init__(self):
            super().__init__()
            self.a = np.ones(3, dtype=np.float32)

        def forward(self, x, training=False):
            return x * self.a

        def backward(self, grad):  # forgets to set self.da
            return grad * self.a

    net = Sequential([Linear(4, 3), Scale()])
    x, y = _data(8)
    net.layers[1].da = np.full(3, 5.0, dtype=np.float32)  # a gradient from an earlier step
    row = net.trace(x, y, lr=0.1)[1]
    assert row["grad_norm"] == {"a": None} and row["update_ratio"] == {"a": None}
    assert "nan" not in str(net.trace(x, y, lr=0.1))
    assert net.layers[1].da[0] == 5.0  # the network itself untouched

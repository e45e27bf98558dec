"""ONNX export: onnxruntime gives flexnet's inference outputs for every layer."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from registry import LAYER_FACTORIES, LOSS_FACTORIES

import flexnet
from flexnet import Layer, Linear, Sequential
from flexnet.bridges.onnx_export import EXPORTERS, OPSET, build_onnx
from flexnet.bridges.pytorch import LAYERS

TOL = 1e-5


def run_onnx(path, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # tiny graphs: extra threads only contend
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": x})
    return out


def export(net, tmp_path, **kw):
    path = tmp_path / "model.onnx"
    flexnet.to_onnx(net, path, **kw)
    onnx.checker.check_model(onnx.load(str(path)))
    return path


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", list(LAYER_FACTORIES))
def test_every_layer_runs_in_onnxruntime_as_in_flexnet(case, dtype, tmp_path):
    # Linear -> layer -> Linear, so every layer sits inside a graph.
    rng = np.random.default_rng(0)
    layer = LAYER_FACTORIES[case](6, dtype, 1)
    width = layer.output_size(6)
    net = Sequential([Linear(4, 6, dtype=dtype, seed=rng), layer, Linear(width, 3, dtype=dtype, seed=rng)],
                     dtype=dtype)
    x = rng.normal(0, 2, (11, 4)).astype(dtype)
    out = run_onnx(export(net, tmp_path), x)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, net.forward(x), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("norm", ["none", "batchnorm", "layernorm"])
def test_random_architectures_with_every_activation(norm, dtype, tmp_path):
    from test_torch_bridge import ACTIVATIONS, random_net

    for i, activation in enumerate(ACTIVATIONS):
        net = random_net(100 + i, activation, norm, dtype, dropout=0.3)
        x = np.random.default_rng(i).normal(0, 2, (13, net.in_features)).astype(dtype)
        np.testing.assert_allclose(run_onnx(export(net, tmp_path), x), net.forward(x), rtol=TOL, atol=TOL)


def test_batch_dimension_is_dynamic(tmp_path):
    net = flexnet.Network([5, 8, 3], seed=0)
    path = export(net, tmp_path)
    model = onnx.load(str(path))
    (inp,), (out,) = model.graph.input, model.graph.output
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", 5]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 3]
    assert model.opset_import[0].version == OPSET
    for n in (1, 2, 97):
        x = np.random.default_rng(n).normal(size=(n, 5)).astype(np.float32)
        np.testing.assert_allclose(run_onnx(path, x), net.forward(x), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("case", [c for c in LOSS_FACTORIES if not c.split("[")[0] in ("MSE", "L1", "Huber")])
def test_probabilities_equal_predict_proba(case, tmp_path):
    rng = np.random.default_rng(3)
    loss, n_out, _ = LOSS_FACTORIES[case](4, rng)
    net = Sequential([Linear(5, 7, seed=rng), flexnet.Tanh(), Linear(7, n_out, seed=rng)], loss)
    x = rng.normal(0, 3, (20, 5)).astype(np.float32)
    path = export(net, tmp_path, probabilities=True)
    assert onnx.load(str(path)).graph.output[0].name == "probabilities"
    expected = net.predict_proba(x)
    out = run_onnx(path, x)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=TOL, atol=TOL)


def test_probabilities_refused_for_regression(tmp_path):
    net = Sequential([Linear(3, 1)], flexnet.MSE())
    with pytest.raises(ValueError, match="MSE does not give probabilities"):
        flexnet.to_onnx(net, tmp_path / "m.onnx", probabilities=True)
    assert not (tmp_path / "m.onnx").exists()


def test_dropout_is_left_out_of_the_graph():
    net = Sequential([Linear(3, 4), flexnet.Dropout(0.5), Linear(4, 2)])
    ops = [node.op_type for node in build_onnx(net).graph.node]
    assert "Dropout" not in ops and ops.count("Gemm") == 2


def test_unsupported_layer_is_named_and_no_file_is_written(tmp_path):
    class Square(Layer):
        def forward(self, x, training=False):
            return x * x

    net = Sequential([Linear(3, 4), Square(), Linear(4, 2)])
    with pytest.raises(ValueError, match=r"at layers\.1 \(Square\) has no ONNX exporter"):
        flexnet.to_onnx(net, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_a_lookalike_class_is_not_exported_as_flexnet_s(tmp_path):
    class Tanh(flexnet.Tanh):  # same name, different computation
        def forward(self, z, training=False):
            return 2 * super().forward(z)

    net = Sequential([Linear(3, 4), Tanh(), Linear(4, 2)])
    with pytest.raises(ValueError, match=r"\(Tanh\) has no ONNX exporter"):
        flexnet.to_onnx(net, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=r"\(Tanh\) has no PyTorch equivalent"):
        flexnet.to_torch(net)


def test_every_torch_bridge_layer_has_an_onnx_exporter():
    assert {pair.flexnet for pair in LAYERS} == set(EXPORTERS)


def test_the_parity_registry_covers_every_bridged_layer():
    # A layer added to the bridges but not to tests/registry.py would escape
    # every parity test of PyTorch and ONNX Runtime.
    from registry import LAYER_FACTORIES

    built = {type(make(3, "float32", 0)).__name__ for make in LAYER_FACTORIES.values()}
    assert {pair.flexnet for pair in LAYERS} <= built


def test_cli_export_onnx_from_a_saved_model(tmp_path, capsys):
    from flexnet.cli import main

    net = flexnet.Network([4, 8, 3], batchnorm=True, dropout=0.2, activation="gelu", seed=0)
    flexnet.save(net, tmp_path / "model.npz")
    assert main(["export", str(tmp_path / "model.npz"), "--format", "onnx", "--probabilities"]) == 0
    assert "model.onnx" in capsys.readouterr().out
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    out = run_onnx(tmp_path / "model.onnx", x)  # the default name: MODEL with .onnx
    np.testing.assert_allclose(out, net.predict_proba(x), rtol=TOL, atol=TOL)
    assert main(["export", str(tmp_path / "missing.npz"), "--format", "onnx"]) == 2
    assert "missing.npz" in capsys.readouterr().err


def test_input_width_from_a_norm_layer_or_given(tmp_path):
    net = Sequential([flexnet.LayerNorm(4), flexnet.Tanh(), Linear(4, 2)])
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(export(net, tmp_path), x), net.forward(x), rtol=TOL, atol=TOL)
    only_activations = Sequential([flexnet.Sigmoid()])
    with pytest.raises(ValueError, match="pass in_features="):
        flexnet.to_onnx(only_activations, tmp_path / "m.onnx")
    np.testing.assert_allclose(run_onnx(export(only_activations, tmp_path, in_features=4), x),
                               only_activations.forward(x), rtol=TOL, atol=TOL)


# -- what ONNX Runtime makes of the graph ---------------------------------------------


def optimized_ops(net, tmp_path, **kw):
    """The nodes an ORT_ENABLE_ALL session runs for ``net``'s graph, as ``domain:op`` (ONNX's own: ``op``)."""
    path = export(net, tmp_path, **kw)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3  # no warning about the saved optimised model
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [f"{n.domain}:{n.op_type}" if n.domain else n.op_type
            for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]


@pytest.mark.parametrize("approximate, fused", [("none", "Gelu"), ("tanh", "FastGelu")])
def test_onnxruntime_fuses_each_float32_gelu_into_one_node(approximate, fused, tmp_path):
    net = Sequential([Linear(6, 8, seed=0), flexnet.GELU(approximate), Linear(8, 8, seed=1),
                      flexnet.GELU(approximate), Linear(8, 3, seed=2)])
    written = [node.op_type for node in build_onnx(net).graph.node]
    if approximate == "none":  # torch.onnx's node order
        assert written == ["Gemm", "Div", "Erf", "Add", "Mul", "Mul"] * 2 + ["Gemm"]
    ops = optimized_ops(net, tmp_path)
    assert ops.count(f"com.microsoft:{fused}") == 2, ops
    assert not {"Erf", "Tanh", "Mul", "Div", "Add"} & set(ops), ops
    x = np.random.default_rng(0).normal(0, 3, (9, 6)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(tmp_path / "model.onnx", x), net.forward(x), rtol=TOL, atol=TOL)


def test_a_float64_graph_keeps_its_float32_erf():
    net = Sequential([Linear(3, 4, seed=0), flexnet.GELU(), Linear(4, 2, seed=1)], dtype="float64")
    ops = [node.op_type for node in build_onnx(net).graph.node]
    assert ops == ["Gemm", "Div", "Cast", "Erf", "Cast", "Add", "Mul", "Mul", "Gemm"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bias", [True, False])
def test_batchnorm_is_folded_into_the_linear_beside_it(bias, dtype, tmp_path):
    rng = np.random.default_rng(0)
    net = flexnet.Network([5, 8, 6, 3], batchnorm=True, bias=bias, dropout=0.2, dtype=dtype, seed=0)
    x = rng.normal(0, 2, (64, 5)).astype(dtype)
    flexnet.fit(net, x, np.arange(64) % 3, epochs=3, batch_size=16, seed=0)  # statistics that are not 0 and 1
    assert [node.op_type for node in build_onnx(net).graph.node] == ["Gemm", "Relu", "Gemm", "Relu", "Gemm"]
    if dtype == "float32":
        assert optimized_ops(net, tmp_path) == ["com.microsoft:FusedGemm"] * 2 + ["Gemm"]
    np.testing.assert_allclose(run_onnx(export(net, tmp_path), x), net.forward(x), rtol=TOL, atol=TOL)
    # batch norm after the activation goes into the Linear after it
    after = Sequential([Linear(5, 6, seed=1, dtype=dtype), flexnet.Tanh(),
                        LAYER_FACTORIES["BatchNorm1d[eval]"](6, dtype, 2), Linear(6, 3, seed=3, dtype=dtype)])
    assert [node.op_type for node in build_onnx(after).graph.node] == ["Gemm", "Tanh", "Gemm"]
    np.testing.assert_allclose(run_onnx(export(after, tmp_path), x), after.forward(x), rtol=TOL, atol=TOL)
    # with no Linear beside it, a multiply and an add
    alone = Sequential([flexnet.LayerNorm(5), LAYER_FACTORIES["BatchNorm1d[eval]"](5, dtype, 2)], dtype=dtype)
    assert [node.op_type for node in build_onnx(alone).graph.node] == ["LayerNormalization", "Mul", "Add"]
    np.testing.assert_allclose(run_onnx(export(alone, tmp_path), x), alone.forward(x), rtol=TOL, atol=TOL)


def test_every_float32_pattern_runs_fused_or_as_one_onnx_op(tmp_path):
    net = Sequential([Linear(6, 8, seed=0), flexnet.ReLU(), Linear(8, 8, seed=1), flexnet.Sigmoid(),
                      Linear(8, 8, seed=2), flexnet.LeakyReLU(0.1), Linear(8, 8, seed=3), flexnet.LayerNorm(8),
                      flexnet.Tanh(), Linear(8, 3, seed=4)])
    ops = optimized_ops(net, tmp_path, probabilities=True)
    assert ops == ["com.microsoft:FusedGemm"] * 3 + ["Gemm", "LayerNormalization", "Tanh", "Gemm", "Softmax"], ops


def test_producer_and_no_trailing_identity(tmp_path):
    from flexnet.version import __version__

    net = flexnet.Network([4, 5, 3], dropout=0.5, seed=0)
    for kw, name in [({}, "output"), ({"probabilities": True}, "probabilities")]:
        model = onnx.load(str(export(net, tmp_path, **kw)))
        assert model.producer_name == "flexnet" and model.producer_version == __version__
        assert "Identity" not in [node.op_type for node in model.graph.node]
        assert [o.name for o in model.graph.output] == [name] and model.graph.node[-1].output == [name]
    # a graph of identities only still has a node that writes its output
    only = Sequential([flexnet.Dropout(0.5)])
    model = build_onnx(only, in_features=3)
    assert [node.op_type for node in model.graph.node] == ["Identity"]
    x = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    np.testing.assert_array_equal(run_onnx(export(only, tmp_path, in_features=3), x), x)


def test_the_gelu_benchmark_runs_and_shows_the_fused_nodes():
    import os
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "onnx_gelu.py")
    proc = subprocess.run([sys.executable, script, "--sizes", "16,8,3", "--batches", "1,4", "--runs", "3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("| none", "| tanh"))]
    assert len(rows) == 4, proc.stdout
    assert all("-> Gemm Gelu Gemm |" in row for row in rows[:2]), rows
    assert all("-> Gemm FastGelu Gemm |" in row for row in rows[2:]), rows

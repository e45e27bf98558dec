"""The same network on other array libraries, through the Array API standard.

Parity with NumPy in float64 through ``array_api_strict`` (which refuses every
call outside the standard, so a non-standard call in a layer, a loss or an
optimizer fails here) and through PyTorch CPU tensors; model files that load
on every backend; ``import flexnet`` loading none of these libraries. The GPU
test is the only one that may skip: it needs CUDA.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import flexnet
from flexnet import ops, optim

pytest.importorskip("array_api_compat")  # in the test extra: CI always has it
BACKENDS = ["array_api_strict", "torch"]

rng = np.random.default_rng(0)
X = rng.normal(size=(160, 8))
Y = (X[:, 0] + X[:, 1] - X[:, 2] > 0).astype(np.int64) + (X[:, 3] > 0.5)  # 3 classes
T = np.stack([X[:, 0] * X[:, 1], X[:, 2] - X[:, 3]], axis=1)  # regression targets


def _state(net) -> dict[str, np.ndarray]:
    arrays = {name: p for name, p, _ in net.named_parameters()}
    arrays.update(net.named_buffers())
    return {name: ops.to_numpy(a) for name, a in arrays.items()}


def _max_diff(a, b) -> float:
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    return max(float(np.abs(sa[k] - sb[k]).max()) for k in sa)


# Batch norm after a Linear without bias (Network(bias=False)): a bias there has a
# gradient of exactly zero, so Adam, which divides by the gradient's size, would
# amplify rounding noise in it to the size of a step, in NumPy as in any library.
CASES = {
    "sgd": dict(optimizer="sgd", lr=0.1, bias=True),
    "sgd-momentum": dict(optimizer=optim.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3), bias=False),
    "adam": dict(optimizer="adam", lr=0.01, bias=False),
    "adamw": dict(optimizer=optim.AdamW(0.01, amsgrad=True), bias=False),
    "rmsprop": dict(optimizer=optim.RMSprop(0.01, momentum=0.5, centered=True), bias=False),
    "adagrad": dict(optimizer=optim.Adagrad(0.05, l1=1e-4), bias=False),
}


def _fit(backend, case, **net_kw):
    case = dict(CASES[case])
    bias, optimizer = case.pop("bias"), case.pop("optimizer")
    if isinstance(optimizer, optim.Optimizer):
        optimizer = type(optimizer)(**optimizer.config())  # a fresh one per run
    net = flexnet.Network([8, 16, 12, 3], dtype="float64", seed=3, dropout=0.25, batchnorm=True, bias=bias,
                          backend=backend, **net_kw)
    # 160 rows in batches of 16: 20 steps, a validation split each epoch, dropout and running statistics
    history = net.fit(X, Y, epochs=2, batch_size=16, optimizer=optimizer, seed=1, progress=False,
                      validation_split=0.2, **case)
    return net, history


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_twenty_steps_equal_numpys_within_1e_10(backend, case):
    ref, ref_history = _fit("numpy", case)
    net, history = _fit(backend, case)
    assert net.backend == backend
    assert all(ops.name_of(p) == backend for _, p, _ in net.named_parameters())
    assert _max_diff(ref, net) < 1e-10
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert np.allclose(history.history[key], ref_history.history[key], rtol=0, atol=1e-10), key


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "leaky_relu"])
def test_other_activations_layernorm_and_regression_losses(backend, activation):
    for loss in ("mse", "huber", "l1"):
        nets = [flexnet.Network([8, 10, 2], activation=activation, layernorm=True, loss=loss, dtype="float64",
                                seed=2, backend=b) for b in ("numpy", backend)]
        for net in nets:
            net.fit(X, T, epochs=1, batch_size=8, optimizer="adam", lr=0.01, seed=4, progress=False)
        assert _max_diff(*nets) < 1e-10, loss
        assert np.abs(nets[0].predict(X) - nets[1].predict(X)).max() < 1e-10


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_evaluate_and_train_step_take_and_give_numpy(backend):
    ref = flexnet.Network([8, 6, 3], dtype="float64", seed=5)
    net = flexnet.Network([8, 6, 3], dtype="float64", seed=5, backend=backend)
    for n in (ref, net):
        n.train_step(X[:32], Y[:32], 0.1)
    assert _max_diff(ref, net) < 1e-12
    for method in ("predict", "predict_proba"):
        got = getattr(net, method)(X)
        assert isinstance(got, np.ndarray)
        assert np.abs(got - getattr(ref, method)(X)).max() < 1e-12
    assert (net.predict(X) == ref.predict(X)).all()
    got, want = flexnet.evaluate(net, X, Y), flexnet.evaluate(ref, X, Y)
    assert got.keys() == want.keys() and all(np.allclose(got[k], want[k], rtol=0, atol=1e-12) for k in got)
    assert abs(net.loss(X, Y) - ref.loss(X, Y)) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_model_file_is_the_same_whatever_library_trained_the_network(backend, tmp_path):
    net, _ = _fit(backend, "adam")
    net.save(tmp_path / "m.npz")
    back = net.to("numpy")
    assert back is net and all(type(p) is np.ndarray for _, p, _ in net.named_parameters())
    net.save(tmp_path / "n.npz")
    a, b = flexnet.load(tmp_path / "m.npz"), flexnet.load(tmp_path / "n.npz")
    assert _max_diff(a, b) == 0 and all(type(p) is np.ndarray for _, p, _ in a.named_parameters())
    for other in ("numpy", *BACKENDS):
        loaded = flexnet.load(tmp_path / "m.npz", backend=other)
        assert loaded.backend == other
        assert _max_diff(loaded, a) == 0
        assert np.abs(loaded.predict_proba(X) - a.predict_proba(X)).max() < 1e-12


def test_optimizer_state_moves_to_the_network_and_saves_as_numpy():
    net = flexnet.Network([8, 6, 3], dtype="float64", seed=5, backend="torch")
    opt = optim.Adam(0.01)
    net.fit(X, Y, epochs=1, batch_size=32, optimizer=opt, seed=1, progress=False)
    saved = opt.state_dict()
    assert all(isinstance(v, np.ndarray) for st in saved["state"].values() for k, v in st.items() if k != "step")
    ref = flexnet.Network([8, 6, 3], dtype="float64", seed=5)
    ref_opt = optim.Adam(0.01)
    ref.fit(X, Y, epochs=1, batch_size=32, optimizer=ref_opt, seed=1, progress=False)
    resumed = optim.Adam(0.01)
    resumed.load_state_dict(saved)  # NumPy state driving a torch network: moved at the first step
    for n, o in ((net, resumed), (ref, ref_opt)):
        n.fit(X, Y, epochs=1, batch_size=32, optimizer=o, seed=2, progress=False)
    assert _max_diff(ref, net) < 1e-10


def test_sequential_takes_a_backend_and_moves_back_and_forth():
    layers = [flexnet.Linear(8, 5, dtype="float64", seed=1), flexnet.ReLU(), flexnet.Linear(5, 3, dtype="float64", seed=2)]
    net = flexnet.Sequential(layers, backend="array_api_strict")
    assert ops.name_of(net.layers[0].W) == "array_api_strict"
    z = net.forward(X)
    net.to("torch")
    assert ops.name_of(net.layers[2].b) == "torch"
    assert np.abs(ops.to_numpy(net.forward(X)) - ops.to_numpy(z)).max() < 1e-12
    net.to("numpy")
    assert type(net.forward(X)) is np.ndarray


def test_streamed_data_moves_batch_by_batch(tmp_path):
    np.save(tmp_path / "x.npy", X)
    nets = [flexnet.Network([8, 6, 3], dtype="float64", seed=5, backend=b) for b in ("numpy", "torch")]
    for net in nets:
        net.fit(np.load(tmp_path / "x.npy", mmap_mode="r"), Y, epochs=1, batch_size=16, seed=1, progress=False)
    assert _max_diff(*nets) < 1e-12


def test_numpy_arrays_take_numpys_own_path():
    a = np.ones((2, 3))
    assert ops.xp(a) is np and ops.name_of(a) == "numpy"
    net = flexnet.Network([8, 3])
    assert net.backend == "numpy" and type(net.layers[0].W) is np.ndarray


def test_an_unknown_backend_is_refused_by_name():
    with pytest.raises(ValueError, match="backend: expected one of .*'jax'"):
        flexnet.Network([4, 2], backend="jax")


def test_unsupported_fit_options_on_another_library_say_so():
    net = flexnet.Network([8, 3], dtype="float64", backend="torch")
    with pytest.raises(ValueError, match="sample_weight and diagnostics need a NumPy network.*net.to"):
        net.fit(X, Y, epochs=1, sample_weight=np.ones(len(X)), progress=False)


def test_import_flexnet_loads_no_array_api_library():
    code = ("import sys, flexnet; flexnet.Network([4, 2]).fit([[0.0] * 4] * 4, [0, 1, 0, 1], epochs=1, "
            "progress=False); print(sorted(m for m in ('array_api_compat', 'array_api_strict', 'torch', 'cupy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("backend", ["torch", "cupy"])
def test_on_a_gpu_twenty_steps_equal_numpys(backend):
    if backend == "cupy":
        pytest.importorskip("cupy")
    ref, _ = _fit("numpy", "adam")
    net, _ = _fit(backend, "adam", device="cuda" if backend == "torch" else None)
    assert _max_diff(ref, net) < 1e-10


@pytest.mark.parametrize("backend", BACKENDS)
def test_gelu_tanh_and_binary_cross_entropy(backend):
    yb = (X[:, 0] > 0).astype(np.int64)
    nets = [flexnet.Sequential([flexnet.Linear(8, 6, dtype="float64", seed=1), flexnet.GELU(approximate="tanh"),
                                flexnet.Linear(6, 1, dtype="float64", seed=2)], flexnet.BCEWithLogits(), seed=0,
                               backend=b) for b in ("numpy", backend)]
    for net in nets:
        net.fit(X, yb, epochs=1, batch_size=16, optimizer="adam", lr=0.01, seed=4, progress=False)
    assert _max_diff(*nets) < 1e-10
    assert (nets[0].predict(X) == nets[1].predict(X)).all()
    assert np.abs(nets[0].predict_proba(X) - nets[1].predict_proba(X)).max() < 1e-12


def test_the_exact_gelu_trains_where_the_library_has_erf():
    """PyTorch has erf (torch.special.erf): the exact GELU trains as on NumPy."""
    nets = [flexnet.Network([8, 6, 3], activation="gelu", dtype="float64", seed=1, backend=b)
            for b in ("numpy", "torch")]
    for net in nets:
        net.fit(X, Y, epochs=2, batch_size=16, optimizer="adam", lr=0.01, seed=4, progress=False)
    assert _max_diff(*nets) < 1e-10


def test_the_exact_gelu_says_it_needs_erf_on_another_library():
    net = flexnet.Network([8, 4, 2], activation="gelu", dtype="float64", backend="array_api_strict")
    with pytest.raises(TypeError, match=r"GELU.*erf.*approximate='tanh'"):
        net.predict(X)


def test_a_checkpoint_from_one_library_resumes_on_another(tmp_path):
    def net(backend, seed=3):
        return flexnet.Network([8, 8, 3], dtype="float64", seed=seed, dropout=0.2, batchnorm=True, bias=False,
                               backend=backend)
    kw = dict(batch_size=16, optimizer="adam", seed=1, progress=False)
    net("torch").fit(X[:96], Y[:96], epochs=2, checkpoint=tmp_path / "c.npz", **kw)
    ref = net("numpy")
    ref.fit(X[:96], Y[:96], epochs=4, **kw)
    for backend in ("array_api_strict", "numpy"):
        resumed = net(backend, seed=9)  # other weights: the checkpoint's replace them
        resumed.fit(X[:96], Y[:96], epochs=4, resume=tmp_path / "c.npz", **kw)
        assert resumed.backend == backend
        assert _max_diff(ref, resumed) < 1e-10


def test_the_gpu_benchmark_script_runs_on_the_cpu(tmp_path):
    import json
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
    out = subprocess.run([sys.executable, str(script), "--device", "cpu", "--n", "256", "--reps", "1",
                          "--workloads", "W", "--json", str(tmp_path / "gpu.json")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    (row,) = json.loads((tmp_path / "gpu.json").read_text())
    assert row["workload"] == "W" and row["flexnet_s"] > 0 and row["torch_s"] > 0
    assert row["ratio"] == pytest.approx(row["flexnet_s"] / row["torch_s"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_hot_targets_train_alike(backend):
    onehot = np.eye(3)[Y]
    nets = [flexnet.Network([8, 6, 3], dtype="float64", seed=5, backend=b) for b in ("numpy", backend)]
    for net in nets:
        net.fit(X, onehot, epochs=1, batch_size=16, optimizer="adam", seed=1, progress=False)
    assert _max_diff(*nets) < 1e-10


def test_loss_options_computed_in_numpy_only_are_refused_by_name():
    with pytest.raises(ValueError, match=r"Network.to\('torch'\): class_weights and label_smoothing"):
        flexnet.Network([8, 3], loss=flexnet.SoftmaxCrossEntropy(label_smoothing=0.1), backend="torch")


def test_a_device_without_a_backend_is_refused():
    with pytest.raises(ValueError, match=r"Network.to\(device='cuda'\): NumPy computes on the CPU only"):
        flexnet.Network([4, 3], device="cuda")


def test_trace_on_another_backend_equals_numpy():
    net = flexnet.Network([8, 16, 3], dtype="float64", seed=0)
    moved = flexnet.Network([8, 16, 3], dtype="float64", seed=0, backend="torch")
    a, b = net.trace(X[:16], Y[:16], lr=0.1), moved.trace(X[:16], Y[:16], lr=0.1)
    assert b.loss == pytest.approx(a.loss, rel=1e-10)
    for ra, rb in zip(a, b):
        assert rb["mean"] == pytest.approx(ra["mean"], rel=1e-10, abs=1e-12)
        assert rb["grad_norm"] == pytest.approx(ra["grad_norm"], rel=1e-10)


def test_repr_names_the_backend():
    assert repr(flexnet.Network([4, 3], backend="torch")) == \
        "Network([4, 3], backend='torch', device=None, dtype='float32')"
    assert "backend" not in repr(flexnet.Network([4, 3]))


@pytest.mark.parametrize("device", ["gpu", "cuda:99", 3])
def test_a_device_the_library_cannot_use_is_refused_naming_it(device):
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match=rf"Network.to\(device={device!r}\): torch cannot place arrays there \(.+\)"):
        flexnet.Network([4, 3], backend="torch", device=device)
    with pytest.raises(ValueError, match=rf"Sequential.to\(device={device!r}\): torch cannot"):
        flexnet.Sequential([flexnet.Linear(4, 3)]).to("torch", device)


def test_data_in_any_layout_moves_to_another_library():
    pytest.importorskip("torch")
    net = flexnet.Network([8, 3], dtype="float64", seed=0)
    expected = net.predict_proba(X[::-1])
    net.to("torch")
    np.testing.assert_allclose(net.predict_proba(X[::-1]), expected, rtol=1e-12)  # negative strides
    np.testing.assert_allclose(net.predict_proba(np.asfortranarray(X)), net.predict_proba(X), rtol=1e-12)


def test_a_torch_tensor_that_numpy_cannot_read_gets_flexnets_message():
    torch = pytest.importorskip("torch")
    net = flexnet.Network([4, 3], seed=0)
    X = torch.ones(8, 4, requires_grad=True)
    with pytest.raises(TypeError, match=r"Network\.forward: expected a numeric array, got Tensor \(.*requires grad"):
        net.predict(X)
    with pytest.raises(TypeError, match=r"fit\(X\): expected a numeric array, got Tensor"):
        net.fit(X, np.zeros(8, dtype=np.int64), epochs=1)
    with pytest.raises(TypeError, match=r"fit\(y\): expected an array of labels or targets, got Tensor"):
        net.fit(np.ones((8, 4), np.float32), torch.zeros(8, requires_grad=True), epochs=1)
    with pytest.raises(ValueError, match=r"fit\(y\): expected an array of labels or targets, got list"):
        net.fit(np.ones((2, 4), np.float32), [[0], [1, 2]], epochs=1)

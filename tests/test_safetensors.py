"""safetensors export: the file holds exactly PyTorch's state dict of the exported module
(keys, shapes, dtypes, values), loads with `safetensors.torch.load_file` into a
`torch.nn.Sequential` with `load_state_dict(strict=True)`, and gives flexnet's outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import flexnet
from flexnet.bridges import from_safetensors, to_safetensors
from flexnet.cli import main


def every_layer(dtype, seed):
    """A network with every layer the PyTorch bridge knows, BatchNorm1d in each of its settings."""
    L = flexnet
    return flexnet.Sequential([
        L.Linear(5, 8), L.BatchNorm1d(8), L.ReLU(), L.Dropout(0.2),
        L.Linear(8, 8), L.BatchNorm1d(8, momentum=None), L.GELU(),
        L.Linear(8, 6), L.BatchNorm1d(6, affine=False), L.LeakyReLU(0.1),
        L.Linear(6, 6), L.LayerNorm(6), L.Tanh(), L.Linear(6, 4), L.Sigmoid(), L.Linear(4, 3),
    ], dtype=dtype, seed=seed)


def trained(dtype="float32", seed=0):
    """The network after 10 batches, so running statistics and counts are not their initial values."""
    net = every_layer(dtype, seed)
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(80, 5)), rng.integers(0, 3, 80)
    net.fit(X, y, epochs=2, batch_size=16, optimizer="adam", lr=0.01, seed=0, progress=False)
    return net


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_file_is_the_torch_state_dict_and_loads_strictly(tmp_path, dtype):
    net = trained(dtype)
    path = tmp_path / "w.safetensors"
    to_safetensors(net, path)
    tensors = load_file(path)
    expected = flexnet.to_torch(net).state_dict()
    assert list(sorted(tensors)) == list(sorted(expected))
    for key, value in expected.items():
        assert tensors[key].dtype == value.dtype and tensors[key].shape == value.shape, key
        assert torch.equal(tensors[key], value), key
    # into a module of the same layers holding other weights: every key, no other
    module = flexnet.to_torch(every_layer(dtype, seed=99))
    module.load_state_dict(tensors, strict=True)
    x = np.random.default_rng(1).normal(size=(7, 5)).astype(dtype)
    got = module.eval()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, net.forward(x), rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)
    assert tensors["5.num_batches_tracked"].dtype == torch.int64
    assert int(tensors["5.num_batches_tracked"]) == 10  # momentum=None counts its batches


def test_the_metadata_rebuilds_the_module_in_plain_pytorch(tmp_path):
    net = trained()
    path = tmp_path / "w.safetensors"
    to_safetensors(net, path)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta["format"] == "pt" and meta["producer"] == "flexnet" and meta["dtype"] == "float32"
    assert meta["producer_version"] == flexnet.__version__
    layers = json.loads(meta["layers"])
    module = torch.nn.Sequential(*[getattr(torch.nn, spec["type"])(**spec["kwargs"]) for spec in layers])
    module.load_state_dict(load_file(path), strict=True)
    x = np.random.default_rng(2).normal(size=(4, 5)).astype("float32")
    np.testing.assert_allclose(module.eval()(torch.from_numpy(x)).detach().numpy(), net.forward(x),
                               rtol=1e-5, atol=1e-6)


def test_from_safetensors_loads_the_weights_back(tmp_path):
    net = trained("float64")
    path = tmp_path / "w.safetensors"
    to_safetensors(net, path)
    other = every_layer("float64", seed=5)
    from_safetensors(other, path)
    x = np.random.default_rng(3).normal(size=(6, 5))
    np.testing.assert_array_equal(other.forward(x), net.forward(x))
    wrong = flexnet.Network([5, 8, 3], seed=0)
    with pytest.raises(ValueError, match="does not hold this network's weights: missing keys"):
        from_safetensors(wrong, path)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        from_safetensors(wrong, tmp_path / "bad.safetensors")


def _rewritten(path, out, key, **changes):
    """The file at ``path`` with ``changes`` to one tensor's header entry (the data left as it is)."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header[key].update(changes)
    text = json.dumps(header).encode()
    out.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + n:])
    return out


def test_a_hostile_or_wrong_file_is_refused_and_nothing_changes(tmp_path):
    net = flexnet.Sequential([flexnet.Linear(3, 4), flexnet.BatchNorm1d(4), flexnet.Linear(4, 2)], seed=0)
    path = tmp_path / "w.safetensors"
    to_safetensors(net, path)
    before = [p.copy() for p in net.parameters().values()]
    cases = {
        # weights reinterpreted as integers: the same bytes, another dtype
        "0.weight holds int32, expected floating-point": _rewritten(path, tmp_path / "a", "0.weight", dtype="I32"),
        "1.num_batches_tracked holds float64, expected integers":
            _rewritten(path, tmp_path / "b", "1.num_batches_tracked", dtype="F64"),
    }
    huge = tmp_path / "c"  # a header length of 2**62 bytes: refused without reading or allocating it
    huge.write_bytes((2 ** 62).to_bytes(8, "little") + b"{}")
    cases["not a readable safetensors file"] = huge
    big = tmp_path / "d"  # far larger than these weights can be: refused before it is read
    big.write_bytes(path.read_bytes())
    os.truncate(big, 120_000_000)  # sparse: nothing is written
    cases["more than the weights of this network can take"] = big
    diverged = flexnet.Sequential([flexnet.Linear(3, 4), flexnet.BatchNorm1d(4), flexnet.Linear(4, 2)], seed=0)
    diverged.layers[2].W[0, 0] = np.nan
    to_safetensors(diverged, tmp_path / "e")
    cases[r"2\.weight holds 1 NaN"] = tmp_path / "e"
    for message, bad in cases.items():
        with pytest.raises(ValueError, match=message):
            from_safetensors(net, bad)
        assert all(np.array_equal(a, b) for a, b in zip(before, net.parameters().values()))
    with pytest.raises(TypeError, match="from_safetensors: expected a flexnet Sequential"):
        from_safetensors("model.npz", path)


def test_a_layer_torch_lacks_is_refused_and_nothing_is_written(tmp_path):
    class Doubled(flexnet.ReLU):  # a subclass may compute something else: no torch equivalent
        pass

    net = flexnet.Sequential([flexnet.Linear(3, 4), Doubled(), flexnet.Linear(4, 2)], seed=0)
    with pytest.raises(ValueError, match=r"layers\.1.*\(Doubled\) has no PyTorch equivalent"):
        to_safetensors(net, tmp_path / "w.safetensors")
    assert not (tmp_path / "w.safetensors").exists()
    with pytest.raises(TypeError, match="Sequential"):
        to_safetensors("model.npz", tmp_path / "w.safetensors")


def test_cli_export_safetensors(tmp_path, capsys):
    net = flexnet.Network([5, 7, 3], batchnorm=True, seed=1)
    model = tmp_path / "model.npz"
    flexnet.save(net, model)
    assert main(["export", str(model), "--format", "safetensors"]) == 0  # default name: MODEL.safetensors
    assert "Wrote" in capsys.readouterr().out
    module = flexnet.to_torch(flexnet.Network([5, 7, 3], batchnorm=True, seed=2))
    module.load_state_dict(load_file(tmp_path / "model.safetensors"), strict=True)
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), net.forward(x), rtol=1e-5, atol=1e-6)


def test_cli_export_refuses_bad_paths(tmp_path, capsys):
    model = tmp_path / "model.npz"
    flexnet.save(flexnet.Network([5, 3], seed=1), model)
    (tmp_path / "file").write_text("x")
    for out, message in [(tmp_path, "folder"), (tmp_path / "missing" / "w.safetensors", "does not exist"),
                         (tmp_path / "file" / "w.safetensors", "file"), (model, "the model file itself")]:
        assert main(["export", str(model), "--format", "safetensors", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "--out" in err and message in err and len(err.strip().splitlines()) == 1, err
    assert main(["export", str(model), "--format", "safetensors", "--probabilities"]) == 2
    assert "--format onnx only" in capsys.readouterr().err
    assert flexnet.load(model).layers[0].W.shape == (5, 3)  # untouched


def test_cli_export_without_safetensors_is_exit_2_with_the_extra(tmp_path):
    model = tmp_path / "model.npz"
    flexnet.save(flexnet.Network([5, 3], seed=1), model)
    code = ("import importlib.abc, sys\n"
            "class NotInstalled(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] == 'safetensors':\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, NotInstalled())\n"
            "from flexnet.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "w.safetensors"
    proc = subprocess.run([sys.executable, "-c", code, "export", str(model), "--format", "safetensors", "--out",
                           str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and 'pip install "flexnet[safetensors]"' in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


@pytest.mark.parametrize("bad", ["no", "False", None, 0, 1])
def test_linear_bias_takes_true_or_false_only(bad):
    with pytest.raises(TypeError, match=r"Linear\(bias\): expected True or False"):
        flexnet.Linear(3, 2, bias=bad)


def test_linear_without_bias_round_trips_through_safetensors(tmp_path):
    net = flexnet.Sequential([flexnet.Linear(3, 4, bias=False), flexnet.LayerNorm(4), flexnet.ReLU(),
                              flexnet.Linear(4, 2)], dtype="float64", seed=0)
    path = tmp_path / "w.safetensors"
    to_safetensors(net, path)
    module = flexnet.to_torch(net)
    module.load_state_dict(load_file(path))  # strict: no "0.bias"
    x = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(module(torch.tensor(x)).detach().numpy(), net.forward(x), rtol=1e-12)
    other = flexnet.Sequential([flexnet.Linear(3, 4, bias=False), flexnet.LayerNorm(4), flexnet.ReLU(),
                                flexnet.Linear(4, 2)], dtype="float64", seed=7)
    from_safetensors(other, path)
    np.testing.assert_array_equal(other.forward(x), net.forward(x))

"""Model files: round trips for every layer and loss, refusals, atomic saves, `flexnet info`."""

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest
from registry import LAYER_FACTORIES, LOSS_FACTORIES

import flexnet
from flexnet import Linear, Network, Sequential, load
from flexnet.cli import main
from flexnet.files.model_file import (
    ModelFileError,
    describe,
    flatten_state,
    read_archive,
    save,
    unflatten_state,
    write_archive,
)


def _x(n, d, seed=0, dtype="float32"):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


def _assert_same_model(a, b, x):
    assert type(b) is type(a)
    assert [type(l) for l in b.layers] == [type(l) for l in a.layers]
    assert [l.config() for l in b.layers] == [json.loads(json.dumps(l.config())) for l in a.layers]
    assert type(b.loss_fn) is type(a.loss_fn)
    assert b.dtype == a.dtype
    for (name, p, _), (name2, p2, _) in zip(a.named_parameters(), b.named_parameters()):
        assert name == name2 and p.dtype == p2.dtype
        np.testing.assert_array_equal(p, p2)
    for (name, buf), (name2, buf2) in zip(a.named_buffers(), b.named_buffers()):
        assert name == name2
        np.testing.assert_array_equal(buf, buf2)
    np.testing.assert_array_equal(b.forward(x), a.forward(x))  # bit-identical predictions


def _rewrite(src, dst, header=None, members=None, drop=()):
    """Copy archive ``src`` to ``dst``, changing the header or raw member bytes."""
    with zipfile.ZipFile(src) as zf:
        raw = {name: zf.read(name) for name in zf.namelist()}
    if header is not None:
        raw["__header__.json"] = json.dumps(header).encode()
    raw.update(members or {})
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in raw.items():
            if name not in drop:
                zf.writestr(name, data)
    return dst


def _npy_bytes(arr, allow_pickle=False):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


@pytest.fixture
def saved(tmp_path):
    """A small saved network with metadata, its header and its file."""
    net = Network([5, 4, 3], seed=0)
    net.metadata = {"input_shape": [5], "class_names": ["a", "b", "c"],
                    "scaler": {"mean": np.arange(5.0), "scale": np.float32(2.0)}}
    path = tmp_path / "model.npz"
    net.save(path)
    header, _ = read_archive(path)
    return net, path, header


def _refusal(path) -> ModelFileError:
    with pytest.raises(ModelFileError) as info:
        load(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    return info.value


# -- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(LAYER_FACTORIES))
def test_round_trip_every_layer(tmp_path, case, dtype):
    layer = LAYER_FACTORIES[case](4, dtype, 3)
    width = layer.output_size(4)
    net = Sequential([Linear(6, 4, dtype=dtype, seed=1), layer, Linear(width, 3, dtype=dtype, seed=2)],
                     dtype=dtype, seed=5)
    x = _x(7, 6, dtype=dtype)
    if case in ("BatchNorm1d[train]", "BatchNorm1d[no affine]"):  # running stats move away from the defaults
        net.forward(x, training=True)
    save(net, tmp_path / "m.npz")
    _assert_same_model(net, load(tmp_path / "m.npz"), x)


@pytest.mark.parametrize("case", sorted(LOSS_FACTORIES))
def test_round_trip_every_loss(tmp_path, case):
    loss, n_out, y = LOSS_FACTORIES[case](8, np.random.default_rng(0))
    net = Sequential([Linear(5, 6, seed=1), flexnet.Tanh(), Linear(6, n_out, seed=2)], loss)
    save(net, tmp_path / "m.npz")
    back = load(tmp_path / "m.npz")
    assert back.loss_fn.config() == json.loads(json.dumps(loss.config()))
    x = _x(8, 5)
    _assert_same_model(net, back, x)
    assert back.loss(x, y) == net.loss(x, y)
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


def test_network_loads_back_as_network_with_its_options(tmp_path):
    net = Network([6, 5, 4, 2], activation="tanh", batchnorm=True, dropout=0.25, dtype="float64", seed=3)
    net.fit(_x(40, 6, dtype="float64"), np.arange(40) % 2, epochs=1, batch_size=8, progress=False)
    net.save(tmp_path / "m.npz")
    back = flexnet.load(tmp_path / "m.npz")
    assert isinstance(back, Network) and repr(back) == repr(net)
    assert back.layer_sizes == [6, 5, 4, 2]
    _assert_same_model(net, back, _x(9, 6, dtype="float64"))
    dropout = [l for l in back.layers if l.uses_rng]
    assert dropout and all(l.rng is back.rng for l in dropout)  # one seed drives the loaded network too


def test_metadata_round_trip_keeps_arrays_and_numpy_scalars(saved):
    net, path, header = saved
    back = load(path)
    assert back.metadata["class_names"] == ["a", "b", "c"]
    assert back.metadata["input_shape"] == [5]
    np.testing.assert_array_equal(back.metadata["scaler"]["mean"], np.arange(5.0))
    scale = back.metadata["scaler"]["scale"]
    assert type(scale) is np.float32 and scale == 2.0
    assert header["format"] == "flexnet-model" and header["format_version"] == 1
    assert header["flexnet_version"] == flexnet.__version__
    assert header["model"]["layers"][0] == {"class": "Linear", "module": "flexnet.nn.layers",
                                            "config": {"in_features": 5, "out_features": 4}}
    assert header["arrays"]["layers.0.W"] == {"shape": [5, 4], "dtype": "<f4"}


def test_same_model_gives_byte_identical_files(tmp_path):
    Network([4, 3, 2], seed=9).save(tmp_path / "a.npz")
    Network([4, 3, 2], seed=9).save(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_files_are_plain_npz(saved):
    net, path, _ = saved
    with np.load(path, allow_pickle=False) as z:  # readable without flexnet
        np.testing.assert_array_equal(z["layers.0.W"], net.layers[0].W)


def test_save_refuses_what_json_cannot_hold(tmp_path):
    net = Network([3, 2], seed=0)
    net.metadata = {"when": object()}
    with pytest.raises(TypeError, match="cannot store object at 'metadata/when'"):
        net.save(tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())
    with pytest.raises(TypeError, match="expected a flexnet Sequential"):
        save([1, 2], tmp_path / "m.npz")


# -- archives and nested state ---------------------------------------------------------


def test_flatten_state_round_trip_with_big_ints_and_scalars():
    rng = np.random.default_rng(123)
    rng.standard_normal(3)
    state = {
        "opt": {"layers.0.W": {"exp_avg": np.ones((2, 3), np.float32), "step": np.int64(7)}, "lr": 1e-3},
        "rng": rng.bit_generator.state,  # PCG64: ints of 128 bits
        "history": {"loss": [1.5, float("inf")], "pair": (1, 2)},
        "none": None,
    }
    json_part, arrays = flatten_state(state, prefix="train")
    assert sorted(arrays) == ["train/opt/layers.0.W/exp_avg", "train/opt/layers.0.W/step"]
    back = unflatten_state(json.loads(json.dumps(json_part)), arrays)
    assert back["rng"] == rng.bit_generator.state
    assert type(back["opt"]["layers.0.W"]["step"]) is np.int64
    assert back["history"] == {"loss": [1.5, float("inf")], "pair": [1, 2]}
    np.testing.assert_array_equal(back["opt"]["layers.0.W"]["exp_avg"], 1)
    again = np.random.default_rng()
    again.bit_generator.state = back["rng"]
    assert again.standard_normal() == rng.standard_normal()


def test_flatten_state_refuses_what_it_cannot_restore():
    with pytest.raises(TypeError, match="keys must be strings, got 0"):
        flatten_state({"state": {0: np.zeros(1)}})
    with pytest.raises(TypeError, match="cannot store set at 'a'"):
        flatten_state({"a": {1, 2}})
    with pytest.raises(ValueError, match="share the name 'a/b'"):
        flatten_state({"a/b": np.zeros(1), "a": {"b": np.zeros(1)}})
    with pytest.raises(ValueError, match="refers to array 'x', which is missing"):
        unflatten_state({"w": {"__ndarray__": "x"}}, {})


def test_write_and_read_archive(tmp_path):
    path = tmp_path / "a.npz"
    arrays = {"a": np.arange(6).reshape(2, 3), "opt/b": np.asfortranarray(np.ones((3, 2))),
              "flag": np.array([True, False]), "names": np.array(["x", "yz"])}
    write_archive(path, {"kind": "test", "big": 2**100}, arrays)
    header, back = read_archive(path)
    assert header["kind"] == "test" and header["big"] == 2**100
    assert sorted(back) == sorted(arrays)
    for name, arr in arrays.items():
        np.testing.assert_array_equal(back[name], arr)
        assert back[name].dtype == arr.dtype and back[name].flags.writeable
    with pytest.raises(TypeError, match="object arrays would need pickle"):
        write_archive(path, {}, {"o": np.array([None], dtype=object)})
    with pytest.raises(ValueError, match="reserved"):
        write_archive(path, {"arrays": 1}, {})
    with pytest.raises(TypeError, match="cannot be written as JSON"):
        write_archive(path, {"x": object()}, {})
    assert read_archive(path)[0]["kind"] == "test"  # the failed writes left it alone


# -- code execution on load ------------------------------------------------------------


class _Payload:
    """Unpickling this creates a marker file: what a malicious model file would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_pickle_payload_is_refused_without_running(saved, tmp_path):
    _, path, header = saved
    marker = tmp_path / "pwned"
    bad = np.array([_Payload(marker)], dtype=object)
    header = dict(header)
    header["arrays"] = {**header["arrays"], "layers.0.W": {"shape": [1], "dtype": "|O"}}
    evil = _rewrite(path, tmp_path / "evil.npz", header, {"layers.0.W.npy": _npy_bytes(bad, True)})

    # The payload is real: NumPy with pickle allowed runs it.
    proof = tmp_path / "proof"
    with open(tmp_path / "proof.npy", "wb") as f:
        f.write(_npy_bytes(np.array([_Payload(proof)], dtype=object), True))
    np.load(tmp_path / "proof.npy", allow_pickle=True)
    assert proof.exists()

    err = _refusal(evil)
    assert "'layers.0.W' has dtype object: refused" in str(err)
    with pytest.raises(ModelFileError):
        read_archive(evil)
    with pytest.raises(ModelFileError):
        describe(evil)
    assert main(["info", str(evil)]) == 2
    assert not marker.exists()


def test_a_raw_pickle_file_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    err = _refusal(path)
    assert "not a flexnet model file" in str(err)
    assert not marker.exists()


# -- every refusal -----------------------------------------------------------------------


def test_missing_array(saved, tmp_path):
    _, path, header = saved
    header = dict(header, arrays={k: v for k, v in header["arrays"].items() if k != "layers.0.b"})
    err = _refusal(_rewrite(path, tmp_path / "bad.npz", header, drop=["layers.0.b.npy"]))
    assert err.problems == ["missing array 'layers.0.b' (the model needs it)"]


def test_extra_array(saved, tmp_path):
    _, path, header = saved
    header = dict(header, arrays={**header["arrays"], "surprise": {"shape": [2], "dtype": "<f4"}})
    bad = _rewrite(path, tmp_path / "bad.npz", header, {"surprise.npy": _npy_bytes(np.zeros(2, "f4"))})
    assert _refusal(bad).problems == ["extra array 'surprise' that the model does not use"]


def test_wrong_shape_and_dtype(saved, tmp_path):
    _, path, header = saved
    header = dict(header, arrays={**header["arrays"], "layers.0.W": {"shape": [4, 5], "dtype": "<f4"},
                                  "layers.0.b": {"shape": [1, 4], "dtype": "<f8"}})
    bad = _rewrite(path, tmp_path / "bad.npz", header, {
        "layers.0.W.npy": _npy_bytes(np.zeros((4, 5), "f4")),
        "layers.0.b.npy": _npy_bytes(np.zeros((1, 4), "f8"))})
    assert _refusal(bad).problems == [
        "array 'layers.0.W' has shape (4, 5), the model needs (5, 4)",
        "array 'layers.0.b' has dtype float64, the model needs float32",
    ]


def test_header_that_does_not_match_the_arrays(saved, tmp_path):
    _, path, header = saved
    header = dict(header, arrays={**header["arrays"], "layers.2.W": {"shape": [9, 9], "dtype": "<f8"}})
    assert _refusal(_rewrite(path, tmp_path / "bad.npz", header)).problems == [
        "array 'layers.2.W' has shape (4, 3), the header says [9, 9]",
        "array 'layers.2.W' has dtype <f4, the header says <f8",
    ]


def test_newer_format_version(saved, tmp_path):
    _, path, header = saved
    err = _refusal(_rewrite(path, tmp_path / "new.npz", dict(header, format_version=2)))
    assert "newer flexnet" in str(err) and "format version 2" in str(err) and "upgrade flexnet" in str(err)


def test_unknown_layer_class(saved, tmp_path):
    _, path, header = saved
    model = json.loads(json.dumps(header["model"]))
    model["layers"][1] = {"class": "Swish", "module": "mylib.layers", "config": {}}
    err = _refusal(_rewrite(path, tmp_path / "bad.npz", dict(header, model=model)))
    assert err.problems == ["layers.1: unknown layer class 'Swish' (defined in mylib.layers; "
                            "import that module before loading, or pass the class: "
                            "load(path, custom_layers={'Swish': Swish}), or register it with "
                            "flexnet.register_layer)"]


def test_module_names_in_a_file_are_never_imported(saved, tmp_path):
    _, path, header = saved
    model = json.loads(json.dumps(header["model"]))
    model["layers"][1] = {"class": "Evil", "module": "flexnet.__main__", "config": {}}
    bad = _rewrite(path, tmp_path / "bad.npz", dict(header, model=model))
    assert "unknown layer class 'Evil'" in str(_refusal(bad))
    assert "flexnet.__main__" not in sys.modules  # importing it would have run the CLI


def test_every_problem_is_listed_in_one_error(saved, tmp_path):
    _, path, header = saved
    model = json.loads(json.dumps(header["model"]))
    model["loss"]["class"] = "NoSuchLoss"
    model["layers"][0]["config"]["in_features"] = "five"
    header = dict(header, model=model, arrays={**header["arrays"], "extra": {"shape": [1], "dtype": "|O"}})
    bad = _rewrite(path, tmp_path / "bad.npz", header, {
        "extra.npy": _npy_bytes(np.array([1], dtype=object), True), "notes.txt": b"hi"},
        drop=["metadata/scaler/mean.npy"])
    err = _refusal(bad)
    text = str(err)
    assert text.startswith(f"{tmp_path / 'bad.npz'}: ") and f"{len(err.problems)} problems:" in text
    expected = ["unexpected member 'notes.txt'", "'extra' has dtype object: refused",
                "missing array 'metadata/scaler/mean' (listed in the header)",
                "layers.0: cannot build Linear", "unknown loss class 'NoSuchLoss'"]
    for part in expected:
        assert sum(part in p for p in err.problems) == 1, part


def test_deeply_nested_header_is_refused(saved, tmp_path):
    _, path, _ = saved
    # 900 levels: JSON parses it, but walking it recursively would overflow the stack.
    text = '{"format": "flexnet-model", "deep": ' + '{"a": ' * 900 + "{}" + "}" * 901
    bad = _rewrite(path, tmp_path / "deep.npz", members={"__header__.json": text.encode()})
    assert "nested more than 100 levels deep" in str(_refusal(bad))


def test_truncated_files(saved, tmp_path):
    _, path, _ = saved
    data = path.read_bytes()
    for cut in (10, len(data) // 3, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        assert "corrupt" in str(_refusal(bad)) or "truncated" in str(_refusal(bad))


def test_corrupt_array_bytes_fail_the_checksum(saved, tmp_path):
    net, path, _ = saved
    data = bytearray(path.read_bytes())
    raw_w = net.layers[0].W.tobytes()
    at = bytes(data).index(raw_w) + 7  # a byte inside layers.0.W's data
    data[at] ^= 0xFF
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(data))
    err = _refusal(bad)
    assert err.problems == ["array 'layers.0.W' is corrupt (BadZipFile: Bad CRC-32 for file 'layers.0.W.npy')"]


def test_implausible_sizes_are_refused_before_allocating(saved, tmp_path):
    _, path, header = saved
    model = json.loads(json.dumps(header["model"]))
    model["layers"][0]["config"] = {"in_features": 10**6, "out_features": 10**6}
    err = _refusal(_rewrite(path, tmp_path / "huge.npz", dict(header, model=model)))
    assert "would be far larger than the arrays in the file" in str(err)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"", "the file is empty (0 bytes)"),
    (b"w1,w2\n0.5,0.25\n", "not a flexnet model file: expected a .npz (zip) archive"),
    (_npy_bytes(np.zeros(3)), "a single .npy array, not a flexnet model file"),
])
def test_missing_empty_and_wrong_format_files(tmp_path, content, message):
    path = tmp_path / "model.npz"
    if content is not None:
        path.write_bytes(content)
    assert message in str(_refusal(path))


def test_missing_file_is_also_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz: no such file"):
        load(tmp_path / "nope.npz")


def test_folder_and_unreadable_file(tmp_path, monkeypatch, saved):
    assert "is a folder" in str(_refusal(tmp_path))
    _, path, _ = saved

    real_open = os.open

    def denied(name, *args, **kwargs):  # root reads any file, so the refusal is simulated
        if os.fspath(name) == str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    assert "cannot read the file: Permission denied" in str(_refusal(path))


def test_plain_npz_and_other_formats_are_refused(tmp_path, saved):
    np.savez(tmp_path / "plain.npz", W=np.zeros(3))
    assert "no __header__.json member" in str(_refusal(tmp_path / "plain.npz"))
    write_archive(tmp_path / "other.npz", {"format": "something-else"}, {})
    assert "format is 'something-else'" in str(_refusal(tmp_path / "other.npz"))
    _, path, _ = saved
    bad = _rewrite(path, tmp_path / "json.npz", members={"__header__.json": b"{not json"})
    assert "__header__.json is unreadable (JSONDecodeError" in str(_refusal(bad))


# -- atomic saves ---------------------------------------------------------------------------


def test_save_to_a_missing_folder_or_a_folder_names_the_target(tmp_path):
    net = Network([3, 2], seed=0)
    with pytest.raises(FileNotFoundError, match=r"cannot write .*nope/m.npz: the folder does not exist"):
        net.save(tmp_path / "nope" / "m.npz")
    with pytest.raises(IsADirectoryError, match="it is a folder; give a file name"):
        net.save(tmp_path)


def test_failed_save_leaves_the_previous_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    Network([5, 4, 3], seed=0).save(path)
    before = path.read_bytes()
    calls = []

    def failing_write(f, arr, **kw):
        calls.append(1)
        if len(calls) == 3:
            f.write(b"partial")
            raise OSError(28, "No space left on device")
        return real_write(f, arr, **kw)

    real_write = np.lib.format.write_array
    monkeypatch.setattr(np.lib.format, "write_array", failing_write)
    with pytest.raises(OSError, match="No space left"):
        Network([5, 4, 3], seed=1).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temporary file left


_SAVER = textwrap.dedent("""
    import os, sys, time
    import flexnet
    net = flexnet.Network([600, 600, 600, 10], seed=0)   # about 3 MB of float32 per save
    hold = len(sys.argv) > 2
    real_fsync = os.fsync

    def held_fsync(fd):  # a save's temporary file is written and about to be synced
        print("writing", flush=True)
        time.sleep(30)
        real_fsync(fd)

    k = 0
    while True:
        k += 1
        for _, p, _ in net.named_parameters():
            p[...] = k
        net.save(sys.argv[1])
        print(k, flush=True)
        if hold:
            os.fsync = held_fsync  # the next save stops inside, for the kill to land there
""")


def test_sigkill_while_saving_leaves_a_loadable_previous_file(tmp_path):
    path = tmp_path / "model.npz"
    rng = np.random.default_rng(0)
    for attempt in range(4):
        held = attempt == 3  # the last kill lands inside a save for certain
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)] + (["hold"] if held else []),
                                stdout=subprocess.PIPE, text=True)
        try:
            last = int(proc.stdout.readline())  # one save completed
            if held:
                assert proc.stdout.readline().strip() == "writing"
            else:
                time.sleep(rng.uniform(0.0, 0.3))  # then die somewhere in a later save
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        net = load(path)
        values = {float(v) for _, p, _ in net.named_parameters() for v in np.unique(p)}
        assert len(values) == 1 and values.pop() >= last  # one whole save, never a mix
        assert net.layers[0].W.shape == (600, 600)
        if held:  # killed with its temporary file written: the file on disk is the save before
            assert float(net.layers[0].W[0, 0]) == last
            # its temporary file is there; the leftovers of the earlier kills were removed by the next save
            assert len([p for p in tmp_path.iterdir() if p.name.endswith(".flexnet-tmp")]) == 1
    Network([3, 2], seed=0).save(path)  # the next save to the path removes the dead writer's file
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


# -- flexnet info and the command line -----------------------------------------------------


def test_info_describes_a_model(saved, capsys):
    net, path, _ = saved
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    for part in ("format: flexnet-model version 1", f"written by flexnet {flexnet.__version__}",
                 "model: Network([5, 4, 3], dtype='float32')", "layers.0: Linear(5 -> 4)",
                 "loss: SoftmaxCrossEntropy", "total (float32)", f"{net.n_params():,}",
                 "class_names: ['a', 'b', 'c']", "mean: array (5,) float64"):
        assert part in out, part


def test_info_describes_a_checkpoint(tmp_path, capsys):
    net = Network([4, 3, 2], seed=0)
    ckpt = tmp_path / "run.ckpt.npz"
    net.fit(_x(32, 4), np.arange(32) % 2, epochs=2, batch_size=8, checkpoint=ckpt, progress=False, seed=0)
    assert main(["info", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "format: flexnet-checkpoint" in out and "checkpoint: epoch 2, step 0" in out
    _assert_same_model(net, load(ckpt), _x(5, 4))


def test_cli_exit_codes_and_one_line_errors(tmp_path, saved, capsys, monkeypatch):
    _, path, _ = saved
    assert main(["info", str(tmp_path / "missing.npz")]) == 2
    err = capsys.readouterr().err
    assert err == f"flexnet info: error: {tmp_path / 'missing.npz'}: no such file\n"

    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    assert main(["info", str(tmp_path / "junk.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "truncated or corrupt archive" in err and "Traceback" not in err

    assert main(["info"]) == 2  # argparse's mistakes are one line too, pointing at --help
    err = capsys.readouterr().err
    assert err == "flexnet info: error: the following arguments are required: FILE (see flexnet info --help)\n"
    assert main(["info", str(path), "--bogus"]) == 2
    assert main([]) == 2
    assert main(["--version"]) == 0
    capsys.readouterr()

    def crash(path):
        raise RuntimeError("disk\nfell off")

    monkeypatch.setattr("flexnet.files.model_file.describe", crash)
    assert main(["info", str(path)]) == 1  # a failure while running
    err = capsys.readouterr().err
    assert err == "flexnet info: failed: RuntimeError: disk fell off (run with --debug for details)\n"
    with pytest.raises(RuntimeError):
        main(["info", str(path), "--debug"])  # --debug anywhere shows the traceback


def test_cli_in_a_real_process(tmp_path, saved):
    _, path, _ = saved
    run = lambda *a: subprocess.run([sys.executable, "-m", "flexnet", *a], capture_output=True, text=True)
    ok = run("info", str(path))
    assert ok.returncode == 0 and "flexnet-model" in ok.stdout and ok.stderr == ""
    bad = run("info", str(tmp_path / "nope.npz"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nope.npz: no such file" in bad.stderr
    debug = run("--debug", "info", str(tmp_path / "nope.npz"))
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ModelFileNotFoundError" in debug.stderr

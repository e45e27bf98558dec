"""Files written by the previous release still load, compute and resume bit for bit.

tests/fixtures/v1/ was written by flexnet before the package was split into
subpackages (tests/fixtures/make_files.py says exactly how); their headers name
every class by its old module path (``flexnet.layers``, ``flexnet.losses``
...). The committed files are only read: anything written goes to tmp_path.
"""

import hashlib
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

import flexnet
from flexnet._moved import MOVED
from flexnet.files.archive import read_archive
from flexnet.files.model_file import describe

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "v1"
MODELS = {"network": "Network", "sequential": "Sequential", "regression": "Network"}
OLD_PATHS = {"flexnet.layers", "flexnet.activations", "flexnet.normalization", "flexnet.dropout", "flexnet.losses"}


def _load_make_files():
    spec = importlib.util.spec_from_file_location("flexnet_fixtures_make_files", HERE / "fixtures" / "make_files.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_files = _load_make_files()


def _specs(header):
    """The layer and loss entries of a file's header: ``{"class", "module", "config"}`` each."""
    return header["model"]["layers"] + [header["model"]["loss"]]


def _state(net):
    return {**net.parameters(), **dict(net.named_buffers())}


def _assert_same_arrays(got, expected, what):
    assert sorted(got) == sorted(expected), what
    for name, value in expected.items():
        assert got[name].dtype == value.dtype, f"{what}: {name}"
        np.testing.assert_array_equal(got[name], value, err_msg=f"{what}: {name}")


def _assert_same_metadata(got, expected, where="metadata"):
    if isinstance(expected, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(expected), where
        for key in expected:
            _assert_same_metadata(got[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == expected.dtype, where
        np.testing.assert_array_equal(got, expected, err_msg=where)
    elif isinstance(expected, (list, tuple)):
        assert list(got) == list(expected), where
    else:
        assert got == expected, where


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("name", [*MODELS, "checkpoint"])
def test_files_name_their_classes_by_the_old_module_paths(name):
    header, _ = read_archive(FIXTURES / f"{name}.npz")
    assert header["flexnet_version"] == "0.1.0"
    modules = {spec["module"] for spec in _specs(header)}
    assert modules <= OLD_PATHS and all(module in MOVED for module in modules), modules


@pytest.mark.parametrize("name", MODELS)
def test_models_load_as_the_trainable_classes(name):
    net = flexnet.load(FIXTURES / f"{name}.npz")
    assert type(net) is getattr(flexnet, MODELS[name])
    assert type(net).__module__ == "flexnet.training.network"
    assert callable(net.fit) and callable(net.save)


@pytest.mark.parametrize("name", MODELS)
def test_models_compute_what_they_computed_when_saved(name):
    X, _ = make_files.data()
    net = flexnet.load(FIXTURES / f"{name}.npz")
    expected = np.load(FIXTURES / "outputs.npz")[name]
    out = net.forward(X.astype(net.dtype))
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)


def test_metadata_round_trips():
    X, _ = make_files.data()
    net = flexnet.load(FIXTURES / "network.npz")
    assert sorted(net.metadata) == ["class_names", "scaler"]
    assert list(net.metadata["class_names"]) == ["a", "b", "c"]
    for key, expected in [("mean", X.mean(0)), ("scale", X.std(0))]:
        got = net.metadata["scaler"][key]
        assert isinstance(got, np.ndarray) and got.dtype == expected.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
    for name in ("sequential", "regression"):
        assert not flexnet.load(FIXTURES / f"{name}.npz").metadata


@pytest.mark.parametrize("name", MODELS)
def test_models_save_again_and_reload_identically(name, tmp_path):
    X, _ = make_files.data()
    old_header, old_arrays = read_archive(FIXTURES / f"{name}.npz")
    net = flexnet.load(FIXTURES / f"{name}.npz")
    net.save(tmp_path / "again.npz")

    header, arrays = read_archive(tmp_path / "again.npz")
    _assert_same_arrays(arrays, old_arrays, "arrays saved again")
    assert header["format"] == old_header["format"] and header["format_version"] == old_header["format_version"]
    # the same model, every class now named by its new home
    for spec in _specs(old_header):
        spec["module"] = MOVED[spec["module"]]
    assert header["model"] == old_header["model"]

    again = flexnet.load(tmp_path / "again.npz")
    assert type(again) is type(net)
    _assert_same_arrays(_state(again), _state(net), "parameters and buffers reloaded")
    _assert_same_metadata(again.metadata, net.metadata)
    np.testing.assert_array_equal(again.forward(X.astype(again.dtype)), np.load(FIXTURES / "outputs.npz")[name])
    again.save(tmp_path / "again2.npz")
    assert (tmp_path / "again2.npz").read_bytes() == (tmp_path / "again.npz").read_bytes()


@pytest.mark.parametrize("name", [*MODELS, "checkpoint"])
def test_describe_lists_the_layers(name):
    header, _ = read_archive(FIXTURES / f"{name}.npz")
    text = describe(FIXTURES / f"{name}.npz")
    assert isinstance(text, str)
    for i, spec in enumerate(header["model"]["layers"]):
        assert f"layers.{i}: {spec['class']}(" in text, (spec, text)
    assert f"loss: {header['model']['loss']['class']}(" in text, text
    if name == "network":
        assert "class_names" in text and "scaler" in text
    if name == "checkpoint":
        assert "checkpoint: epoch 5" in text


def test_checkpoint_resumes_to_the_weights_of_the_whole_run(tmp_path, monkeypatch):
    committed = FIXTURES / "checkpoint.npz"
    before = _sha256(committed)
    copy = tmp_path / "checkpoint.npz"
    shutil.copyfile(committed, copy)

    begins = []  # what fit tells the callbacks: proof that the run resumed, not started afresh
    on_train_begin = flexnet.EarlyStopping.on_train_begin
    monkeypatch.setattr(flexnet.EarlyStopping, "on_train_begin",
                        lambda self, logs=None: (begins.append(dict(logs or {})), on_train_begin(self, logs))[1])

    net = make_files.checkpoint_run(epochs=12, resume=copy)

    assert [(b.get("resumed"), b.get("epoch")) for b in begins] == [(True, 5)]
    final = np.load(FIXTURES / "checkpoint_final_weights.npz")
    _assert_same_arrays(_state(net), {k: final[k] for k in final.files}, "weights after resuming")
    assert _sha256(committed) == before


def test_objects_pickled_by_the_previous_release_load_and_keep_training():
    """Pickles name classes by their old module paths (flexnet.network.Sequential, flexnet.optim.Adam,
    flexnet.sklearn.FlexNetClassifier), and hold the attributes of 0.1's classes: a LayerNorm
    without ``affine``, an optimizer's cache under its old name. They load, compute the same
    outputs, and one more epoch (or partial_fit) gives the weights 0.1 gave."""
    import pickle

    with open(FIXTURES / "pickles.pkl", "rb") as f:
        saved = pickle.load(f)  # our own fixture, written by tests/fixtures/make_files.py --pickles
    net, opt, clf, X, y = saved["net"], saved["optimizer"], saved["classifier"], saved["X"], saved["y"]
    assert isinstance(net, flexnet.Sequential) and isinstance(opt, flexnet.optim.Adam)
    np.testing.assert_array_equal(net.forward(X), saved["net_outputs"])
    np.testing.assert_array_equal(clf.predict_proba(X), saved["classifier_proba"])
    assert net.layers[1].params == ("gamma", "beta") and net.n_params() == 12 * 10 + 10 + 20 + 10 * 8 + 8 + 16 + 8 * 3 + 3

    flexnet.fit(net, X, y, epochs=1, batch_size=20, optimizer=opt, seed=9)
    clf.partial_fit(X, y)
    after = np.load(FIXTURES / "pickles_after.npz")
    for name, value in {**net.parameters(), **dict(net.named_buffers())}.items():
        np.testing.assert_array_equal(value, after[name], err_msg=name)
    np.testing.assert_array_equal(clf.predict_proba(X), after["classifier_proba"])

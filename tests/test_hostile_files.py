"""Files built to exhaust memory or time: each is refused, or loaded, in bounded memory.

Every model file and checkpoint is judged against its own header before anything
is decompressed (flexnet.files.archive.ArchiveReader), and a model is built only
as large as the arrays the file declares. The bombs below are crafted byte by
byte (tests/crafted.py); each is opened in a fresh interpreter under a cap on its
address space, and the peak resident memory it took is measured there.
"""

import io
import json
import math
import subprocess
import sys

import crafted
import numpy as np
import pytest
from crafted import (
    Member,
    deflated,
    deflated_zeros,
    header_of,
    members_of,
    npy,
    npy_header,
    stored,
    write_zip,
)

import flexnet
from flexnet.cli import main
from flexnet.files import archive
from flexnet.files.model_file import (
    SCALER_KINDS,
    ModelFileError,
    load,
    model_state,
    read_archive,
    write_archive,
)

GiB, MiB = 1 << 30, 1 << 20
#: What refusing (or loading) any of the small files below may take, beyond Python,
#: NumPy and flexnet themselves. Before these checks they took 0.5 to 2.6 GB.
BOUND = 150 * MiB


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small trained-looking model file with metadata: ``(path, members, header)``."""
    path = tmp_path_factory.mktemp("model") / "model.npz"
    net = flexnet.Network([64, 32, 10], seed=0)
    net.metadata = flexnet.data.make_metadata(None, input_shape=(8, 8), class_names=list("abcdefghij"),
                                              pixel_max=16)
    net.save(path)
    return path, members_of(path), header_of(path)


def _edited(header, edit):
    header = json.loads(json.dumps(header))
    edit(header)
    return header


def _replace(members, name, member):
    return [member if m.name == name else m for m in members]


# -- the bombs -------------------------------------------------------------------------


def _unlisted_zip_bomb(members, header):
    # The file: one member of 1 GiB of zeros in a 1.1 MB file.
    return members + [deflated_zeros("junk.npy", npy_header([GiB], "u1"), GiB)]


def _listed_zip_bomb(members, header):
    # The header lists it as a weight matrix, so it is not merely an extra member.
    header = _edited(header, lambda h: h["arrays"].update({"layers.0.W": {"shape": [16384, 16384], "dtype": "<f4"}}))
    bomb = deflated_zeros("layers.0.W.npy", npy_header([16384, 16384], "<f4"), GiB)
    return _replace(crafted.with_header(members, header), "layers.0.W.npy", bomb)


def _lying_file_size(members, header):
    # The directory gives the honest size and CRC, but the data inflate to 1 GiB.
    honest = next(m for m in members if m.name == "layers.0.W.npy")
    bomb = deflated_zeros("layers.0.W.npy", honest.data[:128], GiB)
    bomb.file_size, bomb.crc = honest.file_size, honest.crc
    return _replace(members, "layers.0.W.npy", bomb)


def _lying_compressed_size(members, header):
    # Claims 1 GiB of compressed data in a file of a few kilobytes.
    honest = next(m for m in members if m.name == "layers.0.W.npy")
    liar = Member(honest.name, honest.data, honest.file_size, honest.crc, compress_size=GiB)
    return _replace(members, "layers.0.W.npy", liar)


def _huge_npy_header(members, header):
    # A .npy header (version 2) that claims to be 2 GiB long; NumPy would read all of it.
    raw = b"\x93NUMPY\x02\x00" + (2 * GiB).to_bytes(4, "little") + bytes(1000)
    return _replace(members, "layers.0.W.npy", stored("layers.0.W.npy", raw))


def _million_layers(members, header):
    return crafted.with_header(members, _edited(header, lambda h: h["model"].update(layers=[{"class": "ReLU"}] * 10**6)))


def _many_layers(members, header):
    # Small enough to pass the header's caps: the layer cap refuses it before building any.
    return crafted.with_header(members, _edited(header, lambda h: h["model"].update(layers=[{"class": "ReLU"}] * 50_000)))


def _many_big_layers(members, header):
    # Each Linear(2000, 2000) alone is small, a hundred beside a few small arrays are 1.6 GB.
    big = {"class": "Linear", "config": {"in_features": 2000, "out_features": 2000}}
    return crafted.with_header(members, _edited(header, lambda h: h["model"].update(layers=[big] * 100)))


def _huge_layer_sizes(members, header):
    # The valid 72 KB model whose header claims sizes that would take 2.6 GB.
    return crafted.with_header(members, _edited(header, lambda h: h["model"].update(layer_sizes=[64, 15000, 15000, 10])))


def _huge_input_shape(members, header):
    return crafted.with_header(members, _edited(
        header, lambda h: h["model"]["metadata"].update(input_shape=[20000, 20000])))


def _huge_header(members, header):
    return crafted.with_header(members, json.dumps(header) + " " * (200 * MiB))


def _deep_nesting(members, header):
    return crafted.with_header(members, '{"x": ' + "[" * 3_000_000 + "]" * 3_000_000 + "}")


def _many_members(members, header):
    # 150,000 directory entries that all point at one tiny member, and an end record
    # that claims there are 3.
    shared = [Member("a.npy", b"", 0, 0)] + [Member("a.npy", b"", 0, 0, offset_to="a.npy")] * 150_000
    return members + shared


BOMBS = {
    "unlisted zip bomb": (_unlisted_zip_bomb, "more than a"),
    "listed zip bomb": (_listed_zip_bomb, "unpack to 1,073,7"),
    "lying file_size": (_lying_file_size, "Bad CRC-32"),
    "lying compressed size": (_lying_compressed_size, "past the end of the file"),
    "huge .npy header": (_huge_npy_header, "more than 4096"),
    "a million layers": (_million_layers, "more than the 8 MiB a flexnet header may take"),
    "50,000 layers": (_many_layers, "more than the 10,000 a file may list"),
    "many big layers": (_many_big_layers, ("layers.0: Linear(**{'in_features': 2000, 'out_features': 2000}) "
                                          "would be far larger than the arrays in the file")),
    "huge input_shape": (_huge_input_shape, "metadata.input_shape [20000, 20000]"),
    "huge header": (_huge_header, "more than the 8 MiB a flexnet header may take"),
    "deep nesting": (_deep_nesting, "dicts and lists, more than the 300,000"),
    "many members": (_many_members, "members, more than the 100,000 allowed"),
}


@pytest.fixture(scope="module")
def bombs(model, tmp_path_factory):
    _, members, header = model
    folder = tmp_path_factory.mktemp("bombs")
    made = {}
    for i, (name, (build, _)) in enumerate(BOMBS.items()):
        made[name] = folder / f"bomb{i}.npz"
        write_zip(made[name], build(members, header))
    made["huge layer_sizes"] = folder / "sizes.npz"
    write_zip(made["huge layer_sizes"], _huge_layer_sizes(members, header))
    return made


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_a_bomb_is_refused_in_bounded_memory(bombs, name):
    path = bombs[name]
    report = crafted.peak_memory(f"flexnet.load({str(path)!r})")
    assert report["outcome"].startswith(f"ModelFileError: {path}: "), report["outcome"][:300]
    assert BOMBS[name][1] in report["outcome"]
    assert report["peak"] - report["base"] < BOUND, f"{name}: {report['peak'] / MiB:.0f} MiB"


def test_flexnet_info_refuses_the_zip_bomb_in_bounded_memory(bombs, tmp_path):
    path = bombs["unlisted zip bomb"]
    report = crafted.peak_memory(f"report['outcome'] = main(['info', {str(path)!r}])")
    assert report["outcome"] == 2
    assert report["peak"] - report["base"] < BOUND
    done = subprocess.run([sys.executable, "-m", "flexnet", "info", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "not listed in the header" in done.stderr


def test_a_header_claiming_huge_layer_sizes_loads_without_building_them(bombs, model):
    report = crafted.peak_memory(f"report['outcome'] = type(flexnet.load({str(bombs['huge layer_sizes'])!r})).__name__")
    assert report["outcome"] == "Sequential"  # the sizes do not match its layers: not a Network
    assert report["peak"] - report["base"] < BOUND
    net, good = load(bombs["huge layer_sizes"]), load(model[0])
    x = np.random.default_rng(0).standard_normal((5, 64)).astype("float32")
    np.testing.assert_array_equal(net.forward(x), good.forward(x))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_memory_bound_holds_for_a_real_model(tmp_path, dtype):
    """The README's bound: loading takes at most twice the arrays, plus a constant
    (the layers' initial weights while they are built, then the file's; before,
    the layers were built twice and the arrays copied: 4 times the arrays).
    Here 8 or 16 MB of weights: loading takes 16 and 24 MB."""
    path = tmp_path / "big.npz"
    flexnet.Network([500, 2000, 500], dtype=dtype, seed=0).save(path)
    size = path.stat().st_size
    report = crafted.peak_memory(f"report['outcome'] = repr(flexnet.load({str(path)!r}))")
    assert report["outcome"] == f"Network([500, 2000, 500], dtype={dtype!r})"
    assert report["peak"] - report["base"] < 2 * size + 16 * MiB


def test_the_bombs_were_small_files(bombs):
    assert max(p.stat().st_size for p in bombs.values()) < 10 * MiB


# -- the checks one by one (in this process: small files) ----------------------------


def _refused(path, *parts) -> ModelFileError:
    with pytest.raises(ModelFileError) as info:
        load(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and "\n" not in text
    for part in parts:
        assert part in text, text[:500]
    return info.value


def test_the_header_is_capped_before_it_is_read(model, tmp_path, monkeypatch):
    _, members, header = model
    monkeypatch.setattr(archive, "MAX_HEADER_BYTES", 4000)
    path = tmp_path / "big-header.npz"
    write_zip(path, crafted.with_header(members, json.dumps(header) + " " * 4000))
    _refused(path, "__header__.json takes", "more than the 0 MiB")


def test_dicts_and_lists_in_the_header_are_counted_before_parsing(model, tmp_path, monkeypatch):
    _, members, header = model
    monkeypatch.setattr(archive, "MAX_HEADER_CONTAINERS", 100)
    path = tmp_path / "lists.npz"
    write_zip(path, crafted.with_header(members, _edited(header, lambda h: h.update(junk=[[]] * 200))))
    _refused(path, "holds 2", "dicts and lists, more than the 100")


def test_too_many_listed_arrays(model, tmp_path, monkeypatch):
    _, members, header = model  # 5 members: the header and 4 arrays
    monkeypatch.setattr(archive, "MAX_MEMBERS", 5)
    path = tmp_path / "listed.npz"
    ghosts = {f"ghost{i}": {"shape": [1], "dtype": "<f4"} for i in range(2)}
    write_zip(path, crafted.with_header(members, _edited(header, lambda h: h["arrays"].update(ghosts))))
    assert _refused(path).problems == ["the header lists 6 arrays, more than the 5 allowed"]


def test_the_zip_directory_is_judged_from_its_end_record(model, tmp_path, monkeypatch):
    path, members, _ = model
    monkeypatch.setattr(archive, "MAX_DIRECTORY_BYTES", 100)
    _refused(path, "the zip directory takes", "refused before reading it")
    monkeypatch.setattr(archive, "MAX_DIRECTORY_BYTES", 16 * MiB)
    monkeypatch.setattr(archive, "MAX_MEMBERS", 3)
    _refused(path, "the zip directory lists 5 members, more than the 3 allowed")
    lying = tmp_path / "count.npz"  # the end record says 1: the directory itself is counted
    write_zip(lying, members, claimed_entries=1)
    _refused(lying, "the zip directory holds 5 members, more than the 3 allowed")


def test_total_unpacked_size_is_capped_by_the_file_size(model, tmp_path, monkeypatch):
    path, _, _ = model
    monkeypatch.setattr(archive, "INFLATE_FLOOR", 0)
    monkeypatch.setattr(archive, "INFLATE_RATIO", 0.5)
    _refused(path, "its members unpack to", "refused before decompressing anything")


@pytest.mark.parametrize("spec, message", [
    ({"shape": [-1], "dtype": "<f4"}, "shape must be a list of whole numbers >= 0"),
    ({"shape": [True, 2], "dtype": "<f4"}, "shape must be a list of whole numbers >= 0"),
    ({"shape": [1] * 65, "dtype": "<f4"}, "shape must be a list of whole numbers >= 0"),
    ({"shape": "5, 4", "dtype": "<f4"}, "shape must be a list of whole numbers >= 0"),
    ({"shape": [5, 4], "dtype": "float"}, "dtype must be a NumPy type string"),
    ({"shape": [5, 4], "dtype": "<f4; rm -rf"}, "dtype must be a NumPy type string"),
    ({"shape": [5, 4], "dtype": None}, "dtype must be a NumPy type string"),
    ({"shape": [5, 4], "dtype": "|O"}, "has dtype object: refused"),
    ({"shape": [5, 4], "dtype": "<M8[s]"}, "refused, reading it would need pickle"),
    ([5, 4], "is not an object"),
])
def test_every_array_entry_of_the_header_is_checked(model, tmp_path, spec, message):
    _, members, header = model
    path = tmp_path / "entry.npz"
    write_zip(path, crafted.with_header(members, _edited(header, lambda h: h["arrays"].update({"layers.0.W": spec}))))
    err = _refused(path, message)
    assert any("'layers.0.W'" in p for p in err.problems)


def test_a_member_whose_size_does_not_fit_its_listing(model, tmp_path):
    _, members, _ = model
    path = tmp_path / "size.npz"
    # The listing and the .npy header agree, the member holds more data than both say.
    raw = npy(np.zeros((64, 32), "f4")) + bytes(64)
    write_zip(path, _replace(members, "layers.0.W.npy", stored("layers.0.W.npy", raw)))
    _refused(path, "array 'layers.0.W': its header says shape (64, 32) float32 (8,192 bytes) "
                   "but the member holds 8,256 bytes")


def test_a_npy_header_that_disagrees_with_the_listing_is_refused_before_its_data(model, tmp_path):
    _, members, _ = model
    path = tmp_path / "transposed.npz"
    # Same size as the listing says, another shape: found when the member is read.
    write_zip(path, _replace(members, "layers.0.W.npy", stored("layers.0.W.npy", npy(np.zeros((32, 64), "f4")))))
    assert _refused(path).problems == ["array 'layers.0.W' has shape (32, 64), the header says [64, 32]"]


def test_a_npy_header_holding_an_object_array_is_never_unpickled(model, tmp_path):
    _, members, _ = model
    # The listing says float32 (64, 32) and the size fits it; only the .npy header lies.
    preamble = io.BytesIO()
    np.lib.format.write_array_header_1_0(preamble, {"descr": "|O", "fortran_order": False, "shape": (1024,)})
    raw = preamble.getvalue() + bytes(64 * 32 * 4)
    path = tmp_path / "object.npz"
    write_zip(path, _replace(members, "layers.0.W.npy", stored("layers.0.W.npy", raw)))
    _refused(path, "array 'layers.0.W' has dtype object: refused, reading it would need pickle")


@pytest.mark.parametrize("method, message", [(12, "unsupported compression method 12"),
                                             (crafted.STORED, "stored uncompressed, but claims")])
def test_compression_that_cannot_be_what_it_claims(model, tmp_path, method, message):
    _, members, _ = model
    honest = next(m for m in members if m.name == "layers.0.b.npy")
    odd = Member(honest.name, honest.data, honest.file_size + (method == crafted.STORED), honest.crc, method)
    path = tmp_path / "method.npz"
    write_zip(path, _replace(members, "layers.0.b.npy", odd))
    _refused(path, "array 'layers.0.b' is corrupt", message)


def test_a_deflated_model_of_real_weights_still_loads(model, tmp_path):
    """Compression as such is fine (a user may re-zip a model): only the bounds count."""
    path, members, _ = model
    zipped = tmp_path / "deflated.npz"
    write_zip(zipped, [deflated(m.name, m.data) for m in members])
    x = np.random.default_rng(1).standard_normal((3, 64)).astype("float32")
    np.testing.assert_array_equal(load(zipped).forward(x), load(path).forward(x))


def test_layers_are_built_within_a_budget_from_the_declared_arrays(model, tmp_path):
    _, members, header = model
    path = tmp_path / "budget.npz"
    # The file declares 2,410 elements: the layers may ask for 4 times that plus 2**20. Each
    # Linear(600, 600) asks for 360,000: two fit, the third does not.
    big = {"class": "Linear", "config": {"in_features": 600, "out_features": 600}}
    write_zip(path, crafted.with_header(members, _edited(header, lambda h: h["model"].update(layers=[big] * 5))))
    err = _refused(path, "layers.2: Linear(**{'in_features': 600, 'out_features': 600}) would be far "
                         "larger than the arrays in the file (with the layers before it)")
    assert sum("far larger" in p for p in err.problems) == 1  # said once, nothing more built


def test_a_checkpoint_loads_as_a_model_without_reading_its_training_state(tmp_path):
    X = np.random.default_rng(0).standard_normal((40, 4)).astype("float32")
    net = flexnet.Network([4, 6, 3], seed=0)
    ckpt = tmp_path / "run.ckpt.npz"
    flexnet.fit(net, X, np.arange(40) % 3, epochs=1, optimizer="adam", checkpoint=ckpt)
    members = members_of(ckpt)
    moment = next(m for m in members if m.name.endswith("exp_avg.npy"))
    broken = bytearray(moment.data)
    broken[-1] ^= 0xFF  # its CRC no longer matches
    damaged = tmp_path / "damaged.ckpt.npz"
    write_zip(damaged, _replace(members, moment.name, Member(moment.name, bytes(broken), moment.file_size,
                                                             moment.crc)))
    x = X[:3]
    np.testing.assert_array_equal(load(damaged).forward(x), net.forward(x))  # the model part is whole
    with pytest.raises(ModelFileError, match="Bad CRC-32"):
        read_archive(damaged)  # as a resume reads it: everything
    with pytest.raises(ModelFileError, match="Bad CRC-32"):
        flexnet.fit(flexnet.Network([4, 6, 3], seed=0), X, np.arange(40) % 3, epochs=2, optimizer="adam",
                    resume=damaged)


def test_read_archive_reads_only_the_arrays_asked_for(tmp_path):
    path = tmp_path / "a.npz"
    write_archive(path, {}, {"a": np.arange(3), "b": np.ones((2, 2))})
    header, arrays = read_archive(path, ["b"])
    assert list(arrays) == ["b"] and sorted(header["arrays"]) == ["a", "b"]


def test_many_problems_make_one_line_of_bounded_length(model, tmp_path):
    _, members, _ = model
    path = tmp_path / "noisy.npz"
    extra = [stored(f"x{i}.npy", npy(np.zeros(1))) for i in range(500)]
    write_zip(path, members + extra)
    err = _refused(path, "500 problems", "; and 480 more")
    assert len(err.problems) == 500 and len(str(err)) < 3000


# -- metadata that does not fit the network ---------------------------------------------


def _with_metadata(tmp_path, metadata, *, net=None, name="meta.npz"):
    """A file whose metadata is ``metadata``, written around save's checks."""
    net = net or flexnet.Network([64, 32, 10], seed=0)
    net.metadata = metadata
    model, arrays = model_state(net)
    path = tmp_path / name
    write_archive(path, {"format": "flexnet-model", "format_version": 1, "model": model}, arrays)
    return path


SCALER = {"kind": "minmax", "per_feature": True, "n_features": 64}


@pytest.mark.parametrize("metadata, message", [
    ({"input_shape": [20000, 20000]}, ("metadata.input_shape [20000, 20000] holds 400,000,000 values, "
                                      "but the network takes 64 input features")),
    ({"input_shape": [8, 9]}, "metadata.input_shape [8, 9] holds 72 values"),
    ({"input_shape": [0, 64]}, "metadata.input_shape must be a list of positive whole numbers"),
    ({"input_shape": [8, 8.0]}, "metadata.input_shape must be a list of positive whole numbers"),
    ({"input_shape": "8x8"}, "metadata.input_shape must be a list of positive whole numbers"),
    ({"pixel_max": 0}, "metadata.pixel_max must be a finite number > 0"),
    ({"pixel_max": float("inf")}, "metadata.pixel_max must be a finite number > 0"),
    ({"scaler": {**SCALER, "offset": [0.0], "scale": [float("inf")]}}, "metadata.scaler.scale holds NaN or infinity"),
    ({"scaler": {**SCALER, "offset": [0.0], "scale": [1e300]}}, "metadata.scaler.scale holds NaN or infinity (in float32)"),
    ({"scaler": {**SCALER, "offset": [float("nan")], "scale": [1.0]}}, "metadata.scaler.offset holds NaN"),
    ({"scaler": {**SCALER, "offset": [0.0], "scale": [0.0]}}, "metadata.scaler.scale must be > 0"),
    ({"scaler": {**SCALER, "offset": [0.0], "scale": [1.0] * 63 + [-2.0]}}, "must be > 0 (inputs are divided by it), got -2.0 at index 63"),
    ({"scaler": {**SCALER, "offset": [0.0] * 10, "scale": [1.0]}}, "metadata.scaler.offset holds 10 values; expected 1 or one per input feature (64)"),
    ({"scaler": {**SCALER, "n_features": 65, "offset": [0.0], "scale": [1.0]}}, "metadata.scaler.n_features is 65"),
    ({"scaler": {**SCALER, "offset": ["a"], "scale": [1.0]}}, "metadata.scaler.offset must be numbers"),
    ({"scaler": {**SCALER, "offset": np.full(64, np.inf), "scale": np.ones(64)}}, "metadata.scaler.offset holds NaN or infinity"),
    ({"scaler": [1.0, 2.0]}, "metadata.scaler must be an object"),
    ({"scaler": {**SCALER, "kind": "robust", "offset": [0.0], "scale": [1.0]}}, "metadata.scaler.kind must be one of"),
    ({"class_names": list("abcdefghia")}, "metadata.class_names names 'a' twice"),
    ({"class_names": list("abc")}, "metadata.class_names has 3 names, but the network's 10 outputs encode 10 classes"),
    ({"class_names": [1, 2]}, "metadata.class_names must be a list of strings"),
])
def test_metadata_is_checked_against_the_network_at_load(tmp_path, metadata, message):
    path = _with_metadata(tmp_path, metadata)
    _refused(path, message)
    assert main(["info", str(path)]) == 2


def test_class_names_of_a_single_output_binary_model(tmp_path):
    net = flexnet.Network([3, 1], loss="bce_with_logits", seed=0)
    assert load(_with_metadata(tmp_path, {"class_names": ["no", "yes"]}, net=net)).metadata["class_names"] == ["no", "yes"]
    _refused(_with_metadata(tmp_path, {"class_names": ["yes"]}, net=net, name="one.npz"),
             "metadata.class_names has 1 names, but the network's one output encodes 2 classes")


def test_metadata_that_fits_loads(tmp_path):
    assert SCALER_KINDS == flexnet.data.Scaler.KINDS  # files/ cannot import data/: the two lists agree
    meta = {"input_shape": [8, 8], "pixel_max": 16.0, "class_names": [str(i) for i in range(10)],
            "scaler": {**SCALER, "offset": np.zeros(64), "scale": np.full(64, 2.0)}, "dataset": "digits",
            "notes": {"anything": [1, 2, 3]}}
    net = load(_with_metadata(tmp_path, meta))
    assert net.metadata["input_shape"] == [8, 8] and net.metadata["notes"] == {"anything": [1, 2, 3]}


def test_predict_refuses_a_model_with_a_huge_input_shape_before_reading_images(tmp_path, capsys):
    pytest.importorskip("PIL")
    from PIL import Image

    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    path = _with_metadata(tmp_path, {"input_shape": [20000, 20000], "pixel_max": 16.0})
    assert main(["predict", str(path), str(image)]) == 2
    assert "metadata.input_shape [20000, 20000]" in capsys.readouterr().err


def test_save_checks_metadata_too(tmp_path):
    net = flexnet.Network([64, 10], seed=0)
    net.metadata = {"class_names": ["a"] * 10}
    with pytest.raises(ValueError, match="metadata.class_names names 'a' twice"):
        net.save(tmp_path / "dup.npz")
    assert not (tmp_path / "dup.npz").exists()


def test_make_metadata_and_the_scaler_refuse_what_load_would(tmp_path):
    with pytest.raises(ValueError, match="class name 'cat' is given twice"):
        flexnet.data.make_metadata(None, class_names=["cat", "dog", "cat"])
    with pytest.raises(ValueError, match="input_shape must be positive whole numbers"):
        flexnet.data.make_metadata(None, input_shape=(0, 8))
    with pytest.raises(ValueError, match="pixel_max must be a finite number > 0"):
        flexnet.data.make_metadata(None, pixel_max=float("nan"))
    state = flexnet.data.Scaler().fit(np.arange(12.0).reshape(4, 3)).to_dict()
    for key, value, message in [("scale", [1.0, math.inf, 1.0], r"scale\[1\] is inf"),
                                ("scale", [1.0, 1e300, 1.0], r"scale\[1\] is inf in float32"),
                                ("offset", [math.nan, 0.0, 0.0], r"offset\[0\] is nan"),
                                ("scale", [1.0, 0.0, 1.0], r"scale\[1\] is 0.0; inputs are divided")]:
        with pytest.raises(ValueError, match=message):
            flexnet.data.Scaler.from_dict({**state, key: value})


def test_train_refuses_more_outputs_than_named_classes_before_training(tmp_path, capsys):
    """The model file must name each output, so the mismatch is found before training, not at save."""
    csv = tmp_path / "pets.csv"
    rows = [f"{i % 5},{(i * 7) % 3},{['cat', 'dog', 'eel'][i % 3]}" for i in range(30)]
    csv.write_text("a,b,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "m.npz"
    assert main(["train", "--data", str(csv), "--arch", "2,8,5", "--epochs", "1", "--out", str(out), "--quiet"]) == 2
    assert "the last size must be the number of classes, 3" in capsys.readouterr().err
    assert not out.exists()
    assert main(["train", "--data", str(csv), "--arch", "2,8,3", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    assert load(out).metadata["class_names"] == ["cat", "dog", "eel"]

"""Loaders, downloads, preprocessing and the named data sets."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from flexnet import data, datasets
from flexnet.data import DataFileError, DownloadError, Scaler

# -- CSV -----------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_header_and_label_by_name(tmp_path):
    p = write(tmp_path / "d.csv", "a,b,label\n1,2,0\n3.5,-4,1\n5,6e-1,2\n")
    X, y = data.read_csv(p, "label")
    assert X.dtype == np.float32 and X.shape == (3, 2)
    np.testing.assert_allclose(X, [[1, 2], [3.5, -4], [5, 0.6]], rtol=1e-6)
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 2]


def test_csv_no_header_label_by_index_and_float64(tmp_path):
    p = write(tmp_path / "d.csv", "7,1,2\n8,3,4\n")
    X, y = data.read_csv(p, 0, dtype="float64")
    assert X.dtype == np.float64 and X.tolist() == [[1, 2], [3, 4]]
    assert y.tolist() == [7, 8]


def test_csv_text_labels_are_encoded(tmp_path):
    p = write(tmp_path / "d.csv", "x,kind\n1,cat\n2,dog\n3,cat\n")
    X, y = data.read_csv(p, "kind")
    ids, names = data.encode_labels(y)
    assert names == ["cat", "dog"] and ids.tolist() == [0, 1, 0]


@pytest.mark.parametrize("text, message", [
    ("a,b,y\n1,2,0\n3,,1\n", "line 3, column 2 (b): missing value"),
    ("a,b,y\n1,2,0\n3,NaN,1\n", "line 3, column 2 (b): missing value"),
    ("a,b,y\n1,2,0\n3,abc,1\n", "line 3, column 2 (b): expected a number, got 'abc'"),
    ("a,b,y\n1,2,0\n3,4\n", "line 3: expected 3 cells (as in line 1), got 2"),
    ("a,b,y\n1,2,0\n3,4,5,6\n", "line 3: expected 3 cells (as in line 1), got 4"),
    ("a,b,y\n1,2,\n", "line 2, column 3 (y): missing label"),
])
def test_csv_errors_name_file_line_and_column(tmp_path, text, message):
    p = write(tmp_path / "bad.csv", text)
    with pytest.raises(DataFileError) as err:
        data.read_csv(p, "y")
    assert str(p) in str(err.value) and message in str(err.value)


def test_csv_label_column_problems(tmp_path):
    p = write(tmp_path / "d.csv", "a,b\n1,2\n")
    with pytest.raises(DataFileError, match="no column named 'c'"):
        data.read_csv(p, "c")
    with pytest.raises(DataFileError, match="out of range for 2 columns"):
        data.read_csv(p, 5)
    q = write(tmp_path / "n.csv", "1,2\n3,4\n")
    with pytest.raises(DataFileError, match="no header row"):
        data.read_csv(q, "label")
    with pytest.raises(FileNotFoundError):
        data.read_csv(tmp_path / "missing.csv")


# -- NPZ -----------------------------------------------------------------------


def test_npz_round_trip_and_errors(tmp_path):
    X = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    np.savez(tmp_path / "ok.npz", X=X, y=np.array([0, 1, 0]))
    X2, y2 = data.read_npz(tmp_path / "ok.npz")
    assert X2.dtype == np.uint8 and X2.shape == (3, 2, 2) and y2.tolist() == [0, 1, 0]

    np.savez(tmp_path / "nox.npz", features=X)
    with pytest.raises(DataFileError, match="expected an array named 'X'"):
        data.read_npz(tmp_path / "nox.npz")
    np.savez(tmp_path / "obj.npz", X=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataFileError, match="cannot read arrays"):
        data.read_npz(tmp_path / "obj.npz")
    np.savez(tmp_path / "len.npz", X=X, y=np.array([0, 1]))
    with pytest.raises(DataFileError, match=r"'y' must have shape \(3,\)"):
        data.read_npz(tmp_path / "len.npz")
    write(tmp_path / "junk.npz", "not a zip")
    with pytest.raises(DataFileError, match="junk.npz"):
        data.read_npz(tmp_path / "junk.npz")


# -- IDX -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["images.idx", "images.idx.gz"])
def test_idx_round_trip(tmp_path, name):
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    data.write_idx(tmp_path / name, images)
    back = data.read_idx(tmp_path / name, ndim=3)
    assert back.dtype == np.uint8 and np.array_equal(back, images)
    floats = np.linspace(0, 1, 6).reshape(2, 3)
    data.write_idx(tmp_path / "f.idx", floats)
    assert np.array_equal(data.read_idx(tmp_path / "f.idx"), floats)


def idx_bytes(code=0x08, dims=(2, 3), payload=None):
    header = bytes([0, 0, code, len(dims)]) + np.array(dims, dtype=">u4").tobytes()
    return header + (payload if payload is not None else bytes(int(np.prod(dims))))


@pytest.mark.parametrize("raw, message", [
    (b"\x01\x02\x08\x01" + bytes(8), "bad IDX magic number"),
    (idx_bytes(code=0x07), "unknown IDX type code 0x07"),
    (idx_bytes(payload=bytes(5)), "found 5; the file truncated"),
    (idx_bytes(payload=bytes(7)), "has trailing bytes"),
    (idx_bytes()[:10], "header cut short"),
    (b"\x00\x00", "too short"),
    (idx_bytes(dims=(6,)), "expected an IDX file with 2 dimension(s), the header says 1"),
])
def test_idx_corrupt_files_say_what_is_wrong(tmp_path, raw, message):
    p = tmp_path / "bad.idx"
    p.write_bytes(raw)
    with pytest.raises(DataFileError) as err:
        data.read_idx(p, ndim=2)
    assert message in str(err.value) and str(p) in str(err.value)


def test_idx_damaged_gzip(tmp_path):
    good = gzip.compress(idx_bytes(dims=(100, 100)))
    p = tmp_path / "cut.idx.gz"
    p.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataFileError, match="damaged gzip data"):
        data.read_idx(p)


# -- downloads against a local server ----------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 (http.server's name)
        name = self.path.lstrip("/")
        if name.startswith("truncated/"):
            body = self.files[name.split("/", 1)[1]]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])  # then hang up
            return
        if name.startswith("wrong/"):
            body = b"something else entirely"
        elif name.startswith("good/") and name[5:] in self.files:
            body = self.files[name[5:]]
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    payload = os.urandom(200_000)
    _Handler.files = {"blob.bin": payload}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield base, payload, hashlib.sha256(payload).hexdigest()
    httpd.shutdown()
    httpd.server_close()


def dead_url() -> str:
    """A URL on a port where nothing listens."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/blob.bin"


def test_download_good_file(server, tmp_path):
    base, payload, digest = server
    dest = data.download(base + "good/blob.bin", tmp_path / "sub" / "blob.bin", digest, progress=False)
    assert dest.read_bytes() == payload
    assert [p.name for p in dest.parent.iterdir()] == ["blob.bin"]  # no temporary left behind


@pytest.mark.parametrize("kind, message", [
    ("wrong", "wrong checksum"),
    ("truncated", "truncated download"),
    ("missing", "HTTP 404"),
    ("down", "cannot connect"),
])
def test_download_failures_fall_back_to_next_mirror(server, tmp_path, kind, message):
    base, payload, digest = server
    bad = {"wrong": base + "wrong/blob.bin", "truncated": base + "truncated/blob.bin",
           "missing": base + "good/nothing.bin", "down": dead_url()}[kind]
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError) as err:
        data.download([bad], dest, digest, progress=False, timeout=5)
    assert message in str(err.value) and bad in str(err.value)
    assert not dest.exists() and list(tmp_path.iterdir()) == []
    # the same failure followed by a good mirror: the good copy arrives
    data.download([bad, base + "good/blob.bin"], dest, digest, progress=False, timeout=5)
    assert dest.read_bytes() == payload


def test_download_error_lists_every_mirror(server, tmp_path):
    base, _, digest = server
    urls = [base + "wrong/blob.bin", base + "truncated/blob.bin", dead_url()]
    with pytest.raises(DownloadError) as err:
        data.download(urls, tmp_path / "blob.bin", digest, progress=False, timeout=5)
    text = str(err.value)
    assert "3 mirror(s)" in text and "wrong checksum" in text and "truncated" in text and "cannot connect" in text


def test_idx_dataset_downloads_missing_files(server, tmp_path, monkeypatch):
    """mnist() fetches files that are on no search path, checks them, caches them."""
    base, _, _ = server
    rng = np.random.default_rng(0)
    blobs = {}
    for split, n in (("train", 6), ("t10k", 4)):
        for kind, arr in (("images-idx3", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
                          ("labels-idx1", np.arange(n, dtype=np.uint8) % 10)):
            path = tmp_path / "src" / f"{split}-{kind}-ubyte.gz"
            path.parent.mkdir(exist_ok=True)
            data.write_idx(path, arr)
            blobs[path.name] = path.read_bytes()
    _Handler.files.update(blobs)
    monkeypatch.setitem(datasets.IDX_FILES, "mnist",
                        {k: hashlib.sha256(v).hexdigest() for k, v in blobs.items()})
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (dead_url().rsplit("/", 1)[0] + "/", base + "good/"))
    monkeypatch.setenv("FLEXNET_DATA", str(tmp_path / "store"))
    assert "not present" in datasets.REGISTRY["mnist"].where()
    (X, y), (Xt, yt) = datasets.mnist(progress=False)
    assert X.shape == (6, 784) and X.dtype == np.float32 and Xt.shape == (4, 784) and y.dtype == np.int64
    assert sorted(p.name for p in (tmp_path / "store" / "mnist").iterdir()) == sorted(blobs)
    assert "present in" in datasets.REGISTRY["mnist"].where()
    with pytest.raises(FileNotFoundError):
        monkeypatch.setenv("FLEXNET_DATA", str(tmp_path / "empty"))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        datasets.mnist(download=False)


# -- preprocessing -------------------------------------------------------------


def test_scaler_minmax_images_stays_float32():
    X = np.array([[0, 255, 51], [0, 0, 102]], dtype=np.uint8)
    s = Scaler("minmax", per_feature=False).fit(X)
    out = s.transform(X)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, X / 255.0, rtol=1e-6)


def test_scaler_standard_per_feature_and_constant_column():
    X = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]], dtype=np.float32)
    s = Scaler("standard").fit(X)
    out = s.transform(X)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], [-1.2247449, 0, 1.2247449], rtol=1e-5)
    np.testing.assert_allclose(out[:, 1], 0)  # constant column: shifted, not divided by 0


def test_scaler_round_trips_through_json_and_checks_width():
    import json

    X = np.random.default_rng(0).normal(3, 2, (50, 4))
    s = Scaler("standard", dtype="float64").fit(X)
    s2 = Scaler.from_dict(json.loads(json.dumps(s.to_dict())), dtype="float64")
    np.testing.assert_allclose(s.transform(X), s2.transform(X))
    with pytest.raises(ValueError, match="fitted on 4 features, got 3"):
        s.transform(X[:, :3])
    with pytest.raises(ValueError, match="kind must be one of"):
        Scaler("zscore")
    with pytest.raises(ValueError, match="call fit"):
        Scaler().transform(X)


def test_stratified_split_keeps_proportions_and_is_seeded():
    y = np.array([0] * 80 + [1] * 20 + [2] * 2)
    X = np.arange(len(y))[:, None]
    Xa, Xb, ya, yb = data.train_test_split(X, y, 0.25, seed=3)
    assert np.bincount(yb).tolist() == [20, 5, 1]
    assert sorted(np.concatenate([Xa, Xb]).ravel().tolist()) == list(range(len(y)))
    again = data.train_test_split(X, y, 0.25, seed=3)
    assert np.array_equal(again[1], Xb)
    with pytest.raises(ValueError, match="between 0 and 1"):
        data.train_test_split(X, y, 1.5)


def test_prepare_input_applies_the_saved_steps():
    images = np.random.default_rng(0).integers(0, 256, (3, 4, 4), dtype=np.uint8)
    scaler = Scaler("minmax", per_feature=False).fit(data.flatten(images))
    meta = data.make_metadata(scaler, input_shape=(4, 4), class_names=["a", "b"])
    out = data.prepare_input(images, meta)
    assert out.shape == (3, 16) and out.dtype == np.float32
    np.testing.assert_allclose(out, scaler.transform(images.reshape(3, 16)))
    with pytest.raises(ValueError, match=r"expects inputs of shape \(4, 4\)"):
        data.prepare_input(np.zeros((2, 5, 5)), meta)


def test_read_images_resizes_and_greys(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rgb = np.zeros((56, 40, 3), dtype=np.uint8)
    rgb[:, 20:] = 255
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = data.read_images([tmp_path / "a.png"], (28, 28))
    assert out.shape == (1, 28, 28) and out.dtype == np.float32
    assert out[0, :, :10].max() == 0 and out[0, :, -10:].min() == 255
    write(tmp_path / "b.png", "not an image")
    with pytest.raises(DataFileError, match="not an image"):
        data.read_images([tmp_path / "b.png"], (28, 28))


# -- named data sets -------------------------------------------------------------

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def test_fashion_mnist_debian_files_load():
    """CI installs the Debian package dataset-fashion-mnist; this must run there."""
    if not FASHION_DIR.is_dir() and not os.environ.get("CI"):
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    (X, y), (Xt, yt) = datasets.fashion_mnist(download=False)
    assert X.shape == (60000, 784) and Xt.shape == (10000, 784)
    assert X.dtype == np.float32 and 0.0 <= X.min() and X.max() == 1.0
    assert y.shape == (60000,) and yt.shape == (10000,)
    assert np.bincount(y).tolist() == [6000] * 10 and np.bincount(yt).tolist() == [1000] * 10
    ds = datasets.load("fashion-mnist", download=False)
    assert ds.X_train.dtype == np.uint8 and ds.input_shape == (28, 28)
    assert ds.class_names[9] == "Ankle boot"


def test_digits_and_edges_by_name():
    pytest.importorskip("sklearn")
    ds = datasets.load("digits")
    assert ds.X_train.shape[1:] == (8, 8) and ds.n_classes == 10
    assert len(ds.X_train) + len(ds.X_test) == 1797
    (X, y), _ = datasets.digits()
    assert X.dtype == np.float32 and X.shape[1] == 64 and X.max() == 1.0
    e = datasets.load("edges")
    assert e.X_train.shape == (200, 25) and e.class_names == ["edge", "no edge"]


def test_load_user_files_and_bad_names(tmp_path):
    p = write(tmp_path / "t.csv", "f1,f2,species\n1,2,setosa\n3,4,virginica\n")
    ds = datasets.load(str(p), label="species")
    assert ds.class_names == ["setosa", "virginica"] and ds.y_train.tolist() == [0, 1]
    assert ds.X_test is None and ds.n_features == 2
    with pytest.raises(ValueError, match="expected a data set name"):
        datasets.load("imagenet")
    with pytest.raises(FileNotFoundError):
        datasets.load(str(tmp_path / "nope.csv"))


def test_registry_lists_every_dataset():
    assert set(datasets.REGISTRY) >= {"edges", "digits", "mnist", "fashion-mnist"}
    for info in datasets.REGISTRY.values():
        assert info.description and isinstance(info.where(), str)

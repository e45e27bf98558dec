"""Reading data from files and preparing it for a network.

Readers for CSV, NPZ and IDX files, a downloader that checks what it fetched,
and the preprocessing that travels with a trained model: a :class:`Scaler`,
the input shape of images, and a stratified train/validation split.

Every array handed to a network is float32 (float64 on request). The classic
quiet upcast, ``uint8_images / 255.0`` (which gives float64), is avoided by
converting to float32 first and scaling with float32 numbers.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import http.client
import math
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ._checks import as_float_dtype, check_finite_rows
from .layers import make_rng


class DataFileError(ValueError):
    """A data file that cannot be read as what it claims to be."""


class DownloadError(OSError):
    """No mirror delivered a file with the expected checksum."""


# -- CSV ---------------------------------------------------------------------

_MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_csv(path, label=-1, *, header: bool | None = None, delimiter: str = ",", dtype="float32"):
    """Read a table of numbers with one label column.

    Args:
        path: the CSV file.
        label: the label column, by name (needs a header row) or by index
            (negative counts from the end; default: the last column).
            ``None`` reads features only.
        header: whether the first row holds column names; default: guessed
            (a first row with any cell that is not a number is a header).
        delimiter: the cell separator.
        dtype: float32 (default) or float64 for the features.

    Returns:
        ``(X, y)``: X of shape (N, columns - 1) and ``dtype``; y of shape (N,):
        int64 when every label is a whole number, a float array otherwise, and
        an array of strings for text labels (see :func:`encode_labels`).
        y is None when ``label`` is None.

    Raises:
        DataFileError: naming the file, line and column of a missing value,
            text in a numeric column, or a row with the wrong number of cells.
    """
    path = Path(path)
    dtype = as_float_dtype(dtype, "read_csv(dtype)")
    if not path.is_file():
        raise FileNotFoundError(f"read_csv: no such file: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [(i, row) for i, row in enumerate(csv.reader(f, delimiter=delimiter), start=1)
                    if row and any(cell.strip() for cell in row)]
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not a UTF-8 text file (byte {exc.object[exc.start:exc.start + 1]!r} "
                            f"at offset {exc.start}); save the CSV as UTF-8") from None
    except csv.Error as exc:
        raise DataFileError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise DataFileError(f"{path}: the file holds no rows")
    first_line, first = rows[0]
    if header is None:
        header = not all(_is_number(c.strip()) for c in first)
    names = [c.strip() for c in first] if header else [f"column {j}" for j in range(len(first))]
    body = rows[1:] if header else rows
    if not body:
        raise DataFileError(f"{path}: the file has a header row but no data rows")
    n_cols = len(names)
    if label is None:
        label_col = None
    elif isinstance(label, str) and not label.lstrip("-").isdigit():
        if not header:
            raise DataFileError(
                f"{path}: label column {label!r} given by name, but the file has no header row; "
                "give the label column by index instead (e.g. --label -1)"
            )
        if label not in names:
            raise DataFileError(f"{path}: no column named {label!r}; the columns are {names}")
        label_col = names.index(label)
    else:
        index = int(label)
        if not -n_cols <= index < n_cols:
            raise DataFileError(f"{path}: label column {index} is out of range for {n_cols} columns")
        label_col = index % n_cols
    X = np.empty((len(body), n_cols - (label_col is not None)), dtype=dtype)
    labels: list[str] = []
    for r, (line, row) in enumerate(body):
        if len(row) != n_cols:
            raise DataFileError(
                f"{path} line {line}: expected {n_cols} cells (as in line {first_line}), got {len(row)}"
            )
        k = 0
        for j, cell in enumerate(row):
            cell = cell.strip()
            if j == label_col:
                if cell.lower() in _MISSING:
                    raise DataFileError(f"{path} line {line}, column {j + 1} ({names[j]}): missing label")
                labels.append(cell)
                continue
            if cell.lower() in _MISSING:
                raise DataFileError(
                    f"{path} line {line}, column {j + 1} ({names[j]}): missing value {cell!r}; "
                    "fill it in or drop the row"
                )
            try:
                X[r, k] = float(cell)
            except ValueError:
                raise DataFileError(
                    f"{path} line {line}, column {j + 1} ({names[j]}): expected a number, got {cell!r}"
                ) from None
            k += 1
    if not np.isfinite(X).all():
        r, k = np.argwhere(~np.isfinite(X))[0]
        j = [c for c in range(n_cols) if c != label_col][k]
        raise DataFileError(f"{path} line {body[r][0]}, column {j + 1} ({names[j]}): "
                            f"{body[r][1][j].strip()!r} is not a finite {dtype.name} value")
    if label_col is None:
        return X, None
    return X, _parse_labels(labels)


def _parse_labels(labels: list[str]) -> np.ndarray:
    """Whole numbers -> int64, other numbers -> float64, anything else -> strings."""
    if all(_is_number(s) for s in labels):
        values = np.array([float(s) for s in labels])
        if np.isfinite(values).all() and (values == np.round(values)).all():
            return values.astype(np.int64)
        return values
    return np.array(labels)


def encode_labels(y) -> tuple[np.ndarray, list[str]]:
    """Text labels -> ``(class ids, class names)``, names sorted so ids are stable."""
    y = np.asarray(y)
    names, ids = np.unique(y.astype(str), return_inverse=True)
    return ids.astype(np.int64), [str(n) for n in names]


# -- NPZ ---------------------------------------------------------------------


def read_npz(path, *, x_key: str = "X", y_key: str = "y"):
    """Read arrays ``X`` and (optionally) ``y`` from an ``.npz`` file.

    Object arrays are refused (``allow_pickle=False``): loading them would run
    code from the file.

    Returns:
        ``(X, y)`` as stored (no conversion); y is None if the file has no ``y``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_npz: no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = list(f.keys())
            if x_key not in keys:
                raise DataFileError(
                    f"{path}: expected an array named {x_key!r} (and {y_key!r} for labels), got {keys}; "
                    f"save with np.savez(path, {x_key}=features, {y_key}=labels)"
                )
            X = f[x_key]
            y = f[y_key] if y_key in keys else None
    except DataFileError:
        raise
    except ValueError as exc:  # object arrays: "Object arrays cannot be loaded when allow_pickle=False"
        raise DataFileError(f"{path}: cannot read arrays: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFileError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    if X.dtype.kind not in "biuf":
        raise DataFileError(f"{path}: {x_key!r} must be numeric, got dtype {X.dtype}")
    if X.ndim < 2:
        raise DataFileError(f"{path}: {x_key!r} must have shape (N, features...), got {X.shape}")
    if y is not None and (y.ndim != 1 or len(y) != len(X)):
        raise DataFileError(f"{path}: {y_key!r} must have shape ({len(X)},), got {y.shape}")
    try:
        for key, arr in ((x_key, X), (y_key, y)):
            if arr is not None:
                check_finite_rows(arr, f"{path}: {key!r}")
    except ValueError as exc:
        raise DataFileError(str(exc)) from None
    return X, y


# -- IDX (the MNIST file format) ---------------------------------------------

#: IDX type codes -> big-endian NumPy dtypes.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_maybe_gzip(path: Path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise DataFileError(f"{path}: damaged gzip data ({exc}); delete the file and fetch it again") from None


def read_idx(path, *, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into an array.

    The header is a magic number (two zero bytes, a type code, the number of
    dimensions) followed by each dimension as a big-endian int32.

    Args:
        path: the file.
        ndim: the number of dimensions expected (3 for images, 1 for labels).

    Returns:
        The array in native byte order (uint8 for MNIST files).

    Raises:
        DataFileError: naming what is wrong: magic number, type code,
            dimensions, or a data size that does not match the header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_idx: no such file: {path}")
    data = _read_maybe_gzip(path)
    if len(data) < 4:
        raise DataFileError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise DataFileError(
            f"{path}: bad IDX magic number {data[:4].hex()}: expected two zero bytes first; "
            "not an IDX file"
        )
    code, dims = data[2], data[3]
    if code not in IDX_DTYPES:
        raise DataFileError(
            f"{path}: unknown IDX type code 0x{code:02x}; expected one of "
            + ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        )
    if dims == 0:
        raise DataFileError(f"{path}: IDX header declares 0 dimensions")
    if ndim is not None and dims != ndim:
        raise DataFileError(f"{path}: expected an IDX file with {ndim} dimension(s), the header says {dims}")
    head = 4 + 4 * dims
    if len(data) < head:
        raise DataFileError(f"{path}: header cut short: {dims} dimensions need {head} bytes, file has {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=dims, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = math.prod(shape) * dtype.itemsize
    got = len(data) - head
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise DataFileError(
            f"{path}: header says shape {shape} of {dtype.name} = {expected} data bytes, "
            f"found {got}; the file {what}"
        )
    return np.frombuffer(data, dtype=dtype, offset=head).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed if the name ends in .gz)."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"write_idx: no IDX type code for dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    payload = header + array.astype(IDX_DTYPES[code]).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


# -- downloading -------------------------------------------------------------


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _progress_bar(total, desc: str, progress):
    """A tqdm bar, or None when tqdm is missing or progress is off."""
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)


def _fetch_one(url: str, tmp, timeout: float, progress) -> str:
    """Stream ``url`` into the open file ``tmp``; return the SHA-256 of what came."""
    h = hashlib.sha256()
    received = 0
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        bar = _progress_bar(total, Path(urllib.parse.urlparse(url).path).name, progress)
        try:
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                tmp.write(chunk)
                h.update(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)
    return h.hexdigest()


def download(urls: Sequence[str] | str, dest, sha256: str, *, progress=None, timeout: float = 30.0) -> Path:
    """Fetch a file from the first mirror that delivers the right bytes.

    Each mirror is tried in turn; a download counts only if it is complete and
    its SHA-256 matches. The file is written to a temporary name next to
    ``dest`` and renamed into place, so ``dest`` is never half-written.

    Args:
        urls: mirror URLs of the same file, tried in order.
        dest: where the file goes (its folder is created).
        sha256: the expected hex digest.
        progress: show a tqdm progress bar (None: when tqdm is installed).
        timeout: seconds to wait for each server.

    Returns:
        ``dest`` as a Path.

    Raises:
        DownloadError: no mirror delivered; the message says what each did.
    """
    if isinstance(urls, str):
        urls = [urls]
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as tmp:
                digest = _fetch_one(url, tmp, timeout, progress)
            if digest != sha256.lower():
                failures.append(f"{url}: wrong checksum (got sha256 {digest[:12]}..., expected {sha256[:12]}...)")
                continue
            os.replace(tmp_name, dest)
            return dest
        except http.client.IncompleteRead as exc:
            failures.append(f"{url}: truncated download ({exc.expected} bytes missing)")
        except urllib.error.HTTPError as exc:
            failures.append(f"{url}: HTTP {exc.code} {exc.reason}")
        except urllib.error.URLError as exc:
            failures.append(f"{url}: cannot connect ({exc.reason})")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
    raise DownloadError(
        f"could not download {dest.name} from {len(urls)} mirror(s): " + "; ".join(failures)
        + f". Put the file at {dest} yourself to skip the download."
    )


# -- preprocessing -----------------------------------------------------------


def flatten(X) -> np.ndarray:
    """Images (N, H, W) or (N, H, W, C) -> rows (N, H*W*C); 2-D input is returned as is."""
    X = np.asarray(X)
    return X if X.ndim == 2 else X.reshape(len(X), -1)


class Scaler:
    """Maps raw features to the range a network trains well on; saved with the model.

    ``"minmax"`` maps each feature's [min, max] to [0, 1]; ``"standard"`` to
    mean 0 and standard deviation 1; ``"none"`` only converts the dtype. With
    ``per_feature=False`` one statistic is taken over all features, which is
    what images want: minmax then divides 8-bit pixels by 255 when the data
    spans 0..255 (a pixel that is always black must not be scaled by 1/0).

    Shapes:
        X: (N, features) -> transform: (N, features) of ``dtype``.
    """

    KINDS = ("minmax", "standard", "none")

    def __init__(self, kind: str = "minmax", *, per_feature: bool = True, dtype="float32"):
        if kind not in self.KINDS:
            raise ValueError(f"Scaler: kind must be one of {self.KINDS}, got {kind!r}")
        self.kind = kind
        self.per_feature = bool(per_feature)
        self.dtype = as_float_dtype(dtype, "Scaler(dtype)")
        self.offset: np.ndarray | None = None
        self.scale: np.ndarray | None = None  # x_scaled = (x - offset) / scale
        self.n_features: int | None = None

    def fit(self, X) -> "Scaler":
        X = self._check(X, fitting=True)
        axis = 0 if self.per_feature else None
        if self.kind == "minmax":
            lo = X.min(axis=axis).astype(np.float64)
            span = X.max(axis=axis).astype(np.float64) - lo
        elif self.kind == "standard":
            lo, span = _mean_std(X, axis)
        else:
            lo, span = np.zeros(()), np.ones(())
        span = np.where(span > 1e-12, span, 1.0)  # a constant feature is left unscaled
        self.offset = np.atleast_1d(lo).astype(self.dtype)
        self.scale = np.atleast_1d(span).astype(self.dtype)
        self.n_features = X.shape[1]
        return self

    def transform(self, X) -> np.ndarray:
        if self.offset is None:
            raise ValueError("Scaler.transform: call fit(X) first")
        X = self._check(X)
        out = X.astype(self.dtype)  # a copy; every operand below is self.dtype
        out -= self.offset
        out /= self.scale
        return out

    def fit_transform(self, X) -> np.ndarray:
        return self.fit(X).transform(X)

    def _check(self, X, fitting: bool = False) -> np.ndarray:
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"Scaler: expected numeric features, got dtype {X.dtype}")
        if X.ndim != 2:
            raise ValueError(f"Scaler: expected shape (N, features), got {X.shape}; flatten images first")
        if not fitting and self.n_features is not None and X.shape[1] != self.n_features:
            raise ValueError(
                f"Scaler: fitted on {self.n_features} features, got {X.shape[1]}; "
                "the input must be prepared like the training data"
            )
        if len(X) == 0:
            raise ValueError("Scaler: got no rows")
        return X

    def to_dict(self) -> dict:
        """JSON-friendly state, kept in ``net.metadata['scaler']``."""
        if self.offset is None:
            raise ValueError("Scaler.to_dict: the scaler is not fitted")
        return {"kind": self.kind, "per_feature": self.per_feature, "n_features": self.n_features,
                "offset": self.offset.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, state: dict, dtype="float32") -> "Scaler":
        try:
            s = cls(state["kind"], per_feature=state.get("per_feature", True), dtype=dtype)
            s.offset = np.asarray(state["offset"], dtype=s.dtype).reshape(-1)
            s.scale = np.asarray(state["scale"], dtype=s.dtype).reshape(-1)
            s.n_features = state.get("n_features")
        except (KeyError, TypeError) as exc:
            raise ValueError(f"Scaler.from_dict: incomplete scaler state ({exc})") from None
        if s.offset.shape != s.scale.shape or (s.scale <= 0).any():
            raise ValueError("Scaler.from_dict: offset and scale must have the same length and scale > 0")
        return s

    def __repr__(self) -> str:
        where = "per feature" if self.per_feature else "global"
        state = "fitted" if self.offset is not None else "not fitted"
        return f"Scaler({self.kind!r}, {where}, {state})"


def _mean_std(X: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation in float64, a block of rows at a time (uint8
    images would otherwise need a float64 copy of the whole data set)."""
    n = len(X)
    total = np.zeros(X.shape[1] if axis == 0 else ())
    total_sq = np.zeros_like(total)
    for start in range(0, n, 8192):
        block = X[start:start + 8192].astype(np.float64)
        total += block.sum(axis=axis)
        total_sq += (block * block).sum(axis=axis)
    count = n if axis == 0 else X.size
    mean = total / count
    var = np.maximum(total_sq / count - mean * mean, 0.0)
    return mean, np.sqrt(var)


def train_test_split(X, y, test_size: float = 0.2, *, seed=None, stratify: bool = True):
    """Split rows into a training and a held-out part, keeping class proportions.

    With ``stratify`` (and integer class labels) every class contributes
    ``round(test_size * count)`` rows to the held-out part, at least one when
    the class has two rows or more, so a rare class is not lost.

    Returns:
        ``(X_train, X_test, y_train, y_test)``, each part in shuffled order.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"train_test_split: X has {len(X)} rows but y has {len(y)}")
    if not 0.0 < float(test_size) < 1.0:
        raise ValueError(f"train_test_split: test_size must be between 0 and 1, got {test_size}")
    rng = make_rng(seed)
    n = len(X)
    if stratify and y.ndim == 1 and y.dtype.kind in "iu":
        held = []
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            k = int(round(test_size * len(idx)))
            if k == 0 and len(idx) >= 2:
                k = 1
            held.append(idx[:k])
        test_idx = np.concatenate(held)
    else:
        test_idx = rng.permutation(n)[: max(1, int(round(test_size * n)))]
    mask = np.zeros(n, dtype=bool)
    mask[test_idx] = True
    train_idx = rng.permutation(np.flatnonzero(~mask))
    test_idx = rng.permutation(test_idx)
    if len(train_idx) == 0:
        raise ValueError(f"train_test_split: nothing left to train on with test_size={test_size} and {n} rows")
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]


# -- the preprocessing kept with a model -------------------------------------


def make_metadata(scaler: Scaler | None, *, input_shape=None, class_names=None, dataset: str | None = None,
                  pixel_max: float | None = None) -> dict:
    """The JSON-friendly description of the input a model expects (``net.metadata``).

    ``pixel_max`` is the value of a white pixel in the training images (255
    for MNIST, 16 for the 8x8 digits), so image files can be brought to it.
    """
    meta: dict = {}
    if input_shape is not None:
        meta["input_shape"] = [int(d) for d in input_shape]
    if pixel_max is not None:
        meta["pixel_max"] = float(pixel_max)
    if scaler is not None:
        meta["scaler"] = scaler.to_dict()
    if class_names is not None:
        meta["class_names"] = [str(c) for c in class_names]
    if dataset is not None:
        meta["dataset"] = dataset
    return meta


def prepare_input(X, metadata: dict | None, dtype="float32") -> np.ndarray:
    """Raw input -> what the network was trained on: flattened, then scaled.

    Use this on raw data (pixel values, CSV numbers) before ``net.predict``;
    the steps come from ``net.metadata``, written when the model was trained.
    """
    metadata = metadata or {}
    X = np.asarray(X)
    shape = metadata.get("input_shape")
    if shape is not None and X.ndim > 2:
        if list(X.shape[1:]) != list(shape):
            raise ValueError(f"prepare_input: the model expects inputs of shape {tuple(shape)}, got {X.shape[1:]}")
    X = flatten(X)
    if "scaler" in metadata:
        return Scaler.from_dict(metadata["scaler"], dtype=dtype).transform(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"prepare_input: expected numeric input, got dtype {X.dtype}")
    return X.astype(dtype, copy=False)


def read_images(paths: Sequence, input_shape, *, pixel_max: float = 255.0, invert: bool = False) -> np.ndarray:
    """Load image files (PNG, JPEG, ...) as greyscale, resized to ``input_shape``.

    Needs Pillow (``pip install 'flexnet[images]'``). Values are raw pixels
    mapped to 0..``pixel_max`` (the training images' range, see
    :func:`make_metadata`) so the model's own scaler applies to them.
    ``invert`` turns dark ink on white paper into the light-on-dark of MNIST.

    Returns:
        float32 array of shape (len(paths), H, W).
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise ImportError("reading images needs Pillow: pip install 'flexnet[images]'") from exc
    if input_shape is None or len(input_shape) != 2:
        raise ValueError(
            f"read_images: the model must have been trained on 2-D images (input_shape H, W), "
            f"its metadata says input_shape={input_shape}"
        )
    h, w = (int(d) for d in input_shape)
    out = np.empty((len(paths), h, w), dtype=np.float32)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                out[i] = np.asarray(im.convert("L").resize((w, h), Image.BILINEAR), dtype=np.float32)
        except UnidentifiedImageError:
            raise DataFileError(f"{p}: not an image file Pillow can read") from None
    if invert:
        out = np.float32(255) - out
    if pixel_max != 255:
        out *= np.float32(pixel_max / 255)
    return out

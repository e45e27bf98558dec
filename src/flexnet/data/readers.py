"""Reading data files: CSV, NPZ, IDX (the MNIST format) and images.

Every reader refuses what it cannot read with a :class:`DataFileError` that
names the file, and returns float32 features (float64 on request): the quiet
upcast ``uint8_images / 255.0`` never happens here.
"""

from __future__ import annotations

import csv
import gzip
import math
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ..filesystem import NotARegularFileError, atomic_write, open_regular
from ..nn.checks import as_float_dtype, check_finite_rows
from .extras import optional


class DataFileError(ValueError):
    """A data file that cannot be read as what it claims to be."""


def _open(path, mode: str = "rb", **kwargs):
    """Open a data file, refusing at once what is not a regular file (a named pipe,
    a device, a folder, ``/proc``: see :func:`flexnet.filesystem.open_regular`)."""
    try:
        return open_regular(path, mode, **kwargs)
    except NotARegularFileError as exc:
        raise DataFileError(str(exc)) from None


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
    if not path.exists():
        raise FileNotFoundError(f"read_csv: no such file: {path}")
    try:
        with _open(path, "r", newline="", encoding="utf-8-sig") as f:
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
    if not path.exists():
        raise FileNotFoundError(f"read_npz: no such file: {path}")
    try:
        with _open(path) as raw, np.load(raw, allow_pickle=False) as f:
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
    with _open(path) as f:
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
    if not path.exists():
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
    if str(path).endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with atomic_write(path) as f:
        f.write(payload)


def read_images(paths: Sequence, input_shape, *, pixel_max: float = 255.0, invert: bool = False) -> np.ndarray:
    """Load image files (PNG, JPEG, ...) as greyscale, resized to ``input_shape``.

    Needs Pillow (``pip install 'flexnet[images]'``). Values are raw pixels
    mapped to 0..``pixel_max`` (the training images' range, see
    :func:`make_metadata`) so the model's own scaler applies to them.
    ``invert`` turns dark ink on white paper into the light-on-dark of MNIST.

    Returns:
        float32 array of shape (len(paths), H, W).
    """
    Image = optional("PIL.Image", "reading images")
    UnidentifiedImageError = Image.UnidentifiedImageError
    if input_shape is None or len(input_shape) != 2:
        raise ValueError(
            f"read_images: the model must have been trained on 2-D images (input_shape H, W), "
            f"its metadata says input_shape={input_shape}"
        )
    h, w = (int(d) for d in input_shape)
    out = np.empty((len(paths), h, w), dtype=np.float32)
    for i, p in enumerate(paths):
        try:
            with _open(p) as f, Image.open(f) as im:
                out[i] = np.asarray(im.convert("L").resize((w, h), Image.BILINEAR), dtype=np.float32)
        except UnidentifiedImageError:
            raise DataFileError(f"{p}: not an image file Pillow can read") from None
    if invert:
        out = np.float32(255) - out
    if pixel_max != 255:
        out *= np.float32(pixel_max / 255)
    return out

"""Reading data files: CSV, NPZ, IDX (the MNIST format) and images.

Every reader refuses what it cannot read with a :class:`DataFileError` that
names the file, and returns float32 features (float64 on request): the quiet
upcast ``uint8_images / 255.0`` never happens here.
"""

from __future__ import annotations

import gzip
import math
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ..filesystem import NotARegularFileError, atomic_write, open_regular
from ..nn.checks import check_finite_rows
from . import tables
from .errors import DataFileError
from .extras import optional
from .tables import Table


def _open(path, mode: str = "rb", **kwargs):
    """Open a data file, refusing at once what is not a regular file (a named pipe,
    a device, a folder, ``/proc``: see :func:`flexnet.filesystem.open_regular`)."""
    try:
        return open_regular(path, mode, **kwargs)
    except NotARegularFileError as exc:
        raise DataFileError(str(exc)) from None


# -- CSV ---------------------------------------------------------------------


def read_csv(path, label=-1, *, header: bool | None = None, delimiter: str | None = None, dtype="float32",
             engine: str | None = None):
    """Read a table of numbers with one label column.

    Args:
        path: the CSV file.
        label: the label column, by name (needs a header row) or by index
            (negative counts from the end; default: the last column).
            ``None`` reads features only.
        header: whether the first row holds column names; default: guessed
            (see :func:`flexnet.data.csv_layout.sniff_csv`).
        delimiter: the cell separator; default: guessed among ``, ; tab |``.
        dtype: float32 (default) or float64 for the features.
        engine: ``"pyarrow"`` (``pip install "flexnet[tables]"``) or ``"numpy"``;
            default: pyarrow when installed. Both give the same arrays.

    Returns:
        ``(X, y)``: X of shape (N, columns - 1) and ``dtype``; y of shape (N,):
        int64 when every label is a whole number (up to 2**53), float64 for
        other numbers, and an array of strings for text labels (see
        :func:`encode_labels`). y is None when ``label`` is None.

    Raises:
        DataFileError: naming the file, line and column of a missing value,
            text in a numeric column, or a row with the wrong number of cells.
    """
    table = read_table(path, label, header=header, delimiter=delimiter, dtype=dtype, engine=engine)
    if table.labels is None:
        return table.X, None
    if table.label_names is not None:
        return table.X, np.array(table.label_names)[table.labels]
    y = table.labels
    if (np.abs(y) <= 2.0**53).all() and (y == np.round(y)).all():
        return table.X, y.astype(np.int64)  # exact: no whole number up to 2**53 is rounded
    return table.X, y


def read_table(path, label=-1, *, header: bool | None = None, delimiter: str | None = None, dtype="float32",
               engine: str | None = None) -> Table:
    """Read a CSV file into a :class:`~flexnet.data.tables.Table`: features, raw labels
    and how the file was read (delimiter and header, given or guessed).

    Same arguments as :func:`read_csv`; reading takes at most the final arrays'
    memory plus a few blocks of rows (see :mod:`flexnet.data.tables`).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"read_csv: no such file: {path}")
    with _open(path):  # a pipe, a device, a folder, /proc...: refused before anything waits
        pass
    return tables.read_table(path, label, header=header, delimiter=delimiter, dtype=dtype, engine=engine)


def encode_labels(y) -> tuple[np.ndarray, list[str]]:
    """Text labels -> ``(class ids, class names)``, names sorted so ids are stable."""
    y = np.asarray(y)
    names, ids = np.unique(y.astype(str), return_inverse=True)
    return ids.astype(np.int64), [str(n) for n in names]


# -- NPZ ---------------------------------------------------------------------


def read_npz(path, *, x_key: str = "X", y_key: str = "y"):
    """Read arrays ``X`` and (optionally) ``y`` from an ``.npz`` file.

    Object arrays are refused (``allow_pickle=False``): loading them would run
    code from the file. An empty file, a single ``.npy`` array, a pickle or a
    text file named ``.npz`` each get a message of their own.

    Returns:
        ``(X, y)`` as stored (no conversion); y is None if the file has no ``y``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"read_npz: no such file: {path}")
    _check_npz_start(path, f"np.savez(path, {x_key}=features, {y_key}=labels)")
    try:
        with _open(path) as raw, np.load(raw, allow_pickle=False) as f:
            keys = list(f.keys())
            if not keys:
                raise DataFileError(f"{path}: an .npz archive that holds no arrays; "
                                    f"save with np.savez(path, {x_key}=features, {y_key}=labels)")
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
    for key, arr in ((x_key, X), (y_key, y)):
        if arr is not None and not isinstance(arr, np.ndarray):
            raise DataFileError(f"{path}: the member {key!r} is not a NumPy array")
    if X.dtype.kind not in "biuf":
        raise DataFileError(f"{path}: {x_key!r} must be numeric, got dtype {X.dtype}")
    if X.ndim < 2:
        raise DataFileError(f"{path}: {x_key!r} must have shape (N, features...), got {X.shape}")
    if len(X) == 0 or X[0].size == 0:
        raise DataFileError(f"{path}: {x_key!r} holds no data (shape {X.shape})")
    if y is not None and (y.ndim != 1 or len(y) != len(X)):
        raise DataFileError(f"{path}: {y_key!r} must have shape ({len(X)},), got {y.shape}")
    try:
        for key, arr in ((x_key, X), (y_key, y)):
            if arr is not None:
                check_finite_rows(arr, f"{path}: {key!r}")
    except ValueError as exc:
        raise DataFileError(str(exc)) from None
    return X, y


def _check_npz_start(path: Path, how: str) -> None:
    """Name what a file that is not an .npz archive is, from its first bytes."""
    with _open(path) as f:
        head = f.read(512)
    if head.startswith(b"PK"):
        return
    save = f"save the data with {how}"
    if not head:
        what = f"the file is empty (0 bytes); {save}"
    elif head.startswith(b"\x93NUMPY"):
        what = f"a single NumPy array (.npy), not an .npz archive; {save}"
    elif head[:1] == b"\x80":
        what = f"a Python pickle, which flexnet never loads (it can run code); {save}"
    elif head.startswith(b"\x1f\x8b"):
        what = f"gzip-compressed data, not an .npz archive; {save}"
    elif b"\0" not in head and _is_text(head):
        first = head.decode("utf-8", "replace").strip().splitlines()[0][:40] if head.strip() else ""
        what = f"a text file (it begins {first!r}), not an .npz archive; if it is a CSV table, name it .csv"
    else:
        what = f"not an .npz archive (it begins with the bytes {head[:8].hex(' ')}); {save}"
    raise DataFileError(f"{path}: {what}")


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4  # a character cut at the end of the sample
    return True


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


#: The most pixels an image may have before it is decoded (a 8000x8000 photo).
MAX_IMAGE_PIXELS = 64_000_000


def read_images(paths: Sequence, input_shape, *, pixel_max: float = 255.0, invert: bool = False) -> np.ndarray:
    """Load image files (PNG, JPEG, TIFF, ...) as greyscale, resized to ``input_shape``.

    Needs Pillow (``pip install 'flexnet[images]'``). Values are mapped to
    0..``pixel_max`` (the training images' range, see :func:`make_metadata`),
    white to ``pixel_max``, so the model's own scaler applies to them.
    ``invert`` turns dark ink on white paper into the light-on-dark of MNIST.

    How each kind of image is read, so that nothing is guessed:

    - 8-bit grey, colour (RGB, YCbCr), palette and 1-bit images: their
      greyscale (ITU-R 601 luma), 0..255;
    - 16-bit grey (and 32-bit integer images holding 0..65535, as 16-bit PNGs
      may open): scaled from 0..65535, never clipped at 255;
    - float images (mode F, as TIFF stores them) holding values in [0, 1];
    - images with transparency (RGBA, LA, a palette with a transparent
      colour): composited onto a background that shows the drawing, white
      under dark ink and black under light ink, so a digit drawn only in the
      alpha channel of a black image reads as black on white.

    Refused with a message: several frames (an animated GIF, a multi-page
    TIFF), CMYK and other colour spaces, integer values outside 0..65535,
    float values outside [0, 1] or not finite, a fully transparent image,
    more than :data:`MAX_IMAGE_PIXELS` pixels.

    Returns:
        float32 array of shape (len(paths), H, W).
    """
    Image = optional("PIL.Image", "reading images")
    ImageOps = optional("PIL.ImageOps", "reading images")
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
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise DataFileError(f"{p}: {im.width}x{im.height} pixels is more than read_images reads "
                                        f"({MAX_IMAGE_PIXELS:,}); shrink the image first")
                if getattr(im, "n_frames", 1) > 1:
                    raise DataFileError(f"{p}: the file holds {im.n_frames} frames (an animation or pages); "
                                        "save the one image to predict on its own")
                grey = _grey(ImageOps.exif_transpose(im), p)  # a photo's EXIF orientation applied
                out[i] = np.asarray(grey.resize((w, h), Image.BILINEAR), dtype=np.float32)
        except UnidentifiedImageError:
            raise DataFileError(f"{p}: not an image file Pillow can read") from None
        except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
            raise DataFileError(f"{p}: a damaged or unreadable image ({exc})") from None
    if invert:
        out = np.float32(255) - out
    if pixel_max != 255:
        out *= np.float32(pixel_max / 255)
    return out


def _grey(im, path):
    """A Pillow image -> greyscale with white at 255: an ``L`` image (8-bit sources, read as
    before) or an ``F`` image (16-bit, float and composited sources)."""
    Image = optional("PIL.Image", "reading images")

    mode = im.mode
    if mode in ("1", "L", "RGB", "RGBX", "YCbCr") or (mode == "P" and "transparency" not in im.info):
        return im.convert("L")
    if mode in ("LA", "La", "RGBA", "RGBa", "PA", "P"):
        return _composite(im, path)
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(im)
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi > 65535:
            raise DataFileError(f"{path}: integer pixels from {lo} to {hi}, outside the 16-bit range 0..65535; "
                                "their scale is unknown, so save the image as 8- or 16-bit greyscale")
        return Image.fromarray(values.astype(np.float32) * np.float32(255 / 65535), mode="F")
    if mode == "F":
        values = np.asarray(im, dtype=np.float32)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise DataFileError(f"{path}: float pixels from {values.min()} to {values.max()}; expected values "
                                "in [0, 1] (white = 1)")
        return Image.fromarray(values * np.float32(255), mode="F")
    raise DataFileError(f"{path}: {mode} images are not read (their grey levels would be a guess); "
                        "save it as greyscale or RGB")


def _composite(im, path):
    """Transparent pixels over a background that shows the drawing: white under dark ink, black under light."""
    Image = optional("PIL.Image", "reading images")

    im = im.convert("LA" if im.mode in ("LA", "La") else "RGBA")
    alpha = np.asarray(im.getchannel("A"), dtype=np.float32) / np.float32(255)
    colour = im.convert("L")  # the colour's grey, alpha left out
    if alpha.min() == 1:
        return colour  # opaque: read as the 8-bit image it is
    total = float(alpha.sum())
    if total == 0:
        raise DataFileError(f"{path}: the image is fully transparent: nothing is drawn")
    grey = np.asarray(colour, dtype=np.float32)
    ink = float((grey * alpha).sum()) / total  # the drawing's mean grey, weighted by its opacity
    background = np.float32(255 if ink < 127.5 else 0)
    return Image.fromarray(grey * alpha + background * (1 - alpha), mode="F")

"""Input validation shared by layers, losses, networks and optimizers.

Every check raises ValueError or TypeError with a message that says where the
problem is, what was expected and what was got, so that a person can fix it
without reading a NumPy traceback. The costly ones (a scan for NaN, a range
check of labels) run where data comes in, once per batch, never inside a
layer's hot path.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from .. import ops

FLOAT_DTYPES = (np.dtype("float32"), np.dtype("float64"))
#: Each signed integer dtype and its unsigned twin (same size, same byte order).
_UNSIGNED = {np.dtype(f"{order}i{size}"): np.dtype(f"{order}u{size}") for order in "<>" for size in (1, 2, 4, 8)}
#: Rows per chunk when looking for the first non-finite row (bounds the
#: boolean temporary to a few MiB whatever the size of the data).
FINITE_CHUNK = 4096


def as_float_dtype(dtype, where: str = "dtype") -> np.dtype:
    """Return ``dtype`` as a NumPy dtype, refusing anything but float32/float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{where}: expected 'float32' or 'float64', got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{where}: expected 'float32' or 'float64', got {dt.name!r}")
    return dt


def check_positive_int(value, where: str) -> int:
    """Return ``value`` as an int, refusing bools, floats, zero and negatives."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{where}: expected a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{where}: expected a positive integer, got {value}")
    return int(value)


def check_number(value, where: str, *, low: float = 0.0, high: float | None = None,
                 low_open: bool = False, high_open: bool = True) -> float:
    """Return ``value`` as a float inside the interval from ``low`` to ``high``
    (None: no upper end), or raise. Booleans and NaN are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"{where}: expected a number, got {value!r}")
    v = float(value)
    inside = math.isfinite(v) and (v > low if low_open else v >= low)
    if high is not None:
        inside = inside and (v < high if high_open else v <= high)
    if not inside:
        top = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
        raise ValueError(f"{where}: expected a number in {'(' if low_open else '['}{low:g}, {top}, got {v}")
    return v


def check_flag(value, where: str) -> bool:
    """Return ``value`` as a bool, refusing anything but True and False."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: expected True or False, got {value!r}")
    return bool(value)


def check_lr(lr, where: str = "lr") -> float:
    """Return the learning rate as a float; it must be finite and > 0."""
    if isinstance(lr, bool) or not isinstance(lr, Real):
        raise TypeError(f"{where}: expected a positive number, got {lr!r}")
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"{where}: expected a finite number > 0, got {float(lr)}")
    return float(lr)


def check_layer_sizes(layer_sizes) -> list[int]:
    """Validate a list such as [784, 128, 64, 10]."""
    if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__len__"):
        raise TypeError(f"layer_sizes: expected a list of integers such as [25, 8, 2], got {layer_sizes!r}")
    sizes = list(layer_sizes)
    if len(sizes) < 2:
        raise ValueError(f"layer_sizes: expected at least two sizes (inputs and outputs), such as [25, 2], "
                         f"got {sizes}")
    return [check_positive_int(s, f"layer_sizes[{i}] in {sizes}") for i, s in enumerate(sizes)]


def lookup(name, table: dict, what: str, aliases: dict | None = None, kind: str = "a name", noun: str = "name"):
    """``table[name]``, for a name in any case with ``-`` or ``_``, or one of its ``aliases``;
    errors that list the names known. ``kind`` says what the caller accepts."""
    if not isinstance(name, str):
        raise TypeError(f"{what}: expected {kind}, got {name!r}")
    key = name.lower().replace("-", "_")
    key = (aliases or {}).get(key, key)
    if key not in table:
        raise ValueError(f"{what}: unknown {noun} {name!r}; expected one of {sorted(table)}")
    return table[key]


def make_rng(seed) -> np.random.Generator:
    """A Generator from a seed, an existing Generator (returned as is) or None."""
    if isinstance(seed, np.random.RandomState):
        raise TypeError("seed: expected an int, None or np.random.Generator, got a RandomState")
    if isinstance(seed, bool) or not (seed is None or isinstance(seed, (int, np.integer, np.random.Generator))):
        raise TypeError(f"seed: expected an int, None or np.random.Generator, got {seed!r}")
    return np.random.default_rng(seed)


def as_input(x, dtype: np.dtype, where: str) -> np.ndarray:
    """Convert a batch to a 2-D array of ``dtype``, refusing shapes that would
    broadcast into a wrong answer."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError, RuntimeError) as exc:  # RuntimeError: a torch tensor that requires grad
            raise TypeError(f"{where}: expected a numeric array, got {type(x).__name__} ({exc})") from exc
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{where}: expected a numeric array, got dtype {x.dtype}")
    if x.ndim != 2:
        hint = (" For a single sample use x.reshape(1, -1)." if x.ndim == 1 else
                " If these are images, flatten them: x.reshape(len(x), -1)." if x.ndim > 2 else "")
        raise ValueError(f"{where} expected a 2-D input of shape (batch, features), got shape {x.shape}.{hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{where} got an empty batch (shape {x.shape}); expected at least one row")
    return x if x.dtype == dtype else x.astype(dtype)


def check_labels(y, n_rows: int, n_classes: int, where: str) -> np.ndarray:
    """Validate integer class labels of shape (N,) against ``n_rows`` and ``n_classes``.

    Float arrays holding whole numbers (as loaded from CSV) are accepted;
    fractions, NaN and out-of-range values are refused.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{where}: expected labels of shape ({n_rows},), got {y.shape}")
    if len(y) != n_rows:
        raise ValueError(f"{where}: got {len(y)} labels for a batch of {n_rows} rows; they must match")
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if len(bad):
            raise ValueError(f"{where}: label at row {bad[0]} is {y[bad[0]]}; expected whole-number class ids")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iu":
        raise TypeError(f"{where}: expected integer class labels, got dtype {y.dtype}")
    # One reduction checks both ends: seen as unsigned, a negative id is huge.
    if int(np.maximum.reduce(y.view(_UNSIGNED.get(y.dtype, y.dtype)))) >= n_classes:
        bad = int(np.flatnonzero((y < 0) | (y >= n_classes))[0])
        raise ValueError(f"{where}: label {int(y[bad])} at row {bad} is out of range; "
                         f"expected class ids 0..{n_classes - 1} for {n_classes} outputs")
    if y.dtype.kind == "u" and y.dtype.itemsize == 8:  # uint64 and int64 indices would mix into float64
        y = y.astype(np.int64)
    return y


def check_targets(y, shape: tuple, dtype: np.dtype, where: str) -> np.ndarray:
    """Validate a dense target array (one-hot rows, regression targets)."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{where}: expected numeric targets, got dtype {y.dtype}")
    if y.shape != shape:
        raise ValueError(f"{where}: expected targets of shape {shape}, got {y.shape}")
    y = y if y.dtype == dtype else y.astype(dtype)
    check_finite_rows(y, f"{where}: target")  # "target: row 3 holds NaN or infinity"
    return y


def check_finite_rows(x: np.ndarray, where: str) -> None:
    """Refuse an array with NaN or infinity, naming the first bad row."""
    if x.dtype.kind != "f" or x.size == 0:
        return
    # A sum is finite only if every term is (NaN and inf both propagate), and
    # it needs no temporary array. Only if it is not (bad data, or a sum that
    # overflows) are the rows looked at, a chunk at a time.
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(np.sum(x)):
            return
    rows = x.reshape(len(x), -1)
    for start in range(0, len(rows), FINITE_CHUNK):
        ok = np.isfinite(rows[start:start + FINITE_CHUNK]).all(axis=1)
        if not ok.all():
            raise ValueError(f"{where}: row {start + int(np.flatnonzero(~ok)[0])} holds NaN or infinity; "
                             "clean or drop it first")


def check_float_input(layer, x, n_features: int | None = None) -> np.ndarray:
    """Return ``x`` as a 2-D float array, or raise an error that names ``layer``.

    Integer input is refused rather than converted: a layer has no dtype of
    its own to convert to, and a quiet float64 upcast is exactly what we avoid.
    """
    x = x if isinstance(x, np.ndarray) or ops.is_foreign(x) else np.asarray(x)
    if (x.dtype if type(x) is np.ndarray else ops.dtype(x)) not in FLOAT_DTYPES:
        raise TypeError(f"{layer.where()} expected float32 or float64 input, got dtype {x.dtype}; "
                        "convert it first, e.g. x.astype('float32')")
    if x.ndim != 2 or (n_features is not None and x.shape[1] != n_features):
        raise ValueError(f"{layer.where()} expected input of shape (batch, {n_features or 'features'}), "
                         f"got {x.shape}")
    return x

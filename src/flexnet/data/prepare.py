"""Preparing data for a network, and the preprocessing that travels with a model.

A :class:`Scaler`, the input shape of images and the class names are saved in
the model's metadata, so ``predict`` applies them to raw input; a stratified
train/validation split keeps every class on both sides.
"""

from __future__ import annotations

import numpy as np

from ..nn.checks import as_float_dtype, make_rng
from .sources import Rows

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
        """Take the statistics of ``X``: an array, or :class:`~flexnet.data.sources.Rows`
        not in memory, read a block at a time (the same statistics, bit for bit)."""
        X = X if isinstance(X, Rows) and len(X.shape) == 2 and len(X) else self._check(X, fitting=True)
        axis = 0 if self.per_feature else None
        if self.kind == "minmax":
            lo, hi = _min_max(X, axis)
            lo = lo.astype(np.float64)
            span = hi.astype(np.float64) - lo
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
            with np.errstate(over="ignore"):  # 1e300 becomes inf in float32: refused below
                s.offset = np.asarray(state["offset"], dtype=s.dtype).reshape(-1)
                s.scale = np.asarray(state["scale"], dtype=s.dtype).reshape(-1)
            s.n_features = state.get("n_features")
        except (KeyError, TypeError) as exc:
            raise ValueError(f"Scaler.from_dict: incomplete scaler state ({exc})") from None
        if s.offset.shape != s.scale.shape:
            raise ValueError(f"Scaler.from_dict: offset and scale must have the same length, got "
                             f"{s.offset.size} and {s.scale.size}")
        for name, values in (("offset", s.offset), ("scale", s.scale)):
            if not np.isfinite(values).all():
                at = int(np.flatnonzero(~np.isfinite(values))[0])
                raise ValueError(f"Scaler.from_dict: {name}[{at}] is {values[at]} in {s.dtype.name}; "
                                 "every value must be finite")
        if not (s.scale > 0).all():
            at = int(np.flatnonzero(~(s.scale > 0))[0])
            raise ValueError(f"Scaler.from_dict: scale[{at}] is {s.scale[at]}; inputs are divided by "
                             "the scale, so it must be > 0")
        return s

    def __repr__(self) -> str:
        where = "per feature" if self.per_feature else "global"
        state = "fitted" if self.offset is not None else "not fitted"
        return f"Scaler({self.kind!r}, {where}, {state})"


def _min_max(X, axis) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest values; for rows not in memory, a block at a time."""
    if not isinstance(X, Rows):
        return X.min(axis=axis), X.max(axis=axis)
    lo = hi = None
    for _, block in X.blocks():
        b_lo, b_hi = block.min(axis=axis), block.max(axis=axis)
        lo = b_lo if lo is None else np.minimum(lo, b_lo)
        hi = b_hi if hi is None else np.maximum(hi, b_hi)
        del block
    return lo, hi


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
    count = n if axis == 0 else int(np.prod(X.shape))
    mean = total / count
    var = np.maximum(total_sq / count - mean * mean, 0.0)
    return mean, np.sqrt(var)


def train_test_split(X, y, test_size: float = 0.2, *, seed=None, stratify: bool = True, part: str = "held-out"):
    """Split rows into a training and a held-out part, keeping class proportions.

    With ``stratify`` (and integer class labels) every class contributes
    ``round(test_size * count)`` rows to the held-out part, at least one when
    the class has two rows or more, so a rare class is not lost.

    Args:
        part: what the held-out part is for ("validation", "test"), for messages.

    Returns:
        ``(X_train, X_test, y_train, y_test)``, each part in shuffled order.

    Raises:
        ValueError: when either part would be empty, saying which.
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
    split = f"the {100 * float(test_size):g}% {part} split of {n:,} row(s)"
    if len(train_idx) == 0:
        raise ValueError(f"train_test_split: no rows left for training after {split}; "
                         "give more rows or a smaller split")
    if len(test_idx) == 0:
        raise ValueError(f"train_test_split: {split} holds no rows (every class has one row); "
                         "give more rows, a larger split, or none")
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]


# -- the preprocessing kept with a model -------------------------------------


def make_metadata(scaler: Scaler | None, *, input_shape=None, class_names=None, dataset: str | None = None,
                  pixel_max: float | None = None, label_column: str | int | None = None) -> dict:
    """The JSON-friendly description of the input a model expects (``net.metadata``).

    ``pixel_max`` is the value of a white pixel in the training images (255
    for MNIST, 16 for the 8x8 digits), so image files can be brought to it.
    ``label_column`` is the training CSV's label column (its name, else its
    index), so ``predict`` can leave it out of a file that still holds it.

    Raises:
        ValueError: an input shape that is not positive whole numbers, a
            ``pixel_max`` that is not a finite number > 0, or two classes with
            the same name (their probability columns could not be told apart).
    """
    meta: dict = {}
    if input_shape is not None:
        shape = [int(d) for d in input_shape]
        if not shape or min(shape) <= 0 or shape != list(input_shape):
            raise ValueError(f"make_metadata: input_shape must be positive whole numbers, got {input_shape!r}")
        meta["input_shape"] = shape
    if pixel_max is not None:
        if not (np.isfinite(pixel_max) and pixel_max > 0):
            raise ValueError(f"make_metadata: pixel_max must be a finite number > 0, got {pixel_max!r}")
        meta["pixel_max"] = float(pixel_max)
    if scaler is not None:
        meta["scaler"] = scaler.to_dict()
    if class_names is not None:
        names = [str(c) for c in class_names]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"make_metadata: class name {name!r} is given twice; each class needs its own name")
            seen.add(name)
        meta["class_names"] = names
    if dataset is not None:
        meta["dataset"] = dataset
    if label_column is not None:
        meta["label_column"] = label_column if isinstance(label_column, str) else int(label_column)
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

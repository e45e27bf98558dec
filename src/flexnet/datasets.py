"""Data sets. ``edges`` is built in: the 5x5 edge patches of the tutorial."""

from __future__ import annotations

import numpy as np

from ._checks import as_float_dtype, check_positive_int
from .layers import make_rng

#: Class names of :func:`edges`, by class id.
EDGE_CLASSES = ("edge", "no edge")


def edges(n: int = 200, *, seed=None, one_hot: bool = False, dtype="float32"):
    """Synthetic 5x5 patches: a vertical dark-to-bright edge, or not.

    Half the patches (on average) are class 0, "edge": dark (0.1) on the left,
    bright (0.9) from column 1, 2 or 3 on. The rest are class 1, "no edge":
    either a flat patch of one grey level in [0.3, 0.7], or the reversed
    transition, bright on the left two columns and dark on the right. The
    reversed case is what makes the task more than "is there contrast".

    Args:
        n: number of patches.
        seed: int, ``np.random.Generator`` or None.
        one_hot: return labels as (n, 2) one-hot rows, as the tutorial does.
        dtype: float32 (default) or float64.

    Returns:
        ``(X, y)``: X of shape (n, 25), each patch flattened row by row;
        y of shape (n,) with class ids, or (n, 2) if ``one_hot``.
    """
    n = check_positive_int(n, "edges(n)")
    dtype = as_float_dtype(dtype, "edges(dtype)")
    rng = make_rng(seed)
    X = np.empty((n, 5, 5), dtype=np.float64)
    y = np.empty(n, dtype=np.int64)
    for i in range(n):
        if rng.random() > 0.5:
            edge_col = rng.integers(1, 4)  # first bright column: 1, 2 or 3
            X[i] = 0.1
            X[i, :, edge_col:] = 0.9
            y[i] = 0
        else:
            if rng.random() > 0.5:
                X[i] = rng.uniform(0.3, 0.7)  # flat grey
            else:
                X[i] = 0.9
                X[i, :, 2:] = 0.1  # bright-to-dark: not the edge we look for
            y[i] = 1
    X = X.reshape(n, 25).astype(dtype)
    if one_hot:
        return X, np.eye(2, dtype=dtype)[y]
    return X, y

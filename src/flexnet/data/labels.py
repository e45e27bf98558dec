"""Labels -> class ids, checked before any network is built.

A file's labels are either class ids (whole numbers 0, 1, 2, ...) or names.
When a model is trained, the labels define its classes: names are sorted and
numbered, ids are taken as they are. When a model is evaluated, its own
classes decide: a name is looked up among the model's class names, an id must
be one of its outputs. A file holding only ``dog`` and ``eel`` then scores
the model that learnt ``cat``, ``dog`` and ``eel`` on the right classes.

Ids define as many classes as the largest id plus one, so one typo
(``20000000``) would build a network with twenty million outputs. The rule:
the ids run from 0 to K-1 with at most ``max(10, D)`` of them unused, where D
is the number of distinct labels in the file (:data:`UNUSED_IDS`). And more than
1,000 classes with fewer than two rows each on average (:data:`MANY_CLASSES`)
is taken for what it most likely is, the wrong column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .errors import DataFileError

#: Class ids without a row that training accepts: ``max(UNUSED_IDS, distinct labels)``.
UNUSED_IDS = 10
#: Past this many classes, training wants at least two rows per class on average: more
#: distinct labels than half the rows is a column of row ids or measurements, not classes.
MANY_CLASSES = 1000


def class_ids(labels, names: Sequence[str] | None = None, *, where: Callable[[int], str], source: str,
              classes: Sequence[str] | int | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Turn a file's labels into class ids, refusing what a classifier cannot learn from.

    Args:
        labels: class ids as read (any numeric dtype), or with ``names`` the
            code of each row's name.
        names: the distinct text labels, by code; None for numeric labels.
        where: row -> ``"data.csv line 7"``, for messages.
        source: the file, for messages about no row in particular.
        classes: None when the labels define the classes (training); else
            the model's class names, or its number of classes.

    Returns:
        ``(ids, class_names)``: int64 ids of shape (N,); the class names
        (sorted names, or the model's), None for ids without names.

    Raises:
        DataFileError: naming the row and the label: a fraction, a negative
            or non-finite id, an id far beyond the labels seen or the model's
            outputs, a name the model does not know, a single class to train on.
    """
    if names is not None:
        return _names_to_ids(np.asarray(labels), list(names), where, source, classes)
    return _ids(np.asarray(labels), where, source, classes)


def model_classes(net) -> list[str] | int | None:
    """A trained classifier's classes, for :func:`class_ids`: its class names, else its number
    of outputs (two for a single-output binary classifier); None for other models.

    ``datasets.load("test.csv", classes=model_classes(net))`` reads a file's labels as ``net``
    numbers its classes.
    """
    if not getattr(net.loss_fn, "is_classifier", False):
        return None
    names = (getattr(net, "metadata", None) or {}).get("class_names")
    if names:
        return list(names)
    outputs = next((layer.out_features for layer in reversed(net.layers) if hasattr(layer, "out_features")), None)
    if outputs is None:
        return None
    return 2 if outputs == 1 else outputs


def _names_to_ids(codes: np.ndarray, names: list[str], where, source: str, classes):
    if classes is None:
        if len(names) < 2:
            raise DataFileError(f"{source}: every label is {names[0]!r}, one class; a classifier needs at least two")
        _check_rows_per_class(len(names), len(codes), source)
        order = sorted(range(len(names)), key=names.__getitem__)
        rank = np.empty(len(names), dtype=np.int64)
        rank[order] = np.arange(len(names))
        return rank[codes], [names[i] for i in order]
    if isinstance(classes, (int, np.integer)):
        raise DataFileError(
            f"{where(0)}: the labels are names ({names[0]!r}), but the model has no class names: its "
            f"classes are the ids 0..{int(classes) - 1}; give the labels as class ids")
    known = {name: i for i, name in enumerate(classes)}
    lookup = np.array([known.get(name, -1) for name in names], dtype=np.int64)
    if (lookup < 0).any():
        code = int(np.flatnonzero(lookup < 0)[0])
        row = int(np.argmax(codes == code))
        shown = ", ".join(map(repr, list(classes)[:20])) + (", ..." if len(classes) > 20 else "")
        raise DataFileError(f"{where(row)}: label {names[code]!r} is not one of the model's classes ({shown})")
    return lookup[codes], list(classes)


def _ids(y: np.ndarray, where, source: str, classes):
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y.dtype.kind not in "iuf":
        raise TypeError(f"{source}: expected class ids or names as labels, got dtype {y.dtype}")
    bad = ~np.isfinite(y) | (y != np.round(y)) if y.dtype.kind == "f" else np.zeros(len(y), dtype=bool)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFileError(f"{where(row)}: label {_show(y[row])} is not a class id; expected whole numbers "
                            "0, 1, 2, ... (or names)")
    if y.dtype.kind != "u" and (y < 0).any():
        row = int(np.flatnonzero(y < 0)[0])
        raise DataFileError(f"{where(row)}: label {_show(y[row])} is negative; class ids are 0, 1, 2, ...")
    top = int(y.max())  # a Python int: no wrap, whatever the size
    row = int(np.argmax(y == y.max()))
    if classes is not None:
        n = len(classes) if not isinstance(classes, (int, np.integer)) else int(classes)
        if top >= n:
            raise DataFileError(f"{where(row)}: label {_show(y[row])} is out of range: the model has {n} "
                                f"classes, ids 0..{n - 1}")
        return y.astype(np.int64), (list(classes) if not isinstance(classes, (int, np.integer)) else None)
    distinct = len(np.unique(y))
    allowed = max(UNUSED_IDS, distinct)
    if top + 1 - distinct > allowed:
        raise DataFileError(
            f"{where(row)}: label {_show(y[row])} would make {top + 1:,} classes, but the file holds "
            f"{distinct:,} distinct label(s); class ids must run 0..K-1 with at most max({UNUSED_IDS}, distinct "
            f"labels) = {allowed:,} of them unused. Is it a typo? Else number the classes 0..{distinct - 1}")
    if distinct < 2:
        raise DataFileError(f"{source}: every label is {_show(y[0])}, one class; a classifier needs at least two")
    _check_rows_per_class(distinct, len(y), source)
    return y.astype(np.int64), None


def _check_rows_per_class(distinct: int, rows: int, source: str) -> None:
    if distinct > MANY_CLASSES and 2 * distinct > rows:
        raise DataFileError(
            f"{source}: {distinct:,} distinct labels among {rows:,} rows, fewer than two rows a class; "
            "is that the label column? (row ids and measurements are not classes)")


def _show(value) -> str:
    """A label as the user wrote it, near enough: 3, 1.5, 1e+20, inf."""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    return str(int(v)) if np.isfinite(v) and v == round(v) and abs(v) < 1e16 else repr(v)

"""Data sets by name.

``edges`` is built in: the 5x5 edge patches of the tutorial. ``digits`` comes
with scikit-learn; ``mnist`` and ``fashion-mnist`` are read from the standard
IDX files, found on disk or downloaded and checked against their SHA-256.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..nn.checks import as_float_dtype, check_positive_int, make_rng
from .errors import DataFileError
from .extras import optional
from .labels import class_ids
from .prepare import Scaler, flatten, make_metadata, train_test_split
from .readers import encode_labels, read_csv, read_idx, read_npz, read_table  # noqa: F401  (read_csv, encode_labels: here before 0.2)

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


# -- real data sets ----------------------------------------------------------

#: Class names of Fashion-MNIST, by class id.
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(d) for d in range(10))

#: The four IDX files of each data set and the SHA-256 of the published .gz files.
#: Downloads are checked against these. Copies already on disk are checked by
#: the IDX reader (magic number, type, sizes) instead: packaged copies may be
#: recompressed (Debian's Fashion-MNIST files differ from the published ones in
#: the gzip header only), which changes the hash but not the data.
IDX_FILES = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

#: The size in bytes of each published file, by its SHA-256: a download is cut off there
#: (and refused at once by a server that announces another size).
PUBLISHED_SIZES = {
    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609": 9_912_422,
    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c": 28_881,
    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6": 1_648_877,
    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6": 4_542,
    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84": 26_421_880,
    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845": 29_515,
    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073": 4_422_102,
    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5": 5_148,
}

#: Public mirrors, tried in order.
MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ),
}

#: Folders that may already hold a data set (the Debian package dataset-fashion-mnist).
SYSTEM_DIRS = {"fashion-mnist": ("/usr/share/datasets/fashion-mnist",)}


def search_dirs(name: str) -> list[Path]:
    """Where the IDX files of ``name`` are looked for, in order.

    ``$FLEXNET_DATA/<name>`` and ``$FLEXNET_DATA`` itself, then the user cache
    ``~/.cache/flexnet/<name>`` (where downloads go), then system folders.
    """
    dirs = []
    env = os.environ.get("FLEXNET_DATA")
    if env:
        dirs += [Path(env) / name, Path(env)]
    dirs.append(cache_dir() / name)
    dirs += [Path(d) for d in SYSTEM_DIRS.get(name, ())]
    return dirs


def cache_dir() -> Path:
    """The user cache: ``$XDG_CACHE_HOME/flexnet`` or ``~/.cache/flexnet``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "flexnet"


def _find(name: str, filename: str) -> Path | None:
    """The first copy of ``filename`` (gzip or raw) in the search folders."""
    for d in search_dirs(name):
        for candidate in (d / filename, d / filename[:-3]):
            if candidate.exists():  # a pipe or a folder there is refused by the reader, not replaced
                return candidate
    return None


def idx_files(name: str, *, download: bool = True, progress=None, mirrors=None) -> dict[str, Path]:
    """Paths to the four IDX files of ``name``, downloading the missing ones.

    Downloads go to ``$FLEXNET_DATA/<name>`` when that variable is set, else
    to the user cache, and are checked against the published SHA-256.
    """
    if name not in IDX_FILES:
        raise ValueError(f"idx_files: unknown data set {name!r}; expected one of {sorted(IDX_FILES)}")
    target = idx_target(name)
    paths = {}
    for filename, digest in IDX_FILES[name].items():
        found = _find(name, filename)
        if found is None:
            if not download:
                raise FileNotFoundError(
                    f"{name}: {filename} not found in " + ", ".join(map(str, search_dirs(name)))
                )
            urls = [m + filename for m in (mirrors or MIRRORS[name])]
            from .fetch import download as fetch_file  # Python's HTTP stack: only when downloading

            found = fetch_file(urls, target / filename, digest, size=PUBLISHED_SIZES.get(digest),
                               progress=progress)
        paths[filename] = found
    return paths


def _load_idx_set(name: str, *, raw: bool, download: bool, progress):
    paths = idx_files(name, download=download, progress=progress)
    parts = []
    for split in ("train", "t10k"):
        images = read_idx(paths[f"{split}-images-idx3-ubyte.gz"], ndim=3)
        labels = read_idx(paths[f"{split}-labels-idx1-ubyte.gz"], ndim=1)
        if len(images) != len(labels):
            raise DataFileError(
                f"{name}: {len(images)} {split} images but {len(labels)} labels; the files do not belong together"
            )
        if labels.max() > 9:
            raise DataFileError(f"{name}: {split} labels go up to {labels.max()}, expected 0..9")
        if not raw:
            images = images.reshape(len(images), -1).astype(np.float32)
            images /= np.float32(255)  # float32 throughout: uint8 / 255.0 would give float64
        parts += [images, labels.astype(np.int64)]
    return (parts[0], parts[1]), (parts[2], parts[3])


def mnist(*, raw: bool = False, download: bool = True, progress=None):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images.

    Args:
        raw: return uint8 images of shape (N, 28, 28) instead of float32 rows.
        download: fetch missing files from the public mirrors.
        progress: show a download progress bar (None: when tqdm is installed).

    Returns:
        ``(X_train, y_train), (X_test, y_test)``; X float32 of shape (N, 784)
        with values in [0, 1] (or raw uint8 images), y int64 class ids 0..9.
    """
    return _load_idx_set("mnist", raw=raw, download=download, progress=progress)


def fashion_mnist(*, raw: bool = False, download: bool = True, progress=None):
    """Zalando's Fashion-MNIST: 28x28 greyscale clothes in 10 classes.

    Same shapes and arguments as :func:`mnist`; class names in
    :data:`FASHION_CLASSES`. Also found in ``/usr/share/datasets/fashion-mnist``
    (Debian package ``dataset-fashion-mnist``).
    """
    return _load_idx_set("fashion-mnist", raw=raw, download=download, progress=progress)


def digits(*, raw: bool = False, test_size: float = 0.2, seed: int = 0):
    """scikit-learn's bundled 8x8 digits (1,797 images, no download needed).

    Args:
        raw: return pixel values 0..16 as (N, 8, 8) float32 images.
        test_size: the held-out fraction, split stratified with ``seed``.

    Returns:
        ``(X_train, y_train), (X_test, y_test)``; X float32 rows of 64
        values in [0, 1] (pixels divided by 16), y int64 class ids 0..9.
    """
    bunch = optional("sklearn.datasets", "the digits data set").load_digits()
    X = bunch.images.astype(np.float32)  # (1797, 8, 8), values 0..16
    if not raw:
        X = X.reshape(len(X), -1) / np.float32(16)
    y = bunch.target.astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size, seed=seed)
    return (X_train, y_train), (X_test, y_test)


# -- one name for every source of data (used by the command line) ------------


@dataclass
class Dataset:
    """Raw features and labels from one source, with what a model must remember.

    ``X_train`` / ``X_test`` hold raw values (pixels 0..255 for images); the
    scaler chosen when training is fitted on them. ``X_test`` is None for a
    user's file (the command line then holds out a validation split only).
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray | None
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    class_names: list[str] | None = None
    input_shape: tuple[int, ...] | None = None  # (H, W) for images
    #: the scaling that suits the data when the user does not choose one
    default_scaler: str = "minmax"
    per_feature: bool = True
    #: the value of a white pixel for image data (255 for 8-bit images)
    pixel_max: float | None = None
    #: how a CSV file was read: header and delimiter, given or guessed (for summaries)
    read_as: str | None = None
    #: the label column of a CSV file: its header name, else its index (kept in the model's metadata)
    label_column: str | int | None = None

    @property
    def n_features(self) -> int:
        return int(np.prod(self.X_train.shape[1:]))

    @property
    def n_classes(self) -> int | None:
        if self.class_names is not None:
            return len(self.class_names)
        if self.y_train is not None and self.y_train.dtype.kind in "iu":
            return int(self.y_train.max()) + 1
        return None


def _edges_dataset(**_):
    (X_train, y_train), (X_test, y_test) = edges(200, seed=0), edges(50, seed=1)
    return Dataset("edges", X_train, y_train, X_test, y_test, list(EDGE_CLASSES), (5, 5), "none")


def _idx_dataset(name, classes):
    def load(*, download=True, progress=None):
        (X_train, y_train), (X_test, y_test) = _load_idx_set(name, raw=True, download=download, progress=progress)
        return Dataset(name, X_train, y_train, X_test, y_test, list(classes), (28, 28), "minmax", per_feature=False,
                       pixel_max=255.0)
    return load


def _digits_dataset(**_):
    (X_train, y_train), (X_test, y_test) = digits(raw=True)
    return Dataset("digits", X_train, y_train, X_test, y_test, [str(d) for d in range(10)], (8, 8),
                   "minmax", per_feature=False, pixel_max=16.0)


@dataclass
class DatasetInfo:
    name: str
    description: str
    load: Callable
    requires: str | None = None  # the optional extra it needs

    def where(self) -> str:
        """Where the data is now (or would be downloaded to)."""
        if self.name in IDX_FILES:
            found = [_find(self.name, f) for f in IDX_FILES[self.name]]
            if all(found):
                folders = sorted({str(p.parent) for p in found})
                return "present in " + ", ".join(folders)
            missing = sum(p is None for p in found)
            what = "not present" if missing == len(found) else f"{missing} of {len(found)} files missing"
            return f"{what}; downloaded on first use to {idx_target(self.name)}"
        if self.requires:
            # Found, not imported: importing scikit-learn takes a second or more.
            try:
                spec = importlib.util.find_spec(self.requires)
            except (ImportError, ValueError):  # a finder that refuses it, a broken install
                spec = None
            if spec is None:
                return f'needs {self.requires}: pip install "flexnet[{_EXTRAS.get(self.requires, self.requires)}]"'
        return "built in" if self.requires is None else f"bundled with {self.requires}"


_EXTRAS = {"sklearn": "sklearn"}


def idx_target(name: str) -> Path:
    env = os.environ.get("FLEXNET_DATA")
    return (Path(env) if env else cache_dir()) / name


#: Every named data set: ``flexnet datasets`` lists them, ``--data NAME`` loads them.
REGISTRY = {
    "edges": DatasetInfo("edges", "5x5 edge patches, 2 classes (200 train / 50 test)", _edges_dataset),
    "digits": DatasetInfo("digits", "8x8 handwritten digits, 10 classes (1,438 / 359)", _digits_dataset, "sklearn"),
    "mnist": DatasetInfo("mnist", "28x28 handwritten digits, 10 classes (60,000 / 10,000)",
                         _idx_dataset("mnist", MNIST_CLASSES)),
    "fashion-mnist": DatasetInfo("fashion-mnist", "28x28 clothes, 10 classes (60,000 / 10,000)",
                                 _idx_dataset("fashion-mnist", FASHION_CLASSES)),
}


def load(spec: str, *, label=-1, download: bool = True, progress=None, header: bool | None = None,
         delimiter: str | None = None, classes=None) -> Dataset:
    """Load a data set by name (see :data:`REGISTRY`) or from a .csv / .npz file.

    A file's labels become class ids by the rules of :mod:`flexnet.data.labels`:
    to train (``classes=None``) they define the classes, and a file with one
    class, or ids far beyond the labels it holds, is refused; to evaluate a
    model, pass its classes and the labels are looked up among them.

    Args:
        spec: ``"fashion-mnist"``, ``"digits"``, ... or a path ending in
            ``.csv`` or ``.npz``.
        label: the label column of a CSV file, by name or index.
        header, delimiter: of a CSV file; None guesses (see :func:`read_csv`).
        classes: the model's class names, or its number of classes, when the
            data is to score a model; None to train one.

    Raises:
        DataFileError: a file, row or label that cannot be read as classes.
    """
    key = spec.lower().replace("_", "-")
    if key in REGISTRY:
        info = REGISTRY[key]
        return info.load(download=download, progress=progress)
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".npz"):
        raise ValueError(
            f"--data {spec!r}: expected a data set name ({', '.join(REGISTRY)}) or a .csv or .npz file"
        )
    if not path.exists():  # what exists but is no regular file, the reader refuses by name
        raise FileNotFoundError(f"--data {spec!r}: no such file")
    read_as = label_column = None
    if suffix == ".csv":
        table = read_table(path, label, header=header, delimiter=delimiter)
        X, raw, names, where = table.X, table.labels, table.label_names, table.where
        read_as = table.describe()
        label_column = table.label_name if table.label_name is not None else table.label_column
    else:
        X, raw = read_npz(path)
        names = None
        if raw is not None and raw.dtype.kind in "US":
            names, raw = np.unique(raw.astype(str), return_inverse=True)
            names = [str(n) for n in names]

        def where(row):
            return f"{path}: 'y' row {row}"
    y = class_names = None
    if raw is not None:
        y, class_names = class_ids(raw, names, where=where, source=str(path), classes=classes)
    input_shape = X.shape[1:] if X.ndim == 3 else None
    return Dataset(path.name, X, y, class_names=class_names, input_shape=input_shape,
                   default_scaler="minmax", per_feature=X.ndim == 2, read_as=read_as, label_column=label_column)


def load_prepared(name, dtype, *, val_split: float = 0.0, seed: int = 0) -> tuple:
    """A data set by name or path (or a :class:`Dataset` loaded), split and scaled as ``flexnet train`` does it.

    With ``val_split`` the held-out part is a stratified split of the
    training part; without, it is the data set's test part (None for a
    user's file). The scaler is fitted on the training rows only.

    Returns:
        ``(X_train, y_train, X_held, y_held, metadata)``.
    """
    ds = name if isinstance(name, Dataset) else load(os.fspath(name))
    if ds.y_train is None:
        raise ValueError(f"data {ds.name!r}: no labels to train on")
    X, y = flatten(ds.X_train), ds.y_train
    if val_split:
        X, X_held, y, y_held = train_test_split(X, y, float(val_split), seed=seed, part="validation")
    else:
        X_held = None if ds.X_test is None else flatten(ds.X_test)
        y_held = ds.y_test
    kind = ds.default_scaler
    scaler = Scaler(kind, per_feature=ds.per_feature or kind == "standard", dtype=dtype).fit(X)
    metadata = make_metadata(scaler, input_shape=ds.input_shape, class_names=ds.class_names, dataset=ds.name,
                             label_column=ds.label_column)
    X_held = None if X_held is None else scaler.transform(X_held)
    return scaler.transform(X), y, X_held, y_held, metadata

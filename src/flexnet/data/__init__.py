"""Data: reading files, downloading them safely, preparing them for a network, and data sets.

``readers.py`` reads CSV, NPZ, IDX and image files (CSV through
``csv_layout.py``, what the first lines say, and ``tables.py``, every row in
bounded memory); ``labels.py`` turns labels into class ids; ``fetch.py`` downloads files and checks their
SHA-256; ``prepare.py`` holds the :class:`Scaler`, the train/validation split
and the metadata saved with a model; ``datasets.py`` holds the built-in data
sets (the tutorial's edges, digits, MNIST, Fashion-MNIST). ``sources.py``
holds the arrays that are not in memory (a memmap, a ``.npy`` path, a Dask
array: rows read a batch at a time) and ``streaming.py`` the tables read a
block at a time into a memmap cache (``flexnet train --data big.parquet``).
Everything is re-exported here, as ``flexnet.data.read_csv``.
"""

from .csv_layout import CsvLayout, sniff_csv
from .errors import DataFileError
from .labels import class_ids, model_classes
from .prepare import Scaler, flatten, make_metadata, prepare_input, train_test_split
from .readers import (
    IDX_DTYPES,
    encode_labels,
    read_csv,
    read_idx,
    read_images,
    read_npz,
    read_table,
    write_idx,
)
from .tables import Table

__all__ = [
    "IDX_DTYPES", "CsvLayout", "DataFileError", "DownloadError", "Scaler", "Table", "class_ids", "download",
    "encode_labels", "flatten", "make_metadata", "model_classes", "prepare_input", "read_csv", "read_idx",
    "read_images", "read_npz", "read_table", "sha256_of", "sniff_csv", "train_test_split", "write_idx",
]


def __getattr__(name):
    # The downloader imports Python's HTTP stack, a third of flexnet's import
    # time: it is imported when first used, not with flexnet.
    if name in ("DownloadError", "download", "sha256_of", "fetch"):
        import importlib

        fetch = importlib.import_module(__name__ + ".fetch")
        return fetch if name == "fetch" else getattr(fetch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

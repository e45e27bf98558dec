"""Model files: one safe ``.npz`` per network (``archive.py`` for the format,
``model_file.py`` for what a network writes into it and how it is rebuilt).

Reading a file never unpickles and never imports anything the file names."""

from .archive import ModelFileError, ModelFileNotFoundError, read_archive, write_archive
from .model_file import (
    describe,
    load,
    model_from_state,
    model_state,
    register_layer,
    save,
)

__all__ = [
    "ModelFileError", "ModelFileNotFoundError", "describe", "load", "model_from_state",
    "model_state", "read_archive", "register_layer", "save", "write_archive",
]

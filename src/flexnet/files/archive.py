"""The archive under model files and checkpoints: one ``.npz``, written
atomically, read without running code.

The layout (an ordinary zip file, readable with ``np.load`` or ``unzip``):

- ``__header__.json``: a UTF-8 JSON object. Besides what the caller put in it,
  it holds ``"arrays"``: ``{name: {"shape": [...], "dtype": "<f4"}}`` for every
  array stored, so a reader can check the file against itself.
- ``<name>.npy`` for every array, in NumPy's ``.npy`` format (``layers.0.W.npy``).

Reading never unpickles: each ``.npy`` header is parsed with NumPy's literal
parser, the dtype is checked *before* any data is read (object arrays are
refused outright), and the data are read as raw bytes. Every problem found is
collected and reported at once in a :class:`ModelFileError`.

Reading opens only a regular file (:func:`flexnet.filesystem.open_regular`: a
named pipe, a device, a folder or a ``/proc`` file is refused before anything
waits on it). Writing goes through :func:`flexnet.filesystem.atomic_write`: a
temporary file in the target folder, flushed and fsynced, then renamed over the
target with ``os.replace``. A process killed mid-save leaves the previous file as
it was, and a folder, a device or a named pipe is never replaced.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..filesystem import NotARegularFileError, atomic_write, open_regular

HEADER_MEMBER = "__header__.json"

# Plain numbers, booleans and strings: nothing that needs pickle to read.
_SAFE_KINDS = "biufcSU"
# Zip members get a fixed timestamp, so the same model always gives the same bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)
# Deflate cannot expand data more than about 1032-fold; a member claiming more is lying.
_MAX_DEFLATE_RATIO = 1100
_ARRAY_MARK, _SCALAR_MARK = "__ndarray__", "__npscalar__"
# Far deeper than any state flexnet writes, far shallower than Python's recursion limit.
_MAX_DEPTH = 100


class ModelFileError(ValueError):
    """A model or checkpoint file that flexnet refuses to load.

    ``path`` names the file and ``problems`` lists everything wrong with it;
    the message holds both, on one line.
    """

    def __init__(self, path, problems):
        self.path = str(path)
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} problems: " + "; ".join(
                f"({i}) {p}" for i, p in enumerate(self.problems, 1))
        super().__init__(f"{self.path}: {text}")

    def __reduce__(self):  # keep the exception copyable (multiprocessing, pytest-xdist)
        return type(self), (self.path, self.problems)


class ModelFileNotFoundError(ModelFileError, FileNotFoundError):
    """The model file does not exist (caught by ``except FileNotFoundError`` too)."""


# -- the archive ---------------------------------------------------------------


def write_archive(path, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``header`` and ``arrays`` to one ``.npz`` file, atomically.

    Args:
        path: the file to write; its folder must exist. Written exactly as
            named (no ``.npz`` is appended). A symbolic link is replaced by the
            new file; the file it pointed to is left untouched.
        header: a JSON-friendly dict. The key ``"arrays"`` is reserved: it is
            filled in with the name, shape and dtype of every array.
        arrays: ``{name: ndarray}``; names are free text such as ``layers.0.W``
            or ``opt/layers.0.W/exp_avg``. Only numeric, boolean and string
            arrays are accepted (no object arrays).

    Raises:
        TypeError: a header value JSON cannot hold, or an object array.
        ValueError: a bad array name or the reserved ``"arrays"`` key.
        IsADirectoryError, NotARegularFileError: ``path`` is a folder, a device,
            a named pipe or a socket (nothing is replaced).
        OSError: the file cannot be written; the previous file is then untouched.
    """
    path = Path(os.fspath(path))
    if not isinstance(header, Mapping):
        raise TypeError(f"write_archive({path}): header must be a dict, got {type(header).__name__}")
    if "arrays" in header:
        raise ValueError(f"write_archive({path}): header key 'arrays' is reserved for the array list")
    manifest, clean = {}, {}
    for name, arr in arrays.items():
        _check_member_name(name, f"write_archive({path})")
        arr = np.asarray(arr)
        if arr.dtype.kind not in _SAFE_KINDS:
            raise TypeError(
                f"write_archive({path}): array {name!r} has dtype {arr.dtype}; only numeric, "
                "boolean and string arrays can be stored (object arrays would need pickle)"
            )
        manifest[name] = {"shape": list(arr.shape), "dtype": arr.dtype.str}
        clean[name] = arr
    try:
        text = json.dumps({**header, "arrays": manifest}, indent=1)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"write_archive({path}): the header cannot be written as JSON: {exc}") from exc

    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(zipfile.ZipInfo(HEADER_MEMBER, _EPOCH), text.encode("utf-8"))
        for name, arr in clean.items():
            with zf.open(zipfile.ZipInfo(name + ".npy", _EPOCH), "w", force_zip64=True) as m:
                np.lib.format.write_array(m, arr, allow_pickle=False)


def read_archive(path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a file written by :func:`write_archive`, checking all of it.

    Returns:
        ``(header, arrays)``: the JSON header (with its ``"arrays"`` list) and
        ``{name: ndarray}``, every array read into memory.

    Raises:
        ModelFileError: the file is missing, empty, unreadable, not a flexnet
            archive, truncated or corrupt, holds an object array, or its arrays
            do not match the header. The message lists every problem.
    """
    header, arrays, _, problems = inspect_archive(Path(os.fspath(path)))
    if problems:
        raise ModelFileError(path, problems)
    return header, arrays


def inspect_archive(path: Path):
    """:func:`read_archive` that collects the problems found after opening instead of
    raising: ``(header or None, readable arrays, names of all array members, problems)``."""
    zf = _open_zip(path)
    with zf:
        problems: list[str] = []
        infos: dict[str, zipfile.ZipInfo] = {}
        for info in zf.infolist():
            if info.filename in infos:
                problems.append(f"member {info.filename!r} appears twice")
            infos[info.filename] = info
        header = _read_header(zf, infos.pop(HEADER_MEMBER, None), problems)
        arrays: dict[str, np.ndarray] = {}
        for member, info in infos.items():
            if not member.endswith(".npy"):
                problems.append(f"unexpected member {member!r} (expected only .npy arrays and {HEADER_MEMBER})")
                continue
            arr = _read_member_array(zf, info, problems)
            if arr is not None:
                arrays[member[:-4]] = arr
    stored = {m[:-4] for m in infos if m.endswith(".npy")}
    if header is not None:
        _check_manifest(header, arrays, stored, problems)
    return header, arrays, stored, problems


def _open_zip(path: Path) -> zipfile.ZipFile:
    """Open the archive, turning every way a file can be wrong into a ModelFileError."""
    try:
        f = open_regular(path)  # a pipe, a device, a folder, /proc...: refused before any wait
    except FileNotFoundError:
        raise ModelFileNotFoundError(path, "no such file") from None
    except NotARegularFileError as exc:
        raise ModelFileError(path, exc.problem) from None
    except OSError as exc:
        raise ModelFileError(path, f"cannot read the file: {exc.strerror or exc}") from None
    try:  # the zip is read from this very file, never reopened by its name
        size = os.fstat(f.fileno()).st_size
        start = f.read(8)
        if size == 0:
            raise ModelFileError(path, "the file is empty (0 bytes); it was probably not saved completely")
        if start.startswith(b"\x93NUMPY"):
            raise ModelFileError(path, "this is a single .npy array, not a flexnet model file (.npz archive)")
        if not start.startswith(b"PK"):
            raise ModelFileError(
                path, f"not a flexnet model file: expected a .npz (zip) archive, the file starts with {start[:8]!r}")
        try:
            return _ZipClosingItsFile(f)
        except Exception as exc:  # BadZipFile, struct.error, OverflowError... all mean a broken archive
            raise ModelFileError(path, f"truncated or corrupt archive ({describe_error(exc)})") from None
    except OSError as exc:
        f.close()
        raise ModelFileError(path, f"cannot read the file: {exc.strerror or exc}") from None
    except BaseException:
        f.close()
        raise


class _ZipClosingItsFile(zipfile.ZipFile):
    """A ZipFile that closes the open file it reads (a plain ZipFile leaves a file it
    was given open)."""

    def __init__(self, f):
        self._file = f
        super().__init__(f, "r")

    def close(self):
        try:
            super().close()
        finally:
            self._file.close()


def _read_header(zf, info, problems) -> dict | None:
    if info is None:
        problems.append(f"no {HEADER_MEMBER} member: not a flexnet archive (a plain np.savez file?)")
        return None
    try:
        _check_inflated_size(info)
        header = json.loads(zf.read(info).decode("utf-8"))
    except Exception as exc:
        problems.append(f"{HEADER_MEMBER} is unreadable ({describe_error(exc)})")
        return None
    if not isinstance(header, dict):
        problems.append(f"{HEADER_MEMBER} must hold a JSON object, got {type(header).__name__}")
        return None
    if _depth(header) > _MAX_DEPTH:  # everything after walks it recursively
        problems.append(f"{HEADER_MEMBER} is nested more than {_MAX_DEPTH} levels deep")
        return None
    return header


def _depth(value) -> int:
    """How deeply ``value``'s dicts and lists nest, found without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, depth)
            todo.extend((v, depth + 1) for v in value)
    return deepest


def _read_member_array(zf, info, problems) -> np.ndarray | None:
    """One ``.npy`` member: header parsed, dtype vetted, then raw bytes read."""
    name = info.filename[:-4]
    try:
        _check_inflated_size(info)
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                problems.append(f"array {name!r}: unsupported .npy version {version}")
                return None
            if dtype.kind not in _SAFE_KINDS or dtype.hasobject:
                problems.append(
                    f"array {name!r} has dtype {dtype}: refused, reading it would need pickle, "
                    "which can run code")
                return None
            count = math.prod(shape)
            nbytes = count * dtype.itemsize
            held = info.file_size - f.tell()
            if nbytes != held:
                problems.append(
                    f"array {name!r}: its header says shape {shape} {dtype} ({nbytes} bytes) "
                    f"but the member holds {held} bytes")
                return None
            data = f.read(nbytes)  # zipfile checks the CRC when the member is read to its end
            if len(data) != nbytes or f.read(1):
                problems.append(f"array {name!r} is truncated")
                return None
    except Exception as exc:  # corrupt bytes surface as many types; all mean the same here
        problems.append(f"array {name!r} is corrupt ({describe_error(exc)})")
        return None
    arr = np.frombuffer(data, dtype=dtype, count=count).copy()  # writeable, owns its memory
    return arr.reshape(shape, order="F" if fortran else "C")


def _check_inflated_size(info: zipfile.ZipInfo) -> None:
    """Refuse members whose claimed size no compression could produce."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ValueError(f"unsupported compression method {info.compress_type}")
    if info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 1024:
        raise ValueError(f"claims {info.file_size} bytes from {info.compress_size} compressed")


def _check_manifest(header, arrays, stored, problems) -> None:
    """Compare the header's array list with the arrays present (``stored``: every
    array member, ``arrays``: those that could be read)."""
    manifest = header.get("arrays")
    if not isinstance(manifest, dict):
        problems.append("the header has no 'arrays' list")
        return
    for name in sorted(stored - set(manifest)):
        problems.append(f"extra array {name!r} not listed in the header")
    for name, spec in manifest.items():
        if name not in stored:
            problems.append(f"missing array {name!r} (listed in the header)")
            continue
        if name not in arrays:
            continue  # unreadable, already reported
        arr = arrays[name]
        if not isinstance(spec, dict):
            problems.append(f"header entry for array {name!r} is not an object")
            continue
        if spec.get("shape") != list(arr.shape):
            problems.append(f"array {name!r} has shape {tuple(arr.shape)}, the header says {spec.get('shape')}")
        if spec.get("dtype") != arr.dtype.str:
            problems.append(f"array {name!r} has dtype {arr.dtype.str}, the header says {spec.get('dtype')}")


def _check_member_name(name, where: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: array names must be non-empty strings, got {name!r}")
    if name == HEADER_MEMBER[:-5] or name.startswith("/") or "\\" in name or "\x00" in name:
        raise ValueError(f"{where}: array name {name!r} is not allowed")


def describe_error(exc: BaseException) -> str:
    """``"TypeName: message"`` of an exception, for a one-line problem report."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- nested state <-> JSON + arrays ---------------------------------------------------


def flatten_state(nested: Any, prefix: str = "") -> tuple[Any, dict[str, np.ndarray]]:
    """Split nested state into a JSON-friendly part and a flat dict of arrays.

    Dicts (string keys), lists, tuples, ``None``, bools, ints (of any size, so
    a PCG64 state fits), floats and strings stay in the JSON part. Every NumPy
    array moves to the array dict under its path, ``"opt/layers.0.W/exp_avg"``,
    and is replaced by ``{"__ndarray__": path}``; a NumPy scalar is stored as a
    0-d array and comes back with its own dtype.

    Args:
        nested: the state, such as an optimizer's ``state_dict()``.
        prefix: prepended to every array path (``"opt"`` gives ``"opt/..."``).

    Returns:
        ``(json_part, arrays)``; :func:`unflatten_state` inverts it. Tuples come
        back as lists.
    """
    arrays: dict[str, np.ndarray] = {}
    return _flatten(nested, prefix, arrays), arrays


def _flatten(obj, path: str, arrays: dict):
    if isinstance(obj, np.ndarray) or isinstance(obj, np.generic):
        if path in arrays or not path:
            raise ValueError(f"flatten_state: two arrays would share the name {path!r}; rename a key")
        arrays[path] = np.asarray(obj)
        return {(_ARRAY_MARK if isinstance(obj, np.ndarray) else _SCALAR_MARK): path}
    if isinstance(obj, dict):
        if set(obj) in ({_ARRAY_MARK}, {_SCALAR_MARK}):
            raise ValueError(f"flatten_state: key {next(iter(obj))!r} at {path!r} is reserved")
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"flatten_state: keys must be strings, got {key!r} ({type(key).__name__}) "
                    f"at {path or 'the top level'!r}")
            out[key] = _flatten(value, f"{path}/{key}" if path else key, arrays)
        return out
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{path}/{i}" if path else str(i), arrays) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(
        f"flatten_state: cannot store {type(obj).__name__} at {path or 'the top level'!r}; "
        "expected dicts, lists, numbers, strings, None or NumPy arrays")


def unflatten_state(json_part: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    """Put the arrays back where :func:`flatten_state` took them from.

    Arrays not referenced by ``json_part`` are ignored, so the whole array dict
    of an archive can be passed.

    Raises:
        ValueError: ``json_part`` refers to an array that is not there.
    """
    if isinstance(json_part, dict):
        if len(json_part) == 1 and (_ARRAY_MARK in json_part or _SCALAR_MARK in json_part):
            mark, key = next(iter(json_part.items()))
            if not isinstance(key, str) or key not in arrays:
                raise ValueError(f"unflatten_state: the state refers to array {key!r}, which is missing")
            arr = arrays[key]
            return arr[()] if mark == _SCALAR_MARK else arr
        return {k: unflatten_state(v, arrays) for k, v in json_part.items()}
    if isinstance(json_part, list):
        return [unflatten_state(v, arrays) for v in json_part]
    return json_part


def state_array_refs(json_part: Any) -> set[str]:
    """The array names a flattened state refers to."""
    if isinstance(json_part, dict):
        if len(json_part) == 1 and (_ARRAY_MARK in json_part or _SCALAR_MARK in json_part):
            return {str(next(iter(json_part.values())))}
        return set().union(*(state_array_refs(v) for v in json_part.values()))
    if isinstance(json_part, list):
        return set().union(*(state_array_refs(v) for v in json_part))
    return set()

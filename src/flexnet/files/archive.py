"""The archive under model files and checkpoints: one ``.npz``, written
atomically, read without running code.

The layout (an ordinary zip file, readable with ``np.load`` or ``unzip``):

- ``__header__.json``: a UTF-8 JSON object. Besides what the caller put in it,
  it holds ``"arrays"``: ``{name: {"shape": [...], "dtype": "<f4"}}`` for every
  array stored, so a reader can check the file against itself.
- ``<name>.npy`` for every array, in NumPy's ``.npy`` format (``layers.0.W.npy``).

Reading never unpickles, and judges the file against its header *before*
anything is decompressed (:class:`ArchiveReader`): the zip directory and the
JSON header are size-capped, every member must be listed in the header, and
each ``.npy`` header (parsed with NumPy's literal parser; object arrays refused
outright) must agree with the listing and with the member's size. Only then
are arrays decompressed, each straight into its own array, so reading takes
little more memory than the arrays the header declares, which may unpack to
at most :data:`INFLATE_FLOOR` plus :data:`INFLATE_RATIO` times the file's size.
Every problem found is collected and reported at once in a :class:`ModelFileError`.

Reading opens only a regular file (:func:`flexnet.filesystem.open_regular`: a
named pipe, a device, a folder or a ``/proc`` file is refused before anything
waits on it). Writing goes through :func:`flexnet.filesystem.atomic_write`: a
temporary file in the target folder, flushed and fsynced, then renamed over the
target with ``os.replace``. A process killed mid-save leaves the previous file as
it was, and a folder, a device or a named pipe is never replaced.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
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

# -- what a file may make a reader do (each limit is checked before the work it bounds)
#: The JSON header is parsed whole, and parsed JSON takes up to ~15 times its text.
#: flexnet's headers take kilobytes; a long run with diagnostics, a few megabytes.
MAX_HEADER_BYTES = 8 << 20
#: Dicts and lists in the header: each costs ~70 bytes once parsed, from 2 bytes of text.
MAX_HEADER_CONTAINERS = 300_000
#: Zip members (zipfile keeps ~500 bytes for each) and the bytes of the zip directory.
MAX_MEMBERS = 100_000
MAX_DIRECTORY_BYTES = 16 << 20
#: One member's ``.npy`` header (NumPy writes 128 bytes for the arrays flexnet stores).
MAX_NPY_HEADER = 4096
# What precedes an array's data in a member: magic, version, header length, then the header.
_MIN_NPY_HEADER, _MAX_NPY_PREAMBLE = 10, 12 + MAX_NPY_HEADER
#: All members together may unpack to at most ``INFLATE_FLOOR + INFLATE_RATIO * file size``
#: bytes. flexnet stores members uncompressed (ratio 1) and weights compress poorly, so
#: only a file built to exhaust memory (zeros deflate ~1000-fold) comes near it.
INFLATE_FLOOR, INFLATE_RATIO = 64 << 20, 32
#: Problems spelled out in an error message; the rest are counted (``.problems`` has all).
_SHOWN_PROBLEMS = 20
# Arrays are decompressed this many bytes at a time, straight into their own memory.
_CHUNK = 1 << 20


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
                f"({i}) {p}" for i, p in enumerate(self.problems[:_SHOWN_PROBLEMS], 1))
            if len(self.problems) > _SHOWN_PROBLEMS:
                text += f"; and {len(self.problems) - _SHOWN_PROBLEMS} more"
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


def read_archive(path, names=None) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a file written by :func:`write_archive`, checking all of it.

    Args:
        path: the file.
        names: the arrays to read (default: all). The others are checked
            against the header but not decompressed.

    Returns:
        ``(header, arrays)``: the JSON header (with its ``"arrays"`` list) and
        ``{name: ndarray}``, every array asked for read into memory.

    Raises:
        ModelFileError: the file is missing, empty, unreadable, not a flexnet
            archive, truncated or corrupt, larger than the limits above allow,
            holds an object array, or its arrays do not match the header. The
            message lists every problem.
    """
    with ArchiveReader(path) as archive:
        arrays = archive.read(names) if not archive.problems else {}
        if archive.problems:
            raise ModelFileError(path, archive.problems)
        return archive.header, arrays


class ArchiveReader:
    """An archive opened for reading and judged against its own header, with nothing
    decompressed yet but the header; :meth:`read` then decompresses the arrays asked for.

    Opening checks, in this order and each before the work it bounds: the zip
    directory's size and member count, the header's size, nesting and number of
    dicts and lists, then for every member: that the header lists it with a
    safe dtype, that its compression could produce the size it claims, and that
    this size is the listed shape times the dtype's size plus a ``.npy`` header;
    and that all members together unpack to no more than
    ``INFLATE_FLOOR + INFLATE_RATIO * file size``. A member's own ``.npy`` header
    (at most :data:`MAX_NPY_HEADER` bytes) is read when the member is, and must
    agree with the listing before any data is.

    Attributes:
        path: the file.
        header: the JSON header, or None when it cannot be read.
        declared: ``{name: (shape, dtype)}`` of every array whose member passed
            the checks: what :meth:`read` would build, known before it does.
        stored: the names of every ``.npy`` member (passing the checks or not).
        listed: the names of the arrays the header lists.
        problems: everything found wrong so far (``ModelFileError``'s list).

    Raises:
        ModelFileError: the file cannot be opened as a zip archive at all.
    """

    def __init__(self, path):
        self.path = Path(os.fspath(path))
        self.problems: list[str] = []
        self.declared: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        self.header = None
        self.zf = _open_zip(self.path)
        try:
            self._judge()
        except BaseException:
            self.zf.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        self.zf.close()

    def _judge(self) -> None:
        problems = self.problems
        infos: dict[str, zipfile.ZipInfo] = {}
        for info in self.zf.infolist():
            if info.filename in infos:
                problems.append(f"member {info.filename!r} appears twice")
            infos[info.filename] = info
        self._infos = infos
        file_size = self.path.stat().st_size
        unpacked = sum(info.file_size for info in infos.values())
        if unpacked > INFLATE_FLOOR + INFLATE_RATIO * file_size:
            problems.append(
                f"its members unpack to {unpacked:,} bytes, more than a {file_size:,}-byte flexnet file "
                f"may hold ({INFLATE_FLOOR >> 20} MiB plus {INFLATE_RATIO} times its size): refused "
                "before decompressing anything")
        self.header = _read_header(self.zf, infos.pop(HEADER_MEMBER, None), file_size, problems)
        self.stored = {m[:-4] for m in infos if m.endswith(".npy")}
        manifest = None if self.header is None else _manifest(self.header, problems)
        self.listed = set(manifest or ())
        if manifest is not None:
            for name in sorted(self.stored - set(manifest)):
                problems.append(f"extra array {name!r} not listed in the header")
            for name in manifest:
                if name not in self.stored:
                    problems.append(f"missing array {name!r} (listed in the header)")
        for member, info in infos.items():
            if not member.endswith(".npy"):
                problems.append(f"unexpected member {member!r} (expected only .npy arrays and {HEADER_MEMBER})")
            elif manifest is not None and member[:-4] in manifest:
                self._judge_member(info, manifest[member[:-4]], file_size)

    def _judge_member(self, info: zipfile.ZipInfo, spec, file_size: int) -> None:
        """One listed ``.npy`` member, judged from the listing and the zip directory
        alone: it is opened only when they disagree, to say how (from its ``.npy`` header)."""
        name, problems = info.filename[:-4], self.problems
        listed = _listed_array(name, spec)
        if isinstance(listed, str):
            problems.append(listed)
            return
        shape, dtype = listed
        try:
            _check_compression(info, file_size)
        except ValueError as exc:
            problems.append(f"array {name!r} is corrupt ({describe_error(exc)})")
            return
        npy_header = info.file_size - math.prod(shape) * dtype.itemsize
        if _MIN_NPY_HEADER <= npy_header <= _MAX_NPY_PREAMBLE:
            self.declared[name] = (shape, dtype)  # its .npy header is checked when it is read
        else:
            self._explain(info, spec)

    def _explain(self, info: zipfile.ZipInfo, spec: dict) -> None:
        """Say why a member's size does not fit its listing, from its ``.npy`` header."""
        name = info.filename[:-4]
        try:
            with self.zf.open(info) as f:
                shape, _, dtype, offset = _read_npy_header(f)
        except Exception as exc:  # corrupt bytes surface as many types; all mean the same here
            self.problems.append(f"array {name!r} is corrupt ({describe_error(exc)})")
            return
        held = info.file_size - offset
        self.problems += _disagreements(name, spec, shape, dtype, held) or [
            f"array {name!r}: the member's {info.file_size:,} bytes do not fit its listing"]

    def read(self, names=None) -> dict[str, np.ndarray]:
        """Decompress the arrays ``names`` (default: every one declared), each
        straight into an array of the declared shape and dtype, after checking
        its ``.npy`` header against the listing. A member that disagrees, or is
        corrupt or truncated (its CRC is checked), goes to :attr:`problems`."""
        arrays = {}
        for name in self.declared if names is None else names:
            arr = self._read_one(name)
            if arr is not None:
                arrays[name] = arr
        return arrays

    def _read_one(self, name: str) -> np.ndarray | None:
        if name not in self.declared:
            self.problems.append(f"array {name!r} cannot be read: it is missing or refused above")
            return None
        shape, dtype = self.declared[name]
        info = self._infos[name + ".npy"]
        flat = np.empty(math.prod(shape), dtype=dtype)
        raw = flat.view(np.uint8) if flat.nbytes else flat  # the array's own bytes, filled in place
        try:
            with self.zf.open(info) as f:
                got_shape, fortran, got_dtype, offset = _read_npy_header(f)
                spec = {"shape": list(shape), "dtype": dtype.str}
                wrong = _disagreements(name, spec, got_shape, got_dtype, info.file_size - offset)
                if wrong:  # found before any data is read
                    self.problems += wrong
                    return None
                done = 0
                while done < flat.nbytes:
                    chunk = f.read(min(_CHUNK, flat.nbytes - done))
                    if not chunk:
                        break
                    raw[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                    done += len(chunk)
                if done != flat.nbytes or f.read(1):  # zipfile checks the CRC at the member's end
                    self.problems.append(f"array {name!r} is truncated")
                    return None
        except Exception as exc:  # corrupt bytes surface as many types; all mean the same here
            self.problems.append(f"array {name!r} is corrupt ({describe_error(exc)})")
            return None
        return flat.reshape(shape, order="F" if fortran else "C")


def _disagreements(name: str, spec: dict, shape: tuple, dtype: np.dtype, held: int) -> list[str]:
    """How a member's ``.npy`` header (``shape``, ``dtype``, then ``held`` bytes of data)
    disagrees with the header's entry ``spec``, or with itself."""
    if dtype.kind not in _SAFE_KINDS or dtype.hasobject:
        return [f"array {name!r} has dtype {dtype}: refused, reading it would need pickle, which can run code"]
    wrong = []
    if spec.get("shape") != list(shape):
        wrong.append(f"array {name!r} has shape {shape}, the header says {spec.get('shape')}")
    if spec.get("dtype") != dtype.str:
        wrong.append(f"array {name!r} has dtype {dtype.str}, the header says {spec.get('dtype')}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != held:
        wrong.append(f"array {name!r}: its header says shape {shape} {dtype} ({nbytes:,} bytes) "
                     f"but the member holds {held:,} bytes")
    return wrong


def _listed_array(name: str, spec) -> tuple[tuple[int, ...], np.dtype] | str:
    """``(shape, dtype)`` from the header's entry for array ``name``, or the problem with it."""
    if not isinstance(spec, dict):
        return f"header entry for array {name!r} is not an object"
    shape, text = spec.get("shape"), spec.get("dtype")
    if not (isinstance(shape, list) and len(shape) <= 64
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        return f"header entry for array {name!r}: shape must be a list of whole numbers >= 0, got {shape!r:.80}"
    try:
        dtype = np.dtype(text) if isinstance(text, str) else None
    except (TypeError, ValueError, SyntaxError):
        dtype = None
    if dtype is None or (dtype.str != text and dtype.kind in _SAFE_KINDS):
        return f"header entry for array {name!r}: dtype must be a NumPy type string such as '<f4', got {text!r:.80}"
    if dtype.kind not in _SAFE_KINDS or dtype.hasobject:
        return f"array {name!r} has dtype {dtype}: refused, reading it would need pickle, which can run code"
    return tuple(shape), dtype


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
        _check_directory(f, path, size)
        f.seek(0)
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


def _check_directory(f, path: Path, size: int) -> None:
    """Refuse a zip directory too large to read, from its end record alone.

    zipfile reads the whole directory and keeps an object per member, so a file
    of many tiny members would cost memory before any other check ran. The
    members are counted by their signatures (the count in the end record can lie).
    Anything unreadable here is left for zipfile to report. ``f`` is the open file.
    """
    tail_len = min(size, 22 + 0xFFFF)  # the end record and its longest comment
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return
    end = size - tail_len + at
    _, _, _, _, entries, cd_size, cd_offset, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
    if entries == 0xFFFF or 0xFFFFFFFF in (cd_size, cd_offset):  # perhaps a zip64 end record
        f.seek(max(end - 20 - 56, 0))
        record = f.read(56)
        if len(record) == 56 and record.startswith(b"PK\x06\x06"):
            entries, _, cd_size, _ = struct.unpack("<4Q", record[24:56])
            end -= 20 + 56
    problem = None
    if entries > MAX_MEMBERS:
        problem = f"the zip directory lists {entries:,} members, more than the {MAX_MEMBERS:,} allowed"
    elif cd_size > MAX_DIRECTORY_BYTES:
        problem = (f"the zip directory takes {cd_size:,} bytes, more than the "
                   f"{MAX_DIRECTORY_BYTES >> 20} MiB allowed")
    elif 0 <= end - cd_size:
        f.seek(end - cd_size)
        members = f.read(cd_size).count(b"PK\x01\x02")
        if members > MAX_MEMBERS:
            problem = f"the zip directory holds {members:,} members, more than the {MAX_MEMBERS:,} allowed"
    if problem is not None:
        raise ModelFileError(path, f"{problem}: refused before reading it")


def _read_header(zf, info, file_size: int, problems) -> dict | None:
    if info is None:
        problems.append(f"no {HEADER_MEMBER} member: not a flexnet archive (a plain np.savez file?)")
        return None
    if info.file_size > MAX_HEADER_BYTES:
        problems.append(f"{HEADER_MEMBER} takes {info.file_size:,} bytes, more than the "
                        f"{MAX_HEADER_BYTES >> 20} MiB a flexnet header may take")
        return None
    try:
        _check_compression(info, file_size)
        text = zf.read(info).decode("utf-8")
        containers = text.count("{") + text.count("[")
        if containers > MAX_HEADER_CONTAINERS:
            problems.append(f"{HEADER_MEMBER} holds {containers:,} dicts and lists, more than the "
                            f"{MAX_HEADER_CONTAINERS:,} a flexnet header may hold")
            return None
        header = json.loads(text)
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


def _manifest(header: dict, problems: list) -> dict | None:
    """The header's ``"arrays"`` list, or None (with the problem noted)."""
    manifest = header.get("arrays")
    if not isinstance(manifest, dict):
        problems.append("the header has no 'arrays' list")
        return None
    if len(manifest) > MAX_MEMBERS:
        problems.append(f"the header lists {len(manifest):,} arrays, more than the {MAX_MEMBERS:,} allowed")
        return None
    return manifest


def _depth(value) -> int:
    """How deeply ``value``'s dicts and lists nest, found without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, depth)
            todo.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return deepest


def _read_npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, data offset)`` of the ``.npy`` member open as ``f``.

    The header's length is checked before the header is read: NumPy would read
    a (version 2) header of up to 4 GiB before looking at its size.
    """
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise ValueError(f"unsupported .npy version {version}")
    length_field = f.read(2 if version == (1, 0) else 4)
    if len(length_field) not in (2, 4):
        raise ValueError("the .npy header is cut short")
    length = int.from_bytes(length_field, "little")
    if length > MAX_NPY_HEADER:
        raise ValueError(f"its .npy header claims {length:,} bytes, more than {MAX_NPY_HEADER}")
    text = f.read(length)
    parse = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = parse(io.BytesIO(length_field + text))
    return tuple(shape), fortran, dtype, 6 + 2 + len(length_field) + length


def _check_compression(info: zipfile.ZipInfo, file_size: int) -> None:
    """Refuse members whose claimed sizes no compression, or no file this size, could hold."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ValueError(f"unsupported compression method {info.compress_type}")
    if info.header_offset + info.compress_size > file_size:
        raise ValueError(f"claims {info.compress_size:,} compressed bytes past the end of the file")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise ValueError(f"stored uncompressed, but claims {info.file_size:,} bytes from {info.compress_size:,}")
    if info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 1024:
        raise ValueError(f"claims {info.file_size} bytes from {info.compress_size} compressed")


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

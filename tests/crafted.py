"""Hostile model files, written byte by byte.

``zipfile`` writes only honest archives, so these helpers write the zip format
themselves: members whose sizes lie, members of deflated zeros that expand a
thousand-fold (built in milliseconds by repeating one compressed block), and
zip directories that list far more members than the file holds.

And ``peak_memory``, which runs a snippet in a fresh interpreter, under a limit
on its address space, and reports the peak resident memory it took.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

STORED, DEFLATED = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED


@dataclass
class Member:
    """One zip member as it lies on disk: ``data`` is what the file holds
    (compressed when ``method`` is DEFLATED); ``file_size`` and ``crc`` are what
    the directory claims about the data once unpacked."""

    name: str
    data: bytes
    file_size: int
    crc: int
    method: int = STORED
    offset_to: str | None = None  # share the local header of this member (a directory entry only)
    compress_size: int | None = None  # claimed instead of len(data)


def stored(name: str, raw: bytes) -> Member:
    return Member(name, raw, len(raw), zlib.crc32(raw))


def deflated(name: str, raw: bytes) -> Member:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return Member(name, c.compress(raw) + c.flush(), len(raw), zlib.crc32(raw), DEFLATED)


def deflated_zeros(name: str, prefix: bytes, n_zeros: int) -> Member:
    """``prefix`` then ``n_zeros`` zero bytes, deflated (~1 KB per MiB of zeros).

    A full flush resets the compressor, so every MiB of zeros compresses to the
    same bytes: one block is computed and repeated.
    """
    mib = 1 << 20
    assert n_zeros % mib == 0
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(mib)) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.flush()
    crc = zlib.crc32(prefix)
    zeros = bytes(mib)
    for _ in range(n_zeros // mib):
        crc = zlib.crc32(zeros, crc)
    return Member(name, head + block * (n_zeros // mib) + tail, len(prefix) + n_zeros, crc, DEFLATED)


def npy_header(shape, dtype) -> bytes:
    """The ``.npy`` preamble and header NumPy writes before an array's data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": tuple(shape)})
    return buf.getvalue()


def npy(arr) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def write_zip(path, members, *, claimed_entries: int | None = None) -> None:
    """Write ``members`` as a zip archive, taking every size and CRC as given.

    A member with ``offset_to`` gets a directory entry only, pointing at the
    local header of the member it names: many directory entries, one copy of
    the data. ``claimed_entries`` puts another count in the end record.
    """
    out = io.BytesIO()
    offsets, entries = {}, []
    for m in members:
        name = m.name.encode()
        packed = len(m.data) if m.compress_size is None else m.compress_size
        if m.offset_to is None:
            offsets[m.name] = out.tell()
            out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, m.method, 0, 0x21,
                                  m.crc, packed, m.file_size, len(name), 0))
            out.write(name + m.data)
        offset = offsets[m.offset_to or m.name]
        entries.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, m.method, 0, 0x21,
                                   m.crc, packed, m.file_size, len(name), 0, 0, 0, 0, 0,
                                   offset) + name)
    start = out.tell()
    directory = b"".join(entries)
    out.write(directory)
    count = len(entries) if claimed_entries is None else claimed_entries
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
                          len(directory), start, 0))
    with open(path, "wb") as f:
        f.write(out.getvalue())


def members_of(path) -> list[Member]:
    """The members of an honest archive (such as one flexnet wrote), stored."""
    with zipfile.ZipFile(path) as zf:
        return [stored(name, zf.read(name)) for name in zf.namelist()]


def header_of(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("__header__.json"))


def with_header(members, header) -> list[Member]:
    """``members`` with the JSON header replaced (deflated: a big header stays a small file)."""
    text = header if isinstance(header, (bytes, str)) else json.dumps(header)
    text = text.encode() if isinstance(text, str) else text
    return [deflated("__header__.json", text) if m.name == "__header__.json" else m for m in members]


#: Run in the child: the limit, flexnet imported, then the snippet, then one line of JSON.
_CHILD = """
import json, resource
limit = {limit}
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import flexnet
from flexnet.cli import main

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak so far (imports) is forgotten: it starts again from now
report = {{"outcome": "returned", "base": status("VmRSS")}}
try:
{body}
except MemoryError:
    report["outcome"] = "MemoryError"
except Exception as exc:
    report["outcome"] = type(exc).__name__ + ": " + str(exc)
report["peak"] = max(status("VmHWM"), status("VmRSS"))
print(json.dumps(report))
"""


def peak_memory(body: str, *, limit: int = 1 << 30, timeout: float = 120) -> dict:
    """Run ``body`` (Python source; ``flexnet``, ``main`` and ``report`` at hand) in a
    fresh interpreter whose address space is capped at ``limit`` bytes.

    Returns ``report``: ``"outcome"`` (an exception's type and message, or what
    the body put there), ``"base"`` (the resident memory once flexnet was
    imported) and ``"peak"`` (the peak resident memory since then: Linux's
    high-water mark, reset through ``/proc/self/clear_refs``), in bytes, plus
    whatever the body added. BLAS runs one thread, so the cap measures the
    code, not thread stacks.
    """
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    code = _CHILD.format(limit=limit, body=textwrap.indent(textwrap.dedent(body), "    "))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])

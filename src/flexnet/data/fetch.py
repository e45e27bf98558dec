"""Downloading data files, checked against a SHA-256 before anything uses them.

A download is bounded three ways, so no server can make it run forever or fill
the disk: each wait for the server is limited (``timeout``), the whole file
from one mirror must arrive within ``time_limit``, and reading stops at the
file's size: the size the caller knows (the data sets know theirs), else the
size the server announced.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Sequence

from ..filesystem import open_regular


class DownloadError(OSError):
    """No mirror delivered a file with the expected checksum."""


class _GaveUp(Exception):
    """A mirror refused before the checksum: too slow, or more bytes than the file has."""


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open_regular(path) as f:  # a pipe or a device is refused, not read forever
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _progress_bar(total, desc: str, progress):
    """A tqdm bar, or None when tqdm is missing or progress is off."""
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)


def _fetch_one(url: str, tmp, timeout: float, progress, size: int | None, time_limit: float) -> str:
    """Stream ``url`` into the open file ``tmp``; return the SHA-256 of what came."""
    h = hashlib.sha256()
    received = 0
    deadline = time.monotonic() + time_limit
    with urllib.request.urlopen(url, timeout=min(timeout, time_limit)) as resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if size is not None and total is not None and total != size:
            raise _GaveUp(f"the server announces {total:,} bytes, but the file has {size:,}; nothing read")
        limit = size if size is not None else total  # reading stops here, whatever the server sends
        bar = _progress_bar(limit, Path(urllib.parse.urlparse(url).path).name, progress)
        try:
            while True:
                if time.monotonic() > deadline:
                    raise _GaveUp(f"not finished after the time limit of {time_limit:g} s "
                                  f"({received:,} bytes received)")
                chunk = resp.read1(1 << 16)  # what has arrived: a trickling server cannot hold a read
                if not chunk:
                    break
                if limit is not None and received + len(chunk) > limit:
                    raise _GaveUp(f"the server sends more than the {limit:,} bytes the file has")
                tmp.write(chunk)
                h.update(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if limit is not None and received != limit:
        raise http.client.IncompleteRead(b"", limit - received)
    return h.hexdigest()


def download(urls: Sequence[str] | str, dest, sha256: str, *, size: int | None = None, progress=None,
             timeout: float = 30.0, time_limit: float = 900.0) -> Path:
    """Fetch a file from the first mirror that delivers the right bytes.

    Each mirror is tried in turn; a download counts only if it is complete and
    its SHA-256 matches. The file is written to a temporary name next to
    ``dest`` and renamed into place, so ``dest`` is never half-written.

    Args:
        urls: mirror URLs of the same file, tried in order.
        dest: where the file goes (its folder is created).
        sha256: the expected hex digest.
        size: the file's size in bytes, when known. A server announcing
            another size is refused before anything is read, and one sending
            more is cut off there (without it: at the size the server announced).
        progress: show a tqdm progress bar (None: when tqdm is installed).
        timeout: seconds to wait for each server response or read.
        time_limit: seconds one mirror may take for the whole file; a server
            that trickles is given up on then, and the next mirror tried.

    Returns:
        ``dest`` as a Path.

    Raises:
        DownloadError: no mirror delivered; the message says what each did.
    """
    if isinstance(urls, str):
        urls = [urls]
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as tmp:
                digest = _fetch_one(url, tmp, timeout, progress, size, time_limit)
            if digest != sha256.lower():
                failures.append(f"{url}: wrong checksum (got sha256 {digest[:12]}..., expected {sha256[:12]}...)")
                continue
            os.replace(tmp_name, dest)
            return dest
        except _GaveUp as exc:
            failures.append(f"{url}: {exc}")
        except http.client.IncompleteRead as exc:
            failures.append(f"{url}: truncated download ({exc.expected} bytes missing)")
        except urllib.error.HTTPError as exc:
            failures.append(f"{url}: HTTP {exc.code} {exc.reason}")
        except urllib.error.URLError as exc:
            failures.append(f"{url}: cannot connect ({exc.reason})")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
    raise DownloadError(
        f"could not download {dest.name} from {len(urls)} mirror(s): " + "; ".join(failures)
        + f". Put the file at {dest} yourself to skip the download."
    )

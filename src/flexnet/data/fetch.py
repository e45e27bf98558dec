"""Downloading data files, checked against a SHA-256 before anything uses them."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Sequence

from ..filesystem import open_regular


class DownloadError(OSError):
    """No mirror delivered a file with the expected checksum."""


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


def _fetch_one(url: str, tmp, timeout: float, progress) -> str:
    """Stream ``url`` into the open file ``tmp``; return the SHA-256 of what came."""
    h = hashlib.sha256()
    received = 0
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        bar = _progress_bar(total, Path(urllib.parse.urlparse(url).path).name, progress)
        try:
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                tmp.write(chunk)
                h.update(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)
    return h.hexdigest()


def download(urls: Sequence[str] | str, dest, sha256: str, *, progress=None, timeout: float = 30.0) -> Path:
    """Fetch a file from the first mirror that delivers the right bytes.

    Each mirror is tried in turn; a download counts only if it is complete and
    its SHA-256 matches. The file is written to a temporary name next to
    ``dest`` and renamed into place, so ``dest`` is never half-written.

    Args:
        urls: mirror URLs of the same file, tried in order.
        dest: where the file goes (its folder is created).
        sha256: the expected hex digest.
        progress: show a tqdm progress bar (None: when tqdm is installed).
        timeout: seconds to wait for each server.

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
                digest = _fetch_one(url, tmp, timeout, progress)
            if digest != sha256.lower():
                failures.append(f"{url}: wrong checksum (got sha256 {digest[:12]}..., expected {sha256[:12]}...)")
                continue
            os.replace(tmp_name, dest)
            return dest
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

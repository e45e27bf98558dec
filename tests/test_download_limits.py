"""Downloads that would never end: a server that sends forever, one that announces
more than the file holds, and one that trickles a byte at a time.

Each is served on 127.0.0.1 by the test itself, and each download is given small
limits, so a failure is quick: reading stops at the file's size, and one mirror
has ``time_limit`` seconds for the whole file whatever each read waits.
"""

import hashlib
import http.server
import os
import threading
import time

import pytest

from flexnet import data
from flexnet.data import datasets
from flexnet.data.fetch import DownloadError

PAYLOAD = os.urandom(50_000)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class _Hostile(http.server.BaseHTTPRequestHandler):
    """``/good``: the file. ``/endless``: no Content-Length, then bytes until the client
    hangs up. ``/oversized``: announces 200 MB. ``/trickle``: the right Content-Length,
    then a byte every 20 ms (17 minutes for the file). A path may go on (``/good/name``)."""

    def do_GET(self):
        try:
            self._serve(self.path.strip("/").split("/")[0])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def _serve(self, kind):
        if kind not in ("good", "endless", "oversized", "trickle"):
            self.send_error(404)
            return
        self.send_response(200)
        if kind != "endless":
            self.send_header("Content-Length", str(200_000_000 if kind == "oversized" else len(PAYLOAD)))
        self.end_headers()
        if kind == "good":
            self.wfile.write(PAYLOAD)
        elif kind == "endless":
            started = time.monotonic()
            while time.monotonic() - started < 60:  # a bound for the test's sake only
                self.wfile.write(PAYLOAD)
                time.sleep(0.005)  # ~10 MB/s: the temporary file stays small
        elif kind == "oversized":
            self.wfile.write(PAYLOAD * 8)  # far short of what it announced; the client never asks
        else:
            for i in range(len(PAYLOAD)):
                self.wfile.write(PAYLOAD[i:i + 1])
                self.wfile.flush()
                time.sleep(0.02)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _fails(url, tmp_path, **limits) -> str:
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError) as info:
        data.download([url], dest, DIGEST, progress=False, timeout=30, **limits)
    assert not dest.exists() and list(tmp_path.iterdir()) == []  # nothing half-written left
    return str(info.value)


def test_an_endless_response_stops_at_the_expected_size(server, tmp_path):
    text = _fails(server + "endless", tmp_path, size=len(PAYLOAD))
    assert f"the server sends more than the {len(PAYLOAD):,} bytes the file has" in text


def test_an_endless_response_of_unknown_size_stops_at_the_time_limit(server, tmp_path):
    text = _fails(server + "endless", tmp_path, time_limit=0.5)
    assert "not finished after the time limit of 0.5 s" in text


def test_a_server_announcing_more_than_the_file_holds_is_refused_before_reading(server, tmp_path):
    text = _fails(server + "oversized", tmp_path, size=len(PAYLOAD))
    assert f"the server announces 200,000,000 bytes, but the file has {len(PAYLOAD):,}; nothing read" in text


def test_a_trickling_server_is_given_up_on_at_the_time_limit(server, tmp_path):
    # Every read gets a byte well within the 30 s per-read timeout: only the overall limit ends it.
    text = _fails(server + "trickle", tmp_path, time_limit=0.5)
    assert "not finished after the time limit of 0.5 s" in text


def test_the_next_mirror_is_tried_after_a_hostile_one(server, tmp_path):
    dest = tmp_path / "file.bin"
    urls = [server + "trickle", server + "endless", server + "oversized", server + "good"]
    assert data.download(urls, dest, DIGEST, size=len(PAYLOAD), progress=False, timeout=30,
                         time_limit=0.5).read_bytes() == PAYLOAD


def test_a_good_download_with_and_without_the_size(server, tmp_path):
    for size in (None, len(PAYLOAD)):
        dest = tmp_path / f"{size}.bin"
        assert data.download(server + "good", dest, DIGEST, size=size, progress=False).read_bytes() == PAYLOAD


def test_the_data_sets_pass_their_published_sizes(server, tmp_path, monkeypatch):
    """MNIST's files have known sizes: a mirror announcing another is refused at once."""
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (server + "oversized/",))
    monkeypatch.setenv("FLEXNET_DATA", str(tmp_path / "store"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {})
    with pytest.raises(DownloadError, match="the server announces 200,000,000 bytes, but the file has 9,912,422"):
        datasets.idx_files("mnist", progress=False)
    assert set(datasets.PUBLISHED_SIZES) == {d for files in datasets.IDX_FILES.values() for d in files.values()}

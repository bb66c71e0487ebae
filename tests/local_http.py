"""A small HTTP file server on 127.0.0.1 for the download tests (no other address is used).

It serves byte strings registered by path, records each request's path and ``Range``
header, can honour or ignore ``Range`` requests, and can cut the connection after a
given number of body bytes for the next few responses, to simulate broken transfers.

Loaded as a pytest plugin by ``conftest.py``: the ``http_state`` and ``http_server``
fixtures give a test the server (proxies and ``$CONTRACLUST_MIRROR`` cleared), and
:func:`use_source` makes a family download from it for that test only.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from contraclust.data.origins import DownloadSource

_PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy")


@dataclass
class ServerState:
    """What the server serves and how it misbehaves; tests change it between calls."""

    files: dict[str, bytes] = field(default_factory=dict)
    honour_range: bool = True
    cut_after: int = 0
    cuts_left: int = 0
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one response per connection: closing ends the body

        def do_GET(self) -> None:
            range_header = self.headers.get("Range")
            with state.lock:
                state.requests.append((self.path, range_header))
                body = state.files.get(self.path)
                cut = state.cuts_left > 0
                if cut:
                    state.cuts_left -= 1
            if body is None:
                self.send_error(404, "not found")
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
            if match and state.honour_range:
                start = int(match.group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(payload[: state.cut_after] if cut else payload)
            self.wfile.flush()

        def log_message(self, format: str, *args: object) -> None:
            """Keep the test output quiet."""

    return Handler


@contextmanager
def serve(state: ServerState) -> Iterator[str]:
    """Run a threaded server for ``state``; yields its base URL ``http://127.0.0.1:PORT``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http_state() -> ServerState:
    """What the test's server serves; change it between calls."""
    return ServerState()


@pytest.fixture
def http_server(http_state: ServerState, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The base URL of a server for ``http_state``, reached without proxy or mirror."""
    from contraclust.data import download  # late: loading this plugin imports no torch

    for variable in _PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    with serve(http_state) as url:
        yield url


def use_source(
    monkeypatch: pytest.MonkeyPatch,
    family: str,
    base_url: str,
    files: dict[str, bytes],
    unpack: bool = False,
    also: dict[str, bytes] | None = None,
) -> DownloadSource:
    """Make ``family`` download ``files`` from ``base_url`` for one test.

    The checksums are the MD5s of the given bytes; ``also`` lists other official
    archives accepted when already on disk. Returns the source put in place.
    """
    from contraclust.data.origins import DownloadSource, RemoteFile

    remote = tuple(RemoteFile(name, md5=_md5(data), unpack=unpack) for name, data in files.items())
    extra = tuple(
        RemoteFile(name, md5=_md5(data), unpack=True) for name, data in (also or {}).items()
    )
    source = DownloadSource(base_url, remote, extra)
    set_origin(monkeypatch, family, source)
    return source


def set_origin(monkeypatch: pytest.MonkeyPatch, family: str, source: DownloadSource) -> None:
    """Replace the origin of ``family`` for one test."""
    from contraclust.data import registry

    monkeypatch.setitem(registry._ORIGINS, family, source)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()

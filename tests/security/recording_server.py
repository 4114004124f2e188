"""A small HTTP relay that records every request it gets (method, path, headers), for the tests of where
credentials go: in front of a registry it can answer blob GETs with a redirect to another host, or hand out
upload Locations on another host; on that other host it relays to the registry with a login of its own (as
a CDN or a pre-signed upload URL would need none from the client). With no upstream it answers 401.
"""

from __future__ import annotations

import http.client
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from rig.net import LoopbackServer

__all__ = ["Recorded", "RecordingRelay"]

_BLOB = re.compile(r"^/v2/.+/blobs/sha256:[0-9a-f]{64}$")
_UPLOADS = re.compile(r"^/v2/.+/blobs/uploads/")
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


class RecordingRelay(LoopbackServer):
    """HTTP on ``bind``:port relaying to ``upstream`` ("HOST:PORT", or None: answer 401 to everything).

    redirect_blobs_to: base URL; GET /v2/<name>/blobs/<digest> is answered 307 to that base + the same path.
    uploads_to: base URL; the Location of an upload session the upstream hands out is moved to that base.
    authorization: a header value added to relayed requests that carry none (the other host's own login).
    """

    def __init__(
        self,
        bind: str,
        upstream: str | None = None,
        *,
        redirect_blobs_to: str | None = None,
        uploads_to: str | None = None,
        authorization: str | None = None,
    ) -> None:
        self.address = bind
        self.upstream = upstream
        self.redirect_blobs_to = redirect_blobs_to
        self.uploads_to = uploads_to
        self.authorization = authorization
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._httpd = ThreadingHTTPServer((bind, 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def record(self, request: Recorded) -> None:
        with self._lock:
            self._requests.append(request)

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="recording-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(body)
            body += handler.rfile.read(size)
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _handler_for(relay: RecordingRelay) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in _HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            body = _read_body(self)
            headers = {k.lower(): v for k, v in self.headers.items()}
            relay.record(Recorded(self.command, self.path, headers))
            if relay.upstream is None:
                self._answer(401, [("WWW-Authenticate", 'Basic realm="recorder"')], b"{}")
                return
            if relay.redirect_blobs_to and self.command == "GET" and _BLOB.match(self.path):
                self._answer(307, [("Location", relay.redirect_blobs_to + self.path)], b"")
                return
            forward = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            forward["Content-Length"] = str(len(body))
            if relay.authorization and "authorization" not in headers:
                forward["Authorization"] = relay.authorization
            host, _, port = relay.upstream.rpartition(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=60)
            try:
                connection.request(self.command, self.path, body=body, headers=forward)
                response = connection.getresponse()
                data = response.read()
                out = response.getheaders()
            finally:
                connection.close()
            if relay.uploads_to:
                out = [(k, _moved(v, relay.uploads_to) if k.lower() == "location" else v) for k, v in out]
            self._answer(response.status, out, data)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


def _moved(location: str, base: str) -> str:
    """An upload session's Location (absolute or relative) on ``base`` instead."""
    path = re.sub(r"^https?://[^/]+", "", location)
    return base + path if _UPLOADS.match(path) else location

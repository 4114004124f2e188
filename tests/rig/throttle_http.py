"""An HTTP/1.1 reverse proxy on 127.0.0.1 in front of a registry that answers 429 when too many blob transfers run.

It models a registry that rate-limits by concurrent transfers (like Docker Hub's "TOOMANYREQUESTS"): a blob
transfer that arrives while `max_transfers` others are in progress gets

    HTTP/1.1 429 Too Many Requests
    Retry-After: 1
    Content-Type: application/json
    {"errors":[{"code":"TOOMANYREQUESTS","message":"...","detail":{...}}]}

A blob transfer is a GET of /v2/<name>/blobs/<digest>, or a POST, PATCH or PUT under /v2/<name>/blobs/uploads/;
it counts from the moment its request line arrives until its response body has been relayed. HEAD requests,
manifests, /v2/ and everything else are relayed and never throttled. A throttled request's body (if the client
sends one) is read and dropped first, so the connection stays usable (keep-alive); with `Expect: 100-continue`
the 429 is sent at once and the connection closed.

Everything else is relayed as is, in 64 KiB pieces both ways (no body is ever held whole): headers unchanged
(the client's Host too, so the registry's Location headers already name the proxy; a Location that names the
upstream host:port is rewritten to the proxy's), Content-Length and chunked bodies passed through. Each client
connection has its own keep-alive upstream connection. One thread per client connection
(`http.server.ThreadingHTTPServer`), `http.client` upstream. Knobs can be changed while it runs:

    with ThrottlingHttpProxy(registry, max_transfers=4) as proxy:   # registry: RunningRegistry or "127.0.0.1:PORT"
        pull(f"{proxy.host}/repo:tag")                               # or proxy.url, proxy.ref("repo:tag")
        proxy.max_transfers = 2                                      # None: never throttle
        proxy.retry_after = 3                                        # seconds, in Retry-After
        proxy.hold()                                                 # admitted transfers stop before their
        ...                                                          # response body, until release()
        assert proxy.throttled > 0 and proxy.peak_transfers <= 4

A Docker-Hub-style pull quota on manifest answers (the CNCF registry never sends one), off by default:

    proxy.rate_limit = RateLimitHeaders(limit=100, remaining=5, window=21600, reset=2)

Every answer to a GET or HEAD of /v2/<name>/manifests/<reference> then carries (the upstream's own RateLimit-*
headers dropped)

    RateLimit-Limit: 100;w=21600
    RateLimit-Remaining: 4;w=21600      (";w=..." only with a window)
    RateLimit-Reset: 2                  (only with a reset: seconds, always the same value)

and each manifest GET (not HEAD, whatever its status) takes one from `remaining` (never below 0) before its
answer is sent, so that answer shows what is left after it; the window never resets by itself (set `remaining`
again, e.g. `proxy.rate_limit.remaining = 100`). Nothing is ever refused for the quota. With or without the
knob, manifest GETs and HEADs are counted (`proxy.manifest_gets`, `proxy.manifest_heads`) and logged with the
time their answer was relayed (`proxy.manifest_log`: `ManifestRequest`s, `time.monotonic()`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rig.net import LOOPBACK, HasHost, LoopbackFront, split_upstream

__all__ = [
    "ManifestRequest",
    "RateLimitHeaders",
    "ThrottleStats",
    "ThrottlingHttpProxy",
    "is_blob_transfer",
    "is_manifest_request",
]

_PIECE = 64 * 1024
_UPSTREAM_TIMEOUT = 300.0
_BLOB = re.compile(r"^/v2/.+/blobs/[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]+$")
_UPLOAD = re.compile(r"^/v2/.+/blobs/uploads/")
_MANIFEST = re.compile(r"^/v2/.+/manifests/[^/]+$")
_RATE_LIMIT_HEADERS = frozenset({"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"})
_NO_BODY_STATUS = frozenset({204, 304})
# Not passed on to the upstream: we answer Expect ourselves; the rest describe the client's own connection.
_REQUEST_SKIP = frozenset({"expect"})


def is_blob_transfer(method: str, target: str) -> bool:
    """Whether a request counts as a blob transfer (`target`: the request target, query allowed)."""
    path = target.partition("?")[0]
    if method == "GET":
        return bool(_BLOB.match(path)) and "/blobs/uploads/" not in path
    return method in ("POST", "PATCH", "PUT") and bool(_UPLOAD.match(path))


def is_manifest_request(method: str, target: str) -> bool:
    """Whether a request is a GET or HEAD of a manifest, which the rate-limit knob answers with its headers."""
    return method in ("GET", "HEAD") and bool(_MANIFEST.match(target.partition("?")[0]))


@dataclass
class RateLimitHeaders:
    """The pull quota the proxy announces on manifest answers (see the module doc). The proxy changes
    `remaining` in place; a test may too, between requests."""

    limit: int = 100
    remaining: int = 100
    window: int | None = 21600  # seconds, sent as ";w=" on both headers; None: not sent
    reset: int | None = None  # seconds, sent as RateLimit-Reset; None: not sent

    def __post_init__(self) -> None:
        if self.limit < 0 or self.remaining < 0:
            raise ValueError("limit and remaining must be >= 0")
        if self.window is not None and self.window <= 0:
            raise ValueError("window must be > 0 (None: not sent)")
        if self.reset is not None and self.reset < 0:
            raise ValueError("reset must be >= 0 (None: not sent)")

    def headers(self) -> list[tuple[str, str]]:
        """The headers for the current values."""
        window = f";w={self.window}" if self.window is not None else ""
        out = [("RateLimit-Limit", f"{self.limit}{window}"), ("RateLimit-Remaining", f"{self.remaining}{window}")]
        if self.reset is not None:
            out.append(("RateLimit-Reset", str(self.reset)))
        return out


@dataclass(frozen=True)
class ManifestRequest:
    method: str  # "GET" or "HEAD"
    path: str  # the request target, query included
    status: int  # the upstream's answer
    at: float  # time.monotonic() when the answer was relayed
    remaining: int | None  # RateLimit-Remaining sent with it (None: the knob was off)


@dataclass(frozen=True)
class ThrottleStats:
    requests: int  # every request received (throttled ones too)
    throttled: int  # 429s sent
    transfers: int  # blob transfers admitted
    active_transfers: int  # blob transfers in progress now
    peak_transfers: int  # most blob transfers in progress at once
    upstream_errors: int  # requests the upstream failed (502 sent, or the client connection dropped)


class ThrottlingHttpProxy(LoopbackFront):
    """HTTP reverse proxy 127.0.0.1:`port` (free port if None) -> `upstream`, 429 above `max_transfers`.

    See the module doc. `upstream` is a plain-HTTP server ("127.0.0.1:PORT" or anything with `.host`).
    """

    def __init__(
        self,
        upstream: str | HasHost,
        *,
        port: int | None = None,
        max_transfers: int | None = 4,
        retry_after: int = 1,
        rate_limit: RateLimitHeaders | None = None,
    ) -> None:
        self.upstream_host, self.upstream_port = split_upstream(upstream)
        self._requested_port = port or 0
        self.port = 0
        self.max_transfers = max_transfers
        self.retry_after = retry_after
        self.rate_limit = rate_limit
        self._lock = threading.Lock()
        self._gate = threading.Event()
        self._gate.set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[socket.socket] = set()
        self._active = 0
        self._reset_counters()

    # -- knobs ----------------------------------------------------------------------------------------------

    @property
    def max_transfers(self) -> int | None:
        """Blob transfers allowed at once; one more gets a 429. None: never throttle."""
        return self._max_transfers

    @max_transfers.setter
    def max_transfers(self, value: int | None) -> None:
        if value is not None and value < 0:
            raise ValueError("max_transfers must be >= 0 (None: unlimited)")
        self._max_transfers = value

    @property
    def retry_after(self) -> int:
        """Seconds sent in the 429's Retry-After header."""
        return self._retry_after

    @retry_after.setter
    def retry_after(self, value: int) -> None:
        if value < 0:
            raise ValueError("retry_after must be >= 0")
        self._retry_after = value

    def hold(self) -> None:
        """From now on, admitted blob transfers stop just before relaying their response body (headers are
        sent) and stay in progress until release(): a way to keep transfers open for as long as a test needs."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    @property
    def held(self) -> bool:
        return not self._gate.is_set()

    @property
    def rate_limit(self) -> RateLimitHeaders | None:
        """The quota sent on manifest answers (changed in place by manifest GETs); None: no RateLimit headers."""
        return self._rate_limit

    @rate_limit.setter
    def rate_limit(self, value: RateLimitHeaders | None) -> None:
        if value is not None and not isinstance(value, RateLimitHeaders):
            raise TypeError("rate_limit must be a RateLimitHeaders or None")
        self._rate_limit = value

    # -- counters -------------------------------------------------------------------------------------------

    def _reset_counters(self) -> None:
        with self._lock:
            self.requests = 0
            self.throttled = 0
            self.transfers = 0
            self.peak_transfers = self._active
            self.upstream_errors = 0
            self.manifest_log: list[ManifestRequest] = []

    def reset_counters(self) -> None:
        """Zero the counters (the peak starts again at the transfers in progress now)."""
        self._reset_counters()

    @property
    def active_transfers(self) -> int:
        return self._active

    @property
    def manifest_gets(self) -> int:
        """Manifest GETs relayed since the counters were last reset."""
        with self._lock:
            return sum(r.method == "GET" for r in self.manifest_log)

    @property
    def manifest_heads(self) -> int:
        """Manifest HEADs relayed since the counters were last reset."""
        with self._lock:
            return sum(r.method == "HEAD" for r in self.manifest_log)

    def manifest_requests(self, method: str | None = None) -> list[ManifestRequest]:
        """A copy of the manifest log, oldest first; only `method`'s requests when given."""
        with self._lock:
            return [r for r in self.manifest_log if method is None or r.method == method]

    def stats(self) -> ThrottleStats:
        with self._lock:
            return ThrottleStats(
                requests=self.requests,
                throttled=self.throttled,
                transfers=self.transfers,
                active_transfers=self._active,
                peak_transfers=self.peak_transfers,
                upstream_errors=self.upstream_errors,
            )

    def wait_transfers(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until exactly `count` blob transfers are in progress (0: all finished)."""
        deadline = time.monotonic() + timeout
        while self._active != count and time.monotonic() < deadline:
            time.sleep(0.005)
        return self._active == count

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> ThrottlingHttpProxy:
        if self._thread is not None:
            return self
        server = _Server((LOOPBACK, self._requested_port), _Handler)
        server.proxy = self
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"rig-http-proxy-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every client connection (which ends its thread) and the listener. Safe twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        with self._lock:
            clients = list(self._clients)
        for sock in clients:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # Only now let held transfers go: released before the sockets are shut, a held body could still be
        # written whole, and its client would see a complete transfer from a proxy that was stopped.
        self._gate.set()
        server.server_close()
        thread.join(timeout=10)
        self._server = self._thread = None

    # -- handler side ---------------------------------------------------------------------------------------

    def _admit(self, method: str, target: str) -> tuple[bool, bool]:
        """(is a transfer, admitted); counts the request; an admitted transfer must be _finish()ed."""
        transfer = is_blob_transfer(method, target)
        with self._lock:
            self.requests += 1
            if not transfer:
                return False, True
            limit = self._max_transfers
            if limit is not None and self._active >= limit:
                self.throttled += 1
                return True, False
            self._active += 1
            self.transfers += 1
            self.peak_transfers = max(self.peak_transfers, self._active)
            return True, True

    def _finish(self) -> None:
        with self._lock:
            self._active -= 1

    def _manifest_answer(self, method: str, target: str, status: int) -> list[tuple[str, str]] | None:
        """For a manifest GET/HEAD: log it, count a GET against the quota, and return the RateLimit headers to
        send ([] with the knob off). None for any other request (its headers are relayed untouched)."""
        if not is_manifest_request(method, target):
            return None
        with self._lock:
            quota = self._rate_limit
            if quota is not None and method == "GET":
                quota.remaining = max(0, quota.remaining - 1)
            remaining = quota.remaining if quota is not None else None
            self.manifest_log.append(ManifestRequest(method, target, status, time.monotonic(), remaining))
            return quota.headers() if quota is not None else []

    def _upstream_error(self) -> None:
        with self._lock:
            self.upstream_errors += 1

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._clients.add(sock)
            else:
                self._clients.discard(sock)

    def _wait_gate(self) -> None:
        while not self._gate.wait(0.05):
            if self._server is None:
                return

    def _rewrite_location(self, value: str) -> str:
        for scheme in ("http://", "https://"):
            prefix = f"{scheme}{self.upstream_host}:{self.upstream_port}"
            if value.startswith(prefix) and (len(value) == len(prefix) or value[len(prefix)] in "/?#"):
                return self.url + value[len(prefix) :]
        return value

    def _error_body(self) -> bytes:
        message = f"too many requests: {self._active} blob transfers in progress, at most {self._max_transfers}"
        error = {"code": "TOOMANYREQUESTS", "message": message, "detail": {"max_transfers": self._max_transfers}}
        return json.dumps({"errors": [error]}, separators=(",", ":")).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: ThrottlingHttpProxy


class _BodyError(Exception):
    """The client's request body was malformed or cut short."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    upstream: http.client.HTTPConnection | None = None

    # -- connection lifecycle

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.proxy._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self._close_upstream()
            self.server.proxy._track(self.connection, add=False)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def handle_expect_100(self) -> bool:
        return True  # decided in _relay: "100 Continue" only for a request that is admitted

    def _close_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.upstream is None:
            proxy = self.server.proxy
            self.upstream = http.client.HTTPConnection(
                proxy.upstream_host, proxy.upstream_port, timeout=_UPSTREAM_TIMEOUT
            )
        return self.upstream

    # -- methods

    def do_GET(self) -> None:
        self._relay()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _relay(self) -> None:
        proxy = self.server.proxy
        transfer, admitted = proxy._admit(self.command, self.path)
        if not admitted:
            self._throttle()
            return
        try:
            self._forward(transfer)
        finally:
            if transfer:
                proxy._finish()

    def _expects_continue(self) -> bool:
        return self.headers.get("Expect", "").lower() == "100-continue"

    def _throttle(self) -> None:
        proxy = self.server.proxy
        body = proxy._error_body()
        if self._expects_continue():
            self.close_connection = True  # the client has not sent its body, and now never will
        else:
            try:
                self._drain_body()
            except (_BodyError, OSError):
                self.close_connection = True
        self.send_response(429, "Too Many Requests")
        self.send_header("Retry-After", str(proxy.retry_after))
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- request side

    def _body_kind(self) -> tuple[str, int]:
        """("chunked", 0), ("length", n) or ("none", 0) for the client's request body."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return "chunked", 0
        length = self.headers.get("Content-Length")
        if length is not None:
            try:
                return "length", int(length)
            except ValueError:
                raise _BodyError(f"bad Content-Length {length!r}") from None
        return "none", 0

    def _read_exact(self, size: int, send: http.client.HTTPConnection | None) -> None:
        left = size
        while left > 0:
            piece = self.rfile.read(min(_PIECE, left))
            if not piece:
                raise _BodyError("request body cut short")
            left -= len(piece)
            if send is not None:
                send.send(piece)

    def _read_chunked(self, send: http.client.HTTPConnection | None) -> None:
        """Relay (or drop) a chunked body as is: size lines, data, the last chunk and the trailers."""
        while True:
            line = self.rfile.readline(65537)
            if not line.endswith(b"\n"):
                raise _BodyError("bad chunk size line")
            if send is not None:
                send.send(line)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BodyError(f"bad chunk size {line!r}") from None
            if size == 0:
                break
            self._read_exact(size + 2, send)  # the data and its CRLF
        while True:  # trailers, up to the blank line
            line = self.rfile.readline(65537)
            if not line.endswith(b"\n"):
                raise _BodyError("bad trailer")
            if send is not None:
                send.send(line)
            if line in (b"\r\n", b"\n"):
                return

    def _drain_body(self) -> None:
        kind, length = self._body_kind()
        if kind == "chunked":
            self._read_chunked(None)
        elif kind == "length":
            self._read_exact(length, None)

    def _send_request(self, conn: http.client.HTTPConnection) -> None:
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() not in _REQUEST_SKIP:
                conn.putheader(name, value)
        conn.endheaders()

    def _send_body(self, conn: http.client.HTTPConnection) -> None:
        kind, length = self._body_kind()
        if kind == "none":
            return
        if self._expects_continue():
            self.send_response_only(100)
            self.end_headers()
        if kind == "chunked":
            self._read_chunked(conn)
        else:
            self._read_exact(length, conn)

    # -- the relay

    def _forward(self, transfer: bool) -> None:
        proxy = self.server.proxy
        try:
            kind, _ = self._body_kind()
        except _BodyError:
            self.close_connection = True
            self.send_error(400, "bad request body framing")
            return
        replayable = kind == "none"
        response: http.client.HTTPResponse | None = None
        for attempt in (1, 2):
            reused = self.upstream is not None
            conn = self._connection()
            try:
                self._send_request(conn)
                self._send_body(conn)
                response = conn.getresponse()
                break
            except _BodyError:
                self.close_connection = True
                self._close_upstream()
                return
            except (OSError, http.client.HTTPException):
                self._close_upstream()
                if attempt == 1 and reused and replayable:
                    continue  # a keep-alive connection the upstream had closed: once more on a new one
                proxy._upstream_error()
                self._bad_gateway()
                return
        assert response is not None
        self._relay_response(response, transfer)

    def _bad_gateway(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.send_error(502, "upstream failed")

    def _relay_response(self, response: http.client.HTTPResponse, transfer: bool) -> None:
        proxy = self.server.proxy
        quota_headers = proxy._manifest_answer(self.command, self.path, response.status)
        self.send_response_only(response.status, response.reason)
        chunked = False
        for name, value in response.getheaders():
            lower = name.lower()
            if quota_headers and lower in _RATE_LIMIT_HEADERS:
                continue  # the knob's quota replaces the upstream's
            if lower == "location":
                value = proxy._rewrite_location(value)
            elif lower == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            self.send_header(name, value)
        for name, value in quota_headers or ():
            self.send_header(name, value)
        has_body = self.command != "HEAD" and response.status not in _NO_BODY_STATUS and response.status >= 200
        until_close = (
            has_body and not chunked and response.getheader("Content-Length") is None and response.length is None
        )
        if until_close:  # the upstream ends the body by closing: so do we
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if transfer and has_body:
            proxy._wait_gate()
        while has_body:
            try:
                piece = response.read1(_PIECE)
            except (OSError, http.client.HTTPException):
                piece = None
            if piece is None:  # the upstream broke off mid-body: the client must see a cut, not an end
                proxy._upstream_error()
                self._cut()
                return
            if not piece:
                break
            try:
                self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
            except OSError:  # the client went away
                self._cut()
                return
        try:
            if has_body and chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self._cut()
            return
        if not response.isclosed():
            response.read()  # no body (HEAD, 204, 304): marks the response done, so the connection is reusable
        if response.will_close:
            self._close_upstream()

    def _cut(self) -> None:
        self.close_connection = True
        self._close_upstream()

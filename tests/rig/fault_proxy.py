"""An HTTP/1.1 reverse proxy on 127.0.0.1 in front of a registry that injects faults into chosen requests.

Each request is sorted into a kind by method and path (`request_kind`):

    ping            GET/HEAD /v2/
    blob-get        GET /v2/<name>/blobs/<digest>           blob-head: the same with HEAD
    upload-post     POST /v2/<name>/blobs/uploads/          upload-patch, upload-put, upload-get: the same
    manifest-get    GET /v2/<name>/manifests/<ref>          manifest-head, manifest-put: the same
    other           anything else (tag lists, DELETE, ...)

and the aliases "upload" (POST, PATCH, PUT under uploads/) and "manifest" (GET, HEAD, PUT of a manifest) name
several kinds at once. A rule applies an action to the next `times` requests of its kinds (None: every one,
until cleared), optionally only those whose path holds `path_contains`; the first rule with requests left wins:

    with FaultProxy(registry) as proxy:                  # registry: RunningRegistry or "127.0.0.1:PORT"
        proxy.fail("blob-get", 503, times=2)            # answered by the proxy, never relayed
        proxy.fail("upload", 429, retry_after=2)        # Retry-After: 2
        proxy.fail("manifest-get", 429, retry_after=2, retry_after_date=True)  # Retry-After: <HTTP date>
        proxy.stall("blob-get", 30, headers=True)       # upstream's status and headers, then no byte for 30 s
        proxy.stall("upload-put", 30)                   # the request is read and dropped, no answer for 30 s
        proxy.reset("blob-get", after=3 << 20)          # RST after 3 MiB of response body (server->client)
        proxy.reset("upload-put", after=1 << 20)        # RST after 1 MiB of request body (client->server)
        proxy.rate = 4 << 20                            # bodies relayed at 4 MiB/s per connection; None: no pacing
        proxy.clear()                                   # drop every rule
        assert proxy.faults == 5

Answers made by the proxy (`fail`) have a registry-style body {"errors":[{"code","message","detail"}]}
(TOOMANYREQUESTS for 429, UNAVAILABLE for 502/503, UNKNOWN otherwise); the request's body is read and dropped
first so the connection stays usable. A stall ends by closing the connection (the client should have given up
by then). A reset sends a TCP RST ("connection reset by peer"); the upstream connection is closed too, so a
registry sees an upload body cut short. When the upstream cannot be reached (a registry restarting) the proxy
answers 502, and it cuts the client off when the upstream breaks off mid-body: what a load balancer does.

Accounting: body bytes are counted per blob digest and direction whatever happens to them: "down" is response
bytes written to the client for a blob GET, "up" is request bytes read from the client for an upload PATCH/PUT
(dropped ones included: the client sent them). A PUT names its digest; PATCHes are counted per upload session
and moved to the digest when the session's final PUT names it (`session_bytes` keeps those never finished). So
`proxy.sent("up", digest) - size` is what the client sent twice for that blob, and `proxy.total("up")` covers
everything. `faults` counts faults injected, `log` lists every request with what was done to it.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from rig.net import LOOPBACK, HasHost, LoopbackFront, split_upstream

__all__ = ["Action", "Direction", "FaultProxy", "LoggedRequest", "Rule", "request_kind"]

Direction = Literal["up", "down"]
_PIECE = 64 * 1024
_UPSTREAM_TIMEOUT = 300.0
_SLICE = 0.05
# The upstream connection's receive buffer. Small, so that a registry killed mid-body has not already handed the
# rest of it to the kernel (loopback buffers grow to megabytes): with `rate`, the registry sends as we relay.
_UPSTREAM_RCVBUF = 64 * 1024
_NAME = r"/v2/(?P<name>.+)"
_PATTERNS = (
    ("ping", re.compile(r"^/v2/?$")),
    ("upload", re.compile(_NAME + r"/blobs/uploads/(?P<session>[^/]*)$")),
    ("blob", re.compile(_NAME + r"/blobs/(?P<digest>[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]+)$")),
    ("manifest", re.compile(_NAME + r"/manifests/[^/]+$")),
)
ALIASES: dict[str, frozenset[str]] = {
    "upload": frozenset({"upload-post", "upload-patch", "upload-put"}),
    "manifest": frozenset({"manifest-get", "manifest-head", "manifest-put"}),
}
_CODES = {429: "TOOMANYREQUESTS", 502: "UNAVAILABLE", 503: "UNAVAILABLE"}
_NO_BODY_STATUS = frozenset({204, 304})


def _match(path: str) -> tuple[str, re.Match[str] | None]:
    for family, pattern in _PATTERNS:
        found = pattern.match(path)
        if found:
            return family, found
    return "other", None


def request_kind(method: str, target: str) -> str:
    """The kind of a request (see the module doc); `target` may carry a query."""
    family, _ = _match(target.partition("?")[0])
    if family == "ping":
        return "ping" if method in ("GET", "HEAD") else "other"
    if family == "blob" and method in ("GET", "HEAD"):
        return f"blob-{method.lower()}"
    if family == "upload" and method in ("POST", "PATCH", "PUT", "GET"):
        return f"upload-{method.lower()}"
    if family == "manifest" and method in ("GET", "HEAD", "PUT"):
        return f"manifest-{method.lower()}"
    return "other"


def _expand(kinds: str | Collection[str]) -> frozenset[str]:
    names = [kinds] if isinstance(kinds, str) else list(kinds)
    return frozenset(k for name in names for k in ALIASES.get(name, {name}))


@dataclass(frozen=True)
class Action:
    """What a rule does: "fail" (answer `status`), "stall" (`seconds`; with `headers`, the upstream's status line
    and headers first) or "reset" (RST after `after` body bytes)."""

    kind: Literal["fail", "stall", "reset"]
    status: int = 503
    retry_after: float | None = None
    retry_after_date: bool = False
    seconds: float = 0.0
    headers: bool = False
    after: int = 0

    def describe(self) -> str:
        if self.kind == "fail":
            return f"fail {self.status}"
        if self.kind == "stall":
            return f"stall {self.seconds:g} s" + (" after headers" if self.headers else "")
        return f"reset after {self.after} bytes"


@dataclass
class Rule:
    kinds: frozenset[str]
    action: Action
    times: int | None = 1  # requests still to hit; None: every one until cleared
    path_contains: str | None = None  # matched against the decoded request target, query included
    fired: int = 0

    def matches(self, kind: str, path: str) -> bool:
        live = self.times is None or self.times > 0
        return live and kind in self.kinds and (self.path_contains is None or self.path_contains in path)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    kind: str
    outcome: str  # "relayed 200", "fail 503", "stall 5 s", "reset after 1024 bytes", "upstream down", ...
    at: float  # time.monotonic() when it arrived


class FaultProxy(LoopbackFront):
    """HTTP reverse proxy 127.0.0.1:`port` (free port if None) -> `upstream` that injects faults (see the module
    doc). Thread-safe: rules, `rate` and the counters may be used from any thread while it runs."""

    def __init__(self, upstream: str | HasHost, *, port: int | None = None, rate: float | None = None) -> None:
        self.upstream_host, self.upstream_port = split_upstream(upstream)
        self._requested_port = port or 0
        self.port = 0
        self.rate = rate
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[socket.socket] = set()
        self._rules: list[Rule] = []
        self.reset_counters()

    # -- rules ----------------------------------------------------------------------------------------------

    def add(
        self, kinds: str | Collection[str], action: Action, *, times: int | None = 1, path_contains: str | None = None
    ) -> Rule:
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (None: every request)")
        rule = Rule(_expand(kinds), action, times, path_contains)
        with self._lock:
            self._rules.append(rule)
        return rule

    def fail(
        self,
        kinds: str | Collection[str],
        status: int,
        *,
        retry_after: float | None = None,
        retry_after_date: bool = False,
        times: int | None = 1,
        path_contains: str | None = None,
    ) -> Rule:
        """Answer `status` (with Retry-After in seconds, or as an HTTP date that many seconds ahead)."""
        action = Action("fail", status=status, retry_after=retry_after, retry_after_date=retry_after_date)
        return self.add(kinds, action, times=times, path_contains=path_contains)

    def stall(
        self,
        kinds: str | Collection[str],
        seconds: float,
        *,
        headers: bool = False,
        times: int | None = 1,
        path_contains: str | None = None,
    ) -> Rule:
        return self.add(
            kinds, Action("stall", seconds=seconds, headers=headers), times=times, path_contains=path_contains
        )

    def reset(
        self, kinds: str | Collection[str], *, after: int, times: int | None = 1, path_contains: str | None = None
    ) -> Rule:
        return self.add(kinds, Action("reset", after=after), times=times, path_contains=path_contains)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def _pick(self, kind: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(kind, path):
                    if rule.times is not None:
                        rule.times -= 1
                    rule.fired += 1
                    self.faults += 1
                    return rule
        return None

    def _unfire(self, rule: Rule) -> None:
        """The rule's reset never came (the body was shorter than `after`): not a fault, and not used up."""
        with self._lock:
            if rule.times is not None:
                rule.times += 1
            rule.fired -= 1
            self.faults -= 1

    # -- counters -------------------------------------------------------------------------------------------

    def reset_counters(self) -> None:
        """Zero the byte counts, the fault count and the log (the rules stay)."""
        with self._lock:
            self.faults = 0
            self.upstream_errors = 0
            self._bytes: dict[tuple[Direction, str], int] = defaultdict(int)
            self._sessions: dict[str, int] = defaultdict(int)
            self._log: list[LoggedRequest] = []

    def sent(self, direction: Direction, digest: str) -> int:
        """Body bytes counted for blob `digest` in `direction` ("down": to the client, "up": from it)."""
        with self._lock:
            return self._bytes.get((direction, digest), 0)

    def total(self, direction: Direction) -> int:
        """Every blob body byte counted in `direction` (upload sessions never finished included)."""
        with self._lock:
            extra = sum(self._sessions.values()) if direction == "up" else 0
            return sum(n for (d, _), n in self._bytes.items() if d == direction) + extra

    def digests(self, direction: Direction) -> dict[str, int]:
        with self._lock:
            return {digest: n for (d, digest), n in self._bytes.items() if d == direction}

    @property
    def session_bytes(self) -> dict[str, int]:
        """Bytes PATCHed into upload sessions that no PUT has finished (yet), per session id."""
        with self._lock:
            return dict(self._sessions)

    @property
    def log(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def _count(self, direction: Direction, key: tuple[str, str], size: int) -> None:
        """key: ("digest", d) or ("session", id)."""
        with self._lock:
            if key[0] == "digest":
                self._bytes[(direction, key[1])] += size
            else:
                self._sessions[key[1]] += size

    def _finish_session(self, session: str, digest: str) -> None:
        with self._lock:
            moved = self._sessions.pop(session, 0)
            if moved:
                self._bytes[("up", digest)] += moved

    def _note(self, method: str, path: str, kind: str, outcome: str, at: float) -> None:
        with self._lock:
            self._log.append(LoggedRequest(method, path, kind, outcome, at))
            if outcome.startswith(("upstream down", "upstream broke")):
                self.upstream_errors += 1

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        if self._thread is not None:
            return self
        self._stopping.clear()
        server = _Server((LOOPBACK, self._requested_port), _Handler)
        server.proxy = self
        self.port = int(server.server_address[1])
        self._requested_port = self.port  # a restart comes back on the same port
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"rig-fault-proxy-{self.port}", daemon=True)  # fmt: skip
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end stalls, close every client connection and the listener. Safe twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            clients = list(self._clients)
        for sock in clients:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.server_close()
        thread.join(timeout=10)
        self._server = self._thread = None

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            (self._clients.add if add else self._clients.discard)(sock)

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _pace(self, started: float, done: int) -> None:
        rate = self.rate
        if rate:
            ahead = started + done / rate - time.monotonic()
            if ahead > 0:
                self._sleep(ahead)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: FaultProxy


class _Upstream(http.client.HTTPConnection):
    """http.client's connection, with a small receive buffer set before connecting (it sizes the TCP window)."""

    def connect(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UPSTREAM_RCVBUF)
            sock.settimeout(self.timeout)
            sock.connect((self.host, self.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _Cut(Exception):
    """The connection was (or must be) cut: stop handling it."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    upstream: http.client.HTTPConnection | None = None
    body_read = False  # this request's body has been read (relayed or dropped)
    outcome: str | None = None  # what happened to this request, when the upstream decided it

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.proxy._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self._close_upstream()
        self.server.proxy._track(self.connection, add=False)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def handle_expect_100(self) -> bool:
        return True  # answered in _read_body, once the request is known to be relayed or dropped

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    # -- plumbing

    @property
    def proxy(self) -> FaultProxy:
        return self.server.proxy

    def _close_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None

    def _rst(self) -> None:
        """Reset the client connection (TCP RST) and drop the upstream one."""
        self._close_upstream()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # its reference would keep the socket open past close()
        with contextlib.suppress(OSError):
            self.connection.close()
        raise _Cut

    def _hang_up(self) -> None:
        self._close_upstream()
        self.close_connection = True
        raise _Cut

    def _accounting_key(self) -> tuple[str, str] | None:
        path, _, query = self.path.partition("?")
        family, found = _match(path)
        if found is None:
            return None
        if family == "blob" and self.command == "GET":
            return ("digest", found["digest"])
        if family == "upload" and self.command in ("PATCH", "PUT"):
            digest = re.search(r"(?:^|&)digest=([^&]+)", query)
            session = found["session"]
            if digest:
                named = digest[1].replace("%3A", ":").replace("%3a", ":")
                if session:
                    self.proxy._finish_session(session, named)
                return ("digest", named)
            return ("session", session) if session else None
        return None

    # -- one request

    def _handle(self) -> None:
        proxy = self.proxy
        at = time.monotonic()
        kind = request_kind(self.command, self.path)
        self.body_read = False
        self.outcome = None
        key = self._accounting_key()
        rule = proxy._pick(kind, urllib.parse.unquote(self.path))
        action = rule.action if rule is not None else None
        outcome = action.describe() if action else "relayed"
        try:
            if action is None:
                outcome = self._relay(key, None)
            elif action.kind == "fail":
                self._read_body(None, key)
                self._answer(action)
            elif action.kind == "stall" and not action.headers:
                self._read_body(None, key)
                proxy._sleep(action.seconds)
                self._hang_up()
            else:
                relayed = self._relay(key, action)
                if rule is not None and action.kind == "reset":
                    proxy._unfire(rule)
                    outcome = f"{relayed} (body shorter than the reset point)"
        except _Cut:
            pass
        except (OSError, http.client.HTTPException) as err:  # the client went away
            outcome += f" (client: {type(err).__name__})"
            self.close_connection = True
            self._close_upstream()
        finally:
            proxy._note(self.command, self.path, kind, self.outcome or outcome, at)

    def _body_length(self) -> int | None:
        """The request body's length; None for chunked (not used by the clients under test: relayed as is)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return None
        return int(self.headers.get("Content-Length") or 0)

    def _read_body(
        self, send: http.client.HTTPConnection | None, key: tuple[str, str] | None, cut_after: int | None = None
    ) -> bool:
        """Read the request body, relaying it to `send` (None: drop it), counting it; reset the client after
        `cut_after` bytes. False if the upstream stopped taking it (its answer may still be there)."""
        length = self._body_length()
        if length is None:
            raise http.client.HTTPException("chunked request bodies are not supported")
        if length and self.headers.get("Expect", "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        left, done, started, upstream_ok = length, 0, time.monotonic(), True
        while left > 0:
            want = min(_PIECE, left)
            if cut_after is not None:
                want = min(want, cut_after - done)
                if want <= 0:
                    self._rst()
            piece = self.rfile.read(want)
            if not piece:
                raise _Cut  # the client stopped sending
            left -= len(piece)
            done += len(piece)
            if key is not None:
                self.proxy._count("up", key, len(piece))
            if send is not None and upstream_ok:
                try:
                    send.send(piece)
                except OSError:
                    upstream_ok = False  # keep reading: the upstream may have answered early (e.g. 401)
            self.proxy._pace(started, done)
        self.body_read = True
        if cut_after is not None and done >= cut_after and length:
            self._rst()
        return upstream_ok

    def _answer(self, action: Action) -> None:
        status = action.status
        error = {"code": _CODES.get(status, "UNKNOWN"), "message": f"fault injected: HTTP {status}",
                 "detail": {"fault": "rig.fault_proxy"}}  # fmt: skip
        body = json.dumps({"errors": [error]}, separators=(",", ":")).encode()
        self.send_response(status)
        if action.retry_after is not None:
            if action.retry_after_date:
                value = email.utils.formatdate(time.time() + action.retry_after, usegmt=True)
            else:
                value = f"{action.retry_after:g}"
            self.send_header("Retry-After", value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _upstream_answer(self, key: tuple[str, str] | None, action: Action | None) -> http.client.HTTPResponse:
        """Send the request upstream (once more on a fresh connection if a kept-alive one had been closed)."""
        cut_up = action.after if action is not None and action.kind == "reset" and self._body_length() else None
        bodyless = not self._body_length()
        for attempt in (1, 2):
            reused = self.upstream is not None
            if self.upstream is None:
                proxy = self.proxy
                self.upstream = _Upstream(proxy.upstream_host, proxy.upstream_port,
                                                           timeout=_UPSTREAM_TIMEOUT)  # fmt: skip
            conn = self.upstream
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() != "expect":
                        conn.putheader(name, value)
                conn.endheaders()
            except OSError:
                self._close_upstream()
                if attempt == 1 and reused:
                    continue
                break
            self._read_body(conn, key, cut_up)
            try:
                return conn.getresponse()
            except (OSError, http.client.HTTPException):
                self._close_upstream()
                if attempt == 1 and reused and bodyless:
                    continue
                break
        self._bad_gateway(key)
        raise _Cut

    def _bad_gateway(self, key: tuple[str, str] | None) -> None:
        self.close_connection = True
        self.outcome = "upstream down: 502"
        if not self.body_read:
            with contextlib.suppress(OSError):
                self._read_body(None, key)
        with contextlib.suppress(OSError):
            self.send_error(502, "upstream unreachable")

    def _relay(self, key: tuple[str, str] | None, action: Action | None) -> str:
        response = self._upstream_answer(key, action)
        self.send_response_only(response.status, response.reason)
        chunked = False
        for name, value in response.getheaders():
            lower = name.lower()
            if lower == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            self.send_header(name, value)
        has_body = self.command != "HEAD" and response.status not in _NO_BODY_STATUS and response.status >= 200
        if has_body and not chunked and response.length is None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.flush()
        if action is not None and action.kind == "stall":
            self.proxy._sleep(action.seconds)
            self._hang_up()
        cut_down = action.after if action is not None and action.kind == "reset" else None
        blob_body = key is not None and key[0] == "digest" and self.command == "GET" and response.status in (200, 206)
        down_key = key if blob_body else None  # an error answer's body is not the blob
        done, started = 0, time.monotonic()
        while has_body:
            want = _PIECE if cut_down is None else min(_PIECE, cut_down - done)
            if want <= 0:
                self._rst()
            try:
                piece = response.read1(want)
            except (OSError, http.client.HTTPException):
                piece = None
            if piece is None:  # the upstream broke off mid-body: the client must see a cut, not an end
                self.outcome = f"upstream broke off after {done} bytes"
                self._hang_up()
            if not piece:
                if not chunked and response.length:  # http.client ends a cut-short body quietly
                    self.outcome = f"upstream broke off after {done} bytes"
                    self._hang_up()
                break
            if down_key is not None:  # counted first: a client that has the bytes must find them counted
                self.proxy._count("down", down_key, len(piece))
            self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
            done += len(piece)
            self.proxy._pace(started, done)
        if has_body and chunked:
            self.wfile.write(b"0\r\n\r\n")
        if not response.isclosed():
            response.read()
        if response.will_close:
            self._close_upstream()
        return f"relayed {response.status}"

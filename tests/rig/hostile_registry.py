"""A scripted fake registry for the answers a real one never gives: crafted manifests, endless redirects,
garbage WWW-Authenticate headers, enormous headers, error bodies that are not JSON.

It is a ThreadingHTTPServer on a loopback address (127.0.0.1 by default; 127.0.0.2 works as "another host").
``GET /v2/`` answers 200; every other path answers what ``route()`` scripted for it, else 404 with a
distribution-style error body. Real image bytes can be served with ``serve_image()``. Every request is
recorded (method, path, headers) so a test can assert what reached the server, e.g. no Authorization.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Self

from rig.images import BuiltImage
from rig.net import LoopbackServer

__all__ = ["Answer", "HostileRegistry", "SeenRequest", "json_answer"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names


@dataclass(frozen=True)
class Answer:
    """One scripted answer. ``body`` is sent as is; ``fill`` (byte, count) streams ``count`` copies of a byte
    instead, for bodies too big to build in memory."""

    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    fill: tuple[bytes, int] | None = None

    def length(self) -> int:
        return self.fill[1] if self.fill else len(self.body)

    def chunks(self) -> Iterable[bytes]:
        if self.fill is None:
            yield self.body
            return
        byte, left = self.fill
        block = byte * _CHUNK
        while left > 0:
            yield block[: min(left, _CHUNK)]
            left -= _CHUNK


def json_answer(value: object, *, status: int = 200, content_type: str = "application/json", **headers: str) -> Answer:
    extra = [(k.replace("_", "-"), v) for k, v in headers.items()]
    return Answer(status, [("Content-Type", content_type), *extra], json.dumps(value).encode())


Route = Answer | Callable[[SeenRequest], Answer]


@dataclass
class _Script:
    exact: dict[str, Route] = field(default_factory=dict)
    prefixes: list[tuple[str, Route]] = field(default_factory=list)
    seen: list[SeenRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, request: SeenRequest) -> Answer:
        with self.lock:
            self.seen.append(request)
            route = self.exact.get(request.path)
            if route is None:
                route = next((r for p, r in self.prefixes if request.path.startswith(p)), None)
        if route is None:
            if request.path == "/v2/":
                return json_answer({})
            return json_answer({"errors": [{"code": "NAME_UNKNOWN", "message": "not scripted"}]}, status=404)
        return route(request) if callable(route) else route


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script: _Script  # set on the subclass each server makes

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self, with_body: bool) -> None:
        seen = SeenRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        answer = self.script.answer(seen)
        try:
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            self.send_header("Content-Length", str(answer.length()))
            self.end_headers()
            if with_body:
                for chunk in answer.chunks():
                    self.wfile.write(chunk)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve(True)

    def do_HEAD(self) -> None:
        self._serve(False)

    def do_POST(self) -> None:
        self._serve(True)

    def do_PUT(self) -> None:
        self._serve(True)


class HostileRegistry(LoopbackServer):
    """``with HostileRegistry() as fake: fake.route("/v2/app/manifests/v1", Answer(...))``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._script = _Script()
        handler = type("ScriptedHandler", (_Handler,), {"script": self._script})
        self._server = http.server.ThreadingHTTPServer((host, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"hostile-{host}", daemon=True)
        self.address = host
        self.port: int = self._server.server_address[1]

    @property
    def requests(self) -> list[SeenRequest]:
        with self._script.lock:
            return list(self._script.seen)

    def requests_to(self, prefix: str) -> list[SeenRequest]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    def route(self, path: str, answer: Route) -> None:
        with self._script.lock:
            self._script.exact[path] = answer

    def route_prefix(self, prefix: str, answer: Route) -> None:
        with self._script.lock:
            self._script.prefixes.append((prefix, answer))

    def serve_blob(self, repository: str, digest: str, data: bytes) -> None:
        self.route(f"/v2/{repository}/blobs/{digest}", Answer(200, [("Docker-Content-Digest", digest)], data))

    def serve_manifest(self, repository: str, reference: str, raw: bytes, media_type: str, **headers: str) -> None:
        extra = [(k.replace("_", "-"), v) for k, v in headers.items()]
        self.route(f"/v2/{repository}/manifests/{reference}", Answer(200, [("Content-Type", media_type), *extra], raw))

    def serve_image(self, repository: str, tag: str, image: BuiltImage) -> None:
        """Real bytes: the manifest under its tag and digest, and every blob."""
        for reference in (tag, image.manifest_digest):
            self.serve_manifest(
                repository,
                reference,
                image.manifest_bytes,
                image.manifest.media_type,
                Docker_Content_Digest=image.manifest_digest,
            )
        for blob in image.blobs:
            self.serve_blob(repository, blob.digest, image.blob_path(blob.digest).read_bytes())

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __repr__(self) -> str:
        return f"HostileRegistry({self.url})"

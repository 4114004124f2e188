"""An in-memory registry behind httpx.MockTransport, with knobs for the protocol's awkward edges.

Hosts: ``registry.example`` (the registry API), ``auth.example`` (the token service), ``cdn.example`` (where
blob GETs may be redirected). Tests reach it through the ``fake`` fixture and ``fake.client(...)``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from docker_image_pusher.registry import Credentials, RegistryClient

REGISTRY = "registry.example"
AUTH = "auth.example"
CDN = "cdn.example"
USER = "alice"
PASSWORD = "s3cr3t-Pa55word"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "detail": None}]}


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class BrokenStream(httpx.SyncByteStream):
    """A response body that sends ``data`` then drops the connection."""

    def __init__(self, data: bytes, piece: int = 1000) -> None:
        self.data = data
        self.piece = piece

    def __iter__(self) -> Iterator[bytes]:
        for i in range(0, len(self.data), self.piece):
            yield self.data[i : i + self.piece]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


class CountingStream(httpx.SyncByteStream):
    """A body of ``size`` bytes in pieces, counting how many pieces were pulled."""

    def __init__(self, data: bytes, piece: int = 64 * 1024) -> None:
        self.data = data
        self.piece = piece
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        for i in range(0, len(self.data), self.piece):
            self.pulled += 1
            yield self.data[i : i + self.piece]


def streamed(status: int, data: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    """A response whose body arrives as a stream, as from the network (``content=`` bodies are pre-read)."""
    all_headers = {"Content-Length": str(len(data)), **(headers or {})}
    return httpx.Response(status, headers=all_headers, stream=CountingStream(data))


@dataclass
class Upload:
    data: bytearray = field(default_factory=bytearray)
    state: str = ""
    state_offset: int = 0
    generation: int = 0


_PATH = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs|blobs/uploads)/(?P<ref>[^/]*)$")


class FakeRegistry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[httpx.Request] = []
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.uploads: dict[str, Upload] = {}
        # auth: None (open), "basic" or "bearer"
        self.auth: str | None = None
        self.users = {USER: PASSWORD}
        self.allow_anonymous = True
        self.tokens: dict[str, frozenset[str]] = {}  # token -> granted scopes
        self.revoked: set[str] = set()
        self.token_field = "token"
        self.expires_in: int | None = 300
        self.issued_at: str | None = None
        self.token_requests: list[httpx.Request] = []
        self.realm = f"https://{AUTH}/token"
        self.jwt_access: list[dict[str, Any]] | None = None  # make JWT tokens with this access claim
        # behaviour knobs
        self.ignore_range = False
        self.redirect_blobs = False
        self.location_style = "absolute"  # or "relative"
        self.refuse_monolithic: int | None = None  # a status for PUT with a body
        self.chunk_min_length: int | None = None
        self.patch_status = 202
        self.interrupt_patch_after: int | None = None  # keep this many bytes of the next PATCH, then drop
        self.patch_416_once = False
        self.strict_state_offset = False
        self.lose_sessions = 0  # the next N PATCHes find their session gone (404 BLOB_UPLOAD_UNKNOWN)
        self.mount_enabled = True
        self.blob_overrides: dict[str, Callable[[httpx.Request], httpx.Response]] = {}
        self.manifest_headers: dict[str, str] = {}
        self.cdn_requests: list[httpx.Request] = []
        self.counter = 0
        self.short_chunks: list[int] = []
        self.patch_sizes: list[int] = []

    user = USER
    password = PASSWORD
    host = REGISTRY
    auth_host = AUTH
    cdn_host = CDN
    sha256 = staticmethod(sha256)
    streamed = staticmethod(streamed)
    error_body = staticmethod(error_body)
    BrokenStream = BrokenStream
    CountingStream = CountingStream

    # -- plumbing -------------------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self, **kwargs: Any) -> RegistryClient:
        return RegistryClient(f"https://{REGISTRY}", transport=self.transport(), **kwargs)

    def client_with_credentials(self, **kwargs: Any) -> RegistryClient:
        return self.client(credentials=Credentials(USER, PASSWORD), **kwargs)

    def registry_requests(self, method: str | None = None) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.host == REGISTRY and (method is None or r.method == method)]

    def next_id(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def add_blob(self, data: bytes) -> str:
        digest = sha256(data)
        self.blobs[digest] = data
        return digest

    def add_manifest(self, repo: str, tag: str, body: dict[str, Any] | bytes, media_type: str) -> str:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        digest = sha256(raw)
        self.manifests[(repo, tag)] = (raw, media_type)
        self.manifests[(repo, digest)] = (raw, media_type)
        return digest

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        with self.lock:
            self.requests.append(request)
        if request.url.host == AUTH:
            return self.token(request)
        if request.url.host == CDN:
            self.cdn_requests.append(request)
            return self.serve_blob(request, request.url.path.rsplit("/", 1)[-1])
        if request.url.host != REGISTRY:
            return httpx.Response(404)
        denied = self.check_auth(request)
        if denied is not None:
            return denied
        return self.route(request)

    # -- auth -----------------------------------------------------------------------------------------------

    def basic_user(self, request: httpx.Request) -> str | bool | None:
        """The user of a valid Basic header, None without one, False for wrong credentials."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if self.users.get(user) == password else False

    def make_token(self, scopes: frozenset[str]) -> str:
        n = self.next_id()
        if self.jwt_access is None:
            token = f"tok-{n}-opaque"
        else:
            head = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
            claims = {"access": self.jwt_access, "n": n}
            body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
            token = f"{head}.{body}.c2lnbmF0dXJl"
        self.tokens[token] = scopes
        return token

    def token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests.append(request)
        user = self.basic_user(request)
        if user is False or (user is None and not self.allow_anonymous):
            return httpx.Response(401, json={"details": "incorrect username or password"})
        scopes = frozenset(request.url.params.get_list("scope"))
        token = self.make_token(scopes)
        body: dict[str, Any] = {self.token_field: token}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if self.issued_at is not None:
            body["issued_at"] = self.issued_at
        return httpx.Response(200, json=body)

    def needed_scope(self, request: httpx.Request) -> tuple[str, str] | None:
        match = _PATH.match(request.url.path)
        if not match:
            return None
        action = "pull" if request.method in ("GET", "HEAD") and match["kind"] != "blobs/uploads" else "push"
        return match["name"], action

    def challenge(self, request: httpx.Request, error: str | None = None) -> httpx.Response:
        if self.auth == "basic":
            header = 'Basic realm="fake registry"'
        else:
            header = f'Bearer realm="{self.realm}",service="{REGISTRY}"'
            needed = self.needed_scope(request)
            if needed:
                actions = "pull" if needed[1] == "pull" else "pull,push"
                header += f',scope="repository:{needed[0]}:{actions}"'
            if error:
                header += f',error="{error}"'
        return httpx.Response(
            401,
            headers={"WWW-Authenticate": header},
            json=error_body("UNAUTHORIZED", "authentication required"),
        )

    def check_auth(self, request: httpx.Request) -> httpx.Response | None:
        if self.auth is None:
            return None
        header = request.headers.get("Authorization", "")
        if self.auth == "basic":
            return None if self.basic_user(request) not in (None, False) else self.challenge(request)
        if not header.startswith("Bearer "):
            return self.challenge(request)
        token = header[7:]
        if token not in self.tokens or token in self.revoked:
            return self.challenge(request, "invalid_token")
        needed = self.needed_scope(request)
        if needed is None:
            return None
        name, action = needed
        granted = {}
        for scope in self.tokens[token]:
            rest, _, actions = scope.rpartition(":")
            granted[rest.partition(":")[2]] = set(actions.split(","))
        if action not in granted.get(name, set()):
            return self.challenge(request, "insufficient_scope")
        mount_from = request.url.params.get("from")
        if mount_from and "pull" not in granted.get(mount_from, set()):
            return self.challenge(request, "insufficient_scope")
        return None

    # -- routes ---------------------------------------------------------------------------------------------

    def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v2/":
            return httpx.Response(200, json={})
        match = _PATH.match(path)
        if not match:
            return httpx.Response(404, json=error_body("NAME_UNKNOWN", "no such route"))
        name, kind, ref = match["name"], match["kind"], match["ref"]
        if kind == "manifests":
            return self.manifest(request, name, ref)
        if kind == "blobs":
            if ref in self.blob_overrides:
                return self.blob_overrides[ref](request)
            return self.blob(request, ref)
        return self.upload(request, name, ref)

    def manifest(self, request: httpx.Request, name: str, ref: str) -> httpx.Response:
        if request.method == "PUT":
            digest = sha256(request.content)
            self.manifests[(name, ref)] = (request.content, request.headers["Content-Type"])
            self.manifests[(name, digest)] = (request.content, request.headers["Content-Type"])
            headers = {"Docker-Content-Digest": digest, "Location": f"/v2/{name}/manifests/{digest}"}
            headers.update(self.manifest_headers)
            return httpx.Response(201, headers=headers)
        found = self.manifests.get((name, ref))
        if found is None:
            return httpx.Response(404, json=error_body("MANIFEST_UNKNOWN", "manifest unknown"))
        raw, media_type = found
        headers = {"Content-Type": media_type, "Docker-Content-Digest": sha256(raw), "Content-Length": str(len(raw))}
        headers.update(self.manifest_headers)
        if request.method == "HEAD":
            return httpx.Response(200, headers=headers)
        return httpx.Response(200, headers=headers, content=raw)

    def blob(self, request: httpx.Request, digest: str) -> httpx.Response:
        if digest not in self.blobs:
            return httpx.Response(404, json=error_body("BLOB_UNKNOWN", "blob unknown to registry"))
        if self.redirect_blobs and request.method == "GET":
            return httpx.Response(307, headers={"Location": f"https://{CDN}/blobs/{digest}?sig=CDNSECRET"})
        return self.serve_blob(request, digest)

    def serve_blob(self, request: httpx.Request, digest: str) -> httpx.Response:
        data = self.blobs[digest]
        if request.method == "HEAD":
            return httpx.Response(200, headers={"Content-Length": str(len(data)), "Docker-Content-Digest": digest})
        range_header = request.headers.get("Range")
        if range_header and not self.ignore_range:
            start = int(range_header.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                return httpx.Response(416, headers={"Content-Range": f"bytes */{len(data)}"})
            return streamed(206, data[start:], {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
        return streamed(200, data)

    # -- uploads --------------------------------------------------------------------------------------------

    def location(self, name: str, upload_id: str, upload: Upload) -> str:
        upload.generation += 1
        upload.state = base64.b64encode(f"{upload_id}/{upload.generation}/x+y".encode()).decode()
        upload.state_offset = len(upload.data)
        state = httpx.QueryParams({"_state": upload.state})
        path = f"/v2/{name}/blobs/uploads/{upload_id}?{state}"
        return path if self.location_style == "relative" else f"https://{REGISTRY}{path}"

    def upload_headers(self, name: str, upload_id: str, upload: Upload) -> dict[str, str]:
        headers = {
            "Location": self.location(name, upload_id, upload),
            "Range": f"0-{max(len(upload.data) - 1, 0)}",
            "Docker-Upload-UUID": upload_id,
        }
        if self.chunk_min_length is not None:
            headers["OCI-Chunk-Min-Length"] = str(self.chunk_min_length)
        return headers

    def upload(self, request: httpx.Request, name: str, upload_id: str) -> httpx.Response:
        if request.method == "POST":
            mount, source = request.url.params.get("mount"), request.url.params.get("from")
            if mount and source and self.mount_enabled and mount in self.blobs:
                return httpx.Response(201, headers={"Docker-Content-Digest": mount})
            new_id = f"u{self.next_id()}"
            upload = self.uploads[new_id] = Upload()
            return httpx.Response(202, headers=self.upload_headers(name, new_id, upload))
        found = self.uploads.get(upload_id)
        if found is None:
            return httpx.Response(404, json=error_body("BLOB_UPLOAD_UNKNOWN", "blob upload unknown"))
        upload = found
        if request.url.params.get("_state") != upload.state:
            return httpx.Response(400, json=error_body("BLOB_UPLOAD_INVALID", "stale _state: not the newest Location"))
        if self.strict_state_offset and upload.state_offset != len(upload.data):
            del self.uploads[upload_id]  # like distribution: "upload resumed at wrong offset" cancels the upload
            return httpx.Response(400, json=error_body("BLOB_UPLOAD_INVALID", "upload resumed at wrong offset"))
        if request.method == "GET":
            return httpx.Response(204, headers=self.upload_headers(name, upload_id, upload))
        if request.method == "DELETE":
            del self.uploads[upload_id]
            return httpx.Response(204)
        if request.method == "PATCH":
            return self.patch(request, name, upload_id, upload)
        if request.method == "PUT":
            body = request.content
            if body and self.refuse_monolithic is not None:
                return httpx.Response(self.refuse_monolithic, json=error_body("SIZE_TOO_BIG", "too large"))
            upload.data += body
            digest = request.url.params.get("digest")
            if digest != sha256(bytes(upload.data)):
                return httpx.Response(400, json=error_body("DIGEST_INVALID", "provided digest did not match"))
            self.blobs[digest] = bytes(upload.data)
            del self.uploads[upload_id]
            return httpx.Response(
                201, headers={"Docker-Content-Digest": digest, "Location": f"/v2/{name}/blobs/{digest}"}
            )
        return httpx.Response(405)

    def patch(self, request: httpx.Request, name: str, upload_id: str, upload: Upload) -> httpx.Response:
        body = request.content
        if self.lose_sessions:
            self.lose_sessions -= 1
            del self.uploads[upload_id]
            return httpx.Response(404, json=error_body("BLOB_UPLOAD_UNKNOWN", "blob upload unknown"))
        content_range = request.headers.get("Content-Range", "")
        start, _, end = content_range.partition("-")
        if self.patch_416_once or int(start) != len(upload.data) or int(end) - int(start) + 1 != len(body):
            self.patch_416_once = False
            return httpx.Response(416, headers=self.upload_headers(name, upload_id, upload))
        if self.chunk_min_length is not None and len(body) < self.chunk_min_length:
            self.short_chunks.append(len(body))  # only the last chunk may be short: tests check that
        if self.interrupt_patch_after is not None:
            keep = self.interrupt_patch_after
            self.interrupt_patch_after = None
            upload.data += body[:keep]
            raise httpx.WriteError("connection reset by peer")
        upload.data += body
        self.patch_sizes.append(len(body))
        return httpx.Response(self.patch_status, headers=self.upload_headers(name, upload_id, upload))


@pytest.fixture
def fake() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()

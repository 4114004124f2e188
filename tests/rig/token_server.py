"""A Docker token-auth server (https://distribution.github.io/distribution/spec/auth/token/) for tests.

GET /token?service=S&scope=repository:NAME:pull,push (scope repeatable) with optional Basic auth answers
{"token", "access_token", "expires_in", "issued_at"}. The JWT is RS256, its header carries "x5c" with the
DER of a self-signed certificate; the registry trusts that certificate as its `rootcertbundle`.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

from rig.certs import SigningCert, make_signing_cert
from rig.net import LOOPBACK
from rig.registry_config import TokenAuth

__all__ = ["ALL_ACTIONS", "Grant", "Policy", "Scope", "TokenRequest", "TokenServer", "parse_scope"]

ALL_ACTIONS: frozenset[str] = frozenset({"pull", "push", "delete", "*"})

ANONYMOUS = None
REGISTRY_LEEWAY = 60  # seconds distribution 2.8 still accepts a token past its "exp"


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: tuple[str, ...]


@dataclass(frozen=True)
class Grant:
    type: str
    name: str
    actions: tuple[str, ...]

    def claim(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


@dataclass(frozen=True)
class TokenRequest:
    """One request the server answered (for assertions)."""

    user: str | None  # None: anonymous (also for failed logins: see `status`)
    service: str | None
    scopes: tuple[Scope, ...]
    status: int
    granted: tuple[Grant, ...] = ()
    token: str | None = None  # the token issued, so tests can check it never leaks into output
    at: float = field(default_factory=time.time)


# (user or None, scope) -> the actions to grant (a subset of scope.actions, may be empty)
Policy = Callable[[str | None, Scope], Collection[str]]


def parse_scope(text: str) -> Scope:
    """'repository:ns/name:pull,push' -> Scope. The name may contain ':' (e.g. a host:port prefix)."""
    kind, _, rest = text.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        raise ValueError(f"bad scope {text!r}")
    return Scope(type=kind, name=name, actions=tuple(a for a in actions.split(",") if a))


class TokenServer:
    """Threaded HTTP token server on 127.0.0.1. Mutable knobs apply to the next request; `reset()` restores them.

    users: name -> password. user_actions: name -> actions that user may get on any repository (default all).
    allow_anonymous: issue tokens without credentials (granting anonymous_actions). expires_in: the lifetime
    reported and put in "exp". claim_lifetime: override the "exp" claim offset only (e.g. -120 for a token the
    registry rejects while the client thinks it is fresh; the registry allows 60 s of leeway). For a token the
    registry accepts now and refuses a few seconds later, see `reject_tokens_after`.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        users: Mapping[str, str] | None = None,
        user_actions: Mapping[str, Collection[str]] | None = None,
        allow_anonymous: bool = False,
        anonymous_actions: Collection[str] = ("pull",),
        expires_in: int = 300,
        service: str = "test-registry",
        issuer: str = "docker-image-pusher-test-issuer",
    ) -> None:
        self.workdir = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="rig-token-"))
        self.signing: SigningCert = make_signing_cert(self.workdir)
        self.service = service
        self.issuer = issuer
        self._defaults: dict[str, Any] = {
            "users": dict(users if users is not None else {"user": "secret-pass"}),
            "user_actions": {k: frozenset(v) for k, v in (user_actions or {}).items()},
            "allow_anonymous": allow_anonymous,
            "anonymous_actions": frozenset(anonymous_actions),
            "expires_in": expires_in,
        }
        self.users: dict[str, str] = {}
        self.user_actions: dict[str, frozenset[str]] = {}
        self.allow_anonymous = False
        self.anonymous_actions: frozenset[str] = frozenset()
        self.expires_in = 0
        self.claim_lifetime: int | None = None
        self.policy: Policy | None = None  # overrides users/user_actions/anonymous_actions when set
        self.fail_with: int | None = None  # answer every request with this status (fault tests)
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []
        self._x5c = [base64.b64encode(self.signing.cert_der).decode("ascii")]
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.reset()

    # ---- settings -------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the constructor's settings, and forget the requests served."""
        with self._lock:
            self.users = dict(self._defaults["users"])
            self.user_actions = dict(self._defaults["user_actions"])
            self.allow_anonymous = self._defaults["allow_anonymous"]
            self.anonymous_actions = self._defaults["anonymous_actions"]
            self.expires_in = self._defaults["expires_in"]
            self.claim_lifetime = None
            self.policy = None
            self.fail_with = None
            self._requests.clear()

    def reject_tokens_after(self, seconds: int) -> None:
        """Issue tokens the registry (distribution 2.8: 60 s of leeway past "exp") accepts for about `seconds`
        more, while "expires_in" still tells the client the full `expires_in`: the client keeps using a token
        the registry starts refusing mid-run. reset() undoes it."""
        with self._lock:
            self.claim_lifetime = seconds - REGISTRY_LEEWAY

    def set_user(self, name: str, password: str, actions: Collection[str] = ALL_ACTIONS) -> None:
        """Add or change a user and the actions they may be granted (on every repository)."""
        with self._lock:
            self.users[name] = password
            self.user_actions[name] = frozenset(actions)

    # ---- introspection --------------------------------------------------------------------------------------
    @property
    def requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def registry_auth(self, username: str | None = "user", password: str | None = None) -> TokenAuth:
        """What a registry's `auth.token` needs, plus the credentials clients should use (default: 'user')."""
        if username is not None and password is None:
            password = self.users.get(username)
        return TokenAuth(
            realm=self.realm,
            service=self.service,
            issuer=self.issuer,
            rootcertbundle=self.signing.cert_path,
            username=username,
            password=password,
        )

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> TokenServer:
        if self._httpd is not None:
            return self
        handler = _handler_for(self)
        self._httpd = ThreadingHTTPServer((LOOPBACK, self.port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="rig-token-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- token logic ----------------------------------------------------------------------------------------
    def _grant(self, user: str | None, scope: Scope) -> tuple[str, ...]:
        if self.policy is not None:
            allowed = set(self.policy(user, scope))
        elif user is None:
            allowed = set(self.anonymous_actions)
        else:
            allowed = set(self.user_actions.get(user, ALL_ACTIONS))
        if "*" in allowed:
            return scope.actions
        return tuple(a for a in scope.actions if a in allowed)

    def issue(
        self, user: str | None, service: str | None, scopes: tuple[Scope, ...]
    ) -> tuple[dict[str, Any], tuple[Grant, ...]]:
        """Make the JSON answer for an authenticated request, and the grants it holds."""
        grants = tuple(Grant(s.type, s.name, self._grant(user, s)) for s in scopes)
        now = int(time.time())
        lifetime = self.expires_in if self.claim_lifetime is None else self.claim_lifetime
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": service or self.service,
            "exp": now + lifetime,
            "nbf": now - 1,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": [g.claim() for g in grants],
        }
        token = jwt.encode(claims, self.signing.key, algorithm="RS256", headers={"x5c": self._x5c})
        issued_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        body = {"token": token, "access_token": token, "expires_in": self.expires_in, "issued_at": issued_at}
        return body, grants

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _check_login(self, header: str | None) -> tuple[bool, str | None]:
        """(ok, user). No header: ok only if anonymous is allowed."""
        if not header:
            return self.allow_anonymous, None
        method, _, value = header.partition(" ")
        if method.lower() != "basic":
            return False, None
        try:
            user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False, None
        expected = self.users.get(user)
        return (expected is not None and expected == password), user


def _handler_for(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: never log request lines (they hold names)
            return

        def _send(self, status: int, body: dict[str, Any], extra: Mapping[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != "/token":
                self._send(404, {"errors": [{"code": "NOT_FOUND", "message": parts.path}]})
                return
            query = parse_qs(parts.query)
            service = query["service"][0] if query.get("service") else None
            try:
                scopes = tuple(parse_scope(s) for raw in query.get("scope", []) for s in raw.split(" ") if s)
            except ValueError as err:
                server._record(TokenRequest(None, service, (), 400))
                self._send(400, {"errors": [{"code": "INVALID_REQUEST", "message": str(err)}]})
                return
            if server.fail_with is not None:
                server._record(TokenRequest(None, service, scopes, server.fail_with))
                self._send(server.fail_with, {"errors": [{"code": "UNAVAILABLE", "message": "fault injected"}]})
                return
            ok, user = server._check_login(self.headers.get("Authorization"))
            if not ok:
                server._record(TokenRequest(user, service, scopes, 401))
                challenge = {"WWW-Authenticate": 'Basic realm="rig-token-server"'}
                self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}, challenge)
                return
            body, grants = server.issue(user, service, scopes)
            server._record(TokenRequest(user, service, scopes, 200, grants, token=str(body["token"])))
            self._send(200, body)

    return Handler

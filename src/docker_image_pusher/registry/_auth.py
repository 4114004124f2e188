"""Registry authentication as an ``httpx.Auth`` flow: ping -> challenge -> credentials -> token per scope.

The layering follows go-containerregistry: the registry's challenge (learned from ``GET /v2/`` or from any
401) says how to authenticate; Basic challenges get the credentials directly; Bearer challenges get a token
from the realm for the scope the request needs, cached per (realm, service, scope set) until shortly before
it expires. A 401 on a request that carried a token drops the token and retries once with a fresh one.

The scope of a request comes from the repository the client names in the request's extensions (or, failing
that, from the URL path ``/v2/<name>/manifests|blobs|tags/...``) and the actions registered for that
repository: ``pull`` by default, ``pull,push`` after ``register(repo, push=True)``, plus ``pull`` on every
repository a blob may be mounted from. Credentials and tokens go only to the registry's own host (and to the
token realm); never to a redirect target or an upload URL on another host.

One instance is shared by all threads using the client: all state is behind a lock, and no lock is held
while a request is in flight (two threads may fetch the same token at once; the later one wins the cache).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import httpx

from ..errors import AuthError, RegistryError
from ._challenge import Challenge, parse_challenges, pick_challenge
from ._credentials import Credentials
from ._errors import error_from_response

__all__ = ["PING_EXTENSION", "REPOSITORY_EXTENSION", "RegistryAuth", "is_loopback_host", "repository_from_path"]

REPOSITORY_EXTENSION = "docker_image_pusher.repository"
PING_EXTENSION = "docker_image_pusher.ping"

DEFAULT_TOKEN_LIFETIME = 60.0
_MAX_REFRESH_MARGIN = 30.0

# Greedy name: the longest repository wins, so a repository may have a component called "blobs" or "manifests".
_SCOPE_PATH = re.compile(
    r"^/v2/(?P<name>.+)/(?:manifests/[^/]+|blobs/uploads/[^/]*|blobs/[^/]+|tags/list|referrers/[^/]+)$"
)


def repository_from_path(path: str) -> str | None:
    """``/v2/library/nginx/manifests/latest`` -> ``library/nginx``; None for other paths."""
    match = _SCOPE_PATH.match(path)
    return match.group("name") if match else None


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_THIS_MACHINE = frozenset({"localhost", "127.0.0.1", "::1"})


def _same_host(a: str, b: str) -> bool:
    """Whether two URL hosts name the same host: equal, or two of the usual names of this machine's loopback.
    Another loopback address (127.0.0.2) counts as another host, like any other name."""
    a, b = a.strip("[]").lower(), b.strip("[]").lower()
    return a == b or (a in _THIS_MACHINE and b in _THIS_MACHINE)


@dataclass(frozen=True)
class _TokenKey:
    realm: str
    service: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: float


_Used = _TokenKey | Literal["basic"] | None


def _is_replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


def _token_lifetime(data: dict[str, Any], now: float) -> float:
    """Seconds from ``now`` the token stays valid, from ``expires_in`` and ``issued_at``."""
    expires_in = data.get("expires_in")
    lifetime = (
        float(expires_in)
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0
        else DEFAULT_TOKEN_LIFETIME
    )
    issued_at = data.get("issued_at")
    if isinstance(issued_at, str):
        try:
            issued = datetime.fromisoformat(issued_at).timestamp()
        except ValueError:
            return lifetime
        age = now - issued
        # Only trust issued_at for a token issued in the (recent) past: a skewed clock must not make every
        # token look expired, nor extend a token's life.
        if 0 <= age < lifetime:
            return lifetime - age
    return lifetime


def _jwt_claims(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def granted_actions(token: str, repository: str) -> set[str] | None:
    """The actions a JWT's ``access`` claim grants on ``repository``; None if the token does not say."""
    claims = _jwt_claims(token)
    if claims is None or not isinstance(claims.get("access"), list):
        return None
    actions: set[str] = set()
    for entry in claims["access"]:
        if (
            isinstance(entry, dict)
            and entry.get("type") == "repository"
            and entry.get("name") == repository
            and isinstance(entry.get("actions"), list)
        ):
            actions.update(a for a in entry["actions"] if isinstance(a, str))
    return actions


class RegistryAuth(httpx.Auth):
    """Authentication for one registry. Share one instance per registry (it holds the token cache)."""

    def __init__(
        self,
        registry_url: httpx.URL | str,
        credentials: Credentials | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._registry = httpx.URL(str(registry_url))
        self._credentials = credentials
        self._clock = clock
        self._challenge: Challenge | None = None
        self._tokens: dict[_TokenKey, _Token] = {}
        self._actions: dict[str, set[str]] = {}
        self._mount_sources: dict[str, set[str]] = {}

    # -- configuration -------------------------------------------------------------------------------------

    @property
    def registry_url(self) -> httpx.URL:
        with self._lock:
            return self._registry

    @registry_url.setter
    def registry_url(self, url: httpx.URL | str) -> None:
        with self._lock:
            self._registry = httpx.URL(str(url))

    @property
    def has_credentials(self) -> bool:
        return self._credentials is not None

    @property
    def challenge(self) -> Challenge | None:
        with self._lock:
            return self._challenge

    def learn(self, response: httpx.Response) -> Challenge | None:
        """Record the challenge of a 401 answer (None if it has none we can answer)."""
        values = response.headers.get_list("www-authenticate")
        if not values:
            return None
        try:
            challenge = pick_challenge(parse_challenges(values))
        except RegistryError as exc:
            raise RegistryError(exc.message, status=response.status_code) from None
        if challenge is not None:
            if challenge.scheme == "bearer" and not challenge.realm:
                raise RegistryError(
                    "the registry asked for a bearer token but named no token service (no realm)",
                    status=response.status_code,
                )
            with self._lock:
                self._challenge = challenge
        return challenge

    def register(self, repository: str, *, push: bool = False, mount_from: Iterable[str] = ()) -> None:
        """Ask for ``pull`` (and ``push``) on ``repository``, and ``pull`` on each mount source, from now on."""
        with self._lock:
            actions = self._actions.setdefault(repository, {"pull"})
            if push:
                actions.add("push")
            sources = self._mount_sources.setdefault(repository, set())
            sources.update(s for s in mount_from if s != repository)

    def scopes_for(self, repository: str | None) -> frozenset[str]:
        if repository is None:
            return frozenset()
        with self._lock:
            actions = self._actions.get(repository, {"pull"})
            sources = self._mount_sources.get(repository, set())
            scopes = {f"repository:{repository}:{','.join(sorted(actions))}"}
            scopes.update(f"repository:{source}:pull" for source in sources)
        return frozenset(scopes)

    def token_for(self, repository: str | None) -> str | None:
        """The cached, still valid bearer token for ``repository``'s current scope set, if any."""
        challenge = self.challenge
        if challenge is None or challenge.scheme != "bearer":
            return None
        return self._cached(self._key(challenge, self.scopes_for(repository)))

    # -- the flow ------------------------------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._is_registry(request.url):
            yield request  # a redirect target, an upload URL on a CDN...: never send our credentials there
            return
        if request.extensions.get(PING_EXTENSION):
            response = yield request
            if response.status_code == 401:
                self.learn(response)
            return

        replayable = _is_replayable(request)  # decide now: sending may consume a streamed body
        repository = request.extensions.get(REPOSITORY_EXTENSION) or repository_from_path(request.url.path)
        scopes = self.scopes_for(repository if isinstance(repository, str) else None)

        challenge = self.challenge
        used: _Used = None
        if challenge is not None:
            used = yield from self._authorize(request, challenge, scopes, fresh=False)
        response = yield request
        if response.status_code != 401:
            return

        if used == "basic":
            return  # the same credentials will not work better a second time
        if isinstance(used, _TokenKey):
            self._drop(used)
        new_challenge = self.learn(response) or challenge
        if new_challenge is None or not replayable:
            return
        if new_challenge.scheme == "bearer" and new_challenge.scopes and challenge is not None:
            scopes = scopes | frozenset(new_challenge.scopes)  # e.g. error="insufficient_scope"
        retried = yield from self._authorize(request, new_challenge, scopes, fresh=True)
        if retried is None:
            return
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise RuntimeError("RegistryAuth supports only the synchronous httpx.Client")
        yield request  # pragma: no cover

    # -- internals -----------------------------------------------------------------------------------------

    def _is_registry(self, url: httpx.URL) -> bool:
        registry = self.registry_url
        return url.scheme == registry.scheme and url.host == registry.host and url.port == registry.port

    def _key(self, challenge: Challenge, scopes: frozenset[str]) -> _TokenKey:
        return _TokenKey(realm=challenge.realm or "", service=challenge.service or "", scopes=scopes)

    def _cached(self, key: _TokenKey) -> str | None:
        now = self._clock()
        with self._lock:
            token = self._tokens.get(key)
            if token is None:
                return None
            if now >= token.expires_at:
                del self._tokens[key]
                return None
            return token.value

    def _drop(self, key: _TokenKey) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def _authorize(
        self, request: httpx.Request, challenge: Challenge, scopes: frozenset[str], *, fresh: bool
    ) -> Generator[httpx.Request, httpx.Response, _Used]:
        if challenge.scheme == "basic":
            if self._credentials is None:
                return None
            request.headers["Authorization"] = self._credentials.basic_authorization()
            return "basic"
        if challenge.scheme != "bearer":
            return None
        key = self._key(challenge, scopes)
        token = None if fresh else self._cached(key)
        if token is None:
            token = yield from self._fetch_token(key, request)
        request.headers["Authorization"] = f"Bearer {token}"
        return key

    def _token_url(self, key: _TokenKey) -> httpx.URL:
        registry = self.registry_url
        try:
            realm = registry.join(key.realm)
        except httpx.InvalidURL:
            raise RegistryError(f"the registry named an invalid token service URL {key.realm!r}") from None
        if realm.scheme not in ("http", "https") or not realm.host:
            raise RegistryError(f"the registry named an unusable token service URL {key.realm!r}")
        if self._credentials is not None and realm.scheme == "http" and not _same_host(realm.host, registry.host):
            raise AuthError(
                f"refusing to send credentials over plain HTTP to the token service {realm.host}, another host "
                f"than the registry {registry.host}; the registry must name an https:// realm"
            )
        params: list[tuple[str, str | int | float | bool | None]] = list(realm.params.multi_items())
        if key.service:
            params.append(("service", key.service))
        params.extend(("scope", scope) for scope in sorted(key.scopes))
        return realm.copy_with(params=httpx.QueryParams(params))

    def _fetch_token(self, key: _TokenKey, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, str]:
        url = self._token_url(key)
        headers = {"Accept": "application/json"}
        if "User-Agent" in request.headers:
            headers["User-Agent"] = request.headers["User-Agent"]
        if self._credentials is not None:
            headers["Authorization"] = self._credentials.basic_authorization()
        # A request yielded by an auth flow gets none of the client's defaults: carry the timeouts over.
        extensions = {k: v for k, v in request.extensions.items() if k == "timeout"}
        token_request = httpx.Request("GET", url, headers=headers, extensions=extensions)
        started = self._clock()
        response = yield token_request
        response.read()
        scopes = " ".join(sorted(key.scopes)) or "registry access"
        who = "with the given credentials" if self._credentials is not None else "anonymously"
        if response.status_code != 200:
            hint = (
                "check the username and password"
                if self._credentials is not None
                else "the registry needs credentials (log in)"
            )
            raise error_from_response(response, action=f"get a token for {scopes} from {url.host} {who}", hint=hint)
        try:
            data = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            data = None
        token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(token, str) or not token:
            raise RegistryError(
                f"the token service {url.host} answered without a token for {scopes}", status=response.status_code
            )
        lifetime = _token_lifetime(data, started)
        margin = min(_MAX_REFRESH_MARGIN, lifetime / 4)
        with self._lock:
            self._tokens[key] = _Token(value=token, expires_at=started + lifetime - margin)
        return token

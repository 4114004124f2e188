"""Where a registry is and how to talk to it, as plain values that can be flow and task parameters.

Credentials are deliberately not part of an Endpoint: parameters are shown in the Prefect UI and stored
in its database. They live in this process's memory only; ``register_credentials`` returns an opaque,
random ``auth_ref`` that the Endpoint carries instead, so that concurrent runs in one process (the agent)
never see each other's credentials.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .errors import AuthError, UsageError
from .reference import DOCKER_HUB_API_HOST, normalize_registry

if TYPE_CHECKING:
    from .registry import Credentials, RegistryClient

__all__ = [
    "ANONYMOUS",
    "DEFAULT_READ_TIMEOUT",
    "Endpoint",
    "client_for",
    "forget_credentials",
    "parse_registry_url",
    "register_credentials",
]


DEFAULT_READ_TIMEOUT = 60.0  # seconds; --read-timeout


@dataclass(frozen=True)
class Endpoint:
    host: str  # host[:port]
    scheme: str | None = None  # "https", "http", or None: https, with docker's plain-http fallback on loopback
    verify_tls: bool = True
    ca_file: str | None = None
    auth_ref: str | None = None  # key of credentials registered in this process; None: anonymous
    read_timeout: float = DEFAULT_READ_TIMEOUT  # seconds without a byte from the registry: the request fails

    @property
    def verify(self) -> bool | str:
        if not self.verify_tls:
            return False
        return self.ca_file or True


def parse_registry_url(url: str | None) -> tuple[str, str | None]:
    """``--registry`` value -> (host, scheme). Accepts a URL or a bare host[:port]."""
    if not url:
        return DOCKER_HUB_API_HOST, "https"
    if "://" not in url:
        return normalize_registry(url.rstrip("/")), None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"invalid registry URL {url!r}: expected http(s)://host[:port]")
    if parts.path not in ("", "/"):
        raise UsageError(f"invalid registry URL {url!r}: a registry URL has no path")
    return normalize_registry(parts.netloc), parts.scheme


ANONYMOUS = "anonymous"  # an auth_ref meaning: the caller looked for credentials and there are none

_lock = threading.Lock()
_credentials: dict[str, Credentials] = {}
_clients: dict[Endpoint, RegistryClient] = {}


def register_credentials(credentials: Credentials) -> str:
    """Keep credentials in memory for this process; returns the auth_ref to put in an Endpoint."""
    ref = uuid.uuid4().hex
    with _lock:
        _credentials[ref] = credentials
    return ref


def forget_credentials(auth_ref: str) -> None:
    """Drop credentials and close the clients that used them (and their cached tokens)."""
    with _lock:
        _credentials.pop(auth_ref, None)
        for endpoint in [e for e in _clients if e.auth_ref == auth_ref]:
            _clients.pop(endpoint).close()


def client_for(endpoint: Endpoint) -> RegistryClient:
    """One shared, thread-safe client per endpoint in this process (connection reuse, one token cache)."""
    from .registry import RegistryClient

    with _lock:
        client = _clients.get(endpoint)
        if client is None:
            if endpoint.auth_ref and endpoint.auth_ref not in _credentials:
                raise AuthError(f"the credentials for {endpoint.host} are not available in this process")
            client = RegistryClient.for_host(
                endpoint.host,
                scheme=endpoint.scheme,
                credentials=_credentials.get(endpoint.auth_ref) if endpoint.auth_ref else None,
                verify=endpoint.verify,
                read_timeout=endpoint.read_timeout,
            )
            _clients[endpoint] = client
        return client

"""Loopback helpers: a free port, and waiting for an HTTP(S) endpoint to answer."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

__all__ = [
    "LOOPBACK",
    "HasHost",
    "LoopbackFront",
    "LoopbackServer",
    "free_port",
    "http_status",
    "split_upstream",
    "wait_for_status",
]

LOOPBACK = "127.0.0.1"


class HasHost(Protocol):
    @property
    def host(self) -> str: ...


def split_upstream(upstream: str | HasHost) -> tuple[str, int]:
    """ "HOST:PORT" (or anything with such a ``.host``, e.g. a RunningRegistry) -> (host, port)."""
    target = upstream if isinstance(upstream, str) else upstream.host
    host, _, port_text = target.rpartition(":")
    return host.strip("[]") or LOOPBACK, int(port_text)


class LoopbackServer:
    """A server the suite runs on a loopback ``address`` (127.0.0.1 unless it says otherwise) and ``port``: its
    addresses, and its life as a context manager (``start()`` on entry, ``stop()`` on exit)."""

    port: int
    address: str = LOOPBACK

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """ "ADDRESS:PORT", for image references."""
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        """ "http://ADDRESS:PORT" (a TLS upstream still needs https://, with its own CA)."""
        return f"http://{self.host}"

    def ref(self, repo_and_tag: str) -> str:
        return f"{self.host}/{repo_and_tag}"


class LoopbackFront(LoopbackServer):
    """A loopback server in front of another (the proxies)."""

    upstream_host: str
    upstream_port: int

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.host} -> {self.upstream_host}:{self.upstream_port})"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def http_status(url: str, ca_cert: Path | None = None, timeout: float = 2.0) -> int:
    """Status code of `GET url` (no redirects followed, errors statuses returned, not raised)."""
    context = ssl.create_default_context(cafile=str(ca_cert)) if ca_cert is not None else None
    request = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as err:
        return err.code


def wait_for_status(
    url: str,
    accept: Collection[int],
    *,
    ca_cert: Path | None = None,
    timeout: float = 15.0,
    alive: Callable[[], bool] = lambda: True,
) -> int:
    """Poll `url` until it answers one of `accept`; raise TimeoutError (or RuntimeError if `alive()` goes false)."""
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"server behind {url} exited before answering ({last})")
        try:
            status = http_status(url, ca_cert=ca_cert, timeout=1.0)
        except (OSError, urllib.error.URLError) as err:
            last = repr(err)
        else:
            if status in accept:
                return status
            last = f"HTTP {status}"
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer {sorted(accept)} within {timeout}s (last: {last})")

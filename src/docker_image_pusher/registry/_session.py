"""Sending one request through the shared httpx.Client, with network failures mapped to our errors."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import httpx

from ._auth import PING_EXTENSION, REPOSITORY_EXTENSION
from ._errors import error_from_transport

__all__ = ["Session"]


class Session:
    """The client's httpx.Client seen as "send this, for this repository, to do this"."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def build(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        repository: str | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | Iterable[bytes] | None = None,
        ping: bool = False,
    ) -> httpx.Request:
        extensions: dict[str, object] = {}
        if repository is not None:
            extensions[REPOSITORY_EXTENSION] = repository
        if ping:
            extensions[PING_EXTENSION] = True
        return self.http.build_request(method, url, headers=headers, content=content, extensions=extensions)

    @contextmanager
    def stream(self, request: httpx.Request, *, action: str) -> Iterator[httpx.Response]:
        """Send ``request``; the body is left unread (read it, or let the context close it)."""
        try:
            response = self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, action=action, url=request.url) from exc
        try:
            yield response
        finally:
            response.close()

    def send(self, request: httpx.Request, *, action: str) -> httpx.Response:
        """Send ``request`` and read the whole (small) answer."""
        try:
            response = self.http.send(request)
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, action=action, url=request.url) from exc
        return response

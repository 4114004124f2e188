"""Uploading one blob: monolithic first, chunked when asked or when the registry refuses one big PUT.

Rules from the field (see the registry protocol notes): never build upload URLs, always follow the newest
``Location`` (absolute or relative, keeping its query, e.g. ``?_state=...``, and appending ``&digest=``);
accept any 2xx for a PATCH and read the ``Range`` header for the offset; honour ``OCI-Chunk-Min-Length``;
after a 416 or an interrupted PATCH, ``GET`` the upload URL to learn the offset and continue from there.
The token is obtained by the bodyless POST, before any body is sent (a streamed body cannot be replayed).

Progress: ``on_progress(delta)`` reports bytes handed to the connection, never the same byte twice (a resend
after an interruption is not reported again), so the deltas add up to the blob's size on success.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO
from urllib.parse import quote

import httpx

from ..errors import IntegrityError, RegistryError
from ._errors import error_from_response, error_from_transport
from ._session import Session

__all__ = ["DEFAULT_CHUNK_SIZE", "Upload", "UploadSession", "location_of", "start_upload", "with_digest"]

DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024  # GHCR caps a PATCH at 4 MiB; registries that need more say so
_PIECE = 256 * 1024  # handed to the connection at once; progress is reported per MiB or every REPORT_EVERY s
_REPORT_BYTES = 1024 * 1024
REPORT_EVERY = 0.05
_MAX_RECOVERIES = 3  # consecutive PATCH failures without progress before giving up
_FALLBACK_STATUSES = frozenset({400, 405, 411, 413, 415, 501})
_BAD_DATA_CODES = frozenset({"DIGEST_INVALID", "SIZE_INVALID"})
_RANGE = re.compile(r"^\s*(?:bytes\s*=\s*)?0\s*-\s*(?P<end>\d+)\s*$")

UploadSession = tuple[httpx.URL, int | None]  # (upload URL, OCI-Chunk-Min-Length)


def location_of(response: httpx.Response, *, action: str, required: bool = True) -> httpx.URL | None:
    """The response's ``Location`` resolved against the request URL (it may be relative)."""
    value = response.headers.get("Location")
    if not value:
        if required:
            raise RegistryError(
                f"cannot {action}: the registry answered without an upload Location", status=response.status_code
            )
        return None
    try:
        return response.request.url.join(value)
    except httpx.InvalidURL:
        raise RegistryError(
            f"cannot {action}: the registry sent an invalid upload Location", status=response.status_code
        ) from None


def with_digest(url: httpx.URL, digest: str) -> httpx.URL:
    """``url`` with ``digest=`` appended, keeping its query exactly as the registry wrote it."""
    extra = b"digest=" + quote(digest, safe="").encode("ascii")
    return url.copy_with(query=url.query + b"&" + extra if url.query else extra)


def _min_chunk(response: httpx.Response) -> int | None:
    value = response.headers.get("OCI-Chunk-Min-Length", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _range_end(value: str | None, *, previous: int) -> int | None:
    """The next offset from ``Range: 0-N`` (N is inclusive), or None without a usable header.

    ``0-0`` is ambiguous (distribution says it for an empty session and for one byte): it means 0 unless
    ``previous`` says the server already had a byte."""
    match = _RANGE.match(value or "")
    if not match:
        return None
    end = int(match["end"])
    if end == 0:
        return 1 if previous >= 1 else 0
    return end + 1


def start_upload(
    session: Session, url: httpx.URL, repository: str, *, action: str, params: dict[str, str] | None = None
) -> tuple[httpx.Response, UploadSession | None]:
    """``POST /v2/<name>/blobs/uploads/``. Returns the response and, on 202, the new session."""
    target = url.copy_merge_params(params) if params else url
    request = session.build("POST", target, repository=repository, headers={"Content-Length": "0"})
    response = session.send(request, action=action)
    if response.status_code == 202:
        location = location_of(response, action=action)
        assert location is not None
        return response, (location, _min_chunk(response))
    return response, None


class Upload:
    def __init__(
        self,
        session: Session,
        uploads_url: httpx.URL,
        repository: str,
        digest: str,
        size: int,
        open_at: Callable[[int], BinaryIO],
        *,
        chunk_size: int | None,
        on_progress: Callable[[int], None] | None,
        reuse: UploadSession | None = None,
    ) -> None:
        self.session = session
        self.uploads_url = uploads_url
        self.repository = repository
        self.digest = digest
        self.size = size
        self.open_at = open_at
        self.chunk_size = chunk_size
        self.on_progress = on_progress
        self.reuse = reuse
        self.reported = 0
        self.action = f"push blob {digest} to {repository}"

    # -- helpers -------------------------------------------------------------------------------------------

    def advance(self, position: int) -> None:
        if position > self.reported:
            delta, self.reported = position - self.reported, position
            if self.on_progress is not None:
                self.on_progress(delta)

    def body(self, source: BinaryIO, start: int, length: int) -> Iterator[bytes]:
        sent = 0
        reported_at = time.monotonic()
        while sent < length:
            piece = source.read(min(_PIECE, length - sent))
            if not piece:
                raise IntegrityError(
                    f"the source of blob {self.digest} ended after {start + sent} of {self.size} bytes"
                )
            sent += len(piece)
            yield piece
            now = time.monotonic()
            if start + sent - self.reported >= _REPORT_BYTES or now - reported_at >= REPORT_EVERY or sent == length:
                self.advance(start + sent)
                reported_at = now

    def new_session(self) -> UploadSession:
        if self.reuse is not None:
            found, self.reuse = self.reuse, None
            return found
        response, started = start_upload(self.session, self.uploads_url, self.repository, action=self.action)
        if started is None:
            raise error_from_response(response, action=self.action)
        return started

    def bad_data(self, response: httpx.Response) -> IntegrityError | None:
        error = error_from_response(response, action=self.action)
        if _BAD_DATA_CODES & set(error.codes):
            return IntegrityError(
                f"cannot {self.action}: the registry says the bytes do not match the digest or size "
                f"({', '.join(error.codes)}); the source is corrupt"
            )
        return None

    def finish(self, response: httpx.Response) -> None:
        if not response.is_success:
            raise self.bad_data(response) or error_from_response(response, action=self.action)
        served = response.headers.get("Docker-Content-Digest")
        if served and served.strip() != self.digest:
            raise IntegrityError(f"cannot {self.action}: the registry stored it as {served.strip()}")
        self.advance(self.size)

    # -- strategies ----------------------------------------------------------------------------------------

    def run(self) -> None:
        location, min_chunk = self.new_session()
        if self.chunk_size is None:
            if self.monolithic(location):
                return
            location, min_chunk = self.new_session()  # the refused session may be dead: use a fresh one
            chunk = DEFAULT_CHUNK_SIZE
        else:
            chunk = self.chunk_size
        self.chunked(location, max(chunk, min_chunk or 1))

    def monolithic(self, location: httpx.URL) -> bool:
        """PUT the whole blob. True when done, False when the registry wants chunks."""
        url = with_digest(location, self.digest)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(self.size)}
        for attempt in range(2):
            with self.open_at(0) as source:
                request = self.session.build(
                    "PUT", url, repository=self.repository, headers=headers, content=self.body(source, 0, self.size)
                )
                response = self.session.send(request, action=self.action)
            if response.status_code == 401 and attempt == 0:
                continue  # the token expired: the auth flow dropped it and fetches a new one before resending
            if response.status_code in _FALLBACK_STATUSES:
                error = self.bad_data(response)
                if error is not None:
                    raise error
                return False
            self.finish(response)
            return True
        raise error_from_response(response, action=self.action)

    def chunked(self, location: httpx.URL, chunk: int) -> None:
        offset = 0
        failures = 0
        restarted = False
        source: BinaryIO | None = None
        try:
            while offset < self.size:
                end = min(offset + chunk, self.size)
                if source is None:
                    source = self.open_at(offset)
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{end - 1}",
                    "Content-Length": str(end - offset),
                }
                body = self.body(source, offset, end - offset)
                request = self.session.build(
                    "PATCH", location, repository=self.repository, headers=headers, content=body
                )
                failure: Exception
                try:
                    response = self.session.http.send(request)
                except httpx.TransportError as exc:
                    failure = error_from_transport(exc, action=self.action, url=request.url)
                else:
                    if response.is_success:
                        location = location_of(response, action=self.action, required=False) or location
                        chunk = max(chunk, _min_chunk(response) or 0)
                        confirmed = _range_end(response.headers.get("Range"), previous=end)
                        new_offset = end if confirmed is None else min(confirmed, self.size)
                        if new_offset > offset:
                            if new_offset != end:  # the server kept another amount: reopen where it says
                                source.close()
                                source = None
                            offset, failures = new_offset, 0
                            continue
                        failure = RegistryError(f"cannot {self.action}: the registry makes no progress on the upload")
                    elif response.status_code in (401, 416):
                        location = location_of(response, action=self.action, required=False) or location
                        failure = error_from_response(response, action=self.action)
                    elif response.status_code == 404 and not restarted:
                        # The registry dropped the session (distribution cancels one resumed at an offset that
                        # no longer matches what it holds, e.g. after a PATCH broke halfway): start over once.
                        restarted = True
                        source.close()
                        source = None
                        location, min_chunk = self.new_session()
                        chunk = max(chunk, min_chunk or 0)
                        offset = 0
                        continue
                    else:
                        raise error_from_response(response, action=self.action)
                failures += 1
                if failures > _MAX_RECOVERIES:
                    raise failure
                source.close()
                source = None
                try:
                    location, offset = self.status(location, previous=offset)
                except RegistryError as exc:
                    # Some registries (distribution) cancel a session whose state no longer matches what they
                    # hold, e.g. after a PATCH broke halfway. Start over once in a fresh session.
                    if restarted or exc.temporary or exc.status in (401, 403):
                        raise
                    restarted = True
                    location, min_chunk = self.new_session()
                    chunk = max(chunk, min_chunk or 0)
                    offset = 0
        finally:
            if source is not None:
                source.close()
        request = self.session.build(
            "PUT", with_digest(location, self.digest), repository=self.repository, headers={"Content-Length": "0"}
        )
        self.finish(self.session.send(request, action=self.action))

    def status(self, location: httpx.URL, *, previous: int) -> tuple[httpx.URL, int]:
        """Ask the registry how much of the upload it has: ``GET <upload URL>`` -> ``Range: 0-N``."""
        request = self.session.build("GET", location, repository=self.repository)
        response = self.session.send(request, action=self.action)
        if not response.is_success:
            raise error_from_response(response, action=self.action)
        offset = _range_end(response.headers.get("Range"), previous=previous)
        new_location = location_of(response, action=self.action, required=False) or location
        return new_location, 0 if offset is None else min(offset, self.size)

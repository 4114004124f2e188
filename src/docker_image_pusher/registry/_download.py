"""Downloading one blob to a file: resumable, verified while streaming, never held in memory.

Resume contract: if ``path`` already holds N bytes, they are hashed from disk and ``Range: bytes=N-`` is asked.
206 appends; 200 (a server that ignores ranges) truncates and starts over; 416 with a complete file verifies it.
A connection drop leaves the bytes on disk (a retry resumes) and raises a temporary TransferError. A size or
digest mismatch deletes the file and raises a temporary IntegrityError (a retry downloads afresh).

Progress contract: ``on_progress(delta)`` is called as bytes are written. The caller is assumed to count the
N bytes already on disk as done (``min(N, expected_size)``); when those turn out to be unusable and are
thrown away, ``on_progress`` gets that count back as one negative delta. So at any time
``min(N, expected_size) + sum(deltas)`` is the number of good bytes on disk, and at success it equals the size.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from ..errors import IntegrityError, RegistryError, TransferError
from ._errors import error_from_response, error_from_transport
from ._session import Session

__all__ = ["CHUNK_SIZE", "download_blob"]

CHUNK_SIZE = 1024 * 1024
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(?P<start>\d+)-(?P<end>\d+)|\*)\s*/\s*(?P<total>\d+|\*)\s*$")


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes S-E/T`` or ``bytes */T`` -> (S, T); unknown parts are None."""
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None, None
    start = int(match["start"]) if match["start"] is not None else None
    total = int(match["total"]) if match["total"] != "*" else None
    return start, total


def _raw_pieces(response: httpx.Response) -> Iterator[bytes]:
    """The body as sent (as the network delivers it), without decoding any Content-Encoding."""
    if response.is_stream_consumed:
        # Only transports that pre-read bodies (tests) get here; httpx has decoded them already.
        content = response.content
        for start in range(0, len(content), CHUNK_SIZE):
            yield content[start : start + CHUNK_SIZE]
        return
    yield from response.iter_raw()


class _Download:
    def __init__(
        self,
        session: Session,
        url: httpx.URL,
        repository: str,
        digest: str,
        path: Path,
        expected_size: int | None,
        on_progress: Callable[[int], None] | None,
    ) -> None:
        self.session = session
        self.url = url
        self.repository = repository
        self.digest = digest
        self.path = path
        self.expected_size = expected_size
        self.on_progress = on_progress
        self.action = f"download blob {digest} from {repository}"
        self.hasher = hashlib.sha256()
        self.offset = 0
        self.credited = 0  # what the caller counts as on disk (see the module docstring)

    def report(self, delta: int) -> None:
        if delta and self.on_progress is not None:
            self.credited += delta
            self.on_progress(delta)

    def discard(self) -> None:
        """Forget the bytes on disk (and take back the progress reported for them)."""
        self.path.unlink(missing_ok=True)
        self.hasher = hashlib.sha256()
        self.offset = 0
        if self.credited:
            self.report(-self.credited)

    def load_partial(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        cap = self.expected_size if self.expected_size is not None else size
        self.credited = min(size, cap)
        if self.expected_size is not None and size > self.expected_size:
            self.discard()
            return
        with self.path.open("rb") as f:
            while chunk := f.read(CHUNK_SIZE):
                self.hasher.update(chunk)
                self.offset += len(chunk)

    def matches(self) -> bool:
        size_ok = self.expected_size is None or self.offset == self.expected_size
        return size_ok and f"sha256:{self.hasher.hexdigest()}" == self.digest

    def fail_integrity(self, what: str) -> IntegrityError:
        self.discard()
        return IntegrityError(
            f"blob {self.digest} from {self.repository}: {what}; the download was discarded", temporary=True
        )

    def finish_existing(self) -> int:
        with self.path.open("rb") as f:
            os.fsync(f.fileno())
        return self.offset

    def run(self) -> int:
        self.load_partial()
        for _ in range(2):  # a second round only after an unusable partial file was discarded
            if self.offset and self.offset == self.expected_size:
                if self.matches():
                    return self.finish_existing()
                self.discard()
            result = self.attempt()
            if result is not None:
                return result
        raise RegistryError(f"cannot {self.action}: the registry does not serve the blob consistently")

    def attempt(self) -> int | None:
        headers = {"Accept-Encoding": "identity"}  # blobs are compressed already; never let anything decode them
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
        request = self.session.build("GET", self.url, repository=self.repository, headers=headers)
        with self.session.stream(request, action=self.action) as response:
            status = response.status_code
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            if status == 416 and self.offset:
                if (total is None or total == self.offset) and self.matches():
                    return self.finish_existing()
                self.discard()
                return None
            if status == 206 and self.offset:
                if start != self.offset:
                    self.discard()
                    return None
                if total is not None and self.expected_size is not None and total != self.expected_size:
                    raise self.fail_integrity(f"the registry says it has {total} bytes, expected {self.expected_size}")
                mode = "ab"
            elif status == 200:
                if self.offset:
                    self.discard()  # the server ignored the range: start over
                mode = "wb"
            else:
                raise error_from_response(response, action=self.action)
            length = response.headers.get("Content-Length", "")
            if self.expected_size is not None and length.isdigit() and self.offset + int(length) > self.expected_size:
                raise self.fail_integrity(
                    f"the registry announces {self.offset + int(length)} bytes, expected {self.expected_size}"
                )
            return self.stream(response, mode)

    def stream(self, response: httpx.Response, mode: str) -> int:
        unreported = 0  # progress is reported per ~1 MiB, not per network read
        with self.path.open(mode) as f:
            try:
                for piece in _raw_pieces(response):
                    if self.expected_size is not None and self.offset + len(piece) > self.expected_size:
                        f.close()
                        raise self.fail_integrity(f"the registry sent more than {self.expected_size} bytes")
                    f.write(piece)
                    self.hasher.update(piece)
                    self.offset += len(piece)
                    unreported += len(piece)
                    if unreported >= CHUNK_SIZE:
                        self.report(unreported)
                        unreported = 0
            except httpx.HTTPError as exc:
                # Keep what arrived: the next attempt resumes from it.
                self.report(unreported)
                raise error_from_transport(exc, action=self.action, url=self.url) from exc
            self.report(unreported)
            if self.expected_size is not None and self.offset < self.expected_size:
                # The body ended early without a network error (a close-delimited body): keep it, resume later.
                raise TransferError(
                    f"cannot {self.action}: the connection ended after {self.offset} of {self.expected_size} bytes",
                    temporary=True,
                )
            if not self.matches():
                f.close()
                raise self.fail_integrity(f"the content has digest sha256:{self.hasher.hexdigest()}")
            f.flush()
            os.fsync(f.fileno())
        return self.offset


def download_blob(
    session: Session,
    url: httpx.URL,
    repository: str,
    digest: str,
    path: Path,
    *,
    expected_size: int | None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    return _Download(session, url, repository, digest, path, expected_size, on_progress).run()

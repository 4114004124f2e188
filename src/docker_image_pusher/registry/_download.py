"""Downloading one blob to a file: resumable, verified while streaming, never held in memory.

Resume contract: if ``path`` already holds N bytes, they are hashed from disk and ``Range: bytes=N-`` is asked.
206 appends; 200 (a server that ignores ranges) truncates and starts over; 416 with a complete file verifies it.
A connection drop leaves the bytes on disk (a retry resumes) and raises a temporary TransferError. A size or
digest mismatch deletes the file and raises a temporary IntegrityError (a retry downloads afresh).

Progress contract: ``on_progress(delta)`` is called as bytes are written. The caller is assumed to count the
N bytes already on disk as done (``min(N, expected_size)``); when those turn out to be unusable and are
thrown away, ``on_progress`` gets that count back as one negative delta. So at any time
``min(N, expected_size) + sum(deltas)`` is the number of good bytes on disk, and at success it equals the size.

Speed (bench/download_micro.py): per network read, httpx/httpcore/h11 allocate and copy 64 KiB several times
over, which caps a download at ~450 MiB/s even on loopback. So a big body of known length on a plain or TLS
socket is read straight from the socket into a few reused 1 MiB buffers (the connection is then closed, not
reused); the SHA-256 runs in a worker thread a few buffers behind the reads and writes (hashlib releases the
GIL); and the file is fsynced in the background as it grows, so the final fsync does not wait for all of it.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import httpx

try:  # httpcore's network stream that is a socket, plain TCP or TLS (a private name: without it, no direct reads)
    from httpcore._backends.sync import SyncStream
except ImportError:  # pragma: no cover
    SyncStream = None  # type: ignore[assignment,misc]

from ..cache import open_created
from ..errors import IntegrityError, RegistryError, TransferError
from ._errors import error_from_response, error_from_transport
from ._session import Session

__all__ = ["CHUNK_SIZE", "download_blob"]

CHUNK_SIZE = 1024 * 1024
# Bodies at least this big are read straight from the socket (closing the connection afterwards: a new one
# costs little next to such a transfer); smaller ones go through httpx and keep the connection alive.
DIRECT_MIN_SIZE = 16 * CHUNK_SIZE
# The ring of CHUNK_SIZE buffers a direct read cycles through: the hashing may lag up to BUFFERS - 1 pieces behind.
BUFFERS = 3
SYNC_EVERY = 32 * CHUNK_SIZE  # start writing to disk during the download, not all in the final fsync
# Progress goes out per CHUNK_SIZE, or at least this often on a slow link: the concurrency controller measures
# throughput in windows of a few hundred ms, which 1 MiB steps at a few MiB/s per connection would quantise.
REPORT_EVERY = 0.05
_MIN_PIECE = 64 * 1024  # a slow link's direct read hands on what it has after REPORT_EVERY, at least this much
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(?P<start>\d+)-(?P<end>\d+)|\*)\s*/\s*(?P<total>\d+|\*)\s*$")


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes S-E/T`` or ``bytes */T`` -> (S, T); unknown parts are None."""
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None, None
    start = int(match["start"]) if match["start"] is not None else None
    total = int(match["total"]) if match["total"] != "*" else None
    return start, total


def _raw_pieces(response: httpx.Response) -> Iterator[bytes | memoryview]:
    """The body as sent (as the network delivers it), without decoding any Content-Encoding.

    A piece may be a view into a reused buffer, overwritten when the BUFFERS-th next piece is asked for.
    """
    if response.is_stream_consumed:
        # Only transports that pre-read bodies (tests) get here; httpx has decoded them already.
        content = response.content
        for start in range(0, len(content), CHUNK_SIZE):
            yield content[start : start + CHUNK_SIZE]
        return
    sock = _body_socket(response)
    pieces = response.iter_raw()
    if sock is None:
        yield from pieces
        return
    # h11 may hold the start of the body (read with the headers): its first piece hands over all of that. Then h11
    # is left mid-body, so when the response is closed httpcore closes the connection instead of reusing it.
    first = next(pieces, b"")
    yield first
    timeout = response.request.extensions.get("timeout", {}).get("read")
    yield from _socket_pieces(sock, int(response.headers["Content-Length"]) - len(first), timeout, response)


def _body_socket(response: httpx.Response) -> socket.socket | None:
    """The socket to read the rest of a big HTTP/1.1 body of known length from, if that is safe."""
    stream = response.extensions.get("network_stream")
    length = response.headers.get("Content-Length", "")
    # A SyncStream is a socket, plain or TLS (not e.g. TLS inside TLS through an HTTPS proxy, where the socket is
    # the outer connection); HTTP/2 shares its socket between streams; chunked bodies have framing in them.
    if (
        SyncStream is None
        or not isinstance(stream, SyncStream)
        or response.http_version != "HTTP/1.1"
        or "Transfer-Encoding" in response.headers
        or not length.isdigit()
        or int(length) < DIRECT_MIN_SIZE
    ):
        return None
    sock = stream.get_extra_info("socket")
    return sock if isinstance(sock, socket.socket) else None


def _socket_pieces(
    sock: socket.socket, remaining: int, timeout: float | None, response: httpx.Response
) -> Iterator[memoryview]:
    """``remaining`` bytes from ``sock`` in pieces of up to CHUNK_SIZE, cycling through BUFFERS buffers.

    Bytes that arrived before a failure are yielded before the (httpx) error is raised.
    """
    buffers = [memoryview(bytearray(CHUNK_SIZE)) for _ in range(BUFFERS)]
    sock.settimeout(timeout)
    turn = 0
    while remaining:
        buffer = buffers[turn][: min(CHUNK_SIZE, remaining)]
        turn = (turn + 1) % BUFFERS
        filled, error = _fill(sock, buffer, response)
        remaining -= filled
        if filled:
            yield buffer[:filled]
        if error is not None:
            raise error


def _fill(sock: socket.socket, buffer: memoryview, response: httpx.Response) -> tuple[int, httpx.HTTPError | None]:
    """Receive into ``buffer``, all of it or what came within REPORT_EVERY (if at least _MIN_PIECE): the number
    of bytes received, and the error that stopped it early."""
    filled = 0
    deadline = time.monotonic() + REPORT_EVERY
    try:
        while filled < len(buffer):
            received = sock.recv_into(buffer[filled:])
            if not received:
                message = "peer closed connection without sending complete message body"
                return filled, httpx.RemoteProtocolError(message, request=response.request)
            filled += received
            if filled >= _MIN_PIECE and time.monotonic() >= deadline:
                break
    except TimeoutError as exc:
        return filled, httpx.ReadTimeout(str(exc) or "timed out", request=response.request)
    except OSError as exc:
        return filled, httpx.ReadError(str(exc) or type(exc).__name__, request=response.request)
    return filled, None


class _Sink:
    """Where the body goes: written to the file at once, hashed in a worker thread up to BUFFERS - 1 pieces
    behind (hashlib releases the GIL, so hashing overlaps with receiving and writing the next pieces), and
    fsynced in the background every SYNC_EVERY bytes, so that writing to disk overlaps with the transfer too.

    A piece must stay unchanged until BUFFERS - 1 more ``write`` calls have returned. Small pieces (httpx's
    64 KiB network reads) are hashed at once: handing them to the worker would cost more than it saves.
    """

    def __init__(self, path: Path, mode: str, hasher: hashlib._Hash) -> None:
        self.file = open_created(path, mode)  # a new partial file gets the run's mode (cache/_modes.py)
        self.hasher = hasher
        self.hasher_thread = ThreadPoolExecutor(1, thread_name_prefix="sha256")  # one thread: pieces stay in order
        self.fsync_thread = ThreadPoolExecutor(1, thread_name_prefix="fsync")
        self.hashing: deque[Future[None]] = deque()
        self.syncing: Future[None] | None = None
        self.unsynced = 0

    def write(self, piece: bytes | memoryview) -> None:
        self.file.write(piece)
        if len(piece) < CHUNK_SIZE // 2:
            self.wait_hashed()
            self.hasher.update(piece)
        else:
            while len(self.hashing) >= BUFFERS - 1:
                self.hashing.popleft().result()
            self.hashing.append(self.hasher_thread.submit(self.hasher.update, piece))
        self.unsynced += len(piece)
        if self.unsynced >= SYNC_EVERY and (self.syncing is None or self.syncing.done()):
            if self.syncing is not None:
                self.syncing.result()  # an error must not go unseen: the next fsync might not report it again
            self.file.flush()
            self.syncing = self.fsync_thread.submit(os.fsync, self.file.fileno())
            self.unsynced = 0

    def wait_hashed(self) -> None:
        """Until every piece written so far is hashed."""
        while self.hashing:
            self.hashing.popleft().result()

    def sync(self) -> None:
        """Until everything written so far is on disk."""
        if self.syncing is not None:
            self.syncing.result()
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.hasher_thread.shutdown(wait=True)
        self.fsync_thread.shutdown(wait=True)  # never fsync a closed (or reused) file descriptor
        self.file.close()

    def __enter__(self) -> _Sink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


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
        unreported = 0  # progress is reported per ~1 MiB (or REPORT_EVERY), not per network read
        reported_at = time.monotonic()
        with _Sink(self.path, mode, self.hasher) as sink:
            try:
                for piece in _raw_pieces(response):
                    if self.expected_size is not None and self.offset + len(piece) > self.expected_size:
                        sink.close()
                        raise self.fail_integrity(f"the registry sent more than {self.expected_size} bytes")
                    sink.write(piece)
                    self.offset += len(piece)
                    unreported += len(piece)
                    if unreported >= CHUNK_SIZE or time.monotonic() - reported_at >= REPORT_EVERY:
                        self.report(unreported)
                        unreported, reported_at = 0, time.monotonic()
            except httpx.HTTPError as exc:
                # Keep what arrived: the next attempt resumes from it.
                self.report(unreported)
                raise error_from_transport(exc, action=self.action, url=self.url) from exc
            sink.wait_hashed()
            self.report(unreported)
            if self.expected_size is not None and self.offset < self.expected_size:
                # The body ended early without a network error (a close-delimited body): keep it, resume later.
                raise TransferError(
                    f"cannot {self.action}: the connection ended after {self.offset} of {self.expected_size} bytes",
                    temporary=True,
                )
            if not self.matches():
                sink.close()
                raise self.fail_integrity(f"the content has digest sha256:{self.hasher.hexdigest()}")
            sink.sync()
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

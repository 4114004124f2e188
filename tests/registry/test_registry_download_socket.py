# mypy: allow-untyped-defs, allow-untyped-calls, allow-incomplete-defs
"""download_blob over real sockets: the direct socket reading of big bodies, the hashing thread, background fsync.

The fake registry (conftest) sits behind httpx.MockTransport, which has no socket; these tests use a small
HTTP/1.1 server on 127.0.0.1 instead (plain or TLS), with knobs to cut or stall the body.
"""

import hashlib
import os
import re
import socket
import ssl
import threading

import httpx
import pytest
from rig.certs import make_server_certs

from docker_image_pusher.errors import IntegrityError, TransferError
from docker_image_pusher.registry import RegistryClient, _client, _download

MIB = 1024 * 1024
BLOB = os.urandom(5 * MIB + 4321)
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
PATH = f"/v2/team/app/blobs/{DIGEST}"


class BlobServer:
    """Serves ``GET /v2/`` and ``GET PATH`` (with ``Range: bytes=N-``) over HTTP/1.1 keep-alive connections."""

    def __init__(self, blob: bytes, tls: ssl.SSLContext | None = None) -> None:
        self.blob = blob
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # accept() wakes up to see `stop`
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.ranges: list[str | None] = []
        self.with_headers = 1000  # body bytes sent in the same write as the headers (so h11 buffers them)
        self.cut_after: int | None = None  # send this many body bytes, then close the connection (once)
        self.stall_after: int | None = None  # send this many body bytes, then go quiet (once)
        self.chunked = False
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.accept, daemon=True)]
        self.threads[0].start()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=5)

    def accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            self.connections += 1
            thread = threading.Thread(target=self.serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            reader = conn.makefile("rb")
            while not self.stop.is_set():
                request_line = reader.readline()
                if not request_line:
                    return
                headers = {}
                while (line := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                if not self.respond(conn, request_line.split()[1].decode(), headers.get("range")):
                    return
        except OSError:
            pass
        finally:
            conn.close()

    def respond(self, conn: socket.socket, path: str, range_header: str | None) -> bool:
        """Sends one response; False when the connection is to be dropped."""
        if path == "/v2/":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            return True
        self.ranges.append(range_header)
        start = int(re.fullmatch(r"bytes=(\d+)-", range_header)[1]) if range_header else 0  # type: ignore[index]
        body = self.blob[start:]
        head = "HTTP/1.1 206 Partial Content\r\n" if start else "HTTP/1.1 200 OK\r\n"
        if start:
            head += f"Content-Range: bytes {start}-{len(self.blob) - 1}/{len(self.blob)}\r\n"
        if self.chunked:
            conn.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
            for i in range(0, len(body), 100_000):
                piece = body[i : i + 100_000]
                conn.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            conn.sendall(b"0\r\n\r\n")
            return True
        cut, self.cut_after = self.cut_after, None
        stall, self.stall_after = self.stall_after, None
        end = len(body) if cut is None and stall is None else (cut if cut is not None else stall)
        assert end is not None
        conn.sendall((head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body[: self.with_headers])
        conn.sendall(body[self.with_headers : end])
        if stall is not None:
            self.stop.wait(30)
        return cut is None and stall is None


@pytest.fixture
def small_limits(monkeypatch):
    """The direct path and the background fsync for a blob of a few MiB."""
    monkeypatch.setattr(_download, "DIRECT_MIN_SIZE", MIB)
    monkeypatch.setattr(_download, "SYNC_EVERY", MIB)


@pytest.fixture
def direct_reads(monkeypatch):
    """How many bodies were read straight from the socket."""
    calls = []
    original = _download._socket_pieces

    def spy(*args, **kwargs):
        calls.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(_download, "_socket_pieces", spy)
    return calls


@pytest.fixture
def server():
    blob_server = BlobServer(BLOB)
    yield blob_server
    blob_server.close()


@pytest.fixture
def tls_server(tmp_path):
    certs = make_server_certs(tmp_path / "tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    blob_server = BlobServer(BLOB, tls=context)
    blob_server.ca_cert = certs.ca_cert  # type: ignore[attr-defined]
    yield blob_server
    blob_server.close()


def download(client, path, progress=None):
    return client.download_blob("team/app", DIGEST, path, expected_size=len(BLOB), on_progress=progress)


def test_a_big_body_is_read_straight_from_the_socket(server, small_limits, direct_reads, tmp_path, monkeypatch):
    fsyncs = []
    real_fsync = os.fsync

    def fsync(fd):
        fsyncs.append(threading.current_thread().name)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    progress: list[int] = []
    with RegistryClient(f"http://127.0.0.1:{server.port}") as client:
        assert download(client, tmp_path / "blob", progress.append) == len(BLOB)
        assert (tmp_path / "blob").read_bytes() == BLOB
        # h11 handed over what came with the headers (and maybe a little more, up to its 64 KiB read)
        [direct] = direct_reads
        assert len(BLOB) - 64 * 1024 <= direct <= len(BLOB) - server.with_headers
        assert sum(progress) == len(BLOB) and all(0 < d <= MIB + 64 * 1024 for d in progress) and len(progress) >= 5
        assert fsyncs[-1] == threading.current_thread().name and any(n.startswith("fsync") for n in fsyncs)
        # The connection is not reused after a direct read (h11 did not see the body end): a new one each time.
        assert server.connections == 1
        assert download(client, tmp_path / "again") == len(BLOB)
        assert server.connections == 2


def test_a_big_body_over_tls(tls_server, small_limits, direct_reads, tmp_path):
    url = f"https://127.0.0.1:{tls_server.port}"
    with RegistryClient(url, verify=str(tls_server.ca_cert)) as client:
        assert download(client, tmp_path / "blob") == len(BLOB)
    assert (tmp_path / "blob").read_bytes() == BLOB
    assert len(direct_reads) == 1


def test_a_small_body_goes_through_httpx_and_keeps_the_connection(server, direct_reads, tmp_path):
    with RegistryClient(f"http://127.0.0.1:{server.port}") as client:
        download(client, tmp_path / "one")
        download(client, tmp_path / "two")
    assert (tmp_path / "two").read_bytes() == BLOB
    assert direct_reads == [] and server.connections == 1


def test_a_chunked_body_goes_through_httpx(server, small_limits, direct_reads, tmp_path):
    server.chunked = True
    with RegistryClient(f"http://127.0.0.1:{server.port}") as client:
        download(client, tmp_path / "blob")
    assert (tmp_path / "blob").read_bytes() == BLOB
    assert direct_reads == []


def test_a_drop_keeps_every_byte_that_arrived_and_a_retry_resumes(server, small_limits, direct_reads, tmp_path):
    cut = 2 * MIB + 777  # in the middle of a buffer
    server.cut_after = cut
    path = tmp_path / "blob"
    progress: list[int] = []
    with RegistryClient(f"http://127.0.0.1:{server.port}") as client:
        with pytest.raises(TransferError, match="network error") as info:
            download(client, path, progress.append)
        assert info.value.temporary and not isinstance(info.value, IntegrityError)
        assert path.read_bytes() == BLOB[:cut] and sum(progress) == cut
        assert download(client, path, progress.append) == len(BLOB)
    assert path.read_bytes() == BLOB and sum(progress) == len(BLOB)
    assert server.ranges == [None, f"bytes={cut}-"]
    assert len(direct_reads) == 2


def test_a_stalled_body_times_out_and_keeps_the_bytes(server, small_limits, tmp_path, monkeypatch):
    monkeypatch.setattr(_client, "TIMEOUT", httpx.Timeout(2.0, read=0.3))
    server.stall_after = MIB + 5
    path = tmp_path / "blob"
    with (
        RegistryClient(f"http://127.0.0.1:{server.port}") as client,
        pytest.raises(TransferError, match="read timeout") as info,
    ):
        download(client, path)
    assert info.value.temporary
    assert path.read_bytes() == BLOB[: MIB + 5]


def test_wrong_bytes_read_from_the_socket_are_discarded(small_limits, direct_reads, tmp_path):
    wrong = BlobServer(bytes(len(BLOB)))
    try:
        with RegistryClient(f"http://127.0.0.1:{wrong.port}") as client, pytest.raises(IntegrityError):
            download(client, tmp_path / "blob")
    finally:
        wrong.close()
    assert not (tmp_path / "blob").exists()
    assert len(direct_reads) == 1

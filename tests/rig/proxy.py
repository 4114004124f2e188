"""A TCP proxy on 127.0.0.1 in front of a registry (or any TCP server), for throttling and fault tests.

It relays bytes, nothing more: TLS passes through untouched, and since clients send `Host: <proxy address>`,
the registry's Location headers (built from Host) point back at the proxy. It runs an asyncio loop in one
background thread; every knob can be changed while it runs, from any thread:

    with TcpProxy(registry) as proxy:           # registry: RunningRegistry or "127.0.0.1:PORT"
        proxy.rate_limit = 1 << 20              # each connection, each direction: 1 MiB/s
        proxy.total_rate_limit = 4 << 20        # all connections together, each direction
        proxy.latency = 0.2                     # seconds before a new connection relays anything
        proxy.cut_after_bytes(100_000)          # the next connection to send 100 kB server->client is reset
        proxy.cut_after_bytes(100_000, connections=None)  # ... every such connection, until clear_cut()
        proxy.stall(2.0)                        # relay nothing for 2 s (stall(None): until resume())
        pull(f"{proxy.host}/repo:tag")          # or proxy.url
        assert proxy.connections_accepted == 1 and proxy.bytes_to_client > 0

Byte counts are per direction: "to_client" is server->client (downloads), "to_server" is client->server.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import math
import socket
import struct
import termios
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from rig.net import LOOPBACK, HasHost, LoopbackFront, split_upstream

__all__ = ["CutMode", "ProxyStats", "TcpProxy", "start_proxy"]

CutMode = Literal["reset", "close"]
_MAX_CHUNK = 64 * 1024
_SLICE = 0.02  # longest uninterrupted sleep, so knob changes and stop() take effect quickly
_TO_SERVER, _TO_CLIENT = 0, 1


@dataclass(frozen=True)
class ProxyStats:
    connections_accepted: int
    active_connections: int
    bytes_to_server: int
    bytes_to_client: int
    cuts: int
    upstream_failures: int


@dataclass
class _Cut:
    after: int
    remaining: float  # connections still to cut; math.inf for all
    mode: CutMode
    direction: int = _TO_CLIENT


class _Bucket:
    """Pacing at `rate` bytes/s: each chunk reserves the next free slot of len/rate seconds (no burst credit)."""

    def __init__(self) -> None:
        self.next_free = 0.0
        self.generation = -1

    def reserve(self, size: int, rate: float, now: float, generation: int) -> float:
        if generation != self.generation:  # the rate changed: forget slots reserved at the old one
            self.generation, self.next_free = generation, now
        start = max(now, self.next_free)
        self.next_free = start + size / rate
        return self.next_free


@dataclass(eq=False)
class _Connection:
    number: int
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    relayed: list[int] = field(default_factory=lambda: [0, 0])
    buckets: tuple[_Bucket, _Bucket] = field(default_factory=lambda: (_Bucket(), _Bucket()))
    cut: bool = False


class TcpProxy(LoopbackFront):
    """TCP proxy 127.0.0.1:`port` (free port if None) -> `upstream`, in a background thread. See module doc."""

    def __init__(
        self,
        upstream: str | HasHost,
        *,
        port: int | None = None,
        rate_limit: float | None = None,
        total_rate_limit: float | None = None,
        latency: float = 0.0,
    ) -> None:
        self.upstream_host, self.upstream_port = split_upstream(upstream)
        self._requested_port = port or 0
        self.port = 0
        self._rate_limit = rate_limit
        self._total_rate_limit = total_rate_limit
        self._generation = 0  # bumped by every rate change
        self.latency = latency
        self._cut: _Cut | None = None
        self._stall_until = 0.0
        self._total_buckets = (_Bucket(), _Bucket())
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._reset_counters()

    # -- knobs ----------------------------------------------------------------------------------------------

    @property
    def rate_limit(self) -> float | None:
        """Bytes/s for each connection, in each direction separately; None = unlimited."""
        return self._rate_limit

    @rate_limit.setter
    def rate_limit(self, value: float | None) -> None:
        self._rate_limit = _check_rate(value)
        self._generation += 1

    @property
    def total_rate_limit(self) -> float | None:
        """Bytes/s summed over all connections, in each direction separately; None = unlimited."""
        return self._total_rate_limit

    @total_rate_limit.setter
    def total_rate_limit(self, value: float | None) -> None:
        self._total_rate_limit = _check_rate(value)
        self._generation += 1

    def cut_after_bytes(
        self, n: int, *, connections: int | None = 1, mode: CutMode = "reset", to_server: bool = False
    ) -> None:
        """Cut the next `connections` connections (None: all, until clear_cut()) that reach `n` bytes server->client
        (client->server with to_server=True: an upload broken mid-body).

        A connection's count starts when it is accepted (keep-alive: it includes earlier responses). It relays
        exactly `n` bytes server->client, then: mode "reset" waits (up to 1 s) for them to leave the kernel
        send queue and sends a TCP RST ("connection reset by peer"); mode "close" sends a FIN (premature EOF).
        The upstream side is closed too. Open connections are subject to a new cut as well.
        """
        if n < 0 or (connections is not None and connections < 1):
            raise ValueError("cut_after_bytes needs n >= 0 and connections >= 1 (or None)")
        direction = _TO_SERVER if to_server else _TO_CLIENT
        self._cut = _Cut(n, math.inf if connections is None else connections, mode, direction)

    def clear_cut(self) -> None:
        self._cut = None

    @property
    def cuts_pending(self) -> float:
        """Connections still to be cut (math.inf for "all", 0 when none are armed)."""
        cut = self._cut
        return cut.remaining if cut else 0

    def stall(self, seconds: float | None) -> None:
        """Relay nothing (either direction, any connection) for `seconds` from now; None: until resume().

        New connections are still accepted (the kernel does that anyway) but stay silent.
        """
        self._stall_until = math.inf if seconds is None else time.monotonic() + seconds

    def resume(self) -> None:
        self._stall_until = 0.0

    def clear_faults(self) -> None:
        """No rate limits, latency, cut or stall (counters are kept)."""
        self.rate_limit = None
        self.total_rate_limit = None
        self.latency = 0.0
        self.clear_cut()
        self.resume()

    def drop_connections(self) -> int:
        """Abort (RST) every open connection now; returns how many there were."""
        loop = self._loop
        if loop is None:
            return 0
        return asyncio.run_coroutine_threadsafe(self._drop_all(), loop).result(timeout=5)

    # -- counters -------------------------------------------------------------------------------------------

    def _reset_counters(self) -> None:
        self.connections_accepted = 0
        self.bytes_to_server = 0
        self.bytes_to_client = 0
        self.cuts = 0
        self.upstream_failures = 0  # accepted connections whose upstream connect failed

    def reset_counters(self) -> None:
        self._reset_counters()

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    def stats(self) -> ProxyStats:
        return ProxyStats(
            connections_accepted=self.connections_accepted,
            active_connections=self.active_connections,
            bytes_to_server=self.bytes_to_server,
            bytes_to_client=self.bytes_to_client,
            cuts=self.cuts,
            upstream_failures=self.upstream_failures,
        )

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no connection is open (e.g. after a client exits, for final counters)."""
        deadline = time.monotonic() + timeout
        while self._connections and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._connections

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        if self._thread is not None:
            return self
        started = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._accept, LOOPBACK, self._requested_port, limit=_MAX_CHUNK)
                )
                self.port = int(self._server.sockets[0].getsockname()[1])
            except BaseException as err:
                failure.append(err)
                loop.close()
                started.set()
                return
            self._loop = loop
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name="rig-proxy", daemon=True)
        thread.start()
        started.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._thread = thread
        thread.name = f"rig-proxy-{self.port}"
        return self

    def stop(self) -> None:
        """Close the listener and every connection, stop the loop and join its thread. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError, TimeoutError):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None

    # -- loop side ------------------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._drop_all()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _drop_all(self) -> int:
        conns = list(self._connections)
        for conn in conns:
            _abort(conn.client, reset=True)
            if conn.upstream is not None:
                _abort(conn.upstream, reset=True)
        return len(conns)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections_accepted += 1
        conn = _Connection(self.connections_accepted, client_writer)
        self._connections.add(conn)
        try:
            await self._serve(conn, client_reader)
        except asyncio.CancelledError:
            pass
        finally:
            _abort(client_writer, reset=False)
            if conn.upstream is not None:
                _abort(conn.upstream, reset=False)
            self._connections.discard(conn)
            self._tasks.discard(task)

    async def _serve(self, conn: _Connection, client_reader: asyncio.StreamReader) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port, limit=_MAX_CHUNK
            )
        except OSError:
            self.upstream_failures += 1
            _abort(conn.client, reset=True)
            return
        conn.upstream = up_writer
        pumps = [
            asyncio.create_task(self._pump(conn, client_reader, up_writer, _TO_SERVER)),
            asyncio.create_task(self._pump(conn, up_reader, conn.client, _TO_CLIENT)),
        ]
        try:
            pending: set[asyncio.Task[None]] = set(pumps)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if conn.cut or any(t.exception() is not None for t in done):
                    break
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        if conn.cut:
            return
        if any(not t.cancelled() and t.exception() is not None for t in pumps):
            # One side reset or failed: pass the reset on to the other side.
            _abort(conn.client, reset=True)
            _abort(up_writer, reset=True)
        else:  # both sides sent EOF: close after flushing what is buffered
            conn.client.close()
            up_writer.close()

    async def _pump(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: int
    ) -> None:
        while True:
            await self._wait_stall()
            data = await reader.read(self._chunk_size())
            if not data:
                if writer.can_write_eof():
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                return
            cut = self._cut if self._cut is not None and self._cut.direction == direction else None
            cutting = cut is not None and cut.remaining > 0 and conn.relayed[direction] + len(data) >= cut.after
            if cut is not None and cutting:
                data = data[: max(0, cut.after - conn.relayed[direction])]
                cut.remaining -= 1
            if data:
                await self._pace(conn, direction, len(data))
                await self._wait_stall()
                conn.relayed[direction] += len(data)
                if direction == _TO_CLIENT:
                    self.bytes_to_client += len(data)
                else:
                    self.bytes_to_server += len(data)
                writer.write(data)
                await writer.drain()
            if cut is not None and cutting:
                conn.cut = True
                self.cuts += 1
                await self._cut_connection(conn, cut.mode)
                return

    async def _cut_connection(self, conn: _Connection, mode: CutMode) -> None:
        client = conn.client
        if conn.upstream is not None:
            _abort(conn.upstream, reset=False)
        if mode == "close":
            with contextlib.suppress(OSError):
                await client.drain()
            client.close()
            return
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and (client.transport.get_write_buffer_size() or _unsent(client)):
            await asyncio.sleep(0.002)
        _abort(client, reset=True)

    def _chunk_size(self) -> int:
        rates = [r for r in (self._rate_limit, self._total_rate_limit) if r is not None]
        if not rates:
            return _MAX_CHUNK
        return int(max(1, min(_MAX_CHUNK, min(rates) / 50)))  # <= 20 ms worth of bytes per chunk

    async def _pace(self, conn: _Connection, direction: int, size: int) -> None:
        while True:
            generation, rate, total = self._generation, self._rate_limit, self._total_rate_limit
            now = time.monotonic()
            ready = now
            if rate is not None:
                ready = max(ready, conn.buckets[direction].reserve(size, rate, now, generation))
            if total is not None:
                ready = max(ready, self._total_buckets[direction].reserve(size, total, now, generation))
            while time.monotonic() < ready and self._generation == generation:
                await asyncio.sleep(min(_SLICE, ready - time.monotonic()))
            if self._generation == generation:
                return  # otherwise a rate changed while waiting: reserve again at the new rate

    async def _wait_stall(self) -> None:
        while time.monotonic() < self._stall_until:
            await asyncio.sleep(min(_SLICE, max(0.0, self._stall_until - time.monotonic())))


def _check_rate(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise ValueError("a rate limit must be > 0 bytes/s (None for unlimited)")
    return value


def _unsent(writer: asyncio.StreamWriter) -> int:
    """Bytes in the kernel send queue not yet acknowledged by the peer (Linux TIOCOUTQ)."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        out = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    value: int = struct.unpack("i", out)[0]
    return value


def _abort(writer: asyncio.StreamWriter, *, reset: bool) -> None:
    """Close now, discarding buffered data; with reset, make the kernel send RST instead of FIN."""
    transport = writer.transport
    if transport.is_closing() and not reset:
        return
    if reset:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def start_proxy(
    upstream: str | HasHost,
    *,
    port: int | None = None,
    rate_limit: float | None = None,
    total_rate_limit: float | None = None,
    latency: float = 0.0,
) -> TcpProxy:
    """TcpProxy(...).start(): already listening; use it as a context manager or call stop()."""
    proxy = TcpProxy(upstream, port=port, rate_limit=rate_limit, total_rate_limit=total_rate_limit, latency=latency)
    return proxy.start()

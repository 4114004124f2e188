"""Progress as data: small events that transfers publish, and a bus that hands them to listeners.

The transfer code knows nothing of the display: a rich view, plain lines, the Prefect run log and a
stats file are all just subscribers.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..errors import PusherError

__all__ = [
    "Cancelled",
    "ConcurrencyAdjusted",
    "Event",
    "ImageMirrored",
    "ImagePlanned",
    "ProgressBus",
    "TransferFailed",
    "TransferFinished",
    "TransferProgress",
    "TransferStarted",
    "bus",
    "channel",
    "close_channel",
    "open_channel",
    "reporting_failures",
]


class Cancelled(PusherError):
    exit_code = 130


@dataclass(frozen=True)
class ImagePlanned:
    """The set of blobs of one image is known."""

    image: str
    blobs: int
    total_bytes: int
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class TransferStarted:
    digest: str
    total: int
    resumed_from: int = 0
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class TransferProgress:
    digest: str
    delta: int
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class TransferFinished:
    digest: str
    transferred: int
    outcome: str  # "downloaded", "cached", "uploaded", "skipped", "mounted"
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class TransferFailed:
    """One attempt at a blob failed. ``temporary``: a retry may follow (the run fails only if none is left).
    ``status``: the registry's HTTP status when there was one (429 and 5xx are the registry pushing back)."""

    digest: str
    message: str
    temporary: bool = False
    status: int | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class ConcurrencyAdjusted:
    """The concurrency controller changed how many blob transfers may run at once."""

    old: int
    new: int
    reason: str
    manager: str = ""
    strategy: str = ""
    throughput: float = 0.0  # bytes/s measured in the window that led to the decision
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class ImageMirrored:
    """A mirror decided about one image: copied, unchanged, failed (or, in a dry run, "would copy")."""

    source: str
    target: str
    action: str
    reason: str
    digest: str | None = None
    bytes_transferred: int = 0
    at: float = field(default_factory=time.monotonic)


Event = (
    ImagePlanned
    | TransferStarted
    | TransferProgress
    | TransferFinished
    | TransferFailed
    | ConcurrencyAdjusted
    | ImageMirrored
)
Listener = Callable[[Event], None]


class ProgressBus:
    """Thread-safe fan-out of events. A listener that raises is dropped, never the transfer.

    A bus also carries its run's cancellation: transfers call ``raise_if_cancelled`` as bytes move, so a
    run whose client went away stops between two chunks and keeps what it has on disk for a resume.
    """

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise Cancelled("cancelled: the client of this run went away")

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                with self._lock:
                    if listener in self._listeners:
                        self._listeners.remove(listener)


@contextlib.contextmanager
def reporting_failures(bus: ProgressBus, digest: str) -> Iterator[None]:
    """Publish a TransferFailed for an error that leaves this block (the error itself goes on unchanged)."""
    try:
        yield
    except Cancelled:
        raise
    except PusherError as err:
        bus.publish(TransferFailed(digest, err.message, err.temporary, getattr(err, "status", None)))
        raise
    except OSError as err:
        bus.publish(TransferFailed(digest, str(err), temporary=True))
        raise


bus = ProgressBus()
_channels: dict[str, ProgressBus] = {}
_channels_lock = threading.Lock()


def open_channel() -> tuple[str, ProgressBus]:
    """A bus of its own for one run, named by an opaque id that can travel as a task parameter."""
    name = uuid.uuid4().hex
    channel = ProgressBus()
    with _channels_lock:
        _channels[name] = channel
    return name, channel


def close_channel(name: str) -> None:
    with _channels_lock:
        _channels.pop(name, None)


def channel(name: str | None) -> ProgressBus:
    """The bus of a run's channel; the process-wide bus when there is none (or it is already closed)."""
    if name is None:
        return bus
    with _channels_lock:
        return _channels.get(name, bus)

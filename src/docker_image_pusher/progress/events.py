"""Progress as data: small events that transfers publish, and a bus that hands them to listeners.

The transfer code knows nothing of the display: a rich view, plain lines, the Prefect run log and a
stats file are all just subscribers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "Event",
    "ImagePlanned",
    "ProgressBus",
    "TransferFailed",
    "TransferFinished",
    "TransferProgress",
    "TransferStarted",
    "bus",
]


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
    digest: str
    message: str
    at: float = field(default_factory=time.monotonic)


Event = ImagePlanned | TransferStarted | TransferProgress | TransferFinished | TransferFailed
Listener = Callable[[Event], None]


class ProgressBus:
    """Thread-safe fan-out of events. A listener that raises is dropped, never the transfer."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

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


bus = ProgressBus()

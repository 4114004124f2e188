"""The small types every part of the controller shares: what one sample window measured, and a decision.

A manager sees the run only through ``Window``s and answers with a ``Decision`` (or nothing). That keeps
each manager a pure policy that a unit test can drive with made-up windows and a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Adjustment", "Decision", "Manager", "Window"]


@dataclass(frozen=True)
class Window:
    """What happened during one sample interval."""

    start: float  # monotonic seconds
    end: float
    concurrency: int  # the limit in force during the window
    active: int  # transfers holding a permit at the end of the window
    waiting: int  # transfers queued for a permit at the end (0: no demand beyond the limit)
    bytes: int  # bytes moved by all transfers during the window
    throughput: float  # bytes / (end - start)
    errors: int = 0  # failed attempts during the window (any cause)
    throttles: int = 0  # of which the registry pushed back: HTTP 429, 502, 503, 504
    finished: int = 0  # transfers that finished during the window
    per_connection: float = 0.0  # mean bytes/s of one transfer, from transfers finished so far
    rtt: float = 0.0  # mean seconds from a transfer's start to its first byte, from transfers so far
    trend: float = 0.0  # slope of throughput over recent windows (bytes/s per second)
    confidence: float = 0.0  # 0..1: how steady recent throughput is (1: steady enough to act on)
    anomaly: str | None = None  # the monitor's verdict: "throttled", "error burst", "throughput drop" or None
    statuses: tuple[int, ...] = ()  # the HTTP statuses of the throttled attempts, for reasons ("3 x 429")
    streaming: int = 0  # the most transfers moving bytes at the same time during the window (0: not measured)
    peak_active: int = 0  # the most permits held at the same time during the window (0: not measured)

    @property
    def saturated(self) -> bool:
        """Whether demand exceeded the limit, so the throughput says something about the limit."""
        return self.waiting > 0

    @property
    def draining(self) -> bool:
        """More transfers ran than the limit allows: a lowered limit is not in force yet (the transfers that
        started before it are finishing), so the throughput is not yet that of the new level."""
        return self.active > self.concurrency or self.peak_active > self.concurrency


@dataclass(frozen=True)
class Decision:
    concurrency: int
    reason: str


@dataclass(frozen=True)
class Adjustment:
    """One entry of the controller's history (the seed's ConcurrencyAdjustment)."""

    at: float  # wall-clock seconds since the epoch
    old: int
    new: int
    reason: str
    throughput: float = 0.0


class Manager(Protocol):
    """A policy: the starting concurrency, then one optional decision per sample window."""

    name: str

    def initial(self) -> int: ...

    def decide(self, window: Window) -> Decision | None: ...

    def close(self) -> None:
        """The run is over (persist what was learned, if anything)."""
        ...

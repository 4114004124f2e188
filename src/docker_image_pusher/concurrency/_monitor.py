"""The performance monitor: what recent windows say beyond their raw numbers.

It keeps a ring buffer of the last ``size`` windows and derives, for each new window:

* ``trend``: the least-squares slope of throughput against time over the ring (bytes/s per second), with
  its R² in ``r_squared()``;
* ``confidence`` (0..1): how well the throughput at the current level is known. Over the trailing saturated
  windows at the window's concurrency (non-saturated, draining and anomalous ones are skipped; a window at
  another level ends the run), ``rse = (sample standard deviation / mean) / sqrt(n)`` is the relative
  standard error of their mean, and ``confidence = max(0, 1 - rse / 0.2)``: a mean known to +-2% gives 0.9,
  to +-20% or worse gives 0. Fewer than two windows give 0. (Unlike R², this is meaningful on a flat,
  steady series.)
* ``anomaly``: ``"throttled"`` when any attempt in the window met HTTP 429/502/503/504; ``"error burst"``
  when the other failures reach ``max(3, concurrency / 2)``; ``"throughput drop"`` when a saturated window
  falls below both ``mean - 3 sigma`` and ``50% x mean`` of the earlier saturated, normal windows at the same
  or a lower level (at least 3 of them, so a level we lowered ourselves is never compared with higher ones).

It also keeps the last 32 finished transfers (bytes, seconds) for ``per_connection``, the bytes/s of one
transfer while it ran (total bytes / total seconds), and the last 32 times to first byte for ``rtt``.

Not thread-safe: the controller feeds it from one thread at a time.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ._types import Window

__all__ = ["PerformanceMonitor", "Sample", "linear_fit"]

ERROR_SCALE = 0.2  # relative standard error at which confidence reaches 0
ERROR_BURST = 3  # failures (other than throttles) in one window that make a burst, at least
DROP_SIGMAS = 3.0
DROP_RATIO = 0.5
DROP_MIN_SAMPLES = 3
TRANSFER_SAMPLES = 32


@dataclass(frozen=True)
class Sample:
    at: float  # end of the window (monotonic seconds)
    concurrency: int
    throughput: float
    saturated: bool  # demand beyond the limit, and the limit in force (not draining after a decrease)
    anomalous: bool = False


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least squares ``y = slope x + intercept``: (slope, intercept, R²). Degenerate input gives a flat line."""
    n = len(xs)
    if n == 0:
        return 0.0, 0.0, 0.0
    mean_x = sum(xs) / n
    mean_y = sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if n < 2 or sxx <= 0:
        return 0.0, mean_y, 0.0
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    syy = sum((y - mean_y) ** 2 for y in ys)
    slope = sxy / sxx
    r2 = (sxy * sxy) / (sxx * syy) if syy > 0 else 0.0
    return slope, mean_y - slope * mean_x, r2


class PerformanceMonitor:
    """Ring buffer of recent windows with trend, confidence and anomaly detection (see the module doc)."""

    def __init__(self, size: int = 8) -> None:
        if size < 2:
            raise ValueError("the monitor needs room for at least 2 windows")
        self._samples: deque[Sample] = deque(maxlen=size)
        self._dropped_before = False
        self._transfers: deque[tuple[int, float]] = deque(maxlen=TRANSFER_SAMPLES)
        self._rtts: deque[float] = deque(maxlen=TRANSFER_SAMPLES)

    # ---- ring -------------------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._samples.maxlen or 0

    def resize(self, size: int) -> None:
        if size < 2:
            raise ValueError("the monitor needs room for at least 2 windows")
        self._samples = deque(self._samples, maxlen=size)

    @property
    def samples(self) -> tuple[Sample, ...]:
        return tuple(self._samples)

    def observe(self, window: Window) -> Window:
        """Judge ``window`` against the ring, add it, and return it with trend, confidence and anomaly filled."""
        anomaly = self.anomaly(window)
        dropped = anomaly == "throughput drop"
        if dropped and not self._dropped_before:
            # One slow window is a hiccup (a disk flush, a GC pause, a scheduling stall on a busy machine); only
            # a drop that lasts two windows is the link changing under us and worth a back-off.
            anomaly = None
        self._dropped_before = dropped
        self._samples.append(
            Sample(
                window.end,
                window.concurrency,
                window.throughput,
                window.saturated and not window.draining,
                anomaly is not None,
            )
        )
        return dataclasses.replace(window, trend=self.trend(), confidence=self.confidence(), anomaly=anomaly)

    def trend(self) -> float:
        """Slope of throughput over the ring, bytes/s per second."""
        return self._fit()[0]

    def r_squared(self) -> float:
        return self._fit()[2]

    def relative_trend(self) -> float:
        """How much the fitted line rises across the ring, relative to the mean throughput (0.1: +10%)."""
        if len(self._samples) < 2:
            return 0.0
        mean = self.mean()
        span = self._samples[-1].at - self._samples[0].at
        return self.trend() * span / mean if mean > 0 else 0.0

    def mean(self) -> float:
        """Mean throughput over the ring (bytes/s)."""
        return statistics.fmean(s.throughput for s in self._samples) if self._samples else 0.0

    def confidence(self) -> float:
        """How well the throughput at the latest window's level is known (see the module doc)."""
        if not self._samples:
            return 0.0
        level = self._samples[-1].concurrency
        values: list[float] = []
        for sample in reversed(self._samples):
            if sample.concurrency != level:
                break
            if sample.saturated and not sample.anomalous:
                values.append(sample.throughput)
        if len(values) < 2:
            return 0.0
        mean = statistics.fmean(values)
        if mean <= 0:
            return 0.0
        rse = statistics.stdev(values) / mean / math.sqrt(len(values))
        return max(0.0, 1.0 - rse / ERROR_SCALE)

    def anomaly(self, window: Window) -> str | None:
        """The verdict on ``window`` against the windows before it (it is not added)."""
        if window.throttles > 0:
            return "throttled"
        if window.errors - window.throttles >= max(ERROR_BURST, math.ceil(window.concurrency / 2)):
            return "error burst"
        if window.saturated and not window.draining:
            earlier = [
                s.throughput
                for s in self._samples
                if s.saturated and not s.anomalous and s.concurrency <= window.concurrency
            ]
            if len(earlier) >= DROP_MIN_SAMPLES:
                mean = statistics.fmean(earlier)
                sigma = statistics.pstdev(earlier)
                if window.throughput < mean - DROP_SIGMAS * sigma and window.throughput < DROP_RATIO * mean:
                    return "throughput drop"
        return None

    def _fit(self) -> tuple[float, float, float]:
        return linear_fit([s.at for s in self._samples], [s.throughput for s in self._samples])

    # ---- per transfer -----------------------------------------------------------------------------------------

    def add_transfer(self, nbytes: int, elapsed: float) -> None:
        if nbytes > 0 and elapsed > 0:
            self._transfers.append((nbytes, elapsed))

    def add_rtt(self, seconds: float) -> None:
        if seconds >= 0:
            self._rtts.append(seconds)

    @property
    def per_connection(self) -> float:
        """Bytes/s of one transfer while it ran, over the recent finished transfers (0: none yet)."""
        seconds = sum(elapsed for _, elapsed in self._transfers)
        return sum(nbytes for nbytes, _ in self._transfers) / seconds if seconds > 0 else 0.0

    @property
    def rtt(self) -> float:
        """Mean seconds from a transfer's start to its first byte, over the recent transfers (0: none yet)."""
        return statistics.fmean(self._rtts) if self._rtts else 0.0

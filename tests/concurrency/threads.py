"""Helpers for the tests that run real threads through the limiter and the controller."""

from __future__ import annotations

import threading

__all__ = ["Gauge"]


class Gauge:
    """Counts the threads inside a section and remembers the most at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1

    def reset_peak(self) -> None:
        with self._lock:
            self.peak = self.now

"""Pausing before a source registry's pull limit runs out, from its RateLimit headers.

Docker Hub answers every manifest request with ``RateLimit-Limit: 100;w=21600`` and
``RateLimit-Remaining: 76;w=21600`` and counts manifest GETs (not HEADs) against the limit. A mirror
compares digests with HEADs, so only the GET of an image it copies costs; before each such GET it asks
``RateBudget.before_pull``: with more than ``reserve`` pulls left it goes on at once; otherwise it sleeps
until the window resets (``RateLimit-Reset``/``Retry-After`` when sent, else the whole window ``w``, the
only safe guess), or fails with one clear line when that is longer than ``max_wait_seconds``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import TransferError

if TYPE_CHECKING:
    from ..registry import RateLimit, RegistryClient

__all__ = ["RateBudget", "RateLimitExhausted"]


class RateLimitExhausted(TransferError):
    """The source's pull limit is (nearly) spent and it resets later than we are willing to wait."""


class RateBudget:
    def __init__(
        self,
        reserve: int = 2,
        max_wait_seconds: float = 3600.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.reserve = reserve
        self.max_wait_seconds = max_wait_seconds
        self._sleep = sleep
        self._clock = clock
        self._log = log
        self._lock = threading.Lock()  # one pause at a time; the others wait behind it, then re-check
        self._resumed_at = float("-inf")  # readings older than the end of our last pause are stale
        self.paused_seconds = 0.0

    def before_pull(self, client: RegistryClient, what: str, log: Callable[[str], None] | None = None) -> None:
        log = log or self._log
        with self._lock:
            reading = client.rate_limit
            if reading is None or reading.remaining > self.reserve or reading.observed_at <= self._resumed_at:
                return
            wait = self._until_reset(reading)
            shown = f"RateLimit-Remaining {reading.remaining} of {reading.limit} at {client.base_url}"
            if wait is None:
                raise RateLimitExhausted(f"{shown}, and it does not say when the limit resets: stopped before {what}")
            if wait > self.max_wait_seconds:
                raise RateLimitExhausted(
                    f"{shown}: it resets in {wait:.0f} s, longer than max_wait_seconds ({self.max_wait_seconds:.0f}); "
                    f"stopped before {what}"
                )
            if log:
                log(f"pausing {wait:.0f} s before {what}: {shown}")
            self._sleep(wait)
            self.paused_seconds += wait
            self._resumed_at = self._clock()

    def _until_reset(self, reading: RateLimit) -> float | None:
        age = max(0.0, self._clock() - reading.observed_at)
        if reading.reset_seconds is not None:
            return max(0.0, reading.reset_seconds - age)
        if reading.window_seconds is not None:
            return max(0.0, reading.window_seconds - age)
        return None

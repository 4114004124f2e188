"""A resizable, fair permit limiter: at most ``limit`` holders, waiters served first come, first served.

Unlike ``threading.Semaphore`` the limit can change while permits are out: lowering it lets the running
holders finish and hands out no new permit until fewer than the new limit are active; raising it admits
waiters at once. Waiters queue as tickets under one ``threading.Condition``, so a thread that arrives later
never overtakes one that is already waiting, whatever the scheduler does.

A holder can step aside for a while (``released()``, e.g. during a retry's back-off sleep): its permit goes
to the next waiter, and on the way out it queues again *ahead of* the threads that have not started yet
(a started transfer resumes before a new one begins; among such returning holders the order is FIFO).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator

__all__ = ["Limiter"]


class Limiter:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a limit must be at least 1, not {limit}")
        self._cond = threading.Condition(threading.Lock())
        self._limit = limit
        self._active = 0
        self._peak = 0  # the most permits out at once since take_peak()
        self._returning: deque[object] = deque()  # tickets of holders coming back from released()
        self._fresh: deque[object] = deque()  # tickets of everyone else
        self._held = threading.local()  # permits the current thread holds (for released())

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return len(self._returning) + len(self._fresh)

    def take_peak(self) -> int:
        """The most permits that were out at once since the last call (the count starts again from now)."""
        with self._cond:
            peak, self._peak = self._peak, self._active
            return peak

    def set_limit(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a limit must be at least 1, not {limit}")
        with self._cond:
            self._limit = limit
            self._cond.notify_all()

    def acquire(self, timeout: float | None = None, *, resume: bool = False) -> bool:
        """Wait for a permit (at most ``timeout`` seconds); False when the time ran out.

        ``resume``: the caller held a permit before and stepped aside; it goes ahead of fresh waiters.
        """
        with self._cond:
            if self._active < self._limit and not self._returning and not self._fresh:
                self._grant()
                return True
            if timeout is not None and timeout <= 0:
                return False
            ticket = object()
            queue = self._returning if resume else self._fresh
            queue.append(ticket)
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                while not (self._head() is ticket and self._active < self._limit):
                    if deadline is None:
                        self._cond.wait()
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                queue.popleft()
                self._grant()
                return True
            finally:
                if ticket in queue:  # timed out or interrupted: leave the queue
                    queue.remove(ticket)
                self._cond.notify_all()  # the head changed: the next waiter may go

    def release(self) -> None:
        with self._cond:
            if self._active <= 0:
                raise RuntimeError("release() without a permit")
            self._active -= 1
            held = getattr(self._held, "count", 0)
            if held > 0:
                self._held.count = held - 1
            self._cond.notify_all()

    @contextlib.contextmanager
    def permit(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Give up the calling thread's permit for the block and take one again (ahead of fresh waiters) after.

        A thread that holds no permit of this limiter (e.g. the permit was taken on another thread) simply
        runs the block: there is nothing to hand over.
        """
        if getattr(self._held, "count", 0) <= 0:
            yield
            return
        self.release()
        try:
            yield
        finally:
            self.acquire(resume=True)

    def _grant(self) -> None:
        self._active += 1
        self._peak = max(self._peak, self._active)
        self._held.count = getattr(self._held, "count", 0) + 1

    def _head(self) -> object | None:
        if self._returning:
            return self._returning[0]
        return self._fresh[0] if self._fresh else None

"""The concurrency permit a blob-transfer task holds, as seen from inside the task's worker thread.

The controlled task runner takes a permit before a gated task starts and sets it here for the task's thread;
the retry back-off gives it up while it sleeps, so a transfer waiting out a 429 does not count as one that
is running, and the controller's limit stays the number of transfers actually on the wire.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

__all__ = ["GATED_TASKS", "Permits", "holding", "sleep_without_permit"]

# The tasks the controlled task runner gives permits to, by name. Not by a Prefect tag: a tagged task run asks
# the server for the tag's concurrency slots before it starts (even with no limit defined), and that call
# stalled whole runs for ~2 s about every other run on this machine.
GATED_TASKS = frozenset({"pull-blob", "push-blob"})


class Permits(Protocol):
    def acquire(self, timeout: float | None = None) -> bool: ...
    def release(self) -> None: ...
    def released(self) -> contextlib.AbstractContextManager[None]: ...


_held = threading.local()


@contextlib.contextmanager
def holding(permits: Permits) -> Iterator[None]:
    """Take a permit for this thread's task (blocking), give it back when the task is over."""
    permits.acquire()
    _held.permits = permits
    try:
        yield
    finally:
        _held.permits = None
        permits.release()


def sleep_without_permit(seconds: float, sleep: Callable[[float], None] = time.sleep) -> None:
    """Sleep; if this thread holds a permit, free it for the sleep, then take the next free one (ahead of the
    transfers that have not started: this one has work on disk already)."""
    permits: Permits | None = getattr(_held, "permits", None)
    if permits is None:
        sleep(seconds)
        return
    with permits.released():
        sleep(seconds)

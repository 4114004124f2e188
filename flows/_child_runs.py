"""Starting child flow runs from several threads of one parent run: one start at a time.

Prefect numbers the task runs that track a parent's child runs with an unlocked read-modify-write of a
dict that all the parent's threads share (``prefect._internal.engine.dynamic_key_for_task_run``). Two child
runs started at the same moment can draw the same number; the server then hands the second the first's
tracking task run, and Prefect attaches it to the first's flow run (which, if it has finished, the second
never runs again). So the mirror starts its children one at a time: ``starting()`` holds a lock from
before the child run is created until its body says ``started()`` (or the call ends, whichever is first),
and the children then run side by side.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator

__all__ = ["started", "starting"]

_one_start = threading.Lock()
_release: contextvars.ContextVar[_Once | None] = contextvars.ContextVar("child_run_release", default=None)


class _Once:
    def __init__(self) -> None:
        self._done = False
        self._guard = threading.Lock()

    def release(self) -> None:
        with self._guard:
            if not self._done:
                self._done = True
                _one_start.release()


@contextlib.contextmanager
def starting() -> Iterator[None]:
    """Around the call that creates and runs one child flow run."""
    _one_start.acquire()
    once = _Once()
    token = _release.set(once)
    try:
        yield
    finally:
        _release.reset(token)
        once.release()


def started() -> None:
    """First thing in a child flow's body: its run exists, the next one may start."""
    once = _release.get()
    if once is not None:
        once.release()

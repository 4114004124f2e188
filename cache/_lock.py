"""Advisory file locks (flock) between processes sharing one cache.

Locks here save bandwidth and keep index.json updates serial; they are released by the kernel when a
process dies, so a SIGKILLed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from ._modes import create_file, make_dirs

__all__ = ["exclusive_lock", "file_lock", "try_exclusive_lock"]


@contextmanager
def file_lock(path: Path, *, shared: bool = False, blocking: bool = True) -> Iterator[bool]:
    """Lock ``path`` (created if missing), shared or exclusive; yields whether the lock was taken, which is
    always True when ``blocking``."""
    make_dirs(path.parent)
    try:
        fd = create_file(path, os.O_RDWR)
    except FileExistsError:
        fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing), waiting for it."""
    with file_lock(path):
        yield


def try_exclusive_lock(path: Path) -> AbstractContextManager[bool]:
    """Try to lock ``path`` without waiting; yields whether we got it."""
    return file_lock(path, blocking=False)

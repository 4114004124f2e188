"""The permissions of what the cache creates: those the umask of the command that asked for the run gives.

A run in the CLI's own process creates files with mode 0o666 and folders with 0o777, and the process's umask
does the rest, as for any program. The agent is one long-lived process, started by an earlier command with
that command's umask, that runs the commands of several CLI calls at once; os.umask is process-wide, so the
agent never changes it. Instead each run carries its command's umask (``creating_with_umask``, a context
variable: Prefect's task threads inherit it) and what the run creates is first made owner-only, then given
the command's mode with fchmod/chmod: no moment in which a file is more open than the command wanted.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

__all__ = ["create_file", "creating_with_umask", "current_umask", "make_dirs", "open_created", "run_umask"]

_umask: contextvars.ContextVar[int | None] = contextvars.ContextVar("docker_image_pusher_umask", default=None)


def current_umask() -> int:
    """This process's umask, read without changing it (``os.umask`` would, for a moment, for every thread)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    old = os.umask(0o077)  # no /proc: the classic dance, the safe mask in between
    os.umask(old)
    return old


@contextlib.contextmanager
def creating_with_umask(umask: int | None) -> Iterator[None]:
    """What the cache creates in this block (and in threads started from it with its context) gets the modes
    ``umask`` gives; None: the process's umask applies."""
    token = _umask.set(None if umask is None else int(umask) & 0o777)
    try:
        yield
    finally:
        _umask.reset(token)


def run_umask() -> int | None:
    """The umask of the run in progress, or None: the process's own."""
    return _umask.get()


def create_file(path: Path, flags: int = os.O_WRONLY) -> int:
    """Create ``path`` (it must not exist) and return its descriptor; its mode is the run's."""
    umask = _umask.get()
    fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o666 if umask is None else 0o600)
    if umask is not None:
        try:
            os.fchmod(fd, 0o666 & ~umask)
        except BaseException:
            os.close(fd)
            raise
    return fd


def open_created(path: Path, mode: str) -> BinaryIO:
    """``path.open(mode)`` for "wb" or "ab", creating a missing file with the run's mode."""
    if mode not in ("wb", "ab"):
        raise ValueError(f"open_created: mode {mode!r}")
    if _umask.get() is not None:
        try:
            fd = create_file(path)
        except FileExistsError:
            pass
        else:
            return cast(BinaryIO, os.fdopen(fd, mode))
    return cast(BinaryIO, path.open(mode))


def make_dirs(path: Path) -> None:
    """``path.mkdir(parents=True, exist_ok=True)``; each folder it creates gets the run's mode."""
    umask = _umask.get()
    if umask is None:
        path.mkdir(parents=True, exist_ok=True)
        return
    missing: list[Path] = []
    current = path
    while not current.is_dir() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another run, with the mode of that run
        os.chmod(folder, 0o777 & ~umask)

"""Atomic file writes: a temp file in the same file system, fsync, rename, fsync the folder.

A reader sees either the old file or the new one, never a torn one, even after SIGKILL or a power cut.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "fsync_dir", "publish_file", "umask"]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_file(tmp: Path, dest: Path) -> None:
    """Move a complete, fsynced file into place atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


def atomic_write_bytes(dest: Path, data: bytes, tmp_dir: Path) -> None:
    """Write ``data`` to ``dest`` through a temp file in ``tmp_dir`` (same file system as ``dest``)."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix=".write-", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates files 0600; cache files follow the process's umask like any other file.
        os.chmod(tmp, 0o666 & ~umask())
        publish_file(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def umask() -> int:
    """The process umask, read without changing it (os.umask() would race with other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

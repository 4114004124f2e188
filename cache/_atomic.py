"""Atomic file writes: a temp file in the same file system, fsync, rename, fsync the folder.

A reader sees either the old file or the new one, never a torn one, even after SIGKILL or a power cut.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import BinaryIO

from ._modes import create_file, make_dirs

__all__ = ["atomic_write_bytes", "fsync_dir", "new_temp", "publish_file"]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_file(tmp: Path, dest: Path) -> None:
    """Move a complete, fsynced file into place atomically."""
    make_dirs(dest.parent)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


def new_temp(directory: Path, prefix: str, suffix: str = ".tmp") -> tuple[BinaryIO, Path]:
    """A new, empty file in ``directory`` opened for writing, with the mode the run's umask gives (_modes.py:
    mkstemp's 0600 would survive the rename into place)."""
    make_dirs(directory)
    path = directory / f"{prefix}{uuid.uuid4().hex}{suffix}"
    return os.fdopen(create_file(path), "wb"), path


def atomic_write_bytes(dest: Path, data: bytes, tmp_dir: Path) -> None:
    """Write ``data`` to ``dest`` through a temp file in ``tmp_dir`` (same file system as ``dest``)."""
    f, tmp = new_temp(tmp_dir, ".write-")
    try:
        with f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish_file(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise

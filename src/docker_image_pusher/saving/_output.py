"""The archive file appears whole or not at all: written as a temp file next to it, fsynced, then renamed.

On any failure (a corrupt blob, a full disk, Ctrl-C) the temp file is removed and an older file of the
same name, if there was one, is left as it was.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..cache import fsync_dir, new_temp
from ..errors import UsageError

__all__ = ["atomic_output"]


@contextlib.contextmanager
def atomic_output(out: Path) -> Iterator[BinaryIO]:
    if out.is_dir():
        raise UsageError(f"{out} is a folder: give the path of the tar file to write")
    f, tmp = new_temp(out.parent, f".{out.name}.", ".partial")
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise

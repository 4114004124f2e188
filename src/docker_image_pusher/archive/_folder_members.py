"""The files of an OCI layout folder (or an unpacked docker save) as archive members.

Names are looked up as the index or manifest names them, never listed: a layout can share its blobs
folder with many other images. A symbolic link may point anywhere inside the folder, not outside it; only
regular files are members (a device, fifo or folder under a blob name is refused).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import ArchiveError
from ._members import normalize_name
from ._model import MemberData

__all__ = ["FolderMembers"]


class FolderMembers:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def find(self, name: str) -> MemberData | None:
        name = normalize_name(name)
        path = self.root / name
        if not os.path.lexists(path):
            return None
        try:
            real = path.resolve(strict=True)
        except FileNotFoundError:
            return None
        except (RuntimeError, OSError):
            raise ArchiveError(f"{name[:200]!r} is a link in a loop") from None
        if not real.is_relative_to(self.root):
            raise ArchiveError(f"{name[:200]!r} points outside the folder (to {real})")
        mode = real.stat().st_mode
        if not stat.S_ISREG(mode):
            raise ArchiveError(f"{name[:200]!r} is not a regular file")
        return MemberData(name=name, file=str(real), offset=0, size=real.stat().st_size)

"""The members of a seekable, uncompressed tar: one header scan, every name and link checked up front.

tarfile seeks over each member's data, so the scan reads only headers wherever manifest.json sits (docker
and skopeo write it last). Refused: names that are absolute or contain ``..``, duplicate names, links
(symbolic or hard) that point outside the archive or in a loop, devices, fifos, sparse files, and members
whose data runs past the end of the file (a truncated tar).
"""

from __future__ import annotations

import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArchiveError
from ._members import normalize_name
from ._model import MemberData

__all__ = ["MAX_MEMBERS", "TarMembers"]

MAX_MEMBERS = 200_000  # a docker save of hundreds of images has a few thousand
_MAX_LINK_HOPS = 40  # as Linux's MAXSYMLINKS


@dataclass(frozen=True)
class _Entry:
    kind: str  # "file", "dir", "symlink", "hardlink"
    offset: int = 0
    size: int = 0
    target: str = ""  # normalized name a link points to


class TarMembers:
    def __init__(self, path: Path, display: str | None = None) -> None:
        self.path = path
        self.display = display or str(path)
        self._entries = _scan(path, self.display)
        for name, entry in self._entries.items():
            if entry.kind in ("symlink", "hardlink"):
                self._resolve(name)  # every link is checked, referenced or not

    def names(self) -> list[str]:
        return list(self._entries)

    def find(self, name: str) -> MemberData | None:
        if name not in self._entries:
            return None
        target = self._resolve(name)
        entry = self._entries.get(target)
        if entry is None or entry.kind != "file":
            return None
        return MemberData(name=target, file=str(self.path), offset=entry.offset, size=entry.size)

    def _resolve(self, name: str) -> str:
        """Follow links from ``name`` to a member that is not a link (which may not exist)."""
        seen = [name]
        entry = self._entries.get(name)
        while entry is not None and entry.kind in ("symlink", "hardlink"):
            name = entry.target
            if name in seen or len(seen) > _MAX_LINK_HOPS:
                raise ArchiveError(f"{self.display}: links form a loop: {' -> '.join(seen[:5])} -> {name}")
            seen.append(name)
            entry = self._entries.get(name)
        return name


def _scan(path: Path, display: str) -> dict[str, _Entry]:
    file_size = path.stat().st_size
    entries: dict[str, _Entry] = {}
    try:
        with path.open("rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
            for info in tar:
                if len(entries) >= MAX_MEMBERS:
                    raise ArchiveError(f"{display}: more than {MAX_MEMBERS} members; not an image archive")
                name = normalize_name(info.name, display)
                if not name and info.isdir():
                    continue  # the "./" entry of `tar -C dir .`
                if name in entries or not name:
                    raise ArchiveError(f"{display}: member {info.name[:200]!r} appears twice")
                entries[name] = _entry(info, name, display)
                if info.isfile() and info.offset_data + info.size > file_size:
                    raise ArchiveError(f"{display}: truncated: member {name[:200]!r} runs past the end of the file")
    except (tarfile.TarError, EOFError) as err:
        if "unexpected end of data" in str(err):
            raise ArchiveError(f"{display}: truncated: the tar ends inside a member") from None
        raise ArchiveError(f"{display}: not a tar archive ({err})") from None
    return entries


def _entry(info: tarfile.TarInfo, name: str, display: str) -> _Entry:
    if info.issparse():
        raise ArchiveError(f"{display}: member {name[:200]!r} is a sparse file, which no image archive has")
    if info.isfile():
        return _Entry("file", info.offset_data, info.size)
    if info.isdir():
        return _Entry("dir")
    if info.issym():
        return _Entry("symlink", target=_symlink_target(name, info.linkname, display))
    if info.islnk():
        return _Entry("hardlink", target=_link_target(info.linkname, name, display))
    kind = "device" if info.ischr() or info.isblk() else "fifo" if info.isfifo() else f"type {info.type!r}"
    raise ArchiveError(f"{display}: member {name[:200]!r} is a {kind}, which no image archive has")


def _symlink_target(name: str, linkname: str, display: str) -> str:
    if linkname.startswith("/"):
        raise ArchiveError(f"{display}: link {name[:200]!r} points outside the archive (to {linkname[:200]!r})")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), linkname))
    if joined == ".." or joined.startswith("../"):
        raise ArchiveError(f"{display}: link {name[:200]!r} points outside the archive (to {linkname[:200]!r})")
    return _link_target(joined, name, display)


def _link_target(linkname: str, name: str, display: str) -> str:
    try:
        return normalize_name(linkname, display)
    except ArchiveError:
        raise ArchiveError(
            f"{display}: link {name[:200]!r} points outside the archive (to {linkname[:200]!r})"
        ) from None

"""Members of an archive by name.

Two sources implement ``MemberSource``: a tar (TarMembers) and a folder (FolderMembers). Both answer
``find(name)`` with where the bytes are after following links, or None when there is no such member.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import ArchiveError
from ._model import MemberData

__all__ = ["MemberSource", "MissingMemberError", "normalize_name", "require"]


class MemberSource(Protocol):
    def find(self, name: str) -> MemberData | None: ...


def normalize_name(name: str, where: str = "archive") -> str:
    """``./a//b`` -> ``a/b``. An absolute name or one with a ``..`` component is refused: it points outside."""
    if name.startswith("/"):
        raise ArchiveError(f"{where}: member name {name[:200]!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{where}: member name {name[:200]!r} points outside the archive ('..')")
    return "/".join(parts)


class MissingMemberError(ArchiveError):
    """A manifest names a member the archive does not have."""


def require(members: MemberSource, name: str, what: str) -> MemberData:
    """The member ``name`` (as a manifest names it), or MissingMemberError saying who named it."""
    found = members.find(normalize_name(name, what))
    if found is None:
        raise MissingMemberError(f"{what} names {name[:200]!r}, which is not in the archive")
    return found

"""Reading a member's bytes without trusting the sizes the archive claims.

Small members (JSON) are read whole only after their size is checked against a limit; blobs are read
through a BoundedReader, which stops at the member's end and calls a file that ends early an ArchiveError.
"""

from __future__ import annotations

import io
import json
from typing import Any, BinaryIO

from ..errors import ArchiveError
from ._model import MemberData

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_MANIFEST_BYTES",
    "BoundedReader",
    "parse_json",
    "read_all",
    "read_head",
    "read_json",
    "read_member",
]

MAX_JSON_BYTES = 16 * 1024 * 1024  # manifest.json, index.json, configs
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # an image manifest or index, as registries and the cache limit them


class BoundedReader(io.RawIOBase):
    """Exactly ``data.size`` bytes of a member; a file that ends early is an ArchiveError, not a short blob."""

    def __init__(self, data: MemberData) -> None:
        super().__init__()
        self._name = data.name
        self._left = data.size
        self._file: BinaryIO = open(data.file, "rb", buffering=0)  # noqa: SIM115  (closed by close())
        try:
            self._file.seek(data.offset)
        except BaseException:
            self._file.close()
            raise

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left == 0:
            return b""
        want = self._left if size < 0 else min(size, self._left)
        chunk = self._file.read(want)
        if not chunk:
            raise ArchiveError(f"{self._name}: the archive ends {self._left} bytes before this member does")
        self._left -= len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        if hasattr(self, "_file"):
            self._file.close()
        super().close()


def read_member(data: MemberData, limit: int, what: str) -> bytes:
    """A small member whole. Its size is checked first, so a huge one is never read into memory."""
    if data.size > limit:
        raise ArchiveError(f"{what} ({data.name}) is {data.size} bytes, over the {limit} byte limit")
    return read_all(data)


def read_all(data: MemberData) -> bytes:
    parts: list[bytes] = []
    with BoundedReader(data) as reader:
        while chunk := reader.read():
            parts.append(chunk)
    return b"".join(parts)


def read_head(data: MemberData, count: int = 4) -> bytes:
    with BoundedReader(data) as reader:
        return reader.read(min(count, data.size))


def read_json(data: MemberData, what: str, limit: int = MAX_JSON_BYTES) -> Any:
    return parse_json(read_member(data, limit, what), what)


def parse_json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ArchiveError(f"{what} is not valid JSON") from None

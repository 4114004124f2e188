"""The diff_id of a gzip layer (sha256 of its decompressed bytes), computed from the compressed bytes as
they stream past, so a docker-archive's compressed layers are checked against the config in the same pass
that copies them. Inflating costs about as much CPU as hashing the output; a bounded output size per call
keeps a gzip bomb from taking memory.
"""

from __future__ import annotations

import hashlib
import zlib

from ..errors import ArchiveError

__all__ = ["GzipDiffId"]

_OUT_CHUNK = 1 << 20


class GzipDiffId:
    def __init__(self, name: str) -> None:
        self._name = name
        self._inflater = zlib.decompressobj(wbits=31)
        self._sha = hashlib.sha256()

    def update(self, data: bytes) -> None:
        try:
            while data:
                if self._inflater.eof:  # a next gzip member, or zero padding after the last one
                    data = data.lstrip(b"\0")
                    if not data:
                        return
                    self._inflater = zlib.decompressobj(wbits=31)
                data = self._inflate(data)
        except zlib.error as err:
            raise ArchiveError(f"layer {self._name} is not a valid gzip stream ({err})") from None

    def _inflate(self, data: bytes) -> bytes:
        """Inflate ``data`` and all the output it gives; returns the input left after the end of a member."""
        while True:
            out = self._inflater.decompress(data, _OUT_CHUNK)
            self._sha.update(out)
            if self._inflater.eof:
                return self._inflater.unused_data
            data = self._inflater.unconsumed_tail
            if not data and len(out) < _OUT_CHUNK:
                return b""

    def digest(self) -> str:
        if not self._inflater.eof:
            raise ArchiveError(f"layer {self._name}: its gzip stream ends early")
        return "sha256:" + self._sha.hexdigest()

"""What a scan of an archive finds: where each member's bytes are, and the images those members make up."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

__all__ = ["ArchiveBlob", "ArchiveImage", "ArchiveIndex", "ImageName", "MemberData", "StoredManifest"]


@dataclass(frozen=True)
class MemberData:
    """``size`` bytes at ``offset`` in ``file``: a member of a tar (links resolved), or a file of a layout folder."""

    name: str  # the member's name in the archive, for messages
    file: str  # the tar, its decompressed copy, or the file itself in a folder
    offset: int
    size: int


@dataclass(frozen=True)
class ArchiveBlob:
    """A config or a layer to copy from the archive into the cache."""

    data: MemberData
    media_type: str
    is_config: bool
    compression: str = "none"  # "gzip", "zstd" or "none", from the first bytes
    digest: str | None = None  # known before reading: from a descriptor, a content-addressed name or a diff_id
    diff_id: str | None = None  # sha256 of the decompressed bytes, checked while copying (docker-archive layers)

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def key(self) -> str:
        """Names this blob within one extract: its digest, or its member name while the digest is unknown."""
        return self.digest or f"member:{self.data.name}"


@dataclass(frozen=True)
class StoredManifest:
    """A manifest or index read from the archive, its digest already checked against its descriptor."""

    digest: str
    media_type: str
    raw: bytes
    platform: str | None = None  # a child of an index: os/arch[/variant]
    config_digest: str | None = None  # an image manifest's config

    @property
    def size(self) -> int:
        return len(self.raw)


@dataclass(frozen=True)
class ImageName:
    """A name the archive gives an image. ``repository`` is None when the archive gives only a tag."""

    repository: str | None
    tag: str

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}" if self.repository else self.tag


@dataclass(frozen=True)
class ArchiveImage:
    """One image of an archive.

    ``manifest`` is None for a classic docker-archive image: its manifest is synthesized once the digests of
    its layers are known (a compressed layer's digest is only known after reading it). ``blobs`` are in
    manifest order (config first, then layers; each child of an index in turn) and may repeat.
    """

    id: str  # the manifest digest, or for a docker-archive image its config digest (docker's image ID)
    names: tuple[ImageName, ...]
    blobs: tuple[ArchiveBlob, ...]
    manifest: StoredManifest | None = None
    children: tuple[StoredManifest, ...] = ()
    manifest_type: str | None = None  # the media type to synthesize, when ``manifest`` is None
    note: str | None = None

    @property
    def full_names(self) -> tuple[ImageName, ...]:
        return tuple(n for n in self.names if n.repository)

    @property
    def bare_tags(self) -> tuple[str, ...]:
        return tuple(n.tag for n in self.names if not n.repository)

    def __str__(self) -> str:
        return ", ".join(str(n) for n in self.names) or f"untagged image {self.id}"


@dataclass(frozen=True)
class ArchiveIndex:
    """The validated content of an archive. ``temp_file``: a decompressed copy of a .tar.gz, for ``discard``."""

    source: str  # the archive as the user named it, made absolute
    format: str  # "docker-archive", "docker-archive+oci", "oci-archive", "oci-layout" (a folder), ...
    images: tuple[ArchiveImage, ...]
    temp_file: str | None = None

    def discard(self) -> None:
        if self.temp_file:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp_file)

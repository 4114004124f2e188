"""What index.json records about one cached image.

index.json maps "{repository}/{reference}" to an entry. Paths are relative to the cache root so a
cache folder can be moved or copied as a whole.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["BlobRecord", "ImageEntry", "ManifestRecord", "entry_key"]


def entry_key(repository: str, reference: str) -> str:
    return f"{repository}/{reference}"


@dataclass(frozen=True)
class BlobRecord:
    digest: str
    size: int
    path: str
    is_config: bool
    compressed: bool
    media_type: str


@dataclass(frozen=True)
class ManifestRecord:
    """A manifest stored by content (the index itself, or a child manifest of an index)."""

    digest: str
    size: int
    media_type: str
    path: str
    platform: str | None = None
    config_digest: str | None = None


@dataclass(frozen=True)
class ImageEntry:
    repository: str
    reference: str
    manifest_path: str
    manifest_digest: str
    media_type: str
    config_digest: str | None  # None for a multi-platform index; see manifests[].config_digest
    blobs: dict[str, BlobRecord]
    registry: str | None = None
    platforms: list[str] = field(default_factory=list)
    manifests: dict[str, ManifestRecord] = field(default_factory=dict)
    source: str | None = None
    created_at: str | None = None

    @property
    def key(self) -> str:
        return entry_key(self.repository, self.reference)

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blobs.values()) + sum(m.size for m in self.manifests.values())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ImageEntry:
        data = dict(obj)
        data["blobs"] = {k: BlobRecord(**v) for k, v in (obj.get("blobs") or {}).items()}
        data["manifests"] = {k: ManifestRecord(**v) for k, v in (obj.get("manifests") or {}).items()}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

"""What the client returns: small frozen values."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FetchedManifest", "ManifestHead"]


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest exactly as the registry served it. ``digest`` is the sha256 of ``raw``."""

    raw: bytes
    media_type: str
    digest: str


@dataclass(frozen=True)
class ManifestHead:
    """What a HEAD on a manifest says. ``digest`` is None if the registry sent no Docker-Content-Digest
    (and the reference was a tag); ``size`` is None without a Content-Length."""

    digest: str | None
    media_type: str
    size: int | None

"""Manifests and indexes as pure functions over their raw bytes.

We never re-serialise a manifest: digests are computed on the bytes as received, and those bytes are
what the cache keeps and what a push sends back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from . import media_types as mt
from .errors import IntegrityError, UsageError
from .reference import is_digest

__all__ = [
    "MAX_LAYERS",
    "Descriptor",
    "ImageIndex",
    "ImageManifest",
    "Platform",
    "parse_manifest",
    "parse_platform",
    "sha256_digest",
]


# Layers per image manifest. Each layer is a blob task and, when run, an overlay mount: overlayfs stacks at
# most ~128 lower layers (docker's "max depth exceeded"), so no runnable image comes near 1000, while a
# hostile manifest of 10,000+ tiny descriptors (still under the 4 MiB manifest limit) would plan 10,000 tasks.
MAX_LAYERS = 1000


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def matches(self, wanted: Platform) -> bool:
        """``linux/arm64`` matches ``linux/arm64/v8``; a wanted variant must match exactly."""
        if (self.os, self.architecture) != (wanted.os, wanted.architecture):
            return False
        return wanted.variant is None or wanted.variant == self.variant


def parse_platform(text: str) -> Platform:
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(f"invalid platform {text!r}: expected OS/ARCH or OS/ARCH/VARIANT, e.g. linux/arm64")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Descriptor:
        if not isinstance(obj, dict):
            raise IntegrityError(f"{where}: descriptor is not an object")
        digest, size, media_type = obj.get("digest"), obj.get("size"), obj.get("mediaType", "")
        if not isinstance(digest, str) or not is_digest(digest):
            raise IntegrityError(f"{where}: unsupported or malformed digest {str(digest)[:80]!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise IntegrityError(f"{where}: descriptor {digest} has an invalid size")
        if not isinstance(media_type, str):
            raise IntegrityError(f"{where}: descriptor {digest} has an invalid mediaType")
        platform = None
        p = obj.get("platform")
        if isinstance(p, dict) and isinstance(p.get("os"), str) and isinstance(p.get("architecture"), str):
            variant = p.get("variant")
            platform = Platform(p["os"], p["architecture"], variant if isinstance(variant, str) else None)
        return cls(media_type=media_type, digest=digest, size=size, platform=platform)


@dataclass(frozen=True)
class ImageManifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        return (self.config, *self.layers)


@dataclass(frozen=True)
class ImageIndex:
    media_type: str
    manifests: tuple[Descriptor, ...] = field(default_factory=tuple)

    def select(self, platforms: list[Platform]) -> tuple[Descriptor, ...]:
        """The child manifests for the wanted platforms (all when none is asked for)."""
        children = tuple(d for d in self.manifests if d.media_type in mt.MANIFEST_TYPES or not d.media_type)
        if not platforms:
            return children
        chosen = tuple(d for d in children if d.platform and any(d.platform.matches(w) for w in platforms))
        missing = [str(w) for w in platforms if not any(d.platform and d.platform.matches(w) for d in children)]
        if missing:
            have = ", ".join(sorted({str(d.platform) for d in children if d.platform})) or "none"
            raise UsageError(f"platform {', '.join(missing)} not in the image (it has: {have})")
        return chosen


def _load(raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[..." nested too deep
        raise IntegrityError("manifest is not valid JSON") from None
    if not isinstance(obj, dict):
        raise IntegrityError("manifest is not a JSON object")
    return obj


def parse_manifest(raw: bytes, media_type: str | None = None) -> ImageManifest | ImageIndex:
    """Parse an image manifest or an index. ``media_type`` (e.g. Content-Type) is used when the body has none."""
    obj = _load(raw)
    body_type = obj.get("mediaType")
    kind = body_type if isinstance(body_type, str) and body_type else (media_type or "")
    if obj.get("schemaVersion") == 1:
        raise IntegrityError("schema 1 manifests are not supported (deprecated since 2017)")
    if kind in mt.INDEX_TYPES or (not kind and "manifests" in obj):
        items = obj.get("manifests")
        if not isinstance(items, list):
            raise IntegrityError("index has no manifests list")
        kind = kind or mt.OCI_INDEX
        return ImageIndex(kind, tuple(Descriptor.from_json(d, "index") for d in items))
    if kind in mt.MANIFEST_TYPES or (not kind and "config" in obj):
        layers = obj.get("layers")
        if not isinstance(layers, list):
            raise IntegrityError("manifest has no layers list")
        if len(layers) > MAX_LAYERS:
            raise IntegrityError(f"manifest has {len(layers)} layers, more than the {MAX_LAYERS} allowed")
        config = Descriptor.from_json(obj.get("config"), "manifest config")
        return ImageManifest(
            kind or mt.OCI_MANIFEST, config, tuple(Descriptor.from_json(d, "manifest layer") for d in layers)
        )
    raise IntegrityError(f"unsupported manifest media type {kind[:100]!r}")

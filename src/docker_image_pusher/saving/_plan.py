"""What a save writes: the images (names, top descriptors, the platform manifest.json describes) and the blobs.

Everything is read from the cached manifests themselves, not from index.json's blob list: the archive must
hold exactly what its manifests point to. Manifests are small and are checked against their digest here;
configs and layers are checked while they are streamed into the tar.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from .. import media_types as mt
from ..cache import Cache, CacheError, ImageEntry
from ..errors import IntegrityError, NotFoundError, UsageError
from ..manifest import Descriptor, ImageIndex, ImageManifest, parse_manifest, sha256_digest
from ._names import ImageName, image_name

__all__ = ["BlobKind", "PlannedBlob", "PlannedImage", "SaveFormat", "SavePlan", "check_format", "plan_save"]

SaveFormat = Literal["docker", "oci"]
BlobKind = Literal["manifest", "config", "layer"]
_KIND_ORDER: dict[BlobKind, int] = {"manifest": 0, "config": 0, "layer": 1}
_MAX_LISTED = 20


@dataclass(frozen=True)
class PlannedBlob:
    digest: str
    size: int
    kind: BlobKind
    path: str  # the cached file

    @property
    def member(self) -> str:
        """Its name in the archive."""
        return "blobs/sha256/" + self.digest.removeprefix("sha256:")


@dataclass(frozen=True)
class PlannedImage:
    key: str
    name: ImageName
    media_type: str  # of the top manifest or index
    digest: str
    size: int
    config: str  # manifest.json's Config: the image's, or the chosen platform's for an index
    layers: tuple[str, ...]  # manifest.json's Layers, in order (a digest may repeat)
    platform: str | None = None  # the platform manifest.json describes, for an index
    platforms: tuple[str, ...] = ()  # every platform of an index
    blobs: tuple[str, ...] = ()  # every blob this image needs, manifests included


@dataclass(frozen=True)
class SavePlan:
    format: SaveFormat
    images: tuple[PlannedImage, ...]  # sorted by key
    blobs: tuple[PlannedBlob, ...]  # in archive order: manifests and configs, then layers; each by digest
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_bytes(self) -> int:
        return sum(b.size for b in self.blobs)


def check_format(value: str) -> SaveFormat:
    if value == "docker":
        return "docker"
    if value == "oci":
        return "oci"
    raise UsageError(f"unknown archive format {value!r}: expected docker or oci")


def _not_found(key: str, cache: Cache, cached: list[str]) -> NotFoundError:
    if not cached:
        return NotFoundError(f"{key} is not in the cache at {cache.root} (the cache is empty)")
    listed = ", ".join(cached[:_MAX_LISTED])
    more = f" and {len(cached) - _MAX_LISTED} more" if len(cached) > _MAX_LISTED else ""
    return NotFoundError(f"{key} is not in the cache at {cache.root}; cached: {listed}{more}")


class _Collector:
    """Reads the manifests of one entry, checking that every blob they name is in the cache."""

    def __init__(self, cache: Cache, entry: ImageEntry) -> None:
        self.cache = cache
        self.key = entry.key
        self.blobs: dict[str, PlannedBlob] = {}
        self.notes: list[str] = []

    def blob(self, digest: str, size: int, kind: BlobKind) -> str:
        path = self.cache.blob_path(digest)
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            raise CacheError(
                f"cache entry {self.key} is incomplete: {kind} {digest} is missing (pull the image again)"
            ) from None
        if actual != size:
            raise IntegrityError(f"cache entry {self.key}: {kind} {digest} has {actual} bytes, expected {size}")
        self.blobs.setdefault(digest, PlannedBlob(digest, size, kind, os.fspath(path)))
        return digest

    def manifest(self, digest: str, size: int | None) -> ImageManifest | ImageIndex:
        """The parsed manifest stored under ``digest``, after checking its bytes."""
        try:
            raw = self.cache.read_blob(digest)
        except FileNotFoundError:
            raise CacheError(
                f"cache entry {self.key} is incomplete: manifest {digest} is missing (pull the image again)"
            ) from None
        if sha256_digest(raw) != digest or (size is not None and len(raw) != size):
            raise IntegrityError(f"cache entry {self.key}: manifest {digest} does not match its digest (corrupt)")
        path = os.fspath(self.cache.blob_path(digest))
        self.blobs.setdefault(digest, PlannedBlob(digest, len(raw), "manifest", path))
        try:
            return parse_manifest(raw)
        except IntegrityError as err:
            raise IntegrityError(f"cache entry {self.key}: manifest {digest}: {err.message}") from None

    def image(self, manifest: ImageManifest) -> None:
        self.blob(manifest.config.digest, manifest.config.size, "config")
        for layer in manifest.layers:
            self.blob(layer.digest, layer.size, "layer")


def _pick_platform(children: list[tuple[Descriptor, ImageManifest]]) -> tuple[Descriptor, ImageManifest]:
    """linux/amd64 if the index has it, else the first child with a known platform, else the first child."""
    for desc, child in children:
        if desc.platform and (desc.platform.os, desc.platform.architecture) == ("linux", "amd64"):
            return desc, child
    known = [c for c in children if c[0].platform and c[0].platform.os != "unknown"]
    return (known or children)[0]


def _plan_entry(cache: Cache, entry: ImageEntry) -> tuple[PlannedImage, _Collector]:
    key, top_digest = entry.key, entry.manifest_digest
    collect = _Collector(cache, entry)
    top = collect.manifest(top_digest, None)
    size = collect.blobs[top_digest].size
    name = image_name(entry.registry, entry.repository, entry.reference)
    if isinstance(top, ImageManifest):
        collect.image(top)
        layers = tuple(d.digest for d in top.layers)
        blobs = tuple(collect.blobs)
        config = top.config.digest
        return PlannedImage(key, name, top.media_type, top_digest, size, config, layers, blobs=blobs), collect
    children: list[tuple[Descriptor, ImageManifest]] = []
    for desc in top.manifests:
        if desc.media_type and desc.media_type not in mt.MANIFEST_TYPES:
            collect.notes.append(f"{entry.key}: index child {desc.digest} ({desc.media_type}) is not saved")
            continue
        child = collect.manifest(desc.digest, desc.size)
        if not isinstance(child, ImageManifest):
            raise IntegrityError(f"cache entry {entry.key}: index child {desc.digest} is not an image manifest")
        collect.image(child)
        children.append((desc, child))
    if not children:
        raise IntegrityError(f"cache entry {entry.key}: the index lists no image manifests")
    desc, chosen = _pick_platform(children)
    image = PlannedImage(
        entry.key,
        name,
        top.media_type,
        entry.manifest_digest,
        size,
        chosen.config.digest,
        tuple(d.digest for d in chosen.layers),
        platform=str(desc.platform) if desc.platform else None,
        platforms=tuple(str(d.platform) for d, _ in children if d.platform),
        blobs=tuple(collect.blobs),
    )
    return image, collect


def plan_save(cache: Cache, keys: list[str], format: SaveFormat) -> SavePlan:
    """The plan for saving the cache entries ``keys`` ("{repository}/{reference}", as in index.json)."""
    if not keys:
        raise UsageError("nothing to save: name at least one cached image")
    entries = cache.entries()
    images: list[PlannedImage] = []
    blobs: dict[str, PlannedBlob] = {}
    notes: list[str] = []
    for key in sorted(set(keys)):
        entry = entries.get(key)
        if entry is None:
            raise _not_found(key, cache, sorted(entries))
        image, collected = _plan_entry(cache, entry)
        images.append(image)
        for digest, blob in collected.blobs.items():
            blobs.setdefault(digest, blob)
        notes += collected.notes
        if format == "docker" and image.platform is not None:
            notes.append(
                f"{key}: manifest.json describes {image.platform} of {len(image.platforms)} platforms "
                "(index.json keeps the whole index)"
            )
    notes += _ref_name_clashes(images)
    ordered = sorted(blobs.values(), key=lambda b: (_KIND_ORDER[b.kind], b.digest))
    return SavePlan(format, tuple(images), tuple(ordered), tuple(notes))


def _ref_name_clashes(images: list[PlannedImage]) -> list[str]:
    by_tag: dict[str, list[str]] = {}
    for image in images:
        if image.name.ref_name:
            by_tag.setdefault(image.name.ref_name, []).append(image.key)
    return [
        f"tag {tag!r} names {len(keys)} images ({', '.join(keys)}): tools that look an image up by "
        "org.opencontainers.image.ref.name (skopeo oci-archive:FILE:TAG) will find only one"
        for tag, keys in by_tag.items()
        if len(keys) > 1
    ]

"""One image as the cache will record it: its manifests and the blobs they need, and the recording itself.

Every way into the cache (pull from a registry, extract from a tar) produces an ImagePlan, stores the
manifests and blobs it lists, and then calls ``record_image`` last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from . import media_types as mt
from .cache import BlobRecord, Cache, ImageEntry, ManifestRecord
from .errors import PusherError
from .manifest import ImageManifest

__all__ = ["BlobJob", "ChildManifest", "ImagePlan", "blob_jobs", "dedup_jobs", "record_image"]


@dataclass(frozen=True)
class BlobJob:
    digest: str
    size: int
    media_type: str
    is_config: bool
    platform: str | None = None  # a config's platform as the index declares it (checked when pulled)


@dataclass(frozen=True)
class ChildManifest:
    digest: str
    size: int
    media_type: str
    platform: str | None
    config_digest: str


@dataclass(frozen=True)
class ImagePlan:
    registry: str | None  # None for an image that came from a file
    repository: str
    reference: str
    manifest_digest: str  # digest of the bytes recorded as the image (may differ from source_digest)
    media_type: str
    source_digest: str  # digest of what the registry served for the reference
    children: tuple[ChildManifest, ...]  # empty for a single-platform manifest
    config_digest: str | None
    blobs: tuple[BlobJob, ...]
    note: str | None = None  # why manifest_digest differs from source_digest, if it does
    source: str | None = None  # where the image came from, when not a registry (e.g. a tar path)
    # (digest, raw) of the manifests a pull fetched, stored by record_image: a pull that fails before then
    # leaves no manifest behind. Empty when the manifests are in the cache already (extract).
    manifests: tuple[tuple[str, bytes], ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(b.size for b in self.blobs)


def blob_jobs(manifest: ImageManifest, platform: str | None = None) -> list[BlobJob]:
    """The config (with the ``platform`` an index declares for this image, if any), then the layers."""
    jobs = [BlobJob(manifest.config.digest, manifest.config.size, manifest.config.media_type, True, platform)]
    jobs += [BlobJob(d.digest, d.size, d.media_type, False) for d in manifest.layers]
    return jobs


def dedup_jobs(jobs: list[BlobJob]) -> tuple[BlobJob, ...]:
    seen: dict[str, BlobJob] = {}
    for job in jobs:
        seen.setdefault(job.digest, job)
    return tuple(seen.values())


def _is_compressed(cache: Cache, digest: str, media_type: str) -> bool:
    with cache.blob_path(digest).open("rb") as f:
        head = f.read(4)
    return mt.compression_from_magic(head) != "none" or media_type.endswith(("gzip", "zstd"))


def _config_platform(cache: Cache, plan: ImagePlan) -> list[str]:
    """os/architecture[/variant] of a single-platform image, from its config (empty if unreadable)."""
    if not plan.config_digest:
        return []
    try:
        config = json.loads(cache.read_blob(plan.config_digest))
    except (ValueError, OSError, PusherError):
        return []
    if not isinstance(config, dict) or not isinstance(config.get("os"), str):
        return []
    parts = [config["os"], config.get("architecture"), config.get("variant")]
    return ["/".join(p for p in parts if isinstance(p, str) and p)]


def record_image(cache: Cache, plan: ImagePlan) -> ImageEntry:
    for digest, manifest in plan.manifests:
        cache.put_blob_bytes(digest, manifest)
    raw = cache.read_blob(plan.manifest_digest)
    manifest_path = cache.put_manifest(plan.repository, plan.reference, raw)
    blobs = {
        b.digest: BlobRecord(
            digest=b.digest,
            size=b.size,
            path=cache.relative(cache.blob_path(b.digest)),
            is_config=b.is_config,
            compressed=False if b.is_config else _is_compressed(cache, b.digest, b.media_type),
            media_type=b.media_type,
        )
        for b in plan.blobs
    }
    manifests = {
        c.digest: ManifestRecord(
            c.digest,
            c.size,
            c.media_type,
            cache.relative(cache.blob_path(c.digest)),
            c.platform or None,
            c.config_digest,
        )
        for c in plan.children
    }
    entry = ImageEntry(
        repository=plan.repository,
        reference=plan.reference,
        manifest_path=cache.relative(manifest_path),
        manifest_digest=plan.manifest_digest,
        media_type=plan.media_type,
        config_digest=plan.config_digest,
        blobs=blobs,
        registry=plan.registry,
        platforms=sorted({c.platform for c in plan.children if c.platform}) or _config_platform(cache, plan),
        manifests=manifests,
        source=plan.source or f"{plan.registry}/{plan.repository}@{plan.source_digest}",
    )
    cache.record(entry)
    return entry

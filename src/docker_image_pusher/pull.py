"""Pulling an image into the cache, as three Prefect-free steps that the pull flow's tasks wrap.

resolve_image  fetch the manifest (and the chosen child manifests of an index), store them by content,
               and list the blobs to fetch
fetch_blob     one blob into the cache: skipped if present, else streamed, verified, resumable
record_image   write manifests/{repository}/{reference} and the index.json entry, last
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import media_types as mt
from .cache import BlobRecord, Cache, ImageEntry, ManifestRecord
from .errors import IntegrityError
from .manifest import ImageIndex, ImageManifest, Platform, parse_manifest, sha256_digest
from .progress.events import ProgressBus, TransferFinished, TransferProgress, TransferStarted

if TYPE_CHECKING:
    from .reference import Reference
    from .registry import RegistryClient

__all__ = ["BlobJob", "BlobOutcome", "ChildManifest", "PullPlan", "fetch_blob", "record_image", "resolve_image"]


@dataclass(frozen=True)
class BlobJob:
    digest: str
    size: int
    media_type: str
    is_config: bool


@dataclass(frozen=True)
class ChildManifest:
    digest: str
    size: int
    media_type: str
    platform: str | None
    config_digest: str


@dataclass(frozen=True)
class PullPlan:
    registry: str
    repository: str
    reference: str
    manifest_digest: str  # digest of the bytes recorded as the image (may differ from source_digest)
    media_type: str
    source_digest: str  # digest of what the registry served for the reference
    children: tuple[ChildManifest, ...]  # empty for a single-platform manifest
    config_digest: str | None
    blobs: tuple[BlobJob, ...]
    note: str | None = None  # why manifest_digest differs from source_digest, if it does

    @property
    def total_bytes(self) -> int:
        return sum(b.size for b in self.blobs)


@dataclass(frozen=True)
class BlobOutcome:
    digest: str
    size: int
    transferred: int
    outcome: str  # "downloaded" or "cached"


def _blob_jobs(manifest: ImageManifest) -> list[BlobJob]:
    jobs = [BlobJob(manifest.config.digest, manifest.config.size, manifest.config.media_type, True)]
    jobs += [BlobJob(d.digest, d.size, d.media_type, False) for d in manifest.layers]
    return jobs


def _dedup(jobs: list[BlobJob]) -> tuple[BlobJob, ...]:
    seen: dict[str, BlobJob] = {}
    for job in jobs:
        seen.setdefault(job.digest, job)
    return tuple(seen.values())


def resolve_image(client: RegistryClient, cache: Cache, ref: Reference, platforms: list[Platform]) -> PullPlan:
    top = client.get_manifest(ref.repository, ref.reference)
    parsed = parse_manifest(top.raw, top.media_type)
    cache.put_blob_bytes(top.digest, top.raw)
    if isinstance(parsed, ImageManifest):
        return PullPlan(
            registry=ref.registry,
            repository=ref.repository,
            reference=ref.reference,
            manifest_digest=top.digest,
            media_type=parsed.media_type,
            source_digest=top.digest,
            children=(),
            config_digest=parsed.config.digest,
            blobs=_dedup(_blob_jobs(parsed)),
        )
    return _resolve_index(client, cache, ref, parsed, top.digest, platforms)


def _resolve_index(
    client: RegistryClient, cache: Cache, ref: Reference, index: ImageIndex, digest: str, platforms: list[Platform]
) -> PullPlan:
    chosen = index.select(platforms)
    if not chosen:
        raise IntegrityError(f"{ref}: the index lists no image manifests")
    children: list[ChildManifest] = []
    jobs: list[BlobJob] = []
    for desc in chosen:
        got = client.get_manifest(ref.repository, desc.digest)
        if len(got.raw) != desc.size:
            raise IntegrityError(
                f"{ref}: child manifest {desc.digest} has {len(got.raw)} bytes, index says {desc.size}"
            )
        child = parse_manifest(got.raw, got.media_type)
        if not isinstance(child, ImageManifest):
            raise IntegrityError(f"{ref}: child {desc.digest} of the index is not an image manifest")
        cache.put_blob_bytes(desc.digest, got.raw)
        children.append(
            ChildManifest(desc.digest, desc.size, got.media_type, str(desc.platform or ""), child.config.digest)
        )
        jobs += _blob_jobs(child)
    base = dict(registry=ref.registry, repository=ref.repository, reference=ref.reference, source_digest=digest)
    if len(chosen) == len(index.select([])):
        return PullPlan(
            **base,
            manifest_digest=digest,
            media_type=index.media_type,
            children=tuple(children),
            config_digest=None,
            blobs=_dedup(jobs),
        )
    if len(children) == 1:
        only = children[0]
        note = f"kept platform {only.platform} only: its manifest {only.digest} is the image, not index {digest}"
        return PullPlan(
            **base,
            manifest_digest=only.digest,
            media_type=only.media_type,
            children=(),
            config_digest=only.config_digest,
            blobs=_dedup(jobs),
            note=note,
        )
    raw = _sub_index(index, {c.digest for c in children})
    sub_digest = sha256_digest(raw)
    cache.put_blob_bytes(sub_digest, raw)
    note = f"kept {len(children)} of {len(index.manifests)} platforms: new index {sub_digest} replaces {digest}"
    return PullPlan(
        **base,
        manifest_digest=sub_digest,
        media_type=index.media_type,
        children=tuple(children),
        config_digest=None,
        blobs=_dedup(jobs),
        note=note,
    )


def _sub_index(index: ImageIndex, keep: set[str]) -> bytes:
    manifests = []
    for d in index.manifests:
        if d.digest in keep:
            item: dict[str, object] = {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
            if d.platform:
                p: dict[str, str] = {"architecture": d.platform.architecture, "os": d.platform.os}
                if d.platform.variant:
                    p["variant"] = d.platform.variant
                item["platform"] = p
            manifests.append(item)
    body = {"schemaVersion": 2, "mediaType": index.media_type, "manifests": manifests}
    return json.dumps(body, indent=2).encode()


def fetch_blob(client: RegistryClient, cache: Cache, repository: str, job: BlobJob, bus: ProgressBus) -> BlobOutcome:
    if cache.has_blob(job.digest, job.size):
        bus.publish(TransferFinished(job.digest, 0, "cached"))
        return BlobOutcome(job.digest, job.size, 0, "cached")
    bus.raise_if_cancelled()
    with cache.partial_blob(job.digest) as partial:
        resumed = partial.stat().st_size if partial.exists() else 0
        bus.publish(TransferStarted(job.digest, job.size, resumed_from=min(resumed, job.size)))

        def progress(delta: int) -> None:
            bus.raise_if_cancelled()
            bus.publish(TransferProgress(job.digest, delta))

        client.download_blob(repository, job.digest, partial, expected_size=job.size, on_progress=progress)
        cache.commit_blob(job.digest, partial, job.size)
    bus.publish(TransferFinished(job.digest, job.size - resumed, "downloaded"))
    return BlobOutcome(job.digest, job.size, job.size - resumed, "downloaded")


def _is_compressed(cache: Cache, digest: str, media_type: str) -> bool:
    with cache.blob_path(digest).open("rb") as f:
        head = f.read(4)
    return mt.compression_from_magic(head) != "none" or media_type.endswith(("gzip", "zstd"))


def record_image(cache: Cache, plan: PullPlan) -> ImageEntry:
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
        platforms=sorted({c.platform for c in plan.children if c.platform}),
        manifests=manifests,
        source=f"{plan.registry}/{plan.repository}@{plan.source_digest}",
    )
    cache.record(entry)
    return entry

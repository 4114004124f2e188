"""Pulling an image into the cache, as Prefect-free steps that the pull flow's tasks wrap.

resolve_image  fetch and check the manifest (and the chosen child manifests of an index), and list the
               blobs to fetch; the plan carries the manifests, which record_image stores last
fetch_blob     one blob into the cache: skipped if present, else streamed, verified, resumable; a config
               is also checked (config_check: JSON, and the platform its index declares) before it is committed
record_image   (image_plan) manifests/{repository}/{reference} and the index.json entry, last
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .cache import Cache
from .config_check import check_config
from .errors import IntegrityError
from .image_plan import BlobJob, ChildManifest, ImagePlan, blob_jobs, dedup_jobs
from .manifest import ImageIndex, ImageManifest, Platform, parse_manifest, sha256_digest
from .progress.events import ProgressBus, TransferFinished, TransferProgress, TransferStarted, reporting_failures

if TYPE_CHECKING:
    from .reference import Reference
    from .registry import RegistryClient

__all__ = ["BlobOutcome", "fetch_blob", "kept_digest", "resolve_image"]


@dataclass(frozen=True)
class BlobOutcome:
    digest: str
    size: int
    transferred: int
    outcome: str  # "downloaded" or "cached"


def resolve_image(client: RegistryClient, cache: Cache, ref: Reference, platforms: list[Platform]) -> ImagePlan:
    """Fetch and check the manifest(s). Nothing is stored here (``cache`` is not used): the plan carries the
    manifests and record_image stores them, so a pull refused on the way (a bad config...) leaves none behind."""
    top = client.get_manifest(ref.repository, ref.reference)
    parsed = parse_manifest(top.raw, top.media_type)
    if isinstance(parsed, ImageManifest):
        return ImagePlan(
            registry=ref.registry,
            repository=ref.repository,
            reference=ref.reference,
            manifest_digest=top.digest,
            media_type=parsed.media_type,
            source_digest=top.digest,
            children=(),
            config_digest=parsed.config.digest,
            blobs=dedup_jobs(blob_jobs(parsed)),
            manifests=((top.digest, top.raw),),
        )
    return _resolve_index(client, ref, parsed, top.digest, top.raw, platforms)


def _resolve_index(
    client: RegistryClient, ref: Reference, index: ImageIndex, digest: str, raw: bytes, platforms: list[Platform]
) -> ImagePlan:
    every = index.select([])
    chosen = index.select(platforms) if platforms else every
    if not chosen:
        raise IntegrityError(f"{ref}: the index lists no image manifests")
    children: list[ChildManifest] = []
    jobs: list[BlobJob] = []
    fetched: list[tuple[str, bytes]] = [(digest, raw)]
    for desc in chosen:
        got = client.get_manifest(ref.repository, desc.digest)
        if len(got.raw) != desc.size:
            raise IntegrityError(
                f"{ref}: child manifest {desc.digest} has {len(got.raw)} bytes, index says {desc.size}"
            )
        child = parse_manifest(got.raw, got.media_type)
        if not isinstance(child, ImageManifest):
            raise IntegrityError(f"{ref}: child {desc.digest} of the index is not an image manifest")
        fetched.append((desc.digest, got.raw))
        platform = str(desc.platform) if desc.platform else None
        children.append(ChildManifest(desc.digest, desc.size, got.media_type, platform or "", child.config.digest))
        jobs += blob_jobs(child, platform)
    base = dict(registry=ref.registry, repository=ref.repository, reference=ref.reference, source_digest=digest)
    if len(chosen) == len(every):
        return ImagePlan(
            **base,
            manifest_digest=digest,
            media_type=index.media_type,
            children=tuple(children),
            config_digest=None,
            blobs=dedup_jobs(jobs),
            manifests=tuple(fetched),
        )
    if len(children) == 1:
        only = children[0]
        note = f"kept platform {only.platform} only: its manifest {only.digest} is the image, not index {digest}"
        return ImagePlan(
            **base,
            manifest_digest=only.digest,
            media_type=only.media_type,
            children=(),
            config_digest=only.config_digest,
            blobs=dedup_jobs(jobs),
            note=note,
            manifests=tuple(fetched),
        )
    sub = _sub_index(index, {c.digest for c in children})
    sub_digest = sha256_digest(sub)
    note = f"kept {len(children)} of {len(index.manifests)} platforms: new index {sub_digest} replaces {digest}"
    return ImagePlan(
        **base,
        manifest_digest=sub_digest,
        media_type=index.media_type,
        children=tuple(children),
        config_digest=None,
        blobs=dedup_jobs(jobs),
        note=note,
        manifests=(*fetched, (sub_digest, sub)),
    )


def kept_digest(raw: bytes, media_type: str, digest: str, platforms: list[Platform]) -> str:
    """The digest a pull of these platforms records for the manifest ``raw`` (whose digest is ``digest``),
    worked out without fetching anything: the manifest itself, its one chosen child, or the sub-index."""
    parsed = parse_manifest(raw, media_type)
    if isinstance(parsed, ImageManifest) or not platforms:
        return digest
    every, chosen = parsed.select([]), parsed.select(platforms)
    if len(chosen) == len(every):
        return digest
    if len(chosen) == 1:
        return chosen[0].digest
    return sha256_digest(_sub_index(parsed, {d.digest for d in chosen}))


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
        if job.is_config:
            check_config(
                job.digest, job.media_type, cache.blob_path(job.digest), job.platform, where=repository, delete=False
            )
        bus.publish(TransferFinished(job.digest, 0, "cached"))
        return BlobOutcome(job.digest, job.size, 0, "cached")
    bus.raise_if_cancelled()
    received = 0  # bytes that came over the network this time (a resume, or a restart, changes it)
    with reporting_failures(bus, job.digest), cache.partial_blob(job.digest) as partial:
        resumed = partial.stat().st_size if partial.exists() else 0
        bus.publish(TransferStarted(job.digest, job.size, resumed_from=min(resumed, job.size)))

        def progress(delta: int) -> None:
            nonlocal received
            bus.raise_if_cancelled()
            received += max(delta, 0)  # a negative delta takes back resumed bytes that were thrown away
            bus.publish(TransferProgress(job.digest, delta))

        client.download_blob(repository, job.digest, partial, expected_size=job.size, on_progress=progress)
        if job.is_config:
            check_config(job.digest, job.media_type, partial, job.platform, where=repository, delete=True)
        cache.commit_blob(job.digest, partial, job.size)
    bus.publish(TransferFinished(job.digest, received, "downloaded"))
    return BlobOutcome(job.digest, job.size, received, "downloaded")

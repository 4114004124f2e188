"""ExtractAndCache as Prefect-free steps that the extract flow's tasks wrap.

plan_extract       scan the archive (every structural check), pick the images and their cache keys, and
                   list each blob once
ingest_blob        (archive) one config or layer from the archive into the cache, verified as it streams
discard_new_blobs  after a failed blob: remove the blobs this extract published that no cache entry uses
record_extracted   store the image's manifests (a docker-archive's is synthesized now that every layer's
                   digest is known), then record_image, last
extract_archive    all of the above in one call, blob after blob
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .archive import (
    ArchiveBlob,
    ArchiveIndex,
    Described,
    IngestedBlob,
    NamedImage,
    StoredManifest,
    ingest_blob,
    scan_archive,
    select_images,
    synthesize_manifest,
)
from .cache import Cache, ImageEntry
from .image_plan import BlobJob, ChildManifest, ImagePlan, dedup_jobs, record_image
from .manifest import sha256_digest
from .progress.events import ImagePlanned, ProgressBus, bus

__all__ = [
    "ExtractPlan",
    "ExtractResult",
    "announce",
    "discard_new_blobs",
    "extract_archive",
    "ingest_blob",
    "plan_extract",
    "record_extracted",
    "summarize",
]


@dataclass(frozen=True)
class ExtractPlan:
    archive: ArchiveIndex
    images: tuple[NamedImage, ...]
    blobs: tuple[ArchiveBlob, ...]  # every blob of every chosen image, once


@dataclass(frozen=True)
class ExtractResult:
    keys: tuple[str, ...]  # "{repository}/{reference}" of each image cached
    blobs: int
    extracted: int  # blobs this extract put in the cache
    cached: int  # blobs the cache had already
    bytes_extracted: int
    notes: tuple[str, ...] = ()


def plan_extract(
    path: str | Path,
    cache: Cache,
    image: str | None = None,
    repository: str | None = None,
    reference: str | None = None,
    *,
    single: bool = False,
) -> ExtractPlan:
    """The caller owns the returned plan's ``archive.discard()`` (it removes a decompressed .tar.gz copy).

    single=True: exactly one image, named by repository/reference only if the archive does not name it."""
    archive = scan_archive(path, work_dir=cache.tmp_dir)
    try:
        images = select_images(archive, image, repository, reference, single=single)
    except BaseException:
        archive.discard()
        raise
    unique = {blob.key: blob for named in images for blob in named.image.blobs}
    return ExtractPlan(archive, images, tuple(unique.values()))


def announce(plan: ExtractPlan, events: ProgressBus) -> None:
    """One ImagePlanned per image, counting a blob shared by several images once."""
    counted: set[str] = set()
    for named in plan.images:
        new = {b.key: b.size for b in named.image.blobs if b.key not in counted}
        counted.update(new)
        events.publish(ImagePlanned(str(named), len(new), sum(new.values())))


def discard_new_blobs(cache: Cache, ingested: Iterable[IngestedBlob]) -> list[str]:
    """Remove the blobs this extract published, unless a cache entry (recorded meanwhile) uses them."""
    used: set[str] = set()
    for entry in cache.entries().values():
        used.update(entry.blobs, entry.manifests, [entry.manifest_digest, entry.config_digest or ""])
    removed = sorted({b.digest for b in ingested if b.outcome == "extracted" and b.digest not in used})
    for digest in removed:
        cache.remove_file(cache.blob_path(digest))
    return removed


def record_extracted(cache: Cache, named: NamedImage, digests: Mapping[str, str], source: str) -> ImageEntry:
    """``digests``: ArchiveBlob.key -> digest, for every blob of the image (IngestedBlob.key/digest)."""
    plan, manifests = image_plan(named, digests, source)
    for manifest in manifests:
        cache.put_blob_bytes(manifest.digest, manifest.raw)
    return record_image(cache, plan)


def image_plan(
    named: NamedImage, digests: Mapping[str, str], source: str
) -> tuple[ImagePlan, tuple[StoredManifest, ...]]:
    image = named.image
    jobs = dedup_jobs([BlobJob(digests[b.key], b.size, b.media_type, b.is_config) for b in image.blobs])
    top = image.manifest or _synthesized(image.blobs, image.manifest_type or "", digests)
    children = tuple(
        ChildManifest(c.digest, c.size, c.media_type, c.platform, c.config_digest or "") for c in image.children
    )
    plan = ImagePlan(
        registry=None,
        repository=named.repository,
        reference=named.reference,
        manifest_digest=top.digest,
        media_type=top.media_type,
        source_digest=image.id if image.manifest else top.digest,
        children=children,
        config_digest=top.config_digest,
        blobs=jobs,
        note=image.note,
        source=source,
    )
    return plan, (top, *image.children)


def _synthesized(blobs: tuple[ArchiveBlob, ...], media_type: str, digests: Mapping[str, str]) -> StoredManifest:
    config, *layers = (Described(b.media_type, b.size, digests[b.key]) for b in blobs)
    raw = synthesize_manifest(media_type, config, layers)
    return StoredManifest(sha256_digest(raw), media_type, raw, config_digest=config.digest)


def summarize(plan: ExtractPlan, ingested: Iterable[IngestedBlob], keys: Iterable[str]) -> ExtractResult:
    done = list(ingested)
    extracted = [b for b in done if b.outcome == "extracted"]
    notes = tuple(dict.fromkeys(n.image.note for n in plan.images if n.image.note))
    return ExtractResult(
        keys=tuple(keys),
        blobs=len(done),
        extracted=len(extracted),
        cached=len(done) - len(extracted),
        bytes_extracted=sum(b.size for b in extracted),
        notes=notes,
    )


def extract_archive(
    path: str | Path,
    cache: Cache,
    image: str | None = None,
    repository: str | None = None,
    reference: str | None = None,
    events: ProgressBus | None = None,
) -> ExtractResult:
    """Everything the extract flow does, in this thread: every blob first, then every image's record."""
    events = events or bus
    plan = plan_extract(path, cache, image, repository, reference)
    try:
        announce(plan, events)
        ingested: list[IngestedBlob] = []
        try:
            for blob in plan.blobs:
                ingested.append(ingest_blob(cache, blob, events))
        except BaseException:
            discard_new_blobs(cache, ingested)
            raise
        digests = {b.key: b.digest for b in ingested}
        keys = [record_extracted(cache, named, digests, plan.archive.source).key for named in plan.images]
        return summarize(plan, ingested, keys)
    finally:
        plan.archive.discard()

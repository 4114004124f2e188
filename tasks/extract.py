"""The extract flow's tasks: thin wrappers over docker_image_pusher.extract. Plain values in, small results out."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from ..archive import ArchiveBlob, IngestedBlob, NamedImage, ingest_blob
from ..cache import Cache
from ..extract import ExtractPlan, announce, discard_new_blobs, plan_extract, record_extracted
from ..progress.events import channel

__all__ = ["discard_extracted_blobs", "extract_blob", "record_extracted_image", "scan_and_plan"]


@task(name="scan-archive", cache_policy=NO_CACHE)
def scan_and_plan(
    path: str,
    cache_dir: str,
    image: str | None = None,
    repository: str | None = None,
    reference: str | None = None,
    progress: str | None = None,
    single: bool = False,
) -> ExtractPlan:
    plan = plan_extract(path, Cache(cache_dir), image, repository, reference, single=single)
    announce(plan, channel(progress))
    logger = get_run_logger()
    logger.info(
        "%s (%s): %d images, %d blobs", plan.archive.source, plan.archive.format, len(plan.images), len(plan.blobs)
    )
    for named in plan.images:
        if named.image.note:
            logger.warning("%s: %s", named, named.image.note)
    return plan


@task(name="extract-blob", cache_policy=NO_CACHE, task_run_name="extract-blob-{blob.key}")
def extract_blob(blob: ArchiveBlob, cache_dir: str, progress: str | None = None) -> IngestedBlob:
    done = ingest_blob(Cache(cache_dir), blob, channel(progress))
    get_run_logger().info("%s %s from %s (%d bytes)", done.outcome, done.digest, blob.data.name, done.size)
    return done


@task(name="discard-new-blobs", cache_policy=NO_CACHE)
def discard_extracted_blobs(ingested: list[IngestedBlob], cache_dir: str) -> list[str]:
    removed = discard_new_blobs(Cache(cache_dir), ingested)
    get_run_logger().warning("a blob failed: removed the %d blobs this extract had added", len(removed))
    return removed


@task(name="record-in-cache", cache_policy=NO_CACHE)
def record_extracted_image(named: NamedImage, digests: dict[str, str], source: str, cache_dir: str) -> str:
    entry = record_extracted(Cache(cache_dir), named, digests, source)
    get_run_logger().info("cached %s as %s (%s)", entry.key, Path(entry.manifest_path), entry.manifest_digest)
    return entry.key

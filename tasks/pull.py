"""The pull flow's tasks: thin wrappers over docker_image_pusher.pull. Plain values in, small results out."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from ..cache import Cache
from ..endpoint import Endpoint, client_for
from ..image_plan import BlobJob, ImagePlan, record_image
from ..manifest import parse_platform
from ..progress.events import ImagePlanned, channel
from ..pull import BlobOutcome, fetch_blob, resolve_image
from ..reference import Reference
from ._retry import DEFAULT_RETRY

__all__ = ["fetch_manifests", "pull_blob", "record_pull"]


@task(name="fetch-manifest", cache_policy=NO_CACHE, **DEFAULT_RETRY)
def fetch_manifests(
    endpoint: Endpoint, ref: Reference, platforms: list[str], cache_dir: str, progress: str | None = None
) -> ImagePlan:
    plan = resolve_image(client_for(endpoint), Cache(cache_dir), ref, [parse_platform(p) for p in platforms])
    channel(progress).publish(ImagePlanned(str(ref), len(plan.blobs), plan.total_bytes))
    logger = get_run_logger()
    logger.info("%s resolved to %s: %d blobs, %d bytes", ref, plan.manifest_digest, len(plan.blobs), plan.total_bytes)
    if plan.note:
        logger.warning("%s", plan.note)
    return plan


@task(name="pull-blob", cache_policy=NO_CACHE, task_run_name="pull-blob-{job.digest}", **DEFAULT_RETRY)
def pull_blob(
    endpoint: Endpoint, repository: str, job: BlobJob, cache_dir: str, progress: str | None = None
) -> BlobOutcome:
    outcome = fetch_blob(client_for(endpoint), Cache(cache_dir), repository, job, channel(progress))
    get_run_logger().info("%s %s (%d bytes)", outcome.outcome, job.digest, job.size)
    return outcome


@task(name="record-in-cache", cache_policy=NO_CACHE)
def record_pull(plan: ImagePlan, cache_dir: str) -> str:
    entry = record_image(Cache(cache_dir), plan)
    get_run_logger().info("cached %s as %s", entry.key, Path(entry.manifest_path))
    return entry.key

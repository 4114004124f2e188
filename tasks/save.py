"""The save flow's tasks: thin wrappers over docker_image_pusher.saving. Plain values in, small results out."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from .. import saving
from ..cache import Cache
from ..progress.events import channel

__all__ = ["plan_save", "write_archive"]


@task(name="plan-save", cache_policy=NO_CACHE)
def plan_save(keys: list[str], cache_dir: str, format: str) -> saving.SavePlan:
    plan = saving.plan_save(Cache(cache_dir), keys, saving.check_format(format))
    logger = get_run_logger()
    count, size = len(plan.blobs), plan.total_bytes
    logger.info("saving %d image(s) as %s: %d blobs, %d bytes", len(plan.images), format, count, size)
    for note in plan.notes:
        logger.warning("%s", note)
    return plan


@task(name="write-archive", cache_policy=NO_CACHE)
def write_archive(plan: saving.SavePlan, out: str, progress: str | None = None) -> saving.SaveResult:
    result = saving.write_archive(plan, Path(out), channel(progress))
    get_run_logger().info("wrote %s (%d bytes) in %.1f s", result.out, result.archive_bytes, result.seconds)
    return result

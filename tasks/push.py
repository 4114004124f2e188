"""The push flow's tasks: thin wrappers over docker_image_pusher.push. Plain values in, small results out."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from ..cache import Cache
from ..endpoint import Endpoint, client_for
from ..progress.events import ImagePlanned, channel
from ..push import PushBlob, PushOutcome, PushPlan, plan_push, push_blob, push_manifests
from ._retry import DEFAULT_RETRY

__all__ = ["plan_image_push", "push_image_blob", "push_image_manifests"]


@task(name="plan-push", cache_policy=NO_CACHE)
def plan_image_push(
    source: str, registry: str, repository: str, cache_dir: str, progress: str | None = None
) -> PushPlan:
    plan = plan_push(Cache(cache_dir), source, registry, repository)
    channel(progress).publish(ImagePlanned(source, len(plan.blobs), plan.total_bytes))
    get_run_logger().info("%s: %d blobs, %d bytes, %d child manifests", source, len(plan.blobs), plan.total_bytes,
                          len(plan.children))  # fmt: skip
    return plan


@task(name="push-blob", cache_policy=NO_CACHE, task_run_name="push-blob-{blob.digest}", **DEFAULT_RETRY)
def push_image_blob(
    endpoint: Endpoint,
    repository: str,
    blob: PushBlob,
    cache_dir: str,
    force: bool = False,
    chunk_size: int | None = None,
    progress: str | None = None,
) -> PushOutcome:
    outcome = push_blob(client_for(endpoint), Cache(cache_dir), repository, blob, channel(progress), force=force,
                        chunk_size=chunk_size)  # fmt: skip
    get_run_logger().info("%s %s (%d bytes)", outcome.outcome, blob.digest, blob.size)
    return outcome


@task(name="push-manifests", cache_policy=NO_CACHE, **DEFAULT_RETRY)
def push_image_manifests(endpoint: Endpoint, repository: str, tag: str, plan: PushPlan, cache_dir: str) -> str:
    digest = push_manifests(client_for(endpoint), Cache(cache_dir), repository, tag, plan)
    get_run_logger().info("pushed %s:%s as %s", repository, tag, digest)
    return digest

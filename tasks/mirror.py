"""The mirror flows' own tasks: thin wrappers over docker_image_pusher.mirror. Plain values in, small results out.

Copying reuses the pull and push tasks (and so the concurrency-gated pull-blob and push-blob)."""

from __future__ import annotations

import threading

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from ..cache import Cache
from ..endpoint import Endpoint, client_for
from ..mirror import RateBudget, ResolvedImage, TagCheck, check_image, compare_tag
from ._retry import DEFAULT_RETRY

__all__ = ["check_mirror_image", "check_mirror_tag", "wait_for_pull_budget"]


@task(name="check-image", cache_policy=NO_CACHE, task_run_name="check-{image.repository}", **DEFAULT_RETRY)
def check_mirror_image(source: Endpoint, destination: Endpoint, image: ResolvedImage, cache_dir: str) -> list[TagCheck]:
    checks = check_image(client_for(source), client_for(destination), Cache(cache_dir), image)
    logger = get_run_logger()
    for c in checks:
        logger.info("%s:%s -> %s: %s (%s)", image.repository, c.tag, image.destination, c.action, c.reason)
    return checks


@task(name="check-tag", cache_policy=NO_CACHE, **DEFAULT_RETRY)
def check_mirror_tag(
    source: Endpoint,
    destination: Endpoint,
    source_repository: str,
    destination_repository: str,
    tag: str,
    platforms: list[str],
    immutable: bool,
    cache_dir: str,
) -> TagCheck:
    return compare_tag(client_for(source), client_for(destination), Cache(cache_dir), source_repository,
                       destination_repository, tag, tuple(platforms), immutable)  # fmt: skip


_budgets: dict[str, RateBudget] = {}  # one per source registry in this process: pauses are shared
_budgets_lock = threading.Lock()


@task(name="wait-for-pull-budget", cache_policy=NO_CACHE)
def wait_for_pull_budget(source: Endpoint, what: str, reserve: int, max_wait_seconds: float) -> None:
    """Before a manifest GET that the source may count: pause if its RateLimit-Remaining is down to reserve."""
    with _budgets_lock:
        budget = _budgets.get(source.host)
        if budget is None or (budget.reserve, budget.max_wait_seconds) != (reserve, max_wait_seconds):
            budget = _budgets[source.host] = RateBudget(reserve, max_wait_seconds)
    budget.before_pull(client_for(source), what, get_run_logger().warning)

"""One image of a mirror, as its own flow run: check -> (pause for the pull limit) -> pull -> push.

The mirror flow runs it as a child flow run in its own process, or hands it to the work pool with
``run_deployment`` so that several workers share a mirror. Its parameters are therefore plain values, and
credentials travel as they do for pull and push (flows/_logins.py): an auth_ref valid in this process only,
or a Secret block name / the environment / docker's config.json where the run happens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from prefect import flow, get_run_logger

from ..cache import Cache, gc_lock
from ..errors import NotFoundError
from ..mirror._spec import DestinationSpec, RateLimitSpec, RegistrySpec
from ..progress.events import ImageMirrored, channel
from ..reference import Reference
from ..tasks._retry import retry_options
from ..tasks.mirror import check_mirror_tag, wait_for_pull_budget
from ._child_runs import started
from ._logins import login
from ._task_runner import ControlledTaskRunner
from .pull import pull_planned, resolve_pull
from .push import push_cached

__all__ = ["ImageCopy", "mirror_image_flow", "read_outcome"]

OUTCOME_PREFIX = "mirror-image: "


@dataclass(frozen=True)
class ImageCopy:
    source: str
    target: str
    action: str  # "copied" or "unchanged"
    reason: str
    digest: str | None
    bytes_transferred: int = 0  # sent to the destination

    def event(self) -> ImageMirrored:
        return ImageMirrored(self.source, self.target, self.action, self.reason, self.digest, self.bytes_transferred)


@flow(
    name="mirror-image",
    flow_run_name="{source_repository}:{tag}",
    persist_result=False,
    validate_parameters=False,
    task_runner=ControlledTaskRunner(),  # type: ignore[arg-type]
)
def mirror_image_flow(
    source: dict[str, Any],
    destination: dict[str, Any],
    source_repository: str,
    destination_repository: str,
    tag: str,
    platforms: list[str] | None = None,
    immutable: bool = False,
    cache_dir: str = ".cache",
    retry_attempts: int = 3,
    rate_limit: dict[str, Any] | None = None,
    upload_limit: str | None = None,
    source_auth_ref: str | None = None,
    destination_auth_ref: str | None = None,
    progress: str | None = None,
) -> ImageCopy:
    """source/destination: the spec's registry sections; upload_limit: a Prefect global concurrency limit
    to hold while pushing (one slot per image), shared by every worker that pushes to that registry."""
    started()  # this run exists: a parent starting several may start the next one
    src, dst = RegistrySpec.model_validate(source), DestinationSpec.model_validate(destination)
    budget = RateLimitSpec.model_validate(rate_limit or {})
    shown_source = f"{src.host}/{source_repository}:{tag}"
    shown_target = f"{dst.host}/{destination_repository}:{tag}"
    with (
        gc_lock(Cache(cache_dir), exclusive=False),
        login(src.host, source_auth_ref, src.credentials_secret, "DOCKER_IMAGE_PUSHER_SOURCE_") as src_ref,
        login(dst.host, destination_auth_ref, dst.credentials_secret, "DOCKER_IMAGE_PUSHER_DESTINATION_") as dst_ref,
    ):
        src_ep, dst_ep = src.endpoint(src_ref), dst.endpoint(dst_ref)
        check_tag = check_mirror_tag.with_options(**retry_options(retry_attempts))
        check = check_tag.submit(src_ep, dst_ep, source_repository, destination_repository, tag,
                                 platforms or [], immutable, cache_dir).result()  # fmt: skip
        if check.action == "failed":
            raise NotFoundError(f"{shown_source}: {check.reason}")
        if check.action == "unchanged":
            return _done(progress, ImageCopy(shown_source, shown_target, "unchanged", check.reason,
                                             check.destination_digest))  # fmt: skip
        wait_for_pull_budget.submit(src_ep, shown_source, budget.reserve, budget.max_wait_seconds).result()
        ref = Reference(src.host, source_repository, tag=tag)
        plan = resolve_pull(src_ep, ref, platforms or [], cache_dir, retry_attempts, progress)
        if plan.manifest_digest == check.destination_digest:  # known only now: a platform subset, not cached
            return _done(progress, ImageCopy(shown_source, shown_target, "unchanged", "same digest",
                                             plan.manifest_digest))  # fmt: skip
        # Recorded in the cache under its digest, not its tag: a concurrent pull of the same tag (another
        # image of the spec with other platforms, a user's pull) cannot swap what this run then pushes.
        by_content = dataclasses.replace(plan, reference=plan.manifest_digest)
        pulled = pull_planned(src_ep, by_content, cache_dir, retry_attempts, progress)
        with _upload_slot(upload_limit):
            pushed = push_cached(dst_ep, pulled.key, destination_repository, tag, cache_dir, retry_attempts,
                                 progress=progress)  # fmt: skip
        return _done(progress, ImageCopy(shown_source, shown_target, "copied", check.reason,
                                         pushed.manifest_digest, pushed.bytes_transferred))  # fmt: skip


def _done(progress: str | None, copy: ImageCopy) -> ImageCopy:
    """The run's final state: Completed with the outcome as its result (for a caller in this process) and,
    as JSON, its message (for a parent that started it as a deployment run elsewhere: read_outcome)."""
    from prefect.states import Completed

    get_run_logger().info("%s -> %s: %s (%s) %s", copy.source, copy.target, copy.action, copy.reason, copy.digest)
    channel(progress).publish(copy.event())
    state: Any = Completed(message=OUTCOME_PREFIX + json.dumps(asdict(copy)), data=copy)
    return state  # type: ignore[no-any-return]  # a flow returning a state ends in it; its caller gets `copy`


def read_outcome(message: str | None) -> ImageCopy | None:
    """The outcome a finished mirror-image run left in its state message, if any."""
    if not message or not message.startswith(OUTCOME_PREFIX):
        return None
    try:
        return ImageCopy(**json.loads(message[len(OUTCOME_PREFIX) :]))
    except (ValueError, TypeError):
        return None


@contextlib.contextmanager
def _upload_slot(name: str | None) -> Iterator[None]:
    if not name:
        yield
        return
    from prefect.concurrency.sync import concurrency

    logger = get_run_logger()
    with concurrency(name, occupy=1, strict=True):
        logger.info("upload slot %s taken", name)
        try:
            yield
        finally:
            logger.info("upload slot %s released", name)

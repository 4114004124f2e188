"""PushFromCacheUsingManifest: authenticate -> one task per blob -> child manifests -> the manifest or index last.

``push_cached`` is the flow's body, run inside a flow run; push-from-tar and the mirror's per-image flow
push through it too.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow
from prefect.futures import wait

from ..cache import Cache, gc_lock
from ..endpoint import DEFAULT_READ_TIMEOUT, Endpoint
from ..push import PushOutcome
from ..tasks._retry import retry_options
from ..tasks.auth import authenticate
from ..tasks.push import plan_image_push, push_image_blob, push_image_manifests
from ._logins import login
from ._reporting import reporting
from ._task_runner import ControlledTaskRunner

__all__ = ["PushResult", "push_cached", "push_flow"]


@dataclass(frozen=True)
class PushResult:
    target: str
    manifest_digest: str
    blobs: int
    uploaded: int
    skipped: int
    mounted: int
    bytes_transferred: int


@flow(name="push", persist_result=False, validate_parameters=False, task_runner=ControlledTaskRunner())  # type: ignore[arg-type]
def push_flow(
    source: str,
    registry: str,
    repository: str,
    tag: str,
    cache_dir: str = ".cache",
    scheme: str | None = None,
    skip_tls: bool = False,
    ca_file: str | None = None,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    retry_attempts: int = 3,
    force_upload: bool = False,
    chunk_size: int | None = None,
    auth_ref: str | None = None,
    credentials_secret: str | None = None,
    progress: str | None = None,
) -> PushResult:
    """source: a cache key "{repository}/{reference}"; tag: a tag or a digest to push the manifest under;
    auth_ref and credentials_secret: as for pull (flows/_logins.py)."""
    with (
        gc_lock(Cache(cache_dir), exclusive=False),  # a concurrent clean collects no file of this run
        login(registry, auth_ref, credentials_secret, "DOCKER_IMAGE_PUSHER_") as ref_for_run,
    ):
        endpoint = Endpoint(
            registry, scheme, verify_tls=not skip_tls, ca_file=ca_file, auth_ref=ref_for_run, read_timeout=read_timeout
        )
        return push_cached(endpoint, source, repository, tag, cache_dir, retry_attempts, force_upload, chunk_size,
                           progress)  # fmt: skip


def push_cached(
    endpoint: Endpoint,
    source: str,
    repository: str,
    tag: str,
    cache_dir: str,
    retry_attempts: int,
    force_upload: bool = False,
    chunk_size: int | None = None,
    progress: str | None = None,
) -> PushResult:
    retry = retry_options(retry_attempts)
    registry = endpoint.host
    plan = plan_image_push.submit(source, registry, repository, cache_dir, progress).result()
    auth = authenticate.with_options(**retry).submit(endpoint, repository, push=True, mount_from=plan.mount_sources)
    auth.result()
    blob_task = push_image_blob.with_options(**retry)
    target = f"{registry}/{repository}{'@' if tag.startswith('sha256:') else ':'}{tag}"
    with reporting("push", target, progress, blobs=len(plan.blobs), total_bytes=plan.total_bytes):
        futures = [
            blob_task.submit(
                endpoint,
                repository,
                blob,
                cache_dir,
                force_upload,
                chunk_size,
                progress,
                wait_for=[auth],
                return_state=False,
            )
            for blob in plan.blobs
        ]
        wait(futures)
        outcomes: list[PushOutcome] = [f.result() for f in futures]  # raises the first failure
    manifests = push_image_manifests.with_options(**retry).submit(
        endpoint, repository, tag, plan, cache_dir, wait_for=futures, return_state=False
    )
    digest = manifests.result()
    return PushResult(
        target=target,
        manifest_digest=digest,
        blobs=len(outcomes),
        uploaded=sum(o.outcome == "uploaded" for o in outcomes),
        skipped=sum(o.outcome == "skipped" for o in outcomes),
        mounted=sum(o.outcome == "mounted" for o in outcomes),
        bytes_transferred=sum(o.transferred for o in outcomes),
    )

"""PullAndCache: authenticate -> fetch manifest(s) -> one task per blob -> record in the cache.

``resolve_pull`` and ``pull_planned`` are the flow's two halves, run inside a flow run; the mirror's
per-image flow calls them too, with a look at the destination in between.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow
from prefect.futures import wait

from ..cache import Cache, gc_lock
from ..endpoint import DEFAULT_READ_TIMEOUT, Endpoint
from ..image_plan import ImagePlan
from ..pull import BlobOutcome
from ..reference import Reference
from ..tasks._retry import retry_options
from ..tasks.auth import authenticate
from ..tasks.pull import fetch_manifests, pull_blob, record_pull
from ._logins import login
from ._reporting import reporting
from ._task_runner import ControlledTaskRunner

__all__ = ["PullResult", "pull_flow", "pull_planned", "resolve_pull"]


@dataclass(frozen=True)
class PullResult:
    key: str
    manifest_digest: str
    blobs: int
    downloaded: int
    cached: int
    bytes_transferred: int
    note: str | None


@flow(name="pull", persist_result=False, validate_parameters=False, task_runner=ControlledTaskRunner())  # type: ignore[arg-type]
def pull_flow(
    registry: str,
    repository: str,
    reference: str = "latest",
    scheme: str | None = None,
    skip_tls: bool = False,
    ca_file: str | None = None,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    platforms: list[str] | None = None,
    cache_dir: str = ".cache",
    retry_attempts: int = 3,
    auth_ref: str | None = None,
    credentials_secret: str | None = None,
    progress: str | None = None,
) -> PullResult:
    """auth_ref: credentials registered in this process, "anonymous", or None to look them up (the Prefect
    Secret block named credentials_secret, DOCKER_IMAGE_PUSHER_USERNAME/PASSWORD, docker's config.json);
    progress: the event channel."""
    with (
        gc_lock(Cache(cache_dir), exclusive=False),  # a concurrent clean collects no file of this run
        login(registry, auth_ref, credentials_secret, "DOCKER_IMAGE_PUSHER_") as ref_for_run,
    ):
        endpoint = Endpoint(
            registry, scheme, verify_tls=not skip_tls, ca_file=ca_file, auth_ref=ref_for_run, read_timeout=read_timeout
        )
        tag, digest = (None, reference) if reference.startswith("sha256:") else (reference, None)
        ref = Reference(registry, repository, tag=tag, digest=digest)
        plan = resolve_pull(endpoint, ref, platforms or [], cache_dir, retry_attempts, progress)
        return pull_planned(endpoint, plan, cache_dir, retry_attempts, progress)


def resolve_pull(
    endpoint: Endpoint, ref: Reference, platforms: list[str], cache_dir: str, retry_attempts: int, progress: str | None
) -> ImagePlan:
    """Authenticate, then fetch the manifest (and the chosen children of an index) into the cache."""
    retry = retry_options(retry_attempts)
    auth = authenticate.with_options(**retry).submit(endpoint, ref.repository)
    auth.result()  # an auth failure is the error to report, not the "upstream not ready" of its dependents
    return (
        fetch_manifests.with_options(**retry)
        .submit(endpoint, ref, platforms, cache_dir, progress, wait_for=[auth], return_state=False)
        .result()
    )


def pull_planned(
    endpoint: Endpoint, plan: ImagePlan, cache_dir: str, retry_attempts: int, progress: str | None
) -> PullResult:
    """One task per blob, then the image recorded in the cache's index."""
    blob_task = pull_blob.with_options(**retry_options(retry_attempts))
    sep = "@" if plan.reference.startswith("sha256:") else ":"
    subject = f"{plan.registry}/{plan.repository}{sep}{plan.reference}"
    with reporting("pull", subject, progress, blobs=len(plan.blobs), total_bytes=plan.total_bytes):
        futures = [blob_task.submit(endpoint, plan.repository, job, cache_dir, progress) for job in plan.blobs]
        wait(futures)
        outcomes: list[BlobOutcome] = [f.result() for f in futures]  # raises the first failure
    key = record_pull.submit(plan, cache_dir).result()
    return PullResult(
        key=key,
        manifest_digest=plan.manifest_digest,
        blobs=len(outcomes),
        downloaded=sum(o.outcome == "downloaded" for o in outcomes),
        cached=sum(o.outcome == "cached" for o in outcomes),
        bytes_transferred=sum(o.transferred for o in outcomes),
        note=plan.note,
    )

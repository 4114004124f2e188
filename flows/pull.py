"""PullAndCache: authenticate -> fetch manifest(s) -> one task per blob -> record in the cache."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow
from prefect.futures import wait

from ..cache import Cache, gc_lock
from ..endpoint import Endpoint
from ..pull import BlobOutcome
from ..reference import Reference
from ..tasks._retry import retry_options
from ..tasks.auth import authenticate
from ..tasks.pull import fetch_manifests, pull_blob, record_pull
from ._reporting import reporting
from ._task_runner import ControlledTaskRunner

__all__ = ["PullResult", "pull_flow"]


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
    platforms: list[str] | None = None,
    cache_dir: str = ".cache",
    retry_attempts: int = 3,
    auth_ref: str | None = None,
    progress: str | None = None,
) -> PullResult:
    """auth_ref: credentials registered in this process (never the secret itself); progress: event channel."""
    with gc_lock(Cache(cache_dir), exclusive=False):  # a concurrent clean collects no file of this run
        endpoint = Endpoint(registry, scheme, verify_tls=not skip_tls, ca_file=ca_file, auth_ref=auth_ref)
        tag, digest = (None, reference) if reference.startswith("sha256:") else (reference, None)
        ref = Reference(registry, repository, tag=tag, digest=digest)
        retry = retry_options(retry_attempts)

        auth = authenticate.with_options(**retry).submit(endpoint, repository)
        auth.result()  # an auth failure is the error to report, not the "upstream not ready" of its dependents
        plan = (
            fetch_manifests.with_options(**retry)
            .submit(endpoint, ref, platforms or [], cache_dir, progress, wait_for=[auth], return_state=False)
            .result()
        )
        blob_task = pull_blob.with_options(**retry)
        with reporting("pull", str(ref), progress, blobs=len(plan.blobs), total_bytes=plan.total_bytes):
            futures = [blob_task.submit(endpoint, repository, job, cache_dir, progress) for job in plan.blobs]
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

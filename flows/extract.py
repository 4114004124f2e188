"""ExtractAndCache: scan the archive -> one task per blob -> record each image in the cache.

Every image is recorded only once every blob is in: a blob that fails (a digest that does not match) makes
the flow remove the blobs it had added and record nothing.
"""

from __future__ import annotations

from prefect import flow
from prefect.futures import wait

from ..archive import IngestedBlob
from ..cache import Cache, gc_lock
from ..extract import ExtractResult, summarize
from ..tasks._retry import retry_options
from ..tasks.extract import discard_extracted_blobs, extract_blob, record_extracted_image, scan_and_plan

__all__ = ["extract_flow"]


@flow(name="extract", persist_result=False, validate_parameters=False)
def extract_flow(
    path: str,
    cache_dir: str = ".cache",
    image: str | None = None,
    repository: str | None = None,
    reference: str | None = None,
    retry_attempts: int = 0,
    progress: str | None = None,
    single: bool = False,
) -> ExtractResult:
    """path: a docker save / OCI archive tar (.tar.gz too) or an OCI layout folder; image: pick one by name or
    digest; repository/reference: the name for the picked (or only) image, or with single=True (exactly one image)
    only for an image the archive does not name; progress: event channel."""
    with gc_lock(Cache(cache_dir), exclusive=False):  # a concurrent clean collects no file of this run
        plan = scan_and_plan.submit(path, cache_dir, image, repository, reference, progress, single).result()
        try:
            blob_task = extract_blob.with_options(**retry_options(retry_attempts))
            futures = [blob_task.submit(blob, cache_dir, progress) for blob in plan.blobs]
            wait(futures)
            states = [f.state for f in futures]
            ingested: list[IngestedBlob] = [s.result() for s in states if s.is_completed()]
            failed = [s for s in states if not s.is_completed()]
            if failed:
                discard_extracted_blobs.submit(ingested, cache_dir).result()
                failed[0].result()  # raises the first failure
            digests = {b.key: b.digest for b in ingested}
            records = [record_extracted_image.submit(n, digests, plan.archive.source, cache_dir) for n in plan.images]
            keys = [r.result() for r in records]
        finally:
            plan.archive.discard()
        return summarize(plan, ingested, keys)

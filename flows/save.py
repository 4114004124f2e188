"""SaveFromCache: plan (read and check the cached manifests) -> write the tar (stream and verify every blob)."""

from __future__ import annotations

import os

from prefect import flow

from ..saving import SaveResult
from ..tasks.save import plan_save, write_archive

__all__ = ["SaveResult", "save_flow"]


@flow(name="save", persist_result=False, validate_parameters=False)
def save_flow(
    keys: list[str], out: str, cache_dir: str, format: str = "docker", progress: str | None = None
) -> SaveResult:
    """keys: cache entries "{repository}/{reference}"; out: the tar to write; format: docker or oci;
    progress: event channel."""
    out = os.path.abspath(out)
    plan = plan_save.submit(keys, cache_dir, format).result()
    return write_archive.submit(plan, out, progress).result()

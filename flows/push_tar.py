"""PushFromCacheUsingTar: extract the tar into the cache, then the same push flow as for a cached image."""

from __future__ import annotations

from prefect import flow

from ..endpoint import DEFAULT_READ_TIMEOUT
from ..errors import UsageError
from .extract import extract_flow
from .push import PushResult, push_flow

__all__ = ["push_tar_flow"]


@flow(name="push-from-tar", persist_result=False, validate_parameters=False)
def push_tar_flow(
    path: str,
    registry: str,
    repository: str | None = None,
    tag: str | None = None,
    image: str | None = None,
    cache_dir: str = ".cache",
    scheme: str | None = None,
    skip_tls: bool = False,
    ca_file: str | None = None,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    retry_attempts: int = 3,
    force_upload: bool = False,
    chunk_size: int | None = None,
    auth_ref: str | None = None,
    progress: str | None = None,
) -> PushResult:
    """repository/tag default to the name the archive gives the image; image picks one of several."""
    # The target's name also names an image the archive leaves unnamed (an oci-archive tagged "v1" only).
    extracted = extract_flow(
        path=path,
        cache_dir=cache_dir,
        image=image,
        repository=repository,
        reference=tag,
        progress=progress,
        single=True,
    )
    if len(extracted.keys) != 1:
        names = ", ".join(extracted.keys)
        raise UsageError(f"{path} holds {len(extracted.keys)} images ({names}); pick one with --image")
    key = extracted.keys[0]
    source_repository, _, source_reference = key.rpartition("/")
    return push_flow(
        source=key,
        registry=registry,
        repository=repository or source_repository,
        tag=tag or source_reference,
        cache_dir=cache_dir,
        scheme=scheme,
        skip_tls=skip_tls,
        ca_file=ca_file,
        read_timeout=read_timeout,
        retry_attempts=retry_attempts,
        force_upload=force_upload,
        chunk_size=chunk_size,
        auth_ref=auth_ref,
        progress=progress,
    )

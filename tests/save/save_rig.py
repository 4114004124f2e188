"""Helpers of the save tests: put rig-built images into a Cache as a pull would, read tars, ask skopeo."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rig.images import BuiltImage, BuiltIndex
from rig.skopeo import run_skopeo

from docker_image_pusher.cache import Cache, ImageEntry
from docker_image_pusher.image_plan import BlobJob, ChildManifest, ImagePlan, blob_jobs, dedup_jobs, record_image
from docker_image_pusher.manifest import ImageManifest, parse_manifest

__all__ = ["CacheImage", "member_bytes", "members", "put_in_cache", "skopeo_json", "skopeo_raw"]

CacheImage = Callable[..., ImageEntry]  # the cache_image fixture


def _ingest_image(cache: Cache, image: BuiltImage) -> list[BlobJob]:
    for blob in image.blobs:
        with image.blob_path(blob.digest).open("rb") as f:
            cache.ingest(blob.digest, blob.size, f)
    cache.put_blob_bytes(image.manifest_digest, image.manifest_bytes)
    manifest = parse_manifest(image.manifest_bytes)
    assert isinstance(manifest, ImageManifest)
    return blob_jobs(manifest)


def put_in_cache(
    cache: Cache,
    built: BuiltImage | BuiltIndex,
    repository: str,
    reference: str | None = None,
    registry: str | None = "127.0.0.1:5000",
) -> ImageEntry:
    """Store a rig-built image (or index, every platform) in ``cache`` as a pull would, and record it."""
    reference = reference or built.tag or "latest"
    children: tuple[ChildManifest, ...] = ()
    if isinstance(built, BuiltImage):
        jobs = _ingest_image(cache, built)
        media_type, config_digest = built.manifest.media_type, built.config_digest
    else:
        jobs = [job for image in built.images for job in _ingest_image(cache, image)]
        cache.put_blob_bytes(built.index_digest, built.index_bytes)
        children = tuple(
            ChildManifest(i.manifest_digest, i.manifest.size, i.manifest.media_type, str(i.platform), i.config_digest)
            for i in built.images
        )
        media_type, config_digest = built.index.media_type, None
    plan = ImagePlan(
        registry=registry,
        repository=repository,
        reference=reference,
        manifest_digest=built.manifest_digest,
        media_type=media_type,
        source_digest=built.manifest_digest,
        children=children,
        config_digest=config_digest,
        blobs=dedup_jobs(jobs),
    )
    return record_image(cache, plan)


def members(tar: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(tar) as t:
        return t.getmembers()


def member_bytes(tar: Path, name: str) -> bytes:
    with tarfile.open(tar) as t:
        f = t.extractfile(name)
        assert f is not None, name
        return f.read()


def skopeo_raw(*args: str) -> bytes:
    return run_skopeo(["inspect", *args], timeout=120)


def skopeo_json(*args: str) -> Any:
    return json.loads(skopeo_raw(*args))

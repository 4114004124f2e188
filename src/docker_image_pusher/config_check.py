"""Checking a pulled image's config before it is published in the cache.

A registry may serve a manifest whose config is not JSON, or an index whose child for linux/arm64 is in
truth an amd64 image (its config says so). Docker checks the platform of what it pulled (moby's "image
... does not match the specified platform"); we check both, in the config's blob task, on the downloaded
file before it is committed (or on the cached copy, for a config the cache already holds). A refusal
deletes the download and fails the pull. The pull stores its manifests only when it records the image, so
a refused image leaves the cache as it was, apart from blobs of other images' layers it may have fetched
in parallel. Only image configs (Docker and OCI media types) are checked: an artifact's config may be
anything.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import media_types as mt
from .errors import IntegrityError
from .manifest import Platform, parse_platform

__all__ = ["IMAGE_CONFIGS", "MAX_CHECKED_CONFIG", "check_config", "config_problem"]

IMAGE_CONFIGS = frozenset({mt.DOCKER_CONFIG, mt.OCI_CONFIG})
MAX_CHECKED_CONFIG = 4 * 1024 * 1024  # real configs are a few KiB; a bigger one is kept unchecked, as a blob


def config_problem(data: bytes, declared: Platform | None) -> str | None:
    """What is wrong with config bytes ``data`` for an image the index lists as ``declared``; None if nothing."""
    try:
        config = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "is not valid JSON"
    if not isinstance(config, dict):
        return "is not a JSON object"
    os_name, arch, variant = config.get("os"), config.get("architecture"), config.get("variant")
    if declared is None or not isinstance(os_name, str) or not isinstance(arch, str):
        return None
    actual = Platform(os_name, arch, variant if isinstance(variant, str) and variant else None)
    same = (actual.os, actual.architecture) == (declared.os, declared.architecture)
    if same and (declared.variant is None or actual.variant is None or declared.variant == actual.variant):
        return None
    return f"is for {actual}, but the index lists this image as {declared}"


def check_config(digest: str, media_type: str, path: Path, declared: str | None, *, where: str, delete: bool) -> None:
    """Raise IntegrityError if the config ``digest`` of ``where`` (a repository) in ``path`` is not a JSON object,
    or not of the platform ``declared`` (``os/arch[/variant]``, from the index; None outside an index).
    ``delete``: remove ``path`` (a download) with the refusal."""
    if media_type not in IMAGE_CONFIGS or path.stat().st_size > MAX_CHECKED_CONFIG:
        return
    problem = config_problem(path.read_bytes(), parse_platform(declared) if declared else None)
    if problem is None:
        return
    if delete:
        path.unlink(missing_ok=True)
    raise IntegrityError(f"{where}: image config {digest} {problem}")

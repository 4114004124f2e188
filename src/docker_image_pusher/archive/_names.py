"""The names an archive gives its images: docker's RepoTags, and the annotations of an OCI index.

``nginx:1.27`` is read as docker reads it: repository ``library/nginx``, tag ``1.27``. In an OCI index,
``io.containerd.image.name`` is a full name; ``org.opencontainers.image.ref.name`` is a full name (podman,
buildkit) or only a tag (skopeo's ``oci-archive:FILE:TAG``), which then needs a repository from the user.
"""

from __future__ import annotations

from typing import Any

from ..errors import ArchiveError, UsageError
from ..reference import check_tag, parse_reference
from ._model import ImageName

__all__ = ["CONTAINERD_NAME", "REF_NAME", "name_from_reference", "names_from_annotations"]

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


def name_from_reference(text: str, what: str) -> ImageName:
    try:
        ref = parse_reference(text)
    except UsageError:
        raise ArchiveError(f"{what}: {text[:200]!r} is not a valid image name") from None
    return ImageName(ref.repository, ref.tag or ref.digest or "latest")


def names_from_annotations(annotations: Any, what: str) -> tuple[ImageName, ...]:
    if not isinstance(annotations, dict):
        return ()
    full, ref_name = annotations.get(CONTAINERD_NAME), annotations.get(REF_NAME)
    if isinstance(full, str) and full:
        return (name_from_reference(full, f"{what} {CONTAINERD_NAME}"),)
    if not isinstance(ref_name, str) or not ref_name:
        return ()
    if _is_bare_tag(ref_name):
        return (ImageName(None, ref_name),)
    return (name_from_reference(ref_name, f"{what} {REF_NAME}"),)


def _is_bare_tag(text: str) -> bool:
    if any(c in text for c in "/:@"):
        return False
    try:
        check_tag(text)
    except UsageError:
        return False
    return True

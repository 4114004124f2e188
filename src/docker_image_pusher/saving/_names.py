"""How a cached image is named inside a saved archive: the way docker itself names it.

    full name  index.json io.containerd.image.name     docker.io/library/nginx:1.27, 127.0.0.1:5000/team/app:v1,
                                                       docker.io/library/nginx@sha256:... (an entry cached by digest)
    repo tag   manifest.json RepoTags, repositories    docker's short form, as `docker images` prints it: Docker Hub
                                                       drops "docker.io/" and "library/" (nginx:1.27, me/app:v1);
                                                       other registries keep their host (127.0.0.1:5000/team/app:v1)
    ref name   index.json org.opencontainers.image.ref.name   the tag (what `skopeo ... oci-archive:FILE:TAG` and
                                                       `docker load` look up)

An entry cached by digest gets the full name only: no repo tag, no ref name (docker save does the same).
The registry is the entry's own (registry-1.docker.io and its aliases print as docker.io). An entry without
one (extracted from a file) is read the way docker reads a name: a first component with a "." or ":" (or
"localhost") is a host, anything else is Docker Hub, where a one-component name gets "library/".
"""

from __future__ import annotations

from dataclasses import dataclass

from ..reference import DOCKER_HUB_API_HOST, Reference, is_digest, normalize_registry, parse_reference

__all__ = ["ImageName", "image_name"]

_DOCKER_HUB = "docker.io"


@dataclass(frozen=True)
class ImageName:
    full: str
    repo_tag: str | None
    ref_name: str | None
    short_repository: str  # the name part of repo_tag, the key of the `repositories` file


def _reference(registry: str | None, repository: str, reference: str) -> Reference:
    if registry is None:
        sep = "@" if is_digest(reference) else ":"
        return parse_reference(f"{repository}{sep}{reference}")
    host = normalize_registry(registry)
    if host == DOCKER_HUB_API_HOST and "/" not in repository:
        repository = f"library/{repository}"
    if is_digest(reference):
        return Reference(host, repository, digest=reference)
    return Reference(host, repository, tag=reference)


def image_name(registry: str | None, repository: str, reference: str) -> ImageName:
    ref = _reference(registry, repository, reference)
    host = _DOCKER_HUB if ref.registry == DOCKER_HUB_API_HOST else ref.registry
    if host == _DOCKER_HUB:
        short = ref.repository.removeprefix("library/") if ref.repository.count("/") == 1 else ref.repository
    else:
        short = f"{host}/{ref.repository}"
    if ref.tag is None:
        return ImageName(f"{host}/{ref.repository}@{ref.digest}", None, None, short)
    return ImageName(f"{host}/{ref.repository}:{ref.tag}", f"{short}:{ref.tag}", ref.tag, short)

"""Image references as docker, skopeo and crane take them.

``nginx:1.27``, ``ghcr.io/org/app@sha256:...``, ``127.0.0.1:5000/team/app:v1``. Names follow the
distribution grammar (the same regular expressions as distribution/reference), which also guarantees
that a repository name can never reach outside a folder it is joined to (no ``..``, no ``/`` at either
end, no empty component).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UsageError

__all__ = [
    "DOCKER_HUB_API_HOST",
    "Reference",
    "check_digest",
    "check_repository",
    "check_tag",
    "is_digest",
    "parse_reference",
]

DOCKER_HUB_API_HOST = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]{{1,5}})?")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    """A fully qualified reference: registry host, repository, and a tag or a digest (or both)."""

    registry: str  # host[:port] as used for the API, e.g. registry-1.docker.io or 127.0.0.1:5000
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest if there is one, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def is_digest(value: str) -> bool:
    return bool(_DIGEST_RE.fullmatch(value))


def check_digest(value: str) -> str:
    if not is_digest(value):
        raise UsageError(f"invalid digest {value!r}: expected sha256: and 64 lowercase hex digits")
    return value


def check_tag(value: str) -> str:
    if not _TAG_RE.fullmatch(value):
        raise UsageError(
            f"invalid tag {value!r}: at most 128 of letters, digits, '_', '.', '-', not starting with '.' or '-'"
        )
    return value


def check_repository(value: str) -> str:
    """Validate a repository path (no host). The grammar excludes '..', absolute paths and empty parts."""
    if len(value) > _MAX_NAME or not _REPOSITORY_RE.fullmatch(value):
        raise UsageError(
            f"invalid repository name {value!r}: lowercase letters, digits and separators (. _ __ -) in "
            "components joined by '/'"
        )
    return value


def _split_domain(name: str) -> tuple[str | None, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        return first, rest
    return None, name


def normalize_registry(host: str) -> str:
    """Map docker.io and its aliases to Docker Hub's API host; leave every other host as it is."""
    return DOCKER_HUB_API_HOST if host.lower() in _DOCKER_HUB_ALIASES else host


def parse_reference(text: str, *, default_registry: str = DOCKER_HUB_API_HOST) -> Reference:
    """Parse ``[host[:port]/]path[:tag][@digest]`` the way docker does.

    A name without a host goes to ``default_registry``; on Docker Hub a single-component name gets
    ``library/``. With neither tag nor digest the tag is ``latest``.
    """
    if not text or text != text.strip():
        raise UsageError(f"invalid reference {text!r}: empty or surrounded by spaces")
    remainder, at, digest = text.partition("@")
    if at:
        check_digest(digest)
    tag: str | None = None
    # A ':' after the last '/' starts a tag; one before it belongs to host:port.
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    name = remainder
    if colon > slash:
        name, tag = remainder[:colon], remainder[colon + 1 :]
        check_tag(tag)
    domain, path = _split_domain(name)
    if domain is not None and not _DOMAIN_RE.fullmatch(domain):
        raise UsageError(f"invalid reference {text!r}: bad registry host {domain!r}")
    port = domain.rpartition("]")[2].partition(":")[2] if domain else ""
    if port and not 0 < int(port) <= 65535:
        raise UsageError(f"invalid reference {text!r}: bad registry port {port} (1 to 65535)")
    registry = normalize_registry(domain) if domain else default_registry
    if registry == DOCKER_HUB_API_HOST and "/" not in path:
        path = f"library/{path}"
    try:
        check_repository(path)
    except UsageError:
        raise UsageError(
            f"invalid reference {text!r}: repository must be lowercase letters, digits and . _ - separators"
        ) from None
    if len(f"{registry}/{path}") > _MAX_NAME:
        raise UsageError(f"invalid reference {text!r}: name longer than {_MAX_NAME} characters")
    if tag is None and not at:
        tag = "latest"
    return Reference(registry=registry, repository=path, tag=tag, digest=digest if at else None)


def reference_from_parts(repository: str, reference: str | None, registry: str) -> Reference:
    """The ``-r REPO -t REF --registry HOST`` form. REF is a tag or a digest; default ``latest``."""
    registry = normalize_registry(registry)
    if registry == DOCKER_HUB_API_HOST and "/" not in repository:
        repository = f"library/{repository}"
    check_repository(repository)
    ref = reference or "latest"
    if ref.startswith("sha256:"):
        return Reference(registry=registry, repository=repository, digest=check_digest(ref))
    return Reference(registry=registry, repository=repository, tag=check_tag(ref))

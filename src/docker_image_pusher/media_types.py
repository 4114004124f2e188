"""Media types of the Docker v2 and OCI image formats, and what the bytes themselves say."""

from __future__ import annotations

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_LAYER_FOREIGN",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_TYPES",
    "MANIFEST_ACCEPT",
    "MANIFEST_TYPES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "compression_from_magic",
]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})

# Every type we can read, best first. Without them some registries downgrade to schema1 or answer 404.
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])


def compression_from_magic(head: bytes) -> str:
    """'gzip', 'zstd' or 'none', from the first bytes of a layer."""
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return "none"

"""Media types for an image synthesized from a docker-archive, chosen from what the layers' bytes are.

Docker v2 schema 2 when it can say what the layers are (gzip or uncompressed tar); an OCI manifest when any
layer is zstd, which schema 2 has no media type for.
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import media_types as mt

__all__ = ["DOCKER_LAYER_TAR", "config_media_type", "layer_media_type", "manifest_type_for"]

DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"

_LAYER_TYPES = {
    mt.DOCKER_MANIFEST: {"gzip": mt.DOCKER_LAYER, "none": DOCKER_LAYER_TAR},
    mt.OCI_MANIFEST: {"gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD, "none": mt.OCI_LAYER},
}


def manifest_type_for(compressions: Iterable[str]) -> str:
    return mt.OCI_MANIFEST if "zstd" in compressions else mt.DOCKER_MANIFEST


def config_media_type(manifest_type: str) -> str:
    return mt.OCI_CONFIG if manifest_type == mt.OCI_MANIFEST else mt.DOCKER_CONFIG


def layer_media_type(manifest_type: str, compression: str) -> str:
    return _LAYER_TYPES[manifest_type][compression]

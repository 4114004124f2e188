"""The small metadata files of an archive, as Docker >= 25 writes them for `docker save`.

    oci-layout      {"imageLayoutVersion": "1.0.0"}
    index.json      an OCI index with one descriptor per saved image: the top manifest or index exactly as
                    cached (its own media type, digest and size), annotated with io.containerd.image.name
                    (full name) and org.opencontainers.image.ref.name (the tag)
    manifest.json   docker format only: [{"Config", "RepoTags", "Layers"}] for docker's classic loader; one
                    item per distinct (config, layers), with every RepoTag that names it
    repositories    docker format only, when some image has a tag: {short name: {tag: hex of its last layer
                    blob}}, for loaders older than manifest.json

Same plan, same bytes: no timestamps, insertion-ordered keys, images in the plan's (key) order.
"""

from __future__ import annotations

import json
from typing import Any

from .. import media_types as mt
from ._plan import PlannedImage, SavePlan

__all__ = ["IMAGE_NAME", "REF_NAME", "documents", "index_json", "manifest_json", "repositories_json"]

IMAGE_NAME = "io.containerd.image.name"
REF_NAME = "org.opencontainers.image.ref.name"
OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def index_json(images: tuple[PlannedImage, ...]) -> bytes:
    manifests = []
    for image in images:
        annotations = {IMAGE_NAME: image.name.full}
        if image.name.ref_name:
            annotations[REF_NAME] = image.name.ref_name
        descriptor = {"mediaType": image.media_type, "digest": image.digest, "size": image.size}
        manifests.append({**descriptor, "annotations": annotations})
    return _compact({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests})


def manifest_json(images: tuple[PlannedImage, ...]) -> bytes:
    items: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    for image in images:
        item = items.setdefault(
            (image.config, image.layers),
            {"Config": _blob_path(image.config), "RepoTags": [], "Layers": [_blob_path(d) for d in image.layers]},
        )
        if image.name.repo_tag and image.name.repo_tag not in item["RepoTags"]:
            item["RepoTags"].append(image.name.repo_tag)
    return _compact(list(items.values())) + b"\n"


def repositories_json(images: tuple[PlannedImage, ...]) -> bytes | None:
    repos: dict[str, dict[str, str]] = {}
    for image in images:
        if image.name.ref_name and image.layers:
            tags = repos.setdefault(image.name.short_repository, {})
            tags[image.name.ref_name] = image.layers[-1].removeprefix("sha256:")
    return _compact(repos) + b"\n" if repos else None


def documents(plan: SavePlan) -> list[tuple[str, bytes]]:
    """(member name, bytes) of every metadata file, in archive order."""
    out = [("oci-layout", OCI_LAYOUT), ("index.json", index_json(plan.images))]
    if plan.format == "docker":
        out.append(("manifest.json", manifest_json(plan.images)))
        repos = repositories_json(plan.images)
        if repos is not None:
            out.append(("repositories", repos))
    return out

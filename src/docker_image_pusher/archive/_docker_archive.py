"""Images of a classic docker-archive: manifest.json lists {Config, RepoTags, Layers} per image.

There is no registry manifest inside, so each image's is synthesized later (see _synthesize). What can be
checked before reading any layer is checked here: every named member exists, the config is JSON with as
many diff_ids as there are layers, a content-addressed name matches its content, and an uncompressed
layer's digest must be its diff_id (checked again as the bytes stream into the cache). A compressed
layer's digest is only known once read; its diff_id is checked then, on the decompressed bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .. import media_types as mt
from ..errors import ArchiveError
from ._config import read_config
from ._digests import blob_path_digest, named_digest
from ._media import config_media_type, layer_media_type, manifest_type_for
from ._members import MemberSource, require
from ._model import ArchiveBlob, ArchiveImage, ImageName
from ._names import name_from_reference
from ._reading import read_head

__all__ = ["DockerEntry", "docker_images", "parse_manifest_json", "repo_tags_by_config"]


@dataclass(frozen=True)
class DockerEntry:
    config: str
    layers: tuple[str, ...]
    repo_tags: tuple[str, ...]
    where: str


def parse_manifest_json(obj: Any) -> tuple[DockerEntry, ...]:
    if not isinstance(obj, list):
        raise ArchiveError("manifest.json is not a list of images")
    return tuple(_entry(item, f"manifest.json image {n}") for n, item in enumerate(obj, 1))


def _entry(item: Any, where: str) -> DockerEntry:
    if not isinstance(item, dict):
        raise ArchiveError(f"{where} is not an object")
    config, layers, tags = item.get("Config"), item.get("Layers"), item.get("RepoTags") or []
    if not isinstance(config, str) or not config:
        raise ArchiveError(f"{where} has no Config")
    if not isinstance(layers, list) or not all(isinstance(x, str) and x for x in layers):
        raise ArchiveError(f"{where} has no Layers list")
    if not isinstance(tags, list) or not all(isinstance(x, str) for x in tags):
        raise ArchiveError(f"{where}: RepoTags is not a list of names")
    return DockerEntry(config, tuple(layers), tuple(tags), where)


def repo_tags_by_config(entries: tuple[DockerEntry, ...]) -> dict[str, tuple[ImageName, ...]]:
    """Names by config digest, for entries whose Config is content-addressed (docker >= 25 writes both files)."""
    out: dict[str, tuple[ImageName, ...]] = {}
    for entry in entries:
        digest = named_digest(entry.config.removeprefix("./"))
        if digest:
            out[digest] = _names(entry)
    return out


def docker_images(members: MemberSource, entries: tuple[DockerEntry, ...]) -> tuple[ArchiveImage, ...]:
    return tuple(_image(members, entry) for entry in entries)


def _names(entry: DockerEntry) -> tuple[ImageName, ...]:
    names = [name_from_reference(tag, f"{entry.where} RepoTags") for tag in entry.repo_tags]
    return tuple(dict.fromkeys(names))


def _image(members: MemberSource, entry: DockerEntry) -> ArchiveImage:
    config_data = require(members, entry.config, f"{entry.where} Config")
    config = read_config(config_data, f"{entry.where} config", expected_digest=named_digest(config_data.name))
    if len(config.diff_ids) != len(entry.layers):
        raise ArchiveError(
            f"{entry.where} has {len(entry.layers)} layers but its config lists {len(config.diff_ids)} diff_ids"
        )
    layers = [
        _layer(members, name, diff_id, entry.where) for name, diff_id in zip(entry.layers, config.diff_ids, strict=True)
    ]
    manifest_type = manifest_type_for(layer.compression for layer in layers)
    typed = [replace(layer, media_type=layer_media_type(manifest_type, layer.compression)) for layer in layers]
    config_blob = ArchiveBlob(config_data, config_media_type(manifest_type), True, digest=config.digest)
    return ArchiveImage(
        id=config.digest,
        names=_names(entry),
        blobs=(config_blob, *typed),
        manifest_type=manifest_type,
        note=None if manifest_type == mt.DOCKER_MANIFEST else "a layer is zstd: synthesized an OCI manifest",
    )


def _layer(members: MemberSource, name: str, diff_id: str, where: str) -> ArchiveBlob:
    data = require(members, name, f"{where} Layers")
    compression = mt.compression_from_magic(read_head(data))
    if compression == "none":
        named = named_digest(data.name)
        if named and named != diff_id:
            raise ArchiveError(f"{where}: layer {data.name} is named {named} but the config's diff_id is {diff_id}")
        return ArchiveBlob(data, "", False, "none", digest=diff_id)
    # A compressed layer's diff_id is checked while it is read; zstd cannot be (no zstd in Python 3.11's stdlib).
    checked = diff_id if compression == "gzip" else None
    return ArchiveBlob(data, "", False, compression, digest=blob_path_digest(data.name), diff_id=checked)

"""Images of an OCI layout (folder, oci-archive tar, or the index.json that docker >= 25 saves alongside
manifest.json): index.json -> manifests or indexes -> blobs/sha256/<hex>.

Each manifest is read, size- and digest-checked against its descriptor and kept byte for byte (the image's
digest is the archive's). Each blob must be present with the descriptor's size; an image config must be
JSON with one diff_id per layer, and an uncompressed tar layer's digest must be its diff_id. Of an index
only the platforms whose manifest and blobs are all in the archive are kept (docker saves the platforms it
has): a cut-down index (or the one remaining manifest) then becomes the image, with a note saying so.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .. import media_types as mt
from ..errors import ArchiveError, IntegrityError
from ..manifest import Descriptor, ImageIndex, ImageManifest, parse_manifest, sha256_digest
from ._config import read_config
from ._digests import blob_path
from ._media import DOCKER_LAYER_TAR
from ._members import MemberSource, MissingMemberError, require
from ._model import ArchiveBlob, ArchiveImage, ImageName, MemberData, StoredManifest
from ._names import names_from_annotations
from ._reading import MAX_MANIFEST_BYTES, parse_json, read_member
from ._synthesize import sub_index

__all__ = ["oci_images"]

_IMAGE_CONFIGS = frozenset({mt.DOCKER_CONFIG, mt.OCI_CONFIG})
_TAR_LAYERS = frozenset({mt.OCI_LAYER, DOCKER_LAYER_TAR})


def oci_images(
    members: MemberSource, index: Any, names_by_config: dict[str, tuple[ImageName, ...]]
) -> tuple[ArchiveImage, ...]:
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ArchiveError("index.json has no manifests list")
    images: list[ArchiveImage] = []
    for number, item in enumerate(index["manifests"], 1):
        where = f"index.json entry {number}"
        desc = _descriptor(item, where)
        if desc.media_type in mt.INDEX_TYPES:
            image = _index_image(members, desc, where)
        elif desc.media_type in mt.MANIFEST_TYPES or not desc.media_type:
            image = _manifest_image(members, desc, where)
        else:
            continue  # not an image (an artifact, a signature): nothing of ours
        names = names_from_annotations(item.get("annotations"), where)
        if not names and image.manifest and image.manifest.config_digest:
            names = names_by_config.get(image.manifest.config_digest, ())
        images.append(replace(image, names=names))
    return tuple(images)


def _descriptor(item: Any, where: str) -> Descriptor:
    try:
        return Descriptor.from_json(item, where)
    except IntegrityError as err:
        raise ArchiveError(err.message) from None


def _read_manifest(members: MemberSource, desc: Descriptor, where: str) -> tuple[bytes, ImageManifest | ImageIndex]:
    data = _blob(members, desc, where)
    raw = read_member(data, MAX_MANIFEST_BYTES, f"{where} manifest")
    actual = sha256_digest(raw)
    if actual != desc.digest:
        raise ArchiveError(f"{where}: {data.name} has digest {actual}, expected {desc.digest}")
    try:
        return raw, parse_manifest(raw, desc.media_type or None)
    except IntegrityError as err:
        raise ArchiveError(f"{where}: {err.message}") from None


def _blob(members: MemberSource, desc: Descriptor, where: str) -> MemberData:
    data = require(members, blob_path(desc.digest), where)
    if data.size != desc.size:
        raise ArchiveError(f"{where}: {data.name} has {data.size} bytes, its descriptor says {desc.size}")
    return data


def _manifest_image(members: MemberSource, desc: Descriptor, where: str) -> ArchiveImage:
    raw, parsed = _read_manifest(members, desc, where)
    if not isinstance(parsed, ImageManifest):
        raise ArchiveError(f"{where}: {desc.digest} is an index, its descriptor says {desc.media_type}")
    stored = StoredManifest(desc.digest, parsed.media_type, raw, config_digest=parsed.config.digest)
    return ArchiveImage(id=desc.digest, names=(), blobs=_image_blobs(members, parsed, where), manifest=stored)


def _image_blobs(members: MemberSource, manifest: ImageManifest, where: str) -> tuple[ArchiveBlob, ...]:
    config = _blob(members, manifest.config, f"{where} config")
    if manifest.config.media_type in _IMAGE_CONFIGS:
        diff_ids = read_config(config, f"{where} config", expected_digest=manifest.config.digest).diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise ArchiveError(
                f"{where} has {len(manifest.layers)} layers but its config lists {len(diff_ids)} diff_ids"
            )
        for layer, diff_id in zip(manifest.layers, diff_ids, strict=True):
            if layer.media_type in _TAR_LAYERS and layer.digest != diff_id:
                raise ArchiveError(f"{where}: uncompressed layer {layer.digest} is not its diff_id {diff_id}")
    blobs = [ArchiveBlob(config, manifest.config.media_type, True, digest=manifest.config.digest)]
    for layer in manifest.layers:
        blobs.append(ArchiveBlob(_blob(members, layer, f"{where} layer"), layer.media_type, False, digest=layer.digest))
    return tuple(blobs)


def _index_image(members: MemberSource, desc: Descriptor, where: str) -> ArchiveImage:
    raw, parsed = _read_manifest(members, desc, where)
    if not isinstance(parsed, ImageIndex):
        raise ArchiveError(f"{where}: {desc.digest} is an image manifest, its descriptor says {desc.media_type}")
    children: list[StoredManifest] = []
    blobs: list[ArchiveBlob] = []
    missing: list[MissingMemberError] = []
    for child in parsed.select([]):
        try:
            child_raw, child_parsed = _read_manifest(members, child, f"{where} child {child.digest}")
            if not isinstance(child_parsed, ImageManifest):
                raise ArchiveError(f"{where}: child {child.digest} of the index is not an image manifest")
            blobs += _image_blobs(members, child_parsed, f"{where} child {child.digest}")
        except MissingMemberError as err:
            missing.append(err)
            continue
        platform = str(child.platform) if child.platform else None
        config_digest = child_parsed.config.digest
        children.append(StoredManifest(child.digest, child_parsed.media_type, child_raw, platform, config_digest))
    if not children:
        raise missing[0] if missing else ArchiveError(f"{where}: the index lists no image manifests")
    if not missing:
        stored = StoredManifest(desc.digest, parsed.media_type, raw)
        return ArchiveImage(id=desc.digest, names=(), blobs=tuple(blobs), manifest=stored, children=tuple(children))
    return _partial_index(raw, parsed, desc, children, tuple(blobs), len(missing))


def _partial_index(
    raw: bytes,
    parsed: ImageIndex,
    desc: Descriptor,
    children: list[StoredManifest],
    blobs: tuple[ArchiveBlob, ...],
    dropped: int,
) -> ArchiveImage:
    kept = ", ".join(c.platform or c.digest for c in children)
    if len(children) == 1:
        only = children[0]
        note = f"the archive holds only platform {kept} of index {desc.digest}: its manifest {only.digest} is the image"
        return ArchiveImage(id=desc.digest, names=(), blobs=blobs, manifest=replace(only, platform=None), note=note)
    cut = sub_index(parse_json(raw, "index"), parsed.media_type, {c.digest for c in children})
    stored = StoredManifest(sha256_digest(cut), parsed.media_type, cut)
    note = f"the archive holds {len(children)} of {len(children) + dropped} platforms ({kept}) of index {desc.digest}"
    return ArchiveImage(id=desc.digest, names=(), blobs=blobs, manifest=stored, children=tuple(children), note=note)

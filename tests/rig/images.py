"""Sample images built in pure Python, as OCI image layout directories (oci-layout, index.json, blobs/sha256/).

Docker-media-type images are also written as a `dir:` transport folder (layout/skopeo-dir/TAG, hard links),
because skopeo's oci: transport only looks at OCI-typed entries of index.json.
Each tag is named in index.json with the annotation org.opencontainers.image.ref.name, which is what
`skopeo copy oci:DIR:TAG ...` looks up. Several images may share one layout (different tags).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig.layers import LayerSpec, RandomSource, WrittenLayer, as_layer_spec, write_blob, write_layer

__all__ = [
    "AMD64",
    "ARM64",
    "REF_NAME",
    "Blob",
    "BuiltImage",
    "BuiltIndex",
    "Layer",
    "MediaTypes",
    "Platform",
    "build_image",
    "build_multi_arch",
    "canonical_json",
]

REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "2023-11-14T22:13:20Z"


@dataclass(frozen=True)
class MediaTypes:
    manifest: str
    index: str
    config: str
    layer_gzip: str
    layer_tar: str


OCI = MediaTypes(
    manifest="application/vnd.oci.image.manifest.v1+json",
    index="application/vnd.oci.image.index.v1+json",
    config="application/vnd.oci.image.config.v1+json",
    layer_gzip="application/vnd.oci.image.layer.v1.tar+gzip",
    layer_tar="application/vnd.oci.image.layer.v1.tar",
)
DOCKER = MediaTypes(
    manifest="application/vnd.docker.distribution.manifest.v2+json",
    index="application/vnd.docker.distribution.manifest.list.v2+json",
    config="application/vnd.docker.container.image.v1+json",
    layer_gzip="application/vnd.docker.image.rootfs.diff.tar.gzip",
    layer_tar="application/vnd.docker.image.rootfs.diff.tar",
)


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Layer(Blob):
    diff_id: str  # sha256 of the uncompressed tar
    uncompressed_size: int
    path: Path  # the blob file in the layout


@dataclass(frozen=True)
class BuiltImage:
    """One image (manifest + config + layers) in an OCI layout."""

    layout: Path
    tag: str | None  # None for an index's per-platform image
    manifest: Blob
    manifest_bytes: bytes
    config: Blob
    config_bytes: bytes
    layers: tuple[Layer, ...]
    platform: Platform
    source: str = ""  # what skopeo copies from: "oci:LAYOUT:TAG", or "dir:DIR" for Docker media types

    @property
    def manifest_digest(self) -> str:
        return self.manifest.digest

    @property
    def config_digest(self) -> str:
        return self.config.digest

    @property
    def layer_digests(self) -> list[str]:
        return [layer.digest for layer in self.layers]

    @property
    def layer_sizes(self) -> list[int]:
        return [layer.size for layer in self.layers]

    @property
    def blobs(self) -> list[Blob]:
        """Config and layers: what a registry must hold for the manifest to be accepted."""
        return [self.config, *self.layers]

    def blob_path(self, digest: str) -> Path:
        return self.layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


@dataclass(frozen=True)
class BuiltIndex:
    """A multi-platform image: an image index / manifest list over per-platform images, in an OCI layout."""

    layout: Path
    tag: str
    index: Blob
    index_bytes: bytes
    images: tuple[BuiltImage, ...]
    source: str = ""  # what skopeo copies from: "oci:LAYOUT:TAG", or "dir:DIR" for Docker media types

    @property
    def index_digest(self) -> str:
        return self.index.digest

    @property
    def manifest_digest(self) -> str:
        """The digest a tag points to (same as index_digest), for code handling both kinds."""
        return self.index.digest

    def image_for(self, platform: Platform) -> BuiltImage:
        return next(i for i in self.images if i.platform == platform)


def canonical_json(value: Any) -> bytes:
    """Compact, key-sorted JSON: bytes we hash once and never re-serialize."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _blobs(layout: Path) -> Path:
    return layout / "blobs" / "sha256"


def _init_layout(layout: Path) -> None:
    _blobs(layout).mkdir(parents=True, exist_ok=True)
    marker = layout / "oci-layout"
    if not marker.exists():
        marker.write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = layout / "index.json"
    if not index.exists():
        index.write_text(json.dumps({"schemaVersion": 2, "manifests": []}, indent=2))


def _tag_in_layout(layout: Path, descriptor: dict[str, Any], tag: str) -> None:
    """Point `tag` at `descriptor` in index.json (replacing an older entry with that tag)."""
    path = layout / "index.json"
    index = json.loads(path.read_text())
    manifests = [m for m in index.get("manifests", []) if m.get("annotations", {}).get(REF_NAME) != tag]
    manifests.append({**descriptor, "annotations": {REF_NAME: tag}})
    index["manifests"] = manifests
    index.setdefault("mediaType", OCI.index)
    path.write_text(json.dumps(index, indent=2))


def _dir_view(layout: Path, tag: str, top: bytes, images: Sequence[BuiltImage], is_list: bool) -> str:
    """A `dir:` transport copy (hard links) of one tag: skopeo's oci: transport skips Docker media types.

    Layout: manifest.json (the tagged manifest or list), HEX.manifest.json per list instance, a blob per HEX.
    """
    directory = layout / "skopeo-dir" / tag
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / "version").write_text("Directory Transport Version: 1.1\n")
    (directory / "manifest.json").write_bytes(top)
    for image in images:
        if is_list:
            (directory / f"{image.manifest.digest.removeprefix('sha256:')}.manifest.json").write_bytes(
                image.manifest_bytes
            )
        for blob in image.blobs:
            hex_digest = blob.digest.removeprefix("sha256:")
            target = directory / hex_digest
            if not target.exists():
                try:
                    os.link(_blobs(layout) / hex_digest, target)
                except OSError:
                    shutil.copyfile(_blobs(layout) / hex_digest, target)
    return f"dir:{directory}"


def _layer_blob(written: WrittenLayer, types: MediaTypes) -> Layer:
    return Layer(
        digest=written.digest,
        size=written.size,
        media_type=types.layer_gzip if written.compressed else types.layer_tar,
        diff_id=written.diff_id,
        uncompressed_size=written.uncompressed_size,
        path=written.path,
    )


def _write_image(
    layout: Path,
    layers: Sequence[LayerSpec | int],
    *,
    types: MediaTypes,
    platform: Platform,
    seed: str,
    compress: bool,
    compresslevel: int,
    random_source: RandomSource,
) -> tuple[Blob, bytes, Blob, bytes, tuple[Layer, ...]]:
    built: list[Layer] = []
    for number, item in enumerate(layers):
        written = write_layer(
            _blobs(layout),
            as_layer_spec(item, number),
            seed=f"{seed}:{platform}:{number}",
            compress=compress,
            compresslevel=compresslevel,
            random_source=random_source,
        )
        built.append(_layer_blob(written, types))
    config = {
        **platform.as_dict(),
        "created": CREATED,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in built]},
        "history": [{"created": CREATED, "created_by": f"rig layer {n} (seed {seed})"} for n in range(len(built))],
    }
    config_bytes = canonical_json(config)
    config_blob = Blob(*write_blob(_blobs(layout), config_bytes), types.config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": types.manifest,
        "config": config_blob.descriptor(),
        "layers": [layer.descriptor() for layer in built],
    }
    manifest_bytes = canonical_json(manifest)
    manifest_blob = Blob(*write_blob(_blobs(layout), manifest_bytes), types.manifest)
    return manifest_blob, manifest_bytes, config_blob, config_bytes, tuple(built)


def build_image(
    layout: Path,
    layers: Sequence[LayerSpec | int] = (1024,),
    *,
    tag: str = "latest",
    platform: Platform = AMD64,
    seed: str | int = 0,
    compress: bool = True,
    compresslevel: int = 1,
    docker: bool = False,
    random_source: RandomSource = "seeded",
) -> BuiltImage:
    """One single-platform image tagged `tag` in the OCI layout `layout` (created if missing).

    layers: LayerSpec (files with sizes or bytes) or an int N (one file of N random bytes) per layer.
    docker=True uses Docker v2 media types (manifest.v2, container.image.v1, rootfs.diff.tar.gzip).
    Same arguments, same bytes (random_source="seeded"); change `seed` to get different blobs.
    """
    _init_layout(layout)
    types = DOCKER if docker else OCI
    manifest, manifest_bytes, config, config_bytes, built = _write_image(
        layout,
        layers,
        types=types,
        platform=platform,
        seed=str(seed),
        compress=compress,
        compresslevel=compresslevel,
        random_source=random_source,
    )
    _tag_in_layout(layout, manifest.descriptor(), tag)
    image = BuiltImage(layout, tag, manifest, manifest_bytes, config, config_bytes, built, platform)
    source = _dir_view(layout, tag, manifest_bytes, [image], is_list=False) if docker else f"oci:{layout}:{tag}"
    return dataclasses.replace(image, source=source)


def build_multi_arch(
    layout: Path,
    layers: Sequence[LayerSpec | int] = (1024,),
    *,
    tag: str = "latest",
    platforms: Sequence[Platform] = (AMD64, ARM64),
    seed: str | int = 0,
    compress: bool = True,
    compresslevel: int = 1,
    docker: bool = False,
    random_source: RandomSource = "seeded",
) -> BuiltIndex:
    """An index (OCI) or manifest list (docker=True) over one image per platform, each with its own blobs."""
    _init_layout(layout)
    types = DOCKER if docker else OCI
    images: list[BuiltImage] = []
    for platform in platforms:
        manifest, manifest_bytes, config, config_bytes, built = _write_image(
            layout,
            layers,
            types=types,
            platform=platform,
            seed=str(seed),
            compress=compress,
            compresslevel=compresslevel,
            random_source=random_source,
        )
        images.append(BuiltImage(layout, None, manifest, manifest_bytes, config, config_bytes, built, platform))
    index = {
        "schemaVersion": 2,
        "mediaType": types.index,
        "manifests": [{**image.manifest.descriptor(), "platform": image.platform.as_dict()} for image in images],
    }
    index_bytes = canonical_json(index)
    index_blob = Blob(*write_blob(_blobs(layout), index_bytes), types.index)
    _tag_in_layout(layout, index_blob.descriptor(), tag)
    source = _dir_view(layout, tag, index_bytes, images, is_list=True) if docker else f"oci:{layout}:{tag}"
    return BuiltIndex(layout, tag, index_blob, index_bytes, tuple(images), source)

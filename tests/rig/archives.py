"""Image archives written by hand with tarfile, for what skopeo does not write: several images in one docker
save, docker's own layouts (legacy ``<id>/layer.tar``, docker >= 25's OCI index next to manifest.json),
gzip-compressed copies, and hostile tars (any entry list: links, devices, duplicates, bad names).

Layers and configs come from rig images (BuiltImage): build them with compress=False for the uncompressed
layers docker saves, or compress=True for the gzip layers some tools put in a docker-archive.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from rig.images import REF_NAME, BuiltImage

__all__ = [
    "CONTAINERD_NAME",
    "DockerStyle",
    "TarEntry",
    "chardev",
    "directory",
    "docker_save_entries",
    "fifo",
    "file_entry",
    "gzip_file",
    "hardlink",
    "layout_entries",
    "snapshot",
    "symlink",
    "tar_bytes",
    "write_docker_save",
    "write_tar",
]

CONTAINERD_NAME = "io.containerd.image.name"
DockerStyle = Literal["links", "legacy", "docker25"]
_MTIME = 1_700_000_000


@dataclass(frozen=True)
class TarEntry:
    """One tar member: a regular file (``data``, or ``source`` streamed from disk), or another ``kind``."""

    name: str
    data: bytes | None = None
    source: Path | None = None
    kind: bytes = tarfile.REGTYPE
    linkname: str = ""


def file_entry(name: str, data: bytes | str) -> TarEntry:
    return TarEntry(name, data=data.encode() if isinstance(data, str) else data)


def symlink(name: str, target: str) -> TarEntry:
    return TarEntry(name, kind=tarfile.SYMTYPE, linkname=target)


def hardlink(name: str, target: str) -> TarEntry:
    return TarEntry(name, kind=tarfile.LNKTYPE, linkname=target)


def directory(name: str) -> TarEntry:
    return TarEntry(name, kind=tarfile.DIRTYPE)


def fifo(name: str) -> TarEntry:
    return TarEntry(name, kind=tarfile.FIFOTYPE)


def chardev(name: str) -> TarEntry:
    return TarEntry(name, kind=tarfile.CHRTYPE)


def write_tar(path: Path, entries: Sequence[TarEntry]) -> Path:
    """The entries in order, exactly as given (no name checks: hostile names are the point)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_entries(tar, entries)
    return path


def tar_bytes(entries: Sequence[TarEntry]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_entries(tar, entries)
    return out.getvalue()


def _add_entries(tar: tarfile.TarFile, entries: Sequence[TarEntry]) -> None:
    for entry in entries:
        info = tarfile.TarInfo(entry.name)
        info.type, info.linkname, info.mtime, info.mode = entry.kind, entry.linkname, _MTIME, 0o644
        if entry.source is not None:
            info.size = entry.source.stat().st_size
            with entry.source.open("rb") as f:
                tar.addfile(info, f)
        elif entry.data is not None:
            info.size = len(entry.data)
            tar.addfile(info, io.BytesIO(entry.data))
        else:
            tar.addfile(info)


def gzip_file(src: Path, dest: Path, level: int = 1) -> Path:
    with src.open("rb") as f, gzip.open(dest, "wb", compresslevel=level) as out:
        shutil.copyfileobj(f, out, 1 << 20)
    return dest


def write_docker_save(
    path: Path,
    images: Sequence[tuple[BuiltImage, Sequence[str]]],
    *,
    style: DockerStyle = "links",
    manifest_last: bool = True,
) -> Path:
    return write_tar(path, docker_save_entries(images, style=style, manifest_last=manifest_last))


def docker_save_entries(
    images: Sequence[tuple[BuiltImage, Sequence[str]]],
    *,
    style: DockerStyle = "links",
    manifest_last: bool = True,
) -> list[TarEntry]:
    """A docker save of ``images`` (each with its RepoTags), in one of docker's layouts:

    links     ``<diff_id hex>.tar`` layers, and ``<id>/layer.tar`` symlinks to them that manifest.json names
              (what skopeo writes, except that skopeo's manifest.json names the ``.tar`` files)
    legacy    ``<id>/layer.tar`` regular files (docker 1.10 to 24); a layer already written is a symlink
    docker25  ``blobs/sha256/<hex>`` for everything, manifest.json plus an OCI index.json naming the
              images with io.containerd.image.name and org.opencontainers.image.ref.name
    """
    blobs: dict[str, TarEntry] = {}
    meta: list[TarEntry] = []
    manifest: list[dict[str, object]] = []
    index: list[dict[str, object]] = []
    for image, tags in images:
        config_name = _add_config(blobs, image, style)
        layer_names = [_add_layer(blobs, meta, image, n, style) for n in range(len(image.layers))]
        manifest.append({"Config": config_name, "RepoTags": list(tags) or None, "Layers": layer_names})
        if style == "docker25":
            _add_blob(blobs, image.manifest_digest, TarEntry("", data=image.manifest_bytes))
            index.append(_index_entry(image, tags))
    docs = [file_entry("manifest.json", json.dumps(manifest))]
    if style == "docker25":
        docs += [
            file_entry("index.json", json.dumps({"schemaVersion": 2, "manifests": index})),
            file_entry("oci-layout", '{"imageLayoutVersion": "1.0.0"}'),
        ]
    body = [*blobs.values(), *meta]
    return [*body, *docs] if manifest_last else [*docs, *body]


def _add_blob(blobs: dict[str, TarEntry], digest: str, entry: TarEntry) -> str:
    name = "blobs/sha256/" + digest.removeprefix("sha256:")
    blobs.setdefault(name, replace(entry, name=name))
    return name


def _add_config(blobs: dict[str, TarEntry], image: BuiltImage, style: DockerStyle) -> str:
    entry = TarEntry("", data=image.config_bytes)
    if style == "docker25":
        return _add_blob(blobs, image.config_digest, entry)
    name = image.config_digest.removeprefix("sha256:") + ".json"
    blobs.setdefault(name, replace(entry, name=name))
    return name


def _layer_id(image: BuiltImage, number: int) -> str:
    return hashlib.sha256(f"{image.config_digest}:{number}".encode()).hexdigest()


def _add_layer(blobs: dict[str, TarEntry], meta: list[TarEntry], image: BuiltImage, number: int, style: str) -> str:
    layer = image.layers[number]
    entry = TarEntry("", source=layer.path)
    if style == "docker25":
        return _add_blob(blobs, layer.digest, entry)
    layer_id = _layer_id(image, number)
    meta += [file_entry(f"{layer_id}/VERSION", "1.0"), file_entry(f"{layer_id}/json", json.dumps({"id": layer_id}))]
    link = f"{layer_id}/layer.tar"
    if style == "links":
        target = layer.diff_id.removeprefix("sha256:") + ".tar"
        blobs.setdefault(target, replace(entry, name=target))
        meta.append(symlink(link, f"../{target}"))
        return link
    first = next((e.name for e in blobs.values() if e.source == layer.path), None)
    if first is None:
        blobs[link] = replace(entry, name=link)
    else:
        meta.append(symlink(link, f"../{first}"))
    return link


def _index_entry(image: BuiltImage, tags: Sequence[str]) -> dict[str, object]:
    entry: dict[str, object] = image.manifest.descriptor()
    if tags:
        full = tags[0] if "/" in tags[0] else f"docker.io/library/{tags[0]}"
        entry["annotations"] = {CONTAINERD_NAME: full, REF_NAME: tags[0].rpartition(":")[2]}
    return entry


def layout_entries(layout: Path, *, skip: Sequence[str] = ()) -> list[TarEntry]:
    """An OCI layout folder as oci-archive entries (oci-layout, index.json, blobs/sha256/*), minus ``skip`` digests."""
    skipped = {d.removeprefix("sha256:") for d in skip}
    blobs = sorted(p for p in (layout / "blobs" / "sha256").iterdir() if p.is_file() and not p.name.startswith("."))
    entries = [
        TarEntry("oci-layout", source=layout / "oci-layout"),
        TarEntry("index.json", source=layout / "index.json"),
    ]
    entries += [TarEntry(f"blobs/sha256/{p.name}", source=p) for p in blobs if p.name not in skipped]
    return entries


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256 of its content): what "the cache as it was" means."""
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }

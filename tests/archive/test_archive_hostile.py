"""Hostile and broken archives: each one is an ArchiveError (exit 7) with a one-line message naming the
problem, and leaves the cache exactly as it was (blobs this extract had already added are removed again)."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from rig.archives import (
    TarEntry,
    chardev,
    docker_save_entries,
    fifo,
    file_entry,
    hardlink,
    layout_entries,
    snapshot,
    symlink,
    tar_bytes,
    write_docker_save,
    write_tar,
)
from rig.images import BuiltImage, build_image

from docker_image_pusher.cache import Cache
from docker_image_pusher.errors import ArchiveError
from docker_image_pusher.extract import extract_archive


@dataclass(frozen=True)
class Images:
    gzip: BuiltImage  # gzip layers: digests known only once read, diff_ids checked while reading
    plain: BuiltImage  # uncompressed layers, not in the cache before the test
    oci: BuiltImage  # for OCI layouts


@pytest.fixture(scope="module")
def images(gzip_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Images:
    plain = build_image(tmp_path_factory.mktemp("plain"), (2000, 50_000, 3000), seed="hostile", compress=False)
    oci = build_image(tmp_path_factory.mktemp("oci"), (2000, 9000), seed="hostile-oci", compress=True)
    return Images(gzip_image, plain, oci)


Build = Callable[[Images], "list[TarEntry] | bytes"]


def _save(image: BuiltImage) -> list[TarEntry]:
    return docker_save_entries([(image, ["app:v1"])])


def _with_manifest(entries: list[TarEntry], edit: Callable[[dict[str, Any]], None]) -> list[TarEntry]:
    (manifest,) = (e for e in entries if e.name == "manifest.json")
    assert manifest.data is not None
    items = json.loads(manifest.data)
    edit(items[0])
    return [replace(e, data=json.dumps(items).encode()) if e is manifest else e for e in entries]


def _with_data(entries: list[TarEntry], name: str, change: Callable[[bytes], bytes]) -> list[TarEntry]:
    def read(e: TarEntry) -> bytes:
        return e.data if e.data is not None else e.source.read_bytes() if e.source else b""

    return [TarEntry(e.name, data=change(read(e))) if e.name == name else e for e in entries]


def _layer_name(image: BuiltImage, number: int) -> str:
    return image.layers[number].diff_id.removeprefix("sha256:") + ".tar"


def _config_name(image: BuiltImage) -> str:
    return image.config_digest.removeprefix("sha256:") + ".json"


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


def _other_gzip_tar(_: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        info = tarfile.TarInfo("other.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"other"))
    return out.getvalue()


def _oci(image: BuiltImage) -> list[TarEntry]:
    return layout_entries(image.layout)


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _truncated(images: Images) -> bytes:
    data = tar_bytes(_save(images.plain))
    return data[: data.index(images.plain.layers[1].path.read_bytes()[:512]) + 1000]


CASES: dict[str, tuple[Build, str]] = {
    # names and member types
    "dotdot-name": (lambda i: [*_save(i.gzip), file_entry("../evil", "x")], "points outside the archive ('..')"),
    "absolute-name": (lambda i: [*_save(i.gzip), file_entry("/tmp/evil", "x")], "is an absolute path"),
    "symlink-outside": (
        lambda i: [*_save(i.gzip), symlink("x/evil", "../../etc/passwd")],
        "points outside the archive",
    ),
    "symlink-absolute": (lambda i: [*_save(i.gzip), symlink("evil", "/etc/passwd")], "points outside the archive"),
    "hardlink-outside": (lambda i: [*_save(i.gzip), hardlink("evil", "../etc/passwd")], "points outside the archive"),
    "symlink-loop": (lambda i: [*_save(i.gzip), symlink("a", "b"), symlink("b", "a")], "links form a loop"),
    "layer-link-to-itself": (
        lambda i: [e if not e.name.endswith("/layer.tar") else symlink(e.name, "layer.tar") for e in _save(i.gzip)],
        "links form a loop",
    ),
    "fifo": (lambda i: [*_save(i.gzip), fifo("pipe")], "is a fifo"),
    "device": (lambda i: [*_save(i.gzip), chardev("tty")], "is a device"),
    "duplicate-manifest-json": (
        lambda i: [*_save(i.gzip), file_entry("manifest.json", "[]")],
        "member 'manifest.json' appears twice",
    ),
    "duplicate-layer": (
        lambda i: [*_save(i.gzip), TarEntry(_layer_name(i.gzip, 0), data=b"x")],
        "appears twice",
    ),
    # what manifest.json names
    "missing-layer": (
        lambda i: [e for e in _save(i.gzip) if e.name != _layer_name(i.gzip, 1)],
        "which is not in the archive",
    ),
    "missing-config": (
        lambda i: [e for e in _save(i.gzip) if e.name != _config_name(i.gzip)],
        "Config names",
    ),
    "layer-named-outside": (
        lambda i: _with_manifest(_save(i.gzip), lambda m: m.update(Layers=["../x.tar", "y.tar"])),
        "points outside the archive",
    ),
    "more-layers-than-diff-ids": (
        lambda i: _with_manifest(_save(i.gzip), lambda m: m.update(Layers=[*m["Layers"], m["Layers"][0]])),
        "has 3 layers but its config lists 2 diff_ids",
    ),
    "fewer-layers-than-diff-ids": (
        lambda i: _with_manifest(_save(i.gzip), lambda m: m.update(Layers=m["Layers"][:1])),
        "has 1 layers but its config lists 2 diff_ids",
    ),
    "config-not-json": (
        lambda i: _with_manifest([*_save(i.gzip), file_entry("c.json", "{nope")], lambda m: m.update(Config="c.json")),
        "config (c.json) is not valid JSON",
    ),
    "config-without-diff-ids": (
        lambda i: _with_manifest([*_save(i.gzip), file_entry("c.json", "{}")], lambda m: m.update(Config="c.json")),
        "has no rootfs.diff_ids list",
    ),
    "config-not-its-digest": (
        lambda i: _with_data(_save(i.gzip), _config_name(i.gzip), lambda d: d.replace(b"amd64", b"arm64")),
        "has digest sha256:",
    ),
    "uncompressed-layer-named-not-its-diff-id": (
        lambda i: _with_manifest(
            [*_save(i.plain), TarEntry("0" * 64 + ".tar", source=i.plain.layers[0].path)],
            lambda m: m["Layers"].__setitem__(0, "0" * 64 + ".tar"),
        ),
        "is named sha256:0000000000000000000000000000000000000000000000000000000000000000 but the config's diff_id",
    ),
    "bad-repo-tag": (
        lambda i: _with_manifest(_save(i.gzip), lambda m: m.update(RepoTags=["Not A Name!"])),
        "'Not A Name!' is not a valid image name",
    ),
    # the JSON files themselves
    "manifest-json-not-json": (
        lambda i: [e if e.name != "manifest.json" else file_entry("manifest.json", "[{") for e in _save(i.gzip)],
        "manifest.json is not valid JSON",
    ),
    "manifest-json-not-a-list": (
        lambda i: [e if e.name != "manifest.json" else file_entry("manifest.json", "{}") for e in _save(i.gzip)],
        "manifest.json is not a list of images",
    ),
    "manifest-json-too-big": (
        lambda i: [file_entry("manifest.json", b"[" + b" " * (17 << 20) + b"]")],
        "over the 16777216 byte limit",
    ),
    "index-json-not-json": (
        lambda i: [e if e.name != "index.json" else file_entry("index.json", "{") for e in _oci(i.oci)],
        "index.json is not valid JSON",
    ),
    # not an image archive at all
    "not-an-image": (lambda i: [file_entry("hello.txt", "hi")], "not an image archive: no manifest.json or index.json"),
    "not-a-tar": (lambda i: os.urandom(4096), "not a tar archive"),
    "empty-file": (lambda i: b"", "not a tar archive"),
    "truncated": (_truncated, "truncated"),
    # OCI layouts
    "oci-manifest-not-its-digest": (
        lambda i: _with_data(_oci(i.oci), _blob_name(i.oci.manifest_digest), lambda d: d.replace(b'"size"', b'"Size"')),
        "has digest sha256:",
    ),
    "oci-blob-wrong-size": (
        lambda i: _with_data(_oci(i.oci), _blob_name(i.oci.layer_digests[0]), lambda d: d + b"\0"),
        "its descriptor says",
    ),
    "oci-layer-missing": (
        lambda i: [e for e in _oci(i.oci) if e.name != _blob_name(i.oci.layer_digests[1])],
        "which is not in the archive",
    ),
    # found while the blobs stream into the cache: what was added is removed again
    "tampered-uncompressed-layer": (
        lambda i: _with_data(_save(i.plain), _layer_name(i.plain, 2), _flip),
        "content has digest",
    ),
    "gzip-layer-not-its-diff-id": (
        lambda i: _with_data(_save(i.gzip), _layer_name(i.gzip, 1), _other_gzip_tar),
        "its uncompressed content has digest",
    ),
    "gzip-layer-corrupt": (
        lambda i: _with_data(_save(i.gzip), _layer_name(i.gzip, 1), lambda d: d[:10] + b"\xff" * (len(d) - 10)),
        "is not a valid gzip stream",
    ),
    "oci-layer-tampered": (
        lambda i: _with_data(_oci(i.oci), _blob_name(i.oci.layer_digests[1]), _flip),
        "content has digest",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_archive_is_refused_and_the_cache_is_left_as_it_was(
    case: str, images: Images, tar_image: BuiltImage, tmp_path: Path, cache: Cache
) -> None:
    extract_archive(write_docker_save(tmp_path / "good.tar", [(tar_image, ["good/app:v1"])]), cache)
    build, message = CASES[case]
    made = build(images)
    archive = tmp_path / "hostile.tar"
    if isinstance(made, bytes):
        archive.write_bytes(made)
    else:
        write_tar(archive, made)
    before = snapshot(cache.root)

    with pytest.raises(ArchiveError) as caught:
        extract_archive(archive, cache, repository="team/app" if "oci" in case else None)

    assert message in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.exit_code == 7
    assert snapshot(cache.root) == before

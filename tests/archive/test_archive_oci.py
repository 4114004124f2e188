"""OCI archives, OCI layout folders and docker >= 25 saves: the archive's own manifests, digests exact."""

from __future__ import annotations

import json
from pathlib import Path

from rig.archives import docker_save_entries, layout_entries, write_docker_save, write_tar
from rig.fixtures import SampleImages
from rig.images import AMD64, ARM64, BuiltImage, Platform
from rig.skopeo import copy

from docker_image_pusher import media_types as mt
from docker_image_pusher.archive import scan_archive
from docker_image_pusher.cache import Cache, ImageEntry
from docker_image_pusher.extract import extract_archive


def _entry(cache: Cache, repository: str, reference: str) -> ImageEntry:
    entry = cache.get(repository, reference)
    assert entry is not None, sorted(cache.entries())
    return entry


def test_skopeo_oci_archive_keeps_the_manifest_digest(sample_image: SampleImages, tmp_path: Path, cache: Cache) -> None:
    image = sample_image([2048, 300_000, 5])
    archive = tmp_path / "app.tar"
    copy(image.source, f"oci-archive:{archive}:v1", multi_arch=False)

    result = extract_archive(archive, cache, repository="team/app")

    assert result.keys == ("team/app/v1",)  # skopeo names the image by tag only: the repository is ours
    entry = _entry(cache, "team/app", "v1")
    assert entry.manifest_digest == image.manifest_digest
    assert (cache.root / entry.manifest_path).read_bytes() == image.manifest_bytes
    assert set(entry.blobs) == {image.config_digest, *image.layer_digests}
    assert entry.source == str(archive)


def test_skopeo_multi_arch_oci_archive_keeps_the_index(
    sample_image: SampleImages, tmp_path: Path, cache: Cache
) -> None:
    index = sample_image.multi_arch([1024, 2048], tag="multi")
    archive = tmp_path / "multi.tar"
    copy(index.source, f"oci-archive:{archive}:multi", multi_arch=True)

    extract_archive(archive, cache, image="multi", repository="team/multi")

    entry = _entry(cache, "team/multi", "multi")
    assert entry.manifest_digest == index.index_digest
    assert entry.config_digest is None
    assert set(entry.manifests) == {i.manifest_digest for i in index.images}
    assert entry.platforms == ["linux/amd64", "linux/arm64/v8"]
    assert set(entry.blobs) == {d for i in index.images for d in (i.config_digest, *i.layer_digests)}


def test_oci_layout_folder(sample_image: SampleImages, cache: Cache) -> None:
    image = sample_image([4096], tag="v3")

    extract_archive(image.layout, cache, repository="registry.example.com/team/app")

    assert _entry(cache, "registry.example.com/team/app", "v3").manifest_digest == image.manifest_digest


def test_docker_25_save_prefers_the_oci_index(tar_image: BuiltImage, tmp_path: Path, cache: Cache) -> None:
    archive = write_docker_save(tmp_path / "a.tar", [(tar_image, ["app:v1"])], style="docker25")

    assert scan_archive(archive).format == "docker-archive+oci"
    extract_archive(archive, cache)

    entry = _entry(cache, "library/app", "v1")  # named by io.containerd.image.name
    assert entry.manifest_digest == tar_image.manifest_digest
    assert entry.media_type == mt.OCI_MANIFEST


def test_docker_25_save_without_annotations_takes_the_repo_tags(
    tar_image: BuiltImage, tmp_path: Path, cache: Cache
) -> None:
    entries = docker_save_entries([(tar_image, ["team/app:v9"])], style="docker25")
    index = {"schemaVersion": 2, "manifests": [tar_image.manifest.descriptor()]}
    entries = [e if e.name != "index.json" else type(e)("index.json", data=json.dumps(index).encode()) for e in entries]
    archive = write_tar(tmp_path / "a.tar", entries)

    extract_archive(archive, cache)

    assert _entry(cache, "team/app", "v9").manifest_digest == tar_image.manifest_digest


def test_an_index_keeps_only_the_platforms_the_archive_holds(
    sample_image: SampleImages, tmp_path: Path, cache: Cache
) -> None:
    index = sample_image.multi_arch([1024], tag="multi", platforms=(AMD64, ARM64, Platform("linux", "s390x")))
    arm = index.image_for(ARM64)
    archive = write_tar(tmp_path / "a.tar", layout_entries(index.layout, skip=arm.layer_digests))

    result = extract_archive(archive, cache, repository="team/multi")

    entry = _entry(cache, "team/multi", "multi")
    assert entry.platforms == ["linux/amd64", "linux/s390x"]
    assert entry.manifest_digest != index.index_digest
    children = json.loads((cache.root / entry.manifest_path).read_bytes())["manifests"]
    assert [c["digest"] for c in children] == [i.manifest_digest for i in index.images if i is not arm]
    assert result.notes and "2 of 3 platforms" in result.notes[0]


def test_an_index_with_one_platform_left_becomes_that_platforms_manifest(
    sample_image: SampleImages, tmp_path: Path, cache: Cache
) -> None:
    index = sample_image.multi_arch([1024], tag="multi")
    amd = index.image_for(AMD64)
    arm = index.image_for(ARM64)
    archive = write_tar(tmp_path / "a.tar", layout_entries(index.layout, skip=[arm.manifest_digest]))

    extract_archive(archive, cache, repository="team/multi")

    entry = _entry(cache, "team/multi", "multi")
    assert entry.manifest_digest == amd.manifest_digest
    assert entry.config_digest == amd.config_digest

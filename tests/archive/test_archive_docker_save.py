"""Classic docker-archives (no registry manifest inside) into the cache: skopeo's, and docker's own layouts."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rig.archives import (
    DockerStyle,
    TarEntry,
    docker_save_entries,
    file_entry,
    write_docker_save,
    write_tar,
)
from rig.fixtures import SampleImages
from rig.images import BuiltImage
from rig.skopeo import copy

from docker_image_pusher import media_types as mt
from docker_image_pusher.cache import Cache, ImageEntry
from docker_image_pusher.extract import extract_archive

DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"


def _manifest(cache: Cache, entry: ImageEntry) -> Any:
    raw = (cache.root / entry.manifest_path).read_bytes()
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == entry.manifest_digest
    return json.loads(raw)


def _every_blob_verifies(cache: Cache) -> None:
    for blob in cache.blobs_dir.iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name


def _entry(cache: Cache, repository: str, reference: str) -> ImageEntry:
    entry = cache.get(repository, reference)
    assert entry is not None, sorted(cache.entries())
    return entry


def test_skopeo_docker_archive_keeps_the_config_and_layer_digests(
    sample_image: SampleImages, tmp_path: Path, cache: Cache
) -> None:
    image = sample_image([2048, 300_000, 5], compress=False)
    archive = tmp_path / "app.tar"
    copy(image.source, f"docker-archive:{archive}:example/app:v1", multi_arch=False, preserve_digests=False)

    result = extract_archive(archive, cache)

    assert result.keys == ("example/app/v1",)
    assert (result.blobs, result.extracted, result.cached) == (4, 4, 0)
    entry = _entry(cache, "example/app", "v1")
    assert entry.config_digest == image.config_digest
    assert entry.media_type == mt.DOCKER_MANIFEST
    assert entry.source == str(archive)
    assert entry.registry is None
    manifest = _manifest(cache, entry)
    assert manifest["config"] == {
        "mediaType": mt.DOCKER_CONFIG,
        "size": image.config.size,
        "digest": image.config_digest,
    }
    assert [layer["digest"] for layer in manifest["layers"]] == image.layer_digests
    assert [layer["digest"] for layer in manifest["layers"]] == [layer.diff_id for layer in image.layers]
    assert {layer["mediaType"] for layer in manifest["layers"]} == {DOCKER_LAYER_TAR}
    assert entry.platforms == ["linux/amd64"]
    _every_blob_verifies(cache)


def test_skopeo_decompresses_gzip_layers_so_the_layer_digests_are_the_diff_ids(
    sample_image: SampleImages, tmp_path: Path, cache: Cache
) -> None:
    image = sample_image([4096, 10_000], compress=True)
    archive = tmp_path / "app.tar"
    copy(image.source, f"docker-archive:{archive}:team/app:v2", multi_arch=False, preserve_digests=False)

    extract_archive(archive, cache)

    manifest = _manifest(cache, _entry(cache, "team/app", "v2"))
    assert [layer["digest"] for layer in manifest["layers"]] == [layer.diff_id for layer in image.layers]
    assert manifest["config"]["digest"] == image.config_digest


def test_synthesized_manifest_is_the_same_every_time(tar_image: BuiltImage, tmp_path: Path) -> None:
    archive = write_docker_save(tmp_path / "a.tar", [(tar_image, ["app:v1"])])
    digests = set()
    for n in range(2):
        cache = Cache(tmp_path / f"cache-{n}")
        extract_archive(archive, cache)
        digests.add(_entry(cache, "library/app", "v1").manifest_digest)
    raw = (tmp_path / "cache-0" / "manifests" / "library" / "app" / "v1").read_bytes()
    assert len(digests) == 1
    assert raw.startswith(b'{\n   "schemaVersion": 2,\n   "mediaType": "application/vnd.docker.distribution')


@pytest.mark.parametrize("style", ["links", "legacy"])
@pytest.mark.parametrize("manifest_last", [True, False])
def test_docker_layouts_with_manifest_json_anywhere(
    tar_image: BuiltImage, tmp_path: Path, cache: Cache, style: DockerStyle, manifest_last: bool
) -> None:
    archive = write_docker_save(tmp_path / "a.tar", [(tar_image, ["app:v1"])], style=style, manifest_last=manifest_last)

    extract_archive(archive, cache)

    manifest = _manifest(cache, _entry(cache, "library/app", "v1"))
    assert [layer["digest"] for layer in manifest["layers"]] == tar_image.layer_digests
    assert manifest["config"]["digest"] == tar_image.config_digest


def test_gzip_layers_keep_their_bytes_and_their_diff_ids_are_checked(
    gzip_image: BuiltImage, tmp_path: Path, cache: Cache
) -> None:
    archive = write_docker_save(tmp_path / "a.tar", [(gzip_image, ["app:gz"])], style="legacy")

    extract_archive(archive, cache)

    manifest = _manifest(cache, _entry(cache, "library/app", "gz"))
    assert [layer["digest"] for layer in manifest["layers"]] == gzip_image.layer_digests
    assert {layer["mediaType"] for layer in manifest["layers"]} == {mt.DOCKER_LAYER}
    assert [layer["size"] for layer in manifest["layers"]] == gzip_image.layer_sizes


def test_a_zstd_layer_makes_an_oci_manifest(tar_image: BuiltImage, tmp_path: Path, cache: Cache) -> None:
    zstd_layer = subprocess.run(
        ["zstd", "-q", "-c", str(tar_image.layers[1].path)], capture_output=True, check=True
    ).stdout
    entries = [
        e if e.source != tar_image.layers[1].path else TarEntry(e.name, data=zstd_layer)
        for e in docker_save_entries([(tar_image, ["app:zst"])])
    ]
    archive = write_tar(tmp_path / "a.tar", entries)

    result = extract_archive(archive, cache)

    entry = _entry(cache, "library/app", "zst")
    manifest = _manifest(cache, entry)
    assert entry.media_type == manifest["mediaType"] == mt.OCI_MANIFEST
    assert manifest["config"]["mediaType"] == mt.OCI_CONFIG
    assert [layer["mediaType"] for layer in manifest["layers"]] == [mt.OCI_LAYER, mt.OCI_LAYER_ZSTD]
    assert manifest["layers"][1]["digest"] == "sha256:" + hashlib.sha256(zstd_layer).hexdigest()
    assert result.notes


def test_several_images_in_one_tar_share_their_common_layer(sample_image: SampleImages, tmp_path: Path) -> None:
    first = sample_image([1000, 2000], seed="shared", compress=False)
    second = sample_image([1000, 3000], seed="shared", compress=False)
    assert first.layer_digests[0] == second.layer_digests[0]
    archive = write_docker_save(tmp_path / "a.tar", [(first, ["app:v1", "app:latest"]), (second, ["other/tool:2"])])
    cache = Cache(tmp_path / "cache")

    result = extract_archive(archive, cache)

    assert sorted(result.keys) == ["library/app/latest", "library/app/v1", "other/tool/2"]
    assert result.blobs == 5  # two configs, three distinct layers
    assert _entry(cache, "library/app", "v1").manifest_digest == _entry(cache, "library/app", "latest").manifest_digest
    assert _entry(cache, "other/tool", "2").config_digest == second.config_digest


def test_extracting_again_copies_nothing(tar_image: BuiltImage, tmp_path: Path, cache: Cache) -> None:
    archive = write_docker_save(tmp_path / "a.tar", [(tar_image, ["app:v1"])])
    extract_archive(archive, cache)

    again = extract_archive(archive, cache)

    assert (again.extracted, again.cached, again.bytes_extracted) == (0, 3, 0)


def test_extra_files_next_to_the_image_are_ignored(tar_image: BuiltImage, tmp_path: Path, cache: Cache) -> None:
    entries = docker_save_entries([(tar_image, ["app:v1"])])
    archive = write_tar(tmp_path / "a.tar", [*entries, file_entry("repositories", '{"app": {"v1": "x"}}')])

    assert extract_archive(archive, cache).keys == ("library/app/v1",)

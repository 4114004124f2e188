"""Archives gzip-compressed as a whole: told by their first bytes, decompressed once into the cache's tmp/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from rig.archives import docker_save_entries, gzip_file, snapshot, symlink, write_docker_save, write_tar
from rig.fixtures import SampleImages
from rig.images import BuiltImage
from rig.skopeo import copy

from docker_image_pusher.cache import Cache
from docker_image_pusher.errors import ArchiveError
from docker_image_pusher.extract import extract_archive


def test_a_gzipped_docker_save_whatever_its_name(tar_image: BuiltImage, tmp_path: Path, cache: Cache) -> None:
    plain = write_docker_save(tmp_path / "a.tar", [(tar_image, ["app:v1"])])
    archive = gzip_file(plain, tmp_path / "looks-uncompressed.tar")

    extract_archive(archive, cache)

    entry = cache.get("library/app", "v1")
    assert entry is not None and entry.config_digest == tar_image.config_digest
    assert set(entry.blobs) == {tar_image.config_digest, *tar_image.layer_digests}
    assert not [p for p in cache.tmp_dir.iterdir() if p.is_file()]  # the decompressed copy is gone


def test_a_gzipped_oci_archive_keeps_its_digest(sample_image: SampleImages, tmp_path: Path, cache: Cache) -> None:
    image = sample_image([2048, 4096])
    plain = tmp_path / "app.tar"
    copy(image.source, f"oci-archive:{plain}:v1", multi_arch=False)
    archive = gzip_file(plain, tmp_path / "app.tar.gz")

    extract_archive(archive, cache, repository="team/app")

    entry = cache.get("team/app", "v1")
    assert entry is not None and entry.manifest_digest == image.manifest_digest


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "the gzip stream ends early"),
        (lambda data: data[:20] + bytes(b ^ 0x55 for b in data[20:200]) + data[200:], "not a valid gzip stream"),
    ],
    ids=["truncated", "corrupt"],
)
def test_a_damaged_gzip_archive_is_refused_and_leaves_nothing(
    tar_image: BuiltImage, tmp_path: Path, cache: Cache, damage: Callable[[bytes], bytes], message: str
) -> None:
    gz = gzip_file(write_docker_save(tmp_path / "a.tar", [(tar_image, ["app:v1"])]), tmp_path / "a.tar.gz")
    gz.write_bytes(damage(gz.read_bytes()))
    before = snapshot(cache.root)

    with pytest.raises(ArchiveError) as caught:
        extract_archive(gz, cache)

    assert message in caught.value.message
    assert snapshot(cache.root) == before


def test_a_gzipped_hostile_tar_leaves_no_decompressed_copy(tar_image: BuiltImage, tmp_path: Path, cache: Cache) -> None:
    entries = [*docker_save_entries([(tar_image, ["app:v1"])]), symlink("evil", "../../etc/passwd")]
    archive = gzip_file(write_tar(tmp_path / "a.tar", entries), tmp_path / "a.tgz")
    before = snapshot(cache.root)

    with pytest.raises(ArchiveError, match="link 'evil' points outside the archive"):
        extract_archive(archive, cache)

    assert snapshot(cache.root) == before

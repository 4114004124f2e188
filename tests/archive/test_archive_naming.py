"""Which images an extract caches, and under which "{repository}/{reference}" keys."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from rig.archives import CONTAINERD_NAME, layout_entries, write_docker_save, write_tar
from rig.fixtures import SampleImages
from rig.images import REF_NAME, BuiltImage

from docker_image_pusher.archive import scan_archive, select_images
from docker_image_pusher.errors import NotFoundError, UsageError


def _keys(
    archive: Path, image: str | None = None, repository: str | None = None, reference: str | None = None
) -> list[str]:
    return sorted(n.key for n in select_images(scan_archive(archive), image, repository, reference))


@pytest.fixture
def two_images(sample_image: SampleImages) -> tuple[BuiltImage, BuiltImage]:
    return sample_image([100], compress=False), sample_image([200], compress=False)


def _save(tmp_path: Path, images: Sequence[tuple[BuiltImage, Sequence[str]]]) -> Path:
    return write_docker_save(tmp_path / "a.tar", images)


def test_repo_tags_are_read_as_docker_reads_them(two_images: tuple[BuiltImage, BuiltImage], tmp_path: Path) -> None:
    first, second = two_images
    archive = _save(
        tmp_path, [(first, ["nginx:1.27", "docker.io/library/nginx:latest"]), (second, ["ghcr.io/org/app:v1"])]
    )

    assert _keys(archive) == ["library/nginx/1.27", "library/nginx/latest", "org/app/v1"]
    assert _keys(archive, image="nginx:1.27") == ["library/nginx/1.27"]
    assert _keys(archive, image="ghcr.io/org/app:v1", repository="mirror/app") == ["mirror/app/v1"]
    assert _keys(archive, image="nginx:1.27", repository="mirror/nginx", reference="stable") == ["mirror/nginx/stable"]


def test_an_image_is_picked_by_digest_or_short_id(two_images: tuple[BuiltImage, BuiltImage], tmp_path: Path) -> None:
    first, second = two_images
    archive = _save(tmp_path, [(first, ["app:v1"]), (second, ["app:v2"])])

    assert _keys(archive, image=second.config_digest) == ["library/app/v2"]
    assert _keys(archive, image=second.config_digest.removeprefix("sha256:")[:12]) == ["library/app/v2"]


def test_an_image_not_in_the_archive(two_images: tuple[BuiltImage, BuiltImage], tmp_path: Path) -> None:
    archive = _save(tmp_path, [(two_images[0], ["app:v1"])])

    with pytest.raises(NotFoundError, match=r"app:v9 is not in the archive \(it holds: library/app:v1\)"):
        _keys(archive, image="app:v9")


def test_an_untagged_image_needs_a_repository(two_images: tuple[BuiltImage, BuiltImage], tmp_path: Path) -> None:
    archive = _save(tmp_path, [(two_images[0], [])])

    with pytest.raises(UsageError, match="has no repository name in the archive; name it with repository"):
        _keys(archive)
    assert _keys(archive, repository="team/app") == ["team/app/latest"]
    assert _keys(archive, repository="app", reference="v2") == ["library/app/v2"]


def test_the_repository_names_the_only_untagged_image(
    two_images: tuple[BuiltImage, BuiltImage], tmp_path: Path
) -> None:
    archive = _save(tmp_path, [(two_images[0], ["app:v1"]), (two_images[1], [])])

    assert _keys(archive, repository="team/other", reference="v5") == ["library/app/v1", "team/other/v5"]


def test_several_untagged_images_need_a_pick(two_images: tuple[BuiltImage, BuiltImage], tmp_path: Path) -> None:
    first, second = two_images
    archive = _save(tmp_path, [(first, []), (second, [])])

    with pytest.raises(UsageError, match=r"the archive holds 2 images without a name .*; pick one with --image"):
        _keys(archive, repository="team/app")
    assert _keys(archive, image=first.config_digest, repository="team/app") == ["team/app/latest"]


def test_repository_for_one_of_several_named_images_needs_a_pick(
    two_images: tuple[BuiltImage, BuiltImage], tmp_path: Path
) -> None:
    archive = _save(tmp_path, [(two_images[0], ["app:v1"]), (two_images[1], ["app:v2"])])

    with pytest.raises(UsageError, match="repository names one image but the archive holds 2; pick one with --image"):
        _keys(archive, repository="team/app")


@pytest.mark.parametrize(
    ("annotations", "keys"),
    [
        ({REF_NAME: "v1"}, ["team/default/v1"]),
        ({REF_NAME: "registry.example.com/team/app:v3"}, ["team/app/v3"]),
        ({REF_NAME: "localhost/app:v1"}, ["app/v1"]),  # podman: localhost is the registry
        ({REF_NAME: "v1", CONTAINERD_NAME: "docker.io/library/busybox:1.36"}, ["library/busybox/1.36"]),
    ],
)
def test_oci_names_are_a_tag_or_a_full_name(
    sample_image: SampleImages, tmp_path: Path, annotations: dict[str, str], keys: list[str]
) -> None:
    image = sample_image([100])
    index = {"schemaVersion": 2, "manifests": [{**image.manifest.descriptor(), "annotations": annotations}]}
    (image.layout / "index.json").write_text(json.dumps(index))
    archive = write_tar(tmp_path / "a.tar", layout_entries(image.layout))

    repository = "team/default" if keys == ["team/default/v1"] else None
    assert _keys(archive, repository=repository) == keys
    assert _keys(image.layout, repository=repository) == keys

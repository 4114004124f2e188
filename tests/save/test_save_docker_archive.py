"""--format docker: a `docker load`-compatible archive in Docker 25's hybrid layout, read back by skopeo."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from rig.fixtures import SampleImages
from rig.images import AMD64, ARM64
from rig.skopeo import run_skopeo
from save.save_rig import CacheImage, member_bytes, members, skopeo_json, skopeo_raw

from docker_image_pusher.cache import Cache
from docker_image_pusher.saving import save_images

IMAGE_NAME = "io.containerd.image.name"
REF_NAME = "org.opencontainers.image.ref.name"


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


@pytest.mark.parametrize("compress", [True, False], ids=["gzip-layers", "plain-layers"])
@pytest.mark.parametrize("docker_types", [False, True], ids=["oci-types", "docker-types"])
def test_skopeo_reads_the_docker_archive_with_layers_as_cached(
    cache: Cache,
    cache_image: CacheImage,
    sample_image: SampleImages,
    tmp_path: Path,
    compress: bool,
    docker_types: bool,
) -> None:
    image = sample_image([3000, 70_000], tag="v1", compress=compress, docker=docker_types)
    cache_image(image, "team/app")
    out = tmp_path / "app.tar"
    result = save_images(cache, ["team/app/v1"], out, "docker")
    assert result.names == ("127.0.0.1:5000/team/app:v1",) and result.blobs == 4

    names = [m.name for m in members(out)]
    blobs = {image.manifest_digest, image.config_digest, *image.layer_digests}
    assert names[:4] == ["oci-layout", "index.json", "manifest.json", "repositories"]
    assert sorted(names[4:]) == sorted(["blobs", "blobs/sha256", *(f"blobs/sha256/{_hex(d)}" for d in blobs)])
    for layer in image.layers:  # exactly the cached bytes, compressed or not
        assert member_bytes(out, f"blobs/sha256/{_hex(layer.digest)}") == layer.path.read_bytes()
    (item,) = json.loads(member_bytes(out, "manifest.json"))
    assert item == {
        "Config": f"blobs/sha256/{_hex(image.config_digest)}",
        "RepoTags": ["127.0.0.1:5000/team/app:v1"],
        "Layers": [f"blobs/sha256/{_hex(d)}" for d in image.layer_digests],
    }
    (top,) = json.loads(member_bytes(out, "index.json"))["manifests"]
    assert top["digest"] == image.manifest_digest and top["size"] == len(image.manifest_bytes)
    assert top["annotations"] == {IMAGE_NAME: "127.0.0.1:5000/team/app:v1", REF_NAME: "v1"}

    # skopeo decompresses layers itself: it reports them by diff_id, and the config as we saved it
    ref = f"docker-archive:{out}:127.0.0.1:5000/team/app:v1"
    inspected = skopeo_json(ref)
    assert inspected["Layers"] == [layer.diff_id for layer in image.layers]
    assert hashlib.sha256(skopeo_raw("--config", "--raw", ref)).hexdigest() == _hex(image.config_digest)
    assert skopeo_json(f"docker-archive:{out}")["Layers"] == inspected["Layers"]  # the only image, no name needed

    copied = tmp_path / "copied"
    run_skopeo(["copy", ref, f"oci:{copied}:v1"], timeout=120)
    (desc,) = json.loads((copied / "index.json").read_text())["manifests"]
    manifest = json.loads((copied / "blobs" / "sha256" / _hex(desc["digest"])).read_bytes())
    config = json.loads((copied / "blobs" / "sha256" / _hex(manifest["config"]["digest"])).read_bytes())
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]


def test_docker_hub_images_are_named_as_docker_prints_them(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path
) -> None:
    nginx = sample_image([100], tag="1.27", docker=True)
    mine = sample_image([200], tag="v2", docker=True)
    cache_image(nginx, "library/nginx", registry="registry-1.docker.io")
    cache_image(mine, "me/app", registry="registry-1.docker.io")
    out = tmp_path / "hub.tar"
    result = save_images(cache, ["me/app/v2", "library/nginx/1.27"], out)
    assert result.images == ("library/nginx/1.27", "me/app/v2")  # sorted: order of the keys does not matter
    assert result.names == ("docker.io/library/nginx:1.27", "docker.io/me/app:v2")
    items = json.loads(member_bytes(out, "manifest.json"))
    assert [i["RepoTags"] for i in items] == [["nginx:1.27"], ["me/app:v2"]]
    index = json.loads(member_bytes(out, "index.json"))
    assert [m["annotations"] for m in index["manifests"]] == [
        {IMAGE_NAME: "docker.io/library/nginx:1.27", REF_NAME: "1.27"},
        {IMAGE_NAME: "docker.io/me/app:v2", REF_NAME: "v2"},
    ]
    assert json.loads(member_bytes(out, "repositories")) == {
        "nginx": {"1.27": _hex(nginx.layer_digests[-1])},
        "me/app": {"v2": _hex(mine.layer_digests[-1])},
    }
    assert skopeo_json(f"docker-archive:{out}:nginx:1.27")["Layers"] == [nginx.layers[0].diff_id]
    assert skopeo_json(f"docker-archive:{out}:docker.io/me/app:v2")["Layers"] == [mine.layers[0].diff_id]


def test_a_multi_arch_index_keeps_every_platform_and_describes_amd64_in_manifest_json(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path
) -> None:
    index = sample_image.multi_arch([1000, 2000], tag="multi", platforms=(ARM64, AMD64), docker=True)
    cache_image(index, "team/multi")
    out = tmp_path / "multi.tar"
    result = save_images(cache, ["team/multi/multi"], out, "docker")
    assert any("linux/amd64 of 2 platforms" in note for note in result.notes)

    amd = index.image_for(AMD64)
    (item,) = json.loads(member_bytes(out, "manifest.json"))
    assert item["Config"] == f"blobs/sha256/{_hex(amd.config_digest)}"
    assert item["Layers"] == [f"blobs/sha256/{_hex(d)}" for d in amd.layer_digests]
    (top,) = json.loads(member_bytes(out, "index.json"))["manifests"]
    assert (top["digest"], top["mediaType"]) == (index.index_digest, index.index.media_type)
    assert member_bytes(out, f"blobs/sha256/{_hex(index.index_digest)}") == index.index_bytes
    for img in index.images:  # every platform is in the archive, manifests by content
        assert member_bytes(out, f"blobs/sha256/{_hex(img.manifest_digest)}") == img.manifest_bytes
        for blob in img.blobs:
            assert member_bytes(out, f"blobs/sha256/{_hex(blob.digest)}") == img.blob_path(blob.digest).read_bytes()

    assert skopeo_json(f"docker-archive:{out}")["Architecture"] == "amd64"


def test_the_first_real_platform_when_there_is_no_amd64(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path
) -> None:
    index = sample_image.multi_arch([100], platforms=(ARM64,))
    cache_image(index, "team/arm")
    out = tmp_path / "arm.tar"
    save_images(cache, ["team/arm/latest"], out, "docker")
    (item,) = json.loads(member_bytes(out, "manifest.json"))
    assert item["Config"] == f"blobs/sha256/{_hex(index.images[0].config_digest)}"


def test_an_image_cached_by_digest_gets_no_tag(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path
) -> None:
    image = sample_image([100])
    cache_image(image, "team/app", image.manifest_digest)
    out = tmp_path / "by-digest.tar"
    save_images(cache, [f"team/app/{image.manifest_digest}"], out, "docker")
    (item,) = json.loads(member_bytes(out, "manifest.json"))
    assert item["RepoTags"] == []
    (top,) = json.loads(member_bytes(out, "index.json"))["manifests"]
    assert top["annotations"] == {IMAGE_NAME: f"127.0.0.1:5000/team/app@{image.manifest_digest}"}
    assert "repositories" not in [m.name for m in members(out)]
    assert skopeo_json(f"docker-archive:{out}")["Layers"] == [image.layers[0].diff_id]


def test_two_tags_of_one_image_share_one_manifest_json_item(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path
) -> None:
    image = sample_image([100], tag="v1")
    cache_image(image, "team/app", "v1")
    cache_image(image, "team/app", "latest")
    out = tmp_path / "tags.tar"
    save_images(cache, ["team/app/v1", "team/app/latest"], out, "docker")
    (item,) = json.loads(member_bytes(out, "manifest.json"))
    assert item["RepoTags"] == ["127.0.0.1:5000/team/app:latest", "127.0.0.1:5000/team/app:v1"]
    assert len(json.loads(member_bytes(out, "index.json"))["manifests"]) == 2

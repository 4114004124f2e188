"""--format oci: an OCI image layout tar; skopeo finds each image by tag and sees the cached digests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rig.fixtures import SampleImages
from rig.skopeo import run_skopeo
from save.save_rig import CacheImage, member_bytes, members, skopeo_json, skopeo_raw

from docker_image_pusher.cache import Cache
from docker_image_pusher.saving import save_images


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_skopeo_sees_the_cached_manifest_digest_and_layers(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path
) -> None:
    app = sample_image([3000, 5000], tag="v1")
    web = sample_image([4000], tag="2.0", compress=False)
    cache_image(app, "team/app")
    cache_image(web, "team/web")
    out = tmp_path / "images.tar"
    result = save_images(cache, ["team/app/v1", "team/web/2.0"], out, "oci")
    assert result.format == "oci" and result.blobs == 7

    names = [m.name for m in members(out)]
    assert names[:2] == ["oci-layout", "index.json"] and "manifest.json" not in names
    assert json.loads(member_bytes(out, "oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    for image, tag in ((app, "v1"), (web, "2.0")):
        assert skopeo_raw("--raw", f"oci-archive:{out}:{tag}") == image.manifest_bytes
        inspected = skopeo_json(f"oci-archive:{out}:{tag}")
        assert inspected["Digest"] == image.manifest_digest
        assert inspected["Layers"] == image.layer_digests

    copied = tmp_path / "copied"
    run_skopeo(["copy", "--preserve-digests", f"oci-archive:{out}:v1", f"oci:{copied}:v1"], timeout=120)
    (desc,) = json.loads((copied / "index.json").read_text())["manifests"]
    assert desc["digest"] == app.manifest_digest


def test_a_multi_arch_index_comes_back_byte_for_byte(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path
) -> None:
    index = sample_image.multi_arch([1000, 2000], tag="multi")
    cache_image(index, "team/multi")
    out = tmp_path / "multi.tar"
    save_images(cache, ["team/multi/multi"], out, "oci")
    raw = skopeo_raw("--raw", f"oci-archive:{out}:multi")
    assert raw == index.index_bytes and _sha(raw) == index.index_digest
    for img in index.images:
        platform = f"--override-arch={img.platform.architecture}"
        inspected = skopeo_json(platform, f"oci-archive:{out}:multi")
        assert (inspected["Digest"], inspected["Layers"]) == (index.index_digest, img.layer_digests)

    copied = tmp_path / "copied"
    run_skopeo(["copy", "--all", "--preserve-digests", f"oci-archive:{out}:multi", f"oci:{copied}:m"], timeout=120)
    (desc,) = json.loads((copied / "index.json").read_text())["manifests"]
    assert desc["digest"] == index.index_digest


def test_docker_media_types_are_kept_as_cached(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path
) -> None:
    """Digests stay: a Docker-typed manifest is not converted. skopeo 1.9 looks tags up among OCI-typed entries
    only, so a lone Docker-typed image is read without a tag."""
    image = sample_image([3000], tag="v1", docker=True)
    cache_image(image, "library/nginx", registry="registry-1.docker.io")
    out = tmp_path / "nginx.tar"
    save_images(cache, ["library/nginx/v1"], out, "oci")
    (top,) = json.loads(member_bytes(out, "index.json"))["manifests"]
    assert top["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert skopeo_raw("--raw", f"oci-archive:{out}") == image.manifest_bytes

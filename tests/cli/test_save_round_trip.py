"""The air-gap round trip: pull -> save -> extract (elsewhere) -> push, with digests unchanged."""

from __future__ import annotations

import json

import pytest
from rig.skopeo import copy_layout_to_registry, inspect_digest, run_skopeo


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_extract_of_save_gives_back_the_same_digests(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path, fmt
):
    index = sample_image.multi_arch([5000, 7000])
    copy_layout_to_registry(index, plain_registry, f"{unique_repo}:v1")
    online, offline = tmp_path / "online", tmp_path / "offline"
    assert cli_with_server("pull", plain_registry.ref(f"{unique_repo}:v1"), "--cache-dir", str(online)).returncode == 0
    archive = tmp_path / f"image-{fmt}.tar"
    r = cli_with_server("save", f"{plain_registry.host}/{unique_repo}:v1", "-o", str(archive), "--format", fmt,
                        "--cache-dir", str(online))  # fmt: skip
    assert r.returncode == 0, r.stderr
    if fmt == "docker":
        run_skopeo(["inspect", f"docker-archive:{archive}"])
    else:
        assert json.loads(run_skopeo(["inspect", "--raw", f"oci-archive:{archive}:v1"]))["mediaType"].endswith(
            "index.v1+json"
        )
    r = cli_with_server("extract", "-f", str(archive), "--cache-dir", str(offline))
    assert r.returncode == 0, r.stderr
    before = {e["key"]: e for e in json.loads(cli_with_server("list", "--json", "--cache-dir", str(online)).stdout)}
    after = {e["key"]: e for e in json.loads(cli_with_server("list", "--json", "--cache-dir", str(offline)).stdout)}
    (entry,) = after.values()
    original = before[f"{unique_repo}/v1"]
    assert entry["manifest_digest"] == original["manifest_digest"] == index.index_digest
    assert set(entry["blobs"]) == set(original["blobs"]) and set(entry["manifests"]) == set(original["manifests"])
    r = cli_with_server("push", "-s", str(archive), plain_registry.ref(f"{unique_repo}/inside:v1"),
                        "--registry", plain_registry.url, "--cache-dir", str(tmp_path / "third"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert inspect_digest(plain_registry, f"{unique_repo}/inside:v1") == index.index_digest


def test_save_of_an_image_not_in_the_cache_exits_4_and_writes_nothing(cli, tmp_path):
    (tmp_path / "c").mkdir()
    r = cli("save", "team/none:v1", "-o", str(tmp_path / "out.tar"), "--cache-dir", str(tmp_path / "c"))
    assert r.returncode == 4 and "not in the cache" in r.stderr, r.stderr
    assert not (tmp_path / "out.tar").exists()

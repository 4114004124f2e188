"""extract and push straight from a tar (mode 4), end to end with skopeo-made archives and a real registry."""

from __future__ import annotations

import json

from rig.archives import write_docker_save
from rig.skopeo import inspect_digest, inspect_raw, run_skopeo


def test_extract_a_skopeo_docker_archive_then_push_it(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([4000, 9000])
    archive = tmp_path / "app.tar"
    run_skopeo(["copy", image.source, f"docker-archive:{archive}:example/app:v1"])
    cache = tmp_path / "cache"
    r = cli_with_server("extract", "-f", str(archive), "--cache-dir", str(cache))
    assert r.returncode == 0, r.stderr
    (item,) = json.loads(cli_with_server("list", "--json", "--cache-dir", str(cache)).stdout)
    assert item["key"] == "example/app/v1" and item["config_digest"] == image.config_digest
    p = cli_with_server("push", "-s", "example/app:v1", plain_registry.ref(f"{unique_repo}:v1"),
                        "--registry", plain_registry.url, "--cache-dir", str(cache))  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert inspect_digest(plain_registry, f"{unique_repo}:v1") == item["manifest_digest"]
    pushed = json.loads(inspect_raw(plain_registry, f"{unique_repo}:v1"))
    assert pushed["config"]["digest"] == image.config_digest


def test_push_straight_from_an_oci_archive_keeps_the_manifest_digest(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    index = sample_image.multi_arch([3000])
    archive = tmp_path / "multi.tar"
    run_skopeo(["copy", "--all", index.source, f"oci-archive:{archive}:v7"])
    r = cli_with_server("push", "-s", str(archive), plain_registry.ref(f"{unique_repo}:v7"),
                        "--registry", plain_registry.url, "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
    # skopeo's oci-archive names the image by tag only: the target's name names it in the cache
    assert r.returncode == 0, r.stderr
    assert f"{unique_repo}/v7" in cli_with_server("list", "--json", "--cache-dir", str(tmp_path / "cache")).stdout
    assert inspect_digest(plain_registry, f"{unique_repo}:v7") == index.index_digest


def test_push_from_a_tar_of_several_images_needs_image(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    one, two = sample_image([100]), sample_image([200])
    archive = write_docker_save(tmp_path / "two.tar", [(one, ["team/one:v1"]), (two, ["team/two:v1"])])
    base = ("--registry", plain_registry.url, "--cache-dir", str(tmp_path / "cache"))
    r = cli_with_server("push", "-s", str(archive), "-r", f"{unique_repo}", "-t", "v1", *base)
    assert r.returncode == 2 and "--image" in r.stderr, r.stderr
    r = cli_with_server("push", "-s", str(archive), "--image", "team/two:v1", "-r", unique_repo, "-t", "v1", *base)
    assert r.returncode == 0, r.stderr
    cached = [
        e["key"] for e in json.loads(cli_with_server("list", "--json", "--cache-dir", str(tmp_path / "cache")).stdout)
    ]
    assert cached == ["team/two/v1"]  # a named image keeps its own name in the cache; the target names the push
    assert json.loads(inspect_raw(plain_registry, f"{unique_repo}:v1"))["config"]["digest"] == two.config_digest


def test_extract_of_a_file_that_is_not_an_image_exits_7_and_leaves_the_cache_alone(cli, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    r = cli("extract", "-f", str(bad), "--cache-dir", str(tmp_path / "cache"))
    assert r.returncode == 7, r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("error:")] == [r.stderr.strip().splitlines()[-1]]
    assert not (tmp_path / "cache" / "index.json").exists()

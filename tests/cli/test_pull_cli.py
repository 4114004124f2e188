"""`docker-image-pusher pull` end to end: real registries, skopeo as the independent client, a real Prefect server."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
from rig.skopeo import copy_layout_to_registry, copy_registry_to_oci


def _cache_entries(cache: Path) -> Any:
    return json.loads((cache / "index.json").read_text())


def _assert_every_blob_verifies(cache: Path) -> int:
    count = 0
    for blob in (cache / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
        count += 1
    return count


def _no_leftovers(cache: Path) -> None:
    partial = cache / "tmp" / "partial"
    assert not [p for p in partial.glob("*") if not p.name.endswith(".lock")] if partial.exists() else True
    assert not [p for p in (cache / "tmp").glob(".write-*")]


def test_pull_of_a_skopeo_pushed_image_keeps_its_digests(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([2048, 300_000, 5])
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    cache = tmp_path / "cache"
    r = cli_with_server(
        "pull", plain_registry.ref(f"{unique_repo}:v1"), "--cache-dir", str(cache), "--disable-progress"
    )
    assert r.returncode == 0, r.stderr
    entry = _cache_entries(cache)[f"{unique_repo}/v1"]
    assert entry["manifest_digest"] == image.manifest_digest
    assert entry["config_digest"] == image.config_digest
    assert set(entry["blobs"]) == {image.config_digest, *image.layer_digests}
    assert (cache / entry["manifest_path"]).read_bytes() == image.manifest_bytes
    assert _assert_every_blob_verifies(cache) == 2 + len(image.layers)  # manifest + config + layers
    _no_leftovers(cache)
    # skopeo's own copy of the same image has exactly the blobs we have
    oci = tmp_path / "oci"
    copy_registry_to_oci(plain_registry, f"{unique_repo}:v1", oci)
    assert {p.name for p in (oci / "blobs" / "sha256").iterdir()} == {
        p.name for p in (cache / "blobs" / "sha256").iterdir()
    }


def test_second_pull_downloads_nothing(cli_with_server, plain_registry, sample_image, unique_repo, tmp_path):
    image = sample_image([4096, 4096])
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    args = ("pull", plain_registry.ref(f"{unique_repo}:v1"), "--cache-dir", str(tmp_path / "c"), "--disable-progress")
    assert cli_with_server(*args).returncode == 0
    again = cli_with_server(*args)
    assert again.returncode == 0, again.stderr
    assert "(0 downloaded, 3 already cached)" in again.stdout


def test_pull_of_a_multi_arch_index_caches_index_and_every_child(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    index = sample_image.multi_arch([1000, 2000], docker=True)
    copy_layout_to_registry(index, plain_registry, f"{unique_repo}:multi")
    cache = tmp_path / "cache"
    r = cli_with_server(
        "pull", "-r", unique_repo, "-t", "multi", "--registry", plain_registry.url, "--cache-dir", str(cache)
    )
    assert r.returncode == 0, r.stderr
    entry = _cache_entries(cache)[f"{unique_repo}/multi"]
    assert entry["manifest_digest"] == index.index_digest
    assert (cache / entry["manifest_path"]).read_bytes() == index.index_bytes
    assert sorted(entry["platforms"]) == sorted(str(img.platform) for img in index.images)
    assert set(entry["manifests"]) == {img.manifest_digest for img in index.images}
    for img in index.images:
        assert (
            cache / "blobs" / "sha256" / img.manifest_digest.removeprefix("sha256:")
        ).read_bytes() == img.manifest_bytes
        assert set(img.layer_digests) <= set(entry["blobs"])


def test_pull_of_one_platform_caches_that_platform_and_says_the_digest_changes(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    index = sample_image.multi_arch([1000])
    copy_layout_to_registry(index, plain_registry, f"{unique_repo}:multi")
    cache = tmp_path / "cache"
    r = cli_with_server(
        "pull", plain_registry.ref(f"{unique_repo}:multi"), "--platform", "linux/arm64", "--cache-dir", str(cache)
    )
    assert r.returncode == 0, r.stderr
    arm = next(i for i in index.images if str(i.platform).startswith("linux/arm64"))
    entry = _cache_entries(cache)[f"{unique_repo}/multi"]
    assert entry["manifest_digest"] == arm.manifest_digest
    assert "note:" in r.stderr and arm.manifest_digest in r.stderr
    amd = next(i for i in index.images if i is not arm)
    assert not (cache / "blobs" / "sha256" / amd.layer_digests[0].removeprefix("sha256:")).exists()


def test_pull_by_digest_is_cached_under_the_digest(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([100])
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    cache = tmp_path / "cache"
    r = cli_with_server("pull", plain_registry.ref(f"{unique_repo}@{image.manifest_digest}"), "--cache-dir", str(cache))
    assert r.returncode == 0, r.stderr
    assert f"{unique_repo}/{image.manifest_digest}" in _cache_entries(cache)


def test_flow_run_records_the_task_dag_on_the_prefect_server(
    cli_with_server, prefect_api, plain_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([10, 20, 30])
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    r = cli_with_server("pull", plain_registry.ref(f"{unique_repo}:v1"), "--cache-dir", str(tmp_path / "c"),
                        "--retry-attempts", "2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    flow_runs = httpx.post(f"{prefect_api}/flow_runs/filter", json={"sort": "START_TIME_DESC", "limit": 1}).json()
    (run,) = flow_runs
    assert run["state_type"] == "COMPLETED" and run["parameters"]["repository"] == unique_repo
    assert "password" not in json.dumps(run["parameters"])
    tasks = httpx.post(
        f"{prefect_api}/task_runs/filter", json={"task_runs": {}, "flow_runs": {"id": {"any_": [run["id"]]}}}
    ).json()
    names = sorted(t["task_key"].split("-")[0] for t in tasks)
    by_name = {t["name"]: t for t in tasks}
    blob_runs = [t for t in tasks if t["name"].startswith("pull-blob-")]
    assert len(blob_runs) == 4 and len(tasks) == 7, names
    assert all(t["empirical_policy"]["retries"] == 2 for t in blob_runs)
    fetch = next(t for n, t in by_name.items() if n.startswith("fetch-manifest"))
    auth = next(t for n, t in by_name.items() if n.startswith("authenticate"))
    assert any(i.get("id") == auth["id"] for inputs in fetch["task_inputs"].values() for i in inputs)


def test_the_agent_log_keeps_its_lifecycle_and_warnings_but_not_the_run_logs(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    """Run logs go to the Prefect API; the agent's log (one per agent, next to its socket) would otherwise grow
    by a few lines per blob for as long as the agent lives."""
    copy_layout_to_registry(sample_image([3000, 5000]), plain_registry, f"{unique_repo}:v1")
    r = cli_with_server("pull", plain_registry.ref(f"{unique_repo}:v1"), "--cache-dir", str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr
    logs = list((Path(os.environ["DOCKER_IMAGE_PUSHER_STATE_DIR"]) / "agent").glob("*.log"))
    assert logs, "the pull ran in an agent"
    lines = [line for log in logs for line in log.read_text().splitlines()]
    assert any("docker_image_pusher.agent INFO agent" in line and "listening" in line for line in lines), lines
    assert not [line for line in lines if " INFO " in line and " docker_image_pusher.agent INFO " not in line]

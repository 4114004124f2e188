"""`pull` through faults: each one survived within --retry-attempts by resuming, or reported in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli.conftest import Cli, one_line_error
from faults.helpers import (
    MIB,
    READ_TIMEOUT,
    RESEND_PER_DOWNLOAD_FAULT,
    Clock,
    Figures,
    assert_cache_sound,
    docker_login,
    downloaded_twice,
    record,
    stats_retries,
    verify_problems,
)
from faults.scenarios import FAULTS, Fault, Setting, answered_401, run_with
from rig.fault_proxy import FaultProxy
from rig.fixtures import SampleImages
from rig.images import BuiltImage
from rig.registry import RunningRegistry
from rig.skopeo import copy_layout_to_registry
from rig.token_server import TokenServer


def _pull(cli: Cli, proxy: FaultProxy, ref: str, *extra: str) -> list[str]:
    return ["pull", proxy.ref(ref), "--registry", proxy.url, "--cache-dir", "cache", "--read-timeout", READ_TIMEOUT,
            "--stats-file", "stats.json", *extra]  # fmt: skip


def _assert_pulled(cache: Path, image: BuiltImage) -> None:
    assert assert_cache_sound(cache) >= len(image.blobs)
    for blob in image.blobs:
        assert (cache / "blobs" / "sha256" / blob.digest.removeprefix("sha256:")).stat().st_size == blob.size


@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_a_pull_survives_the_fault_resuming_its_downloads(
    fault: Fault,
    cli: Cli,
    fault_registry: RunningRegistry,
    fault_token_registry: RunningRegistry,
    tokens: TokenServer,
    running: None,
    sample_image: SampleImages,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    registry = fault_token_registry if fault.token else fault_registry
    image = sample_image(fault.layers, compresslevel=0, random_source="urandom")
    copy_layout_to_registry(image, registry, f"{unique_repo}:v1")
    clock = Clock()
    with FaultProxy(registry) as proxy:
        if fault.token:
            docker_login(tmp_path, proxy.host)
        setting = Setting(proxy, registry, tokens, "blob-get", "down", image.layer_digests[0])
        args = _pull(cli, proxy, f"{unique_repo}:v1", "--retry-attempts", "4", "--max-concurrent", "1")
        r, caused = run_with(cli, args, fault, setting)
        faults = proxy.faults + caused + (answered_401(proxy) if fault.name == "token-expires" else 0)
        resent = downloaded_twice(proxy, [image])
    record(Figures("pull", fault.name, r.returncode == 0, resent, faults, stats_retries(tmp_path / "stats.json"),
                   clock.seconds()))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert proxy.faults >= fault.expected and faults >= 1, proxy.log
    assert proxy.upstream_errors >= 1 or fault.name != "registry-killed", proxy.log  # it did cut a transfer
    assert resent <= faults * RESEND_PER_DOWNLOAD_FAULT, f"{resent} bytes sent twice for {faults} fault(s)"
    _assert_pulled(tmp_path / "cache", image)


def test_a_pull_whose_retries_are_spent_fails_in_one_line_and_keeps_the_cache_sound(
    cli: Cli, fault_registry: RunningRegistry, sample_image: SampleImages, unique_repo: str, tmp_path: Path
) -> None:
    image = sample_image([3 * MIB], compresslevel=0, random_source="urandom")
    copy_layout_to_registry(image, fault_registry, f"{unique_repo}:v1")
    clock = Clock()
    with FaultProxy(fault_registry) as proxy:
        proxy.reset("blob-get", after=MIB, times=None, path_contains=image.layer_digests[0])
        r = cli(*_pull(cli, proxy, f"{unique_repo}:v1", "--retry-attempts", "2"))
        faults = proxy.faults
    record(Figures("pull", "retries-spent", False, 0, faults, stats_retries(tmp_path / "stats.json"), clock.seconds()))
    assert r.returncode == 5, r.stderr
    error = one_line_error(r.stderr)
    assert "closed or reset" in error and image.layer_digests[0] in error, error
    assert faults == 3  # the first attempt and two retries
    assert_cache_sound(tmp_path / "cache")
    # What arrived is kept for the next run, which resumes from it; verify finds no problem.
    layer, size = image.layer_digests[0], image.layer_sizes[0]
    assert verify_problems(cli) == []
    listed = json.loads(cli("verify", "--json", "--cache-dir", "cache").stdout)["partial_downloads"]
    assert listed == [f"tmp/partial/{layer.removeprefix('sha256:')}"]
    kept = (tmp_path / "cache" / "tmp" / "partial" / layer.removeprefix("sha256:")).stat().st_size
    assert 0 < kept < size
    with FaultProxy(fault_registry) as proxy:
        again = cli(*_pull(cli, proxy, f"{unique_repo}:v1"))
        assert again.returncode == 0, again.stderr
        assert proxy.sent("down", layer) <= size - kept + RESEND_PER_DOWNLOAD_FAULT
    _assert_pulled(tmp_path / "cache", image)
    assert verify_problems(cli) == []

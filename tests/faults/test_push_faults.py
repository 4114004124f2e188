"""`push` from the cache through faults: each one survived within --retry-attempts, or reported in one line.

A blob whose upload body broke off starts again in a new session (distribution 2.8 cancels the old one), so
the bytes sent twice per fault are bounded by the blob in flight, or by the chunk when a 401 refuses one
PATCH of a --chunk-size upload (see conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli.conftest import Cli, one_line_error
from faults.helpers import (
    MIB,
    READ_TIMEOUT,
    Clock,
    Figures,
    assert_cache_sound,
    cache_contents,
    docker_login,
    record,
    stats_retries,
    uploaded_twice,
    verify_problems,
)
from faults.scenarios import FAULTS, Fault, Setting, answered_401, run_with
from rig import skopeo
from rig.fault_proxy import FaultProxy
from rig.fixtures import SampleImages
from rig.images import BuiltImage
from rig.registry import RunningRegistry
from rig.token_server import TokenServer


def _cached(cli: Cli, image: BuiltImage, repo: str) -> None:
    done = cli("extract", "-f", str(image.layout), "-r", repo, "-t", "v1", "--cache-dir", "cache")
    assert done.returncode == 0, done.stderr


def _push(proxy: FaultProxy, repo: str, *extra: str) -> list[str]:
    return ["push", "-s", f"{repo}:v1", proxy.ref(f"{repo}:v1"), "--registry", proxy.url, "--cache-dir", "cache",
            "--read-timeout", READ_TIMEOUT, "--stats-file", "stats.json", *extra]  # fmt: skip


def _assert_pushed(registry: RunningRegistry, image: BuiltImage, repo: str, check_dir: Path) -> None:
    """The registry serves the image's manifest, and skopeo pulls every blob of it, checking each digest."""
    assert skopeo.inspect_digest(registry, f"{repo}:v1") == image.manifest_digest
    skopeo.copy_registry_to_oci(registry, f"{repo}:v1", check_dir)


@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_a_push_survives_the_fault_sending_at_most_one_blob_again_per_fault(
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
    _cached(cli, image, unique_repo)
    # A token that expires mid-upload: chunks, so that the refused request is one PATCH in the middle of a blob.
    chunks = ("--chunk-size", "1MiB") if fault.name == "token-expires" else ()
    clock = Clock()
    with FaultProxy(registry) as proxy:
        if fault.token:
            docker_login(tmp_path, proxy.host)
        setting = Setting(proxy, registry, tokens, "upload-put", "up", image.layer_digests[0])
        args = _push(proxy, unique_repo, "--retry-attempts", "4", "--max-concurrent", "1", *chunks)
        r, caused = run_with(cli, args, fault, setting)
        faults = proxy.faults + caused + (answered_401(proxy) if fault.name == "token-expires" else 0)
        resent = uploaded_twice(proxy, [image])
    record(Figures("push", fault.name, r.returncode == 0, resent, faults, stats_retries(tmp_path / "stats.json"),
                   clock.seconds()))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert proxy.faults >= fault.expected and faults >= 1, proxy.log
    assert proxy.upstream_errors >= 1 or fault.name != "registry-killed", proxy.log  # it did cut a transfer
    unit = MIB if chunks else max(image.layer_sizes)
    assert 0 <= resent <= faults * unit, f"{resent} bytes sent twice for {faults} fault(s) of up to {unit} bytes"
    _assert_pushed(registry, image, unique_repo, tmp_path / "check")
    assert_cache_sound(tmp_path / "cache")


def test_a_push_whose_retries_are_spent_fails_in_one_line_and_leaves_the_cache_as_it_was(
    cli: Cli, fault_registry: RunningRegistry, sample_image: SampleImages, unique_repo: str, tmp_path: Path
) -> None:
    image = sample_image([3 * MIB], compresslevel=0, random_source="urandom")
    _cached(cli, image, unique_repo)
    layer = image.layer_digests[0]
    before = cache_contents(tmp_path / "cache")
    clock = Clock()
    with FaultProxy(fault_registry) as proxy:
        proxy.reset("upload-put", after=MIB, times=None, path_contains=layer)
        r = cli(*_push(proxy, unique_repo, "--retry-attempts", "2"))
        faults = proxy.faults
    record(Figures("push", "retries-spent", False, max(0, uploaded_twice(proxy, [image])), faults,
                   stats_retries(tmp_path / "stats.json"), clock.seconds()))  # fmt: skip
    assert r.returncode == 5, r.stderr
    error = one_line_error(r.stderr)
    assert "closed or reset" in error and layer in error, error
    assert assert_cache_sound(tmp_path / "cache") >= len(image.blobs)
    assert cache_contents(tmp_path / "cache") == before
    assert verify_problems(cli) == []
    assert faults == 3 and not [q for q in proxy.log if q.kind == "manifest-put"]  # the image was never pushed

"""`mirror SPEC.yaml` through faults on both sides: the source behind one proxy, the destination behind another.

A mirror run is a pull and a push per image, each covered fault by fault in test_pull_faults.py and
test_push_faults.py; here every fault is met at least once in as few runs as possible (two): several images,
a different fault on each image's download and on its upload, then the faults that hit a whole registry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
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
    uploaded_twice,
    verify_problems,
    wait_for,
)
from faults.scenarios import answered_401
from rig import skopeo
from rig.fault_proxy import FaultProxy
from rig.fixtures import SampleImages
from rig.images import BuiltImage
from rig.registry import RunningRegistry
from rig.token_server import TokenServer

PREFIX = "mirror"


def _images(sample_image: SampleImages, registry: RunningRegistry, repos: Sequence[str],
            layers: Sequence[int] = (3 * MIB, MIB)) -> list[BuiltImage]:  # fmt: skip
    images = [sample_image(layers, compresslevel=0, random_source="urandom") for _ in repos]
    for image, repo in zip(images, repos, strict=True):
        skopeo.copy_layout_to_registry(image, registry, f"{repo}:v1")
    return images


def _spec(path: Path, source: FaultProxy, destination: FaultProxy, repos: Sequence[str]) -> Path:
    body: dict[str, Any] = {
        "source": {"registry": source.url},
        "destination": {"registry": destination.url, "repository_prefix": PREFIX},
        "images": [{"repository": repo, "tags": ["v1"]} for repo in repos],
    }
    path.write_text(yaml.safe_dump(body))
    return path


def _mirror(spec: Path, *extra: str) -> list[str]:
    return ["mirror", str(spec), "--cache-dir", "cache", "--read-timeout", READ_TIMEOUT, "--stats-file", "stats.json",
            *extra]  # fmt: skip


def _assert_mirrored(destination: RunningRegistry, images: Sequence[BuiltImage], repos: Sequence[str],
                     tmp_path: Path) -> None:  # fmt: skip
    """Each image at the destination under its source's manifest digest, every blob checked by skopeo."""
    for number, (image, repo) in enumerate(zip(images, repos, strict=True)):
        assert skopeo.inspect_digest(destination, f"{PREFIX}/{repo}:v1") == image.manifest_digest
        skopeo.copy_registry_to_oci(destination, f"{PREFIX}/{repo}:v1", tmp_path / f"check-{number}")


def test_a_mirror_survives_a_different_fault_on_each_image_download_and_upload(
    cli: Cli,
    fault_registry: RunningRegistry,
    fault_destination: RunningRegistry,
    sample_image: SampleImages,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    repos = [f"{unique_repo}-{name}" for name in ("one", "two", "three", "four")]
    images = _images(sample_image, fault_registry, repos)
    target = [image.layer_digests[0] for image in images]  # the 3 MiB layer of each image
    clock = Clock()
    with FaultProxy(fault_registry) as source, FaultProxy(fault_destination) as destination:
        source.reset("blob-get", after=MIB, path_contains=target[0])
        destination.fail("upload-put", 502, times=2, path_contains=target[0])
        source.fail("blob-get", 500, times=2, path_contains=target[1])
        destination.fail("upload-put", 503, times=2, path_contains=target[1])
        source.fail("blob-get", 429, retry_after=2, path_contains=target[2])
        destination.fail("upload-put", 429, retry_after=3, retry_after_date=True, path_contains=target[2])
        source.stall("blob-get", 60, headers=True, path_contains=target[3])
        destination.reset("upload-put", after=MIB, path_contains=target[3])
        spec = _spec(tmp_path / "mirror.yaml", source, destination, repos)
        r = cli(*_mirror(spec, "--retry-attempts", "4", "--images-at-once", "2"))
        down, up = downloaded_twice(source, images), uploaded_twice(destination, images)
        faults = (source.faults, destination.faults)
    record(Figures("mirror", "reset+5xx+429+stall", r.returncode == 0, down + up, sum(faults),
                   stats_retries(tmp_path / "stats.json"), clock.seconds()))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert faults == (5, 6), (source.log, destination.log)
    assert down <= faults[0] * RESEND_PER_DOWNLOAD_FAULT, f"{down} bytes downloaded twice"
    assert 0 <= up <= faults[1] * max(images[0].layer_sizes), f"{up} bytes uploaded twice"
    _assert_mirrored(fault_destination, images, repos, tmp_path)
    assert_cache_sound(tmp_path / "cache")


def test_a_mirror_survives_its_source_killed_its_token_server_down_and_a_token_expiring(
    cli: Cli,
    fault_registry: RunningRegistry,
    fault_token_registry: RunningRegistry,
    tokens: TokenServer,
    running: None,
    sample_image: SampleImages,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    repos = [unique_repo]
    images = _images(sample_image, fault_registry, repos, (10 * MIB, MIB))  # see scenarios.Fault.layers
    clock = Clock()
    with FaultProxy(fault_registry, rate=4 * MIB) as source, FaultProxy(fault_token_registry, rate=MIB) as destination:
        docker_login(tmp_path, destination.host)
        spec = _spec(tmp_path / "mirror.yaml", source, destination, repos)
        tokens.stop()  # down when the run starts; the tokens it gets once it is back expire after 2 s
        tokens.reject_tokens_after(2)
        with ThreadPoolExecutor(1) as pool:
            run = pool.submit(cli, *_mirror(spec, "--retry-attempts", "4"))
            try:
                wait_for(lambda: bool(destination.log) or run.done(), what="the run's first request")
                time.sleep(3.0)
                tokens.start()
                wait_for(lambda: source.total("down") > MIB or run.done(), what="a download under way")
                fault_registry.kill()
                time.sleep(1.0)
                fault_registry.start()
                source.rate = None
                wait_for(lambda: answered_401(destination) > 0 or run.done(), what="a token refused")
                tokens.claim_lifetime = None
                destination.rate = None
            finally:
                tokens.start()
                fault_registry.start()
            r = run.result()
        refused = answered_401(destination)
        down, up = downloaded_twice(source, images), uploaded_twice(destination, images)
        broke = sum(q.outcome.startswith("upstream") for q in source.log)
    record(Figures("mirror", "registry-killed+token-server-down+token-expires", r.returncode == 0, down + up,
                   2 + refused, stats_retries(tmp_path / "stats.json"), clock.seconds()))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert broke >= 1 and refused >= 1, "\n".join(map(str, source.log + destination.log))
    assert down <= RESEND_PER_DOWNLOAD_FAULT, f"{down} bytes downloaded twice"
    assert 0 <= up <= refused * max(images[0].layer_sizes), f"{up} bytes uploaded twice"
    _assert_mirrored(fault_token_registry, images, repos, tmp_path)
    assert_cache_sound(tmp_path / "cache")


def test_a_mirror_whose_retries_are_spent_fails_in_one_line_and_keeps_the_cache_sound(
    cli: Cli,
    fault_registry: RunningRegistry,
    fault_destination: RunningRegistry,
    sample_image: SampleImages,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    repos = [unique_repo]
    images = _images(sample_image, fault_registry, repos)
    clock = Clock()
    with FaultProxy(fault_registry) as source, FaultProxy(fault_destination) as destination:
        destination.stall("upload-put", 60, times=None, path_contains=images[0].layer_digests[0])
        r = cli(*_mirror(_spec(tmp_path / "mirror.yaml", source, destination, repos), "--retry-attempts", "1"))
        faults = destination.faults
    record(Figures("mirror", "retries-spent", False, 0, faults, stats_retries(tmp_path / "stats.json"),
                   clock.seconds()))  # fmt: skip
    assert r.returncode == 5, r.stderr
    error = one_line_error(r.stderr)
    assert "timeout" in error and images[0].layer_digests[0] in error, error
    assert faults == 2  # the first attempt and one retry
    assert assert_cache_sound(tmp_path / "cache") >= len(images[0].blobs)  # the pull side went through
    assert verify_problems(cli) == []

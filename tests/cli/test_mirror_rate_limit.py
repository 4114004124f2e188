"""`docker-image-pusher mirror` against a source that announces a Docker-Hub-style pull quota.

The CNCF registry never sends RateLimit headers, so the source is a plain registry behind the rig's HTTP proxy,
which adds them to manifest answers and takes one from RateLimit-Remaining per manifest GET
(tests/rig/throttle_http.py). skopeo reads the source directly, so it costs nothing.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from rig import skopeo
from rig.throttle_http import ManifestRequest, RateLimitHeaders, ThrottlingHttpProxy

from .conftest import Cli, one_line_error

RESERVE = 2
RESET = 3  # seconds: the pause the flow takes when the quota reaches the reserve


@pytest.fixture
def source(plain_registry):
    """The plain registry behind a proxy that sends RateLimit headers (set proxy.rate_limit) and never throttles."""
    with ThrottlingHttpProxy(plain_registry, max_transfers=None) as proxy:
        yield proxy


def _spec(path: Path, source, destination, repo: str, tags: list[str], max_wait_seconds: float) -> Path:
    import yaml

    body = {
        "source": {"registry": source.url},
        "destination": {"registry": destination.url},
        "images": [{"repository": repo, "tags": tags}],
        "rate_limit": {"reserve": RESERVE, "max_wait_seconds": float(max_wait_seconds)},
    }
    path.write_text(yaml.safe_dump(body))
    return path


_ROW = re.compile(r"^(copied|unchanged|failed|would copy) +[^/ ]+/(\S+) -> ")


def _actions(stdout: str) -> dict[str, str]:
    return {m[2]: m[1] for m in map(_ROW.match, stdout.splitlines()) if m}


def _since_head(log: list[ManifestRequest], get: ManifestRequest) -> float:
    """Seconds from the latest HEAD of the same manifest before `get` (the mirror-image flow's check) to `get`."""
    heads = [r.at for r in log if r.method == "HEAD" and r.path == get.path and r.at < get.at]
    assert heads, f"no HEAD of {get.path} before its GET"
    return get.at - max(heads)


def _push_tags(plain_registry, sample_image, repo: str, tags: list[str]) -> None:
    for tag in tags:
        skopeo.copy_layout_to_registry(sample_image([300, 200]), plain_registry, f"{repo}:{tag}")


def test_the_mirror_pauses_when_the_quota_reaches_the_reserve_then_copies_everything(
    cli_with_server: Cli, source, plain_registry, registry_factory, sample_image, unique_repo, tmp_path
):
    destination = registry_factory()
    tags = ["a", "b", "c"]
    _push_tags(plain_registry, sample_image, unique_repo, tags)
    spec = _spec(tmp_path / "m.yaml", source, destination, unique_repo, tags, max_wait_seconds=60)
    # 4 left, reserve 2: the first two GETs go at once (4 -> 3 -> 2), the third waits for the reset.
    source.rate_limit = RateLimitHeaders(limit=100, remaining=RESERVE + 2, window=21600, reset=RESET)

    started = time.monotonic()
    r = cli_with_server("mirror", str(spec), "--cache-dir", "c", "--images-at-once", "1")
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stdout + r.stderr
    assert _actions(r.stdout) == {f"{unique_repo}:{t}": "copied" for t in tags}
    for tag in tags:
        assert skopeo.inspect_raw(destination, f"{unique_repo}:{tag}") == (
            skopeo.inspect_raw(plain_registry, f"{unique_repo}:{tag}")
        )

    log = source.manifest_requests()
    gets = [g for g in log if g.method == "GET"]
    assert [g.remaining for g in gets] == [RESERVE + 1, RESERVE, RESERVE - 1], log
    assert sorted(g.path.rpartition("/")[2] for g in gets) == sorted(tags)
    waits = [_since_head(log, g) for g in gets]
    # The HEAD just before the last GET said RESERVE left: the flow slept until RateLimit-Reset, counted from
    # that answer, so no less than RESET passed between the two. The first two went on at once.
    assert waits[2] >= RESET, waits
    assert waits[0] < RESET and waits[1] < RESET, waits
    assert elapsed >= RESET
    assert source.rate_limit is not None and source.rate_limit.remaining == RESERVE - 1


def test_a_reset_later_than_max_wait_seconds_fails_with_one_line_and_no_manifest_get(
    cli_with_server: Cli, source, plain_registry, registry_factory, sample_image, unique_repo, tmp_path
):
    destination = registry_factory()
    tags = ["a", "b"]
    _push_tags(plain_registry, sample_image, unique_repo, tags)
    spec = _spec(tmp_path / "m.yaml", source, destination, unique_repo, tags, max_wait_seconds=5)
    source.rate_limit = RateLimitHeaders(limit=100, remaining=RESERVE, window=21600, reset=600)

    started = time.monotonic()
    r = cli_with_server("mirror", str(spec), "--cache-dir", "c", "--images-at-once", "1", "--retry-attempts", "0")
    elapsed = time.monotonic() - started
    assert r.returncode == 5, r.stdout + r.stderr
    error = one_line_error(r.stderr)
    assert "RateLimit" in error and "max_wait_seconds" in error, error
    assert elapsed < 60  # it did not wait for anything
    # Only HEADs reached the source (Docker Hub does not count them), and no blob was fetched.
    assert source.manifest_gets == 0 and source.manifest_heads >= len(tags)
    assert source.transfers == 0
    assert source.rate_limit is not None and source.rate_limit.remaining == RESERVE


def test_images_that_fail_in_their_own_run_are_listed_as_failed(
    cli_with_server: Cli, source, plain_registry, registry_factory, sample_image, unique_repo, tmp_path
):
    destination = registry_factory()
    tags = ["a", "b"]
    _push_tags(plain_registry, sample_image, unique_repo, tags)
    spec = _spec(tmp_path / "m.yaml", source, destination, unique_repo, tags, max_wait_seconds=5)
    source.rate_limit = RateLimitHeaders(limit=100, remaining=RESERVE, window=21600, reset=600)
    r = cli_with_server("mirror", str(spec), "--cache-dir", "c", "--images-at-once", "1", "--retry-attempts", "0")
    assert r.returncode == 5, r.stdout + r.stderr
    assert _actions(r.stdout) == {f"{unique_repo}:{t}": "failed" for t in tags}, r.stdout


def test_an_unchanged_run_makes_no_manifest_get_and_needs_no_quota(
    cli_with_server: Cli, source, plain_registry, registry_factory, sample_image, unique_repo, tmp_path
):
    destination = registry_factory()
    tags = ["a", "b", "c"]
    _push_tags(plain_registry, sample_image, unique_repo, tags)
    spec = _spec(tmp_path / "m.yaml", source, destination, unique_repo, tags, max_wait_seconds=5)
    source.rate_limit = RateLimitHeaders(limit=100, remaining=100, window=21600)
    first = cli_with_server("mirror", str(spec), "--cache-dir", "c", "--images-at-once", "1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert source.manifest_gets == len(tags)

    # Now the quota is spent and resets much later than max_wait_seconds: an unchanged run must not care.
    source.rate_limit = RateLimitHeaders(limit=100, remaining=0, window=21600, reset=600)
    source.reset_counters()
    again = cli_with_server("mirror", str(spec), "--cache-dir", "c", "--images-at-once", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _actions(again.stdout) == {f"{unique_repo}:{t}": "unchanged" for t in tags}
    assert source.manifest_gets == 0 and source.manifest_heads >= len(tags)
    assert source.transfers == 0

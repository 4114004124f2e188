"""Fixtures of the hostile-input corpus: a cache already holding a good image (copied per test from one built
per module), the scripted fake registries, and ``refused()``, the check every case ends with."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli.conftest import Cli, cli, cli_with_server, one_line_error
from rig.archives import layout_entries, snapshot, write_tar
from rig.hostile_registry import HostileRegistry
from rig.images import BuiltImage, build_image

from docker_image_pusher.cache import Cache
from docker_image_pusher.extract import extract_archive

__all__ = ["cli", "cli_with_server"]  # the CLI runners of tests/cli, as fixtures here too

SEED_REPOSITORY = "seed/app"


@pytest.fixture(scope="module")
def seed_image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    """The good image of every seeded cache: two gzip layers, OCI media types."""
    return build_image(tmp_path_factory.mktemp("seed"), (1500, 2500), tag="v1", seed="hostile-seed", compress=True)


@pytest.fixture(scope="module")
def seed_template(seed_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("seed-cache")
    archive = write_tar(root / "seed.tar", layout_entries(seed_image.layout))
    cache = root / "cache"
    extract_archive(archive, Cache(cache), repository=SEED_REPOSITORY, reference="v1")
    return cache


def content(cache: Path) -> dict[str, str]:
    """The cache's files and their hashes, lock files aside: a lock (an empty file any run may create to
    take it) is not content."""
    return {name: digest for name, digest in snapshot(cache).items() if not name.endswith(".lock")}


@pytest.fixture
def seeded_cache(seed_template: Path, tmp_path: Path) -> Path:
    """A cache folder of this test's own holding the seed image (its manifest, config and layers)."""
    cache = tmp_path / "cache"
    shutil.copytree(seed_template, cache)
    return cache


@pytest.fixture
def fake() -> Iterator[HostileRegistry]:
    with HostileRegistry("127.0.0.1") as registry:
        yield registry


@pytest.fixture
def other_host() -> Iterator[HostileRegistry]:
    """A second fake on 127.0.0.2: another host, as far as URLs and credentials go."""
    with HostileRegistry("127.0.0.2") as registry:
        yield registry


def pull_args(registry: HostileRegistry, repository: str, reference: str, cache: Path) -> list[str]:
    """A pull from a fake, over plain http, without retries (every case here fails the same way each time)."""
    return [
        "pull",
        "-r",
        repository,
        "-t",
        reference,
        "--registry",
        registry.url,
        "--cache-dir",
        str(cache),
        "--retry-attempts",
        "0",
        "--disable-progress",
    ]


def refused(result: subprocess.CompletedProcess[str], exit_code: int, fragment: str) -> str:
    """The run failed with ``exit_code`` and one ``error:`` line (last, no traceback) containing ``fragment``."""
    line = one_line_error(result.stderr)
    assert result.returncode == exit_code, result.stderr
    assert fragment in line, line
    return line


def run_and_check_cache(
    cli: Cli, cache: Path, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI and assert the cache folder is byte for byte what it was before."""
    before = content(cache)
    assert before, "the cache should hold the seed image"
    result = cli(*args, input=input, timeout=240)
    assert content(cache) == before, result.stderr
    return result

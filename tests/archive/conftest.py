"""Fixtures of the extract tests: a fresh cache, and small rig images shared by a module's tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from rig.images import BuiltImage, build_image

from docker_image_pusher.cache import Cache


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache")


@pytest.fixture(scope="module")
def tar_image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    """Two uncompressed layers, as docker saves them (layer digest == diff_id), OCI media types."""
    return build_image(tmp_path_factory.mktemp("tar-image"), (3000, 70_000), tag="v1", seed="tar", compress=False)


@pytest.fixture(scope="module")
def gzip_image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    """Two gzip layers, as a registry serves them."""
    return build_image(tmp_path_factory.mktemp("gzip-image"), (5000, 40_000), tag="v1", seed="gz", compress=True)

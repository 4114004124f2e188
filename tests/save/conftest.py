"""Fixtures for the save tests: a Cache in the test's tmp dir and a way to put rig-built images into it."""

from __future__ import annotations

from pathlib import Path

import pytest
from rig.images import BuiltImage, BuiltIndex
from save.save_rig import CacheImage, put_in_cache

from docker_image_pusher.cache import Cache, ImageEntry


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache")


@pytest.fixture
def cache_image(cache: Cache) -> CacheImage:
    """cache_image(built, repository, reference=None, registry="127.0.0.1:5000") -> ImageEntry, into `cache`."""

    def put(
        built: BuiltImage | BuiltIndex,
        repository: str,
        reference: str | None = None,
        registry: str | None = "127.0.0.1:5000",
    ) -> ImageEntry:
        return put_in_cache(cache, built, repository, reference, registry)

    return put

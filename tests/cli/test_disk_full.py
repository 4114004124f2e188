"""A cache on a nearly full file system: extract fails with one clear line and leaves no partial blob."""

from __future__ import annotations

import os
import subprocess

import pytest
from rig.archives import write_docker_save

from .conftest import one_line_error

MIB = 1 << 20


@pytest.fixture
def small_fs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_extract_onto_a_full_disk_fails_cleanly(cli_with_server, sample_image, small_fs, tmp_path):
    image = sample_image([5 * MIB], compresslevel=0, random_source="urandom")
    archive = write_docker_save(tmp_path / "big.tar", [(image, ["team/big:v1"])])
    cache = small_fs / "cache"
    r = cli_with_server("extract", "-f", str(archive), "--cache-dir", str(cache), "--disable-progress")
    assert r.returncode == 8, r.stderr
    assert "no space left on device" in one_line_error(r.stderr)
    leftovers = [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert not [
        p for p in leftovers if p.stat().st_size > 0 and "blobs" in p.parts and p.name in image.layer_digests[0]
    ]
    assert not [p for p in (cache / "tmp").rglob("*") if p.is_file() and p.stat().st_size > 0], leftovers
    assert not (cache / "index.json").exists()

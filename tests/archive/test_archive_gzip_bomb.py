"""Inflating a .tar.gz stops past MAX_RATIO times the file's size (never below MIN_INFLATE_LIMIT), leaving
nothing behind; an archive under the ratio inflates whole."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from docker_image_pusher.archive import _gunzip
from docker_image_pusher.errors import ArchiveError


def test_a_gzip_bomb_is_cut_off_and_its_temp_file_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_gunzip, "MIN_INFLATE_LIMIT", 1 << 20)
    bomb = tmp_path / "bomb.tar.gz"
    bomb.write_bytes(gzip.compress(b"\0" * (8 << 20)))  # ~8 KiB that inflate to 8 MiB: over 200x
    work = tmp_path / "work"
    with pytest.raises(ArchiveError, match=r"over 200 times its size \(a gzip bomb\?\)"):
        _gunzip.gunzip_to_temp(bomb, work)
    assert list(work.iterdir()) == []


def test_an_archive_under_the_ratio_inflates_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_gunzip, "MIN_INFLATE_LIMIT", 1 << 20)
    data = os.urandom(1 << 20) + b"\0" * (4 << 20)  # ~1 MiB compressed, 5 MiB inflated: 5x
    archive = tmp_path / "fine.tar.gz"
    archive.write_bytes(gzip.compress(data))
    assert _gunzip.gunzip_to_temp(archive, tmp_path / "work").read_bytes() == data


def test_a_small_archive_may_exceed_the_ratio_up_to_the_floor(tmp_path: Path) -> None:
    data = b"\0" * (4 << 20)  # 4 KiB -> 4 MiB: 1000x, but under the 256 MiB floor
    archive = tmp_path / "zeros.tar.gz"
    archive.write_bytes(gzip.compress(data))
    assert _gunzip.gunzip_to_temp(archive, tmp_path / "work").stat().st_size == len(data)

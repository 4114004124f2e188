"""What every archive guarantees: each blob once, the same bytes every time, nothing left behind on failure."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
from rig.fixtures import SampleImages
from save.save_rig import CacheImage, members

from docker_image_pusher.cache import Cache, CacheError
from docker_image_pusher.errors import IntegrityError, NotFoundError, UsageError
from docker_image_pusher.progress.events import (
    Cancelled,
    Event,
    ImagePlanned,
    ProgressBus,
    TransferFinished,
    TransferProgress,
    TransferStarted,
)
from docker_image_pusher.saving import SaveFormat, save_images


def _blob_members(tar: Path) -> list[str]:
    return [m.name for m in members(tar) if m.name.startswith("blobs/sha256/")]


def _files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("format", ["docker", "oci"])
def test_blobs_shared_by_two_images_are_written_once(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path, format: SaveFormat
) -> None:
    one = sample_image([1000, 2000], tag="one", seed="shared")
    two = sample_image([1000, 3000], tag="two", seed="shared")
    assert one.layer_digests[0] == two.layer_digests[0]
    cache_image(one, "team/one")
    cache_image(two, "team/two")
    out = tmp_path / "both.tar"
    result = save_images(cache, ["team/one/one", "team/two/two"], out, format)
    written = _blob_members(out)
    assert len(written) == len(set(written)) == result.blobs == 7  # 2 manifests, 2 configs, 3 layers
    assert result.blob_bytes == sum(m.size for m in members(out) if m.name in written)


def test_the_same_save_gives_the_same_bytes(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path
) -> None:
    cache_image(sample_image([1000, 2000], tag="v1"), "team/app")
    cache_image(sample_image.multi_arch([500], tag="m"), "team/multi")
    first, second = tmp_path / "first.tar", tmp_path / "second.tar"
    save_images(cache, ["team/app/v1", "team/multi/m"], first)
    os.utime(cache.root / "blobs" / "sha256", (12345, 12345))  # the cache's own timestamps do not leak in
    save_images(cache, ["team/multi/m", "team/app/v1", "team/app/v1"], second)
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        for m in tar.getmembers():
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
            assert m.mode == (0o755 if m.isdir() else 0o644)
    assert oct(first.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _flip_last_byte(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("what", ["layer", "config", "manifest"])
def test_a_corrupt_cached_blob_fails_the_save_and_leaves_no_file(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path, what: str
) -> None:
    image = sample_image([1000, 200_000])
    cache_image(image, "team/app")
    digest = {"layer": image.layer_digests[1], "config": image.config_digest, "manifest": image.manifest_digest}[what]
    _flip_last_byte(cache.blob_path(digest))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "old.tar").write_bytes(b"an older archive")
    with pytest.raises(IntegrityError, match=digest):
        save_images(cache, ["team/app/latest"], out_dir / "app.tar")
    with pytest.raises(IntegrityError):
        save_images(cache, ["team/app/latest"], out_dir / "old.tar")
    assert _files_in(out_dir) == ["old.tar"]  # no partial file, no temp file
    assert (out_dir / "old.tar").read_bytes() == b"an older archive"


def test_a_blob_of_the_wrong_size_fails_before_writing(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path
) -> None:
    image = sample_image([1000])
    cache_image(image, "team/app")
    layer = cache.blob_path(image.layer_digests[0])
    os.chmod(layer, 0o644)
    with layer.open("ab") as f:
        f.write(b"x")
    with pytest.raises(IntegrityError, match="expected"):
        save_images(cache, ["team/app/latest"], tmp_path / "app.tar")
    assert not (tmp_path / "app.tar").exists()


def test_a_missing_blob_is_an_incomplete_cache_entry(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path
) -> None:
    image = sample_image([1000])
    cache_image(image, "team/app")
    cache.blob_path(image.layer_digests[0]).unlink()
    with pytest.raises(CacheError, match="incomplete"):
        save_images(cache, ["team/app/latest"], tmp_path / "app.tar")
    assert _files_in(tmp_path) == ["cache", "images"]


def test_an_image_not_in_the_cache_is_named_with_what_is_cached(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError, match="the cache is empty"):
        save_images(cache, ["team/app/v1"], tmp_path / "x.tar")
    cache_image(sample_image([10], tag="v1"), "team/app")
    cache_image(sample_image([10], tag="v2"), "team/app")
    with pytest.raises(NotFoundError) as err:
        save_images(cache, ["team/app/v1", "team/app/v3"], tmp_path / "x.tar")
    assert err.value.message == f"team/app/v3 is not in the cache at {cache.root}; cached: team/app/v1, team/app/v2"
    assert "\n" not in err.value.message and err.value.exit_code == 4
    assert not (tmp_path / "x.tar").exists()


def test_bad_requests_are_usage_errors(cache: Cache, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nothing to save"):
        save_images(cache, [], tmp_path / "x.tar")
    with pytest.raises(UsageError, match="docker or oci"):
        save_images(cache, ["a/b"], tmp_path / "x.tar", "zip")  # type: ignore[arg-type]


def test_progress_counts_every_blob_once(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path
) -> None:
    cache_image(sample_image([3_000_000, 2000], tag="one", seed="s"), "team/one")
    cache_image(sample_image([3_000_000], tag="two", seed="s"), "team/two")
    bus = ProgressBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    result = save_images(cache, ["team/one/one", "team/two/two"], tmp_path / "x.tar", bus=bus)
    planned = [e for e in events if isinstance(e, ImagePlanned)]
    assert [p.image for p in planned] == list(result.names)
    assert sum(p.blobs for p in planned) == result.blobs == 6
    assert sum(p.total_bytes for p in planned) == result.blob_bytes
    assert len([e for e in events if isinstance(e, TransferStarted)]) == result.blobs
    finished = [e for e in events if isinstance(e, TransferFinished)]
    assert len(finished) == result.blobs and {f.outcome for f in finished} == {"saved"}
    assert sum(e.delta for e in events if isinstance(e, TransferProgress)) == result.blob_bytes


def test_a_cancelled_save_stops_and_leaves_no_file(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path
) -> None:
    cache_image(sample_image([3_000_000]), "team/app")
    bus = ProgressBus()

    def cancel_on_first_bytes(event: Event) -> None:
        if isinstance(event, TransferProgress):
            bus.cancel()

    bus.subscribe(cancel_on_first_bytes)
    with pytest.raises(Cancelled):
        save_images(cache, ["team/app/latest"], tmp_path / "out" / "app.tar", bus=bus)
    assert _files_in(tmp_path / "out") == []

"""verify_cache on real cache folders built with the Cache API: what is found, what repair does, and when it refuses."""

import hashlib
import json
import os
from pathlib import Path

import pytest

from docker_image_pusher.cache import BlobRecord, Cache, ImageEntry, ManifestRecord, gc_lock, verify_cache
from docker_image_pusher.errors import CacheError


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob(cache: Cache, data: bytes) -> BlobRecord:
    d = _digest(data)
    cache.put_blob_bytes(d, data)
    return BlobRecord(d, len(data), cache.relative(cache.blob_path(d)), False, False, "x")


def _image(cache: Cache, name: str, layers: list[bytes], children: tuple[bytes, ...] = ()) -> ImageEntry:
    blobs = {b.digest: b for b in (_blob(cache, data) for data in layers)}
    manifests = {}
    for data in children:
        b = _blob(cache, data)
        manifests[b.digest] = ManifestRecord(b.digest, b.size, "m", b.path, "linux/amd64")
    manifest = json.dumps({"name": name, "layers": sorted(blobs), "children": sorted(manifests)}).encode()
    cache.put_blob_bytes(_digest(manifest), manifest)
    path = cache.put_manifest(name, "v1", manifest)
    entry = ImageEntry(name, "v1", cache.relative(path), _digest(manifest), "m", None, blobs, manifests=manifests)
    cache.record(entry)
    return entry


@pytest.fixture
def cache(tmp_path) -> Cache:
    cache = Cache(tmp_path / "cache")
    _image(cache, "team/a", [b"layer-a", b"shared"])
    _image(cache, "team/b", [b"layer-b", b"shared"])
    return cache


def _kinds(report) -> list[tuple[str, str]]:
    return sorted((p.kind, p.path) for p in report.problems)


def test_a_sound_cache_has_no_problems_and_every_blob_is_hashed(cache):
    report = verify_cache(cache, repair=False)
    assert report.problems == [] and not report.remaining
    assert report.blobs_checked == 5 and report.images_checked == 2  # 3 layers, 2 manifests by content
    blob_bytes = sum(p.stat().st_size for p in cache.blobs_dir.iterdir())
    manifest_files = sum(p.stat().st_size for p in cache.manifests_dir.rglob("v1"))
    assert report.bytes_hashed == blob_bytes + manifest_files


def test_a_flipped_byte_is_found_and_repair_drops_the_blob_and_only_the_image_that_needed_it(cache):
    path = cache.blob_path(_digest(b"layer-a"))
    path.write_bytes(b"layer-A")
    report = verify_cache(cache, repair=False)
    rel = cache.relative(path)
    assert _kinds(report) == [("blob-corrupt", rel), ("image-incomplete", rel)]
    assert report.problems[1].image == "team/a/v1" and path.exists()  # checking changes nothing

    repaired = verify_cache(cache, repair=True)
    assert not repaired.remaining and all(p.repaired for p in repaired.problems)
    assert not path.exists() and list(cache.entries()) == ["team/b/v1"]
    assert not (cache.manifests_dir / "team" / "a").exists()
    assert cache.has_blob(_digest(b"shared")) and cache.has_blob(_digest(b"layer-b"))
    assert verify_cache(cache, repair=False).problems == []


def test_a_truncated_blob_is_corrupt(cache):
    path = cache.blob_path(_digest(b"shared"))
    path.write_bytes(b"sha")
    report = verify_cache(cache, repair=False)
    assert ("blob-corrupt", cache.relative(path)) in _kinds(report)
    assert {p.image for p in report.problems if p.kind == "image-incomplete"} == {"team/a/v1", "team/b/v1"}
    verify_cache(cache, repair=True)
    assert cache.entries() == {} and verify_cache(cache, repair=False).problems == []


def test_a_size_other_than_the_recorded_one_makes_the_image_incomplete(cache):
    index = json.loads(cache.index_path.read_text())
    index["team/a/v1"]["blobs"][_digest(b"layer-a")]["size"] = 999
    cache.index_path.write_text(json.dumps(index))
    (problem,) = verify_cache(cache, repair=False).problems
    assert problem.kind == "image-incomplete" and "has 7 bytes, the index says 999" in problem.detail


def test_a_missing_or_altered_manifest_file_makes_the_image_incomplete(cache):
    (cache.manifests_dir / "team" / "a" / "v1").unlink()
    (cache.manifests_dir / "team" / "b" / "v1").write_bytes(b"{}")
    report = verify_cache(cache, repair=False)
    assert _kinds(report) == [("image-incomplete", "manifests/team/a/v1"), ("image-incomplete", "manifests/team/b/v1")]
    assert "is missing" in report.problems[0].detail and "hashes to" in report.problems[1].detail
    verify_cache(cache, repair=True)
    assert cache.entries() == {} and not (cache.manifests_dir / "team").exists()


def test_a_missing_child_manifest_makes_the_index_image_incomplete(tmp_path):
    cache = Cache(tmp_path)
    _image(cache, "team/multi", [b"l"], children=(b'{"child": 1}', b'{"child": 2}'))
    os.unlink(cache.blob_path(_digest(b'{"child": 2}')))
    (problem,) = verify_cache(cache, repair=False).problems
    assert problem.kind == "image-incomplete" and "child manifest is missing" in problem.detail


def test_symlinks_folders_and_bad_names_in_blobs_are_problems_and_repair_deletes_only_them(cache, tmp_path):
    outside = tmp_path / "precious"
    outside.write_bytes(b"layer-a")
    (cache.blobs_dir / _digest(b"layer-a").removeprefix("sha256:")).unlink()
    (cache.blobs_dir / _digest(b"layer-a").removeprefix("sha256:")).symlink_to(outside)
    (cache.blobs_dir / ("0" * 64)).mkdir()
    (cache.blobs_dir / "not-a-digest").write_bytes(b"x")
    kinds = [k for k, _ in _kinds(verify_cache(cache, repair=False))]
    assert kinds == ["blob-bad-name", "blob-not-a-file", "blob-not-a-file", "image-incomplete"]
    verify_cache(cache, repair=True)
    assert outside.read_bytes() == b"layer-a"  # the link went, not what it pointed to
    assert all(_is_blob_of(cache, p) for p in cache.blobs_dir.iterdir())
    assert list(cache.entries()) == ["team/b/v1"]


def _is_blob_of(cache: Cache, path: Path) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == path.name


def test_leftover_temp_files_are_reported_and_deleted_but_partial_downloads_are_kept_for_resuming(cache):
    (cache.tmp_dir / ".write-dead.tmp").write_bytes(b"crash")
    (cache.tmp_dir / "partial").mkdir(exist_ok=True)
    (cache.tmp_dir / "partial" / ("ab" * 32)).write_bytes(b"half a layer")
    (cache.tmp_dir / "partial" / f"{'ab' * 32}.lock").touch()
    report = verify_cache(cache, repair=False)
    assert _kinds(report) == [("tmp-leftover", "tmp/.write-dead.tmp")]
    assert report.partial_downloads == [f"tmp/partial/{'ab' * 32}"] and report.partial_bytes == len(b"half a layer")
    verify_cache(cache, repair=True)
    assert sorted(p.name for p in cache.tmp_dir.rglob("*") if p.is_file()) == ["ab" * 32, f"{'ab' * 32}.lock"]
    assert verify_cache(cache, repair=False).problems == []
    assert len(cache.entries()) == 2


def test_an_index_that_is_not_json_is_moved_aside_and_a_new_empty_one_started(cache):
    cache.index_path.write_bytes(b'{"team/a/v1": ')
    report = verify_cache(cache, repair=False)
    assert _kinds(report) == [("index-unreadable", "index.json")] and report.images_checked == 0
    report = verify_cache(cache, repair=True)
    (aside,) = cache.root.glob("index.json.broken-*")
    assert aside.read_bytes() == b'{"team/a/v1": ' and "moved aside" in (report.problems[0].repaired or "")
    assert json.loads(cache.index_path.read_bytes()) == {} and cache.has_blob(_digest(b"shared"))
    assert verify_cache(cache, repair=False).problems == []


def test_a_malformed_entry_is_removed_and_the_others_stay(cache):
    index = json.loads(cache.index_path.read_text())
    index["team/bad/v1"] = {"repository": "team/bad", "blobs": "nonsense"}
    cache.index_path.write_text(json.dumps(index))
    report = verify_cache(cache, repair=True)
    assert [(p.kind, p.image) for p in report.problems] == [("index-entry-malformed", "team/bad/v1")]
    assert sorted(cache.entries()) == ["team/a/v1", "team/b/v1"]


def test_repair_refuses_while_an_operation_holds_the_gc_lock_and_deletes_nothing(cache):
    download = cache.tmp_dir / ".write-being-written.tmp"
    download.write_bytes(b"being written by a pull")
    with gc_lock(cache, exclusive=False), pytest.raises(CacheError, match="is using it"):
        verify_cache(cache, repair=True)
    assert download.exists()
    with gc_lock(cache, exclusive=False):  # checking alone needs no lock
        assert [p.kind for p in verify_cache(cache, repair=False).problems] == ["tmp-leftover"]

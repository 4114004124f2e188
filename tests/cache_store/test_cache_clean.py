import hashlib
import json

import pytest

from docker_image_pusher.cache import BlobRecord, Cache, ImageEntry, execute_clean, gc_lock, plan_clean
from docker_image_pusher.errors import NotFoundError


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _image(cache: Cache, repository: str, reference: str, layers: list[bytes]) -> ImageEntry:
    blobs = {}
    for data in layers:
        d = _digest(data)
        cache.put_blob_bytes(d, data)
        blobs[d] = BlobRecord(d, len(data), cache.relative(cache.blob_path(d)), False, False, "x")
    manifest = json.dumps({"r": repository, "t": reference, "l": sorted(blobs)}).encode()
    cache.put_blob_bytes(_digest(manifest), manifest)
    path = cache.put_manifest(repository, reference, manifest)
    entry = ImageEntry(repository, reference, cache.relative(path), _digest(manifest), "m", None, blobs)
    cache.record(entry)
    return entry


def _files(cache: Cache) -> set[str]:
    return {
        str(p.relative_to(cache.root)) for p in cache.root.rglob("*") if p.is_file() and not p.name.endswith(".lock")
    }


def test_removing_one_image_keeps_blobs_another_image_shares(tmp_path):
    cache = Cache(tmp_path)
    a = _image(cache, "team/a", "v1", [b"shared", b"only-a"])
    b = _image(cache, "team/b", "v1", [b"shared", b"only-b"])
    with gc_lock(cache, exclusive=True) as ok:
        plan = plan_clean(cache, ["team/a/v1"], everything=False, can_collect=ok)
    assert plan.remove_keys == ["team/a/v1"]
    assert {d for d, _ in plan.delete_blobs} == {_digest(b"only-a"), a.manifest_digest}
    execute_clean(cache, plan)
    assert list(cache.entries()) == ["team/b/v1"]
    assert cache.has_blob(_digest(b"shared")) and cache.has_blob(_digest(b"only-b"))
    assert not cache.has_blob(_digest(b"only-a"))
    assert not (tmp_path / "manifests" / "team" / "a").exists()
    assert cache.has_blob(b.manifest_digest)


def test_garbage_collection_alone_deletes_only_unreferenced_files(tmp_path):
    cache = Cache(tmp_path)
    _image(cache, "team/a", "v1", [b"kept"])
    cache.put_blob_bytes(_digest(b"orphan"), b"orphan")  # e.g. a manifest stored by a pull that then failed
    (tmp_path / "tmp" / ".write-dead.tmp").write_bytes(b"left by a crash")
    (tmp_path / "tmp" / ".extract-dead.tar").write_bytes(b"a crashed extract's inflated .tar.gz")
    (tmp_path / "tmp" / "partial").mkdir(parents=True, exist_ok=True)
    (tmp_path / "tmp" / "partial" / ("ab" * 32)).write_bytes(b"resumable")
    plan = plan_clean(cache, [], everything=False, can_collect=True)
    execute_clean(cache, plan)
    assert not cache.has_blob(_digest(b"orphan")) and cache.has_blob(_digest(b"kept"))
    assert not (tmp_path / "tmp" / ".write-dead.tmp").exists()
    assert not (tmp_path / "tmp" / ".extract-dead.tar").exists()
    assert (tmp_path / "tmp" / "partial" / ("ab" * 32)).exists()  # kept for a resume; --all removes it


def test_all_removes_everything(tmp_path):
    cache = Cache(tmp_path)
    _image(cache, "team/a", "v1", [b"x"])
    (tmp_path / "tmp" / "partial").mkdir(parents=True, exist_ok=True)
    (tmp_path / "tmp" / "partial" / ("cd" * 32)).write_bytes(b"resumable")
    execute_clean(cache, plan_clean(cache, [], everything=True, can_collect=True))
    assert cache.entries() == {} and _files(cache) == {"index.json"}


def test_while_an_operation_holds_the_cache_entries_go_but_no_file_is_deleted(tmp_path):
    cache = Cache(tmp_path)
    _image(cache, "team/a", "v1", [b"only-a"])
    before = _files(cache)
    with gc_lock(cache, exclusive=False):  # a running pull/extract/push
        with gc_lock(cache, exclusive=True, blocking=False) as ok:
            assert not ok
            plan = plan_clean(cache, ["team/a/v1"], everything=False, can_collect=ok)
        execute_clean(cache, plan)
    assert cache.entries() == {}
    assert _files(cache) == before  # the blob and manifest files stay until the next clean


def test_dry_run_plan_changes_nothing_and_unknown_images_are_refused(tmp_path):
    cache = Cache(tmp_path)
    _image(cache, "team/a", "v1", [b"x"])
    before = _files(cache)
    plan_clean(cache, ["team/a/v1"], everything=False, can_collect=True)
    assert _files(cache) == before
    with pytest.raises(NotFoundError):
        plan_clean(cache, ["team/zzz/v1"], everything=False, can_collect=True)

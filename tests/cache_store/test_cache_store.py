import hashlib
import json
import multiprocessing
import os

import pytest

from docker_image_pusher.cache import BlobRecord, Cache, CacheError, ImageEntry
from docker_image_pusher.errors import IntegrityError, UsageError


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _entry(cache: Cache, repository: str, reference: str, data: bytes) -> ImageEntry:
    d = _digest(data)
    cache.put_blob_bytes(d, data)
    rec = BlobRecord(d, len(data), cache.relative(cache.blob_path(d)), False, False, "x")
    path = cache.put_manifest(repository, reference, b"{}")
    return ImageEntry(repository, reference, cache.relative(path), _digest(b"{}"), "m", None, {d: rec})


def test_blob_bytes_are_stored_under_their_digest_only_when_they_match(tmp_path):
    cache = Cache(tmp_path)
    data = b"hello"
    path = cache.put_blob_bytes(_digest(data), data)
    assert path == tmp_path / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()
    assert path.read_bytes() == data
    with pytest.raises(IntegrityError):
        cache.put_blob_bytes(_digest(b"other"), data)
    assert not cache.has_blob(_digest(b"other"))
    assert list((tmp_path / "tmp").iterdir()) == []


def test_index_is_keyed_by_repository_and_reference_with_relative_paths(tmp_path):
    cache = Cache(tmp_path)
    cache.record(_entry(cache, "team/app", "v1", b"layer"))
    index = json.loads((tmp_path / "index.json").read_text())
    assert list(index) == ["team/app/v1"]
    entry = index["team/app/v1"]
    assert entry["manifest_path"] == "manifests/team/app/v1"
    (blob,) = entry["blobs"].values()
    assert blob["path"].startswith("blobs/sha256/") and blob["size"] == 5
    assert cache.get("team/app", "v1") is not None


def test_record_refuses_an_entry_whose_blob_is_missing(tmp_path):
    cache = Cache(tmp_path)
    entry = _entry(cache, "team/app", "v1", b"layer")
    os.unlink(cache.blob_path(next(iter(entry.blobs))))
    with pytest.raises(CacheError):
        cache.record(entry)
    assert not (tmp_path / "index.json").exists()


@pytest.mark.parametrize(("repository", "reference"), [("../x", "v1"), ("a/../../b", "v1"), ("a", "../v1"), ("a", "")])
def test_names_cannot_reach_outside_the_cache(tmp_path, repository, reference):
    with pytest.raises(UsageError):
        Cache(tmp_path).put_manifest(repository, reference, b"{}")
    assert not any(tmp_path.parent.glob("x")) and not (tmp_path / "manifests").exists()


def test_a_corrupt_index_is_reported_not_overwritten(tmp_path):
    cache = Cache(tmp_path)
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(CacheError):
        cache.entries()
    with pytest.raises(CacheError):
        cache.record(_entry(cache, "a", "b", b"x"))
    assert (tmp_path / "index.json").read_text() == "{not json"


def test_partial_path_is_stable_for_resume_and_unique_while_another_holder_has_it(tmp_path):
    cache = Cache(tmp_path)
    d = _digest(b"blob")
    with cache.partial_blob(d) as first:
        first.write_bytes(b"bl")
        with cache.partial_blob(d) as second:  # the lock is per open file: a second holder gets its own path
            assert second != first
    with cache.partial_blob(d) as again:
        assert again == first and again.read_bytes() == b"bl"


def _record_many(root: str, worker: int) -> None:
    cache = Cache(root)
    for i in range(15):
        cache.record(_entry(cache, f"w{worker}/app", f"t{i}", f"{worker}-{i}".encode()))


def test_concurrent_processes_never_lose_an_index_entry(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_record_many, args=(str(tmp_path), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    index = json.loads((tmp_path / "index.json").read_text())
    assert len(index) == 60


def test_ingest_streams_verifies_and_publishes(tmp_path):
    import io

    cache = Cache(tmp_path)
    data = os.urandom(3 << 20)
    seen: list[int] = []
    path = cache.ingest(_digest(data), len(data), io.BytesIO(data), on_progress=seen.append)
    assert path.read_bytes() == data and sum(seen) == len(data)
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # the process's umask, not mkstemp's 0600


@pytest.mark.parametrize("case", ["wrong-bytes", "short"])
def test_ingest_leaves_nothing_behind_on_bad_input(tmp_path, case):
    import io

    cache = Cache(tmp_path)
    data = b"x" * 5000
    digest = _digest(data)
    reader = io.BytesIO(b"y" * 5000 if case == "wrong-bytes" else data[:100])
    with pytest.raises(IntegrityError):
        cache.ingest(digest, len(data), reader)
    assert not cache.has_blob(digest)
    assert list((tmp_path / "tmp").iterdir()) == []

"""Checking the cache against itself (verify), and repairing it (verify --repair), as plan then execute.

Checked: every file in blobs/sha256/ is a regular file whose sha256 is its name; every index.json entry has its
manifest file (hashing to manifest_digest) and every blob and child manifest it names, at the recorded size;
index.json parses; no temporary file is left in tmp/. Partial downloads (tmp/partial/<hex>) are not problems:
they are where an interrupted pull resumes, and a resumed blob is hashed before it is committed, so a bad one
costs a download, never a wrong blob. They are listed (``partial_downloads``) and kept by repair; ``clean --all``
deletes them. The empty ``*.lock`` files partial downloads leave behind are not counted.

Checking only reads and takes no lock, so beside a running pull it may report that pull's files in tmp/.
Repairing takes the gc lock exclusive without waiting and refuses while a pull, extract or push holds it: it
would delete the partial download that operation is writing. Repair removes the entries that are incomplete
first (so that index.json never names a deleted file), then deletes the bad blobs and the leftovers in tmp/.
A blob that only removed entries needed stays, for ``clean`` to collect.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import CacheError
from ._atomic import atomic_write_bytes
from ._clean import _prune_empty_dirs, gc_lock
from ._entry import ImageEntry
from ._lock import exclusive_lock
from ._store import Cache

__all__ = ["Problem", "VerifyReport", "execute_repair", "plan_verify", "verify_cache"]

_CHUNK = 1 << 20
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass
class Problem:
    kind: str  # index-unreadable, index-entry-malformed, blob-corrupt, blob-not-a-file, blob-bad-name,
    # image-incomplete, tmp-leftover
    path: str  # relative to the cache root
    detail: str
    image: str | None = None  # the index.json key, for the entry kinds
    repaired: str | None = None  # what repair did about it


@dataclass
class VerifyReport:
    root: Path
    problems: list[Problem] = field(default_factory=list)
    blobs_checked: int = 0
    bytes_hashed: int = 0
    images_checked: int = 0
    repair_attempted: bool = False
    partial_downloads: list[str] = field(default_factory=list)  # relative paths under tmp/partial/
    partial_bytes: int = 0
    good_blobs: dict[str, int] = field(default_factory=dict, repr=False)  # hex -> size, hashed and sound
    bad_blobs: set[str] = field(default_factory=set, repr=False)  # names under blobs/sha256/ with a problem
    manifest_files: dict[str, Path] = field(default_factory=dict, repr=False)  # index key -> its manifests/ file

    @property
    def remaining(self) -> list[Problem]:
        return [p for p in self.problems if p.repaired is None]

    def to_json(self) -> dict[str, Any]:
        return {
            "cache": str(self.root),
            "sound": not self.remaining,
            "repair": self.repair_attempted,
            "blobs_checked": self.blobs_checked,
            "bytes_hashed": self.bytes_hashed,
            "images_checked": self.images_checked,
            "problems": [asdict(p) for p in self.problems],
            "partial_downloads": self.partial_downloads,
            "partial_bytes": self.partial_bytes,
        }


def verify_cache(cache: Cache, *, repair: bool) -> VerifyReport:
    """Check the cache; with ``repair``, also fix what was found (CacheError while an operation is running)."""
    if not repair:
        return plan_verify(cache)
    with gc_lock(cache, exclusive=True, blocking=False) as alone:
        if not alone:
            raise CacheError(
                f"cannot repair {cache.root} now: a pull, extract or push is using it (it holds .gc.lock) and repair "
                "could delete the download it is writing; run verify --repair again when it has finished"
            )
        report = plan_verify(cache)
        execute_repair(cache, report)
        return report


def plan_verify(cache: Cache) -> VerifyReport:
    report = VerifyReport(root=cache.root)
    _check_blobs(cache, report)
    _check_index(cache, report)
    _check_tmp(cache, report)
    return report


def _hash_file(path: Path, report: VerifyReport) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    report.bytes_hashed += size
    return hasher.hexdigest(), size


def _check_blobs(cache: Cache, report: VerifyReport) -> None:
    if not cache.blobs_dir.is_dir():
        return
    for path in sorted(cache.blobs_dir.iterdir()):
        _check_blob(cache, path, report)


def _check_blob(cache: Cache, path: Path, report: VerifyReport) -> None:
    rel = cache.relative(path)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return  # deleted by a clean since we listed the folder
    report.blobs_checked += 1
    report.bad_blobs.add(path.name)  # until proven sound
    if not stat.S_ISREG(mode):
        kind = "a symlink" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        report.problems.append(Problem("blob-not-a-file", rel, f"{kind}, where a blob should be"))
        return
    if not _HEX.fullmatch(path.name):
        report.problems.append(Problem("blob-bad-name", rel, "not a sha256 digest (64 lowercase hex digits)"))
        return
    try:
        actual, size = _hash_file(path, report)
    except FileNotFoundError:
        report.blobs_checked -= 1
        report.bad_blobs.discard(path.name)
        return
    if actual == path.name:
        report.good_blobs[path.name] = size
        report.bad_blobs.discard(path.name)
    else:
        report.problems.append(Problem("blob-corrupt", rel, f"its {size} bytes hash to sha256:{actual}"))


def _read_index(cache: Cache, report: VerifyReport) -> dict[str, Any] | None:
    try:
        obj = json.loads(cache.index_path.read_bytes())
    except FileNotFoundError:
        return {}
    except ValueError as err:
        report.problems.append(Problem("index-unreadable", "index.json", f"not valid JSON ({err})"))
        return None
    if not isinstance(obj, dict):
        report.problems.append(Problem("index-unreadable", "index.json", "not a JSON object"))
        return None
    return obj


def _check_index(cache: Cache, report: VerifyReport) -> None:
    index = _read_index(cache, report)
    for key, value in sorted((index or {}).items()):
        report.images_checked += 1
        try:
            entry = ImageEntry.from_json(value)
            needed = _needed_blobs(entry)
            if not isinstance(entry.manifest_path, str):
                raise TypeError("manifest_path")
        except (TypeError, ValueError, AttributeError) as err:
            detail = f"entry is malformed ({type(err).__name__})"
            report.problems.append(Problem("index-entry-malformed", "index.json", detail, key))
            continue
        _check_manifest_file(cache, entry, key, report)
        for hexd, size, what in needed:
            missing = _blob_trouble(cache, hexd, size, report)
            if missing:
                path = cache.relative(cache.blobs_dir / hexd)
                report.problems.append(Problem("image-incomplete", path, f"{key}: {what} {missing}", key))


def _needed_blobs(entry: ImageEntry) -> list[tuple[str, int | None, str]]:
    """(hex, recorded size or None, what it is) for every blob the entry needs; ValueError on a bad digest."""
    out: list[tuple[str, int | None, str]] = [(_hex(entry.manifest_digest), None, "manifest blob")]
    for blob in entry.blobs.values():
        out.append((_hex(blob.digest), blob.size, "config" if blob.is_config else "layer"))
    for child in entry.manifests.values():
        out.append((_hex(child.digest), child.size, "child manifest"))
    return out


def _hex(digest: str) -> str:
    hexd = digest.removeprefix("sha256:")
    if not digest.startswith("sha256:") or not _HEX.fullmatch(hexd):
        raise ValueError(f"bad digest {digest!r}")
    return hexd


def _blob_trouble(cache: Cache, hexd: str, size: int | None, report: VerifyReport) -> str | None:
    """None when the blob is there, sound and of the recorded size; else what is wrong with it."""
    if hexd in report.bad_blobs:
        return "is corrupt or not a file"
    if hexd not in report.good_blobs:  # not there when we listed blobs/ (or published since): look again
        path = cache.blobs_dir / hexd
        try:
            if path.is_symlink() or _hash_file(path, report)[0] != hexd:
                return "is corrupt or not a file"
            report.good_blobs[hexd] = path.stat().st_size
        except (FileNotFoundError, IsADirectoryError):
            return "is missing"
    actual = report.good_blobs[hexd]
    return None if size is None or actual == size else f"has {actual} bytes, the index says {size}"


def _check_manifest_file(cache: Cache, entry: ImageEntry, key: str, report: VerifyReport) -> None:
    path = cache.root / entry.manifest_path
    rel = entry.manifest_path
    if not path.resolve().is_relative_to(cache.manifests_dir.resolve()):
        trouble: str | None = "is outside manifests/"
    elif not path.is_file():
        trouble = "is missing"
        report.manifest_files[key] = path
    else:
        report.manifest_files[key] = path
        actual = "sha256:" + _hash_file(path, report)[0]
        trouble = None if actual == entry.manifest_digest else f"hashes to {actual}, not {entry.manifest_digest}"
    if trouble:
        report.problems.append(Problem("image-incomplete", rel, f"{key}: manifest file {trouble}", key))


def _check_tmp(cache: Cache, report: VerifyReport) -> None:
    if not cache.tmp_dir.is_dir():
        return
    for dirpath, _dirs, files in sorted(os.walk(cache.tmp_dir)):
        for name in sorted(files):
            path = Path(dirpath) / name
            if name.endswith(".lock"):
                continue  # partial_blob's lock files: empty, left on purpose
            if path.parent == cache.tmp_dir / "partial":
                try:
                    report.partial_bytes += path.stat().st_size
                except FileNotFoundError:
                    continue  # finished (committed) since we listed the folder
                report.partial_downloads.append(cache.relative(path))
                continue
            detail = "temporary file, left by an interrupted operation (or in use by a running one)"
            report.problems.append(Problem("tmp-leftover", cache.relative(path), detail))


def execute_repair(cache: Cache, report: VerifyReport) -> None:
    """Fix what ``report`` found; call with the gc lock held exclusive. Marks each fixed problem."""
    report.repair_attempted = True
    _repair_index(cache, report)
    for problem in report.problems:
        if problem.kind in ("blob-corrupt", "blob-not-a-file", "blob-bad-name", "tmp-leftover"):
            path = cache.root / problem.path
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                cache.remove_file(path)
            problem.repaired = "deleted"


def _repair_index(cache: Cache, report: VerifyReport) -> None:
    broken = [p for p in report.problems if p.kind == "index-unreadable"]
    if broken:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = cache.index_path.with_name(f"index.json.broken-{stamp}")
        with exclusive_lock(cache.root / ".index.lock"):
            os.replace(cache.index_path, aside)
            atomic_write_bytes(cache.index_path, b"{}\n", cache.tmp_dir)
        broken[0].repaired = f"moved aside to {aside.name}; started an empty index.json"
        return
    keys = sorted({p.image for p in report.problems if p.image is not None})
    if not keys:
        return
    cache.remove(keys)
    for key in keys:
        if key in report.manifest_files:
            cache.remove_file(report.manifest_files[key])  # manifests/{repository}/{reference}: that entry's own
    _prune_empty_dirs(cache.manifests_dir)
    for problem in report.problems:
        if problem.image is not None:
            problem.repaired = f"removed image {problem.image} from index.json"

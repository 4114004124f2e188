"""Cleaning the cache as plan, then execute: drop image entries, then collect the files nothing references.

Safety beside running operations: every pull, extract and push holds a shared lock on ``<cache>/.gc.lock``
for its whole run; collecting garbage needs the exclusive lock. When an operation is running, entries are
still removed (an index.json update, atomic under its own lock) but no file is deleted: the plan says so,
and the next clean collects them. The kernel drops a dead process's lock, so a crash never blocks cleaning.
"""

from __future__ import annotations

import contextlib
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NotFoundError
from ._entry import ImageEntry
from ._lock import file_lock
from ._store import Cache

__all__ = ["CleanPlan", "execute_clean", "gc_lock", "plan_clean"]


@dataclass
class CleanPlan:
    remove_keys: list[str]
    delete_blobs: list[tuple[str, int]] = field(default_factory=list)  # (digest, size)
    delete_files: list[Path] = field(default_factory=list)  # manifests/ files, stale temp files
    collect: bool = True  # False: an operation is running, only entries are removed

    @property
    def bytes_freed(self) -> int:
        return sum(size for _, size in self.delete_blobs)


def referenced_digests(entries: dict[str, ImageEntry]) -> set[str]:
    out: set[str] = set()
    for entry in entries.values():
        out.add(entry.manifest_digest)
        out.update(entry.blobs)
        out.update(entry.manifests)
    return out


def gc_lock(cache: Cache, *, exclusive: bool, blocking: bool = True) -> AbstractContextManager[bool]:
    """Shared for operations, exclusive for garbage collection. Yields whether the lock was taken."""
    return file_lock(cache.root / ".gc.lock", shared=not exclusive, blocking=blocking)


def plan_clean(cache: Cache, keys: list[str], *, everything: bool, can_collect: bool) -> CleanPlan:
    entries = cache.entries()
    if everything:
        remove = sorted(entries)
    else:
        missing = [k for k in keys if k not in entries]
        if missing:
            raise NotFoundError(f"not in the cache: {', '.join(missing)}")
        remove = sorted(keys)
    plan = CleanPlan(remove_keys=remove, collect=can_collect)
    if not can_collect:
        return plan
    keep = {k: e for k, e in entries.items() if k not in remove}
    referenced = referenced_digests(keep)
    if cache.blobs_dir.is_dir():
        for path in sorted(cache.blobs_dir.iterdir()):
            digest = "sha256:" + path.name
            if digest not in referenced and path.is_file():
                plan.delete_blobs.append((digest, path.stat().st_size))
    for key in remove:
        path = cache.root / entries[key].manifest_path
        if path.is_file():
            plan.delete_files.append(path)
    if cache.tmp_dir.is_dir():
        # With the exclusive lock no operation is running: every temp file left in tmp/ is a crash's leftover.
        plan.delete_files.extend(p for p in sorted(cache.tmp_dir.iterdir()) if p.is_file())
        if everything and (cache.tmp_dir / "partial").is_dir():
            plan.delete_files.extend(p for p in sorted((cache.tmp_dir / "partial").iterdir()) if p.is_file())
    return plan


def execute_clean(cache: Cache, plan: CleanPlan) -> None:
    """Entries first (so that nothing in index.json ever names a deleted file), then the files."""
    if plan.remove_keys:
        cache.remove(plan.remove_keys)
    for digest, _ in plan.delete_blobs:
        cache.remove_file(cache.blob_path(digest))
    for path in plan.delete_files:
        cache.remove_file(path)
    _prune_empty_dirs(cache.manifests_dir)


def _prune_empty_dirs(root: Path) -> None:
    if not root.is_dir():
        return
    for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: -len(t[0])):
        if Path(dirpath) != root:
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)  # only succeeds when empty

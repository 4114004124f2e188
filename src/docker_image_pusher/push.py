"""Pushing a cached image to a registry, as Prefect-free steps that the push flow's tasks wrap.

    plan_push       what the image needs: its blobs (with a repository to mount each from, when the cache knows
                    one on the same registry), child manifests, and the top manifest, all checked present
    push_blob       one blob: HEAD (skip if there), else cross-repository mount, else upload (monolithic,
                    chunked on refusal or on request, resumed from the registry's offset)
    push_manifests  child manifests by digest, then the manifest or index under the tag, last

What lands in the registry is exactly what the cache holds: the same manifest bytes, the same digests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from .cache import Cache, ImageEntry
from .errors import IntegrityError, NotFoundError, UsageError
from .progress.events import ProgressBus, TransferFinished, TransferProgress, TransferStarted, reporting_failures

if TYPE_CHECKING:
    from .registry import RegistryClient

__all__ = [
    "PushBlob",
    "PushManifest",
    "PushOutcome",
    "PushPlan",
    "parse_size",
    "plan_push",
    "push_blob",
    "push_manifests",
]


@dataclass(frozen=True)
class PushBlob:
    digest: str
    size: int
    mount_from: str | None = None  # another repository on the target registry known to hold this blob


@dataclass(frozen=True)
class PushManifest:
    digest: str
    size: int
    media_type: str


@dataclass(frozen=True)
class PushPlan:
    source_key: str
    manifest_digest: str
    media_type: str
    children: tuple[PushManifest, ...]
    blobs: tuple[PushBlob, ...]

    @property
    def total_bytes(self) -> int:
        return sum(b.size for b in self.blobs)

    @property
    def mount_sources(self) -> list[str]:
        return sorted({b.mount_from for b in self.blobs if b.mount_from})


@dataclass(frozen=True)
class PushOutcome:
    digest: str
    size: int
    transferred: int
    outcome: str  # "skipped" (already there), "mounted", "uploaded"


def find_entry(cache: Cache, key: str, entries: dict[str, ImageEntry] | None = None) -> ImageEntry:
    entries = cache.entries() if entries is None else entries
    entry = entries.get(key)
    if entry is None:
        have = ", ".join(sorted(entries)[:10]) or "the cache is empty"
        raise NotFoundError(f"image {key} is not in the cache {cache.root} (it has: {have})")
    return entry


def plan_push(cache: Cache, key: str, registry: str, repository: str) -> PushPlan:
    entries = cache.entries()
    entry = find_entry(cache, key, entries)
    for digest, blob in entry.blobs.items():
        if not cache.has_blob(digest, blob.size):
            raise IntegrityError(f"image {key}: blob {digest} is missing from the cache or has the wrong size")
    for digest, child in entry.manifests.items():
        if not cache.has_blob(digest, child.size):
            raise IntegrityError(f"image {key}: manifest {digest} is missing from the cache; pull it again")
    if not cache.has_blob(entry.manifest_digest):
        raise IntegrityError(f"image {key}: manifest {entry.manifest_digest} is missing from the cache")
    holders: dict[str, str] = {}
    for other in entries.values():
        if other.registry == registry and other.repository != repository:
            for digest in other.blobs:
                holders.setdefault(digest, other.repository)
    blobs = tuple(PushBlob(d, b.size, holders.get(d)) for d, b in sorted(entry.blobs.items()))
    children = tuple(PushManifest(d, m.size, m.media_type) for d, m in sorted(entry.manifests.items()))
    return PushPlan(key, entry.manifest_digest, entry.media_type, children, blobs)


def push_blob(
    client: RegistryClient,
    cache: Cache,
    repository: str,
    blob: PushBlob,
    bus: ProgressBus,
    *,
    force: bool = False,
    chunk_size: int | None = None,
) -> PushOutcome:
    bus.raise_if_cancelled()
    with reporting_failures(bus, blob.digest):
        return _push_blob(client, cache, repository, blob, bus, force=force, chunk_size=chunk_size)


def _push_blob(
    client: RegistryClient,
    cache: Cache,
    repository: str,
    blob: PushBlob,
    bus: ProgressBus,
    *,
    force: bool,
    chunk_size: int | None,
) -> PushOutcome:
    if not force:
        if client.head_blob(repository, blob.digest) == blob.size:
            bus.publish(TransferFinished(blob.digest, 0, "skipped"))
            return PushOutcome(blob.digest, blob.size, 0, "skipped")
        if blob.mount_from and client.mount_blob(repository, blob.digest, blob.mount_from):
            bus.publish(TransferFinished(blob.digest, 0, "mounted"))
            return PushOutcome(blob.digest, blob.size, 0, "mounted")
    path = cache.blob_path(blob.digest)

    def open_at(offset: int) -> BinaryIO:
        f = path.open("rb")
        f.seek(offset)
        return f

    sent = 0

    def progress(delta: int) -> None:
        nonlocal sent
        bus.raise_if_cancelled()
        sent += delta
        bus.publish(TransferProgress(blob.digest, delta))

    bus.publish(TransferStarted(blob.digest, blob.size))
    client.upload_blob(repository, blob.digest, blob.size, open_at, chunk_size=chunk_size, on_progress=progress)
    bus.publish(TransferFinished(blob.digest, sent, "uploaded"))
    return PushOutcome(blob.digest, blob.size, sent, "uploaded")


def push_manifests(client: RegistryClient, cache: Cache, repository: str, tag: str, plan: PushPlan) -> str:
    """Children first (an index may only name manifests the registry has), then the image under ``tag``."""
    for child in plan.children:
        client.put_manifest(repository, child.digest, cache.read_blob(child.digest), child.media_type)
    raw = cache.read_blob(plan.manifest_digest)
    digest = client.put_manifest(repository, tag, raw, plan.media_type)
    if digest != plan.manifest_digest:
        raise IntegrityError(f"the registry stored manifest {digest}, expected {plan.manifest_digest}")
    return digest


_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """``8MiB``, ``8M``, ``5mb``, ``1048576`` -> bytes (binary units)."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"invalid size {text!r}: expected a number with an optional unit, e.g. 8MiB")
    value = int(match[1]) * _UNITS[(match[2] or "").lower()[:1]]
    if value <= 0:
        raise UsageError(f"invalid size {text!r}: must be positive")
    return value

"""One blob from the archive into the cache, streamed from its offset, verified before it is published.

A blob whose digest is known (the usual case) goes through Cache.ingest, and is not read at all when the
cache has it already. One whose digest is only known once read (a compressed layer of a docker-archive),
or whose diff_id must be checked on the decompressed bytes, is copied into a temp file of the cache while
hashing (and inflating) it, then published under the digest it turned out to have.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, cast

from ..cache import Cache, new_temp
from ..errors import ArchiveError, IntegrityError
from ..progress.events import ProgressBus, TransferFinished, TransferProgress, TransferStarted
from ._gzip_diff_id import GzipDiffId
from ._model import ArchiveBlob
from ._reading import BoundedReader

__all__ = ["IngestedBlob", "ingest_blob"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class IngestedBlob:
    key: str  # ArchiveBlob.key
    digest: str
    size: int
    outcome: str  # "extracted": this extract published it; "cached": the cache had it already


def ingest_blob(cache: Cache, blob: ArchiveBlob, bus: ProgressBus) -> IngestedBlob:
    if blob.digest and cache.has_blob(blob.digest, blob.size):
        bus.publish(TransferFinished(blob.key, 0, "cached"))
        return IngestedBlob(blob.key, blob.digest, blob.size, "cached")
    bus.raise_if_cancelled()
    bus.publish(TransferStarted(blob.key, blob.size))

    def progress(delta: int) -> None:
        bus.raise_if_cancelled()
        bus.publish(TransferProgress(blob.key, delta))

    if blob.digest and not blob.diff_id:
        digest, published = blob.digest, _ingest_known(cache, blob, blob.digest, progress)
    else:
        digest, published = _ingest_hashing(cache, blob, progress)
    outcome = "extracted" if published else "cached"
    bus.publish(TransferFinished(blob.key, blob.size, outcome))
    return IngestedBlob(blob.key, digest, blob.size, outcome)


def _ingest_known(cache: Cache, blob: ArchiveBlob, digest: str, progress: Callable[[int], None]) -> bool:
    with BoundedReader(blob.data) as reader:
        try:
            cache.ingest(digest, blob.size, cast(BinaryIO, reader), on_progress=progress)
        except IntegrityError as err:
            raise ArchiveError(f"archive member {blob.data.name}: {err.message}") from None
    return True


def _ingest_hashing(cache: Cache, blob: ArchiveBlob, progress: Callable[[int], None]) -> tuple[str, bool]:
    out, tmp = new_temp(cache.tmp_dir, ".extract-")
    try:
        digest = _copy_hashing(blob, out, progress)
        if cache.has_blob(digest, blob.size):
            tmp.unlink()
            return digest, False
        cache.commit_blob(digest, tmp, blob.size)
        return digest, True
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _copy_hashing(blob: ArchiveBlob, out: BinaryIO, progress: Callable[[int], None]) -> str:
    sha = hashlib.sha256()
    diff = GzipDiffId(blob.data.name) if blob.diff_id else None
    with out, BoundedReader(blob.data) as reader:
        while chunk := reader.read(_CHUNK):
            sha.update(chunk)
            if diff:
                diff.update(chunk)
            out.write(chunk)
            progress(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    digest = "sha256:" + sha.hexdigest()
    if blob.digest and digest != blob.digest:
        raise ArchiveError(f"archive member {blob.data.name}: content has digest {digest}, expected {blob.digest}")
    if diff and (diff_id := diff.digest()) != blob.diff_id:
        raise ArchiveError(
            f"layer {blob.data.name}: its uncompressed content has digest {diff_id}, the config says {blob.diff_id}"
        )
    return digest

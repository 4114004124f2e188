"""The local image cache: the seed's layout, written atomically, safe with several processes.

    <root>/index.json                          "{repository}/{reference}" -> ImageEntry
    <root>/manifests/{repository}/{reference}  the top-level manifest or index, raw bytes
    <root>/blobs/sha256/{hex}                  layers, configs, and every manifest by content
    <root>/tmp/                                temp and partial files (same file system: rename is atomic)

A blob appears under its digest only after its bytes were verified. index.json changes under an
exclusive flock, through a temp file and a rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from ..errors import CacheError, IntegrityError
from ..manifest import sha256_digest
from ..reference import check_digest, check_repository, check_tag, is_digest
from ._atomic import atomic_write_bytes, fsync_dir, new_temp, publish_file
from ._entry import ImageEntry, entry_key
from ._lock import exclusive_lock, try_exclusive_lock
from ._modes import make_dirs

__all__ = ["Cache", "CacheError"]


_CHUNK = 1 << 20


class Cache:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.manifests_dir = self.root / "manifests"
        self.tmp_dir = self.root / "tmp"
        self.index_path = self.root / "index.json"
        self._index_lock = self.root / ".index.lock"

    # -- blobs -------------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / check_digest(digest).removeprefix("sha256:")

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        try:
            st = self.blob_path(digest).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    @contextlib.contextmanager
    def partial_blob(self, digest: str) -> Iterator[Path]:
        """A path to download ``digest`` into.

        The same path every time, so that a retried or re-run download resumes from the bytes already
        there. If another process is downloading the same blob right now we get a fresh unique path
        instead: the lock only saves bandwidth, every byte is still verified before it is published.
        """
        hexd = check_digest(digest).removeprefix("sha256:")
        partial_dir = self.tmp_dir / "partial"
        make_dirs(partial_dir)
        with try_exclusive_lock(partial_dir / f"{hexd}.lock") as locked:
            if locked:
                yield partial_dir / hexd
                return
        unique = partial_dir / f"{hexd}.{uuid.uuid4().hex}"
        try:
            yield unique
        finally:
            with contextlib.suppress(FileNotFoundError):
                unique.unlink()

    def commit_blob(self, digest: str, verified: Path, size: int) -> Path:
        """Publish a downloaded file that the caller has verified against ``digest`` while writing it."""
        if verified.stat().st_size != size:
            raise IntegrityError(f"blob {digest}: expected {size} bytes, file has {verified.stat().st_size}")
        dest = self.blob_path(digest)
        publish_file(verified, dest)
        return dest

    def ingest(
        self, digest: str, size: int, reader: BinaryIO, *, on_progress: Callable[[int], None] | None = None
    ) -> Path:
        """Stream ``size`` bytes from ``reader`` into the cache under ``digest``, hashing as they pass.

        Nothing is published unless the bytes match; on a mismatch or a short read nothing is left behind.
        """
        if self.has_blob(digest, size):
            return self.blob_path(digest)
        out, tmp = new_temp(self.tmp_dir, ".ingest-")
        try:
            hasher = hashlib.sha256()
            remaining = size
            with out:
                while remaining:
                    chunk = reader.read(min(remaining, _CHUNK))
                    if not chunk:
                        raise IntegrityError(f"blob {digest}: input ended {remaining} bytes early")
                    hasher.update(chunk)
                    out.write(chunk)
                    remaining -= len(chunk)
                    if on_progress:
                        on_progress(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            actual = "sha256:" + hasher.hexdigest()
            if actual != digest:
                raise IntegrityError(f"blob {digest}: content has digest {actual}")
            return self.commit_blob(digest, tmp, size)
        except BaseException:
            self.remove_file(tmp)
            raise

    def put_blob_bytes(self, digest: str, data: bytes) -> Path:
        """Store a small blob (a manifest or a config) after checking its digest."""
        actual = sha256_digest(data)
        if actual != digest:
            raise IntegrityError(f"content of {digest} has digest {actual}")
        dest = self.blob_path(digest)
        if not self.has_blob(digest, len(data)):
            atomic_write_bytes(dest, data, self.tmp_dir)
        return dest

    def read_blob(self, digest: str, max_bytes: int = 4 * 1024 * 1024) -> bytes:
        path = self.blob_path(digest)
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise IntegrityError(f"blob {digest} is larger than {max_bytes} bytes")
        return data

    # -- manifests ---------------------------------------------------------------------------------
    def manifest_path(self, repository: str, reference: str) -> Path:
        check_repository(repository)
        if not is_digest(reference):
            check_tag(reference)
        return self.manifests_dir / repository / reference

    def put_manifest(self, repository: str, reference: str, raw: bytes) -> Path:
        dest = self.manifest_path(repository, reference)
        atomic_write_bytes(dest, raw, self.tmp_dir)
        return dest

    # -- index.json --------------------------------------------------------------------------------
    def _read_index_file(self) -> dict[str, object]:
        try:
            data = self.index_path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            obj = json.loads(data)
        except ValueError:
            raise CacheError(f"{self.index_path} is not valid JSON; the cache needs repair") from None
        if not isinstance(obj, dict):
            raise CacheError(f"{self.index_path} is not a JSON object; the cache needs repair")
        return obj

    def entries(self) -> dict[str, ImageEntry]:
        out: dict[str, ImageEntry] = {}
        for key, value in self._read_index_file().items():
            if isinstance(value, dict):
                try:
                    out[key] = ImageEntry.from_json(value)
                except TypeError:
                    raise CacheError(f"{self.index_path}: entry {key!r} is malformed") from None
        return out

    def get(self, repository: str, reference: str) -> ImageEntry | None:
        return self.entries().get(entry_key(repository, reference))

    def record(self, entry: ImageEntry) -> None:
        """Add or replace an image entry. Every file it names must already be in place."""
        for blob in entry.blobs.values():
            if not self.has_blob(blob.digest, blob.size):
                raise CacheError(f"refusing to record {entry.key}: blob {blob.digest} is not in the cache")
        if entry.created_at is None:
            entry = ImageEntry(**{**entry.__dict__, "created_at": datetime.now(UTC).isoformat(timespec="seconds")})
        make_dirs(self.root)
        with exclusive_lock(self._index_lock):
            index = self._read_index_file()
            index[entry.key] = entry.to_json()
            self._write_index(index)

    def remove(self, keys: list[str]) -> None:
        with exclusive_lock(self._index_lock):
            index = self._read_index_file()
            for key in keys:
                index.pop(key, None)
            self._write_index(index)

    def _write_index(self, index: dict[str, object]) -> None:
        data = json.dumps(index, indent=2, sort_keys=True).encode() + b"\n"
        atomic_write_bytes(self.index_path, data, self.tmp_dir)

    def ensure_layout(self) -> None:
        for d in (self.blobs_dir, self.manifests_dir, self.tmp_dir):
            make_dirs(d)
        fsync_dir(self.root)

    @staticmethod
    def remove_file(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

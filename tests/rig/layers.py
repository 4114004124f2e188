"""Streaming writer of image layers: a tar of generated files, gzip-compressed or not, hashed on the fly.

Nothing is held in memory beyond one chunk, so a 512 MiB layer costs 512 MiB of disk and no RAM.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import tarfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Protocol, cast

__all__ = ["FileSpec", "LayerSpec", "RandomSource", "WrittenLayer", "as_layer_spec", "write_blob", "write_layer"]

RandomSource = Literal["seeded", "urandom"]
FIXED_MTIME = 1_700_000_000  # 2023-11-14: same bytes every run
_CHUNK = 1 << 20  # a multiple of 4, so seeded output does not depend on how it is cut


@dataclass(frozen=True)
class FileSpec:
    """A regular file in a layer: `data` if given, else `size` random bytes."""

    path: str
    size: int = 0
    data: bytes | None = None
    mode: int = 0o644


@dataclass(frozen=True)
class LayerSpec:
    files: tuple[FileSpec, ...]


@dataclass(frozen=True)
class WrittenLayer:
    digest: str  # sha256 of the blob as stored (compressed if gzip)
    size: int
    diff_id: str  # sha256 of the uncompressed tar
    uncompressed_size: int
    compressed: bool
    path: Path


def as_layer_spec(item: LayerSpec | int, index: int) -> LayerSpec:
    """An int N means one file `layerI/blob.bin` of N random bytes."""
    if isinstance(item, LayerSpec):
        return item
    return LayerSpec((FileSpec(f"layer{index}/blob.bin", size=item),))


class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...
    def flush(self) -> object: ...


class _HashingWriter:
    """Passes writes to `inner`, hashing and counting them (what tarfile and GzipFile need of a file)."""

    def __init__(self, inner: _Sink) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        self.sha.update(view)
        self.count += len(view)
        self.inner.write(data)
        return len(view)

    def flush(self) -> None:
        self.inner.flush()


class _RandomReader:
    """`size` pseudo-random bytes: from random.Random(seed) (reproducible) or os.urandom."""

    def __init__(self, size: int, seed: str, source: RandomSource) -> None:
        self.left = size
        self.rng = random.Random(seed) if source == "seeded" else None

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.left:
            n = self.left
        self.left -= n
        return self.rng.randbytes(n) if self.rng is not None else os.urandom(n)


def _tar_info(name: str, *, size: int = 0, mode: int = 0o644, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    return info


def _write_tar(out: _HashingWriter, files: Sequence[FileSpec], seed: str, source: RandomSource) -> None:
    seen_dirs: set[str] = set()
    with tarfile.open(fileobj=cast(IO[bytes], out), mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.copybufsize = _CHUNK  # type: ignore[attr-defined]  # default 16 KiB reads slow big layers down
        for number, spec in enumerate(files):
            parts = spec.path.strip("/").split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in seen_dirs:
                    seen_dirs.add(directory)
                    tar.addfile(_tar_info(directory, directory=True))
            name = "/".join(parts)
            if spec.data is not None:
                tar.addfile(_tar_info(name, size=len(spec.data), mode=spec.mode), io.BytesIO(spec.data))
            else:
                reader = _RandomReader(spec.size, f"{seed}:{number}", source)
                tar.addfile(_tar_info(name, size=spec.size, mode=spec.mode), reader)


def _store(tmp: Path, blobs_dir: Path, digest: str) -> Path:
    final = blobs_dir / digest.removeprefix("sha256:")
    if final.exists():
        tmp.unlink()
    else:
        tmp.replace(final)
    return final


def write_layer(
    blobs_dir: Path,
    spec: LayerSpec,
    *,
    seed: str = "0",
    compress: bool = True,
    compresslevel: int = 1,
    random_source: RandomSource = "seeded",
) -> WrittenLayer:
    """Write one layer blob into `blobs_dir` (blobs/sha256). compresslevel 0 makes valid, fast, stored-only gzip."""
    blobs_dir.mkdir(parents=True, exist_ok=True)
    tmp = blobs_dir / f".tmp-{uuid.uuid4().hex}"
    with tmp.open("wb") as raw_file:
        stored = _HashingWriter(raw_file)
        if compress:
            with gzip.GzipFile(filename="", mode="wb", fileobj=stored, compresslevel=compresslevel, mtime=0) as gz:
                tar_stream = _HashingWriter(gz)
                _write_tar(tar_stream, spec.files, seed, random_source)
        else:
            tar_stream = stored
            _write_tar(stored, spec.files, seed, random_source)
    digest = f"sha256:{stored.sha.hexdigest()}"
    path = _store(tmp, blobs_dir, digest)
    return WrittenLayer(
        digest=digest,
        size=stored.count,
        diff_id=f"sha256:{tar_stream.sha.hexdigest()}",
        uncompressed_size=tar_stream.count,
        compressed=compress,
        path=path,
    )


def write_blob(blobs_dir: Path, data: bytes) -> tuple[str, int]:
    """Store bytes as a blob named by their sha256; returns (digest, size)."""
    blobs_dir.mkdir(parents=True, exist_ok=True)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    path = blobs_dir / digest.removeprefix("sha256:")
    if not path.exists():
        tmp = blobs_dir / f".tmp-{uuid.uuid4().hex}"
        tmp.write_bytes(data)
        tmp.replace(path)
    return digest, len(data)

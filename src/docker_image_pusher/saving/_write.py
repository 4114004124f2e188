"""Writing a planned archive: metadata files first, then every blob once, streamed and verified.

Member order: oci-layout, index.json, manifest.json and repositories (docker format), the folders blobs/
and blobs/sha256/, then the manifests and configs, then the layers, each group by digest. The small files
come first so that a reader going through the tar once knows what the blobs are before it meets them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..progress.events import ImagePlanned, ProgressBus, TransferFinished, TransferProgress, TransferStarted, bus
from ._documents import documents
from ._output import atomic_output
from ._plan import SaveFormat, SavePlan
from ._tar import TarWriter

__all__ = ["SaveResult", "write_archive"]


@dataclass(frozen=True)
class SaveResult:
    out: str
    format: SaveFormat
    images: tuple[str, ...]  # cache keys, sorted
    names: tuple[str, ...]  # full names (io.containerd.image.name), in the same order
    blobs: int  # blobs written, each once
    blob_bytes: int
    archive_bytes: int
    seconds: float
    notes: tuple[str, ...] = ()


def _announce(plan: SavePlan, progress: ProgressBus) -> None:
    """One ImagePlanned per image, each blob counted for the first image that needs it (it is written once)."""
    sizes = {b.digest: b.size for b in plan.blobs}
    counted: set[str] = set()
    for image in plan.images:
        mine = [d for d in image.blobs if d not in counted]
        counted.update(mine)
        progress.publish(ImagePlanned(image.name.full, len(mine), sum(sizes[d] for d in mine)))


def write_archive(plan: SavePlan, out: Path, progress: ProgressBus | None = None) -> SaveResult:
    progress = progress or bus
    started = time.monotonic()
    _announce(plan, progress)
    with atomic_output(out) as f:
        tar = TarWriter(f)
        for name, data in documents(plan):
            tar.add_bytes(name, data)
        tar.add_dir("blobs")
        tar.add_dir("blobs/sha256")
        for blob in plan.blobs:
            progress.raise_if_cancelled()
            progress.publish(TransferStarted(blob.digest, blob.size))

            def on_chunk(delta: int, digest: str = blob.digest) -> None:
                progress.raise_if_cancelled()
                progress.publish(TransferProgress(digest, delta))

            tar.add_blob(blob.member, blob.path, blob.digest, blob.size, on_chunk)
            progress.publish(TransferFinished(blob.digest, blob.size, "saved"))
        tar.close()
    return SaveResult(
        out=os.fspath(out),
        format=plan.format,
        images=tuple(i.key for i in plan.images),
        names=tuple(i.name.full for i in plan.images),
        blobs=len(plan.blobs),
        blob_bytes=plan.total_bytes,
        archive_bytes=out.stat().st_size,
        seconds=round(time.monotonic() - started, 3),
        notes=plan.notes,
    )

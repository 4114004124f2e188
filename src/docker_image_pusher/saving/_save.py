"""save_images: cache entries -> one docker-archive or OCI-archive tar (plan, then write)."""

from __future__ import annotations

from pathlib import Path

from ..cache import Cache
from ..progress.events import ProgressBus
from ._plan import SaveFormat, check_format, plan_save
from ._write import SaveResult, write_archive

__all__ = ["save_images"]


def save_images(
    cache: Cache, keys: list[str], out: Path, format: SaveFormat = "docker", bus: ProgressBus | None = None
) -> SaveResult:
    """Write the cached images ``keys`` ("{repository}/{reference}") to the tar ``out``.

    Raises NotFoundError for a key that is not cached, CacheError for an entry whose blobs are missing,
    IntegrityError for a cached blob that does not match its digest; ``out`` is then left untouched.
    """
    plan = plan_save(cache, keys, check_format(format))
    return write_archive(plan, Path(out), bus)

"""The local image cache (seed layout: manifests/{repository}/{reference}, blobs/sha256/{hex}, index.json)."""

from ._atomic import fsync_dir, new_temp
from ._clean import CleanPlan, execute_clean, gc_lock, plan_clean
from ._entry import BlobRecord, ImageEntry, ManifestRecord, entry_key
from ._store import Cache, CacheError
from ._verify import VerifyReport, verify_cache

__all__ = [
    "BlobRecord",
    "Cache",
    "CacheError",
    "CleanPlan",
    "ImageEntry",
    "ManifestRecord",
    "VerifyReport",
    "entry_key",
    "execute_clean",
    "fsync_dir",
    "gc_lock",
    "new_temp",
    "plan_clean",
    "verify_cache",
]

"""The local image cache (seed layout: manifests/{repository}/{reference}, blobs/sha256/{hex}, index.json)."""

from ._atomic import fsync_dir, new_temp
from ._clean import CleanPlan, execute_clean, gc_lock, plan_clean
from ._entry import BlobRecord, ImageEntry, ManifestRecord, entry_key
from ._modes import creating_with_umask, current_umask, open_created
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
    "creating_with_umask",
    "current_umask",
    "entry_key",
    "execute_clean",
    "fsync_dir",
    "gc_lock",
    "new_temp",
    "open_created",
    "plan_clean",
    "verify_cache",
]

"""The local image cache (seed layout: manifests/{repository}/{reference}, blobs/sha256/{hex}, index.json)."""

from ._entry import BlobRecord, ImageEntry, ManifestRecord, entry_key
from ._store import Cache, CacheError

__all__ = ["BlobRecord", "Cache", "CacheError", "ImageEntry", "ManifestRecord", "entry_key"]

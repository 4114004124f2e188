"""Reading image archives: docker save tars (classic, and docker >= 25 with an OCI index inside), OCI
archives and OCI layout folders, gzip-compressed or not; and copying their blobs into the cache.

scan_archive   every check that needs no layer bytes, before anything is copied -> ArchiveIndex
select_images  which images, under which cache keys -> NamedImage
ingest_blob    one config or layer, streamed from its offset in the tar into the cache, verified
"""

from ._ingest import IngestedBlob, ingest_blob
from ._model import ArchiveBlob, ArchiveImage, ArchiveIndex, ImageName, MemberData, StoredManifest
from ._scan import scan_archive
from ._select import NamedImage, select_images
from ._synthesize import Described, synthesize_manifest

__all__ = [
    "ArchiveBlob",
    "ArchiveImage",
    "ArchiveIndex",
    "Described",
    "ImageName",
    "IngestedBlob",
    "MemberData",
    "NamedImage",
    "StoredManifest",
    "ingest_blob",
    "scan_archive",
    "select_images",
    "synthesize_manifest",
]

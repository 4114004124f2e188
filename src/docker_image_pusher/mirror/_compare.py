"""Does one tag need copying? Decided with HEAD requests only, which Docker Hub does not count.

destination HEAD  absent                      -> copy ("new")
                  present, tag immutable      -> unchanged, the source is not even asked
source HEAD       absent                      -> failed ("not found at the source")
the digest the destination would hold after a copy (the source's, or with a platform subset the
digest of the sub-index or single child a pull records, worked out from the index in the cache)
                  equal to the destination's  -> unchanged
                  different                   -> copy ("changed")
                  unknown (a subset, index not cached, or no Docker-Content-Digest)
                                              -> copy; the copy resolves it with a GET and may still
                                                 find it unchanged before moving any blob
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..manifest import parse_platform
from ..media_types import INDEX_TYPES
from ..pull import kept_digest
from ._select import is_immutable, select_tags

if TYPE_CHECKING:
    from ..cache import Cache
    from ..registry import RegistryClient
    from ._spec import ResolvedImage

__all__ = ["TagCheck", "check_image", "compare_tag", "expected_digest"]


@dataclass(frozen=True)
class TagCheck:
    tag: str
    action: str  # "copy", "unchanged" or "failed"
    reason: str
    source_digest: str | None
    destination_digest: str | None
    expected_digest: str | None  # what the destination holds after a copy, when known


def check_image(
    source: RegistryClient, destination: RegistryClient, cache: Cache, image: ResolvedImage
) -> list[TagCheck]:
    """Select the image's tags (listing the source's tags only if the spec needs them), then compare each."""
    available = source.list_tags(image.repository) if image.needs_listing else None
    return [
        compare_tag(
            source,
            destination,
            cache,
            image.repository,
            image.destination,
            tag,
            image.platforms,
            is_immutable(image, tag),
        )
        for tag in select_tags(image, available)
    ]


def compare_tag(
    source: RegistryClient,
    destination: RegistryClient,
    cache: Cache,
    source_repository: str,
    destination_repository: str,
    tag: str,
    platforms: tuple[str, ...] = (),
    immutable: bool = False,
) -> TagCheck:
    there = destination.head_manifest(destination_repository, tag)
    there_digest = there.digest if there else None
    if there is not None and immutable:
        return TagCheck(tag, "unchanged", "immutable tag already at the destination", None, there_digest, None)
    here = source.head_manifest(source_repository, tag)
    if here is None:
        return TagCheck(tag, "failed", "not found at the source", None, there_digest, None)
    try:
        expected = expected_digest(cache, here.digest, here.media_type, platforms)
    except UsageError as err:  # the index has no such platform: this tag fails, not the whole image
        return TagCheck(tag, "failed", err.message, here.digest, there_digest, None)
    if there is None:
        return TagCheck(tag, "copy", "new", here.digest, None, expected)
    if expected is not None and expected == there_digest:
        return TagCheck(tag, "unchanged", "same digest", here.digest, there_digest, expected)
    reason = "changed" if expected is not None else "digest to compare is known only after the GET"
    return TagCheck(tag, "copy", reason, here.digest, there_digest, expected)


def expected_digest(cache: Cache, source_digest: str | None, media_type: str, platforms: tuple[str, ...]) -> str | None:
    """The digest the destination holds after copying the source manifest ``source_digest``, if we can
    tell without a GET: the same digest for all platforms; for a subset, from the index if it is cached."""
    if source_digest is None:
        return None
    if not platforms or media_type not in INDEX_TYPES:  # all of it, or a single image: copied as it is
        return source_digest
    if not cache.has_blob(source_digest):
        return None
    raw = cache.read_blob(source_digest)
    return kept_digest(raw, media_type, source_digest, [parse_platform(p) for p in platforms])

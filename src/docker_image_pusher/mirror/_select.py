"""Tag selection: which tags of one image a mirror copies, and which of them are immutable.

The rules, as the spec documents them (``_spec``):

1. explicit ``tags`` are kept as written (the source's tag list is not needed for them);
2. a listed tag is a candidate if it fully matches any ``include`` pattern, or always when only
   ``newest`` is given;
3. ``exclude`` drops every tag, explicit or listed, in which one of its patterns is found;
4. ``newest: N`` keeps the N highest candidates in version order; it never drops an explicit tag;
5. the result is the union, without duplicates, oldest first (``version_key``).

Listed tags that do not follow the tag grammar are ignored: they cannot be asked for by name anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import UsageError
from ..reference import check_tag
from ._spec import ImageSpec, ResolvedImage
from ._version_order import version_key

__all__ = ["is_immutable", "select_tags"]


def select_tags(image: ImageSpec | ResolvedImage, available: list[str] | None) -> list[str]:
    """The tags to copy for ``image``, oldest first.

    ``available`` is the source's tag list; it may be None only when the image needs no listing
    (``image.needs_listing`` is false: explicit tags only).
    """
    if available is None and image.needs_listing:
        raise ValueError(f"selecting the tags of {image.repository} needs the source's tag list")
    exclude = [re.compile(p) for p in image.exclude]

    def kept(tag: str) -> bool:
        return not any(p.search(tag) for p in exclude)

    chosen = {tag for tag in image.tags if kept(tag)}
    if image.needs_listing and available is not None:
        include = [re.compile(p) for p in image.include]
        candidates = sorted(
            {tag for tag in _valid(available) if (not include or any(p.fullmatch(tag) for p in include)) and kept(tag)},
            key=version_key,
        )
        if image.newest is not None:
            candidates = candidates[-image.newest :] if image.newest > 0 else []
        chosen.update(candidates)
    return sorted(chosen, key=version_key)


def is_immutable(image: ResolvedImage, tag: str) -> bool:
    """Whether ``tag`` fully matches one of the image's effective ``immutable`` patterns (defaults applied)."""
    return any(re.fullmatch(p, tag) for p in image.immutable)


def _valid(tags: Iterable[str]) -> Iterable[str]:
    for tag in tags:
        try:
            check_tag(tag)
        except UsageError:
            continue
        yield tag

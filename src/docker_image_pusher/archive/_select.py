"""Which images of an archive to cache, and under which "{repository}/{reference}" keys.

- Nothing asked: every image, under each of its names; an image without a repository name is an error
  that says how to name it.
- ``image``: one image, by name (``nginx:1.27``, or a bare tag as skopeo's oci-archive gives), by digest
  (its manifest or config digest, docker's image ID; ``sha256:`` optional, 12 hex digits at least).
- ``repository`` [+ ``reference``]: the name for the picked image, or else for the archive's only image, or
  its only image without a name (the others keep theirs). ``reference`` defaults to the image's tag, else
  ``latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..cache import entry_key
from ..errors import ArchiveError, NotFoundError, UsageError
from ..reference import DOCKER_HUB_API_HOST, parse_reference, reference_from_parts
from ._model import ArchiveImage, ArchiveIndex, ImageName

__all__ = ["NamedImage", "select_images"]

_HEX_PREFIX = re.compile(r"(?:sha256:)?([0-9a-f]{12,64})")


@dataclass(frozen=True)
class NamedImage:
    image: ArchiveImage
    repository: str
    reference: str

    @property
    def key(self) -> str:
        return entry_key(self.repository, self.reference)

    def __str__(self) -> str:
        return f"{self.repository}:{self.reference}"


def select_images(
    index: ArchiveIndex,
    image: str | None = None,
    repository: str | None = None,
    reference: str | None = None,
    *,
    single: bool = False,
) -> tuple[NamedImage, ...]:
    """single=True (a push from a tar): exactly one image, picked by ``image`` unless the archive holds only
    one; repository/reference name it only when the archive does not."""
    if single:
        if image is None and len(index.images) > 1:
            names = ", ".join(str(n) for i in index.images for n in i.full_names[:1]) or "unnamed"
            raise UsageError(f"the archive holds {len(index.images)} images ({names}); pick one with --image")
        try:
            return _one_per_key(_select(index.images, image, None, None))
        except UsageError:
            if not repository:
                raise
        # an image without a name of its own: the given name is for it
    return _one_per_key(_select(index.images, image, repository, reference))


def _select(
    images: tuple[ArchiveImage, ...], image: str | None, repository: str | None, reference: str | None
) -> tuple[NamedImage, ...]:
    if image is not None:
        picked, matched = _pick(images, image)
        if repository:
            return (_renamed(picked, repository, reference, matched),)
        if matched is not None and matched.repository:
            return (NamedImage(picked, matched.repository, matched.tag),)
        return _own_names(picked)
    if repository:
        target = _target_for_name(images)
        others = tuple(n for i in images if i is not target for n in _own_names(i))
        return (_renamed(target, repository, reference, None), *others)
    return tuple(n for i in images for n in _own_names(i))


def _one_per_key(named: tuple[NamedImage, ...]) -> tuple[NamedImage, ...]:
    by_key: dict[str, NamedImage] = {}
    for item in named:
        first = by_key.setdefault(item.key, item)
        if first.image.id != item.image.id:
            raise ArchiveError(f"two different images of the archive are both named {item}")
    return tuple(by_key.values())


def _own_names(image: ArchiveImage) -> tuple[NamedImage, ...]:
    if not image.full_names:
        tagged = f" (tagged {image.bare_tags[0]!r} only)" if image.bare_tags else ""
        raise UsageError(f"image {image.id}{tagged} has no repository name in the archive; name it with repository")
    return tuple(NamedImage(image, n.repository, n.tag) for n in image.full_names if n.repository)


def _renamed(image: ArchiveImage, repository: str, reference: str | None, matched: ImageName | None) -> NamedImage:
    tag = reference or (matched.tag if matched else None) or next(iter(image.bare_tags), None) or "latest"
    ref = reference_from_parts(repository, tag, DOCKER_HUB_API_HOST)
    return NamedImage(image, ref.repository, ref.reference)


def _target_for_name(images: tuple[ArchiveImage, ...]) -> ArchiveImage:
    if len(images) == 1:
        return images[0]
    unnamed = [i for i in images if not i.full_names]
    if len(unnamed) == 1:
        return unnamed[0]
    if unnamed:
        ids = ", ".join(i.id for i in unnamed[:4])
        raise UsageError(f"the archive holds {len(unnamed)} images without a name ({ids}); pick one with --image")
    raise UsageError(f"--repository names one image but the archive holds {len(images)}; pick one with --image")


def _pick(images: tuple[ArchiveImage, ...], text: str) -> tuple[ArchiveImage, ImageName | None]:
    by_name = _by_name(images, text)
    if by_name:
        return by_name
    hex_match = _HEX_PREFIX.fullmatch(text)
    if hex_match:
        found = [i for i in images if any(d.startswith(hex_match.group(1)) for d in _hex_ids(i))]
        if len({i.id for i in found}) > 1:
            raise UsageError(f"{text} matches several images of the archive; give more digits")
        if found:
            return found[0], None
    have = "; ".join(str(i) for i in images[:10])
    raise NotFoundError(f"{text} is not in the archive (it holds: {have})")


def _by_name(images: tuple[ArchiveImage, ...], text: str) -> tuple[ArchiveImage, ImageName] | None:
    wanted = {ImageName(None, text)}
    try:
        ref = parse_reference(text)
        wanted.add(ImageName(ref.repository, ref.tag or ref.digest or "latest"))
    except UsageError:
        pass
    found = [(i, n) for i in images for n in i.names if n in wanted]
    if len({i.id for i, _ in found}) > 1:
        raise UsageError(f"{text} names several images of the archive; pick one by digest")
    return found[0] if found else None


def _hex_ids(image: ArchiveImage) -> list[str]:
    ids = [image.id, image.manifest.config_digest if image.manifest else None]
    return [d.removeprefix("sha256:") for d in ids if d]

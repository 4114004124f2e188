"""An image config read from the archive: JSON, within the size limit, and its list of layer diff_ids."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ArchiveError
from ..manifest import sha256_digest
from ..reference import is_digest
from ._model import MemberData
from ._reading import MAX_JSON_BYTES, parse_json, read_member

__all__ = ["ImageConfig", "read_config"]


@dataclass(frozen=True)
class ImageConfig:
    digest: str
    diff_ids: tuple[str, ...]


def read_config(data: MemberData, what: str, *, expected_digest: str | None = None) -> ImageConfig:
    raw = read_member(data, MAX_JSON_BYTES, what)
    digest = sha256_digest(raw)
    if expected_digest and digest != expected_digest:
        raise ArchiveError(f"{what} ({data.name}) has digest {digest}, expected {expected_digest}")
    config = parse_json(raw, f"{what} ({data.name})")
    if not isinstance(config, dict):
        raise ArchiveError(f"{what} ({data.name}) is not a JSON object")
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise ArchiveError(f"{what} ({data.name}) has no rootfs.diff_ids list")
    for diff_id in diff_ids:
        if not isinstance(diff_id, str) or not is_digest(diff_id):
            raise ArchiveError(f"{what} ({data.name}): diff_id {str(diff_id)[:80]!r} is not a sha256 digest")
    return ImageConfig(digest, tuple(diff_ids))

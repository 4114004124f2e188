"""scan_archive: what images an archive holds, with its whole structure checked before any blob is copied.

A folder is an OCI layout (or an unpacked docker save); a file is a tar, gzip-compressed or not (told by
its first bytes, never its name). An OCI index.json is preferred over docker's manifest.json when a tar has
both (docker >= 25): it has the real manifests, so the images keep their digests.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import ArchiveError, NotFoundError
from ._docker_archive import docker_images, parse_manifest_json, repo_tags_by_config
from ._folder_members import FolderMembers
from ._gunzip import gunzip_to_temp, is_gzip
from ._members import MemberSource
from ._model import ArchiveImage, ArchiveIndex
from ._oci_archive import oci_images
from ._reading import read_json
from ._tar_members import TarMembers

__all__ = ["scan_archive"]


def scan_archive(path: str | Path, *, work_dir: str | Path | None = None) -> ArchiveIndex:
    """Read and check ``path``. ``work_dir`` (the cache's tmp/) receives the decompressed copy of a .tar.gz,
    which the returned index's ``discard()`` removes (default: the system's temp folder)."""
    source = Path(path).absolute()
    try:
        return _scan(source, Path(work_dir) if work_dir else Path(tempfile.gettempdir()))
    except ArchiveError as err:
        if err.message.startswith(str(source)):
            raise
        raise ArchiveError(f"{source}: {err.message}") from None


def _scan(source: Path, work_dir: Path) -> ArchiveIndex:
    if not source.exists():
        raise NotFoundError(f"{source}: no such file or folder")
    if source.is_dir():
        return _index(str(source), FolderMembers(source), None, folder=True)
    if not source.is_file():
        raise ArchiveError(f"{source}: not a regular file or a folder")
    if not is_gzip(source):
        return _index(str(source), TarMembers(source), None)
    temp = gunzip_to_temp(source, work_dir)
    try:
        return _index(str(source), TarMembers(temp, display=str(source)), str(temp))
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


_FOLDER_FORMATS = {
    "oci-archive": "oci-layout",
    "docker-archive": "docker-archive folder",
    "docker-archive+oci": "docker-archive+oci folder",
}


def _index(source: str, members: MemberSource, temp: str | None, *, folder: bool = False) -> ArchiveIndex:
    kind, images = _images(members)
    if not images:
        raise ArchiveError("the archive holds no images")
    return ArchiveIndex(source, _FOLDER_FORMATS[kind] if folder else kind, images, temp_file=temp)


def _images(members: MemberSource) -> tuple[str, tuple[ArchiveImage, ...]]:
    index_json, manifest_json = members.find("index.json"), members.find("manifest.json")
    if index_json is None and manifest_json is None:
        raise ArchiveError("not an image archive: no manifest.json or index.json")
    entries = parse_manifest_json(read_json(manifest_json, "manifest.json")) if manifest_json else ()
    if index_json is not None:
        images = oci_images(members, read_json(index_json, "index.json"), repo_tags_by_config(entries))
        if images or manifest_json is None:
            return ("docker-archive+oci" if manifest_json else "oci-archive"), images
    return "docker-archive", docker_images(members, entries)

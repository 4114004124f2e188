"""How members are found: names as tar writers spell them, links followed inside the archive, folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rig.archives import TarEntry, directory, docker_save_entries, file_entry, hardlink, snapshot, symlink, write_tar
from rig.fixtures import SampleImages
from rig.images import BuiltImage

from docker_image_pusher.archive import scan_archive
from docker_image_pusher.cache import Cache
from docker_image_pusher.errors import ArchiveError, NotFoundError
from docker_image_pusher.extract import extract_archive
from docker_image_pusher.progress.events import (
    Event,
    ImagePlanned,
    ProgressBus,
    TransferFinished,
    TransferProgress,
    TransferStarted,
)


def test_dot_slash_names_and_a_root_entry_as_tar_c_writes_them(
    tar_image: BuiltImage, tmp_path: Path, cache: Cache
) -> None:
    entries = [directory("./")] + [
        TarEntry(f"./{e.name}", e.data, e.source, e.kind, e.linkname)
        for e in docker_save_entries([(tar_image, ["a:1"])])
    ]

    extract_archive(write_tar(tmp_path / "a.tar", entries), cache)

    assert cache.get("library/a", "1") is not None


def test_layers_behind_hard_links_and_chains_of_links(tar_image: BuiltImage, tmp_path: Path, cache: Cache) -> None:
    entries = docker_save_entries([(tar_image, ["a:1"])], style="links")
    # <id>/layer.tar -> ../<hex>.tar becomes <id>/layer.tar -> hop (symlink) -> <hex>.tar (hard link) -> data
    out: list[TarEntry] = []
    for e in entries:
        if e.name.endswith(".tar") and "/" not in e.name:
            out += [TarEntry(f"data-{e.name}", e.data, e.source), hardlink(e.name, f"data-{e.name}")]
        elif e.name.endswith("/layer.tar"):
            hop = e.name.replace("/layer.tar", "/hop")
            out += [symlink(hop, e.linkname), symlink(e.name, "hop")]
        else:
            out.append(e)

    extract_archive(write_tar(tmp_path / "a.tar", out), cache)

    entry = cache.get("library/a", "1")
    assert entry is not None and set(entry.blobs) == {tar_image.config_digest, *tar_image.layer_digests}


def test_a_dangling_link_nobody_uses_is_harmless(tar_image: BuiltImage, tmp_path: Path, cache: Cache) -> None:
    entries = [*docker_save_entries([(tar_image, ["a:1"])]), symlink("old/layer.tar", "../gone.tar")]

    assert extract_archive(write_tar(tmp_path / "a.tar", entries), cache).keys == ("library/a/1",)


def test_a_layout_folder_whose_blob_links_outside_it(sample_image: SampleImages, tmp_path: Path, cache: Cache) -> None:
    image = sample_image([100])
    outside = tmp_path / "secret"
    outside.write_bytes(image.layers[0].path.read_bytes())
    blob = image.blob_path(image.layer_digests[0])
    blob.unlink()
    os.symlink(outside, blob)
    before = snapshot(cache.root)

    with pytest.raises(ArchiveError, match="points outside the folder"):
        extract_archive(image.layout, cache, repository="team/app")
    assert snapshot(cache.root) == before


def test_a_missing_archive_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such file or folder"):
        scan_archive(tmp_path / "nope.tar")


def test_an_archive_without_images(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "a.tar", [file_entry("index.json", '{"schemaVersion": 2, "manifests": []}')])

    with pytest.raises(ArchiveError, match="the archive holds no images"):
        scan_archive(archive)


def test_progress_events_of_an_extract(tar_image: BuiltImage, tmp_path: Path, cache: Cache) -> None:
    archive = write_tar(tmp_path / "a.tar", docker_save_entries([(tar_image, ["a:1"])]))
    events: list[Event] = []
    bus = ProgressBus()
    bus.subscribe(events.append)

    extract_archive(archive, cache, events=bus)

    (planned,) = [e for e in events if isinstance(e, ImagePlanned)]
    assert (planned.image, planned.blobs) == ("library/a:1", 3)
    assert planned.total_bytes == tar_image.config.size + sum(tar_image.layer_sizes)
    assert len([e for e in events if isinstance(e, TransferStarted)]) == 3
    assert sum(e.delta for e in events if isinstance(e, TransferProgress)) == planned.total_bytes
    assert {e.outcome for e in events if isinstance(e, TransferFinished)} == {"extracted"}
    assert not [p for p in cache.tmp_dir.iterdir() if p.is_file()]

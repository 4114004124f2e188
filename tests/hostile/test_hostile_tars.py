"""Hostile tars through the CLI (`extract -f`, and `push -s` from a tar): exit 7, one line naming the problem,
the cache as it was. The big ones (a 100 MB manifest.json, a gzip bomb) are written in tmp at test time by
streaming, and a separate test checks the reader refuses them without taking their size in memory."""

from __future__ import annotations

import gzip
import os
import subprocess
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from cli.conftest import TOOL, Cli
from rig.archives import (
    TarEntry,
    chardev,
    docker_save_entries,
    file_entry,
    hardlink,
    symlink,
    tar_bytes,
    write_tar,
)
from rig.images import BuiltImage

from .conftest import content, refused, run_and_check_cache

MIB = 1 << 20


def _save(image: BuiltImage) -> list[TarEntry]:
    return docker_save_entries([(image, ["hostile/app:v1"])])


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 1_700_000_000, 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _entries(build: Callable[[BuiltImage], list[TarEntry]]) -> Callable[[BuiltImage, Path], None]:
    def write(image: BuiltImage, path: Path) -> None:
        write_tar(path, build(image))

    return write


def _raw(build: Callable[[BuiltImage], bytes]) -> Callable[[BuiltImage, Path], None]:
    def write(image: BuiltImage, path: Path) -> None:
        path.write_bytes(build(image))

    return write


def _truncated(image: BuiltImage) -> bytes:
    """Cut inside the second layer's bytes."""
    data = tar_bytes(_save(image))
    return data[: data.index(image.layers[1].path.read_bytes()[:512]) + 1000]


def _huge_declared_size(image: BuiltImage) -> bytes:
    """A member that says it is 1 TiB long, in a file of a few KiB."""
    return _header("manifest.json", 1 << 40) + b"[]" + b"\0" * 1022


def big_manifest_json(image: BuiltImage, path: Path) -> None:
    """A 100 MB manifest.json (valid JSON: a list padded with spaces), written in 1 MiB pieces."""
    size = 100 * 1000 * 1000
    with path.open("wb") as out:
        out.write(_header("manifest.json", size))
        out.write(b"[")
        left = size - 2
        while left:
            piece = min(left, MIB)
            out.write(b" " * piece)
            left -= piece
        out.write(b"]")
        out.write(b"\0" * (-(size) % 512) + b"\0" * 1024)


def gzip_bomb(image: BuiltImage, path: Path) -> None:
    """A ~1 MB .tar.gz that inflates to 1 GiB: a tar header, then 1024 gzip members of 1 MiB of zeros each
    (concatenated gzip members are one stream), compressed once and written 1024 times."""
    zeros = gzip.compress(b"\0" * MIB, compresslevel=9, mtime=0)
    with path.open("wb") as out:
        out.write(gzip.compress(_header("layer.tar", 1024 * MIB), mtime=0))
        for _ in range(1024):
            out.write(zeros)


def big_manifest_json_gzipped(image: BuiltImage, path: Path) -> None:
    """The 100 MB manifest.json again, as a ~100 KB .tar.gz: inflating it is allowed, reading it is not."""
    plain = path.with_suffix(".plain")
    big_manifest_json(image, plain)
    with plain.open("rb") as src, path.open("wb") as raw:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        while piece := src.read(MIB):
            raw.write(packer.compress(piece))
        raw.write(packer.flush())
    plain.unlink()


# id -> (writes the hostile file, what the one error line must say)
CASES: dict[str, tuple[Callable[[BuiltImage, Path], None], str]] = {
    "traversal": (_entries(lambda i: [*_save(i), file_entry("../../evil", "x")]), "points outside the archive"),
    "absolute-path": (_entries(lambda i: [*_save(i), file_entry("/etc/cron.d/evil", "x")]), "is an absolute path"),
    "symlink-escape": (
        _entries(lambda i: [*_save(i), symlink("x/evil", "../../../etc/shadow")]),
        "points outside the archive",
    ),
    "hardlink-escape": (_entries(lambda i: [*_save(i), hardlink("evil", "../etc/shadow")]), "points outside"),
    "device-file": (_entries(lambda i: [*_save(i), chardev("dev/mem")]), "is a device"),
    "truncated": (_raw(_truncated), "truncated"),
    "not-a-tar": (_raw(lambda i: os.urandom(8192)), "not a tar archive"),
    "empty-file": (_raw(lambda i: b""), "not a tar archive"),
    "huge-declared-size": (_raw(_huge_declared_size), "runs past the end of the file"),
    "manifest-json-100-mb": (big_manifest_json, "is 100000000 bytes, over the 16777216 byte limit"),
    "manifest-json-100-mb-gzipped": (big_manifest_json_gzipped, "over the 16777216 byte limit"),
    "gzip-bomb": (gzip_bomb, "over 200 times its size (a gzip bomb?)"),
    "manifest-json-not-json": (
        _entries(lambda i: [e if e.name != "manifest.json" else file_entry("manifest.json", "[{") for e in _save(i)]),
        "manifest.json is not valid JSON",
    ),
    "missing-layer": (
        _entries(lambda i: [e for e in _save(i) if not e.name.endswith(".tar") or "/" in e.name]),
        "which is not in the archive",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_tar_is_refused_by_extract(
    case: str, cli_with_server: Cli, seed_image: BuiltImage, seeded_cache: Path, tmp_path: Path
) -> None:
    write, fragment = CASES[case]
    archive = tmp_path / "hostile.tar"
    write(seed_image, archive)
    r = run_and_check_cache(
        cli_with_server, seeded_cache, "extract", "-f", str(archive), "--cache-dir", str(seeded_cache)
    )
    refused(r, 7, fragment)


@pytest.mark.parametrize("case", ["traversal", "symlink-escape"])
def test_a_hostile_tar_is_refused_by_push_from_a_tar(
    case: str, cli_with_server: Cli, seed_image: BuiltImage, seeded_cache: Path, tmp_path: Path
) -> None:
    write, fragment = CASES[case]
    archive = tmp_path / "hostile.tar"
    write(seed_image, archive)
    args = ["push", "-s", str(archive), "127.0.0.1:9/team/app:v1", "--registry", "http://127.0.0.1:9"]
    r = run_and_check_cache(cli_with_server, seeded_cache, *args, "--cache-dir", str(seeded_cache))
    refused(r, 7, fragment)


def _peak_rss(cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run the CLI in this process's environment (the flow in the CLI process itself: --no-agent) and return
    its peak resident memory in bytes, from wait4."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DOCKER_IMAGE_PUSHER_"))}
    env.pop("DOCKER_CONFIG", None)
    env["DOCKER_IMAGE_PUSHER_STATE_DIR"] = os.environ["DOCKER_IMAGE_PUSHER_STATE_DIR"]  # the session's server
    env["HOME"] = str(cwd)
    with (cwd / "out").open("w+") as out, (cwd / "err").open("w+") as err:
        process = subprocess.Popen([*TOOL, *args, "--no-agent"], cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(process.args, process.returncode, out.read(), err.read())
    return result, usage.ru_maxrss * 1024


def test_the_big_ones_are_refused_without_reading_them_into_memory(
    cli_with_server: Cli, seed_image: BuiltImage, seeded_cache: Path, tmp_path: Path
) -> None:
    before = content(seeded_cache)
    small = tmp_path / "small.tar"
    small.write_bytes(os.urandom(4096))
    baseline, base_rss = _peak_rss(tmp_path, "extract", "-f", str(small), "--cache-dir", str(seeded_cache))
    refused(baseline, 7, "not a tar archive")
    for name, write in {"manifest.tar": big_manifest_json, "bomb.tar.gz": gzip_bomb}.items():
        archive = tmp_path / name
        write(seed_image, archive)
        r, rss = _peak_rss(tmp_path, "extract", "-f", str(archive), "--cache-dir", str(seeded_cache))
        refused(r, 7, "over")
        # Reading either whole would take 100 MB (the manifest.json) or 1 GiB (the bomb) more than refusing
        # a 4 KiB file does.
        assert rss < base_rss + 48 * MIB, (name, rss, base_rss)
        archive.unlink()
    assert content(seeded_cache) == before

"""Extract benchmark: a docker-archive tar into a fresh cache, in-process, against the machine's limits.

    .venv/bin/python bench/extract_bench.py [--size-mib 512] [--layers 1] [--repeat 3] [--gzip] [--tmp-dir DIR]

Builds an image of random (incompressible) uncompressed layers with the rig, --size-mib in all split into
--layers layers, and writes it as a docker save tar (`<sha>.tar` layers, `<id>/layer.tar` links,
manifest.json last). Then times, interleaved, --repeat times each (the tar is in the page cache, as
right after `docker save`):

- `sha256 of the tar`: hashlib over the file in 1 MiB reads (the hashing limit of one core);
- `copy + fsync`: the tar into a new file in 1 MiB pieces, fsync at the end (the disk's limit, no hashing);
- `extract_archive`: docker_image_pusher.extract.extract_archive into a fresh cache (scan, verify, stream
  every blob, synthesize the manifest, record);
- with --gzip, `extract_archive .tar.gz`: the same tar gzip-compressed (level 1), which is decompressed once
  into the cache's tmp/ and then extracted as above.

Prints MiB/s of tar bytes (median and best) and the peak RSS growth of each in-process row. Everything is
removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from proc_stats import reset_peak_rss, status_kib  # noqa: E402
from rig.archives import gzip_file, write_docker_save  # noqa: E402
from rig.images import build_image  # noqa: E402

from docker_image_pusher.cache import Cache  # noqa: E402
from docker_image_pusher.extract import extract_archive  # noqa: E402

MIB = 1 << 20


class Row:
    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self.seconds: list[float] = []
        self.rss_growth_mib: list[float] = []

    def time(self, run: Callable[[], None], cleanup: Callable[[], None] = lambda: None) -> None:
        reset_peak_rss()
        before = status_kib("VmRSS")
        started = time.perf_counter()
        run()
        self.seconds.append(time.perf_counter() - started)
        self.rss_growth_mib.append((status_kib("VmHWM") - before) / 1024)
        cleanup()

    def line(self) -> str:
        median = self.size / MIB / statistics.median(self.seconds)
        best = self.size / MIB / min(self.seconds)
        return f"| {self.name:<26} | {median:8.0f} | {best:8.0f} | {max(self.rss_growth_mib):8.1f} |"


def _sha256(path: Path) -> None:
    hasher = hashlib.sha256()
    with path.open("rb", buffering=0) as f:
        while chunk := f.read(MIB):
            hasher.update(chunk)


def _copy_fsync(src: Path, dest: Path) -> None:
    with src.open("rb", buffering=0) as f, dest.open("wb") as out:
        while chunk := f.read(MIB):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=512, help="image size [default: 512]")
    parser.add_argument("--layers", type=int, default=1, help="number of layers [default: 1]")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row [default: 3]")
    parser.add_argument("--gzip", action="store_true", help="also time a gzip-compressed copy of the tar")
    parser.add_argument("--tmp-dir", help="where the temp working dir goes [default: system temp]")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="extract-bench-", dir=args.tmp_dir))
    try:
        per_layer = args.size_mib * MIB // args.layers
        image = build_image(
            workdir / "layout", [per_layer] * args.layers, seed="bench", compress=False, random_source="urandom"
        )
        archive = write_docker_save(workdir / "image.tar", [(image, ["bench/app:v1"])])
        shutil.rmtree(workdir / "layout")
        size = archive.stat().st_size
        gz = gzip_file(archive, workdir / "image.tar.gz") if args.gzip else None
        print(f"docker-archive {size / MIB:.1f} MiB, {args.layers} layer(s), {args.repeat} runs per row", flush=True)

        cache_dir = workdir / "cache"
        rows = [Row("sha256 of the tar", size), Row("copy + fsync", size), Row("extract_archive", size)]
        if gz is not None:
            rows.append(Row("extract_archive .tar.gz", size))

        def fresh() -> None:
            shutil.rmtree(cache_dir, ignore_errors=True)
            (workdir / "copy").unlink(missing_ok=True)

        for _ in range(args.repeat):
            rows[0].time(lambda: _sha256(archive))
            rows[1].time(lambda: _copy_fsync(archive, workdir / "copy"), fresh)
            rows[2].time(lambda: _check(extract_archive(archive, Cache(cache_dir)).keys), fresh)
            if gz is not None:
                rows[3].time(lambda: _check(extract_archive(gz, Cache(cache_dir)).keys), fresh)

        print("| row                        | MiB/s md | MiB/s hi | RSS+ MiB |")
        print("|----------------------------|----------|----------|----------|")
        for row in rows:
            print(row.line())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _check(keys: tuple[str, ...]) -> None:
    assert keys == ("bench/app/v1",), keys


if __name__ == "__main__":
    raise SystemExit(main())

"""Save benchmark: `save_images` of one big layer against plain copies, hashlib, GNU tar and skopeo.

    .venv/bin/python bench/save_bench.py [--size-mib 512] [--repeat 3] [--tmp-dir DIR] [--json FILE]

Builds a cache holding one image with a single layer of --size-mib random (incompressible, uncompressed)
bytes, then times, in-process unless said otherwise, --repeat rounds of every row interleaved (median and best):

- `python copy 1 MiB`: readinto/write of the layer blob into a new file, no hashing, no tar, no fsync;
- `python copy + fsync`: the same, then fsync (what the atomic write of the archive costs on top);
- `hashlib sha256 1 MiB`: hashing the layer blob file, nothing written;
- `GNU tar cf`: `tar cf OUT -C BLOBS HEX` as a process (no hashing, no fsync);
- `skopeo copy -> docker-archive`: `skopeo copy oci:LAYOUT docker-archive:OUT` as a process (it hashes too);
- `save_images docker` / `save_images oci`: ours (plan, stream and hash every blob, fsync, rename);
- `TarWriter bufsize N`: our tar writer alone with N-byte copies (tarfile's default is 16 KiB), no fsync.

Then the peak RSS growth of a separate process while it writes the archive (ru_maxrss after the plan vs
after the write). Everything runs from the page cache (the machine has far more RAM than the layer), so
these are CPU and memory-bandwidth figures, not disk figures; the fsync row shows what the disk adds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from rig.images import BuiltImage, build_image  # noqa: E402
from rig.skopeo import run_skopeo  # noqa: E402
from save.save_rig import put_in_cache  # noqa: E402

from docker_image_pusher.cache import Cache  # noqa: E402
from docker_image_pusher.saving import save_images  # noqa: E402
from docker_image_pusher.saving._tar import TarWriter  # noqa: E402

MIB = 1 << 20
KEY = "bench/big/latest"

_RSS = """
import json, resource, sys
from pathlib import Path
from docker_image_pusher.cache import Cache
from docker_image_pusher.saving import plan_save, write_archive
plan = plan_save(Cache(sys.argv[1]), [sys.argv[2]], "docker")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
write_archive(plan, Path(sys.argv[3]))
print(json.dumps({"before_kib": before, "after_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


@dataclass
class Row:
    name: str
    size: int
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def mib_s(self) -> float:
        return self.size / MIB / self.median

    @property
    def best_mib_s(self) -> float:
        return self.size / MIB / min(self.seconds)


def _time(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _copy(src: Path, dest: Path, fsync: bool) -> None:
    buf = bytearray(MIB)
    view = memoryview(buf)
    with src.open("rb", buffering=0) as f, dest.open("wb", buffering=0) as out:
        while n := f.readinto(buf):
            out.write(view[:n])
        if fsync:
            os.fsync(out.fileno())


def _hash(src: Path) -> None:
    import hashlib

    sha = hashlib.sha256()
    buf = bytearray(MIB)
    view = memoryview(buf)
    with src.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            sha.update(view[:n])


def _tar_writer(src: Path, digest: str, size: int, dest: Path, bufsize: int) -> None:
    with dest.open("wb") as out:
        tar = TarWriter(out, bufsize=bufsize)
        tar.add_blob("blobs/sha256/x", str(src), digest, size)
        tar.close()


def _build(work: Path, size_mib: int) -> tuple[Cache, BuiltImage]:
    print(f"building a {size_mib} MiB layer ...", flush=True)
    image = build_image(work / "layout", [size_mib * MIB], tag="latest", seed="save-bench", compress=False)
    cache = Cache(work / "cache")
    put_in_cache(cache, image, "bench/big", "latest")
    return cache, image


def run(size_mib: int, repeat: int, work: Path) -> dict[str, Any]:
    cache, image = _build(work, size_mib)
    layer = image.layers[0]
    blob = cache.blob_path(layer.digest)
    out = work / "out"
    out.mkdir()
    total = layer.size
    archive_size = total + 10 * 1024
    tar_cmd = ["tar", "cf", str(out / "t.tar"), "-C", str(blob.parent), blob.name]
    skopeo_args = ["copy", f"oci:{image.layout}:latest", f"docker-archive:{out / 's.tar'}"]
    cases: list[tuple[Row, Callable[[], object]]] = [
        (Row("python copy 1 MiB", total), lambda: _copy(blob, out / "copy", fsync=False)),
        (Row("python copy + fsync", total), lambda: _copy(blob, out / "copy", fsync=True)),
        (Row("hashlib sha256 1 MiB", total), lambda: _hash(blob)),
        (Row("GNU tar cf", total), lambda: subprocess.run(tar_cmd, check=True)),
        (Row("skopeo copy -> docker-archive", total), lambda: run_skopeo(skopeo_args, timeout=600)),
        (Row("save_images docker", archive_size), lambda: save_images(cache, [KEY], out / "d.tar", "docker")),
        (Row("save_images oci", archive_size), lambda: save_images(cache, [KEY], out / "o.tar", "oci")),
    ]
    for bufsize in (16 << 10, 256 << 10, 1 << 20, 4 << 20, 8 << 20):

        def write(b: int = bufsize) -> None:
            _tar_writer(blob, layer.digest, total, out / "w.tar", b)

        cases.append((Row(f"TarWriter bufsize {bufsize >> 10} KiB", archive_size), write))
    for round_ in range(repeat):  # interleaved, so that a busy moment of the machine hits every row alike
        print(f"round {round_ + 1}/{repeat}", flush=True)
        for row, action in cases:
            row.seconds.append(_time(action))
            for leftover in out.iterdir():
                leftover.unlink()
    rows = [row for row, _ in cases]

    done = subprocess.run(
        [sys.executable, "-c", _RSS, str(cache.root), KEY, str(out / "rss.tar")],
        capture_output=True,
        text=True,
        check=True,
    )
    rss = json.loads(done.stdout)
    growth = (rss["after_kib"] - rss["before_kib"]) / 1024
    print(f"peak RSS growth while writing {size_mib} MiB: {growth:.1f} MiB (process at {rss['after_kib'] / 1024:.0f})")
    return {
        "size_mib": size_mib,
        "repeat": repeat,
        "rows": [
            {"name": r.name, "median_s": r.median, "mib_s": r.mib_s, "best_mib_s": r.best_mib_s, "seconds": r.seconds}
            for r in rows
        ],
        "rss_growth_mib": growth,
        "rss_peak_mib": rss["after_kib"] / 1024,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }


def _table(report: dict[str, Any]) -> str:
    lines = ["| what | MiB/s (median) | MiB/s (best) | median s |", "|---|---:|---:|---:|"]
    lines += [
        f"| {r['name']} | {r['mib_s']:.0f} | {r['best_mib_s']:.0f} | {r['median_s']:.2f} |" for r in report["rows"]
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tmp-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="save-bench-", dir=args.tmp_dir))
    try:
        report = run(args.size_mib, args.repeat, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(_table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

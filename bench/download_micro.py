"""Micro benchmark: `RegistryClient.download_blob` of one big blob from a local registry, in-process.

    .venv/bin/python bench/download_micro.py [--size-mib 512] [--repeat 5] [--only-ours] [--profile]
                                             [--baseline FILE] [--tmp-dir DIR]

Starts a plain local registry (tests/rig, loopback HTTP, no auth), pushes an image with one layer of random
bytes (gzip level 0: incompressible), then times these rows, interleaved, `--repeat` times each:

- `curl -> /dev/null`: a plain GET of the blob, no hashing, no disk (an upper bound for any client);
- `httpx iter_raw -> discard`: a bare httpx stream loop over the same URL (what httpx itself delivers);
- `httpx iter_raw + sha256`: the same loop hashing every piece in the same thread;
- `sha256 in memory, 1 MiB`: hashlib over as many bytes already in memory (the other upper bound);
- `download_blob`: our client into a fresh file (hashing, writing, progress, fsync);
- `download_blob, httpx path`: the same with direct socket reading off (DIRECT_MIN_SIZE raised above the
  blob size): the path of small blobs, chunked bodies and TLS-in-TLS proxies;
- `download_blob, --baseline`: the same with `_download.py` taken from FILE, to compare two versions, e.g.
  `git show HEAD:src/docker_image_pusher/registry/_download.py > /tmp/old_download.py`.

Columns: MiB/s (median and best run), CPU s (median, user + system of this process or of curl; the
registry's own CPU is not included), peak RSS growth during the run (VmHWM, reset before each run through
/proc/self/clear_refs), and for download_blob the time spent in os.fsync by the calling thread (the final
fsync; the background fsyncs, and waiting for the last of them, are not included). On a small shared
machine the figures are noisy: the load average before and after is printed; compare rows of one run.
`--profile` adds one download_blob run under pyinstrument (the calling thread). The registry and the temp
dir are removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import HasFileno

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
from proc_stats import reset_peak_rss, status_kib  # noqa: E402
from rig.images import build_image  # noqa: E402
from rig.registry import RunningRegistry, start_plain_registry  # noqa: E402
from rig.skopeo import copy_layout_to_registry  # noqa: E402

from docker_image_pusher.registry import RegistryClient, _client, _download  # noqa: E402

MIB = 1 << 20
REPO = "bench/micro"


def _cpu_seconds(children: bool) -> float:
    times = os.times()
    return times.children_user + times.children_system if children else times.user + times.system


def _load_download_module(path: Path) -> ModuleType:
    """``path`` loaded as a sibling of _download (so its relative imports work)."""
    name = "docker_image_pusher.registry._download_baseline"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Row:
    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self.seconds: list[float] = []
        self.cpu_s: list[float] = []
        self.rss_growth_mib: list[float] = []
        self.fsync_wait_s: list[float] = []

    def time(self, run: Callable[[], None], *, subprocess_cpu: bool = False) -> None:
        reset_peak_rss()
        rss_before = status_kib("VmRSS")
        cpu_before = _cpu_seconds(subprocess_cpu)
        started = time.perf_counter()
        run()
        self.seconds.append(time.perf_counter() - started)
        self.cpu_s.append(_cpu_seconds(subprocess_cpu) - cpu_before)
        if not subprocess_cpu:
            self.rss_growth_mib.append((status_kib("VmHWM") - rss_before) / 1024)

    def line(self) -> str:
        median = self.size / MIB / statistics.median(self.seconds)
        best = self.size / MIB / min(self.seconds)
        rss = f"{max(self.rss_growth_mib):.1f}" if self.rss_growth_mib else "-"
        fsync = f"{statistics.median(self.fsync_wait_s) * 1000:.0f}" if self.fsync_wait_s else "-"
        cpu = statistics.median(self.cpu_s)
        return f"| {self.name:<28} | {median:9.0f} | {best:10.0f} | {cpu:5.2f} | {rss:>8} | {fsync:>14} |"


HEADER = (
    f"| {'row':<28} | MiB/s med | MiB/s best | CPU s | RSS +MiB | final fsync ms |\n"
    f"|{'-' * 30}|{'-' * 11}|{'-' * 12}|{'-' * 7}|{'-' * 10}|{'-' * 16}|"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=512, help="layer size [default: 512]")
    parser.add_argument("--repeat", type=int, default=5, help="runs per row [default: 5]")
    parser.add_argument("--only-ours", action="store_true", help="only the download_blob rows")
    parser.add_argument("--profile", action="store_true", help="one extra download_blob run under pyinstrument")
    parser.add_argument("--baseline", help="another _download.py to time download_blob with, for comparison")
    parser.add_argument("--tmp-dir", help="where the temp working dir goes [default: system temp]")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="download-micro-", dir=args.tmp_dir))
    registry: RunningRegistry | None = None
    try:
        registry = start_plain_registry(workdir / "registry", access_log=False)
        image = build_image(
            workdir / "layout", [args.size_mib * MIB], seed="micro", random_source="urandom", compresslevel=0
        )
        copy_layout_to_registry(image, registry, f"{REPO}:v1")
        [layer] = image.layers
        layer.path.unlink()  # the registry has it; keep the disk footprint down
        url = f"{registry.url}/v2/{REPO}/blobs/{layer.digest}"
        target = workdir / "blob"
        baseline = _load_download_module(Path(args.baseline)) if args.baseline else None
        print(f"registry {registry.url}, layer {layer.size / MIB:.1f} MiB, {args.repeat} runs per row", flush=True)
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

        reference_rows = [] if args.only_ours else ["curl -> /dev/null", "httpx iter_raw -> discard"]
        reference_rows += [] if args.only_ours else ["httpx iter_raw + sha256", "sha256 in memory, 1 MiB"]
        ours_rows = ["download_blob", "download_blob, httpx path"] + (["download_blob, --baseline"] if baseline else [])
        rows = {name: Row(name, layer.size) for name in reference_rows + ours_rows}
        http = httpx.Client(timeout=60.0)
        client = RegistryClient(registry.url)
        real_fsync = os.fsync
        fsync_wait = 0.0

        def timing_fsync(fd: int | HasFileno) -> None:
            nonlocal fsync_wait
            started = time.perf_counter()
            real_fsync(fd)
            if threading.current_thread() is threading.main_thread():  # not the background ones
                fsync_wait += time.perf_counter() - started

        def curl() -> None:
            subprocess.run(["curl", "-sf", "-o", "/dev/null", url], check=True)

        def bare(hashing: bool) -> None:
            hasher = hashlib.sha256()
            with http.stream("GET", url) as response:
                response.raise_for_status()
                for piece in response.iter_raw():
                    if hashing:
                        hasher.update(piece)
            assert not hashing or f"sha256:{hasher.hexdigest()}" == layer.digest

        def in_memory() -> None:
            buffer = memoryview(os.urandom(MIB))
            hasher = hashlib.sha256()
            for _ in range(layer.size // MIB):
                hasher.update(buffer)
            hasher.update(buffer[: layer.size % MIB])

        def ours() -> None:
            target.unlink(missing_ok=True)
            reported = 0

            def on_progress(delta: int) -> None:
                nonlocal reported
                reported += delta

            size = client.download_blob(REPO, layer.digest, target, expected_size=layer.size, on_progress=on_progress)
            assert size == layer.size == reported, (size, reported)

        def ours_with(name: str, module: ModuleType, direct_min_size: int) -> None:
            nonlocal fsync_wait
            fsync_wait = 0.0
            saved = (_client.__dict__["download_blob"], _download.DIRECT_MIN_SIZE, os.fsync)
            _client.__dict__["download_blob"] = module.download_blob
            _download.DIRECT_MIN_SIZE = direct_min_size
            os.fsync = timing_fsync
            try:
                rows[name].time(ours)
            finally:
                _client.__dict__["download_blob"], _download.DIRECT_MIN_SIZE, os.fsync = saved
                target.unlink(missing_ok=True)
            rows[name].fsync_wait_s.append(fsync_wait)

        for _ in range(args.repeat):
            if not args.only_ours:
                rows["curl -> /dev/null"].time(curl, subprocess_cpu=True)
                rows["httpx iter_raw -> discard"].time(lambda: bare(False))
                rows["httpx iter_raw + sha256"].time(lambda: bare(True))
                rows["sha256 in memory, 1 MiB"].time(in_memory)
            ours_with("download_blob", _download, _download.DIRECT_MIN_SIZE)
            ours_with("download_blob, httpx path", _download, layer.size + 1)
            if baseline is not None:
                ours_with("download_blob, --baseline", baseline, _download.DIRECT_MIN_SIZE)

        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
        print(HEADER)
        for row in rows.values():
            print(row.line())

        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            with profiler:
                ours()
            print(profiler.output_text(unicode=True, color=False, show_all=False))
        client.close()
        http.close()
    finally:
        if registry is not None:
            registry.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

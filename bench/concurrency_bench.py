"""Concurrency benchmark: fixed concurrency 1..12 against the dynamic and adaptive managers, on three links.

    .venv/bin/python bench/concurrency_bench.py [--quick] [--ops pull,push] [--links a,b,c] [--repeat N]

One image of 40 layers of 16 MiB (random bytes: nothing compresses; --quick: 20 layers) is pulled from and
pushed to a plain local registry (tests/rig) over three links:

    a  TcpProxy in front of the registry, a per-connection and a total rate cap set so that ~6 connections
       are best (calibrated at start: total = 6 x what one capped connection really gets);
    b  no proxy (loopback);
    c  ThrottlingHttpProxy: 429 + Retry-After above 4 blob transfers at once.

Each setting runs our CLI as a whole process, into a fresh cache (pull) or a fresh repository from a fresh
copy of a cache that only extracted the image (push): `--concurrency-manager fixed --max-concurrent N` for the
sweep, `dynamic` and `adaptive` with `--initial-concurrent 1 --min-concurrent 1 --max-concurrent 12`, always with
`--stats-file FILE --disable-progress`. Prints a markdown table per (operation, link), PASS/MISS per target,
the concurrency trace of the dynamic and adaptive runs, and writes bench/out/concurrency.json (and
bench/out/concurrency.png if matplotlib is importable). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pull_bench import MIB, TOOL, Run, machine_info, run_measured  # noqa: E402
from push_bench import Requests, count_requests, ping_agent  # noqa: E402
from rig.images import build_image  # noqa: E402
from rig.proxy import TcpProxy  # noqa: E402
from rig.registry import RunningRegistry, start_plain_registry  # noqa: E402
from rig.skopeo import run_skopeo  # noqa: E402
from rig.throttle_http import ThrottlingHttpProxy  # noqa: E402

from docker_image_pusher.agent._client import _fingerprint as agent_fingerprint  # noqa: E402  (no Prefect import)
from docker_image_pusher.server import state_dir as default_state_dir  # noqa: E402

OUT_JSON = ROOT / "bench" / "out" / "concurrency.json"
OUT_PNG = ROOT / "bench" / "out" / "concurrency.png"
LAYER_SIZE = 16 * MIB
LAYERS, QUICK_LAYERS = 40, 20
FIXED_LEVELS = tuple(range(1, 13))
QUICK_LEVELS = (1, 2, 4, 6, 8, 12)
CEILING = 12  # --max-concurrent of the dynamic and adaptive runs
MANAGED = ("dynamic", "adaptive")
PER_CONNECTION_MIB = 20.0  # link a: nominal per-connection cap
BEST_CONNECTIONS = 6  # link a: the total cap is this many connections' worth
RELAY_HEADROOM = 1.5  # link a: the uncapped proxy must relay this much more than the total cap
MAX_TRANSFERS = 4  # link c
RETRY_AFTER = 1  # link c
TARGET_FRACTION = 0.9  # dynamic/adaptive MiB/s >= this x the best fixed setting's, on links a and b
THROTTLE_REASON = re.compile(r"throttl|429|too.?many|retry.?after", re.IGNORECASE)
IMAGE_NAME = "conc"  # the tar's image: bench/conc-NNxMMm:v1; the registry's pull source: bench/conc-src:v1
LINK_NAMES = {
    "a": "TcpProxy, capped per connection and in total",
    "b": "loopback, no proxy",
    "c": f"ThrottlingHttpProxy, 429 above {MAX_TRANSFERS} blob transfers",
}
OPS = ("pull", "push")


# -- the stats file (written by our CLI at the end of a run) -----------------------------------------------------


@dataclass
class Adjustment:
    t: float
    old: int
    new: int
    reason: str
    throughput: float


@dataclass
class Stats:
    """What matters here of `--stats-file` (missing keys take defaults: the file is parsed leniently)."""

    operation: str = ""
    elapsed: float = 0.0
    bytes: int = 0
    speed: float = 0.0
    retries: int = 0
    failed: int = 0
    blobs: dict[str, Any] = field(default_factory=dict)
    manager: str = ""
    strategy: str = ""
    initial: int | None = None
    final: int | None = None
    adjustments: list[Adjustment] = field(default_factory=list)
    trace: list[tuple[float, int, float]] = field(default_factory=list)  # (t, concurrency, bytes/s)


def _num(value: Any, default: float = 0.0) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_stats(data: Any) -> Stats:
    if not isinstance(data, dict):
        raise ValueError("the stats file is not a JSON object")
    raw_conc = data.get("concurrency")
    conc: dict[str, Any] = raw_conc if isinstance(raw_conc, dict) else {}
    adjustments = [
        Adjustment(
            t=_num(a.get("t")),
            old=_int(a.get("old")) or 0,
            new=_int(a.get("new")) or 0,
            reason=str(a.get("reason", "")),
            throughput=_num(a.get("throughput")),
        )
        for a in conc.get("adjustments") or []
        if isinstance(a, dict)
    ]
    trace = [
        (_num(p[0]), _int(p[1]) or 0, _num(p[2]) if len(p) > 2 else 0.0)
        for p in conc.get("trace") or []
        if isinstance(p, list | tuple) and len(p) >= 2
    ]
    return Stats(
        operation=str(data.get("operation", "")),
        elapsed=_num(data.get("elapsed")),
        bytes=_int(data.get("bytes")) or 0,
        speed=_num(data.get("speed")),
        retries=_int(data.get("retries")) or 0,
        failed=_int(data.get("failed")) or 0,
        blobs=data["blobs"] if isinstance(data.get("blobs"), dict) else {},
        manager=str(conc.get("manager", "")),
        strategy=str(conc.get("strategy", "")),
        initial=_int(conc.get("initial")),
        final=_int(conc.get("final")),
        adjustments=adjustments,
        trace=trace,
    )


def load_stats(path: Path) -> tuple[Stats | None, str]:
    """(stats, "") or (None, why not)."""
    if not path.exists():
        return None, "no stats file"
    try:
        return parse_stats(json.loads(path.read_text())), ""
    except (OSError, ValueError) as err:
        return None, f"unreadable stats file: {err}"


def concurrency_points(stats: Stats) -> list[tuple[float, int]]:
    """(t, concurrency) from t=0 and at each change.

    The adjustments are the changes; a trace sample [t, c, bytes/s] is the concurrency in force during the window
    that ended at t (a change made at t shows in the next sample), so the trace only stands in without them.
    """
    if stats.adjustments:
        start = stats.initial if stats.initial is not None else stats.adjustments[0].old
        raw = [(0.0, start), *((a.t, a.new) for a in stats.adjustments)]
    elif stats.trace:
        raw = [(0.0, stats.initial if stats.initial is not None else stats.trace[0][1])]
        raw += [(t, c) for t, c, _ in stats.trace]
    else:
        raw = [(0.0, stats.initial)] if stats.initial is not None else []
    points: list[tuple[float, int]] = []
    for t, c in raw:
        if not points or points[-1][1] != c:
            points.append((t, c))
    return points


def end_time(stats: Stats) -> float:
    return max([stats.elapsed, *(t for t, _, _ in stats.trace)])


def trace_text(stats: Stats, limit: int = 40) -> str:
    """ "t=0.0 1 | 0.3 2 | 0.6 4 | ..." (changes only; the last sample closes it)."""
    points = concurrency_points(stats)
    if not points:
        return "(no trace)"
    last_t = end_time(stats)
    parts = [f"{t:.1f} {c}" for t, c in points]
    if len(parts) > limit:
        parts = [*parts[: limit - 1], f"... ({len(parts) - limit} more)", parts[-1]]
    end = f" | end {last_t:.1f}" if last_t and last_t > points[-1][0] else ""
    return "t=" + " | ".join(parts) + end


def after_first_throttle(stats: Stats, throttled: int | None) -> tuple[float | None, int | None, str]:
    """(time of the first throttle, highest concurrency from then on, how it was found).

    The first throttle is the first adjustment whose reason names it (429, throttled, too many, Retry-After);
    if none does but the proxy did send 429s (`throttled`: its count for the run, None if unknown), the first
    decrease.
    """
    first = next((a for a in stats.adjustments if THROTTLE_REASON.search(a.reason)), None)
    how = "reason"
    if first is None and throttled != 0:
        first = next((a for a in stats.adjustments if a.new < a.old), None)
        how = "first decrease"
    if first is None:
        return None, None, "none"
    later = [c for t, c in concurrency_points(stats) if t >= first.t]
    return first.t, max(later) if later else first.new, how


# -- settings, runs and rows ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    manager: str  # fixed, dynamic, adaptive
    level: int | None = None  # fixed only

    @property
    def name(self) -> str:
        return f"fixed {self.level}" if self.manager == "fixed" else self.manager

    def flags(self, supported: bool) -> list[str]:
        if self.manager == "fixed":
            assert self.level is not None
            head = ["--concurrency-manager", "fixed"] if supported else []
            return [*head, "--max-concurrent", str(self.level)]
        return [
            "--concurrency-manager",
            self.manager,
            "--initial-concurrent",
            "1",
            "--min-concurrent",
            "1",
            "--max-concurrent",
            str(CEILING),
        ]


@dataclass
class RunResult:
    run: Run
    stats: Stats | None
    stats_note: str = ""
    proxy: dict[str, Any] = field(default_factory=dict)  # the link's proxy counters for this run
    requests: Requests | None = None  # from the registry's access log
    cold_agent: bool = False

    @property
    def ok(self) -> bool:
        return self.run.ok

    @property
    def wall_s(self) -> float:
        return self.run.wall_s


@dataclass
class Row:
    op: str
    link: str
    setting: Setting
    image_bytes: int
    blobs: int
    runs: list[RunResult] = field(default_factory=list)

    @property
    def counted(self) -> list[RunResult]:
        good = [r for r in self.runs if r.ok]
        return [r for r in good if not r.cold_agent] or good

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.ok for r in self.runs)

    @property
    def median(self) -> RunResult | None:
        good = sorted(self.counted, key=lambda r: r.wall_s)
        return good[(len(good) - 1) // 2] if good else None

    @property
    def wall_s(self) -> float | None:
        best = self.median
        return best.wall_s if best else None

    @property
    def flow_s(self) -> float | None:
        best = self.median
        return best.stats.elapsed if best and best.stats and best.stats.elapsed > 0 else None

    def mib_s(self, basis: str) -> float | None:
        seconds = self.flow_s if basis == "flow" else self.wall_s
        return self.image_bytes / MIB / seconds if seconds else None

    @property
    def final(self) -> int | None:
        best = self.median
        if best and best.stats and best.stats.final is not None:
            return best.stats.final
        return self.setting.level if best else None

    def stat(self, get: Callable[[Stats], int]) -> int | None:
        best = self.median or (self.runs[-1] if self.runs else None)
        return get(best.stats) if best and best.stats else None

    @property
    def upload_problem(self) -> str:
        """Non-empty if a push run uploaded fewer blobs than the image has (a mount would flatter it)."""
        if self.op != "push":
            return ""
        short = [
            r
            for r in self.counted
            if r.requests is not None and (r.requests.upload_put < self.blobs or r.requests.mount)
        ]
        return f"{len(short)} run(s) uploaded fewer than {self.blobs} blobs" if short else ""

    def to_json(self, basis: str) -> dict[str, Any]:
        best = self.median
        return {
            "op": self.op,
            "link": self.link,
            "setting": self.setting.name,
            "manager": self.setting.manager,
            "level": self.setting.level,
            "ok": self.ok,
            "wall_s": self.wall_s,
            "flow_s": self.flow_s,
            "mib_s": self.mib_s(basis),
            "mib_s_basis": basis,
            "final": self.final,
            "adjustments": len(best.stats.adjustments) if best and best.stats else None,
            "retries": self.stat(lambda s: s.retries),
            "failed": self.stat(lambda s: s.failed),
            "upload_problem": self.upload_problem,
            "trace": trace_text(best.stats) if best and best.stats else None,
            "runs": [
                {
                    "run": asdict(r.run),
                    "stats": asdict(r.stats) if r.stats else None,
                    "stats_note": r.stats_note,
                    "proxy": r.proxy,
                    "requests": asdict(r.requests) if r.requests else None,
                    "cold_agent": r.cold_agent,
                }
                for r in self.runs
            ],
        }


# -- the sample image --------------------------------------------------------------------------------------------


@dataclass
class Sample:
    name: str  # the image's name in the tar and in the cache: bench/NAME:v1
    tar: Path
    layers: int
    image_bytes: int  # config + layers: what a pull or a push moves (the manifest is left out)
    blobs: int
    first_layer: str  # its digest (as in the tar and in the registry)
    digests: list[str]
    build_s: float

    @property
    def ref(self) -> str:
        return f"bench/{self.name}:v1"


def make_sample(layers: int, size: int, workdir: Path, registry: RunningRegistry, log: Callable[[str], None]) -> Sample:
    """Build the image, write it as a docker-archive tar (layers uncompressed) and push that tar to the registry
    as bench/conc-src:v1 (same digests: --preserve-digests)."""
    name = f"{IMAGE_NAME}-{layers}x{size // MIB}m" if layers > 1 else f"{IMAGE_NAME}-tiny"
    layout = workdir / "layouts" / name
    tar = workdir / "tars" / f"{name}.tar"
    tar.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    image = build_image(layout, [size] * layers, seed=name, random_source="urandom", compresslevel=0)
    run_skopeo(["copy", f"oci:{layout}:latest", f"docker-archive:{tar}:bench/{name}:v1"], timeout=900)
    shutil.rmtree(layout, ignore_errors=True)
    src = f"bench/{IMAGE_NAME}-src:v1" if layers > 1 else f"bench/{name}-src:v1"
    run_skopeo(
        [
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "--dest-no-creds",
            f"docker-archive:{tar}",
            f"docker://{registry.ref(src)}",
        ],
        timeout=900,
    )
    digests = [layer.diff_id for layer in image.layers]  # skopeo's docker-archive stores the layers uncompressed
    sample = Sample(
        name=name,
        tar=tar,
        layers=layers,
        image_bytes=image.config.size + sum(layer.uncompressed_size for layer in image.layers),
        blobs=1 + layers,
        first_layer=digests[0],
        digests=digests,
        build_s=time.perf_counter() - started,
    )
    log(f"  {name}: {layers} x {size / MIB:.4g} MiB, tar and registry ({src}) in {sample.build_s:.1f} s")
    return sample


def source_repo(sample: Sample) -> str:
    return f"bench/{IMAGE_NAME}-src" if sample.layers > 1 else f"bench/{sample.name}-src"


# -- link limits ---------------------------------------------------------------------------------------------------


def curl_rate(urls: Sequence[str], *, parallel: int = 0) -> float:
    """MiB/s of GETting `urls` with one curl (parallel > 0: -Z, that many connections at once), whole process."""
    args = ["curl", "-sSf"]
    if parallel:
        args += ["-Z", "--parallel-immediate", "--parallel-max", str(parallel)]
    for url in urls:
        args += ["-o", "/dev/null", "-w", "%{size_download}\\n", url]
    started = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, timeout=600, check=True)
    seconds = time.perf_counter() - started
    return sum(int(x) for x in out.stdout.split()) / MIB / seconds


def curl_one_blob(url: str, tries: int = 3) -> float:
    """MiB/s of one blob GET by curl's own clock (size_download / time_total), best of `tries`."""
    best = 0.0
    for _ in range(tries):
        out = subprocess.run(
            ["curl", "-sSf", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        size, seconds = out.stdout.split()
        best = max(best, int(size) / MIB / max(float(seconds), 1e-6))
    return best


@dataclass
class LinkPlan:
    """Measured limits and the caps chosen for link a."""

    physical_one_blob: float = 0.0  # link b: curl, one blob, curl's clock
    physical_sequential: float = 0.0  # link b: curl, several blobs on one connection
    physical_parallel: float = 0.0  # link b: curl, 6 connections
    tcp_relay_sequential: float = 0.0  # TcpProxy without caps, one connection
    tcp_relay_parallel: float = 0.0  # ... 6 connections
    http_relay_sequential: float = 0.0  # ThrottlingHttpProxy (no throttling), one connection
    http_relay_parallel: float = 0.0  # ... 4 connections
    rate_limit: float = PER_CONNECTION_MIB * MIB  # link a, bytes/s (nominal)
    total_rate_limit: float = BEST_CONNECTIONS * PER_CONNECTION_MIB * MIB
    effective_per_connection: float = 0.0  # MiB/s one capped connection really gets
    capped_curve: dict[int, float] = field(default_factory=dict)  # connections -> MiB/s through link a
    note: str = ""

    @property
    def knee(self) -> float:
        per = self.effective_per_connection or self.rate_limit / MIB
        return self.total_rate_limit / MIB / per


def measure_links(
    registry: RunningRegistry, sample: Sample, args: argparse.Namespace, log: Callable[[str], None]
) -> LinkPlan:
    plan = LinkPlan()
    repo = source_repo(sample)
    digests = sample.digests

    def urls(host: str, count: int) -> list[str]:
        return [f"http://{host}/v2/{repo}/blobs/{d}" for d in (digests * 3)[:count]]

    log("link limits (curl GETs of the image's 16 MiB layer blobs)")
    plan.physical_one_blob = curl_one_blob(urls(registry.host, 1)[0])
    plan.physical_sequential = curl_rate(urls(registry.host, 16))
    plan.physical_parallel = curl_rate(urls(registry.host, 24), parallel=6)
    log(
        f"  b, loopback: one blob {plan.physical_one_blob:.0f} MiB/s, 16 blobs on one connection "
        f"{plan.physical_sequential:.0f}, 6 connections {plan.physical_parallel:.0f}"
    )
    with TcpProxy(registry) as proxy:
        plan.tcp_relay_sequential = curl_rate(urls(proxy.host, 16))
        plan.tcp_relay_parallel = curl_rate(urls(proxy.host, 24), parallel=6)
        log(
            f"  TcpProxy without caps: one connection {plan.tcp_relay_sequential:.0f} MiB/s, "
            f"6 connections {plan.tcp_relay_parallel:.0f}"
        )
        if args.rate_limit and args.total_rate_limit:
            plan.rate_limit, plan.total_rate_limit = args.rate_limit * MIB, args.total_rate_limit * MIB
            plan.note = "caps from the command line"
        else:
            plan.rate_limit = (args.rate_limit or PER_CONNECTION_MIB) * MIB
            proxy.rate_limit = plan.rate_limit
            one = curl_rate(urls(proxy.host, 2))
            # TcpProxy paces 64 KiB pieces with asyncio sleeps that overshoot: a connection gets less than its
            # nominal cap. Make the total cap BEST_CONNECTIONS x what one connection really gets.
            total = BEST_CONNECTIONS * one * MIB
            relay = min(plan.tcp_relay_sequential, plan.tcp_relay_parallel) * MIB
            scale = min(1.0, relay / (RELAY_HEADROOM * total))
            plan.rate_limit *= scale
            plan.total_rate_limit = total * scale
            plan.note = (
                f"one connection capped at {plan.rate_limit / scale / MIB:.0f} MiB/s gets {one:.1f}: "
                f"total = {BEST_CONNECTIONS} x {one:.1f}" + (f", both scaled by {scale:.2f}" if scale < 1 else "")
            )
        proxy.rate_limit, proxy.total_rate_limit = plan.rate_limit, plan.total_rate_limit
        for count in (1, BEST_CONNECTIONS, CEILING):
            blobs = max(2 * count, 2)
            plan.capped_curve[count] = curl_rate(urls(proxy.host, blobs), parallel=count if count > 1 else 0)
        plan.effective_per_connection = plan.capped_curve[1]
        log(
            f"  a, TcpProxy rate_limit {plan.rate_limit / MIB:.1f} MiB/s, total_rate_limit "
            f"{plan.total_rate_limit / MIB:.1f} MiB/s ({plan.note}); "
            + ", ".join(f"{n} conn {r:.0f}" for n, r in plan.capped_curve.items())
            + f" MiB/s; knee at {plan.knee:.1f} connections"
        )
    with ThrottlingHttpProxy(registry, max_transfers=None) as http_proxy:
        plan.http_relay_sequential = curl_rate(urls(http_proxy.host, 16))
        plan.http_relay_parallel = curl_rate(urls(http_proxy.host, 16), parallel=MAX_TRANSFERS)
        log(
            f"  ThrottlingHttpProxy without throttling: one connection {plan.http_relay_sequential:.0f} MiB/s, "
            f"{MAX_TRANSFERS} connections {plan.http_relay_parallel:.0f}"
        )
    return plan


# -- the benchmark ------------------------------------------------------------------------------------------------


def levels_for(args: argparse.Namespace) -> tuple[int, ...]:
    return QUICK_LEVELS if args.quick else FIXED_LEVELS


def estimate_s(
    args: argparse.Namespace, ops: Sequence[str], links: Sequence[str], layers: int, per_conn: float, total: float
) -> float:
    """A rough duration of the runs: transfer time at the link's model rate + a per-process overhead."""
    size = layers * LAYER_SIZE / MIB
    fast = 300.0  # MiB/s our client is assumed to reach on links b and c
    seconds = 0.0
    for op in ops:
        overhead = 2.0 + (0.5 if op == "push" else 0.0)  # process start-up, flow run; push: the cache copy
        for link in links:
            fixed = []
            for level in levels_for(args):
                rate = min(level * per_conn, total) if link == "a" else fast
                retries = 2.0 if link == "c" and level > MAX_TRANSFERS else 0.0  # Retry-After waits
                fixed.append(size / rate + overhead + retries)
            managed = 2 * (1.5 * min(fixed) + 2.0)
            seconds += (sum(fixed) + managed) * args.repeat
    return seconds


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.counter = 0
        self.rows: list[Row] = []
        self.extra: dict[str, Any] = {}
        self.our_env = dict(os.environ)
        if args.state_dir:
            self.our_env["DOCKER_IMAGE_PUSHER_STATE_DIR"] = str(Path(args.state_dir).absolute())
        self.state_dir = Path(args.state_dir).absolute() if args.state_dir else default_state_dir()
        self.registry: RunningRegistry | None = None
        self.flags_supported = True
        self.stats_supported = True
        self.tool = str(Path(args.tool).absolute()) if args.tool else str(TOOL)
        self.detect_agent = args.tool is None  # the agent socket name is only known for our own tree's CLI

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def fresh(self, label: str) -> Path:
        self.counter += 1
        return self.workdir / "scratch" / f"{self.counter:03d}-{re.sub(r'[^a-z0-9]+', '-', label.lower())}"

    @property
    def reg(self) -> RunningRegistry:
        assert self.registry is not None
        return self.registry

    # -- our CLI

    def probe_cli(self) -> None:
        """Which of the new flags the CLI has (the bench degrades without them, unless --no-probe)."""
        if self.args.no_probe:
            return
        helps = ""
        for op in OPS:
            out = subprocess.run([self.tool, op, "--help"], capture_output=True, text=True, env=self.our_env)
            helps += out.stdout + out.stderr
        self.flags_supported = all(f in helps for f in ("--concurrency-manager", "--initial-concurrent"))
        self.stats_supported = "--stats-file" in helps
        if not self.flags_supported:
            self.log(
                "NOTE: the CLI has no --concurrency-manager yet: fixed runs use --max-concurrent only, "
                "dynamic and adaptive are skipped (--no-probe passes the flags anyway)"
            )
        if not self.stats_supported:
            self.log("NOTE: the CLI has no --stats-file yet: no final concurrency, adjustments, retries or traces")

    def api_url(self) -> str | None:
        api = self.our_env.get("PREFECT_API_URL")
        if api:
            return api
        try:
            info = json.loads((self.state_dir / "server.json").read_text())
            return f"http://127.0.0.1:{int(info['port'])}/api"
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def current_agent(self) -> int | None:
        api = self.api_url() if self.detect_agent else None
        return ping_agent(self.state_dir / "agent" / f"{agent_fingerprint(api)}.sock") if api else None

    def command(
        self, op: str, sample: Sample, host: str, cache: Path, setting: Setting | None, stats: Path | None
    ) -> tuple[list[str], str]:
        """(argv, target repository) of one pull or push of ours."""
        if op == "pull":
            repo = source_repo(sample)
            argv = [self.tool, "pull", f"{host}/{repo}:v1"]
        else:
            self.counter += 1
            repo = f"bench/{sample.name}-push-{self.counter:03d}"
            argv = [self.tool, "push", "-s", sample.ref, f"{host}/{repo}:v1"]
        argv += ["--registry", f"http://{host}", "--cache-dir", str(cache), "--disable-progress"]
        if setting is not None:
            argv += setting.flags(self.flags_supported)
        if stats is not None and self.stats_supported:
            argv += ["--stats-file", str(stats)]
        return argv, repo

    def fresh_cache(self, op: str, sample: Sample, pristine: Path | None, label: str) -> Path:
        cache = self.fresh(label + "-cache")
        if op == "push":
            assert pristine is not None
            copy_cache(pristine, cache)
        return cache

    def run_once(
        self,
        op: str,
        sample: Sample,
        host: str,
        setting: Setting,
        pristine: Path | None,
        probe: Callable[[], dict[str, Any]],
        label: str,
    ) -> RunResult:
        scratch = self.fresh(label)
        cache = self.fresh_cache(op, sample, pristine, label)
        stats_path = scratch / "stats.json"
        argv, _repo = self.command(op, sample, host, cache, setting, stats_path)
        agent = self.current_agent()
        log_offset = len(self.reg.log_text())
        probe()  # resets the link's counters
        run = run_measured(argv, scratch=scratch, env=self.our_env, cwd=self.workdir)
        time.sleep(0.05)  # the registry logs a request as it ends
        counters = probe()
        stats, note = load_stats(stats_path) if self.stats_supported else (None, "no --stats-file in the CLI")
        after = self.current_agent()
        result = RunResult(
            run,
            stats,
            note,
            counters,
            count_requests(self.reg.log_text()[log_offset:]),
            cold_agent=self.detect_agent and (after is None or after != agent),
        )
        shutil.rmtree(cache, ignore_errors=True)
        state = "ok" if run.ok else f"FAILED exit {run.exit_code}" + (" (timeout)" if run.timed_out else "")
        text = f"    {label}: {run.wall_s:.2f} s"
        if stats:
            text += (
                f", flow {stats.elapsed:.2f} s, final {stats.final}, {len(stats.adjustments)} adjustments, "
                f"{stats.retries} retries, {stats.failed} failed"
            )
        elif note:
            text += f" ({note})"
        if counters.get("throttled"):
            text += f", {counters['throttled']} x 429, peak {counters.get('peak_transfers')} transfers"
        text += ", STARTED A NEW AGENT" if result.cold_agent else ""
        self.log(f"{text}, {state}")
        if not run.ok:
            self.log("      " + (run.stderr_tail or run.stdout_tail).strip().replace("\n", "\n      ")[-1500:])
        return result

    def run_row(
        self,
        row: Row,
        sample: Sample,
        host: str,
        pristine: Path | None,
        probe: Callable[[], dict[str, Any]],
    ) -> None:
        label = f"{row.op} {row.link} {row.setting.name}"
        for _ in range(3):  # a run that had to start an agent (the code changed) is kept, not counted, repeated
            result = self.run_once(row.op, sample, host, row.setting, pristine, probe, label)
            row.runs.append(result)
            if not result.cold_agent or not result.ok:
                break
            self.log("      (not counted: repeated with the agent now warm)")

    # -- steps

    def warm_up(self, tiny: Sample) -> None:
        self.log("warm-up (untimed): starts the Prefect server and the agent if needed, runs both flows once")
        pull_argv, _ = self.command("pull", tiny, self.reg.host, self.fresh("warm-pull-cache"), None, None)
        pull = run_measured(pull_argv, scratch=self.fresh("warm-pull"), env=self.our_env, cwd=self.workdir)
        repo = f"bench/{tiny.name}-warm"
        push_argv = [self.tool, "push", "-s", str(tiny.tar), f"{self.reg.host}/{repo}:v1"]
        push_argv += [
            "--registry",
            self.reg.url,
            "--cache-dir",
            str(self.fresh("warm-push-cache")),
            "--disable-progress",
        ]
        push = run_measured(push_argv, scratch=self.fresh("warm-push"), env=self.our_env, cwd=self.workdir)
        for name, run in (("pull", pull), ("push -s TAR", push)):
            self.log(f"  {name}: {run.wall_s:.2f} s, {'ok' if run.ok else f'FAILED exit {run.exit_code}'}")
            if not run.ok:
                self.log("    " + (run.stderr_tail or run.stdout_tail).strip()[-1500:])
        self.extra["warm_up"] = {"pull": asdict(pull), "push": asdict(push)}

    def fill_pristine(self, sample: Sample) -> Path | None:
        """A cache that only extracted the tar (pushes copy it: a cache that pushed before would mount)."""
        cache = self.workdir / "pristine-cache"
        argv = [self.tool, "extract", "-f", str(sample.tar), "--cache-dir", str(cache), "--disable-progress"]
        run = run_measured(argv, scratch=self.fresh("extract"), env=self.our_env, cwd=self.workdir)
        if not run.ok:
            self.log("  extract -f TAR FAILED, no push runs: " + (run.stderr_tail or run.stdout_tail).strip()[-1500:])
            self.extra["extract_failed"] = asdict(run)
            return None
        self.log(f"  pristine cache for pushes: extract -f TAR in {run.wall_s:.1f} s")
        return cache

    @contextlib.contextmanager
    def link(self, name: str, plan: LinkPlan) -> Iterator[tuple[str, Callable[[], dict[str, Any]]]]:
        """(host, probe) of a link; probe() returns its counters since the last probe() and resets them."""
        if name == "a":
            with TcpProxy(self.reg, rate_limit=plan.rate_limit, total_rate_limit=plan.total_rate_limit) as tcp:

                def tcp_probe() -> dict[str, Any]:
                    # (no wait_idle: our warm agent keeps its keep-alive connections open between runs)
                    out = asdict(tcp.stats())
                    tcp.reset_counters()
                    return out

                yield tcp.host, tcp_probe
        elif name == "c":
            with ThrottlingHttpProxy(self.reg, max_transfers=MAX_TRANSFERS, retry_after=RETRY_AFTER) as http_proxy:

                def http_probe() -> dict[str, Any]:
                    http_proxy.wait_transfers(0, 2.0)
                    out = asdict(http_proxy.stats())
                    http_proxy.reset_counters()
                    return out

                yield http_proxy.host, http_probe
        else:
            yield self.reg.host, lambda: {}

    def sweep(self, op: str, link: str, sample: Sample, pristine: Path | None, plan: LinkPlan) -> None:
        settings = [Setting("fixed", level) for level in levels_for(self.args)]
        if self.flags_supported:
            settings += [Setting(m) for m in MANAGED]
        rows = [Row(op, link, s, sample.image_bytes, sample.blobs) for s in settings]
        self.rows += rows
        self.log(f"{op} over link {link} ({LINK_NAMES[link]})")
        with self.link(link, plan) as (host, probe):
            for round_number in range(self.args.repeat):
                order = rows if round_number % 2 == 0 else rows[::-1]
                for row in order:
                    self.run_row(row, sample, host, pristine, probe)


def copy_cache(src: Path, dst: Path) -> None:
    """Copy a cache: blobs hard-linked (they are never written in place), the rest copied (written by rename)."""

    def copy(a: str, b: str) -> object:
        if f"{os.sep}blobs{os.sep}" in a:
            try:
                os.link(a, b)
                return b
            except OSError:
                pass
        return shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=copy, symlinks=True)


# -- report --------------------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@dataclass
class Target:
    op: str
    link: str
    setting: str
    text: str
    ok: bool | None  # None: could not be judged

    @property
    def verdict(self) -> str:
        return "n/a" if self.ok is None else "PASS" if self.ok else "MISS"


class Report:
    def __init__(self, bench: Bench, plan: LinkPlan | None, sample: Sample | None, info: dict[str, Any]) -> None:
        self.bench = bench
        self.plan = plan
        self.sample = sample
        self.info = info
        self.targets: list[Target] = []
        self.traces: list[dict[str, Any]] = []

    def groups(self) -> list[tuple[str, str, list[Row]]]:
        out: list[tuple[str, str, list[Row]]] = []
        for op in OPS:
            for link in "abc":
                rows = [r for r in self.bench.rows if r.op == op and r.link == link]
                if rows:
                    out.append((op, link, rows))
        return out

    @staticmethod
    def basis(rows: Sequence[Row]) -> str:
        """ "flow" (image bytes / the stats file's elapsed) if every good row has it, else "wall"."""
        good = [r for r in rows if r.median is not None]
        return "flow" if good and all(r.flow_s for r in good) else "wall"

    def header(self) -> list[str]:
        info, plan, sample, args = self.info, self.plan, self.sample, self.bench.args
        lines = [
            "# Concurrency benchmark",
            "",
            f"machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']}, {info['registry']}",
        ]
        if sample is not None:
            lines.append(
                f"image: {sample.layers} layers x {LAYER_SIZE // MIB} MiB random bytes "
                f"({sample.image_bytes / MIB:.0f} MiB, {sample.blobs} blobs); repeat {args.repeat} (median wall shown)"
            )
        if plan is not None:
            lines += [
                f"physical limit (link b, curl GET on loopback): one blob {plan.physical_one_blob:.0f} MiB/s; "
                f"16 blobs on one connection {plan.physical_sequential:.0f}; "
                f"6 connections {plan.physical_parallel:.0f}",
                f"TcpProxy relay without caps: one connection {plan.tcp_relay_sequential:.0f} MiB/s, "
                f"6 connections {plan.tcp_relay_parallel:.0f}",
                f"link a: TcpProxy rate_limit {plan.rate_limit / MIB:.1f} MiB/s per connection, total_rate_limit "
                f"{plan.total_rate_limit / MIB:.1f} MiB/s ({plan.note}); curl through it: "
                + ", ".join(f"{n} connection(s) {r:.0f}" for n, r in plan.capped_curve.items())
                + f" MiB/s; knee at {plan.knee:.1f} connections",
                f"link c: ThrottlingHttpProxy max_transfers {MAX_TRANSFERS}, Retry-After {RETRY_AFTER}; relay without "
                f"throttling: one connection {plan.http_relay_sequential:.0f} MiB/s, {MAX_TRANSFERS} connections "
                f"{plan.http_relay_parallel:.0f}",
            ]
        return lines

    def table(self, op: str, link: str, rows: list[Row]) -> list[str]:
        basis = self.basis(rows)
        fixed = [r for r in rows if r.setting.manager == "fixed" and r.mib_s(basis)]
        best = max(fixed, key=lambda r: r.mib_s(basis) or 0.0) if fixed else None
        best_rate = best.mib_s(basis) if best else None
        throttling = link == "c"
        head = "| setting | wall s | flow s | MiB/s | % of best fixed | final concurrency | adjustments | retries |"
        head += " failed |"
        rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        if throttling:
            head += " 429s | peak transfers |"
            rule += "---:|---:|"
        lines = [
            "",
            f"## {op}, link {link}: {LINK_NAMES[link]}",
            "",
            f"MiB/s = image bytes / {'flow s (the stats file elapsed)' if basis == 'flow' else 'wall s'}"
            + (f"; best fixed: {best.setting.name}" if best else ""),
            "",
            head,
            rule,
        ]
        for row in rows:
            rate = row.mib_s(basis)
            pct = f"{100 * rate / best_rate:.0f}%" if rate and best_rate else "-"
            best_run = row.median
            adjustments = len(best_run.stats.adjustments) if best_run and best_run.stats else None
            name = row.setting.name + ("" if row.ok else " (FAILED)" if not row.median else " (some runs failed)")
            cells = [
                name,
                _fmt(row.wall_s),
                _fmt(row.flow_s),
                _fmt(rate, 1),
                pct,
                "-" if row.final is None else str(row.final),
                "-" if adjustments is None else str(adjustments),
                _int_cell(row.stat(lambda s: s.retries)),
                _int_cell(row.stat(lambda s: s.failed)),
            ]
            if throttling:
                proxy = best_run or (row.runs[-1] if row.runs else None)
                counters = proxy.proxy if proxy else {}
                cells += [_int_cell(counters.get("throttled")), _int_cell(counters.get("peak_transfers"))]
            lines.append("| " + " | ".join(cells) + " |")
            if row.upload_problem:
                lines.append(f"|  ^ {row.upload_problem} | | | | | | | | |")
        one = next((r for r in rows if r.setting.level == 1), None)
        one_rate = one.mib_s(basis) if one else None
        if link == "a" and self.plan is not None and one_rate:
            total = self.plan.total_rate_limit / MIB
            lines += [
                "",
                f"observed: one connection got {one_rate:.1f} MiB/s (fixed 1; curl got "
                f"{self.plan.effective_per_connection:.1f}), so the total cap of {total:.1f} MiB/s is "
                f"{total / one_rate:.1f} connections' worth in this run",
            ]
        lines += self.judge(op, link, rows, best_rate, basis)
        return lines

    def judge(self, op: str, link: str, rows: list[Row], best_rate: float | None, basis: str) -> list[str]:
        lines = [""]
        for row in rows:
            if row.setting.manager not in MANAGED:
                continue
            name = row.setting.name
            best_run = row.median
            stats = best_run.stats if best_run else None
            if link in "ab":
                rate = row.mib_s(basis)
                ok = None if rate is None or best_rate is None else rate >= TARGET_FRACTION * best_rate
                if not row.median:
                    ok = False
                text = f"{name} >= {TARGET_FRACTION:.0%} of best fixed: " + (
                    f"{100 * rate / best_rate:.0f}%" if rate and best_rate else "no figure"
                )
                self.targets.append(Target(op, link, name, text, ok))
            else:
                final = row.final
                failed = stats.failed if stats else None
                ok = None if final is None or failed is None else final <= MAX_TRANSFERS and failed == 0
                if not row.median:
                    ok = False
                self.targets.append(
                    Target(
                        op,
                        link,
                        name,
                        f"{name} final <= {MAX_TRANSFERS} and failed == 0: final {_int_cell(final)}, "
                        f"failed {_int_cell(failed)}" + ("" if row.ok else ", process failed"),
                        ok,
                    )
                )
                if stats is not None and best_run is not None:
                    sent = best_run.proxy.get("throttled")
                    when, highest, how = after_first_throttle(stats, sent)
                    info = (
                        f"first throttle at t={when:.1f} s ({how}), highest concurrency after it: {highest}"
                        if when is not None
                        else f"not throttled ({_int_cell(sent)} x 429)"
                        if sent == 0
                        else "no throttle in its adjustments"
                    )
                    lines.append(f"- {name}: {info} (proxy limit {MAX_TRANSFERS})")
            if stats is not None:
                self.traces.append(
                    {
                        "op": op,
                        "link": link,
                        "setting": name,
                        "text": trace_text(stats),
                        "points": concurrency_points(stats),
                        "end": end_time(stats),
                        "trace": stats.trace,
                    }
                )
        for target in self.targets:
            if target.op == op and target.link == link:
                lines.append(f"- {target.verdict}: {target.text}")
        return lines

    def render(self) -> str:
        lines = self.header()
        for op, link, rows in self.groups():
            lines += self.table(op, link, rows)
        if self.traces:
            lines += ["", "## Concurrency over time (dynamic and adaptive; t in s, then the concurrency)", ""]
            for link in "abc":
                for trace in (t for t in self.traces if t["link"] == link):
                    lines.append(f"- link {link}, {trace['op']}, {trace['setting']}: {trace['text']}")
        if self.targets:
            passed = sum(t.ok is True for t in self.targets)
            lines += ["", f"targets: {passed} of {len(self.targets)} PASS"]
        return "\n".join(lines)


def _int_cell(value: Any) -> str:
    return "-" if value is None else str(value)


def plot(report: Report, path: Path) -> str:
    """A PNG of the dynamic and adaptive traces (one panel per operation and link), if matplotlib is there."""
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
    except ImportError:
        return "matplotlib is not importable: no plot"
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    panels = sorted({(t["op"], t["link"]) for t in report.traces})
    if not panels:
        return "no traces: no plot"
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.6 * len(panels)), squeeze=False)
    for axis, (op, link) in zip(axes[:, 0], panels, strict=True):
        for trace in (t for t in report.traces if (t["op"], t["link"]) == (op, link)):
            points = trace["points"]
            if points:
                xs = [p[0] for p in points] + [max(trace["end"], points[-1][0])]
                ys = [p[1] for p in points] + [points[-1][1]]
                axis.step(xs, ys, where="post", label=trace["setting"])
        if link == "c":
            axis.axhline(MAX_TRANSFERS, color="grey", linestyle=":", label="proxy limit")
        axis.set_title(f"{op}, link {link}: {LINK_NAMES[link]}", fontsize=9)
        axis.set_ylabel("concurrency")
        axis.set_ylim(0, CEILING + 1)
        axis.legend(fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"wrote {path}"


# -- re-rendering a saved results file --------------------------------------------------------------------------------


def _stats_from_json(raw: dict[str, Any] | None) -> Stats | None:
    if raw is None:
        return None
    adjustments = [Adjustment(**a) for a in raw.get("adjustments", [])]
    trace = [(float(p[0]), int(p[1]), float(p[2])) for p in raw.get("trace", [])]
    return Stats(**{**raw, "adjustments": adjustments, "trace": trace})


def load_results(data: dict[str, Any], bench: Bench) -> tuple[LinkPlan | None, Sample | None]:
    """Rows (into bench.rows), plan and sample of a results file this script wrote."""
    raw_sample = data.get("sample")
    sample = Sample(**{**raw_sample, "tar": Path(raw_sample["tar"])}) if raw_sample else None
    plan = None
    if data.get("plan"):
        fields = {k: v for k, v in data["plan"].items() if k != "knee"}
        fields["capped_curve"] = {int(k): v for k, v in fields.get("capped_curve", {}).items()}
        plan = LinkPlan(**fields)
    for raw in data.get("rows", []):
        row = Row(
            raw["op"],
            raw["link"],
            Setting(raw["manager"], raw["level"]),
            sample.image_bytes if sample else 0,
            sample.blobs if sample else 0,
        )
        for run in raw["runs"]:
            requests = Requests(**run["requests"]) if run.get("requests") else None
            row.runs.append(
                RunResult(
                    Run(**run["run"]),
                    _stats_from_json(run.get("stats")),
                    run.get("stats_note", ""),
                    run.get("proxy") or {},
                    requests,
                    bool(run.get("cold_agent")),
                )
            )
        bench.rows.append(row)
    return plan, sample


def render_saved(args: argparse.Namespace) -> int:
    """--render FILE: the report of a saved results file again (no runs), written to --json."""
    data = json.loads(Path(args.render).read_text())
    args.repeat = int(data.get("args", {}).get("repeat", 1))
    bench = Bench(args, Path(tempfile.gettempdir()))
    plan, sample = load_results(data, bench)
    report = Report(bench, plan, sample, data["machine"])
    text = report.render()
    print(text)
    plotted = plot(report, Path(args.png))
    bench.log(plotted)
    data.update(
        targets=[asdict(t) | {"verdict": t.verdict} for t in report.targets],
        traces=report.traces,
        plot=plotted,
        table=text,
    )
    Path(args.json).write_text(json.dumps(data, indent=2, default=str) + "\n")
    bench.log(f"wrote {args.json}")
    return 0


# -- main ---------------------------------------------------------------------------------------------------------


def _csv(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}")
        return items

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"fixed levels {QUICK_LEVELS}, {QUICK_LAYERS} layers")
    parser.add_argument("--ops", type=_csv(OPS), default=list(OPS), help="pull,push [default: both]")
    parser.add_argument("--links", type=_csv(("a", "b", "c")), default=["a", "b", "c"], help="a,b,c [default: all]")
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting, median shown [default: 1]")
    parser.add_argument("--layers", type=int, help=f"layers of 16 MiB [default: {LAYERS}, --quick: {QUICK_LAYERS}]")
    parser.add_argument("--rate-limit", type=float, help="link a: MiB/s per connection [default: 20, calibrated]")
    parser.add_argument("--total-rate-limit", type=float, help="link a: MiB/s in total [default: calibrated]")
    parser.add_argument("--tool", help=f"the CLI to run [default: {TOOL}]")
    parser.add_argument("--no-probe", action="store_true", help="pass the new CLI flags even if --help lacks them")
    parser.add_argument("--state-dir", help="DOCKER_IMAGE_PUSHER_STATE_DIR for our tool [default: the user's]")
    parser.add_argument("--tmp-dir", help="where the temp working dir goes [default: system temp]")
    parser.add_argument("--json", default=str(OUT_JSON), help=f"results file [default: {OUT_JSON}]")
    parser.add_argument("--png", default=str(OUT_PNG), help=f"trace plot [default: {OUT_PNG}]")
    parser.add_argument("--render", metavar="JSON", help="only re-render a saved results file (writes --json)")
    args = parser.parse_args(argv)
    if args.render:
        return render_saved(args)
    args.repeat = max(1, args.repeat)
    layers = args.layers or (QUICK_LAYERS if args.quick else LAYERS)

    if not Path(args.tool or TOOL).exists():
        print(f"{args.tool or TOOL} is missing: run `make setup` first", file=sys.stderr)
        return 2
    info = machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="concurrency-bench-", dir=args.tmp_dir))
    bench = Bench(args, workdir)
    guess = estimate_s(args, args.ops, args.links, layers, 15.0, 90.0) + 90.0
    bench.log(f"estimated duration: ~{guess / 60:.0f} min (setup ~1.5 min; refined after the link calibration)")
    started = time.perf_counter()
    plan: LinkPlan | None = None
    sample: Sample | None = None
    try:
        bench.log(f"working dir {workdir}")
        bench.probe_cli()
        bench.registry = start_plain_registry(workdir / "registry", access_log=True)
        bench.log(f"registry {bench.registry.url}; building the images")
        sample = make_sample(layers, LAYER_SIZE, workdir, bench.registry, bench.log)
        tiny = make_sample(1, 4096, workdir, bench.registry, bench.log)
        plan = measure_links(bench.registry, sample, args, bench.log)
        per, total = plan.effective_per_connection, plan.total_rate_limit / MIB
        refined = estimate_s(args, args.ops, args.links, layers, per, total)
        bench.log(f"estimated duration of the runs: ~{refined / 60:.1f} min")
        bench.warm_up(tiny)
        pristine = bench.fill_pristine(sample) if "push" in args.ops else None
        bench.extra["load_before"] = os.getloadavg()[0]
        for op in args.ops:
            for link in args.links:
                if op == "push" and pristine is None:
                    continue
                bench.sweep(op, link, sample, pristine, plan)
        bench.extra["load_after"] = os.getloadavg()[0]
    finally:
        if bench.registry is not None:
            bench.registry.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report = Report(bench, plan, sample, info)
    text = report.render()
    print(text)
    plotted = plot(report, Path(args.png))
    bench.log(plotted)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    groups = report.groups()
    result = {
        "machine": info,
        "args": vars(args),
        "layers": layers,
        "layer_size": LAYER_SIZE,
        "total_s": time.perf_counter() - started,
        "cli_flags_supported": bench.flags_supported,
        "cli_stats_supported": bench.stats_supported,
        "links": {k: v for k, v in LINK_NAMES.items() if k in args.links},
        "plan": asdict(plan) | {"knee": plan.knee} if plan else None,
        "sample": asdict(sample) | {"tar": str(sample.tar)} if sample else None,
        "targets": [asdict(t) | {"verdict": t.verdict} for t in report.targets],
        "traces": report.traces,
        "rows": [r.to_json(Report.basis(rows)) for _, _, rows in groups for r in rows],
        "plot": plotted,
        **bench.extra,
        "table": text,
    }
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    bench.log(f"\nwrote {out} in {(time.perf_counter() - started) / 60:.1f} min")
    failed = [
        r
        for r in bench.rows
        if not r.ok and not (r.link == "c" and r.setting.manager == "fixed" and (r.setting.level or 0) > MAX_TRANSFERS)
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

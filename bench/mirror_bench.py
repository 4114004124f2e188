"""Mirror benchmark: our `docker-image-pusher mirror SPEC.yaml` against `skopeo sync`, on local registries.

    .venv/bin/python bench/mirror_bench.py [--repeat N] [--tmp-dir DIR] [--state-dir DIR] [--stop-server]
                                           [--no-proxy] [--images-at-once N] [--json FILE]

Starts a plain source registry (tests/rig, loopback HTTP, access log on) behind the rig's ThrottlingHttpProxy with
no throttling (so that every client reads the source through it, and it counts the manifest requests), fills it
with 20 small images (3 layers of 256 KiB of random bytes, gzip level 1) and one big image (4 layers of 64 MiB),
warms our Prefect server and agent with an untimed mirror, then times whole processes, --repeat times each
(median shown), the two tools interleaved:

1. the 20 small images, first copy (a fresh destination registry, skopeo blob info cache and our cache per run);
2. the same again when nothing changed (the last run of 1's destination, blob info cache and our cache);
3. the big image, first copy, and the floor: curl GETs every blob (and the manifest) from the source and PUTs it
   monolithically to a fresh destination, one at a time, streamed through a pipe (upload sessions opened untimed);
4. one of the 20 images retagged at the source with new layers, then both tools (each on its own destination,
   in sync before): time and bytes;
5. our fixed cost: `mirror --dry-run` on the 20 unchanged images and on 1 image.

skopeo: `skopeo sync --src yaml --dest docker --all --preserve-digests --src-tls-verify=false
--dest-tls-verify=false SYNC.yaml DEST/bench` with the same repositories and tags (images are single-platform;
`--all` and our default both copy whole indexes). Ours: `mirror SPEC.yaml --cache-dir DIR --disable-progress
--stats-file FILE` (the CLI's default --images-at-once unless given). After every copy the destination's tags are
checked against the source's digests. Source requests come from the proxy's counters (when the rig's proxy has
them) and from the source registry's access log (always; the two are compared); destination requests and the
bytes each side moved come from the registries' access logs. For ours, the flow and task runs are read from our
Prefect server to show where the time goes. Prints one markdown table and writes bench/out/mirror.json.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from pull_bench import MIB, TOOL, Run, machine_info, process_cpu_s, run_measured, skopeo_env  # noqa: E402
from push_bench import BLOB_INFO_CACHE, api_post, our_api_url, ping_agent, server_info  # noqa: E402
from rig.images import BuiltImage, build_image  # noqa: E402
from rig.registry import RunningRegistry, start_plain_registry  # noqa: E402
from rig.skopeo import copy_layout_to_registry  # noqa: E402
from rig.throttle_http import ThrottlingHttpProxy  # noqa: E402

from docker_image_pusher.agent._client import _fingerprint as agent_fingerprint  # noqa: E402  (no Prefect import)
from docker_image_pusher.server import state_dir as default_state_dir  # noqa: E402

OUT_JSON = ROOT / "bench" / "out" / "mirror.json"
SMALL_IMAGES = 20
SMALL_LAYERS = [256 * 1024] * 3
BIG_LAYERS = [64 * MIB] * 4
TAG = "v1"
MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)

SKOPEO, OURS, FLOOR, FLOOR_DIRECT = "skopeo", "ours", "floor", "floor-direct"
S1, S2, S3, S4 = "small-first", "small-unchanged", "big-first", "small-one-changed"
DRY20, DRY1, DRY1_NOPYC = "dry-20", "dry-1", "dry-1-no-pyc"
TITLES = {
    S1: f"1. {SMALL_IMAGES} small images, first copy",
    S2: f"2. {SMALL_IMAGES} small images, nothing changed",
    S3: "3. one big image (4 x 64 MiB), first copy",
    S4: f"4. {SMALL_IMAGES} small images, 1 changed",
    DRY20: f"fixed cost: mirror --dry-run, {SMALL_IMAGES} unchanged",
    DRY1: "fixed cost: mirror --dry-run, 1 image",
    DRY1_NOPYC: "fixed cost: mirror --dry-run, 1 image, no .pyc files",
}
ORDER = (S1, S2, S3, S4, DRY20, DRY1, DRY1_NOPYC)


# -- requests, from a registry's access log ---------------------------------------------------------------------

_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>/v2/\S*) HTTP/[\d.]+" (?P<status>\d{3}) (?P<size>\d+|-) ')


@dataclass
class Requests:
    """What one run asked of one registry (its access log: one line per finished request)."""

    manifest_get: int = 0
    manifest_head: int = 0
    manifest_put: int = 0
    blob_get: int = 0
    blob_head: int = 0
    blob_get_bytes: int = 0  # response bodies of blob GETs
    uploads: int = 0  # blob uploads completed (PUT .../blobs/uploads/ID?digest=)
    upload_bytes: int = 0  # the sizes of those blobs
    mounts: int = 0
    other: int = 0


def count_requests(log: str, sizes: dict[str, int]) -> Requests:
    counts = Requests()
    for match in _ACCESS.finditer(log):
        method, target, status = match["method"], match["path"], int(match["status"])
        path, _, query = target.partition("?")
        if "/manifests/" in path:
            if method == "GET":
                counts.manifest_get += 1
            elif method == "HEAD":
                counts.manifest_head += 1
            elif method == "PUT":
                counts.manifest_put += 1
            else:
                counts.other += 1
        elif "/blobs/uploads/" in path:
            params = urllib.parse.parse_qs(query)
            if method == "POST" and "mount" in params and status == 201:
                counts.mounts += 1
            elif method == "PUT" and "digest" in params and status == 201:
                counts.uploads += 1
                counts.upload_bytes += sizes.get(params["digest"][0], 0)
        elif "/blobs/" in path:
            if method == "GET":
                counts.blob_get += 1
                counts.blob_get_bytes += int(match["size"]) if match["size"] != "-" else 0
            elif method == "HEAD":
                counts.blob_head += 1
            else:
                counts.other += 1
        elif path != "/v2/":
            counts.other += 1
    return counts


class LogCursor:
    """The part of a registry's access log written since the cursor was made."""

    def __init__(self, registry: RunningRegistry) -> None:
        self.registry = registry
        self.offset = len(registry.log_text())

    def requests(self, sizes: dict[str, int]) -> Requests:
        return count_requests(self.registry.log_text()[self.offset :], sizes)


# -- what our flows did, from our Prefect server -------------------------------------------------------------------


def _when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _union_s(spans: list[tuple[dt.datetime, dt.datetime]]) -> float:
    total, end = 0.0, None
    for start, stop in sorted(spans):
        if end is None or start > end:
            total += (stop - start).total_seconds()
            end = stop
        elif stop > end:
            total += (stop - end).total_seconds()
            end = stop
    return total


@dataclass
class Phases:
    """The flow and task runs of one run of ours, as our Prefect server recorded them."""

    flow_runs: int
    task_runs: int
    mirror_s: float  # the mirror flow run (the parent), start to end
    check_s: float  # union of its check-image task runs (HEADs at both registries)
    images_s: float  # union of the mirror-image child flow runs
    pull_blob_s: float  # union of the pull-blob task runs
    push_blob_s: float  # union of the push-blob task runs
    idle_s: float  # in the mirror flow run, neither a check-image task nor a child run going on
    task_sum_s: float  # every task run's duration, summed
    by_task: dict[str, tuple[int, float]] = field(default_factory=dict)  # task function -> (runs, seconds summed)


def prefect_phases(api: str, cache_dir: Path, since: dt.datetime, wait_s: float = 8.0) -> Phases | None:
    """The flow runs that started after `since` with this cache_dir parameter (unique per chain here), and their
    task runs. Task runs reach the server through events a moment after the flow returned: poll until every run
    has ended and their number holds still."""
    wanted = str(cache_dir.resolve())
    deadline = time.monotonic() + wait_s
    last: tuple[int, int] | None = None
    runs: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    while True:
        body = {"flow_runs": {"start_time": {"after_": since.isoformat()}}, "sort": "START_TIME_ASC", "limit": 200}
        found = api_post(api, "/flow_runs/filter", body)
        runs = [r for r in found if str(Path(str(r["parameters"].get("cache_dir", ""))).resolve()) == wanted]
        tasks = []
        if runs:
            ids = [r["id"] for r in runs]
            while True:
                page = api_post(
                    api, "/task_runs/filter", {"flow_runs": {"id": {"any_": ids}}, "limit": 200, "offset": len(tasks)}
                )
                tasks += page
                if len(page) < 200:
                    break
        done = bool(runs) and all(r["end_time"] for r in runs + tasks)
        if done and last == (len(runs), len(tasks)):
            break
        if time.monotonic() > deadline:
            if not done:
                return None
            break
        last = (len(runs), len(tasks)) if done else None
        time.sleep(0.4)

    def spans(items: list[dict[str, Any]]) -> list[tuple[dt.datetime, dt.datetime]]:
        return [(_when(i["start_time"]), _when(i["end_time"])) for i in items if i["start_time"] and i["end_time"]]

    def stem(task: dict[str, Any]) -> str:
        return str(task.get("task_key") or task["name"]).rpartition("-")[0] or str(task["name"])

    parents = [r for r in runs if r["parameters"].get("spec") is not None]
    children = [r for r in runs if r["parameters"].get("spec") is None]
    by_task: dict[str, tuple[int, float]] = {}
    for task in tasks:
        span = spans([task])
        seconds = (span[0][1] - span[0][0]).total_seconds() if span else 0.0
        count, total = by_task.get(stem(task), (0, 0.0))
        by_task[stem(task)] = (count + 1, total + seconds)
    parent_spans = spans(parents)
    checks = spans([t for t in tasks if t["name"].startswith("check-")])
    busy = _union_s(checks + spans(children))
    return Phases(
        flow_runs=len(runs),
        task_runs=len(tasks),
        mirror_s=sum((e - s).total_seconds() for s, e in parent_spans),
        check_s=_union_s(checks),
        images_s=_union_s(spans(children)),
        pull_blob_s=_union_s(spans([t for t in tasks if t["name"].startswith("pull-blob")])),
        push_blob_s=_union_s(spans([t for t in tasks if t["name"].startswith("push-blob")])),
        idle_s=max(0.0, sum((e - s).total_seconds() for s, e in parent_spans) - busy),
        task_sum_s=sum(total for _, total in by_task.values()),
        by_task=dict(sorted(by_task.items(), key=lambda kv: -kv[1][1])),
    )


# -- one timed run -------------------------------------------------------------------------------------------------


@dataclass
class MirrorRun:
    tool: str
    run: Run
    source: Requests  # from the source registry's access log
    dest: Requests  # from the destination registry's access log
    proxy_manifest_get: int | None = None  # as the proxy in front of the source counted them (if it can)
    proxy_manifest_head: int | None = None
    flow_s: float | None = None  # ours: the stats file's elapsed (the run, without the CLI's start-up)
    stats_bytes: int | None = None  # ours: bytes the stats file reports
    summary: str = ""  # ours: the CLI's last line
    agent_cpu_s: float | None = None
    server_cpu_s: float | None = None
    cold_agent: bool = False  # the run had to start an agent (the project's code changed under the bench)
    problem: str = ""  # the destination does not hold what the source does after the run, or a failure
    phases: Phases | None = None

    @property
    def ok(self) -> bool:
        return self.run.ok and not self.problem

    @property
    def wall_s(self) -> float:
        return self.run.wall_s

    @property
    def cpu_total_s(self) -> float:
        return self.run.cpu_s + (self.agent_cpu_s or 0.0) + (self.server_cpu_s or 0.0)


@dataclass
class Scenario:
    key: str
    runs: dict[str, list[MirrorRun]] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return TITLES[self.key]

    def add(self, tool: str, run: MirrorRun) -> None:
        self.runs.setdefault(tool, []).append(run)

    def counted(self, tool: str) -> list[MirrorRun]:
        good = [r for r in self.runs.get(tool, []) if r.ok]
        return [r for r in good if not r.cold_agent] or good

    def median(self, tool: str) -> MirrorRun | None:
        good = sorted(self.counted(tool), key=lambda r: r.wall_s)
        return good[(len(good) - 1) // 2] if good else None

    def wall(self, tool: str) -> float | None:
        best = self.median(tool)
        return best.wall_s if best else None

    def median_of(self, tool: str, get: Callable[[MirrorRun], float | None]) -> float | None:
        values = [v for v in (get(r) for r in self.counted(tool)) if v is not None]
        return statistics.median(values) if values else None

    def failed(self, tool: str) -> list[MirrorRun]:
        return [r for r in self.runs.get(tool, []) if not r.ok]

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "wall_s": {tool: self.wall(tool) for tool in self.runs},
            "runs": {tool: [asdict(r) for r in runs] for tool, runs in self.runs.items()},
        }


@dataclass
class Chain:
    """A destination that one tool keeps across scenarios 1 (last run), 2 and 4, with that tool's own cache."""

    registry: RunningRegistry
    cache: Path  # ours: --cache-dir; skopeo: its blob info cache folder


# -- the benchmark -------------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.repeat: int = args.repeat
        self.counter = 0
        self.skopeo_flags, self.skopeo_env = skopeo_env(workdir)
        self.our_env = dict(os.environ)
        if args.state_dir:
            self.our_env["DOCKER_IMAGE_PUSHER_STATE_DIR"] = str(Path(args.state_dir).absolute())
        # Bytecode: an installed tool has .pyc files (pip compiles at install, Python caches on first import).
        # This machine's environment sets PYTHONDONTWRITEBYTECODE=1 and the venv has none, so every process of
        # ours would compile its modules again (~0.6 s a process). Our processes get a bytecode cache of their
        # own (PYTHONPYCACHEPREFIX, in the working dir: nothing is written next to the sources), filled by the
        # untimed warm-up; one row runs without any (an empty prefix that is never written to).
        self.no_pyc_env = self.our_env | {"PYTHONDONTWRITEBYTECODE": "1"}
        self.no_pyc_env["PYTHONPYCACHEPREFIX"] = str(self.fresh("no-pycache"))
        if not args.no_bytecode_cache:
            self.our_env.pop("PYTHONDONTWRITEBYTECODE", None)
            self.our_env["PYTHONPYCACHEPREFIX"] = str(self.fresh("pycache"))
        self.state_dir = Path(args.state_dir).absolute() if args.state_dir else default_state_dir()
        self.isolate_skopeo = self._probe_unshare()
        self.source: RunningRegistry | None = None
        self.proxy: ThrottlingHttpProxy | None = None
        self.registries: list[RunningRegistry] = []
        self.sizes: dict[str, int] = {}  # digest -> size of every blob and manifest built
        self.small: dict[str, str] = {}  # repository -> manifest digest at the source now
        self.big: BuiltImage | None = None
        self.scenarios: dict[str, Scenario] = {k: Scenario(k) for k in TITLES}
        self.extra: dict[str, Any] = {}
        self.notes: list[str] = []

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def fresh(self, label: str) -> Path:
        self.counter += 1
        path = self.workdir / "scratch" / f"{self.counter:03d}-{label}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _probe_unshare(self) -> bool:
        """Root's skopeo keeps a blob info cache in /var/lib/containers/cache that outlives a run; a private mount
        namespace gives each destination chain its own (as push_bench does)."""
        if os.geteuid() != 0 or not shutil.which("unshare"):
            return False
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
        return probe.returncode == 0

    @property
    def src(self) -> RunningRegistry:
        assert self.source is not None
        return self.source

    @property
    def src_host(self) -> str:
        """Where the tools read the source: the proxy (counting), or the registry itself with --no-proxy."""
        return self.proxy.host if self.proxy is not None else self.src.host

    # -- setup

    def setup(self) -> None:
        self.source = start_plain_registry(self.workdir / "source", access_log=True)
        self.registries.append(self.source)
        if not self.args.no_proxy:
            self.proxy = ThrottlingHttpProxy(self.source, max_transfers=None).start()
        self.log(f"source registry {self.src.url}, read through {self.src_host}; building and pushing images")
        started = time.perf_counter()
        for number in range(1, SMALL_IMAGES + 1):
            self.push_small(number, seed=f"small-{number}")
        self.log(f"  {SMALL_IMAGES} x {len(SMALL_LAYERS)} x 256 KiB: {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        self.big = self.push_image("bench/big", BIG_LAYERS, seed="big")
        self.log(f"  big, {len(BIG_LAYERS)} x 64 MiB: {time.perf_counter() - started:.1f} s")
        self.push_image("bench/warm", [4096], seed="warm")

    def push_image(self, repository: str, layers: list[int], *, seed: str) -> BuiltImage:
        layout = self.fresh("layout")
        image = build_image(layout, layers, seed=seed, random_source="urandom", compresslevel=1)
        copy_layout_to_registry(image, self.src, f"{repository}:{TAG}")
        for blob in (image.manifest, *image.blobs):
            self.sizes[blob.digest] = blob.size
        shutil.rmtree(layout, ignore_errors=True)
        return image

    def push_small(self, number: int, *, seed: str) -> None:
        repository = small_repo(number)
        self.small[repository] = self.push_image(repository, SMALL_LAYERS, seed=seed).manifest_digest

    def new_registry(self, label: str) -> RunningRegistry:
        registry = start_plain_registry(self.fresh(f"registry-{label}"), access_log=True)
        self.registries.append(registry)
        return registry

    def drop_registry(self, registry: RunningRegistry) -> None:
        registry.stop()
        with contextlib.suppress(ValueError):
            self.registries.remove(registry)
        shutil.rmtree(registry.workdir, ignore_errors=True)

    # -- specs and commands

    def sync_yaml(self, repositories: Sequence[str]) -> Path:
        path = self.fresh("sync") / "sync.yaml"
        lines = [f"{self.src_host}:", "  tls-verify: false", "  images:"]
        lines += [f"    {repo}: [{TAG}]" for repo in repositories]
        path.write_text("\n".join(lines) + "\n")
        return path

    def mirror_spec(self, repositories: Sequence[str], dest: RunningRegistry) -> Path:
        path = self.fresh("spec") / "mirror.yaml"
        lines = ["source:", f"  registry: http://{self.src_host}", "destination:", f"  registry: {dest.url}", "images:"]
        for repo in repositories:
            lines += [f"  - repository: {repo}", f"    tags: [{TAG}]"]
        path.write_text("\n".join(lines) + "\n")
        return path

    def skopeo_command(self, sync_yaml: Path, dest: RunningRegistry, blob_cache: Path) -> list[str]:
        sync = ["skopeo", *self.skopeo_flags, "sync", "--src", "yaml", "--dest", "docker", "--all"]
        sync += ["--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false"]
        sync += [str(sync_yaml), f"{dest.host}/bench"]
        blob_cache.mkdir(parents=True, exist_ok=True)
        if not self.isolate_skopeo:  # not root: the cache is $XDG_DATA_HOME/containers/cache
            return ["env", f"XDG_DATA_HOME={blob_cache}", *sync]
        script = 'mkdir -p "$1" && mount --bind "$2" "$1" && shift 2 && exec "$@"'
        wrapped = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
        return [*wrapped, str(BLOB_INFO_CACHE), str(blob_cache), *sync]

    def our_command(self, spec: Path, cache: Path, stats: Path, *extra: str) -> list[str]:
        argv = [str(TOOL), "mirror", str(spec), "--cache-dir", str(cache), "--disable-progress"]
        argv += ["--stats-file", str(stats), *extra]
        if self.args.images_at_once:
            argv += ["--images-at-once", str(self.args.images_at_once)]
        return argv

    # -- our server and agent

    def server_info(self) -> tuple[int, int] | None:
        return server_info(self.state_dir)

    def api_url(self) -> str | None:
        return our_api_url(self.our_env, self.state_dir)

    def current_agent(self) -> int | None:
        api = self.api_url()
        return ping_agent(self.state_dir / "agent" / f"{agent_fingerprint(api)}.sock") if api else None

    # -- running

    def proxy_counts(self) -> tuple[int | None, int | None]:
        """(manifest GETs, HEADs) the proxy has relayed so far, if this version of the rig's proxy counts them."""
        gets = getattr(self.proxy, "manifest_gets", None)
        heads = getattr(self.proxy, "manifest_heads", None)
        return (gets if isinstance(gets, int) else None, heads if isinstance(heads, int) else None)

    def run(
        self,
        tool: str,
        argv: list[str],
        *,
        dest: RunningRegistry,
        label: str,
        expect: dict[str, str] | None = None,
        cache: Path | None = None,
        stats: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> MirrorRun:
        """One whole process; `expect`: repository -> manifest digest the destination must hold afterwards."""
        scratch = self.fresh(re.sub(r"\W+", "-", label) + "-log")
        ours = tool == OURS
        if env is None:
            env = self.our_env if ours else self.skopeo_env if tool == SKOPEO else dict(os.environ)
        server = self.server_info() if ours else None
        agent = self.current_agent() if ours else None
        agent_cpu = process_cpu_s(agent) if agent else None
        server_cpu = process_cpu_s(server[0]) if server else None
        src_log, dest_log = LogCursor(self.src), LogCursor(dest)
        proxy_before = self.proxy_counts()
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=0.05)
        run = run_measured(argv, scratch=scratch, env=env, cwd=self.workdir)
        time.sleep(0.1)  # a registry logs a request when it ends: let the last lines land
        proxy_after = self.proxy_counts()
        result = MirrorRun(tool, run, src_log.requests(self.sizes), dest_log.requests(self.sizes))
        if proxy_before[0] is not None and proxy_after[0] is not None:
            result.proxy_manifest_get = proxy_after[0] - proxy_before[0]
        if proxy_before[1] is not None and proxy_after[1] is not None:
            result.proxy_manifest_head = proxy_after[1] - proxy_before[1]
        if ours:
            after = self.current_agent()
            result.cold_agent = after is None or after != agent
            if agent is not None and not result.cold_agent and agent_cpu is not None:
                now = process_cpu_s(agent)
                result.agent_cpu_s = now - agent_cpu if now is not None else None
            if server is not None and server_cpu is not None:
                now = process_cpu_s(server[0])
                result.server_cpu_s = now - server_cpu if now is not None else None
            lines = run.stdout_tail.strip().splitlines()
            result.summary = lines[-1] if lines else ""
            if stats is not None and stats.exists():
                with contextlib.suppress(ValueError, OSError):
                    data = json.loads(stats.read_text())
                    result.flow_s = float(data.get("elapsed")) if data.get("elapsed") is not None else None
                    result.stats_bytes = int(data["bytes"]) if data.get("bytes") is not None else None
            api = self.api_url()
            if api and cache is not None and run.ok:
                try:
                    result.phases = prefect_phases(api, cache, since)
                except (OSError, ValueError, KeyError, TypeError) as err:
                    self.log(f"      (no flow and task runs from {api}: {err})")
        if not run.ok:
            result.problem = f"exit {run.exit_code}" + (" (timeout)" if run.timed_out else "")
        elif expect:
            result.problem = self.check_dest(dest, expect)
        text = f"    {label}: {run.wall_s:.2f} s"
        if result.flow_s is not None:
            text += f" (flow {result.flow_s:.2f} s)"
        text += (
            f", source manifest GET/HEAD {result.source.manifest_get}/{result.source.manifest_head}, "
            f"{result.source.blob_get} blob GETs {result.source.blob_get_bytes / MIB:.1f} MiB, "
            f"dest {result.dest.uploads} uploads {result.dest.upload_bytes / MIB:.1f} MiB"
        )
        text += ", STARTED A NEW AGENT" if result.cold_agent else ""
        text += f", PROBLEM: {result.problem}" if result.problem else ", ok"
        self.log(text)
        if not run.ok:
            self.log("      " + (run.stderr_tail or run.stdout_tail).strip().replace("\n", "\n      ")[-1500:])
        return result

    def check_dest(self, dest: RunningRegistry, expect: dict[str, str]) -> str:
        """'' if every repository's tag at the destination has the expected manifest digest."""
        wrong: list[str] = []
        for repo, digest in expect.items():
            request = urllib.request.Request(
                f"{dest.url}/v2/{repo}/manifests/{TAG}", method="HEAD", headers={"Accept": MANIFEST_ACCEPT}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    got = response.headers.get("Docker-Content-Digest")
            except urllib.error.HTTPError as err:
                got = f"HTTP {err.code}"
            if got != digest:
                wrong.append(f"{repo}: {got}")
        return f"destination differs: {', '.join(wrong[:3])}" + (" ..." if len(wrong) > 3 else "") if wrong else ""

    def ours_with_retry(self, make: Callable[[], MirrorRun], scenario: Scenario) -> MirrorRun:
        """A run of ours that had to start a new agent (the code changed under the bench) is kept, not counted,
        and made again (`make` prepares a fresh start each time), up to twice."""
        for _ in range(3):
            result = make()
            scenario.add(OURS, result)
            if not result.cold_agent or not result.run.ok:
                break
            self.log("      (not counted: repeated with the agent now warm)")
        return result

    # -- steps

    def warm_up(self) -> None:
        self.log("warm-up (untimed): starts our Prefect server and agent if needed, runs mirror and mirror-image")
        status = subprocess.run(
            [str(TOOL), "server", "status"], capture_output=True, text=True, env=self.our_env, check=False
        )
        dest = self.new_registry("warm")
        cache = self.fresh("warm-cache")
        spec = self.mirror_spec(["bench/warm"], dest)
        runs = []
        for label, extra in (("copy", ()), ("dry run", ("--dry-run",)), ("unchanged", ())):
            stats = self.fresh("warm-stats") / "stats.json"
            result = self.run(OURS, self.our_command(spec, cache, stats, *extra), dest=dest, label=f"warm-up {label}")
            runs.append(result)
        skopeo = self.run(
            SKOPEO,
            self.skopeo_command(self.sync_yaml(["bench/warm"]), dest, self.fresh("warm-blob-cache")),
            dest=dest,
            label="warm-up skopeo sync",
        )
        self.drop_registry(dest)
        self.extra["warm_up"] = {
            "server_status_before": (status.stdout or status.stderr).strip(),
            "ours": [asdict(r) for r in runs],
            "skopeo": asdict(skopeo),
        }

    def first_copy(self, key: str, repositories: dict[str, str]) -> tuple[Chain, Chain]:
        """Scenario 1 or 3: each run into a fresh destination (and fresh caches); returns the last runs' chains."""
        scenario = self.scenarios[key]
        self.log(TITLES[key])
        chains: dict[str, Chain] = {}
        sync_yaml = self.sync_yaml(list(repositories))

        def skopeo(label: str) -> None:
            dest, cache = self.new_registry("skopeo"), self.fresh("blob-info-cache")
            scenario.add(
                SKOPEO,
                self.run(SKOPEO, self.skopeo_command(sync_yaml, dest, cache), dest=dest, label=label,
                         expect=repositories),
            )  # fmt: skip
            self._replace_chain(chains, SKOPEO, Chain(dest, cache))

        def ours(label: str) -> None:
            def make() -> MirrorRun:
                dest, cache = self.new_registry("ours"), self.fresh("cache")
                stats = self.fresh("stats") / "stats.json"
                spec = self.mirror_spec(list(repositories), dest)
                result = self.run(OURS, self.our_command(spec, cache, stats), dest=dest, label=label,
                                  expect=repositories, cache=cache, stats=stats)  # fmt: skip
                self._replace_chain(chains, OURS, Chain(dest, cache))
                return result

            self.ours_with_retry(make, scenario)

        for round_ in range(self.repeat):
            order = [(skopeo, "skopeo sync"), (ours, "ours")]
            for step, name in order if round_ % 2 == 0 else reversed(order):
                step(f"#{round_ + 1} {name}")
            if key == S3:
                self.floor(scenario, round_)
        return chains[SKOPEO], chains[OURS]

    def _replace_chain(self, chains: dict[str, Chain], tool: str, chain: Chain) -> None:
        old = chains.get(tool)
        if old is not None:
            self.drop_registry(old.registry)
            shutil.rmtree(old.cache, ignore_errors=True)
        chains[tool] = chain

    def again(self, key: str, chains: tuple[Chain, Chain], change: Callable[[int], None] | None = None) -> None:
        """Scenario 2 (nothing changed) or 4 (change(round) retags one source image first): the same
        destinations, our same cache and skopeo's same blob info cache as the last first copy."""
        scenario = self.scenarios[key]
        self.log(TITLES[key])
        skopeo_chain, our_chain = chains
        sync_yaml = self.sync_yaml(list(self.small))
        spec = self.mirror_spec(list(self.small), our_chain.registry)
        for round_ in range(self.repeat):
            if change is not None:
                change(round_)
            expected = dict(self.small)

            def skopeo(label: str, expect: dict[str, str] = expected) -> None:
                argv = self.skopeo_command(sync_yaml, skopeo_chain.registry, skopeo_chain.cache)
                scenario.add(SKOPEO, self.run(SKOPEO, argv, dest=skopeo_chain.registry, label=label, expect=expect))

            def ours(label: str, expect: dict[str, str] = expected) -> None:
                def make() -> MirrorRun:
                    stats = self.fresh("stats") / "stats.json"
                    argv = self.our_command(spec, our_chain.cache, stats)
                    return self.run(OURS, argv, dest=our_chain.registry, label=label, expect=expect,
                                    cache=our_chain.cache, stats=stats)  # fmt: skip

                if change is None:
                    self.ours_with_retry(make, scenario)
                else:  # a repeat would find nothing to copy: keep the run, flagged if it started an agent
                    scenario.add(OURS, make())

            order = [(skopeo, "skopeo sync"), (ours, "ours")]
            for step, name in order if round_ % 2 == 0 else reversed(order):
                step(f"#{round_ + 1} {name}")

    def change_one(self, round_: int) -> None:
        number = round_ % SMALL_IMAGES + 1
        self.push_small(number, seed=f"changed-{round_}")
        self.log(f"  source: {small_repo(number)}:{TAG} now has 3 new layers ({self.small[small_repo(number)][:19]})")

    def floor(self, scenario: Scenario, round_: int) -> None:
        """curl: GET every blob and the manifest from the source, PUT each monolithically to a fresh destination,
        one at a time, streamed through a pipe; the upload sessions are opened (POST) before the clock starts."""
        assert self.big is not None
        big = self.big
        sources = [(FLOOR, self.src_host)] + ([(FLOOR_DIRECT, self.src.host)] if self.proxy is not None else [])
        for tool, host in sources:
            dest = self.new_registry("floor")
            script = ["set -e"]
            for blob in big.blobs:
                request = urllib.request.Request(f"{dest.url}/v2/bench/big/blobs/uploads/", method="POST", data=b"")
                with urllib.request.urlopen(request, timeout=30) as response:
                    location = response.headers["Location"]
                if location.startswith("/"):
                    location = dest.url + location
                put = f"{location}{'&' if '?' in location else '?'}digest={blob.digest}"
                script.append(
                    f"curl -sSf 'http://{host}/v2/bench/big/blobs/{blob.digest}' | "
                    f"curl -sSf -o /dev/null -T - -H 'Content-Type: application/octet-stream' -X PUT '{put}'"
                )
            media = big.manifest.media_type
            script.append(
                f"curl -sSf -H 'Accept: {media}' 'http://{host}/v2/bench/big/manifests/{TAG}' | "
                f"curl -sSf -o /dev/null -T - -H 'Content-Type: {media}' -X PUT "
                f"'{dest.url}/v2/bench/big/manifests/{TAG}'"
            )
            name = "curl floor" + (" (source direct, no proxy)" if tool == FLOOR_DIRECT else "")
            result = self.run(
                tool,
                ["sh", "-c", "\n".join(script)],
                dest=dest,
                label=f"#{round_ + 1} {name}",
                expect={"bench/big": big.manifest_digest},
            )
            scenario.add(tool, result)
            self.drop_registry(dest)

    def dry_runs(self, our_chain: Chain) -> None:
        """Our fixed cost: --dry-run over the 20 unchanged images, and over 1, with the chain's cache."""
        first = list(self.small)[:1]
        for key, repositories, env in (
            (DRY20, list(self.small), self.our_env),
            (DRY1, first, self.our_env),
            (DRY1_NOPYC, first, self.no_pyc_env),
        ):
            scenario = self.scenarios[key]
            self.log(TITLES[key])
            spec = self.mirror_spec(repositories, our_chain.registry)
            for round_ in range(self.repeat):

                def make(round_: int = round_, spec: Path = spec, env: dict[str, str] = env) -> MirrorRun:
                    stats = self.fresh("stats") / "stats.json"
                    argv = self.our_command(spec, our_chain.cache, stats, "--dry-run")
                    return self.run(OURS, argv, dest=our_chain.registry, label=f"#{round_ + 1} ours --dry-run",
                                    cache=our_chain.cache, stats=stats, env=env)  # fmt: skip

                self.ours_with_retry(make, scenario)

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for registry in list(self.registries):
            registry.stop()


def small_repo(number: int) -> str:
    return f"bench/small-{number:02d}"


# -- output --------------------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def _manifests(run: MirrorRun | None) -> str:
    return "-" if run is None else f"{run.source.manifest_get} / {run.source.manifest_head}"


def _mib(run: MirrorRun | None) -> str:
    if run is None:
        return "-"
    return f"{run.source.blob_get_bytes / MIB:.1f} / {run.dest.upload_bytes / MIB:.1f}"


def render(bench: Bench, info: dict[str, Any], total_s: float) -> str:
    lines = [
        f"date: {info['date']}; machine: {info['nproc']} cores ({info['cpu']}), {info['mem_total_mib']} MiB RAM, "
        f"Debian 12, Python {info['python']}, {info['skopeo']}, {info['registry']}, "
        f"{info['curl'].split(' (')[0]}; load average before/after: {bench.extra.get('load', '?')}; "
        f"medians of {bench.repeat}; source read through "
        + ("the rig's ThrottlingHttpProxy (no throttling)" if bench.proxy is not None else "no proxy (--no-proxy)")
        + "; ours "
        + ("as the environment is (no .pyc unless it has them)" if bench.args.no_bytecode_cache else "with .pyc files")
        + f"; bench total {total_s / 60:.1f} min",
        "",
        "| scenario | skopeo sync s | ours s | ours/skopeo | floor s | ours/floor | skopeo/floor "
        "| source manifest GET / HEAD: skopeo | ours | blob MiB from source / to dest: skopeo | ours "
        "| CPU s: skopeo | ours (CLI + agent + server) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in ORDER:
        sc = bench.scenarios[key]
        if not sc.runs:
            continue
        skopeo, ours = sc.median(SKOPEO), sc.median(OURS)

        def wall(tool: str, sc: Scenario = sc) -> str:
            return "FAILED" if sc.failed(tool) and not sc.counted(tool) else _fmt(sc.wall(tool))

        lines.append(
            f"| {sc.title} | {wall(SKOPEO) if SKOPEO in sc.runs else '-'} | {wall(OURS)} "
            f"| {_ratio(sc.wall(OURS), sc.wall(SKOPEO))} | {_fmt(sc.wall(FLOOR))} "
            f"| {_ratio(sc.wall(OURS), sc.wall(FLOOR))} | {_ratio(sc.wall(SKOPEO), sc.wall(FLOOR))} "
            f"| {_manifests(skopeo)} | {_manifests(ours)} | {_mib(skopeo)} | {_mib(ours)} "
            f"| {_fmt(sc.median_of(SKOPEO, lambda r: r.run.cpu_s))} "
            f"| {_fmt(sc.median_of(OURS, lambda r: r.cpu_total_s))} |"
        )
    lines.append("")
    lines += [summary(bench), ""]
    lines += notes(bench)
    return "\n".join(lines)


def summary(bench: Bench) -> str:
    """The one-paragraph note under the table, from the figures above it."""
    sc = bench.scenarios
    parts: list[str] = []

    def ratio(key: str) -> float | None:
        ours, skopeo = sc[key].wall(OURS), sc[key].wall(SKOPEO)
        return ours / skopeo if ours and skopeo else None

    first, same, big, one = ratio(S1), ratio(S2), ratio(S3), ratio(S4)
    if first is not None and same is not None and one is not None:
        parts.append(
            f"On {SMALL_IMAGES} small images ours takes {first:.1f}x skopeo sync's time for the first copy, "
            f"{same:.1f}x when nothing changed and {one:.1f}x when one image changed"
        )
    best = sc[S1].median(OURS)
    if best is not None and best.phases is not None and best.phases.mirror_s > 0:
        p = best.phases
        parts.append(
            f"in the first copy the mirror flow run spends {p.idle_s:.1f} of its {p.mirror_s:.1f} s with neither a "
            f"check nor a child run going on (creating the next mirror-image child run, see bench/README.md), its "
            f"{p.flow_runs - 1} child runs cover {p.images_s:.1f} s, and their blob tasks only "
            f"{p.pull_blob_s:.1f} s (pull) and {p.push_blob_s:.1f} s (push)"
        )
    floor = sc[S3].wall(FLOOR)
    if big is not None and floor:
        ours = sc[S3].wall(OURS) or 0.0
        parts.append(
            f"for one 256 MiB image the gap is {big:.1f}x skopeo and {ours / floor:.1f}x the curl floor, "
            f"skopeo itself at {(sc[S3].wall(SKOPEO) or 0.0) / floor:.1f}x the floor"
        )
    s2_skopeo, s2_ours = sc[S2].median(SKOPEO), sc[S2].median(OURS)
    if s2_skopeo is not None and s2_ours is not None:
        parts.append(
            f"what ours does better is ask the source: an unchanged run costs it {s2_ours.source.manifest_get} "
            f"manifest GETs and {s2_ours.source.manifest_head} HEADs, skopeo's {s2_skopeo.source.manifest_get} GETs "
            f"(each counts against Docker Hub's pull limit, a HEAD does not)"
        )
    dry1, nopyc, dry20 = sc[DRY1].median(OURS), sc[DRY1_NOPYC].median(OURS), sc[DRY20].median(OURS)
    if dry1 is not None and dry1.flow_s is not None:
        text = (
            f"the fixed cost of a run of ours is {dry1.wall_s:.2f} s for one image, of which the flow run "
            f"(Prefect's per-run cost plus 2 HEADs) is {dry1.flow_s:.2f} s and the rest the CLI process "
            f"(imports, hand-off to the agent)"
        )
        if nopyc is not None:
            text += f", {nopyc.wall_s:.2f} s without .pyc files as in this environment"
        if dry20 is not None:
            text += f"; {dry20.wall_s:.2f} s to check {SMALL_IMAGES} images"
        parts.append(text)
    if not parts:
        return "Too many runs failed for a summary."
    return "What it says: " + "; ".join(parts) + "."


def notes(bench: Bench) -> list[str]:
    out: list[str] = []
    warm = bench.extra.get("warm_up")
    if warm:
        walls = ", ".join(f"{r['run']['wall_s']:.2f}" for r in warm["ours"])
        before = warm["server_status_before"].splitlines()[0] if warm["server_status_before"] else "?"
        out.append(f"- warm-up (untimed): ours copy, dry run, unchanged: {walls} s; server before: {before}")
    s3 = bench.scenarios[S3]
    direct, floor = s3.wall(FLOOR_DIRECT), s3.wall(FLOOR)
    if floor is not None:
        size = sum(b.size for b in bench.big.blobs) if bench.big else 0
        text = (
            f"- floor (scenario 3): {floor:.2f} s = {size / MIB / floor:.0f} MiB/s, reading the source as the tools do"
        )
        if direct is not None:
            text += f"; straight from the source registry (no proxy): {direct:.2f} s ({size / MIB / direct:.0f} MiB/s)"
        out.append(text)
    # source counts: the proxy's against the access log
    compared = mismatched = 0
    for sc in bench.scenarios.values():
        for tool, runs in sc.runs.items():
            for r in runs:
                if tool == FLOOR_DIRECT or r.proxy_manifest_get is None or r.proxy_manifest_head is None:
                    continue
                compared += 1
                if (r.proxy_manifest_get, r.proxy_manifest_head) != (r.source.manifest_get, r.source.manifest_head):
                    mismatched += 1
    if compared:
        out.append(
            "- source manifest counts: the proxy's counters and the source registry's access log "
            + ("agree" if not mismatched else f"DISAGREE in {mismatched}")
            + f" over {compared} runs"
        )
    elif bench.proxy is not None:
        out.append("- source manifest counts from the source registry's access log (this rig's proxy has no counters)")
    for key in ORDER:
        sc = bench.scenarios[key]
        best = sc.median(OURS)
        if best is None:
            continue
        out.append(f"- {sc.title}, ours (median run): " + where_time_goes(best))
        skopeo = sc.median(SKOPEO)
        if skopeo is not None and key in (S1, S2, S4):
            out.append(
                f"  requests: skopeo source {skopeo.source.manifest_get} manifest GETs, {skopeo.source.blob_get} blob "
                f"GETs; dest {skopeo.dest.manifest_get} manifest GETs, {skopeo.dest.manifest_head} manifest HEADs, "
                f"{skopeo.dest.blob_head} blob HEADs, {skopeo.dest.uploads} uploads | ours source "
                f"{best.source.manifest_get} GETs + {best.source.manifest_head} HEADs, "
                f"{best.source.blob_get} blob GETs; "
                f"dest {best.dest.manifest_get} manifest GETs, {best.dest.manifest_head} manifest HEADs, "
                f"{best.dest.blob_head} blob HEADs, {best.dest.uploads} uploads"
            )
    varying = []
    for sc in bench.scenarios.values():
        for tool in sc.runs:
            seen = {(r.source.manifest_get, r.source.manifest_head) for r in sc.counted(tool)}
            if len(seen) > 1:
                varying.append(f"{sc.title} / {tool}: {sorted(seen)}")
    if varying:
        out.append("- source manifest GET/HEAD varied between runs: " + "; ".join(varying))
    cold = [f"{sc.title}: {sum(r.cold_agent for r in sc.runs.get(OURS, []))}" for sc in bench.scenarios.values()]
    cold = [c for c in cold if not c.endswith(": 0")]
    if cold:
        out.append("- runs of ours that had to start a new agent (code changed during the bench): " + "; ".join(cold))
    if not bench.isolate_skopeo and os.geteuid() == 0:
        out.append("- skopeo's blob info cache was NOT isolated per destination (no unshare)")
    for sc in bench.scenarios.values():
        for tool in sc.runs:
            for r in sc.failed(tool):
                text = (r.run.stderr_tail or r.run.stdout_tail).strip()[-600:]
                out.append(f"\nFAILED {sc.title} / {tool}: {r.problem}\n```\n{text}\n```")
    return out


def where_time_goes(r: MirrorRun) -> str:
    text = f"wall {r.wall_s:.2f} s"
    if r.flow_s is not None:
        text += f" = CLI outside the run {r.wall_s - r.flow_s:.2f} + run {r.flow_s:.2f}"
    p = r.phases
    if p is not None:
        text += (
            f"; server's record: mirror flow {p.mirror_s:.2f} s (check-image tasks {p.check_s:.2f}, "
            f"{p.flow_runs - 1} mirror-image runs {p.images_s:.2f}: pull-blob tasks {p.pull_blob_s:.2f}, "
            f"push-blob tasks {p.push_blob_s:.2f}; neither going on {p.idle_s:.2f}); {p.task_runs} task runs, "
            f"{p.task_sum_s:.2f} s summed"
        )
        top = ", ".join(
            f"{name} {count} x {secs / count * 1000:.0f} ms" for name, (count, secs) in list(p.by_task.items())[:4]
        )
        if top:
            text += f" (longest: {top})"
    text += f"; CPU s: CLI {r.run.cpu_s:.2f}, agent {_fmt(r.agent_cpu_s)}, server {_fmt(r.server_cpu_s)}"
    return text


# -- main ----------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _removed(path: Path) -> Iterator[Path]:
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement [default: 3]")
    parser.add_argument("--state-dir", help="DOCKER_IMAGE_PUSHER_STATE_DIR for our tool [default: the user's]")
    parser.add_argument("--stop-server", action="store_true", help="stop our Prefect server and agent at the end")
    parser.add_argument("--tmp-dir", help="where the temp working dir goes (a tmpfs is best) [default: system temp]")
    parser.add_argument("--no-proxy", action="store_true", help="tools read the source registry directly")
    parser.add_argument("--images-at-once", type=int, help="pass --images-at-once N to ours [default: the CLI's]")
    parser.add_argument(
        "--no-bytecode-cache", action="store_true", help="run ours as the environment is (PYTHONDONTWRITEBYTECODE...)"
    )
    parser.add_argument("--json", default=str(OUT_JSON), help=f"results file [default: {OUT_JSON}]")
    args = parser.parse_args(argv)

    if not TOOL.exists():
        print(f"{TOOL} is missing: run `make setup` first", file=sys.stderr)
        return 2
    info = machine_info()
    started = time.perf_counter()
    with _removed(Path(tempfile.mkdtemp(prefix="mirror-bench-", dir=args.tmp_dir))) as workdir:
        bench = Bench(args, workdir)
        try:
            bench.log(f"working dir {workdir}")
            bench.setup()
            load_before = os.getloadavg()[0]
            bench.warm_up()
            chains = bench.first_copy(S1, dict(bench.small))
            bench.again(S2, chains)
            bench.again(S4, chains, change=bench.change_one)
            bench.dry_runs(chains[1])
            assert bench.big is not None
            bench.first_copy(S3, {"bench/big": bench.big.manifest_digest})
            bench.extra["load"] = f"{load_before:.2f}/{os.getloadavg()[0]:.2f}"
        finally:
            bench.stop()
            if args.stop_server:
                subprocess.run([str(TOOL), "server", "stop"], env=bench.our_env, check=False)
    total_s = time.perf_counter() - started
    table = render(bench, info, total_s)
    print(table)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": info,
        "args": vars(args),
        "repeat": bench.repeat,
        "total_s": total_s,
        "skopeo_blob_info_cache_isolated": bench.isolate_skopeo or os.geteuid() != 0,
        "scenarios": [sc.to_json() for sc in bench.scenarios.values()],
        **bench.extra,
        "table": table,
    }
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    bench.log(f"\nwrote {out}")
    ok = all(not sc.failed(tool) for sc in bench.scenarios.values() for tool in sc.runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

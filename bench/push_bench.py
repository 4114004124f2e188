"""Push benchmark: our `docker-image-pusher push` of docker-archive tars against `skopeo copy` and curl.

    .venv/bin/python bench/push_bench.py [--quick] [--repeat N] [--state-dir DIR] [--stop-server]

Starts a plain local registry (tests/rig, loopback HTTP, no auth, access log on), builds two docker-archive
tars with the rig and skopeo (one 512 MiB layer; 40 layers of 256 KiB), then, interleaved, --repeat times
(median shown), each into a fresh repository and a fresh cache:

- `skopeo copy docker-archive:TAR docker://HOST/REPO:v1` (its blob info cache isolated per run);
- ours, mode 4: `push -s TAR HOST/REPO:v1` (extract into the cache, then push; the whole process);
- ours `extract -f TAR`, then ours, mode 3: `push -s bench/NAME:v1` from that cache to another repository;
- (512 MiB only) curl: POST an upload, then one monolithic `curl -T BLOB -X PUT LOCATION&digest=...`;
- re-pushes to the same repository (mode 4 with the same cache, and mode 3), which must send no blob body;
- (not with --quick) mode 4 with --no-agent, so that one process does all the work (peak RSS check).

Every process is timed whole (wall and CPU time from os.wait4, peak RSS from GNU time: os.wait4's is floored
at this script's own RSS); for ours also the warm agent's peak RSS during the run (/proc/PID/clear_refs, VmHWM)
and CPU time, and what its flow and task runs took (from our Prefect server's API); for all, the registry
requests each run made (from its access log). Prints one markdown table and writes bench/out/push.json.
Imports the process-measuring helpers of bench/pull_bench.py. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pull_bench import MIB, TOOL, Run, machine_info, process_cpu_s, run_measured, skopeo_env  # noqa: E402
from rig.images import build_image  # noqa: E402
from rig.registry import RunningRegistry, start_plain_registry  # noqa: E402
from rig.skopeo import run_skopeo  # noqa: E402

from docker_image_pusher.agent._client import _fingerprint as agent_fingerprint  # noqa: E402  (no Prefect import)
from docker_image_pusher.server import state_dir as default_state_dir  # noqa: E402

OUT_JSON = ROOT / "bench" / "out" / "push.json"
RSS_TARGET_MIB = 20.0
CURL_TARGET = 0.9  # ours (mode 3) MiB/s / curl MiB/s, at least
SKOPEO_TARGET = 0.7  # ours (mode 4) wall / skopeo wall, at most
EXTRACT_TARGET = 400.0  # MiB/s of tar, at least
BLOB_INFO_CACHE = Path("/var/lib/containers/cache")  # skopeo's blob info cache when run as root
SMALL_LAYERS = 40
SMALL_LAYER_SIZE = 256 * 1024

# mode names used in rows (kind) and in the table
SKOPEO = "skopeo"
MODE4 = "mode4"
EXTRACT = "extract"
MODE3 = "mode3"
CURL = "curl"
REPUSH4 = "repush4"
REPUSH3 = "repush3"
NOAGENT = "noagent"
TOOL_NAMES = {
    SKOPEO: "skopeo copy docker-archive: -> docker://",
    MODE4: "ours: push -s TAR (mode 4)",
    EXTRACT: "ours: extract -f TAR",
    MODE3: "ours: push from cache (mode 3)",
    CURL: "curl -T blob, monolithic PUT",
    REPUSH4: "ours: re-push TAR, same repo (mode 4)",
    REPUSH3: "ours: re-push from cache, same repo (mode 3)",
    NOAGENT: "ours: push -s TAR --no-agent",
}


# -- registry requests from the access log --------------------------------------------------------------------

_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>/v2/\S*) HTTP/[\d.]+" (?P<status>\d{3}) ')


@dataclass
class Requests:
    """Requests one run made, from the registry's access log (one line per finished request)."""

    head: int = 0
    get: int = 0
    manifest_put: int = 0
    upload_post: int = 0  # POST /blobs/uploads/: starts an upload session
    upload_patch: int = 0  # PATCH /blobs/uploads/ID: a chunk of body
    upload_put: int = 0  # PUT /blobs/uploads/ID?digest=: completes one blob (with the body, if monolithic)
    mount: int = 0  # POST /blobs/uploads/?mount=&from= answered 201
    other: int = 0

    @property
    def blob_upload_requests(self) -> int:
        return self.upload_post + self.upload_patch + self.upload_put

    def cell(self) -> str:
        text = f"{self.head} / {self.manifest_put} / {self.upload_post}+{self.upload_patch}+{self.upload_put}"
        return text + (f" (+{self.mount} mounted)" if self.mount else "")


def count_requests(log: str) -> Requests:
    counts = Requests()
    for match in _ACCESS.finditer(log):
        method, path, status = match["method"], match["path"], int(match["status"])
        uploads = "/blobs/uploads/" in path
        if method == "HEAD":
            counts.head += 1
        elif method == "GET":
            counts.get += 1
        elif method == "PUT" and "/manifests/" in path:
            counts.manifest_put += 1
        elif method == "POST" and uploads and "mount=" in path and status == 201:
            counts.mount += 1
        elif method == "POST" and uploads:
            counts.upload_post += 1
        elif method == "PATCH" and uploads:
            counts.upload_patch += 1
        elif method == "PUT" and uploads:
            counts.upload_put += 1
        else:
            counts.other += 1
    return counts


# -- our agent (a separate, warm process: the CLI's own RSS is only the client's) -------------------------------


def server_info(state_dir: Path) -> tuple[int, int] | None:
    """(pid, port) of our local Prefect server, from its state file."""
    try:
        info = json.loads((state_dir / "server.json").read_text())
        return int(info["pid"]), int(info["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def our_api_url(env: dict[str, str], state_dir: Path) -> str | None:
    """The Prefect API our CLI talks to: PREFECT_API_URL, else our local server's."""
    api = env.get("PREFECT_API_URL")
    if api:
        return api
    server = server_info(state_dir)
    return f"http://127.0.0.1:{server[1]}/api" if server else None


def ping_agent(sock_path: Path) -> int | None:
    """The pid an agent socket answers a ping with, or None."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.connect(str(sock_path))
        sock.sendall(b'{"op":"ping"}\n')
        with sock.makefile("rb") as stream:
            line = stream.readline(1 << 16)
        return int(json.loads(line)["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    finally:
        sock.close()


def status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM of `pid` to its current RSS (Linux >= 4.0; own processes or root)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -- what the flows themselves spent, from the Prefect API ---------------------------------------------------


@dataclass
class FlowTimes:
    """The flow runs (outer and subflows) and task runs of one run of ours, as our Prefect server recorded them."""

    flow_runs: int
    task_runs: int
    flow_s: float  # first flow run start to last flow run end
    task_s: float  # time during which at least one task ran (union of the task runs' intervals)
    extract_s: float  # union of the extract-blob task runs
    upload_s: float  # union of the push-blob task runs


def _union_s(intervals: list[tuple[dt.datetime, dt.datetime]]) -> float:
    total, end = 0.0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            total += (stop - start).total_seconds()
            end = stop
        elif stop > end:
            total += (stop - end).total_seconds()
            end = stop
    return total


def _when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def api_post(api: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        api + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def flow_times(api: str, cache_dir: str, since: dt.datetime, wait_s: float = 5.0) -> FlowTimes | None:
    """The flow and task runs that started after `since` with this cache_dir parameter (unique per run here).

    Task runs reach the server's database through events, a moment after the flow has returned: poll until
    every one has ended and their number holds still.
    """
    deadline = time.monotonic() + wait_s
    last: tuple[int, int] | None = None
    while True:
        body = {"flow_runs": {"start_time": {"after_": since.isoformat()}}, "sort": "START_TIME_ASC", "limit": 100}
        runs = [r for r in api_post(api, "/flow_runs/filter", body) if r["parameters"].get("cache_dir") == cache_dir]
        tasks: list[dict[str, Any]] = []
        if runs:
            ids = [r["id"] for r in runs]
            tasks = api_post(api, "/task_runs/filter", {"flow_runs": {"id": {"any_": ids}}, "limit": 200})
        done = bool(runs) and all(r["end_time"] for r in runs + tasks)
        if done and last == (len(runs), len(tasks)):
            break
        if time.monotonic() > deadline:
            if not done:
                return None
            break
        last = (len(runs), len(tasks)) if done else None
        time.sleep(0.3)

    def spans(prefix: str) -> list[tuple[dt.datetime, dt.datetime]]:
        chosen = [t for t in tasks if t["start_time"] and t["name"].startswith(prefix)]
        return [(_when(t["start_time"]), _when(t["end_time"])) for t in chosen]

    flow_spans = [(_when(r["start_time"]), _when(r["end_time"])) for r in runs if r["start_time"]]
    return FlowTimes(
        flow_runs=len(runs),
        task_runs=len(tasks),
        flow_s=(max(e for _, e in flow_spans) - min(s for s, _ in flow_spans)).total_seconds(),
        task_s=_union_s(spans("")),
        extract_s=_union_s(spans("extract-blob-")),
        upload_s=_union_s(spans("push-blob-")),
    )


# -- measurements ------------------------------------------------------------------------------------------------

GNU_TIME = Path("/usr/bin/time")


def measure_process(command: list[str], *, scratch: Path, env: dict[str, str], cwd: Path) -> tuple[Run, float | None]:
    """run_measured, with the peak RSS taken by GNU time when it is there; also returns os.wait4's figure.

    A child's ru_maxrss starts at its parent's RSS (fork, or vfork, copies the parent's high-water mark into
    the child at exec), so os.wait4 in this script never reports less than this script's own ~40 MiB. GNU
    time is a ~1 MiB process that forks the command and reports that child's ru_maxrss (%M, KiB).
    """
    if not GNU_TIME.exists():
        run = run_measured(command, scratch=scratch, env=env, cwd=cwd)
        return run, run.peak_rss_mib
    scratch.mkdir(parents=True, exist_ok=True)
    rss_file = scratch / "maxrss.txt"
    timed = [str(GNU_TIME), "-o", str(rss_file), "-f", "maxrss_kib=%M", *command]
    run = run_measured(timed, scratch=scratch, env=env, cwd=cwd)
    wait4_rss = run.peak_rss_mib
    run.command = command
    found = re.search(r"maxrss_kib=(\d+)", rss_file.read_text()) if rss_file.exists() else None
    if found:
        run.peak_rss_mib = int(found.group(1)) / 1024
    return run, wait4_rss


@dataclass
class PushRun:
    run: Run
    requests: Requests
    repository: str = ""
    flow_s: float | None = None  # what our CLI prints ("... in X s")
    agent_pid: int | None = None
    agent_rss_before_mib: float | None = None
    agent_peak_rss_mib: float | None = None  # VmHWM of the agent after the run, reset just before it
    agent_cpu_s: float | None = None
    cold_agent: bool = False  # the run had to start an agent (none yet, or the project's code changed)
    wait4_rss_mib: float | None = None  # ru_maxrss straight from os.wait4: never below this script's own RSS
    prefect: FlowTimes | None = None  # for ours: what the flow and task runs took, per the Prefect server

    @property
    def ok(self) -> bool:
        return self.run.ok

    @property
    def wall_s(self) -> float:
        return self.run.wall_s


@dataclass
class Row:
    case: str
    kind: str
    size_bytes: int | None  # bytes moved, for MiB/s (None: not a transfer)
    expected_uploads: int | None = None  # blobs that must really be uploaded (no mount, no skip)
    runs: list[PushRun] = field(default_factory=list)
    note: str = ""

    @property
    def tool(self) -> str:
        return TOOL_NAMES[self.kind]

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.ok for r in self.runs)

    @property
    def counted(self) -> list[PushRun]:
        """The runs the figures come from: the successful ones, without those that had to start an agent."""
        good = [r for r in self.runs if r.ok]
        return [r for r in good if not r.cold_agent] or good

    @property
    def cold_runs(self) -> int:
        return sum(r.cold_agent for r in self.runs)

    @property
    def median(self) -> PushRun | None:
        good = sorted(self.counted, key=lambda r: r.wall_s)
        return good[(len(good) - 1) // 2] if good else None

    @property
    def wall_s(self) -> float | None:
        best = self.median
        return best.wall_s if best else None

    @property
    def mib_s(self) -> float | None:
        wall = self.wall_s
        return self.size_bytes / MIB / wall if wall and self.size_bytes else None

    def median_of(self, get: Callable[[PushRun], float | None]) -> float | None:
        values = [v for v in (get(r) for r in self.counted) if v is not None]
        return statistics.median(values) if values else None

    @property
    def upload_problem(self) -> str:
        """Non-empty if a run did not upload every blob (a mount or a skip would flatter the time)."""
        if self.expected_uploads is None:
            return ""
        short = [r for r in self.counted if r.requests.upload_put < self.expected_uploads or r.requests.mount]
        return f"{len(short)} run(s) uploaded fewer than {self.expected_uploads} blobs" if short else ""

    def to_json(self) -> dict[str, Any]:
        best = self.median
        return {
            "case": self.case,
            "kind": self.kind,
            "tool": self.tool,
            "size_bytes": self.size_bytes,
            "ok": self.ok,
            "wall_s": self.wall_s,
            "mib_s": self.mib_s,
            "peak_rss_mib": best.run.peak_rss_mib if best else None,
            "agent_peak_rss_mib": best.agent_peak_rss_mib if best else None,
            "requests": asdict(best.requests) if best else None,
            "note": self.note,
            "upload_problem": self.upload_problem,
            "cold_agent_runs": self.cold_runs,
            "runs": [asdict(r) for r in self.runs],
        }


@dataclass
class Sample:
    """A docker-archive tar of one image, named bench/NAME:v1 inside."""

    name: str
    tar: Path
    tar_bytes: int
    image_bytes: int  # config + uncompressed layers, what a push moves (the manifest is left out)
    blobs: int  # config + layers
    first_layer: tuple[str, int]  # (digest, size) of the first layer, as it is in the tar
    build_s: float

    @property
    def image_ref(self) -> str:
        return f"bench/{self.name}:v1"


def make_tar(name: str, layers: list[int], workdir: Path, log: Callable[[str], None]) -> Sample:
    layout = workdir / "layouts" / name
    tar = workdir / "tars" / f"{name}.tar"
    tar.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    image = build_image(layout, layers, seed=name, random_source="urandom", compresslevel=0)
    run_skopeo(["copy", f"oci:{layout}:latest", f"docker-archive:{tar}:bench/{name}:v1"], timeout=900)
    shutil.rmtree(layout, ignore_errors=True)
    built = time.perf_counter() - started
    first = image.layers[0]
    sample = Sample(
        name=name,
        tar=tar,
        tar_bytes=tar.stat().st_size,
        image_bytes=image.config.size + sum(layer.uncompressed_size for layer in image.layers),
        blobs=1 + len(image.layers),
        first_layer=(first.diff_id, first.uncompressed_size),  # skopeo's docker-archive stores layers uncompressed
        build_s=built,
    )
    log(f"  {name}: {len(layers)} layer(s), tar {sample.tar_bytes / MIB:.1f} MiB, built in {built:.1f} s")
    return sample


def layer_from_tar(sample: Sample, dest: Path) -> Path:
    """Copy the first layer out of the docker-archive (as skopeo wrote it), checking its digest."""
    with tarfile.open(sample.tar) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        member = tar.extractfile(manifest[0]["Layers"][0])
        assert member is not None
        digest = hashlib.sha256()
        with dest.open("wb") as out:
            while chunk := member.read(MIB):
                digest.update(chunk)
                out.write(chunk)
    expected, size = sample.first_layer
    if f"sha256:{digest.hexdigest()}" != expected or dest.stat().st_size != size:
        raise RuntimeError(f"layer in {sample.tar} is not {expected} ({size} bytes): compressed by skopeo?")
    return dest


# -- the benchmark -----------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.repeat: int = args.repeat if args.repeat is not None else (1 if args.quick else 3)
        self.counter = 0
        self.rows: list[Row] = []
        self.extra: dict[str, Any] = {}
        self.skopeo_flags, self.skopeo_env = skopeo_env(workdir)
        self.our_env = dict(os.environ)
        if args.state_dir:
            self.our_env["DOCKER_IMAGE_PUSHER_STATE_DIR"] = str(Path(args.state_dir).absolute())
        self.state_dir = Path(args.state_dir).absolute() if args.state_dir else default_state_dir()
        self.registry: RunningRegistry | None = None
        self.isolate_skopeo = self._probe_unshare()

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def fresh(self, label: str) -> Path:
        self.counter += 1
        return self.workdir / "scratch" / f"{self.counter:03d}-{label}"

    def fresh_repo(self, sample: Sample, kind: str) -> str:
        self.counter += 1
        return f"bench/{sample.name}-{kind}-{self.counter:03d}"

    @property
    def reg(self) -> RunningRegistry:
        assert self.registry is not None
        return self.registry

    def _probe_unshare(self) -> bool:
        """Root's skopeo keeps a blob info cache in /var/lib/containers/cache and would mount blobs it pushed
        to an earlier repository instead of uploading them; a private mount namespace hides it per run."""
        if os.geteuid() != 0 or not shutil.which("unshare"):
            return False
        probe = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, check=False
        )
        return probe.returncode == 0

    # -- commands

    def skopeo_command(self, sample: Sample, repo: str, scratch: Path) -> list[str]:
        cache = scratch / "blob-info-cache"
        cache.mkdir(parents=True, exist_ok=True)
        copy = [
            "skopeo",
            *self.skopeo_flags,
            "copy",
            "--dest-tls-verify=false",
            f"docker-archive:{sample.tar}",
            f"docker://{self.reg.host}/{repo}:v1",
        ]
        if not self.isolate_skopeo:  # not root: the cache is $XDG_DATA_HOME/containers/cache (env execs skopeo)
            return ["env", f"XDG_DATA_HOME={cache}", *copy]
        script = 'mkdir -p "$1" && mount --bind "$2" "$1" && shift 2 && exec "$@"'
        wrapped = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
        return [*wrapped, str(BLOB_INFO_CACHE), str(cache), *copy]

    def ours(self, *args: str) -> list[str]:
        return [str(TOOL), *args, "--disable-progress"]

    def push_tar_command(self, sample: Sample, repo: str, cache: Path, *extra: str) -> list[str]:
        target = f"{self.reg.host}/{repo}:v1"
        return self.ours(
            "push", "-s", str(sample.tar), target, "--registry", self.reg.url, "--cache-dir", str(cache), *extra
        )

    def push_cache_command(self, sample: Sample, repo: str, cache: Path) -> list[str]:
        target = f"{self.reg.host}/{repo}:v1"
        return self.ours("push", "-s", sample.image_ref, target, "--registry", self.reg.url, "--cache-dir", str(cache))

    def extract_command(self, sample: Sample, cache: Path) -> list[str]:
        return self.ours("extract", "-f", str(sample.tar), "--cache-dir", str(cache))

    # -- running one process

    def server_info(self) -> tuple[int, int] | None:
        return server_info(self.state_dir)

    def api_url(self) -> str | None:
        return our_api_url(self.our_env, self.state_dir)

    def agent_socket(self) -> Path | None:
        """The socket of the agent our CLI would use now (it depends on the code's files and the Prefect API)."""
        api = self.api_url()
        return self.state_dir / "agent" / f"{agent_fingerprint(api)}.sock" if api else None

    def current_agent(self) -> int | None:
        sock = self.agent_socket()
        return ping_agent(sock) if sock is not None else None

    def run(self, command: list[str], *, label: str, env: dict[str, str], repository: str = "") -> PushRun:
        scratch = self.fresh(re.sub(r"\W+", "-", label) + "-log")
        ours = command[0] == str(TOOL)
        uses_agent = ours and "--no-agent" not in command
        server = self.server_info() if ours else None
        server_before = process_cpu_s(server[0]) if server else None
        agent = self.current_agent() if uses_agent else None
        agent_rss_before = agent_cpu_before = None
        if agent is not None and reset_peak_rss(agent):
            agent_rss_before = status_kib(agent, "VmRSS")
            agent_cpu_before = process_cpu_s(agent)
        log_offset = len(self.reg.log_text())
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=0.05)
        run, wait4_rss = measure_process(command, scratch=scratch, env=env, cwd=self.workdir)
        time.sleep(0.05)  # the registry logs a request as it ends; let the last line land
        result = PushRun(run, count_requests(self.reg.log_text()[log_offset:]), repository, wait4_rss_mib=wait4_rss)
        server_after = process_cpu_s(server[0]) if server else None
        if server_before is not None and server_after is not None:
            run.server_cpu_s = server_after - server_before
        if uses_agent:
            after = self.current_agent()
            result.agent_pid = after
            result.cold_agent = after is None or after != agent
            if not result.cold_agent and agent is not None and agent_rss_before is not None:
                peak, cpu = status_kib(agent, "VmHWM"), process_cpu_s(agent)
                result.agent_rss_before_mib = agent_rss_before / 1024
                result.agent_peak_rss_mib = peak / 1024 if peak is not None else None
                if cpu is not None and agent_cpu_before is not None:
                    result.agent_cpu_s = cpu - agent_cpu_before
        found = re.search(r" in ([\d.]+) s\s*$", run.stdout_tail) if ours and run.ok else None
        result.flow_s = float(found.group(1)) if found else None
        api = self.api_url() if ours and run.ok and "--cache-dir" in command else None
        if api:
            cache_dir = str(Path(command[command.index("--cache-dir") + 1]).resolve())
            try:
                result.prefect = flow_times(api, cache_dir, since)
            except (OSError, ValueError, KeyError, TypeError) as err:
                self.log(f"      (no flow and task times from {api}: {err})")
        state = "ok" if run.ok else f"FAILED exit {run.exit_code}" + (" (timeout)" if run.timed_out else "")
        agent_text = f", agent peak {result.agent_peak_rss_mib:.0f} MiB" if result.agent_peak_rss_mib else ""
        agent_text += ", STARTED A NEW AGENT" if result.cold_agent else ""
        self.log(
            f"    {label}: {run.wall_s:.2f} s, {run.peak_rss_mib:.0f} MiB RSS{agent_text}, "
            f"requests {result.requests.cell()}, {state}"
        )
        if not run.ok:
            self.log("      " + (run.stderr_tail or run.stdout_tail).strip().replace("\n", "\n      ")[-1500:])
        return result

    def timed(
        self, row: Row, command: Callable[[], tuple[list[str], str]], *, label: str, env: dict[str, str] | None = None
    ) -> PushRun:
        """One run into `row` (command() gives the command and the target repository, fresh each call).

        A run of ours that had to start an agent (the project's code changed under the bench, so the CLI
        wants a new one) is kept but not counted, and run again, up to twice.
        """
        for _ in range(3):
            argv, repository = command()
            run = self.run(argv, label=label, env=env or self.our_env, repository=repository)
            row.runs.append(run)
            if not run.cold_agent or not run.ok:
                break
            self.log("      (not counted: repeated with the agent now warm)")
        return run

    # -- steps

    def warm_up(self, tiny: Sample) -> None:
        self.log("warm-up (untimed in the table): starts the Prefect server and the agent if needed")
        status = subprocess.run(
            [str(TOOL), "server", "status"], capture_output=True, text=True, env=self.our_env, check=False
        )
        agent_before = self.current_agent()
        repo = self.fresh_repo(tiny, "warm")
        first = self.run(
            self.push_tar_command(tiny, repo, self.fresh("warm-cache")), label="warm-up push -s TAR", env=self.our_env
        )
        # the other two flows once each, so that none of them runs for the first time while timed
        cache = self.fresh("warm-cache")
        extract = self.run(self.extract_command(tiny, cache), label="warm-up extract", env=self.our_env)
        repo = self.fresh_repo(tiny, "warm")
        cached = self.run(self.push_cache_command(tiny, repo, cache), label="warm-up push from cache", env=self.our_env)
        self.extra["warm_up"] = {
            "server_status_before": (status.stdout or status.stderr).strip(),
            "agent_before": agent_before,
            "agent_after": self.current_agent(),
            "push_tar": asdict(first),
            "extract": asdict(extract),
            "push_cache": asdict(cached),
        }

    def compare(self, sample: Sample, blob: Path | None) -> None:
        self.log(f"image {sample.name} ({self.repeat} round(s), interleaved)")
        size = sample.image_bytes
        rows = {
            SKOPEO: Row(sample.name, SKOPEO, size, sample.blobs, note="recompresses each layer (gzip)"),
            MODE4: Row(sample.name, MODE4, size, sample.blobs, note="fresh cache and repository each run"),
            EXTRACT: Row(sample.name, EXTRACT, sample.tar_bytes, note="MiB/s of tar bytes, fresh cache each run"),
            MODE3: Row(sample.name, MODE3, size, sample.blobs, note="cache from the extract run just before"),
        }
        if blob is not None:
            rows[CURL] = Row(sample.name, CURL, blob.stat().st_size, 1, note="POST (untimed), then one PUT")
        # the last mode 4 and extract caches, with the repository pushed to from them, for the re-pushes
        kept: dict[str, tuple[str, Path]] = {}

        def skopeo() -> tuple[list[str], str]:
            repo = self.fresh_repo(sample, "skopeo")
            return self.skopeo_command(sample, repo, self.fresh("skopeo")), repo

        def mode4() -> tuple[list[str], str]:
            repo, cache = self.fresh_repo(sample, "m4"), self.fresh("cache-m4")
            self._keep(kept, MODE4, repo, cache)
            return self.push_tar_command(sample, repo, cache), repo

        def extract() -> tuple[list[str], str]:
            cache = self.fresh("cache-x")
            self._keep(kept, EXTRACT, "", cache)
            return self.extract_command(sample, cache), ""

        def mode3() -> tuple[list[str], str]:
            repo, cache = self.fresh_repo(sample, "m3"), kept[EXTRACT][1]
            kept[EXTRACT] = (repo, cache)
            return self.push_cache_command(sample, repo, cache), repo

        for round_ in range(self.repeat):
            label = f"{sample.name} #{round_ + 1}"
            self.timed(rows[SKOPEO], skopeo, label=f"{label} skopeo", env=self.skopeo_env)
            self.timed(rows[MODE4], mode4, label=f"{label} mode 4")
            self.timed(rows[EXTRACT], extract, label=f"{label} extract")
            if rows[EXTRACT].runs[-1].ok:
                self.timed(rows[MODE3], mode3, label=f"{label} mode 3")
            if blob is not None:
                rows[CURL].runs.append(self.curl_upload(sample, blob, label=f"{label} curl"))
        self.rows.extend(rows.values())

        repush4 = Row(sample.name, REPUSH4, None, note="same cache as the last mode 4 run: must send no blob body")
        repush3 = Row(sample.name, REPUSH3, None, note="same cache as the last mode 3 run: must send no blob body")
        # re-pushes: the same command again, into the repository the last run pushed to, with its cache
        repushes: list[tuple[Row, Callable[[], tuple[list[str], str]]]] = []
        if MODE4 in kept:
            repo4, cache4 = kept[MODE4]
            repushes.append((repush4, lambda: (self.push_tar_command(sample, repo4, cache4), repo4)))
        if EXTRACT in kept and kept[EXTRACT][0]:
            repo3, cache3 = kept[EXTRACT]
            repushes.append((repush3, lambda: (self.push_cache_command(sample, repo3, cache3), repo3)))
        for round_ in range(self.repeat):
            for row, command in repushes:
                self.timed(row, command, label=f"{sample.name} #{round_ + 1} re-push mode {row.kind[-1]}")
        self.rows.extend(r for r in (repush4, repush3) if r.runs)
        for _repo, cache in kept.values():
            shutil.rmtree(cache, ignore_errors=True)
        self.extra.setdefault("pushed_manifests", {})[sample.name] = {
            kind: self.layers_of(rows[kind]) for kind in (SKOPEO, MODE4, MODE3) if rows[kind].median
        }

    def _keep(self, kept: dict[str, tuple[str, Path]], kind: str, repo: str, cache: Path) -> None:
        if kind in kept:
            shutil.rmtree(kept[kind][1], ignore_errors=True)
        kept[kind] = (repo, cache)

    def layers_of(self, row: Row) -> list[dict[str, Any]]:
        """The layer descriptors of the manifest the median run pushed (what skopeo did to the layers)."""
        best = row.median
        assert best is not None
        accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
        request = urllib.request.Request(
            f"{self.reg.url}/v2/{best.repository}/manifests/v1", headers={"Accept": accept}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            layers: list[dict[str, Any]] = json.loads(response.read())["layers"]
        return layers

    def curl_upload(self, sample: Sample, blob: Path, *, label: str) -> PushRun:
        """The registry's own limit: POST /v2/REPO/blobs/uploads/ (untimed), then one streamed PUT with curl."""
        repo = self.fresh_repo(sample, "curl")
        request = urllib.request.Request(f"{self.reg.url}/v2/{repo}/blobs/uploads/", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=30) as response:
            location = response.headers["Location"]
        if location.startswith("/"):
            location = self.reg.url + location
        digest = sample.first_layer[0]
        url = f"{location}{'&' if '?' in location else '?'}digest={digest}"
        command = ["curl", "-s", "-f", "-o", "/dev/null", "-T", str(blob)]
        command += ["-H", "Content-Type: application/octet-stream", "-X", "PUT", url]
        return self.run(command, label=label, env=dict(os.environ), repository=repo)

    def no_agent(self, samples: Sequence[Sample]) -> None:
        self.log("peak RSS of one process doing all the work (--no-agent)")
        for sample in samples:
            row = Row(sample.name, NOAGENT, sample.image_bytes, sample.blobs, note="Prefect imported in the process")

            def command(sample: Sample = sample) -> tuple[list[str], str]:
                repo = self.fresh_repo(sample, "noagent")
                return self.push_tar_command(sample, repo, self.fresh("cache-noagent"), "--no-agent"), repo

            for round_ in range(self.repeat):
                self.timed(row, command, label=f"{sample.name} #{round_ + 1} --no-agent")
            self.rows.append(row)


# -- output ------------------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


class Report:
    def __init__(self, bench: Bench, samples: Sequence[Sample]) -> None:
        self.bench = bench
        self.samples = samples
        self.checks: list[tuple[str, bool]] = []

    def find(self, case: str, kind: str) -> Row | None:
        return next((r for r in self.bench.rows if r.case == case and r.kind == kind), None)

    def check_cell(self, row: Row) -> str:
        if not row.ok:
            return ""
        curl = self.find(row.case, CURL)
        if row.kind == MODE3 and curl is not None and curl.mib_s and row.mib_s:
            ratio = row.mib_s / curl.mib_s
            text = f"ours/curl MiB/s {ratio:.2f}x (>= {CURL_TARGET}x)"
            return self._check(f"{row.case}: ours (mode 3)/curl MiB/s", ratio >= CURL_TARGET, text)
        if row.kind in (MODE4, NOAGENT):
            skopeo = self.find(row.case, SKOPEO)
            if skopeo is not None and skopeo.wall_s and row.wall_s:
                ratio = row.wall_s / skopeo.wall_s
                text = f"ours/skopeo wall {ratio:.2f}x"
                if row.kind == NOAGENT:
                    return text + " (info)"
                return self._check(
                    f"{row.case}: ours/skopeo wall", ratio <= SKOPEO_TARGET, f"{text} (<= {SKOPEO_TARGET}x)"
                )
        if row.kind == EXTRACT and row.mib_s and row.size_bytes and row.size_bytes < 256 * MIB:
            return f"{row.mib_s:.0f} MiB/s (info: the target is for the 512 MiB tar)"
        if row.kind == EXTRACT and row.mib_s:
            return self._check(
                f"{row.case}: extract MiB/s",
                row.mib_s >= EXTRACT_TARGET,
                f"{row.mib_s:.0f} MiB/s (>= {EXTRACT_TARGET:.0f})",
            )
        if row.kind in (REPUSH4, REPUSH3):
            bodies = max(r.requests.blob_upload_requests + r.requests.mount for r in row.runs)
            return self._check(f"{row.case}: {row.tool} sends no blob", bodies == 0, "no blob upload request (= 0)")
        if row.upload_problem:
            return row.upload_problem
        return ""

    def _check(self, name: str, ok: bool, text: str) -> str:
        self.checks.append((name, ok))
        return f"{text}: {_verdict(ok)}"

    def render(self, info: dict[str, Any]) -> str:
        bench = self.bench
        lines = [
            f"machine: {info['date']}, nproc {info['nproc']}, {info['cpu']}, {info['mem_total_mib']} MiB RAM, "
            f"Python {info['python']}, kernel {info['kernel']}, {info['skopeo']}, {info['registry']}, "
            f"{info['curl'].split(' (')[0]}; load average before/after: {bench.extra.get('load', '?')}; "
            f"repeats: {bench.repeat} (median shown)",
            "",
            "| case | tool | wall s | flow s | tasks s | MiB/s | peak RSS MiB | agent peak RSS MiB | agent CPU s "
            "| server CPU s | HEAD / manifest PUT / blob POST+PATCH+PUT | vs target |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for row in bench.rows:
            best = row.median
            wall = "FAILED" if not row.ok else _fmt(row.wall_s)
            check = self.check_cell(row)
            if row.upload_problem and row.upload_problem not in check:
                check = f"{check}; {row.upload_problem}" if check else row.upload_problem
            lines.append(
                f"| {row.case} | {row.tool} | {wall} | {_fmt(best.flow_s if best else None, 1)} "
                f"| {_fmt(row.median_of(lambda r: r.prefect.task_s if r.prefect else None))} "
                f"| {_fmt(row.mib_s, 0)} | {_fmt(best.run.peak_rss_mib if best else None, 0)} "
                f"| {_fmt(best.agent_peak_rss_mib if best else None, 0)} "
                f"| {_fmt(row.median_of(lambda r: r.agent_cpu_s))} "
                f"| {_fmt(row.median_of(lambda r: r.run.server_cpu_s))} "
                f"| {best.requests.cell() if best else '-'} | {check} |"
            )
        lines.append("")
        lines += self.notes()
        passed = sum(ok for _, ok in self.checks)
        lines.append(
            f"targets met: {passed}/{len(self.checks)}" + "".join(f"; FAIL {n}" for n, ok in self.checks if not ok)
        )
        for row in bench.rows:
            if not row.ok and row.runs:
                last = row.runs[-1].run
                text = (last.stderr_tail or last.stdout_tail).strip()[-800:]
                lines.append(f"\nFAILED {row.case} / {row.tool} (exit {last.exit_code}):\n```\n{text}\n```")
        return "\n".join(lines)

    def notes(self) -> list[str]:
        bench = self.bench
        lines: list[str] = []
        warm = bench.extra.get("warm_up")
        if warm:
            run = warm["push_tar"]["run"]
            state = "ok" if run["exit_code"] == 0 and not run["timed_out"] else f"FAILED exit {run['exit_code']}"
            before = warm["server_status_before"].splitlines()[0] if warm["server_status_before"] else "?"
            lines.append(
                f"warm-up push -s TAR (4 KiB layer, untimed above): {run['wall_s']:.2f} s, {state}; then extract "
                f"{warm['extract']['run']['wall_s']:.2f} s, push from cache "
                f"{warm['push_cache']['run']['wall_s']:.2f} s; server before: {before}; "
                f"agent before: {warm['agent_before'] or 'none'}, after: pid {warm['agent_after']}"
            )
        cold = [f"{r.case} / {r.tool}: {r.cold_runs}" for r in bench.rows if r.cold_runs]
        if cold:
            lines.append(
                "runs that had to start a new agent (the project's code changed during the bench), not counted "
                "and repeated: " + "; ".join(cold)
            )
        for name, kinds in bench.extra.get("pushed_manifests", {}).items():
            described = []
            for kind, layers in kinds.items():
                sizes = ", ".join(f"{layer['size'] / MIB:.1f}" for layer in layers[:3]) + (
                    " ..." if len(layers) > 3 else ""
                )
                types = sorted({str(layer["mediaType"]).rpartition(".")[2] for layer in layers})
                described.append(f"{kind}: {'/'.join(types)} [{sizes}] MiB")
            lines.append(f"{name}: layers in the pushed manifests: " + "; ".join(described))
        if not bench.isolate_skopeo and os.geteuid() == 0:
            lines.append("skopeo's blob info cache was NOT isolated (no unshare): see the mount counts")
        big, small = (self.samples[0], self.samples[1]) if len(self.samples) >= 2 else (None, None)
        if big is not None and small is not None:
            lines += self._rss_lines(big, small)
            lines += self._time_lines(big)
        return lines

    def _rss_lines(self, big: Sample, small: Sample) -> list[str]:
        lines: list[str] = []
        m4_big, m4_small = self.find(big.name, MODE4), self.find(small.name, MODE4)
        if m4_big and m4_small and m4_big.median and m4_small.median:
            a_big, a_small = m4_big.median.agent_peak_rss_mib, m4_small.median.agent_peak_rss_mib
            c_big, c_small = m4_big.median.run.peak_rss_mib, m4_small.median.run.peak_rss_mib
            if a_big is not None and a_small is not None:
                grow_big = a_big - (m4_big.median.agent_rss_before_mib or a_big)
                grow_small = a_small - (m4_small.median.agent_rss_before_mib or a_small)
                ok = a_big - a_small <= RSS_TARGET_MIB
                self.checks.append(("agent peak RSS flat in layer size", ok))
                lines.append(
                    f"peak RSS, mode 4, {big.name} vs {small.name}: agent {a_big:.0f} vs {a_small:.0f} MiB "
                    f"({a_big - a_small:+.0f} MiB; growth during the run {grow_big:+.0f} vs {grow_small:+.0f} MiB; "
                    f"target <= +{RSS_TARGET_MIB:.0f}): {_verdict(ok)}; CLI process {c_big:.0f} vs {c_small:.0f} MiB"
                )
        na_big, na_small = self.find(big.name, NOAGENT), self.find(small.name, NOAGENT)
        if na_big and na_small and na_big.median and na_small.median:
            p_big, p_small = na_big.median.run.peak_rss_mib, na_small.median.run.peak_rss_mib
            ok = p_big - p_small <= RSS_TARGET_MIB
            self.checks.append(("--no-agent process peak RSS flat in layer size", ok))
            lines.append(
                f"peak RSS, mode 4 --no-agent (one process does everything): {p_big:.0f} vs {p_small:.0f} MiB "
                f"({p_big - p_small:+.0f} MiB; target <= +{RSS_TARGET_MIB:.0f}): {_verdict(ok)}"
            )
        return lines

    def _time_lines(self, big: Sample) -> list[str]:
        """Where our time goes: the CLI process, the hand-off to the agent, Prefect's own time, the tasks."""
        lines: list[str] = []
        ours = [r for r in self.bench.rows if r.kind in (MODE4, EXTRACT, MODE3, REPUSH4, REPUSH3)]
        flows = [r.flow_s for row in ours for r in row.runs if r.flow_s is not None and not r.cold_agent]
        if flows:
            tenths = sorted({round(f % 1, 1) for f in flows})
            on_grid = sum(round(f % 1, 1) == 0.1 for f in flows)
            lines.append(
                f"flow s of our runs through the agent: {on_grid} of {len(flows)} are a whole number of seconds "
                f"+ 0.1 (fractions seen: {', '.join(f'{t:.1f}' for t in tenths)})"
            )
        lines.append(
            f"where our time goes, {big.name} (medians, s): wall = CLI process outside the run (wall - flow s) "
            f"+ agent outside the flow runs (flow s - the server's first flow start to last flow end) + flow runs; "
            f"flow runs = tasks (extract-blob, push-blob, others) + Prefect's own"
        )
        for kind in (MODE4, EXTRACT, MODE3, REPUSH4, REPUSH3, NOAGENT):
            row = self.find(big.name, kind)
            if row is None or row.wall_s is None:
                continue

            def med(get: Callable[[PushRun], float | None], row: Row = row) -> float | None:
                return row.median_of(get)

            outside = med(lambda r: r.wall_s - r.flow_s if r.flow_s is not None else None)
            server_flow = med(lambda r: r.prefect.flow_s if r.prefect else None)
            hand_off = med(lambda r: r.flow_s - r.prefect.flow_s if r.flow_s is not None and r.prefect else None)
            tasks = med(lambda r: r.prefect.task_s if r.prefect else None)
            prefect = med(lambda r: r.prefect.flow_s - r.prefect.task_s if r.prefect else None)
            extract = med(lambda r: r.prefect.extract_s if r.prefect else None)
            upload = med(lambda r: r.prefect.upload_s if r.prefect else None)
            count = med(lambda r: r.prefect.flow_runs if r.prefect else None)
            where = "in-process (Prefect import, start-up)" if kind == NOAGENT else "agent"
            lines.append(
                f"- {row.tool}: wall {row.wall_s:.2f} = CLI outside {_fmt(outside)} + {where} outside {_fmt(hand_off)} "
                f"+ {_fmt(count, 0)} flow run(s) {_fmt(server_flow)} (tasks {_fmt(tasks)}: extract-blob "
                f"{_fmt(extract)}, push-blob {_fmt(upload)}; Prefect's own {_fmt(prefect)})"
            )
        m3, ex, curl = (self.find(big.name, k) for k in (MODE3, EXTRACT, CURL))
        upload_s = m3.median_of(lambda r: r.prefect.upload_s if r.prefect else None) if m3 else None
        if upload_s:
            rate = big.image_bytes / MIB / upload_s
            text = f"upload alone ({big.name} mode 3, push-blob tasks): {rate:.0f} MiB/s"
            if curl is not None and curl.mib_s:
                text += f", {rate / curl.mib_s:.2f}x curl's {curl.mib_s:.0f} MiB/s (whole curl process)"
            lines.append(text)
        extract_s = ex.median_of(lambda r: r.prefect.task_s if r.prefect else None) if ex else None
        if extract_s:
            lines.append(
                f"extract alone ({big.name}, the extract flow's tasks): {big.tar_bytes / MIB / extract_s:.0f} MiB/s "
                f"of tar (target >= {EXTRACT_TARGET:.0f} is judged on the whole process above)"
            )
        return lines


# -- main ---------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run each, no --no-agent RSS rows")
    parser.add_argument("--repeat", type=int, help="runs per measurement [default: 3, --quick: 1]")
    parser.add_argument("--state-dir", help="DOCKER_IMAGE_PUSHER_STATE_DIR for our tool [default: the user's]")
    parser.add_argument("--stop-server", action="store_true", help="stop our Prefect server and agent at the end")
    parser.add_argument("--tmp-dir", help="where the temp working dir goes [default: system temp]")
    parser.add_argument("--json", default=str(OUT_JSON), help=f"results file [default: {OUT_JSON}]")
    args = parser.parse_args(argv)

    if not TOOL.exists():
        print(f"{TOOL} is missing: run `make setup` first", file=sys.stderr)
        return 2
    info = machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="push-bench-", dir=args.tmp_dir))
    bench = Bench(args, workdir)
    samples: list[Sample] = []
    started = time.perf_counter()
    try:
        bench.log(f"working dir {workdir}")
        bench.registry = start_plain_registry(workdir / "registry", access_log=True)
        bench.log(f"registry {bench.registry.url}; building docker-archive tars")
        big = make_tar("big-512m", [512 * MIB], workdir, bench.log)
        small = make_tar(
            f"small-{SMALL_LAYERS}x{SMALL_LAYER_SIZE // 1024}k", [SMALL_LAYER_SIZE] * SMALL_LAYERS, workdir, bench.log
        )
        tiny = make_tar("tiny", [4096], workdir, bench.log)
        samples = [big, small]
        blob = layer_from_tar(big, workdir / "tars" / "big-layer.bin")
        bench.extra["images"] = {s.name: asdict(s) | {"tar": str(s.tar)} for s in (big, small, tiny)}

        load_before = os.getloadavg()[0]
        bench.warm_up(tiny)
        bench.compare(big, blob)
        bench.compare(small, None)
        if not args.quick:
            bench.no_agent([big, small])
        bench.extra["load"] = f"{load_before:.2f}/{os.getloadavg()[0]:.2f}"
    finally:
        if bench.registry is not None:
            bench.registry.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if args.stop_server:
            subprocess.run([str(TOOL), "server", "stop"], env=bench.our_env, check=False)
    report = Report(bench, samples)
    table = report.render(info)
    print(table)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": info,
        "args": vars(args),
        "repeat": bench.repeat,
        "total_s": time.perf_counter() - started,
        "skopeo_blob_info_cache_isolated": bench.isolate_skopeo or os.geteuid() != 0,
        "checks": [{"name": n, "ok": ok} for n, ok in report.checks],
        "rows": [r.to_json() for r in bench.rows],
        **bench.extra,
        "table": table,
    }
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    bench.log(f"\nwrote {out}")
    return 0 if all(r.ok for r in bench.rows) else 1


if __name__ == "__main__":
    sys.exit(main())

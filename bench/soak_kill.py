"""SIGKILL soak: kill pull, extract and push at random moments, then verify the cache and complete the operation.

    .venv/bin/python bench/soak_kill.py [--runs 100] [--seed 20261128] [--rate-mib 4] [--tmp-dir DIR]

Not a test (not in CI): a long, seeded run against real components. Setup, all in a temp dir:

- two plain local registries (tests/rig: `src`, `dst`), each behind a rig `TcpProxy` capped at --rate-mib MiB/s
  (all connections together, each direction), so that a transfer lasts a few seconds and a kill lands in it;
- one image built with the rig (4 uncompressed layers of random bytes, 2+4+6+12 MiB), pushed to `src` with
  skopeo, and written as a docker-save tar (tests/rig/archives.py);
- our own state dir (DOCKER_IMAGE_PUSHER_STATE_DIR) and Prefect server (ensure_server; stopped at the end,
  with our agents);
- warm-up (not killed): an untimed extract that starts our agent, then each operation once with --no-agent and
  once with the agent, timed; the --no-agent
  pull and extract are the reference caches (the expected manifest digests: the source's for a pull, the one our
  extract makes of the tar for extract and push -s TAR).

Each run draws from random.Random(--seed), in this order: the operation (pull through the src proxy; extract -f
TAR; push from the cache; push -s TAR; both pushes through the dst proxy, each run into a new repository), the
target to kill (`no-agent`: the CLI run with --no-agent, which does the work itself; `agent`: our warm agent,
which runs the flow for a CLI without --no-agent; `client`: that CLI, whose agent must then cancel the run),
the moment (uniform in 0.3 s .. 1.1 x the warm-up time of that operation in that mode), whether the cache is
kept (40%: one cache shared by every "kept" run, so later runs meet earlier runs' partial files; else a new
one), and whether leftovers only are repaired (50%). Then:

1. For a kept cache, pull and extract first `clean` the image (so there is something to transfer; partial
   downloads stay); push from the cache needs the image, pulled unkilled if missing (a new cache is a copy of
   the reference pull cache). Pull and extract both cache it as soak/img/v1, so in the kept cache a push from
   the cache may push the extracted image (a Docker manifest made from the tar): it is then expected instead.
2. Start the CLI; at the moment, SIGKILL the target. The agent is killed at the moment or, if the CLI has not
   handed its run over yet, as soon as it has (a client connected to the socket of the agent this code's
   fingerprint names, in /proc/net/unix). A kill counts only if the target was running and, for the agent, the
   CLI then failed (if the CLI still succeeded, the agent was not running its flow: "idle agent hit", shown
   apart). "Mid-transfer": a non-empty temp file in the cache's tmp/, or the proxy had relayed part of the
   image, at the kill. After an agent kill the CLI must fail with one `error:` line and no
   traceback. After a client kill the soak waits (up to 120 s) for the agent to release the cache's .gc.lock.
3. `verify --json`: leftovers in tmp/ (verify's `tmp-leftover` temp files, and its `partial_downloads`, which
   it lists apart and --repair keeps as resume points) are expected and not problems; anything else (a blob that
   does not hash to its name, a broken index.json, an entry naming a missing file) is a problem. `verify
   --repair --json` runs if there is a problem, or leftovers and the draw said so; it must exit 0.
4. Rerun the same command without a kill: it must exit 0. Then `verify --json` again must find no problem
   (leftovers that the rerun did not reuse may remain: counted, not problems).
5. Independent checks (bench/soak_checks.py): every blob file hashes to its name, the image's entry has the
   expected manifest, config and layers; for a push, skopeo inspect --raw of the destination has the expected
   digest and a skopeo copy to dir: has every blob hashing to its digest. A failure here is lost/wrong data.

Prints a summary table and writes it with every run to bench/out/soak_kill.json. Exit 1 if a run lost data,
a rerun or a repair failed, or a check failed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from rig.archives import write_docker_save  # noqa: E402
from rig.images import BuiltImage, build_image  # noqa: E402
from rig.proxy import TcpProxy  # noqa: E402
from rig.registry import RunningRegistry, start_plain_registry  # noqa: E402
from rig.skopeo import copy_layout_to_registry  # noqa: E402
from soak_checks import CheckResult, Expected, check_cache, check_pushed, read_index  # noqa: E402

from docker_image_pusher.agent._client import _fingerprint as agent_fingerprint  # noqa: E402  (no Prefect import)

MIB = 1 << 20
TOOL = ROOT / ".venv" / "bin" / "docker-image-pusher"
OUT_JSON = ROOT / "bench" / "out" / "soak_kill.json"
LAYERS = (2 * MIB, 4 * MIB, 6 * MIB, 12 * MIB)
OPS = ("pull", "extract", "push-cache", "push-tar")
TARGETS = ("no-agent", "agent", "client")
IMAGE = "soak/img:v1"
RUN_TIMEOUT = 900.0


@dataclass
class Rig:
    work: Path
    env: dict[str, str]
    src: RunningRegistry
    dst: RunningRegistry
    src_proxy: TcpProxy
    dst_proxy: TcpProxy
    image: BuiltImage
    tar: Path
    kept_cache: Path
    api_url: str
    ref_pull: Path = Path()
    pull_key: str = ""
    pull_source: str = ""  # the cached image a push from the cache names
    extract_key: str = ""
    expected_pull: Expected | None = None
    expected_tar: Expected | None = None
    warm_s: dict[str, float] = field(default_factory=dict)  # "op/mode" -> wall s of the warm-up run


@dataclass
class RunRecord:
    number: int
    op: str
    target: str
    delay_s: float
    kept_cache: bool
    repair_leftovers: bool
    pushed_from: str = "pulled"  # push-cache: the cached image is a pull's, or (kept cache) an extract's
    killed: bool = False
    killed_at_s: float | None = None  # after the CLI's start (later than delay_s if the agent had no run yet)
    finished_before_kill: int | None = None  # exit code when it ended before the moment
    idle_agent_killed: bool = False  # the agent killed was not the one running the flow (not counted as a kill)
    mid_transfer: bool = False
    cli_after_agent_kill: str | None = None  # "one error line" / what was wrong
    no_cache: bool = False  # verify: the kill came before the cache folder existed
    partial_downloads: int = 0  # verify's partial_downloads: resume points, kept by --repair
    leftovers: int = 0  # verify's tmp-leftover problems (temp files)
    problems: list[dict[str, Any]] = field(default_factory=list)  # verify's, other than tmp-leftover
    repaired: bool = False
    repair_exit: int | None = None
    rerun_exit: int | None = None
    rerun_s: float = 0.0
    after_problems: list[dict[str, Any]] = field(default_factory=list)
    leftovers_after: int = 0  # tmp/ leftovers verify still finds after the rerun (an extract does not reuse its own)
    checks_passed: bool = False
    check_failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        repair_ok = self.repair_exit in (None, 0)
        unkilled_ok = self.finished_before_kill in (None, 0)
        return self.rerun_exit == 0 and self.checks_passed and repair_ok and unkilled_ok and not self.after_problems


# -- processes ---------------------------------------------------------------------------------------------


def cli_env(work: Path, state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DOCKER_IMAGE_PUSHER_"))}
    env.pop("DOCKER_CONFIG", None)
    env["DOCKER_IMAGE_PUSHER_STATE_DIR"] = str(state)
    env["HOME"] = str(work)
    return env


def run_cli(rig: Rig, args: Sequence[str], timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TOOL), *args], cwd=rig.work, env=rig.env, capture_output=True, text=True, timeout=timeout, check=False
    )


def start_cli(rig: Rig, args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(TOOL), *args], cwd=rig.work, env=rig.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip


def busy_agent_pid(state: Path, api_url: str) -> int | None:
    """The pid of the agent a CLI started now would use (state/agent/FINGERPRINT.pid) if it is alive and a
    client is connected to its socket (the run was handed over), else None.

    The fingerprint covers the code's mtimes: an older agent (the code changed since) is idle and not it.
    An accepted Unix socket shows its listener's path in /proc/net/unix, state 03 (connected).
    """
    fingerprint = agent_fingerprint(api_url)
    sock_path = str(state / "agent" / f"{fingerprint}.sock")
    try:
        pid = int((state / "agent" / f"{fingerprint}.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat_state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        unix = Path("/proc/net/unix").read_text().splitlines()[1:]
    except (OSError, ValueError):
        return None
    connected = any(len(f) >= 8 and f[7] == sock_path and f[5] == "03" for f in (line.split() for line in unix))
    return pid if connected and b"docker_image_pusher.agent" in cmdline and stat_state != "Z" else None


def wait_gc_lock_free(cache: Path, timeout: float) -> bool:
    path = cache / ".gc.lock"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not path.exists():
            return True
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True
        except BlockingIOError:
            pass
        finally:
            os.close(fd)
        time.sleep(0.2)
    return False


def tmp_bytes(cache: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(cache / "tmp"):
        for name in files:
            if not name.endswith(".lock"):
                with contextlib.suppress(OSError):
                    total += (Path(dirpath) / name).stat().st_size
    return total


def one_error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    if "Traceback" in text:
        return "traceback"
    if len(errors) == 1 and lines[-1] == errors[0]:
        return "one error line"
    return "no single final error line: " + (lines[-1] if lines else "(no output)")


# -- setup -------------------------------------------------------------------------------------------------


def expected_from(cache: Path, key: str) -> Expected:
    entry = read_index(cache)[key]
    records = list(entry["blobs"].values())
    return Expected(
        manifest_digest=entry["manifest_digest"],
        config_digest=next(r["digest"] for r in records if r["is_config"]),
        layer_digests=tuple(r["digest"] for r in records if not r["is_config"]),
    )


def op_args(rig: Rig, op: str, cache: Path, repo: str) -> list[str]:
    common = ["--cache-dir", str(cache), "--disable-progress"]
    if op == "pull":
        return ["pull", rig.src_proxy.ref(IMAGE), "--registry", rig.src_proxy.url, *common]
    if op == "extract":
        return ["extract", "-f", str(rig.tar), *common]
    source = rig.pull_source if op == "push-cache" else str(rig.tar)
    return ["push", "-s", source, rig.dst_proxy.ref(f"{repo}:v1"), "--registry", rig.dst_proxy.url, *common]


def setup(work: Path, rate: float, seed: int) -> Rig:
    state = work / "state"
    os.environ["DOCKER_IMAGE_PUSHER_STATE_DIR"] = str(state)
    from docker_image_pusher.server import ensure_server

    print("starting our Prefect server ...", flush=True)
    api_url = ensure_server()
    src = start_plain_registry(work / "src")
    dst = start_plain_registry(work / "dst")
    src_proxy = TcpProxy(src, total_rate_limit=rate)
    dst_proxy = TcpProxy(dst, total_rate_limit=rate)
    src_proxy.start()
    dst_proxy.start()
    image = build_image(work / "layout", list(LAYERS), tag="v1", seed=f"soak-{seed}", compress=False)
    copy_layout_to_registry(image, src, IMAGE)
    tar = write_docker_save(work / "img.tar", [(image, [IMAGE])])
    kept = work / "kept-cache"
    rig = Rig(work, cli_env(work, state), src, dst, src_proxy, dst_proxy, image, tar, kept, api_url)
    warm_up(rig)
    return rig


def warm_up(rig: Rig) -> None:
    """Each operation once per mode, unkilled: times, and the reference caches (from the --no-agent runs)."""
    ref_extract = rig.work / "ref-extract"
    rig.ref_pull = rig.work / "ref-pull"
    first = rig.work / "warm" / "agent-start"
    run_cli(rig, ["extract", "-f", str(rig.tar), "--cache-dir", str(first), "--disable-progress"])  # starts the agent
    for mode in ("no-agent", "agent"):
        for op in OPS:
            if op == "push-cache" and not rig.pull_source:
                raise RuntimeError("warm-up: the pull did not leave an image to push")
            if op == "pull":
                cache = rig.ref_pull if mode == "no-agent" else rig.work / "warm" / f"{op}-{mode}"
            elif op == "extract":
                cache = ref_extract if mode == "no-agent" else rig.work / "warm" / f"{op}-{mode}"
            else:
                cache = rig.work / "warm" / f"{op}-{mode}"
                if op == "push-cache":
                    shutil.copytree(rig.ref_pull, cache)
            args = op_args(rig, op, cache, f"soak/warm-{op}-{mode}")
            start = time.monotonic()
            done = run_cli(rig, [*args, "--no-agent"] if mode == "no-agent" else args)
            rig.warm_s[f"{op}/{mode}"] = time.monotonic() - start
            print(f"  warm-up {op:10} {mode:8} {rig.warm_s[f'{op}/{mode}']:6.2f} s  exit {done.returncode}", flush=True)
            if done.returncode != 0:
                raise RuntimeError(f"warm-up {op} ({mode}) failed: {done.stderr.strip()[-2000:]}")
            if op == "pull" and mode == "no-agent":
                (rig.pull_key,) = read_index(cache)
                entry = read_index(cache)[rig.pull_key]
                rig.pull_source = f"{entry['repository']}:{entry['reference']}"
                rig.expected_pull = expected_from(cache, rig.pull_key)
            if op == "extract" and mode == "no-agent":
                (rig.extract_key,) = read_index(cache)
                rig.expected_tar = expected_from(cache, rig.extract_key)
    assert rig.expected_pull is not None and rig.expected_tar is not None
    if rig.expected_pull.manifest_digest != rig.image.manifest_digest:
        raise RuntimeError("warm-up: the pulled manifest is not the source's")
    shutil.rmtree(rig.work / "warm", ignore_errors=True)


# -- one run -----------------------------------------------------------------------------------------------


def prepare_cache(rig: Rig, record: RunRecord, cache: Path) -> None:
    if not record.kept_cache:
        if record.op == "push-cache":
            shutil.copytree(rig.ref_pull, cache)
        return
    cache.mkdir(parents=True, exist_ok=True)
    entries = read_index(cache)
    if record.op in ("pull", "extract"):
        images = [f"{e['repository']}:{e['reference']}" for e in entries.values()]
        if images:
            done = run_cli(rig, ["clean", *images, "--cache-dir", str(cache)])
            record.notes.append(f"clean {images}: exit {done.returncode}")
    elif record.op == "push-cache" and rig.pull_key not in entries:
        pull = ["pull", rig.src.ref(IMAGE), "--registry", rig.src.url, "--cache-dir", str(cache), "--disable-progress"]
        done = run_cli(rig, pull)
        record.notes.append(f"unkilled pull into the kept cache: exit {done.returncode}")
    elif record.op == "push-cache":  # pull and extract name the image alike: the kept cache has either
        assert rig.expected_tar is not None
        if entries[rig.pull_key].get("manifest_digest") == rig.expected_tar.manifest_digest:
            record.pushed_from = "extracted"


def in_flight(rig: Rig, record: RunRecord, cache: Path) -> bool:
    total = sum(LAYERS)
    if tmp_bytes(cache) > 0:
        return True
    if record.op == "pull":
        return 64 * 1024 < rig.src_proxy.bytes_to_client < total
    if record.op.startswith("push"):
        return 64 * 1024 < rig.dst_proxy.bytes_to_server < total
    return False


def kill_at(rig: Rig, record: RunRecord, proc: subprocess.Popen[bytes], cache: Path, log: Path) -> None:
    state = Path(rig.env["DOCKER_IMAGE_PUSHER_STATE_DIR"])
    started = time.monotonic()
    deadline = started + record.delay_s
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    victim: int | None = None
    while proc.poll() is None:
        victim = busy_agent_pid(state, rig.api_url) if record.target == "agent" else proc.pid
        if victim is not None:
            break
        time.sleep(0.05)  # the CLI has not handed its run to the agent yet
    if proc.poll() is not None or victim is None:
        record.finished_before_kill = proc.wait()
        return
    record.mid_transfer = in_flight(rig, record, cache)
    record.killed_at_s = round(time.monotonic() - started, 2)
    os.kill(victim, signal.SIGKILL)
    record.killed = True
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        record.notes.append("the CLI did not exit within 120 s of its agent's death; killed it")
        proc.kill()
        proc.wait()
    if record.target == "agent" and proc.returncode == 0:  # that agent was not running this CLI's flow
        record.killed, record.idle_agent_killed = False, True
    elif record.target == "agent":
        record.cli_after_agent_kill = one_error_line(log.read_text(errors="replace"))
    if record.target == "client" and not wait_gc_lock_free(cache, 120):
        record.notes.append("the agent still held .gc.lock 120 s after its client was killed")


def verify(rig: Rig, cache: Path, repair: bool) -> tuple[int, dict[str, Any]]:
    done = run_cli(rig, ["verify", "--json", "--cache-dir", str(cache), *(["--repair"] if repair else [])])
    if done.returncode == 4 and "no cache" in done.stderr:  # killed before it made the cache folder
        return done.returncode, {"problems": [], "no_cache": True}
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        report = {"problems": [{"kind": "verify-output", "detail": (done.stdout + done.stderr)[-500:]}]}
    return done.returncode, report


def one_run(rig: Rig, record: RunRecord) -> None:
    run_dir = rig.work / "runs" / f"{record.number:03d}"
    run_dir.mkdir(parents=True)
    cache = rig.kept_cache if record.kept_cache else run_dir / "cache"
    repo = f"soak/push-{record.number:03d}"
    prepare_cache(rig, record, cache)
    args = op_args(rig, record.op, cache, repo) + (["--no-agent"] if record.target == "no-agent" else [])
    rig.src_proxy.reset_counters()
    rig.dst_proxy.reset_counters()
    proc = start_cli(rig, args, run_dir / "killed.log")
    kill_at(rig, record, proc, cache, run_dir / "killed.log")
    if record.finished_before_kill not in (None, 0):
        record.notes.append(f"unkilled run failed: exit {record.finished_before_kill}")

    _code, report = verify(rig, cache, repair=False)
    record.no_cache = bool(report.get("no_cache"))
    record.partial_downloads = len(report.get("partial_downloads") or [])
    found = report.get("problems", [])
    record.leftovers = sum(1 for p in found if p.get("kind") == "tmp-leftover")
    record.problems = [p for p in found if p.get("kind") != "tmp-leftover"]
    if record.problems or (record.leftovers and record.repair_leftovers):
        record.repaired = True
        record.repair_exit, _ = verify(rig, cache, repair=True)

    start = time.monotonic()
    done = run_cli(rig, args)
    record.rerun_s = time.monotonic() - start
    record.rerun_exit = done.returncode
    if done.returncode != 0:
        record.notes.append(f"rerun: {done.stderr.strip()[-1000:]}")
    code, report = verify(rig, cache, repair=False)
    after = report.get("problems", [])
    record.after_problems = [p for p in after if p.get("kind") != "tmp-leftover"]
    record.leftovers_after = len(after) - len(record.after_problems)
    if code not in (0, 8) or (code == 8 and not after):  # 8 with only leftovers: expected
        record.after_problems.append({"kind": "verify-exit", "detail": f"verify exited {code} after the rerun"})

    checks = CheckResult()
    assert rig.expected_pull is not None and rig.expected_tar is not None
    pulled = record.op == "pull" or (record.op == "push-cache" and record.pushed_from == "pulled")
    expected = rig.expected_pull if pulled else rig.expected_tar
    results = [check_cache(cache, rig.pull_key if pulled else rig.extract_key, expected)]
    if record.op.startswith("push"):
        results.append(check_pushed(rig.dst, f"{repo}:v1", expected, run_dir / "readback"))
    for result in results:
        checks.failures += result.failures
    record.checks_passed = not checks.failures
    record.check_failures = checks.failures
    if record.ok and not record.kept_cache:
        shutil.rmtree(run_dir, ignore_errors=True)


# -- summary -----------------------------------------------------------------------------------------------


def summarize(records: list[RunRecord], wall_s: float) -> dict[str, Any]:
    kills: Counter[str] = Counter()
    for r in records:
        if r.killed:
            kills[f"{r.op}/{r.target}"] += 1
    return {
        "runs": len(records),
        "kills": sum(kills.values()),
        "kills_by_op_target": dict(sorted(kills.items())),
        "kills_mid_transfer": sum(r.killed and r.mid_transfer for r in records),
        "finished_before_kill": sum(r.finished_before_kill is not None for r in records),
        "idle_agent_killed_not_counted": sum(r.idle_agent_killed for r in records),
        "cli_one_error_line_after_agent_kill": sum(r.cli_after_agent_kill == "one error line" for r in records),
        "agent_kills": sum(r.killed and r.target == "agent" for r in records),
        "killed_before_the_cache_existed": sum(r.no_cache for r in records),
        "runs_with_partial_downloads": sum(r.partial_downloads > 0 for r in records),
        "runs_with_leftovers": sum(r.leftovers > 0 for r in records),
        "verify_problems_found": sum(len(r.problems) for r in records),
        "runs_with_problems": sum(bool(r.problems) for r in records),
        "repaired": sum(r.repaired and r.repair_exit == 0 for r in records),
        "repairs_failed": sum(r.repaired and r.repair_exit != 0 for r in records),
        "reruns_completed": sum(r.rerun_exit == 0 for r in records),
        "problems_after_rerun": sum(len(r.after_problems) for r in records),
        "runs_with_leftovers_after_rerun": sum(r.leftovers_after > 0 for r in records),
        "checks_passed": sum(r.checks_passed for r in records),
        "lost_or_wrong_data": sum(not r.checks_passed for r in records),
        "wall_s": round(wall_s, 1),
    }


def render(summary: dict[str, Any], records: list[RunRecord]) -> str:
    lines = [
        "| operation | target | runs | kills | mid-transfer | ended before the kill | idle agent hit |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for op in OPS:
        for target in TARGETS:
            group = [r for r in records if r.op == op and r.target == target]
            if group:
                killed = sum(r.killed for r in group)
                mid = sum(r.killed and r.mid_transfer for r in group)
                ended = sum(r.finished_before_kill is not None for r in group)
                idle = sum(r.idle_agent_killed for r in group)
                lines.append(f"| {op} | {target} | {len(group)} | {killed} | {mid} | {ended} | {idle} |")
    lines += ["", "| figure | value |", "|---|---:|"]
    for key, value in summary.items():
        if key != "kills_by_op_target":
            lines.append(f"| {key.replace('_', ' ')} | {value} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--rate-mib", type=float, default=4.0, help="proxy cap, MiB/s each direction")
    parser.add_argument("--tmp-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=OUT_JSON)
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below (registries, server, agents)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    started = time.monotonic()
    date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    work = Path(tempfile.mkdtemp(prefix="soak-kill-", dir=args.tmp_dir))
    rng = random.Random(args.seed)
    records: list[RunRecord] = []
    rig: Rig | None = None
    interrupted = False
    try:
        rig = setup(work, args.rate_mib * MIB, args.seed)
        for number in range(1, args.runs + 1):
            op, target = rng.choice(OPS), rng.choice(TARGETS)
            warm = rig.warm_s[f"{op}/{'no-agent' if target == 'no-agent' else 'agent'}"]
            record = RunRecord(number, op, target, round(rng.uniform(0.3, 1.1 * warm), 2), rng.random() < 0.4,
                               rng.random() < 0.5)  # fmt: skip
            run_start = time.monotonic()
            try:
                one_run(rig, record)
            except Exception as err:  # a broken run is a finding, not the end of the soak
                record.notes.append(f"soak error: {type(err).__name__}: {err}")
            record.wall_s = round(time.monotonic() - run_start, 1)
            records.append(record)
            why = [*record.check_failures, *record.notes, f"repair exit {record.repair_exit}"]
            why += [f"after rerun: {p.get('kind')} {p.get('detail')}" for p in record.after_problems]
            status = "ok" if record.ok else "FAILED " + "; ".join(why)[:400]
            kill = "killed" if record.killed else f"ended first ({record.finished_before_kill})"
            kill = "idle agent hit" if record.idle_agent_killed else kill
            print(
                f"run {number:3d} {op:10} {target:8} at {record.delay_s:5.2f}s {kill:16} "
                f"mid={record.mid_transfer!s:5} partial={record.partial_downloads} leftovers={record.leftovers} "
                f"problems={len(record.problems)} "
                f"repaired={record.repaired!s:5} rerun={record.rerun_exit} {record.wall_s:5.1f}s {status}",
                flush=True,
            )
    except (KeyboardInterrupt, SystemExit):
        interrupted = True  # report the runs done so far
    finally:
        from docker_image_pusher.agent import stop_agents
        from docker_image_pusher.server import stop_server

        with contextlib.suppress(Exception):
            stop_agents()
        stop_server()
        if rig is not None:
            rig.src_proxy.stop()
            rig.dst_proxy.stop()
            rig.src.stop()
            rig.dst.stop()
    wall = time.monotonic() - started
    summary = summarize(records, wall)
    failed = [r.number for r in records if not r.ok]
    print()
    print(f"SIGKILL soak, {date}, seed {args.seed}, {len(records)} of {args.runs} runs, nproc {os.cpu_count()}")
    if interrupted:
        print("INTERRUPTED")
    print(render(summary, records))
    if failed:
        print(f"FAILED runs (kept in {work}/runs): {failed}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {"date": date, "seed": args.seed, "rate_mib": args.rate_mib, "layers": list(LAYERS),
               "warm_up_s": rig.warm_s if rig else {}, "summary": summary, "failed_runs": failed,
               "runs": [asdict(r) | {"ok": r.ok} for r in records]}  # fmt: skip
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 1 if failed or len(records) < args.runs else 0


if __name__ == "__main__":
    raise SystemExit(main())

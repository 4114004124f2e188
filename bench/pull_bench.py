"""Pull benchmark: our `docker-image-pusher pull` against `skopeo copy`, curl and hashlib, on a local registry.

    .venv/bin/python bench/pull_bench.py [--quick] [--repeat N] [--state-dir DIR] [--stop-server]

Starts a plain local registry (tests/rig), builds and pushes the sample images, times every client as a
whole process (wall time, CPU time, peak RSS from os.wait4), prints one markdown table and writes
bench/out/pull.json. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from rig.images import BuiltImage, build_image  # noqa: E402
from rig.registry import RunningRegistry, start_plain_registry  # noqa: E402
from rig.skopeo import copy_layout_to_registry  # noqa: E402

from docker_image_pusher.server import state_dir as default_state_dir  # noqa: E402  (no Prefect import)

MIB = 1 << 20
TOOL = ROOT / ".venv" / "bin" / "docker-image-pusher"
OUT_JSON = ROOT / "bench" / "out" / "pull.json"
RSS_TARGET_MIB = 20.0
PROCESS_TIMEOUT = 900.0


# -- measuring a child process -------------------------------------------------------------------------------


@dataclass
class Run:
    """One child process: whole-process wall time and rusage (peak RSS of it and the children it waited for)."""

    command: list[str]
    exit_code: int
    wall_s: float
    cpu_s: float  # user + system
    peak_rss_mib: float
    stdout_tail: str
    stderr_tail: str
    timed_out: bool = False
    server_cpu_s: float | None = None  # our Prefect server's CPU time during the run (another process)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def _tail(path: Path, limit: int = 2000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-limit:]


def run_measured(
    command: Sequence[str], *, scratch: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Run:
    scratch.mkdir(parents=True, exist_ok=True)
    out_path, err_path = scratch / "stdout.txt", scratch / "stderr.txt"
    timed_out = threading.Event()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd)

        def kill() -> None:
            timed_out.set()
            proc.kill()

        watchdog = threading.Timer(PROCESS_TIMEOUT, kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait for it again
    return Run(
        command=list(command),
        exit_code=proc.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        stdout_tail=_tail(out_path),
        stderr_tail=_tail(err_path),
        timed_out=timed_out.is_set(),
    )


@dataclass
class Measurement:
    """Repeated runs of one thing; the table shows the median-wall run."""

    image: str
    tool: str
    size_bytes: int | None  # bytes moved, for MiB/s (None: not a transfer)
    runs: list[Run] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.ok for r in self.runs)

    @property
    def median(self) -> Run | None:
        good = sorted((r for r in self.runs if r.ok), key=lambda r: r.wall_s)
        return good[(len(good) - 1) // 2] if good else None

    @property
    def wall_s(self) -> float | None:
        best = self.median
        return best.wall_s if best else None

    @property
    def mib_s(self) -> float | None:
        wall = self.wall_s
        return self.size_bytes / MIB / wall if wall and self.size_bytes else None

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "tool": self.tool,
            "size_bytes": self.size_bytes,
            "ok": self.ok,
            "wall_s": self.wall_s,
            "mib_s": self.mib_s,
            "peak_rss_mib": self.median.peak_rss_mib if self.median else None,
            "note": self.note,
            "runs": [asdict(r) for r in self.runs],
        }


@dataclass
class Derived:
    """A figure computed in-process (hashlib) or reported by a tool itself (our flow time)."""

    image: str
    tool: str
    wall_s: float | None
    size_bytes: int | None
    note: str = ""

    @property
    def mib_s(self) -> float | None:
        return self.size_bytes / MIB / self.wall_s if self.wall_s and self.size_bytes else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"mib_s": self.mib_s}


# -- setup -----------------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    flags: set[str] = set()
    with Path("/proc/cpuinfo").open() as info:
        for line in info:
            key, _, value = line.partition(":")
            if key.strip() == "model name" and cpu == "unknown":
                cpu = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())

    def version(command: list[str]) -> str:
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        except OSError as err:
            return f"unavailable ({err})"
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout),
        "cpu": cpu,
        "sha_ni": "sha_ni" in flags,
        "mem_total_mib": _meminfo_mib("MemTotal"),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "skopeo": version(["skopeo", "--version"]),
        "registry": version(["docker-registry", "--version"]),
        "curl": version(["curl", "--version"]),
    }


def _meminfo_mib(key: str) -> int | None:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    return None


def process_cpu_s(pid: int) -> float | None:
    """utime + stime of a running process, from /proc/PID/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # fields[0] is field 3 (state); utime, stime are fields 14, 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def skopeo_env(workdir: Path) -> tuple[list[str], dict[str, str]]:
    """Global skopeo flags and env that ignore the machine's containers config (accept-anything policy)."""
    conf = workdir / "skopeo-conf"
    (conf / "registries.d").mkdir(parents=True, exist_ok=True)
    (conf / "tmp").mkdir(exist_ok=True)
    (conf / "policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    (conf / "registries.conf").write_text("")
    (conf / "auth.json").write_text("{}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTAINERS_", "REGISTRY_AUTH_FILE"))}
    env["CONTAINERS_REGISTRIES_CONF"] = str(conf / "registries.conf")
    env["REGISTRY_AUTH_FILE"] = str(conf / "auth.json")
    flags = ["--policy", str(conf / "policy.json"), "--registries.d", str(conf / "registries.d")]
    return [*flags, "--tmpdir", str(conf / "tmp")], env


def image_bytes(image: BuiltImage) -> int:
    return len(image.manifest_bytes) + image.config.size + sum(image.layer_sizes)


@dataclass
class Sample:
    name: str
    repo_tag: str
    image: BuiltImage
    build_s: float
    push_s: float

    @property
    def size(self) -> int:
        return image_bytes(self.image)


def make_sample(
    name: str, layers: list[int], workdir: Path, registry: RunningRegistry, log: Callable[[str], None]
) -> Sample:
    layout = workdir / "layouts" / name
    started = time.perf_counter()
    image = build_image(layout, layers, seed=name, random_source="urandom", compresslevel=0)
    built = time.perf_counter()
    repo_tag = f"bench/{name}:v1"
    copy_layout_to_registry(image, registry, repo_tag)
    pushed = time.perf_counter()
    shutil.rmtree(layout / "skopeo-dir", ignore_errors=True)
    for layer in image.layers:  # the registry has them now; keep the disk footprint down
        layer.path.unlink(missing_ok=True)
    sample = Sample(name, repo_tag, image, built - started, pushed - built)
    log(
        f"  {name}: {len(layers)} layer(s), {sample.size / MIB:.1f} MiB, built {sample.build_s:.1f} s, "
        f"pushed {sample.push_s:.1f} s"
    )
    return sample


# -- the benchmark -----------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.repeat: int = args.repeat if args.repeat is not None else (1 if args.quick else 3)
        self.counter = 0
        self.rows: list[Measurement | Derived] = []
        self.extra: dict[str, Any] = {}
        self.skopeo_flags, self.skopeo_env = skopeo_env(workdir)
        self.our_env = dict(os.environ)
        if args.state_dir:
            self.our_env["DOCKER_IMAGE_PUSHER_STATE_DIR"] = str(Path(args.state_dir).absolute())
        self.registry: RunningRegistry | None = None
        self.state_dir = Path(args.state_dir).absolute() if args.state_dir else default_state_dir()
        self.warm_cache = workdir / "warm-cache"

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def fresh(self, label: str) -> Path:
        self.counter += 1
        return self.workdir / "targets" / f"{self.counter:03d}-{label}"

    @property
    def host(self) -> str:
        assert self.registry is not None
        return self.registry.host

    # -- commands

    def skopeo_command(self, sample: Sample, target: Path) -> list[str]:
        source = f"docker://{self.host}/{sample.repo_tag}"
        return ["skopeo", *self.skopeo_flags, "copy", "--src-tls-verify=false", source, f"oci:{target}:v1"]

    def our_pull_command(self, sample: Sample, cache: Path) -> list[str]:
        return [
            str(TOOL),
            "pull",
            f"{self.host}/{sample.repo_tag}",
            "--registry",
            f"http://{self.host}",
            "--cache-dir",
            str(cache),
            "--disable-progress",
        ]

    def server_pid(self) -> int | None:
        try:
            return int(json.loads((self.state_dir / "server.json").read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def run(self, command: list[str], *, label: str, env: dict[str, str]) -> Run:
        scratch = self.fresh(re.sub(r"\W+", "-", label) + "-log")
        ours = command[0] == str(TOOL)
        pid = self.server_pid() if ours else None
        before = process_cpu_s(pid) if pid else None
        run = run_measured(command, scratch=scratch, env=env, cwd=self.workdir)
        after = process_cpu_s(pid) if pid else None
        if before is not None and after is not None:
            run.server_cpu_s = after - before
        state = "ok" if run.ok else f"FAILED exit {run.exit_code}" + (" (timeout)" if run.timed_out else "")
        self.log(f"    {label}: {run.wall_s:.2f} s, {run.peak_rss_mib:.0f} MiB RSS, {state}")
        if not run.ok:
            self.log("      " + (run.stderr_tail or run.stdout_tail).strip().replace("\n", "\n      ")[-1500:])
        return run

    def measure(
        self, image: str, tool: str, size: int | None, make_command: Callable[[Path], list[str]], env: dict[str, str]
    ) -> Measurement:
        measurement = Measurement(image, tool, size)
        for _ in range(self.repeat):
            target = self.fresh(re.sub(r"\W+", "-", f"{image}-{tool}"))
            run = self.run(make_command(target), label=f"{image} / {tool}", env=env)
            measurement.runs.append(run)
            shutil.rmtree(target, ignore_errors=True)
            if not run.ok:
                break  # a failing tool fails the same way again; do not wait for it N times
        self.rows.append(measurement)
        return measurement

    def flow_time(self, image: str, measurement: Measurement, size: int) -> None:
        """Our CLI's own "... in X.X s" (flow run only, without process start-up and Prefect import)."""
        seconds: list[float] = []
        for run in measurement.runs:
            found = re.search(r" in ([\d.]+) s", run.stdout_tail) if run.ok else None
            if found:
                seconds.append(float(found.group(1)))
        if seconds:
            self.rows.append(
                Derived(image, "ours: flow time (self-reported)", statistics.median(seconds), size, "CLI's own timer")
            )

    # -- steps

    def limits(self, big: Sample) -> None:
        self.log("physical limits")
        layer = big.image.layers[0]
        url = f"{self.registry.url if self.registry else ''}/v2/{big.repo_tag.partition(':')[0]}/blobs/{layer.digest}"
        curl = self.measure(
            big.name,
            "curl GET blob -> /dev/null",
            layer.size,
            lambda _t: ["curl", "-sf", "-o", "/dev/null", url],
            dict(os.environ),
        )
        curl.note = "raw HTTP transfer of the layer blob, no hashing, no disk"
        for chunk in (64 * 1024, MIB):
            self.rows.append(
                Derived(
                    "-",
                    f"hashlib sha256, {chunk // 1024} KiB chunks",
                    hash_rate(layer.size, chunk),
                    layer.size,
                    "in-process, data already in memory",
                )
            )

    def warm_up(self, sample: Sample) -> None:
        self.log("warm-up (untimed in the table): our pull, starts the Prefect server if needed")
        status = subprocess.run(
            [str(TOOL), "server", "status"], capture_output=True, text=True, env=self.our_env, check=False
        )
        run = self.run(self.our_pull_command(sample, self.warm_cache), label="warm-up pull", env=self.our_env)
        self.extra["warm_up"] = {
            "server_status_before": (status.stdout or status.stderr).strip(),
            "run": asdict(run),
        }

    def fixed_costs(self, tiny: Sample) -> None:
        self.log("fixed costs")
        self.measure("-", "ours: --help", None, lambda _t: [str(TOOL), "--help"], self.our_env)
        self.measure(
            "-", "ours: list", None, lambda _t: [str(TOOL), "list", "--cache-dir", str(self.warm_cache)], self.our_env
        )
        cached = self.measure(
            tiny.name,
            "ours: pull, all cached",
            None,
            lambda _t: self.our_pull_command(tiny, self.warm_cache),
            self.our_env,
        )
        cached.note = "same image again into the warm-up cache: the fixed cost of one flow run"

    def compare(self, sample: Sample) -> None:
        self.log(f"image {sample.name}")
        self.measure(sample.name, "skopeo copy", sample.size, lambda t: self.skopeo_command(sample, t), self.skopeo_env)
        ours = self.measure(
            sample.name, "ours: pull", sample.size, lambda t: self.our_pull_command(sample, t), self.our_env
        )
        self.flow_time(sample.name, ours, sample.size)

    def rss_scaling(self, small: Sample, large: Sample | None) -> None:
        self.log("peak RSS vs layer size")
        results: dict[str, float | None] = {}
        for sample in (small, large):
            if sample is None:
                continue
            m = self.measure(
                sample.name, "ours: pull", sample.size, functools.partial(self.our_pull_command, sample), self.our_env
            )
            m.note = "peak RSS check"
            results[sample.name] = m.median.peak_rss_mib if m.median else None
        self.extra["rss_scaling"] = results


def hash_rate(total: int, chunk: int) -> float:
    """Seconds for hashlib.sha256 over `total` bytes fed in `chunk`-byte pieces of one in-memory buffer."""
    buffer = memoryview(os.urandom(chunk))
    digest = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(total // chunk):
        digest.update(buffer)
    digest.update(buffer[: total % chunk])
    return time.perf_counter() - started


# -- output ------------------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def render(bench: Bench, info: dict[str, Any]) -> str:
    def find(image: str, tool: str) -> Measurement | Derived | None:
        return next((r for r in bench.rows if r.image == image and r.tool == tool), None)

    lines = [
        f"machine: {info['date']}, nproc {info['nproc']}, {info['cpu']} (sha_ni: {info['sha_ni']}), "
        f"{info['mem_total_mib']} MiB RAM, Python {info['python']}, kernel {info['kernel']}, "
        f"{info['skopeo']}, {info['registry']}; repeats: {bench.repeat} (median shown)",
        "",
        "| image | tool | wall s | MiB/s | CPU s | server CPU s | peak RSS MiB "
        "| ours/skopeo wall | ours/skopeo MiB/s | ours/curl MiB/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    curl_rows = [r for r in bench.rows if r.tool.startswith("curl")]
    curl_rate = curl_rows[0].mib_s if curl_rows else None
    for row in bench.rows:
        run = row.median if isinstance(row, Measurement) else None
        failed = isinstance(row, Measurement) and not row.ok
        wall = "FAILED" if failed else _fmt(row.wall_s)
        vs_wall = vs_rate = vs_curl = ""
        if row.tool.startswith("ours") and row.size_bytes:
            skopeo = find(row.image, "skopeo copy")
            if skopeo is not None:
                vs_wall = _ratio(row.wall_s, skopeo.wall_s)
                vs_rate = _ratio(row.mib_s, skopeo.mib_s)
            if find(row.image, "curl GET blob -> /dev/null") is not None:
                vs_curl = _ratio(row.mib_s, curl_rate)
        lines.append(
            f"| {row.image} | {row.tool} | {wall} | {_fmt(row.mib_s, 0)} | {_fmt(run.cpu_s if run else None)} "
            f"| {_fmt(run.server_cpu_s if run else None)} "
            f"| {_fmt(run.peak_rss_mib if run else None, 0)} | {vs_wall} | {vs_rate} | {vs_curl} |"
        )
    lines.append("")
    warm = bench.extra.get("warm_up")
    if warm:
        run = warm["run"]
        state = "ok" if run["exit_code"] == 0 and not run["timed_out"] else f"FAILED exit {run['exit_code']}"
        lines.append(
            f"warm-up pull (untimed above): {run['wall_s']:.2f} s, {state}; "
            f"server before: {warm['server_status_before'].splitlines()[0] if warm['server_status_before'] else '?'}"
        )
    rss = bench.extra.get("rss_scaling") or {}
    if len(rss) == 2 and None not in rss.values():
        small, large = rss.values()
        assert small is not None and large is not None
        verdict = "PASS" if large - small <= RSS_TARGET_MIB else "FAIL"
        lines.append(
            f"peak RSS, 10 MiB layer vs 1 GiB layer: {small:.0f} vs {large:.0f} MiB "
            f"({large - small:+.0f} MiB; target <= +{RSS_TARGET_MIB:.0f}): {verdict}"
        )
        rows = [find(name, "ours: pull") for name in rss]
        if all(isinstance(r, Measurement) and r.wall_s and r.size_bytes for r in rows):
            (a_size, a_wall), (b_size, b_wall) = [(r.size_bytes or 0, r.wall_s or 0.0) for r in rows if r]
            if b_wall > a_wall:
                lines.append(
                    f"our marginal rate (1 GiB minus 10 MiB pull, fixed costs cancel): "
                    f"{(b_size - a_size) / MIB / (b_wall - a_wall):.0f} MiB/s"
                )
    elif rss:
        lines.append(
            "peak RSS, 1 GiB layer: skipped (--quick) or failed; "
            + ", ".join(f"{k}: {_fmt(v, 0)} MiB" for k, v in rss.items())
        )
    failures = [r for r in bench.rows if isinstance(r, Measurement) and not r.ok]
    for row in failures:
        last = row.runs[-1]
        text = (last.stderr_tail or last.stdout_tail).strip()[-800:]
        lines.append(f"\nFAILED {row.image} / {row.tool} (exit {last.exit_code}):\n```\n{text}\n```")
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run each, skip the 1 GiB layer RSS check")
    parser.add_argument("--repeat", type=int, help="runs per measurement [default: 3, --quick: 1]")
    parser.add_argument("--state-dir", help="DOCKER_IMAGE_PUSHER_STATE_DIR for our tool [default: the user's]")
    parser.add_argument("--stop-server", action="store_true", help="stop our Prefect server at the end")
    parser.add_argument("--tmp-dir", help="where the temp working dir goes [default: system temp]")
    parser.add_argument("--json", default=str(OUT_JSON), help=f"results file [default: {OUT_JSON}]")
    args = parser.parse_args(argv)

    if not TOOL.exists():
        print(f"{TOOL} is missing: run `make setup` first", file=sys.stderr)
        return 2
    info = machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="pull-bench-", dir=args.tmp_dir))
    bench = Bench(args, workdir)
    started = time.perf_counter()
    try:
        bench.log(f"working dir {workdir}")
        bench.registry = start_plain_registry(workdir / "registry", access_log=False)
        bench.log(f"registry {bench.registry.url}; building and pushing images")
        tiny = make_sample("tiny", [4096], workdir, bench.registry, bench.log)
        big = make_sample("big-512m", [512 * MIB], workdir, bench.registry, bench.log)
        small = make_sample("small-40x256k", [256 * 1024] * 40, workdir, bench.registry, bench.log)
        rss_small = make_sample("rss-10m", [10 * MIB], workdir, bench.registry, bench.log)
        rss_large = None if args.quick else make_sample("rss-1g", [1024 * MIB], workdir, bench.registry, bench.log)
        bench.extra["images"] = {
            s.name: {"bytes": s.size, "layers": len(s.image.layers), "build_s": s.build_s, "push_s": s.push_s}
            for s in (tiny, big, small, rss_small, rss_large)
            if s is not None
        }

        bench.warm_up(tiny)
        bench.compare(big)
        bench.limits(big)
        bench.compare(small)
        bench.fixed_costs(tiny)
        bench.rss_scaling(rss_small, rss_large)
    finally:
        if bench.registry is not None:
            bench.registry.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if args.stop_server:
            subprocess.run([str(TOOL), "server", "stop"], env=bench.our_env, check=False)
    table = render(bench, info)
    print(table)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": info,
        "args": vars(args),
        "repeat": bench.repeat,
        "total_s": time.perf_counter() - started,
        "rows": [r.to_json() for r in bench.rows],
        **bench.extra,
        "table": table,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    bench.log(f"\nwrote {out}")
    return 0 if all(r.ok for r in bench.rows if isinstance(r, Measurement)) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Checks and figures shared by the fault tests."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rig.fault_proxy import FaultProxy
from rig.images import BuiltImage

MIB = 1 << 20
RESEND_PER_DOWNLOAD_FAULT = MIB
READ_TIMEOUT = "2"  # --read-timeout for every run: a stall must cost seconds, not a minute


def docker_login(home: Path, host: str, user: str = "user", password: str = "secret-pass") -> None:
    """docker's config.json in the CLI's HOME, so a run finds the credentials for `host` (a proxy's)."""
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (home / ".docker").mkdir(exist_ok=True)
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))


def downloaded_twice(proxy: FaultProxy, images: Sequence[BuiltImage]) -> int:
    """Bytes the registry sent twice: everything sent for the images' blobs beyond their sizes."""
    return sum(max(0, proxy.sent("down", b.digest) - b.size) for image in images for b in image.blobs)


def uploaded_twice(proxy: FaultProxy, images: Sequence[BuiltImage]) -> int:
    """Bytes the client sent twice: every upload body byte beyond one copy of each of the images' blobs."""
    return proxy.total("up") - sum(b.size for image in images for b in image.blobs)


def assert_cache_sound(cache: Path) -> int:
    """Every blob in the cache hashes to its name, and no download is left half-way in blobs/; returns how many."""
    count = 0
    for path in sorted((cache / "blobs" / "sha256").glob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == path.name, f"the cache holds a wrong blob under {path.name} (its content has {digest})"
        count += 1
    return count


def cache_contents(cache: Path) -> dict[str, str]:
    """What the cache holds for its users (blobs, manifests, index.json): relative path -> sha256 of the file."""
    files = [p for p in cache.rglob("*") if p.is_file() and p.relative_to(cache).parts[0] in ("blobs", "manifests")]
    files += [cache / "index.json"] if (cache / "index.json").exists() else []
    return {str(p.relative_to(cache)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def stats_retries(stats_file: Path) -> int:
    """Blob retries the run reported in its --stats-file (0 if the file is missing: a failed run)."""
    if not stats_file.exists():
        return 0
    return int(json.loads(stats_file.read_text())["retries"])


@dataclass
class Figures:
    mode: str
    fault: str
    ok: bool
    resent_bytes: int
    faults: int
    retries: int
    seconds: float


def record(figures: Figures) -> None:
    path = os.environ.get("FAULT_FIGURES")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps(asdict(figures)) + "\n")


class Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 1)


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what}: not reached within {timeout} s")


def verify_problems(cli: Callable[..., subprocess.CompletedProcess[str]]) -> list[tuple[str, str]]:
    """`verify --json` on the run's cache ("cache" in the CLI's folder): (kind, path) of each problem found;
    exit 0 exactly when there is none."""
    done = cli("verify", "--json", "--cache-dir", "cache")
    report = json.loads(done.stdout)
    problems = [(p["kind"], p["path"]) for p in report["problems"]]
    assert (done.returncode == 0) == (not problems), done.stdout + done.stderr
    return problems

"""The project's prefect.yaml deployed to the session's Prefect server, and process workers to run it.

Everything goes through Prefect's own command line (`prefect --no-prompt deploy --all`, `prefect worker
start`), run from a scratch folder that holds a copy of prefect.yaml, as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
POOL = "docker-image-pusher"


class Project:
    def __init__(self, folder: Path, api_url: str) -> None:
        self.folder = folder
        self.api_url = api_url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DOCKER_IMAGE_PUSHER_"))}
        self.env.update(
            PREFECT_API_URL=api_url,
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_PREFETCH_SECONDS="2",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            HOME=str(folder),  # no user docker config leaks in
        )
        self.workers: list[tuple[subprocess.Popen[bytes], Path]] = []

    def prefect(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PREFECT, *args], cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def deploy(self) -> str:
        pool = self.prefect("work-pool", "create", POOL, "--type", "process", "--overwrite")
        assert pool.returncode == 0, pool.stdout + pool.stderr
        done = self.prefect("--no-prompt", "deploy", "--all")
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    def trigger(self, deployment: str, parameters: dict[str, Any]) -> str:
        """A run of ``deployment`` now, with these parameters over the deployment's; returns its id."""
        done = self.prefect("deployment", "run", deployment, "--params", json.dumps(parameters))
        assert done.returncode == 0, done.stdout + done.stderr
        for line in done.stdout.splitlines():
            if "UUID:" in line:
                return line.split("UUID:")[1].strip()
        raise AssertionError(done.stdout)

    def start_worker(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        log = self.folder / f"worker-{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*PREFECT, "worker", "start", "--pool", POOL, "--name", name, *extra],
                cwd=self.folder, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.workers.append((proc, log))
        return proc

    def worker_output(self) -> str:
        return "".join(log.read_text(errors="replace") for _, log in self.workers)

    def stop_workers(self) -> None:
        for proc, _ in self.workers:
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in self.workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def project(tmp_path: Path, prefect_api: str) -> Iterator[Project]:
    shutil.copy(ROOT / "prefect.yaml", tmp_path / "prefect.yaml")
    p = Project(tmp_path, prefect_api)
    try:
        yield p
    finally:
        p.stop_workers()


def wait_for_run(api_url: str, run_id: str, timeout: float = 300) -> Any:
    """The flow run once it is final (or the assertion after ``timeout`` seconds)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + timeout
    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run_id)  # type: ignore[arg-type]
            if run.state is not None and run.state.is_final():
                return run
            assert time.monotonic() < deadline, f"run {run_id} still {run.state} after {timeout} s"
            time.sleep(1)

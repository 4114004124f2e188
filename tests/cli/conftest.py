"""Fixtures for end-to-end CLI tests: one local Prefect server for the session, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TOOL = [sys.executable, "-m", "docker_image_pusher"]


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Our own background server management, started once in a session state folder."""
    state = tmp_path_factory.mktemp("state")
    old = os.environ.get("DOCKER_IMAGE_PUSHER_STATE_DIR")
    os.environ["DOCKER_IMAGE_PUSHER_STATE_DIR"] = str(state)
    from docker_image_pusher.agent import stop_agents
    from docker_image_pusher.server import ensure_server, stop_server

    try:
        yield ensure_server()
    finally:
        stop_agents()
        stop_server()
        if old is None:
            os.environ.pop("DOCKER_IMAGE_PUSHER_STATE_DIR", None)
        else:
            os.environ["DOCKER_IMAGE_PUSHER_STATE_DIR"] = old


class Cli:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(self, *args: str, input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DOCKER_IMAGE_PUSHER_"))}
        env["DOCKER_IMAGE_PUSHER_STATE_DIR"] = os.environ.get("DOCKER_IMAGE_PUSHER_STATE_DIR", str(self.cwd / "state"))
        env["HOME"] = str(self.cwd)  # no user config file leaks in
        return subprocess.run(
            [*TOOL, *args], cwd=self.cwd, env=env, input=input, capture_output=True, text=True, timeout=timeout
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def cli_with_server(tmp_path: Path, prefect_api: str) -> Cli:
    return Cli(tmp_path)

"""Fixtures for end-to-end CLI tests: a CLI runner, alone or with the session's Prefect server (rig)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = [sys.executable, "-m", "docker_image_pusher"]


class Cli:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(self, *args: str, input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DOCKER_IMAGE_PUSHER_"))}
        env.pop("DOCKER_CONFIG", None)  # with HOME below: no docker login of the user's leaks in
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


def one_line_error(stderr: str) -> str:
    """The failure of a run as a user sees it: exactly one ``error:`` line, the last one (progress lines may
    come first), and no traceback. Returns that line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    assert "Traceback" not in stderr
    return errors[0]

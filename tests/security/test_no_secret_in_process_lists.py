"""No password in any process's command line while a logged-in pull runs (anyone on the machine can read
those), and none in the environment of the agent that the pull started (it outlives the command)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from rig import skopeo
from rig.fixtures import SampleImages
from rig.proxy import TcpProxy
from rig.registry import RunningRegistry
from rig.registry_config import BasicAuth

from .conftest import Runner, Secrets, new_password

USER = "ps-user"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process ended meanwhile, or is not ours to read
        return b""


def _command_lines() -> dict[int, bytes]:
    return {int(p.name): _read(p / "cmdline") for p in Path("/proc").iterdir() if p.name.isdigit()}


def _agent_pids(state: Path) -> set[int]:
    pids = set()
    for pid_file in (state / "agent").glob("*.pid"):
        text = _read(pid_file).strip()
        if text.isdigit() and Path(f"/proc/{int(text)}").exists():
            pids.add(int(text))
    return pids


def test_a_slow_logged_in_pull_shows_its_password_in_no_command_line(
    runner: Runner, registry_factory: Any, sample_image: SampleImages, unique_repo: str
) -> None:
    password = new_password()
    registry: RunningRegistry = registry_factory(auth=BasicAuth(USER, password))
    skopeo.copy_layout_to_registry(sample_image([1_000_000, 300_000]), registry, f"{unique_repo}:v1")
    secrets = Secrets()
    secrets.add_login(USER, password)
    with TcpProxy(registry, rate_limit=300_000) as slow, (runner.root / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            runner.popen_args(["pull", f"{slow.host}/{unique_repo}:v1", "-u", USER, "--password-stdin",
                               "--cache-dir", "c", "--max-concurrent", "1"]),
            cwd=runner.work, env=runner.env(), stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        assert process.stdin is not None
        process.stdin.write(password.encode() + b"\n")
        process.stdin.close()
        hits: list[str] = []
        seen_cli = seen_agent = during_transfer = 0
        agents: set[int] = set()
        while process.poll() is None:
            lines = _command_lines()
            agents |= _agent_pids(runner.state)
            seen_cli += process.pid in lines
            seen_agent += any(pid in lines for pid in agents)
            during_transfer += slow.bytes_to_client > 100_000
            for pid, line in lines.items():
                hits += secrets.found_in(f"command line of {pid}", line)
            time.sleep(0.1)
        process.wait(timeout=300)
    assert process.returncode == 0, (runner.root / "stderr").read_text()
    assert seen_cli and seen_agent and during_transfer, (seen_cli, seen_agent, during_transfer)
    assert not hits, hits


def test_the_agent_started_by_a_command_with_an_env_login_does_not_keep_it(
    runner: Runner, registry_factory: Any, sample_image: SampleImages, unique_repo: str
) -> None:
    from docker_image_pusher.agent import stop_agents

    password = new_password()
    registry: RunningRegistry = registry_factory(auth=BasicAuth(USER, password))
    skopeo.copy_layout_to_registry(sample_image([1000]), registry, f"{unique_repo}:v1")
    stop_agents()
    done = runner("pull", registry.ref(f"{unique_repo}:v1"), "--cache-dir", "c",
                  env={"DOCKER_IMAGE_PUSHER_USERNAME": USER, "DOCKER_IMAGE_PUSHER_PASSWORD": password})  # fmt: skip
    assert done.returncode == 0, done.stderr
    agents = _agent_pids(runner.state)
    assert agents
    for pid in agents:
        environment = _read(Path(f"/proc/{pid}/environ"))
        assert b"DOCKER_IMAGE_PUSHER_STATE_DIR=" in environment  # read it, and it is this run's agent
        assert password.encode() not in environment
        assert b"DOCKER_IMAGE_PUSHER_USERNAME" not in environment

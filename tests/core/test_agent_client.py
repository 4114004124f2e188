"""The CLI's side of the agent: what a run request carries (the command's umask), what environment a new
agent gets (no logins), and that stop_agents returns only once the agent accepts no more runs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docker_image_pusher.agent import _client


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path (Unix socket paths hold 108 bytes; pytest's tmp_path can be longer)."""
    folder = Path(tempfile.mkdtemp(prefix="dip-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _serve_once(path: Path, reply: dict[str, Any], seen: list[dict[str, Any]]) -> threading.Thread:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def run() -> None:
        with server:
            conn, _ = server.accept()
            with conn, conn.makefile("rwb") as stream:
                seen.append(json.loads(stream.readline()))
                stream.write(json.dumps(reply).encode() + b"\n")
                stream.flush()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_run_request_carries_the_umask_of_the_command(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setattr(_client, "_agent_dir", lambda: short_dir)
    monkeypatch.setattr(_client, "_fingerprint", lambda api_url: "fp")
    seen: list[dict[str, Any]] = []
    thread = _serve_once(short_dir / "fp.sock", {"type": "result", "result": {"ok": 1}}, seen)
    old = os.umask(0o027)
    try:
        result, _ = _client.run_in_agent("pull", {}, concurrency={}, credentials={}, on_event=lambda e: None)
    finally:
        os.umask(old)
    thread.join(timeout=5)
    assert result == {"ok": 1}
    assert seen[0]["umask"] == 0o027


def test_a_new_agent_gets_the_environment_without_the_logins(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("USERNAME", "PASSWORD", "SOURCE_USERNAME", "SOURCE_PASSWORD", "DESTINATION_PASSWORD"):
        monkeypatch.setenv(f"DOCKER_IMAGE_PUSHER_{name}", "x")
    monkeypatch.setenv("DOCKER_IMAGE_PUSHER_STATE_DIR", "/somewhere")
    env = _client._agent_environment()
    assert not [k for k in env if k.endswith(("_PASSWORD", "_USERNAME")) and k.startswith("DOCKER_IMAGE_PUSHER_")]
    assert env["DOCKER_IMAGE_PUSHER_STATE_DIR"] == "/somewhere" and env["PATH"] == os.environ["PATH"]


def test_waiting_for_a_stopped_agent_ends_once_it_accepts_no_more_connections(short_dir: Path) -> None:
    path = short_dir / "a.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    closer = threading.Timer(0.5, server.close)
    closer.start()
    _client._wait_closed(path, timeout=60)
    closer.join()
    assert _client._connect(path) is None  # it returned because the agent closed, not because it gave up


def _agent_files(folder: Path, stem: str, age: float, suffixes: tuple[str, ...] = (".log", ".pid", ".lock")) -> None:
    for suffix in suffixes:
        path = folder / f"{stem}{suffix}"
        path.write_text("1")
        os.utime(path, (time.time() - age, time.time() - age))


def test_starting_an_agent_removes_the_files_of_agents_that_ended_long_ago(short_dir: Path) -> None:
    hour = 3600.0
    _agent_files(short_dir, "ended", hour)  # an agent of an earlier server port or code: no socket
    _agent_files(short_dir, "ended2", hour, (".log", ".pid", ".lock", ".sock"))  # a killed agent's socket file
    _agent_files(short_dir, "starting", 5)  # an agent being started right now: no socket yet
    _agent_files(short_dir, "live", hour)  # an agent that is up, idle for an hour
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(short_dir / "live.sock"))
    live.listen(1)
    os.utime(short_dir / "live.sock", (time.time() - hour, time.time() - hour))  # kept for its answer, not its age
    _agent_files(short_dir, "mine", hour)
    with live:
        removed = _client._sweep_ended(short_dir, keep="mine")
    assert removed == ["ended", "ended2"]
    kept = {f"{stem}{suffix}" for stem in ("starting", "live", "mine") for suffix in (".lock", ".log", ".pid")}
    assert {p.name for p in short_dir.iterdir()} == kept | {"live.sock"}

"""The CLI's side of the agent: find or start the agent for this code and this Prefect API, hand it a run."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import PusherError
from ..progress.events import Event
from ._protocol import event_from_json, read_message, write_message

__all__ = ["AgentUnavailable", "run_in_agent", "stop_agents"]

_START_TIMEOUT = 120.0
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux


class AgentUnavailable(PusherError):
    """The agent could not be reached or started; nothing was sent, so the run can go in-process instead."""


_PACKAGE = Path(__file__).resolve().parent.parent


def _agent_dir() -> Path:
    from ..server import state_dir

    path = state_dir() / "agent"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _fingerprint(api_url: str) -> str:
    """Changes when the code, the interpreter or the Prefect API changes: a stale agent is never used."""
    h = hashlib.sha256(f"{__version__}\0{sys.executable}\0{api_url}".encode())
    for root, _dirs, files in sorted(os.walk(_PACKAGE, followlinks=True)):
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(root, name))
                h.update(f"{root}/{name}\0{st.st_mtime_ns}\0{st.st_size}\0".encode())
    return h.hexdigest()[:16]


def _agent_environment() -> dict[str, str]:
    """This command's environment without its logins (DOCKER_IMAGE_PUSHER_[SOURCE_|DESTINATION_]USERNAME and
    PASSWORD): the agent outlives the command and serves others; each run brings its own login."""
    return {
        key: value
        for key, value in os.environ.items()
        if not (key.startswith("DOCKER_IMAGE_PUSHER_") and key.endswith(("_PASSWORD", "_USERNAME")))
    }


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def _start(path: Path, api_url: str) -> socket.socket:
    from ..cache._lock import exclusive_lock

    with exclusive_lock(path.with_suffix(".lock")):
        sock = _connect(path)
        if sock:
            return sock
        log_path = path.with_suffix(".log")
        env = dict(_agent_environment(), PREFECT_API_URL=api_url)
        with log_path.open("wb") as log:  # one agent's life: the last one's ended with it
            proc = subprocess.Popen(
                [sys.executable, "-m", "docker_image_pusher.agent", "--socket", str(path)],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd="/",
            )  # fmt: skip
        path.with_suffix(".pid").write_text(str(proc.pid))
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            sock = _connect(path)
            if sock:
                _sweep_ended(path.parent, keep=path.stem)
                return sock
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise AgentUnavailable(f"the docker-image-pusher agent did not start; see {log_path}")


_AGENT_FILES = (".sock", ".log", ".pid", ".lock")


def _sweep_ended(folder: Path, *, keep: str) -> list[str]:
    """Remove the files of agents that have ended and will not come back: each local server start picks a new
    port, and each change of the code a new fingerprint, so without this the folder gains four files per
    reboot or upgrade. An agent counts as ended when its socket answers no connection and none of its files
    changed for longer than an agent takes to start (one may be starting right now). Returns the fingerprints
    removed."""
    removed = []
    stems = {p.stem for suffix in _AGENT_FILES for p in folder.glob(f"*{suffix}")} - {keep}
    for stem in sorted(stems):
        files = [folder / f"{stem}{suffix}" for suffix in _AGENT_FILES]
        if time.time() - max(map(_mtime, files)) < _START_TIMEOUT:
            continue
        sock = _connect(folder / f"{stem}.sock")
        if sock is not None:
            sock.close()
            continue
        for f in files:
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        removed.append(stem)
    return removed


def _mtime(path: Path) -> float:
    """0 for a file that is not there (or went away meanwhile)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def run_in_agent(
    flow: str,
    params: dict[str, Any],
    *,
    concurrency: dict[str, Any],
    credentials: dict[str, tuple[str, str] | None],
    on_event: Callable[[Event], None],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a flow in the agent (starting it if needed); returns the flow's result as a dict, and the
    concurrency controller's statistics."""
    from ..server import ensure_server

    api_url = os.environ.get("PREFECT_API_URL") or ensure_server()
    path = _agent_dir() / f"{_fingerprint(api_url)}.sock"
    if len(str(path).encode()) > _MAX_SOCKET_PATH:
        raise AgentUnavailable(f"the state folder's path is too long for a Unix socket: {path}")
    sock = _connect(path) or _start(path, api_url)
    from ..cache import current_umask

    request: dict[str, Any] = {
        "op": "run", "flow": flow, "params": params, "concurrency": concurrency, "umask": current_umask(),
    }  # fmt: skip
    if credentials:  # flow parameter -> login; the agent registers each and passes its auth_ref instead
        request["credentials"] = {
            param: {"username": login[0], "password": login[1]} if login else None
            for param, login in credentials.items()
        }
    with sock, sock.makefile("rwb") as stream:
        write_message(stream, request)
        while True:
            message = read_message(stream)
            if message is None:
                raise PusherError(
                    f"the docker-image-pusher agent stopped during the run; see {path.with_suffix('.log')}"
                )
            kind = message.get("type")
            if kind == "event":
                event = event_from_json(message)
                if event is not None:
                    on_event(event)
            elif kind == "result":
                result: dict[str, Any] = message["result"]
                return result, dict(message.get("concurrency") or {})
            elif kind == "error":
                err = PusherError(str(message.get("message")))
                err.exit_code = int(message.get("exit_code") or 1)
                raise err


def stop_agents() -> int:
    """Ask every agent of this state folder to stop; returns how many were running."""
    stopped = 0
    for path in _agent_dir().glob("*.sock"):
        sock = _connect(path)
        if sock is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        with sock, sock.makefile("rwb") as stream:
            write_message(stream, {"op": "stop"})
            read_message(stream)
        _wait_closed(path)
        stopped += 1
    return stopped


def _wait_closed(path: Path, timeout: float = 10.0) -> None:
    """Until the agent at ``path`` accepts no more connections (it stops accepting within a second of a stop):
    a command run right after ``stop_agents`` starts a new agent instead of handing its run, and its login,
    to one on its way out (that run failed with "the agent stopped during the run")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = _connect(path)
        if probe is None:
            return
        probe.close()
        time.sleep(0.05)

"""The local background Prefect server that CLI runs report to, started on first use and reused.

Without PREFECT_API_URL, Prefect would start an ephemeral server in every process (10-14 s here, and it
is killed before it records most task runs). Instead we keep one uvicorn process running Prefect's API,
its SQLite database under our state folder, detached from the terminal, its output in a log file.

We spawn uvicorn ourselves rather than through ``prefect server start --background``: that command
connects the server's stdout and stderr to pipes that nobody reads after it exits, so a chatty server
would block once the pipe buffer fills.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import PusherError

__all__ = ["ServerInfo", "ensure_server", "server_status", "state_dir", "stop_server"]

_START_TIMEOUT = 120.0


def state_dir() -> Path:
    explicit = os.environ.get("DOCKER_IMAGE_PUSHER_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "docker-image-pusher"


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    port: int

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"


def _info_path() -> Path:
    return state_dir() / "server.json"


def _read_info() -> ServerInfo | None:
    try:
        obj = json.loads(_info_path().read_text())
        return ServerInfo(pid=int(obj["pid"]), port=int(obj["port"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def _healthy(info: ServerInfo, timeout: float = 2.0) -> bool:
    # A raw socket request keeps httpx (and Prefect) out of the fast path.
    try:
        with socket.create_connection(("127.0.0.1", info.port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET /api/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            head = s.recv(64)
    except OSError:
        return False
    return head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(home: Path) -> dict[str, str]:
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        "PREFECT__SERVER_FINAL": "1",
    }


def _spawn(port: int) -> ServerInfo:
    home = state_dir() / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    spec = importlib.util.find_spec("prefect")  # locate it without importing it (2 s)
    if spec is None or spec.origin is None:
        raise PusherError("prefect is not installed")

    command = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(Path(spec.origin).parent.parent),
        "--factory", "docker_image_pusher.server_app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--timeout-keep-alive", "5", "--log-level", "warning",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(server_env(home))
    with (state_dir() / "server.log").open("ab") as log:
        proc = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd=home
        )
    info = ServerInfo(pid=proc.pid, port=port)
    _info_path().write_text(json.dumps({"pid": info.pid, "port": info.port}))
    return info


def ensure_server() -> str:
    """The API URL of a healthy local server, starting one if needed. Safe with concurrent callers."""
    info = _read_info()
    if info and _healthy(info):
        return info.api_url
    from .cache._lock import exclusive_lock

    state_dir().mkdir(parents=True, exist_ok=True)
    with exclusive_lock(state_dir() / "server.lock"):
        info = _read_info()
        if info and _alive(info.pid):
            if _wait_healthy(info, 30.0):
                return info.api_url
            _terminate(info.pid)
        port = info.port if info and _port_free(info.port) else _free_port()
        info = _spawn(port)
        if not _wait_healthy(info, _START_TIMEOUT):
            _terminate(info.pid)
            raise PusherError(f"the local Prefect server did not start; see {state_dir() / 'server.log'}")
        return info.api_url


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_healthy(info: ServerInfo, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _healthy(info):
            return True
        if not _alive(info.pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(info.pid, os.WNOHANG)
            if not _alive(info.pid):
                return False
        time.sleep(0.2)
    return False


def _is_our_server(pid: int) -> bool:
    """Guards against a recycled pid: the process must still be a uvicorn running Prefect's API (through our
    server_app, or directly as earlier versions started it)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"uvicorn" in cmdline and (
        b"docker_image_pusher.server_app" in cmdline or b"prefect.server.api.server" in cmdline
    )


def _terminate(pid: int) -> None:
    if not _is_our_server(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def server_status() -> tuple[str, ServerInfo | None]:
    info = _read_info()
    if info is None:
        return "stopped", None
    if _healthy(info):
        return "running", info
    return ("starting or unhealthy", info) if _alive(info.pid) else ("stopped", None)


def stop_server() -> bool:
    info = _read_info()
    if info is None:
        return False
    stopped = _alive(info.pid) and _is_our_server(info.pid)
    if stopped:
        _terminate(info.pid)
    with contextlib.suppress(FileNotFoundError):
        _info_path().unlink()
    return stopped

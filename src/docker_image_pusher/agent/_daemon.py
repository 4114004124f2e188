"""The agent process: accept runs on a Unix socket, run each flow in its own thread, stream its events back."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import PusherError, from_os_error
from ..progress.events import Event, close_channel, open_channel
from ._protocol import event_to_json, read_message, write_message

__all__ = ["serve"]

log = logging.getLogger("docker_image_pusher.agent")


class _Agent:
    def __init__(self, socket_path: Path, idle_timeout: float) -> None:
        self.socket_path = socket_path
        self.idle_timeout = idle_timeout
        self.active = 0
        self.last_activity = time.monotonic()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def serve(self) -> None:
        from ..prefect_runtime import FLOWS, prepare_prefect

        prepare_prefect(console_logs=False)
        self.flows = FLOWS
        for runner in FLOWS.values():
            runner.preload()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            old_umask = os.umask(0o177)  # the socket carries credentials: owner only
            try:
                server.bind(str(self.socket_path))
            finally:
                os.umask(old_umask)
            server.listen(64)
            server.settimeout(1.0)
            log.info("agent %d listening on %s", os.getpid(), self.socket_path)
            while not self.stopping.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    with self.lock:
                        idle = self.active == 0 and time.monotonic() - self.last_activity > self.idle_timeout
                    if idle:
                        break
                    continue
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def _handle(self, conn: socket.socket) -> None:
        with self.lock:
            self.active += 1
        try:
            with conn, conn.makefile("rwb") as stream:
                request = read_message(stream)
                if request is None:
                    return
                op = request.get("op")
                if op == "ping":
                    write_message(stream, {"type": "pong", "pid": os.getpid()})
                elif op == "stop":
                    self.stopping.set()
                    write_message(stream, {"type": "pong", "pid": os.getpid()})
                elif op == "run":
                    self._run(conn, stream, request)
        except (OSError, ValueError) as err:
            log.warning("connection failed: %s", err)
        finally:
            with self.lock:
                self.active -= 1
                self.last_activity = time.monotonic()

    def _run(self, conn: socket.socket, stream: Any, request: dict[str, Any]) -> None:
        from ..cache import creating_with_umask
        from ..endpoint import ANONYMOUS, forget_credentials, register_credentials
        from ..registry import Credentials

        write_lock = threading.Lock()
        name, channel = open_channel()

        def forward(event: Event) -> None:
            try:
                with write_lock:
                    write_message(stream, event_to_json(event))
            except OSError:
                channel.cancel()

        def watch_client() -> None:
            # The client sends nothing after its request: EOF (or an error) means it went away.
            with contextlib.suppress(OSError):
                conn.recv(1)
            channel.cancel()

        logins: dict[str, dict[str, str] | None] = request.get("credentials") or {}
        refs = {
            param: register_credentials(Credentials(c["username"], c["password"])) if c else ANONYMOUS
            for param, c in logins.items()
        }
        channel.subscribe(forward)
        threading.Thread(target=watch_client, daemon=True).start()
        try:
            runner = self.flows[str(request.get("flow"))]
            params = dict(request.get("params") or {}, progress=name) | refs
            umask = request.get("umask")  # what the run creates gets the modes of its command's umask
            with creating_with_umask(umask if isinstance(umask, int) else None):
                result, stats = runner.run(dict(request.get("concurrency") or {}), params)
            reply: dict[str, Any] = {"type": "result", "result": dataclasses.asdict(result), "concurrency": stats}
        except PusherError as err:
            reply = {"type": "error", "message": err.message, "exit_code": err.exit_code}
        except OSError as err:
            mapped = from_os_error(err)
            reply = {"type": "error", "message": mapped.message, "exit_code": mapped.exit_code}
        except Exception as err:
            log.exception("run failed")
            reply = {"type": "error", "message": f"unexpected {type(err).__name__}: {err}", "exit_code": 1}
        finally:
            close_channel(name)
            for ref in refs.values():
                if ref != ANONYMOUS:
                    forget_credentials(ref)
        with contextlib.suppress(OSError), write_lock:
            write_message(stream, reply)


def serve(socket_path: Path, idle_timeout: float) -> None:
    _Agent(socket_path, idle_timeout).serve()

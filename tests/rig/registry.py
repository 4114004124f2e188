"""A real registry (`docker-registry serve`, CNCF distribution 2.8) as a subprocess on 127.0.0.1."""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from rig.certs import ServerCerts, make_server_certs
from rig.net import LOOPBACK, free_port, wait_for_status
from rig.registry_config import BasicAuth, TokenAuth, base_config, deep_merge, write_config

__all__ = [
    "RegistryError",
    "RegistryKind",
    "RunningRegistry",
    "start_basic_registry",
    "start_plain_registry",
    "start_registry",
    "start_tls_registry",
    "start_token_registry",
]

REGISTRY_BINARY = "docker-registry"
RegistryKind = Literal["plain", "basic", "tls", "token", "custom"]

_live: set[RunningRegistry] = set()


class RegistryError(RuntimeError):
    """The registry did not start (the message ends with the tail of its log)."""


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _clean_env() -> dict[str, str]:
    # distribution reads REGISTRY_* variables as config overrides: never let the caller's environment in.
    return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}


@dataclass(eq=False)
class RunningRegistry:
    """A registry process. `host` is "127.0.0.1:PORT", what goes in image references."""

    kind: RegistryKind
    host: str
    url: str
    scheme: str
    port: int
    username: str | None
    password: str | None
    ca_cert: Path | None  # PEM to trust (TLS only)
    cert_dir: Path | None  # folder with only ca.crt, for skopeo --*-cert-dir (TLS only)
    storage_dir: Path
    log_path: Path
    config_path: Path
    workdir: Path
    config: dict[str, Any] = field(repr=False)
    token_auth: TokenAuth | None = None
    startup_timeout: float = 20.0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __hash__(self) -> int:
        return id(self)

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def creds(self) -> tuple[str, str] | None:
        """(username, password) a client should use, or None for anonymous."""
        if self.username is None or self.password is None:
            return None
        return (self.username, self.password)

    def ref(self, repo_and_tag: str) -> str:
        """ "repo:tag" or "repo@sha256:..." -> "127.0.0.1:PORT/repo:tag"."""
        return f"{self.host}/{repo_and_tag}"

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        """The whole log so far (both runs if restarted)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        """Start the process (same port, storage and config) and wait until GET /v2/ answers 200 or 401."""
        if self.is_running():
            return
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_clean_env(),
                start_new_session=True,
            )
        _live.add(self)
        try:
            wait_for_status(
                f"{self.url}/v2/",
                (200, 401),
                ca_cert=self.ca_cert,
                timeout=self.startup_timeout,
                alive=self.is_running,
            )
        except (TimeoutError, RuntimeError) as err:
            self.stop()
            tail = _log_tail(self.log_path)
            raise RegistryError(f"registry {self.kind} on {self.host} did not start: {err}\n{tail}") from err

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL). Storage stays; safe to call twice."""
        proc, self.process = self.process, None
        _live.discard(self)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        """Stop and start again on the same port with the same storage."""
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the process (no draining: requests in flight are cut off); `start()` brings it back.

        Upload sessions survive: their data is in storage and their `_state` is signed with the config's fixed
        http secret, so `GET <upload URL>` after a restart still answers 204 with the Range received."""
        proc, self.process = self.process, None
        _live.discard(self)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> RunningRegistry:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@atexit.register
def _stop_leftovers() -> None:
    for registry in list(_live):
        with contextlib.suppress(Exception):
            registry.stop()


def _kind(tls: bool, auth: BasicAuth | TokenAuth | None, extra: Mapping[str, Any] | None) -> RegistryKind:
    if extra:
        return "custom"
    if isinstance(auth, BasicAuth):
        return "basic"
    if isinstance(auth, TokenAuth):
        return "token"
    return "tls" if tls else "plain"


def start_registry(
    workdir: Path | None = None,
    *,
    tls: bool = False,
    auth: BasicAuth | TokenAuth | None = None,
    extra_config: Mapping[str, Any] | None = None,
    port: int | None = None,
    access_log: bool = True,
    startup_timeout: float = 20.0,
) -> RunningRegistry:
    """Start a registry in `workdir` (a new temp dir if None) and wait until it answers.

    `extra_config` is deep-merged into the generated config (e.g. {"http": {"draintimeout": "1s"}}).
    Layout of workdir: storage/, registry.log, config.yml, tls/ (TLS), htpasswd (Basic auth).
    """
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="rig-registry-"))
    workdir.mkdir(parents=True, exist_ok=True)
    storage_dir = workdir / "storage"
    storage_dir.mkdir(exist_ok=True)
    certs: ServerCerts | None = make_server_certs(workdir / "tls") if tls else None
    attempts = 1 if port is not None else 3
    last_error: RegistryError | None = None
    for _ in range(attempts):
        chosen = port if port is not None else free_port()
        config = base_config(
            port=chosen, storage_dir=storage_dir, workdir=workdir, tls=certs, auth=auth, access_log=access_log
        )
        if extra_config:
            config = deep_merge(config, extra_config)
        scheme = "https" if tls else "http"
        username: str | None = auth.username if auth is not None else None
        password: str | None = auth.password if auth is not None else None
        registry = RunningRegistry(
            kind=_kind(tls, auth, extra_config),
            host=f"{LOOPBACK}:{chosen}",
            url=f"{scheme}://{LOOPBACK}:{chosen}",
            scheme=scheme,
            port=chosen,
            username=username,
            password=password,
            ca_cert=certs.ca_cert if certs else None,
            cert_dir=certs.cert_dir if certs else None,
            storage_dir=storage_dir,
            log_path=workdir / "registry.log",
            config_path=write_config(workdir / "config.yml", config),
            workdir=workdir,
            config=config,
            token_auth=auth if isinstance(auth, TokenAuth) else None,
            startup_timeout=startup_timeout,
        )
        try:
            registry.start()
        except RegistryError as err:
            last_error = err
            if "address already in use" not in str(err):
                raise
        else:
            return registry
    assert last_error is not None
    raise last_error


def start_plain_registry(workdir: Path | None = None, **kwargs: Any) -> RunningRegistry:
    """Plain HTTP, no auth."""
    return start_registry(workdir, **kwargs)


def start_basic_registry(
    workdir: Path | None = None, username: str = "user", password: str = "secret-pass", **kwargs: Any
) -> RunningRegistry:
    """Plain HTTP with htpasswd Basic auth."""
    return start_registry(workdir, auth=BasicAuth(username, password), **kwargs)


def start_tls_registry(workdir: Path | None = None, **kwargs: Any) -> RunningRegistry:
    """HTTPS with a certificate from a fresh test CA (`ca_cert`), no auth."""
    return start_registry(workdir, tls=True, **kwargs)


def start_token_registry(workdir: Path | None, token_auth: TokenAuth, **kwargs: Any) -> RunningRegistry:
    """Plain HTTP with token auth against a token server (see rig.token_server.TokenServer.registry_auth())."""
    return start_registry(workdir, auth=token_auth, **kwargs)

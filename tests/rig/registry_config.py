"""The YAML config of a `docker-registry serve` (distribution 2.8) process, built as a dict."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.certs import ServerCerts

__all__ = [
    "HTTP_SECRET",
    "BasicAuth",
    "TokenAuth",
    "base_config",
    "deep_merge",
    "write_config",
    "write_htpasswd",
]

HTTP_SECRET = "docker-image-pusher-test-secret"


@dataclass(frozen=True)
class BasicAuth:
    """htpasswd users of a registry; `username`/`password` is the one tests use by default."""

    username: str = "user"
    password: str = "secret-pass"
    extra_users: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenAuth:
    """The registry side of token auth (see rig.token_server.TokenServer.registry_auth())."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path
    username: str | None = None  # the credentials a client should present to the token server
    password: str | None = None


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `extra` merged in: dicts merge key by key, anything else in `extra` wins."""
    merged = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def write_htpasswd(path: Path, auth: BasicAuth) -> Path:
    """An htpasswd file (bcrypt, what distribution accepts) made with the `htpasswd` tool."""
    users = {auth.username: auth.password, **auth.extra_users}
    lines = []
    for user, password in users.items():
        done = subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"htpasswd failed for user {user!r}: {done.stderr.strip()}")
        lines.append(done.stdout.strip())
    path.write_text("\n".join(lines) + "\n")
    return path


def base_config(
    *,
    port: int,
    storage_dir: Path,
    workdir: Path,
    tls: ServerCerts | None = None,
    auth: BasicAuth | TokenAuth | None = None,
    access_log: bool = True,
) -> dict[str, Any]:
    """A minimal config: filesystem storage, deletes on, fixed secret, warn-level log, optional TLS and auth."""
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": not access_log}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage_dir)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": HTTP_SECRET,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        "health": {"storagedriver": {"enabled": False}},
    }
    if tls is not None:
        config["http"]["tls"] = {"certificate": str(tls.server_cert), "key": str(tls.server_key)}
    if isinstance(auth, BasicAuth):
        htpasswd = write_htpasswd(workdir / "htpasswd", auth)
        config["auth"] = {"htpasswd": {"realm": "basic-realm", "path": str(htpasswd)}}
    elif isinstance(auth, TokenAuth):
        config["auth"] = {
            "token": {
                "realm": auth.realm,
                "service": auth.service,
                "issuer": auth.issuer,
                "rootcertbundle": str(auth.rootcertbundle),
            }
        }
    return config


def write_config(path: Path, config: Mapping[str, Any]) -> Path:
    """Write `config` as YAML (JSON is YAML, so no YAML library is needed)."""
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path

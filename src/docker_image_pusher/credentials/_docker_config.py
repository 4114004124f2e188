"""Docker's ``config.json``: where it is, reading it, and finding the entry for one registry host.

docker, skopeo and crane read ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``). Its keys
spell a registry in many ways (``ghcr.io``, ``https://ghcr.io``, ``http://host:5000/v1/``); Docker Hub's is
``https://index.docker.io/v1/``. Keys match on the normalised host. This module only reads.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..reference import DOCKER_HUB_API_HOST, normalize_registry
from ..registry import Credentials

__all__ = ["DOCKER_HUB_SERVER_URL", "DockerConfig", "docker_config_dir", "load_docker_config"]

DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"
_log = logging.getLogger("docker_image_pusher.credentials")


@dataclass(frozen=True)
class DockerConfig:
    """The credential parts of a config.json. ``auths`` holds secrets, so it stays out of the repr."""

    path: Path | None = None
    auths: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    cred_helpers: Mapping[str, str] = field(default_factory=dict)
    creds_store: str | None = None

    @property
    def name(self) -> str:
        return f"docker config {self.path}" if self.path else "docker config"


def docker_config_dir() -> Path:
    """``$DOCKER_CONFIG`` if set, else ``~/.docker``."""
    configured = os.environ.get("DOCKER_CONFIG")
    return Path(configured) if configured else Path.home() / ".docker"


def load_docker_config(path: Path | str | None = None) -> DockerConfig:
    """Read a config.json (default: the one in :func:`docker_config_dir`). A missing file is an empty config."""
    file = Path(path) if path is not None else docker_config_dir() / "config.json"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DockerConfig(path=file)
    except OSError as exc:
        raise UsageError(f"cannot read docker config {file}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise UsageError(f"docker config {file} is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:  # from None: the exception holds the whole document
        raise UsageError(f"docker config {file} is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise UsageError(f"docker config {file} is not a JSON object")
    auths = _object(data, "auths", file)
    helpers = _object(data, "credHelpers", file)
    store = data.get("credsStore") or None
    if any(not isinstance(entry, dict) for entry in auths.values()):
        raise UsageError(f"docker config {file}: every entry of 'auths' must be a JSON object")
    if any(not isinstance(name, str) for name in helpers.values()) or not isinstance(store, str | None):
        raise UsageError(f"docker config {file}: credential helper names must be strings")
    return DockerConfig(path=file, auths=auths, cred_helpers=helpers, creds_store=store)


def _object(data: dict[str, Any], key: str, file: Path) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise UsageError(f"docker config {file}: {key!r} must be a JSON object")
    return value


def key_host(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``registry-1.docker.io``; ``http://Host:5000/v1/`` -> ``host:5000``."""
    key = key.strip()
    _, scheme, rest = key.partition("://")
    return normalize_registry((rest if scheme else key).split("/", 1)[0].lower())


def find_key(keys: Iterable[str], host: str) -> str | None:
    """The key naming ``host``: its own spelling (Docker Hub's: the index URL) first, else the first match."""
    wanted = key_host(host)
    matches = [key for key in keys if key_host(key) == wanted]
    preferred = DOCKER_HUB_SERVER_URL if wanted == DOCKER_HUB_API_HOST else host
    return preferred if preferred in matches else next(iter(matches), None)


def server_url(host: str, key: str | None) -> str:
    """What a credential helper is asked for: Docker Hub's index URL, else the key as written, else the host."""
    return DOCKER_HUB_SERVER_URL if key_host(host) == DOCKER_HUB_API_HOST else key or host


def auths_entry(config: DockerConfig, key: str) -> Credentials | None:
    """The credentials of ``auths[key]``: ``auth`` (base64 of user:password) or ``username``/``password``."""
    entry = config.auths[key]
    username, password = _text(entry, "username"), _text(entry, "password")
    if auth := _text(entry, "auth"):
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        username, colon, password = decoded.partition(":")
        if not colon:
            raise UsageError(f"{config.name}: 'auth' of the entry {key!r} is not base64 of user:password")
    if not password:  # docker writes empty placeholders when a credsStore holds the credentials
        if _text(entry, "identitytoken"):
            warn_identity_token(f"the entry {key!r} of the {config.name}")
        return None
    return Credentials(username, password)


def warn_identity_token(where: str) -> None:
    _log.warning("%s holds an identity token (OAuth2), which is not supported yet; ignoring it", where)


def _text(entry: Mapping[str, Any], field_name: str) -> str:
    value = entry.get(field_name)
    return value if isinstance(value, str) else ""

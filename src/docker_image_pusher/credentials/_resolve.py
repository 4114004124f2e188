"""Which credentials a registry gets: explicit ones first, then the docker config's, else none.

Explicit credentials come from the CLI, from ``{prefix}USERNAME``/``{prefix}PASSWORD`` or from a secret's
value; the docker config is asked in docker's order: ``credHelpers[host]``, ``credsStore``, ``auths``. A
helper that has nothing for the host passes on to the next source.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from ..errors import UsageError
from ..registry import Credentials
from ._docker_config import DockerConfig, auths_entry, find_key, load_docker_config, server_url
from ._helper import helper_get

__all__ = ["credentials_from_env", "parse_secret_value", "resolve_credentials"]


def resolve_credentials(
    host: str, *, explicit: Credentials | None = None, config: DockerConfig | None = None
) -> Credentials | None:
    """Credentials for ``host`` (host[:port]); None means anonymous. The config is read only when needed."""
    if explicit is not None:
        return explicit
    return _from_docker_config(host, config if config is not None else load_docker_config())


def _from_docker_config(host: str, config: DockerConfig) -> Credentials | None:
    auth_key = find_key(config.auths, host)
    helper_key = find_key(config.cred_helpers, host)
    if helper_key is not None and config.cred_helpers[helper_key]:
        found = helper_get(config.cred_helpers[helper_key], server_url(host, helper_key))
        if found is not None:
            return found
    if config.creds_store:
        found = helper_get(config.creds_store, server_url(host, auth_key))
        if found is not None:
            return found
    return auths_entry(config, auth_key) if auth_key is not None else None


def credentials_from_env(prefix: str) -> Credentials | None:
    """``{prefix}USERNAME`` and ``{prefix}PASSWORD``: both or neither (an empty variable counts as unset)."""
    user_var, password_var = f"{prefix}USERNAME", f"{prefix}PASSWORD"
    username, password = os.environ.get(user_var), os.environ.get(password_var)
    if not username and not password:
        return None
    if not username:
        raise UsageError(f"{password_var} is set but {user_var} is not")
    if not password:
        raise UsageError(f"{user_var} is set but {password_var} is not")
    return Credentials(username, password)


def parse_secret_value(value: object, name: str) -> Credentials:
    """A secret's value: ``{"username", "password"}``, that as a JSON string, or ``"user:password"``.

    ``name`` names the secret in the error message; the value never appears in it.
    """
    reveal = getattr(value, "get_secret_value", None)  # pydantic's SecretStr and SecretDict
    if callable(reveal):
        value = reveal()
    if isinstance(value, str):
        text = value.rstrip("\r\n")
        if text.lstrip().startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                value = None
        else:
            username, colon, password = text.partition(":")
            if colon and username and password:
                return Credentials(username, password)
    if isinstance(value, Mapping):
        user, secret = value.get("username"), value.get("password")
        if isinstance(user, str) and isinstance(secret, str) and user and secret:
            return Credentials(user, secret)
    raise UsageError(f"secret {name}: expected {{username, password}} or 'user:password'")

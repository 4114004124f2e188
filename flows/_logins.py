"""Which credentials a flow run uses for one registry, decided once at the start of the run.

A flow parameter never holds a secret (parameters are shown in the UI and stored by the server). Instead:

    auth_ref = "anonymous"        the caller (the CLI) looked and found none: no lookup here
    auth_ref = <ref>              credentials the caller registered in this process (CLI, agent)
    auth_ref = None               look them up here, in this order:
        credentials_secret        the name of a Prefect Secret block: {"username", "password"} or "user:password"
        {env_prefix}USERNAME/PASSWORD in the environment of the process running the flow (a worker's),
                                  only if {env_prefix}REGISTRY names this host: a run's parameters name the
                                  registry, and a worker must not send its password wherever they say
        docker's config.json      (credHelpers, credsStore, auths) of the user running the flow

Whatever is found is registered for this run only and forgotten when the run ends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from ..credentials import credentials_from_env, parse_secret_value, resolve_credentials
from ..endpoint import ANONYMOUS, forget_credentials, register_credentials
from ..registry import Credentials

__all__ = ["login"]


@contextlib.contextmanager
def login(host: str, auth_ref: str | None, credentials_secret: str | None, env_prefix: str) -> Iterator[str | None]:
    """Yields the auth_ref the run's Endpoint carries for ``host`` (None: anonymous)."""
    if auth_ref == ANONYMOUS:
        yield None
        return
    if auth_ref is not None:
        yield auth_ref
        return
    found: Credentials | None
    if credentials_secret:
        found = parse_secret_value(_read_secret(credentials_secret), credentials_secret)
    else:
        from_env = credentials_from_env(env_prefix) if _env_is_for(host, env_prefix) else None
        found = resolve_credentials(host, explicit=from_env)
    if found is None:
        yield None
        return
    ref = register_credentials(found)
    try:
        yield ref
    finally:
        forget_credentials(ref)


def _env_is_for(host: str, env_prefix: str) -> bool:
    from ..endpoint import parse_registry_url

    named = os.environ.get(f"{env_prefix}REGISTRY")
    return bool(named) and parse_registry_url(named)[0] == host


def _read_secret(name: str) -> object:
    from prefect.blocks.system import Secret

    from ..errors import AuthError

    try:
        secret: Any = Secret.load(name, _sync=True)  # type: ignore[call-arg]  # _sync: not a coroutine here
    except ValueError as err:  # Prefect: "Unable to find block document named ..."
        raise AuthError(f"no Prefect Secret block named {name!r}") from err
    return secret.get()

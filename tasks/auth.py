"""The task every registry flow starts with: ping, read the challenge, and get the token for the scopes now,
so that a credential problem is the first error and no transfer starts without it."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from ..endpoint import Endpoint, client_for
from ._retry import DEFAULT_RETRY

__all__ = ["authenticate"]


@task(name="authenticate", cache_policy=NO_CACHE, **DEFAULT_RETRY)
def authenticate(endpoint: Endpoint, repository: str, push: bool = False, mount_from: list[str] | None = None) -> None:
    client = client_for(endpoint)
    client.ping()
    client.authenticate(repository, push=push, mount_from=mount_from or ())

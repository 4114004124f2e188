"""The registry client: the distribution API over one thread-safe httpx.Client per registry.

    client = RegistryClient.for_host("ghcr.io", scheme=None, credentials=Credentials("me", "secret"))
    client.authenticate("org/app", push=True)
    manifest = client.get_manifest("org/app", "v1")
    tags = client.list_tags("org/app")
    client.rate_limit  # RateLimit | None: what the latest manifest answer said about the pull quota

Errors are those of :mod:`docker_image_pusher.errors` (RegistryAuthError, RegistryNotFoundError, temporary
RegistryError/TransferError with ``retry_after``, IntegrityError); messages never contain secrets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._challenge import Challenge, parse_challenges
from ._credentials import Credentials
from ._models import FetchedManifest, ManifestHead

if TYPE_CHECKING:
    from ._client import RegistryClient
    from ._rate_limit import RateLimit

__all__ = [
    "Challenge",
    "Credentials",
    "FetchedManifest",
    "ManifestHead",
    "RateLimit",
    "RegistryClient",
    "parse_challenges",
]


# The client needs httpx (about 0.4 s and 20 MiB to import): loaded on first use, so that the CLI, which only
# resolves credentials before handing the run to the agent, never imports it.
_LAZY = {"RegistryClient": "._client", "RateLimit": "._rate_limit"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

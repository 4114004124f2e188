"""The registry client: the distribution API over one thread-safe httpx.Client per registry.

    client = RegistryClient.for_host("ghcr.io", scheme=None, credentials=Credentials("me", "secret"))
    client.authenticate("org/app", push=True)
    manifest = client.get_manifest("org/app", "v1")
    tags = client.list_tags("org/app")
    client.rate_limit  # RateLimit | None: what the latest manifest answer said about the pull quota

Errors are those of :mod:`docker_image_pusher.errors` (RegistryAuthError, RegistryNotFoundError, temporary
RegistryError/TransferError with ``retry_after``, IntegrityError); messages never contain secrets.
"""

from ._challenge import Challenge, parse_challenges
from ._client import RegistryClient
from ._credentials import Credentials
from ._models import FetchedManifest, ManifestHead
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

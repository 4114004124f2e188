"""Registry credentials, found the way docker, skopeo and crane find them. Prefect-free.

    explicit = credentials_from_env("DOCKER_IMAGE_PUSHER_SOURCE_")
    credentials = resolve_credentials("ghcr.io", explicit=explicit)  # None: anonymous

The order: explicit credentials (the CLI, the environment, a secret) -> ``credHelpers[host]`` -> ``credsStore``
-> ``auths`` of ``$DOCKER_CONFIG/config.json`` -> None. Nothing is ever written to disk, and no error message or
log record (logger ``docker_image_pusher.credentials``) contains a password, a secret or a token.
"""

from ._docker_config import DockerConfig, docker_config_dir, load_docker_config
from ._resolve import credentials_from_env, parse_secret_value, resolve_credentials

__all__ = [
    "DockerConfig",
    "credentials_from_env",
    "docker_config_dir",
    "load_docker_config",
    "parse_secret_value",
    "resolve_credentials",
]

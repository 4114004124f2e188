"""Settings: every option from a flag, an environment variable (DOCKER_IMAGE_PUSHER_*), or a config file.

Precedence: flag > environment > config file > default. The config file is TOML, at --config,
DOCKER_IMAGE_PUSHER_CONFIG, or ~/.config/docker-image-pusher/config.toml; keys are the field names below:

    registry = "https://registry.example.com"
    cache_dir = "/var/cache/images"
    retry_attempts = 5
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from .errors import UsageError

__all__ = ["Settings", "default_config_path", "load_settings"]

ENV_PREFIX = "DOCKER_IMAGE_PUSHER_"


def default_config_path() -> Path:
    explicit = os.environ.get(ENV_PREFIX + "CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "docker-image-pusher" / "config.toml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    registry: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    skip_tls: bool = False
    ca_file: Path | None = None
    cache_dir: Path = Path(".cache")
    retry_attempts: int = Field(3, ge=0, le=50)
    max_concurrent: int = Field(6, ge=1, le=64)
    platforms: list[str] = Field(default_factory=list)
    disable_progress: bool = False
    debug: bool = False
    agent: bool = True  # hand runs to the long-lived local agent; False runs flows in the CLI process

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file_for_load)
        return (init_settings, env_settings, toml)


_config_file_for_load: Path | None = None


def load_settings(flags: dict[str, Any], config_file: Path | None = None) -> Settings:
    """Build settings from the flags that were actually given (None means 'not given')."""
    global _config_file_for_load
    path = config_file or default_config_path()
    if config_file is not None and not config_file.is_file():
        raise UsageError(f"config file {config_file} does not exist")
    _config_file_for_load = path if path.is_file() else None
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise UsageError(f"invalid setting {where}: {first['msg']}") from None
    except ValueError as err:  # a config file that is not TOML
        raise UsageError(f"cannot read config file {path}: {err}") from None

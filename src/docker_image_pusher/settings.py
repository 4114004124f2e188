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
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from .endpoint import DEFAULT_READ_TIMEOUT
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
    read_timeout: float = Field(DEFAULT_READ_TIMEOUT, gt=0, le=3600)  # seconds a registry may send nothing
    platforms: list[str] = Field(default_factory=list)
    # the concurrency controller (see docker_image_pusher.concurrency); None: the preset's or the manager's own
    concurrency_manager: Literal["fixed", "dynamic", "adaptive"] | None = None
    enable_dynamic_concurrency: bool | None = None  # the seed's switch: False means --concurrency-manager fixed
    concurrency_strategy: (
        Literal["conservative", "aggressive", "adaptive", "network-optimized", "resource-aware"] | None
    ) = None
    concurrency_preset: Literal["small-files", "large-files", "conservative", "aggressive"] | None = None
    min_concurrent: int | None = Field(None, ge=1, le=64)
    max_concurrent: int | None = Field(None, ge=1, le=64)
    initial_concurrent: int | None = Field(None, ge=1, le=64)
    adjustment_factor: float | None = Field(None, gt=0, le=4)
    speed_threshold: float | None = Field(None, ge=0, le=1)
    sample_interval: float | None = Field(None, ge=0.05, le=60)
    confidence_threshold: float | None = Field(None, ge=0, le=1)
    enable_monitoring: bool = True
    auto_strategy_switching: bool = False
    strategy_switch_confidence: float = Field(0.8, ge=0, le=1)
    concurrency_control_file: Path | None = None  # JSON limits the controller re-reads while a run goes on
    # progress
    disable_progress: bool = False
    progress_detail: Literal["simple", "detailed"] = "simple"
    progress_interval: int | None = Field(None, ge=20, le=600_000)  # ms between redraws (200) or lines (5000)
    stats_file: Path | None = None  # a JSON summary of the run, for other tools
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

    def concurrency_config(self, learned_state_file: Path | None = None) -> dict[str, Any]:
        """The controller's configuration as plain values (they travel to the agent as JSON)."""
        import dataclasses

        from .concurrency import ConcurrencyConfig, apply_preset

        manager = self.concurrency_manager
        if manager is None and self.enable_dynamic_concurrency is False:
            manager = "fixed"
        given: dict[str, Any] = dict(
            manager=manager,
            strategy=self.concurrency_strategy,
            min_concurrent=self.min_concurrent,
            max_concurrent=self.max_concurrent,
            initial_concurrent=self.initial_concurrent,
            adjustment_factor=self.adjustment_factor,
            speed_threshold=self.speed_threshold,
            sample_interval=self.sample_interval,
            confidence_threshold=self.confidence_threshold,
            enable_monitoring=self.enable_monitoring,
            auto_strategy_switching=self.auto_strategy_switching,
            strategy_switch_confidence=self.strategy_switch_confidence,
            control_file=str(self.concurrency_control_file.absolute()) if self.concurrency_control_file else None,
            learned_state_file=str(learned_state_file) if learned_state_file else None,
        )
        values = {k: v for k, v in given.items() if v is not None}
        preset = self.concurrency_preset
        config = apply_preset(preset, values) if preset else ConcurrencyConfig(**values)
        return dataclasses.asdict(config)  # validated: a bad combination is a UsageError here, before any run


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
        settings = Settings(**given)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise UsageError(f"invalid setting {where}: {first['msg']}") from None
    except ValueError as err:  # a config file that is not TOML
        raise UsageError(f"cannot read config file {path}: {err}") from None
    settings.concurrency_config()  # a contradictory combination (min above max, ...) fails here, before any work
    return settings

"""What the user chooses: a manager, a strategy, the range, and overrides of the strategy's knobs.

``ConcurrencyConfig`` validates itself (a ``UsageError`` with one line naming the field); ``PRESETS`` are
named bundles of settings for common workloads; ``make_manager`` builds the policy the config names.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pathlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ._types import Manager

__all__ = ["MANAGERS", "MAX_LIMIT", "PRESETS", "STRATEGIES", "ConcurrencyConfig", "apply_preset", "make_manager"]

MANAGERS = ("fixed", "dynamic", "adaptive")
STRATEGIES = ("conservative", "aggressive", "adaptive", "network-optimized", "resource-aware")
MAX_LIMIT = 64  # more parallel blob transfers than this only hurts a registry


@dataclass(frozen=True)
class ConcurrencyConfig:
    """How many blob transfers may run at once, and how that number is chosen.

    The ``None`` knobs fall back to the strategy's own value (see ``_strategy``):
    ``adjustment_factor`` is the relative step of a move (0.25: a quarter of the current level, at least one),
    ``speed_threshold`` the relative throughput gain that counts as an improvement, ``sample_interval`` the
    seconds of one measuring window, ``confidence_threshold`` the monitor confidence (0..1) a move needs.
    """

    manager: str = "dynamic"
    strategy: str = "adaptive"
    min_concurrent: int = 1
    max_concurrent: int = 12
    initial_concurrent: int | None = None
    adjustment_factor: float | None = None
    speed_threshold: float | None = None
    sample_interval: float | None = None
    confidence_threshold: float | None = None
    enable_monitoring: bool = True
    auto_strategy_switching: bool = False
    strategy_switch_confidence: float = 0.8
    control_file: str | None = None
    learned_state_file: str | None = None

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem is not None:
            raise UsageError(f"concurrency: {problem}")

    def replace(self, **changes: Any) -> ConcurrencyConfig:
        return dataclasses.replace(self, **changes)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _problem(c: ConcurrencyConfig) -> str | None:
    """The first thing wrong with the config, as one line; None if it is fine."""
    if c.manager not in MANAGERS:
        return f"unknown manager {c.manager!r} (choose one of {', '.join(MANAGERS)})"
    if c.strategy not in STRATEGIES:
        return f"unknown strategy {c.strategy!r} (choose one of {', '.join(STRATEGIES)})"
    for name in ("min_concurrent", "max_concurrent"):
        if not _is_int(getattr(c, name)):
            return f"{name} must be a whole number, not {getattr(c, name)!r}"
    if c.min_concurrent < 1:
        return f"min_concurrent must be at least 1, not {c.min_concurrent}"
    if c.max_concurrent > MAX_LIMIT:
        return f"max_concurrent must be at most {MAX_LIMIT}, not {c.max_concurrent}"
    if c.min_concurrent > c.max_concurrent:
        return f"min_concurrent ({c.min_concurrent}) is above max_concurrent ({c.max_concurrent})"
    if c.initial_concurrent is not None and (
        not _is_int(c.initial_concurrent) or not c.min_concurrent <= c.initial_concurrent <= c.max_concurrent
    ):
        return (
            f"initial_concurrent must lie between min_concurrent ({c.min_concurrent}) and max_concurrent "
            f"({c.max_concurrent}), not {c.initial_concurrent!r}"
        )
    ranges: tuple[tuple[str, float | None, float, float, bool], ...] = (
        # name, value, low, high, low bound included
        ("adjustment_factor", c.adjustment_factor, 0.0, 1.0, False),
        ("speed_threshold", c.speed_threshold, 0.0, 1.0, False),
        ("sample_interval", c.sample_interval, 0.05, 60.0, True),
        ("confidence_threshold", c.confidence_threshold, 0.0, 1.0, True),
        ("strategy_switch_confidence", c.strategy_switch_confidence, 0.0, 1.0, True),
    )
    for name, value, low, high, closed in ranges:
        if value is None:
            continue
        if not _is_number(value) or not (low <= value if closed else low < value) or value > high:
            bracket = "[" if closed else "("
            return f"{name} must lie in {bracket}{low:g}, {high:g}], not {value!r}"
    for name in ("control_file", "learned_state_file"):
        value = getattr(c, name)
        if value is not None and (not isinstance(value, str) or not value):
            return f"{name} must be a path, not {value!r}"
    return None


# Named bundles of settings; ``apply_preset`` lays the user's own settings over them.
PRESETS: dict[str, dict[str, Any]] = {
    # Many small blobs: each transfer is mostly round trips, so start high, measure often, climb fast.
    "small-files": {"strategy": "aggressive", "initial_concurrent": 8, "max_concurrent": 24, "sample_interval": 0.2},
    # Few large blobs: size the pool from per-connection bandwidth; two connections from the start.
    "large-files": {"strategy": "network-optimized", "initial_concurrent": 2},
    # A fragile registry or a shared link: one connection more at a time, only on steady evidence.
    "conservative": {"strategy": "conservative", "max_concurrent": 6},
    # A fast, robust registry: double quickly, back off gently.
    "aggressive": {"strategy": "aggressive", "initial_concurrent": 4, "max_concurrent": 24},
}


def apply_preset(name: str, overrides: Mapping[str, Any] | None = None) -> ConcurrencyConfig:
    """The preset's settings with ``overrides`` on top (``None`` values mean "not given" and are skipped).

    A preset's starting level is clamped into the final range, so ``--max-concurrent 4`` with "small-files"
    starts at 4 instead of failing; a starting level the user gives is validated as it is.
    """
    if name not in PRESETS:
        raise UsageError(f"concurrency: unknown preset {name!r} (choose one of {', '.join(PRESETS)})")
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    fields = {field.name for field in dataclasses.fields(ConcurrencyConfig)}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise UsageError(f"concurrency: unknown setting {unknown[0]!r}")
    settings: dict[str, Any] = {**PRESETS[name], **given}
    if "initial_concurrent" not in given and settings.get("initial_concurrent") is not None:
        low = settings.get("min_concurrent", 1)
        high = settings.get("max_concurrent", 12)
        if _is_int(low) and _is_int(high):
            settings["initial_concurrent"] = max(low, min(high, settings["initial_concurrent"]))
    return ConcurrencyConfig(**settings)


def make_manager(config: ConcurrencyConfig) -> Manager:
    """The policy the config names: fixed, dynamic (feedback, ``_dynamic``) or adaptive (learning, ``_adaptive``)."""
    from ._strategy import strategy_params

    params = strategy_params(config.strategy, config)
    low, high, initial = config.min_concurrent, config.max_concurrent, config.initial_concurrent
    if config.manager == "fixed":
        from ._fixed import FixedManager

        return FixedManager(low, high, initial=initial)
    if config.manager == "dynamic":
        from ._dynamic import DynamicManager

        return DynamicManager(low, high, initial=initial, params=params)
    # Imported by name so that this module neither depends on nor type-checks against the adaptive manager.
    module = importlib.import_module(f"{__package__}._adaptive")
    factory: Callable[..., Manager] = module.AdaptiveManager
    state = pathlib.Path(config.learned_state_file) if config.learned_state_file else None
    return factory(low, high, initial=initial, state_file=state, params=params)

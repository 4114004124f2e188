"""Config validation, presets, the manager factory and the resource ceiling."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from docker_image_pusher.concurrency import (
    PRESETS,
    ConcurrencyConfig,
    DynamicManager,
    FixedManager,
    apply_preset,
    make_manager,
    strategy_params,
)
from docker_image_pusher.concurrency._strategy import MEMORY_PER_TRANSFER, resource_ceiling
from docker_image_pusher.errors import UsageError


def test_defaults_are_valid() -> None:
    config = ConcurrencyConfig()
    assert (config.manager, config.strategy, config.min_concurrent, config.max_concurrent) == (
        "dynamic",
        "adaptive",
        1,
        12,
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"min_concurrent": 0}, "concurrency: min_concurrent must be at least 1, not 0"),
        ({"max_concurrent": 65}, "concurrency: max_concurrent must be at most 64, not 65"),
        ({"min_concurrent": 5, "max_concurrent": 4}, "concurrency: min_concurrent (5) is above max_concurrent (4)"),
        (
            {"initial_concurrent": 13},
            "concurrency: initial_concurrent must lie between min_concurrent (1) and max_concurrent (12), not 13",
        ),
        ({"manager": "magic"}, "concurrency: unknown manager 'magic' (choose one of fixed, dynamic, adaptive)"),
        ({"strategy": "fast"}, "concurrency: unknown strategy 'fast'"),
        ({"adjustment_factor": 1.5}, "concurrency: adjustment_factor must lie in (0, 1], not 1.5"),
        ({"adjustment_factor": 0.0}, "concurrency: adjustment_factor must lie in (0, 1], not 0.0"),
        ({"speed_threshold": -0.1}, "concurrency: speed_threshold must lie in (0, 1], not -0.1"),
        ({"sample_interval": 0.01}, "concurrency: sample_interval must lie in [0.05, 60], not 0.01"),
        ({"confidence_threshold": 2}, "concurrency: confidence_threshold must lie in [0, 1], not 2"),
        ({"strategy_switch_confidence": float("nan")}, "concurrency: strategy_switch_confidence must lie in"),
        ({"max_concurrent": 4.5}, "concurrency: max_concurrent must be a whole number, not 4.5"),
        ({"control_file": ""}, "concurrency: control_file must be a path, not ''"),
    ],
)
def test_validation_names_the_problem_in_one_line(changes: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        ConcurrencyConfig(**changes)  # type: ignore[arg-type]
    assert caught.value.message.startswith(message)
    assert "\n" not in caught.value.message
    assert caught.value.exit_code == 2


def test_presets_set_their_strategy_and_start() -> None:
    assert set(PRESETS) == {"small-files", "large-files", "conservative", "aggressive"}
    small = apply_preset("small-files")
    assert (small.strategy, small.initial_concurrent, small.sample_interval) == ("aggressive", 8, 0.2)
    large = apply_preset("large-files")
    assert (large.strategy, large.initial_concurrent) == ("network-optimized", 2)
    assert apply_preset("conservative").strategy == "conservative"
    assert apply_preset("aggressive").strategy == "aggressive"


def test_preset_overrides_win_and_none_means_not_given() -> None:
    config = apply_preset("large-files", {"max_concurrent": 6, "strategy": None, "manager": "adaptive"})
    assert (config.strategy, config.max_concurrent, config.manager) == ("network-optimized", 6, "adaptive")


def test_a_preset_start_is_clamped_into_the_users_range_but_the_users_start_is_not() -> None:
    assert apply_preset("small-files", {"max_concurrent": 4}).initial_concurrent == 4
    with pytest.raises(UsageError, match="initial_concurrent"):
        apply_preset("small-files", {"max_concurrent": 4, "initial_concurrent": 6})


def test_unknown_presets_and_settings_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown preset 'tiny'"):
        apply_preset("tiny")
    with pytest.raises(UsageError, match="unknown setting 'speed'"):
        apply_preset("small-files", {"speed": 3})


def test_make_manager_builds_what_the_config_names(tmp_path: Path) -> None:
    fixed = make_manager(ConcurrencyConfig(manager="fixed", max_concurrent=7))
    assert isinstance(fixed, FixedManager) and fixed.initial() == 7
    assert make_manager(ConcurrencyConfig(manager="fixed", initial_concurrent=3)).initial() == 3
    dynamic = make_manager(ConcurrencyConfig(strategy="conservative", min_concurrent=2))
    assert isinstance(dynamic, DynamicManager)
    assert dynamic.params == strategy_params("conservative") and dynamic.initial() == 2
    adaptive = make_manager(
        ConcurrencyConfig(manager="adaptive", initial_concurrent=3, learned_state_file=str(tmp_path / "s.json"))
    )
    assert adaptive.name == "adaptive" and adaptive.initial() == 3


def test_fixed_never_decides() -> None:
    from docker_image_pusher.concurrency import Window

    manager = FixedManager(1, 8)
    throttled = Window(0, 1, 8, 8, 5, 0, 0.0, errors=9, throttles=9, anomaly="throttled")
    assert manager.decide(throttled) is None
    assert manager.initial() == 8
    manager.close()


def test_resource_ceiling_from_memory_and_load() -> None:
    plenty = resource_ceiling(4, available=10 * MEMORY_PER_TRANSFER, cpus=4, load=1.0)
    assert plenty == (14, "resources: 640 MiB of memory available")
    tight = resource_ceiling(4, available=MEMORY_PER_TRANSFER // 2, cpus=4, load=1.0)
    assert tight == (3, "resources: only 32 MiB of memory available")
    busy = resource_ceiling(4, available=10 * MEMORY_PER_TRANSFER, cpus=2, load=3.5)
    assert busy == (3, "resources: load 3.5 on 2 CPUs")
    assert resource_ceiling(1, available=0, cpus=1, load=9.0) is not None
    assert resource_ceiling(1, available=0, cpus=1, load=9.0)[0] == 1  # type: ignore[index]


def test_strategy_params_are_frozen() -> None:
    params = strategy_params("adaptive")
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.step = 2.0  # type: ignore[misc]
    with pytest.raises(UsageError, match="unknown strategy"):
        strategy_params("warp")

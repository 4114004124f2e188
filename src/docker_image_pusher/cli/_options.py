"""The flags of the concurrency controller and of the progress display, shared by the commands that use them.

Each flag left out is None, so the environment and the config file apply (see settings.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = [
    "AdjustmentFactor",
    "AutoStrategySwitching",
    "ConcurrencyControlFile",
    "ConcurrencyManager",
    "ConcurrencyPreset",
    "ConcurrencyStrategy",
    "ConfidenceThreshold",
    "EnableDynamic",
    "EnableMonitoring",
    "InitialConcurrent",
    "MaxConcurrent",
    "MinConcurrent",
    "ProgressDetail",
    "ProgressInterval",
    "ReadTimeout",
    "SampleInterval",
    "SpeedThreshold",
    "StatsFile",
    "StrategySwitchConfidence",
    "concurrency_flags",
    "progress_flags",
]

_C = "Concurrency"
_P = "Progress"

ConcurrencyManager = Annotated[
    str | None,
    typer.Option("--concurrency-manager", help="fixed, dynamic or adaptive [default: dynamic]", rich_help_panel=_C),
]
EnableDynamic = Annotated[
    bool | None,
    typer.Option(
        "--enable-dynamic-concurrency/--disable-dynamic-concurrency",
        help="adjust concurrency from measured throughput (off: a fixed --max-concurrent)",
        rich_help_panel=_C,
    ),
]
ConcurrencyStrategy = Annotated[
    str | None,
    typer.Option(
        "--concurrency-strategy",
        help="conservative, aggressive, adaptive, network-optimized or resource-aware [default: adaptive]",
        rich_help_panel=_C,
    ),
]
ConcurrencyPreset = Annotated[
    str | None,
    typer.Option(
        "--concurrency-preset", help="small-files, large-files, conservative or aggressive", rich_help_panel=_C
    ),
]
MinConcurrent = Annotated[int | None, typer.Option("--min-concurrent", help="lowest concurrency", rich_help_panel=_C)]
MaxConcurrent = Annotated[
    int | None,
    typer.Option(
        "--max-concurrent", help="blobs at once (fixed) or the ceiling (dynamic, adaptive)", rich_help_panel=_C
    ),
]
InitialConcurrent = Annotated[
    int | None, typer.Option("--initial-concurrent", help="concurrency to start from", rich_help_panel=_C)
]
AdjustmentFactor = Annotated[
    float | None,
    typer.Option("--adjustment-factor", help="relative step of an increase (0.5: +50%)", rich_help_panel=_C),
]
SpeedThreshold = Annotated[
    float | None,
    typer.Option("--speed-threshold", help="relative throughput gain that counts as better (0.1)", rich_help_panel=_C),
]
SampleInterval = Annotated[
    float | None, typer.Option("--sample-interval", help="seconds per throughput sample", rich_help_panel=_C)
]
ConfidenceThreshold = Annotated[
    float | None,
    typer.Option(
        "--confidence-threshold", help="steadiness (0..1) needed before a hill-climbing move", rich_help_panel=_C
    ),
]
EnableMonitoring = Annotated[
    bool | None,
    typer.Option(
        "--enable-monitoring/--disable-monitoring",
        help="log the performance monitor's samples and keep its trace in --stats-file",
        rich_help_panel=_C,
    ),
]
AutoStrategySwitching = Annotated[
    bool | None,
    typer.Option("--auto-strategy-switching", help="switch strategy as the link behaves", rich_help_panel=_C),
]
StrategySwitchConfidence = Annotated[
    float | None,
    typer.Option("--strategy-switch-confidence", help="confidence needed to switch (0.8)", rich_help_panel=_C),
]
ConcurrencyControlFile = Annotated[
    Path | None,
    typer.Option(
        "--concurrency-control-file",
        help='JSON re-read during the run, e.g. {"max_concurrent": 4}',
        rich_help_panel=_C,
    ),
]
ReadTimeout = Annotated[
    float | None,
    typer.Option(
        "--read-timeout", help="seconds a registry may send nothing before a request fails and is retried [default: 60]"
    ),
]
ProgressDetail = Annotated[
    str | None, typer.Option("--progress-detail", help="simple or detailed [default: simple]", rich_help_panel=_P)
]
ProgressInterval = Annotated[
    int | None,
    typer.Option(
        "--progress-interval",
        help="milliseconds between updates [default: 200 on a terminal, 5000 otherwise]",
        rich_help_panel=_P,
    ),
]
StatsFile = Annotated[
    Path | None, typer.Option("--stats-file", help="write a JSON summary of the run here", rich_help_panel=_P)
]


CONCURRENCY_FLAGS = (
    "concurrency_manager",
    "enable_dynamic_concurrency",
    "concurrency_strategy",
    "concurrency_preset",
    "min_concurrent",
    "max_concurrent",
    "initial_concurrent",
    "adjustment_factor",
    "speed_threshold",
    "sample_interval",
    "confidence_threshold",
    "enable_monitoring",
    "auto_strategy_switching",
    "strategy_switch_confidence",
    "concurrency_control_file",
)


def concurrency_flags(command_arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The concurrency options of a command, given its ``locals()``: every command that takes them declares
    them under the settings' own names (CONCURRENCY_FLAGS), so they pass through by name."""
    return {name: command_arguments[name] for name in CONCURRENCY_FLAGS}


def progress_flags(detail: str | None, interval: int | None, stats_file: Path | None) -> dict[str, Any]:
    return dict(progress_detail=detail, progress_interval=interval, stats_file=stats_file)

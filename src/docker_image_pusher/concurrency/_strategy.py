"""Strategies: named sets of concrete knobs for the dynamic manager (and hints for the adaptive one).

Every strategy changes behaviour, not just a label. The knobs (``StrategyParams``):

* ``initial``: the starting level when the user gives none (``None``: the minimum);
* ``growth``: how the level rises before the first plateau: ``"slow-start"`` doubles every window (TCP's slow
  start), ``"linear"`` adds one step per confirmed improvement, ``"bandwidth"`` doubles while the throughput
  of one connection holds and then jumps to the level the measured bandwidth calls for;
* ``step``: a hill-climbing move is ``max(1, round(level x step))`` connections (0: always one);
* ``backoff_factor``: on an anomaly the level drops at once to ``max(min, floor(level x backoff_factor))``;
* ``sample_interval``: seconds of one measuring window once the ramp is over; ``ramp_interval`` during slow
  start; ``rtt_multiple``: a window lasts at least that many round trips (0: the RTT is ignored);
* ``window``: how many recent windows the monitor keeps for its trend, confidence and anomaly checks;
* ``speed_threshold``: the relative throughput gain that counts as an improvement (below it: noise, and
  within noise fewer connections win);
* ``confidence_threshold``: the monitor confidence (0..1) a hill-climbing move needs (slow start and
  back-off do not wait for it);
* ``quiet_windows``: saturated windows without push-back before a throttle ceiling rises by one (doubles
  with every throttle); ``hold_windows``: confident windows at a level before probing
  a neighbour (doubles after each probe that did not pay off);
* ``ceiling``: an extra upper bound from the machine (resource-aware only).

The strategies:

``conservative``
    Start at the minimum; linear growth: +1 after two confident windows, kept only if it gained 15%
    (confidence >= 0.8); back off to half on an anomaly; 1.0 s windows, a ring of 10; a throttle ceiling
    rises after 20 quiet windows; probes every 8 windows. For fragile registries and shared links.
``aggressive``
    Start at 4; slow-start doubling on 0.2 s windows while a doubling gains 5%; then hill climbing in steps of
    25% of the level on 0.25 s windows at confidence >= 0.4; back off only to 0.75; a ring of 4; ceilings rise
    after 6 quiet windows; probes every 3 windows. For fast, robust registries and many small blobs.
``adaptive`` (the default)
    Start at 4 (within the range); slow-start doubling on 0.2 s windows until a doubling gains less than 10%, then
    back to the level before that doubling and hill climbing +-1 on 0.4 s windows at confidence >= 0.6;
    back off to 0.7; a ring of 8; ceilings rise after 12 quiet windows; probes every 5 windows.
``network-optimized``
    The adaptive knobs with growth from bandwidth: with ``p = throughput / level`` (the window's throughput
    per connection) and ``single`` the best per-connection figure so far (also from the finished transfers,
    ``Window.per_connection``), keep doubling while ``p >= (1 - 10%) x single`` (connections are the
    bottleneck); once aggregate throughput stops scaling, go straight to ``ceil(best aggregate / single)``
    and hill-climb from there (upwards first: the target is rounded up). Windows last at least 4 x RTT
    (``Window.rtt``, the mean time to first byte), so a long path is not judged on a fraction of a round
    trip; probes every 6 windows.
``resource-aware``
    The adaptive behaviour (and start) under a ceiling from the machine, read every 5 s: memory admits
    ``level + available // 64 MiB`` transfers, or one fewer than now when less than 64 MiB is available
    (available: ``MemAvailable`` from /proc/meminfo, which counts reclaimable cache, else
    ``SC_AVPHYS_PAGES x SC_PAGE_SIZE``); when the 1-minute load average exceeds the usable CPUs
    (``sched_getaffinity``, else ``cpu_count``) the ceiling is one below the current level.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..errors import UsageError
from ._config import STRATEGIES, ConcurrencyConfig

__all__ = [
    "MEMORY_PER_TRANSFER",
    "Ceiling",
    "Growth",
    "StrategyParams",
    "available_memory",
    "cpu_load",
    "resource_ceiling",
    "strategy_params",
]

Growth = Literal["linear", "slow-start", "bandwidth"]
Ceiling = Callable[[int], "tuple[int, str] | None"]  # current level -> (upper bound, why) or None (no bound)

MEMORY_PER_TRANSFER = 64 * 2**20


@dataclass(frozen=True)
class StrategyParams:
    """The concrete knobs of one strategy (see the module docstring for what each one does)."""

    name: str
    initial: int | None
    growth: Growth
    step: float
    backoff_factor: float
    sample_interval: float
    ramp_interval: float
    rtt_multiple: float
    window: int
    speed_threshold: float
    confidence_threshold: float
    quiet_windows: int
    hold_windows: int
    ceiling: Ceiling | None = None

    def move(self, level: int) -> int:
        """How many connections one hill-climbing move adds or removes at ``level``."""
        return max(1, round(level * self.step))


_ADAPTIVE = StrategyParams(
    name="adaptive",
    initial=4,  # what most registries take without pushing back, and the best fixed level on loopback here
    growth="slow-start",
    step=0.0,
    backoff_factor=0.7,
    sample_interval=0.4,
    ramp_interval=0.2,
    rtt_multiple=0.0,
    window=8,
    speed_threshold=0.10,
    confidence_threshold=0.6,
    quiet_windows=12,
    hold_windows=5,
)

_BASE: dict[str, StrategyParams] = {
    "conservative": StrategyParams(
        name="conservative",
        initial=None,
        growth="linear",
        step=0.0,
        backoff_factor=0.5,
        sample_interval=1.0,
        ramp_interval=1.0,
        rtt_multiple=0.0,
        window=10,
        speed_threshold=0.15,
        confidence_threshold=0.8,
        quiet_windows=20,
        hold_windows=8,
    ),
    "aggressive": StrategyParams(
        name="aggressive",
        initial=4,
        growth="slow-start",
        step=0.25,
        backoff_factor=0.75,
        sample_interval=0.25,
        ramp_interval=0.2,
        rtt_multiple=0.0,
        window=4,
        speed_threshold=0.05,
        confidence_threshold=0.4,
        quiet_windows=6,
        hold_windows=3,
    ),
    "adaptive": _ADAPTIVE,
    "network-optimized": dataclasses.replace(
        _ADAPTIVE, name="network-optimized", growth="bandwidth", rtt_multiple=4.0, hold_windows=6
    ),
    "resource-aware": dataclasses.replace(_ADAPTIVE, name="resource-aware"),
}


def strategy_params(name: str, config: ConcurrencyConfig | None = None) -> StrategyParams:
    """The knobs of strategy ``name`` with the config's explicit overrides applied."""
    if name not in _BASE:
        raise UsageError(f"concurrency: unknown strategy {name!r} (choose one of {', '.join(STRATEGIES)})")
    params = _BASE[name]
    if name == "resource-aware":
        params = dataclasses.replace(params, ceiling=resource_ceiling)
    if config is None:
        return params
    interval = config.sample_interval
    return dataclasses.replace(
        params,
        step=params.step if config.adjustment_factor is None else config.adjustment_factor,
        speed_threshold=params.speed_threshold if config.speed_threshold is None else config.speed_threshold,
        sample_interval=params.sample_interval if interval is None else interval,
        ramp_interval=params.ramp_interval if interval is None else interval,
        confidence_threshold=(
            params.confidence_threshold if config.confidence_threshold is None else config.confidence_threshold
        ),
    )


# ---- resources --------------------------------------------------------------------------------------------------


def available_memory() -> int | None:
    """Bytes of memory a new transfer could use: MemAvailable (Linux), else free pages x page size."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def cpu_load() -> tuple[int, float] | None:
    """(usable CPUs, 1-minute load average), or None where the platform cannot tell."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    return cpus, load


def resource_ceiling(
    current: int, *, available: int | None = None, cpus: int | None = None, load: float | None = None
) -> tuple[int, str] | None:
    """The level the machine allows next to ``current`` running transfers, with the reason; None: no bound.

    Unset figures are read from the system. Memory: running transfers already show in the available figure,
    so it admits ``available // MEMORY_PER_TRANSFER`` more (one fewer than now when it admits none). CPU:
    when the load average is above the CPU count, one fewer than now.
    """
    if available is None:
        available = available_memory()
    if cpus is None or load is None:
        measured = cpu_load()
        if measured is not None:
            cpus = measured[0] if cpus is None else cpus
            load = measured[1] if load is None else load
    bounds: list[tuple[int, str]] = []
    if available is not None:
        extra = available // MEMORY_PER_TRANSFER
        mib = available // 2**20
        if extra <= 0:
            bounds.append((max(1, current - 1), f"resources: only {mib} MiB of memory available"))
        else:
            bounds.append((current + extra, f"resources: {mib} MiB of memory available"))
    if cpus is not None and load is not None and load > cpus:
        bounds.append((max(1, current - 1), f"resources: load {load:.1f} on {cpus} CPUs"))
    if not bounds:
        return None
    return min(bounds, key=lambda bound: bound[0])

"""The dynamic manager: feedback from measured throughput, with methods that have a track record.

* Growth is TCP's slow start: the level doubles every window while a doubling still pays (throughput up by
  at least ``speed_threshold``); when one does not, the level goes back to where it was before that doubling
  (within noise, fewer connections win). ``"linear"`` growth (conservative) skips slow start and climbs one
  step per confirmed improvement; ``"bandwidth"`` growth (network-optimized) doubles while the throughput of
  one connection holds, then jumps to ``ceil(best aggregate / single-connection throughput)``.
* After that, hill climbing on throughput, as .NET's thread pool does: hold a level for ``hold_windows``
  confident windows (twice that before a probe down), probe a neighbour (alternating up and down), keep the
  move only if it pays: up must gain
  ``speed_threshold`` over the level it left, down may lose less than ``speed_threshold`` against the level
  where the walk down began (so steps cannot add up to a large loss). A probe that does not pay is undone
  and the hold before the next probe doubles (up to 32 windows), so a settled run does not thrash.
* Anomalies act at once, confident or not, saturated or not, as the AIMD limiters of Netflix's
  concurrency-limits do: ``new = max(min, floor(level x backoff_factor))``. After a throttle (429/5xx) the
  level that was throttled minus one becomes a ceiling (TCP's ssthresh); when the window also says that
  only ``streaming < level`` transfers moved bytes at once while the rest were refused, the registry's limit
  is plain: level and ceiling both become ``streaming`` (and fewer is not probed: it can only be slower).
  After a back-off the climb may resume (additively, one probe) as soon as the new level is measured with
  confidence. The ceiling rises by one after ``quiet_windows`` saturated windows without push-back, a
  number that doubles with every throttle, so a registry with a hard limit is probed ever more rarely.
* Only windows where demand saturated the limit (someone waited for a permit) say anything about the limit:
  other windows change nothing (the tail of a run, a pause between images); nor do windows in which more
  transfers ran than the limit (after lowering it, until the transfers started before have finished).
  Hill-climbing moves also wait for the monitor's confidence to reach ``confidence_threshold``; slow start
  and back-off do not.
* Resource-aware: the strategy's ``ceiling`` (memory, CPU load) is read every 5 s and bounds every move.

The level the controller reports in each window is the truth: if it differs from the manager's own (a hot
update, a clamp), the manager adopts it and starts judging afresh.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter

from ._strategy import StrategyParams, strategy_params
from ._types import Decision, Window

__all__ = ["DynamicManager"]

RESOURCE_INTERVAL = 5.0  # seconds between two readings of the machine's resources
HOLD_CAP = 32  # windows: the longest hold between two probes
QUIET_CAP = 64  # windows: the longest wait before a throttle ceiling rises


def _rate(bytes_per_second: float) -> str:
    return f"{bytes_per_second / 2**20:.1f} MiB/s"


def _gain(gain: float) -> str:
    return "from nothing" if math.isinf(gain) else f"{gain:+.0%}"


class DynamicManager:
    """Slow start, then hill climbing on throughput, with AIMD back-off on push-back (see the module doc)."""

    name = "dynamic"

    def __init__(
        self,
        min_concurrent: int,
        max_concurrent: int,
        *,
        initial: int | None = None,
        params: StrategyParams | None = None,
    ) -> None:
        if min_concurrent < 1 or max_concurrent < min_concurrent:
            raise ValueError(f"bad concurrency range [{min_concurrent}, {max_concurrent}]")
        self._min = min_concurrent
        self._max = max_concurrent
        self._params = params if params is not None else strategy_params("adaptive")
        start = initial if initial is not None else self._params.initial
        self._start = self._clamp(self._min if start is None else start)
        self._level = self._start
        self._slow_start = self._params.growth != "linear"
        self._samples: list[float] = []  # saturated throughputs at the current level
        self._pending: str | None = None  # "up" / "down": the move being judged; None: holding
        self._from_level = self._start  # the level the move being judged came from ...
        self._from_rate = 0.0  # ... and its mean throughput (0: none yet)
        self._anchor = 0.0  # the throughput where the current walk down began
        self._next_probe = "up"
        self._pinned = False  # at a throttle ceiling the level below is known to be worse: do not probe it
        self._held = 0  # confident windows spent holding the current level
        self._hold_needed = 1 if self._params.growth == "linear" else self._params.hold_windows
        self._ceiling: int | None = None  # from throttling (TCP's ssthresh)
        self._strikes = 0
        self._quiet = 0
        self._single = 0.0  # bandwidth growth: best per-connection throughput
        self._best = 0.0  # bandwidth growth: best aggregate throughput
        self._resources: tuple[int, str] | None = None
        self._resources_at: float | None = None

    # ---- Manager protocol -------------------------------------------------------------------------------------

    def initial(self) -> int:
        return self._start

    def decide(self, window: Window) -> Decision | None:
        if window.concurrency != self._level:
            self._adopt(window.concurrency)
        if window.anomaly is not None:
            return self._back_off(window)
        resources = self._resource_bound(window)
        if resources is not None and self._level > max(self._min, resources[0]):
            old, new = self._level, max(self._min, resources[0])
            self._slow_start = False
            self._hold("up")
            return self._move(new, f"{resources[1]}: {old} -> {new}")
        if not window.saturated or window.draining:
            return None
        self._count_quiet()
        self._samples.append(window.throughput)
        if self._slow_start:
            return self._bandwidth(window) if self._params.growth == "bandwidth" else self._double(window)
        return self._climb(window)

    def close(self) -> None:
        pass

    # ---- what the controller may change -------------------------------------------------------------------------

    @property
    def params(self) -> StrategyParams:
        return self._params

    def set_params(self, params: StrategyParams) -> None:
        """Switch strategy mid-run: the knobs change, what was learned (level, ceiling) stays."""
        self._params = params
        if params.ceiling is None:
            self._resources = self._resources_at = None
        if params.growth == "linear":
            self._slow_start = False
        self._hold_needed = params.hold_windows

    def set_bounds(self, min_concurrent: int, max_concurrent: int) -> None:
        if min_concurrent < 1 or max_concurrent < min_concurrent:
            raise ValueError(f"bad concurrency range [{min_concurrent}, {max_concurrent}]")
        self._min, self._max = min_concurrent, max_concurrent
        if self._ceiling is not None and self._ceiling >= max_concurrent:
            self._ceiling = None

    @property
    def in_slow_start(self) -> bool:
        return self._slow_start

    @property
    def ceiling(self) -> int | None:
        """The level throttling taught us not to exceed (None: none)."""
        return self._ceiling

    # ---- growth -----------------------------------------------------------------------------------------------

    def _double(self, window: Window) -> Decision | None:
        level, rate = self._level, window.throughput
        change = f"at {_rate(rate)}"
        if self._from_rate > 0 or self._from_level != level:
            if self._from_rate <= 0 and rate <= 0:
                return None  # nothing has moved yet: no evidence either way
            gain = rate / self._from_rate - 1 if self._from_rate > 0 else math.inf
            if gain < self._params.speed_threshold:
                self._slow_start = False
                self._hold("down")
                threshold = f"{self._params.speed_threshold:.0%}"
                if gain > -self._params.speed_threshold:
                    # Within noise: the doubling did not pay, but nothing says it hurt. Going back would bet the
                    # run on one noisy window; staying costs a few idle connections at most.
                    self._samples = []
                    return None
                back = self._from_level
                return self._move(
                    back, f"slow start ends: {_gain(gain)} at {level} (below {threshold}), back to {back}"
                )
            change = f"throughput {_gain(gain)}"
        target = min(self._upper(), level * 2)
        if target <= level:
            self._slow_start = False
            self._hold("down")
            return None
        self._from_level, self._from_rate = level, rate
        return self._move(target, f"slow start: {level} -> {target}, {change}")

    def _bandwidth(self, window: Window) -> Decision | None:
        level, rate = self._level, window.throughput
        per = rate / level
        single = self._single
        self._single = max(single, per, window.per_connection)
        self._best = max(self._best, rate)
        if single <= 0 or per >= (1 - self._params.speed_threshold) * single:
            target = min(self._upper(), level * 2)
            if target <= level:
                self._slow_start = False
                self._hold("down")
                return None
            self._from_level, self._from_rate = level, rate
            return self._move(target, f"bandwidth: {_rate(per)} per connection holds at {level}, {level} -> {target}")
        self._slow_start = False
        self._hold("up")  # the target is rounded up: a probe below costs throughput, one above does not
        target = max(self._min, min(self._upper(), math.ceil(self._best / self._single)))
        if target == level:
            return None
        return self._move(
            target,
            f"bandwidth: throughput stopped scaling at {level} ({_rate(per)} per connection, {_rate(self._single)} "
            f"alone): {_rate(self._best)} / {_rate(self._single)} -> {target}",
        )

    # ---- hill climbing ----------------------------------------------------------------------------------------

    def _climb(self, window: Window) -> Decision | None:
        if window.confidence < self._params.confidence_threshold:
            return None
        level, rate = self._level, statistics.fmean(self._samples)
        threshold = self._params.speed_threshold
        if self._pending == "up":
            gain = rate / self._from_rate - 1 if self._from_rate > 0 else math.inf
            if gain >= threshold:
                self._hold_needed = self._params.hold_windows
                target = min(self._upper(), level + self._params.move(level))
                if target > level:
                    self._from_level, self._from_rate = level, rate
                    return self._move(target, f"hill climb: {_gain(gain)} at {level}, trying {target}", "up")
                self._hold("down")
                self._pinned = self._ceiling is not None and level >= self._ceiling
                return None
            back = self._from_level
            self._probe_failed("down")
            verdict = "within noise" if gain > -threshold else "worse"
            return self._move(back, f"hill climb: {_gain(gain)} at {level} is {verdict}, back to {back}")
        if self._pending == "down":
            change = rate / self._anchor - 1 if self._anchor > 0 else 0.0
            if change > -threshold:
                self._hold_needed = self._params.hold_windows
                target = max(self._min, level - self._params.move(level))
                if target < level:
                    self._from_level, self._from_rate = level, rate
                    return self._move(target, f"fewer connections: {change:+.0%} at {level}, trying {target}", "down")
                self._hold("up")
                return None
            back = self._from_level
            self._probe_failed("up")
            return self._move(back, f"fewer connections: {change:+.0%} at {level} is too much, back to {back}")
        step = self._params.move(level)
        up, down = min(self._upper(), level + step), max(self._min, level - step)
        possible = {"up": up > level, "down": down < level and not self._pinned}
        other = "down" if self._next_probe == "up" else "up"
        direction = self._next_probe if possible[self._next_probe] else other if possible[other] else None
        if direction is None:
            self._held = 0
            return None
        self._held += 1
        # A probe down is for economy, not speed, and costs throughput when it fails: it waits twice as long.
        if self._held < self._hold_needed * (2 if direction == "down" else 1):
            return None
        self._held = 0
        self._from_level, self._from_rate, self._anchor = level, rate, rate
        if direction == "up":
            return self._move(up, f"hill climb: probing {up} ({level} steady at {_rate(rate)})", "up")
        return self._move(down, f"fewer connections: probing {down} ({level} steady at {_rate(rate)})", "down")

    # ---- push-back --------------------------------------------------------------------------------------------

    def _back_off(self, window: Window) -> Decision | None:
        old = self._level
        new = max(self._min, math.floor(old * self._params.backoff_factor))
        if new >= old:
            new = max(self._min, old - 1)
        at_limit = False
        if window.anomaly == "throttled":
            if 0 < window.streaming < old:
                # The registry moved bytes for `streaming` transfers at once and refused more: that is its limit,
                # and fewer would only be slower.
                new = ceiling = max(self._min, window.streaming)
                at_limit = True
            else:
                ceiling = max(self._min, old - 1)
            self._ceiling = ceiling if self._ceiling is None else min(self._ceiling, ceiling)
            self._strikes += 1
            self._quiet = 0
        self._slow_start = False
        self._hold("up")
        self._hold_needed = 1  # additive increase may begin as soon as the new level is known
        decision = None if new == old else self._move(new, f"{_describe(window)}: back off {old} -> {new}")
        self._pinned = at_limit
        return decision

    def _count_quiet(self) -> None:
        """A saturated window without push-back: after enough of them the throttle ceiling rises by one."""
        if self._ceiling is None:
            return
        self._quiet += 1
        needed = min(QUIET_CAP, self._params.quiet_windows * 2 ** min(10, self._strikes - 1))
        if self._quiet >= needed:
            self._quiet = 0
            self._ceiling += 1
            if self._ceiling >= self._max:
                self._ceiling = None

    def _resource_bound(self, window: Window) -> tuple[int, str] | None:
        ceiling = self._params.ceiling
        if ceiling is None:
            return None
        at = self._resources_at
        if at is None or not 0 <= window.end - at < RESOURCE_INTERVAL:
            self._resources = ceiling(self._level)
            self._resources_at = window.end
        return self._resources

    # ---- bookkeeping ------------------------------------------------------------------------------------------

    def _upper(self) -> int:
        upper = self._max
        if self._ceiling is not None:
            upper = min(upper, self._ceiling)
        if self._resources is not None:
            upper = min(upper, self._resources[0])
        return max(self._min, upper)

    def _clamp(self, level: int) -> int:
        return max(self._min, min(self._max, level))

    def _move(self, level: int, reason: str, pending: str | None = None) -> Decision:
        self._level = level
        self._pinned = False
        self._samples = []
        self._pending = pending
        self._held = 0
        return Decision(level, reason)

    def _hold(self, next_probe: str) -> None:
        self._pending = None
        self._held = 0
        self._next_probe = next_probe

    def _probe_failed(self, next_probe: str) -> None:
        self._hold_needed = min(HOLD_CAP, self._hold_needed * 2)
        self._hold(next_probe)

    def _adopt(self, level: int) -> None:
        """The level changed outside this manager (hot update, clamp): judge it afresh."""
        self._level = level
        self._pinned = False
        self._samples = []
        self._slow_start = False
        self._from_level, self._from_rate = level, 0.0
        self._hold(self._next_probe)


def _describe(window: Window) -> str:
    if window.anomaly == "throttled":
        if window.statuses:
            counts = Counter(window.statuses)
            return "throttled (" + ", ".join(f"{n} x {status}" for status, n in sorted(counts.items())) + ")"
        return f"throttled ({window.throttles} x push-back)"
    if window.anomaly == "error burst":
        return f"error burst ({window.errors - window.throttles} failures)"
    if window.anomaly == "throughput drop":
        return f"throughput drop to {_rate(window.throughput)}"
    return str(window.anomaly)

"""The adaptive manager: a unimodal bandit over concurrency levels that learns during a run and across runs.

Throughput against the number of parallel transfers is unimodal (it rises, plateaus, then falls as the link or
the registry saturates), so the levels form a line graph with one peak and a unimodal bandit fits the problem:
OSUB (Combes & Proutière 2014, "Unimodal bandits: regret lower bounds and optimal algorithms") only ever plays
the empirical leader or one of its two neighbours, so exploration stays local and cheap. Here:

* arms: a grid of levels in [min, max] (1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32, ... then ~x1.25);
* reward: window throughput relative to the best arm's mean (so the leader is 1.0 and the rest lie in 0..1);
* statistics are discounted per observation (discounted UCB, Garivier & Moulines 2011), so a link that
  changes mid-run is tracked; the index is mean + sqrt(2 sigma^2 log n / N) with sigma pooled over the arms
  (throughput noise is far below the Bernoulli worst case, so a variance-aware index explores much less);
* a neighbour never tried has an infinite index, so a cold start climbs one grid step per window;
* a throttled window (429/5xx push-back) scores 0 for its level and bans that level and everything above it
  (a ban that expires after a cool-down which doubles on every repeat), and play drops at once to
  ``backoff_factor`` x the level;
* only windows where demand saturated the limit are observations; anything else changes nothing;
* ``close()`` stores the per-arm statistics (means relative to the best arm) as JSON; the next run starts at the
  learned best level with those statistics as a prior of reduced weight, so fresh evidence wins quickly.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import random
from dataclasses import dataclass
from typing import Any

from ._types import Decision, Window

__all__ = ["AdaptiveManager"]

_log = logging.getLogger("docker_image_pusher.concurrency")

STATE_SCHEMA = "docker-image-pusher/adaptive-concurrency"
STATE_VERSION = 1

_BASE_GRID = (1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128)
DISCOUNT = 0.93  # per observation: evidence is worth half after ~10 windows, the memory is ~14 windows
LEADER_PERIOD = 3  # OSUB: the leader is played every (degree + 1)-th round it leads; degree 2 on a line
TRANSITION_WEIGHT = 0.5  # the first window after a change mixes the old and the new level
SIGMA_PRIOR = 0.10  # relative throughput noise assumed before there is data
SIGMA_PRIOR_WEIGHT = 2.0
SIGMA_FLOOR = 0.03
SEED_WEIGHT_CAP = 4.0  # a learned arm counts for at most SEED_WEIGHT_CAP * SEED_WEIGHT_FACTOR observations
SEED_WEIGHT_FACTOR = 0.25
BAN_WINDOWS = 60  # windows a throttling level stays banned; doubles with every repeat


def _grid(lo: int, hi: int, extra: int | None) -> list[int]:
    levels = {level for level in _BASE_GRID if lo <= level <= hi}
    level = _BASE_GRID[-1]
    while level < hi:
        level = math.ceil(level * 1.25)
        if level >= lo:
            levels.add(min(level, hi))
    levels.update({lo, hi})
    if extra is not None:
        levels.add(extra)
    return sorted(levels)


@dataclass(eq=False)
class _Arm:
    level: int
    weight: float = 0.0  # discounted number of observations
    total: float = 0.0  # discounted sum of rewards (in units of the reference throughput)
    squares: float = 0.0  # discounted sum of squared rewards
    penalties: float = 0.0  # discounted number of throttled windows among the observations
    pulls: int = 0  # observations in this run
    lifetime: int = 0  # observations including earlier runs (persisted)
    seen: bool = False  # has any evidence (this run or learned)

    @property
    def mean(self) -> float:
        return self.total / self.weight if self.weight > 0 else 0.0

    def decay(self, factor: float) -> None:
        self.weight *= factor
        self.total *= factor
        self.squares *= factor
        self.penalties *= factor

    def add(self, reward: float, weight: float, *, penalty: bool = False) -> None:
        self.weight += weight
        self.total += reward * weight
        self.squares += reward * reward * weight
        if penalty:
            self.penalties += weight
        self.pulls += 1
        self.lifetime += 1
        self.seen = True


class AdaptiveManager:
    """Learns which concurrency level moves the most bytes, with a discounted unimodal bandit (see module doc)."""

    name = "adaptive"

    def __init__(
        self,
        min_concurrent: int,
        max_concurrent: int,
        *,
        initial: int | None = None,
        state_file: pathlib.Path | None = None,
        params: object | None = None,
        seed: int | None = None,
    ) -> None:
        if min_concurrent < 1 or max_concurrent < min_concurrent:
            raise ValueError(f"bad concurrency range [{min_concurrent}, {max_concurrent}]")
        self._lo = min_concurrent
        self._hi = max_concurrent
        self._explicit = None if initial is None else self._clamp(initial)
        self._state_file = state_file
        self._backoff = float(getattr(params, "backoff_factor", 0.7) or 0.7)
        if not 0.0 < self._backoff < 1.0:
            self._backoff = 0.7
        threshold = getattr(params, "speed_threshold", 0.1)
        self._tolerance = max(0.0, float(0.1 if threshold is None else threshold)) / 2
        self._rng = random.Random(seed)
        self._arms = [_Arm(level) for level in _grid(self._lo, self._hi, self._explicit)]
        self._scale: float | None = None  # bytes/s per reward unit, fixed by the first clean observation
        self._leads: dict[int, int] = {}  # OSUB: rounds each level has been the leader
        self._ceiling: int | None = None  # levels >= this are banned (registry throttled there)
        self._ban_until = 0
        self._ban_windows = BAN_WINDOWS
        self._windows = 0
        self._last_level: int | None = None
        self._learned: int | None = None
        if state_file is not None:
            self._load(state_file)
        start = self._explicit if self._explicit is not None else self._learned
        if start is None:  # cold: the strategy's starting level (snapped to the grid), else the minimum
            hint = getattr(params, "initial", None)
            levels = [a.level for a in self._arms]
            start = max((v for v in levels if v <= hint), default=self._lo) if isinstance(hint, int) else self._lo
            self.start_reason = f"bandit: cold start at {start}"
        elif self._explicit is None:
            self.start_reason = f"learned: start at {start} from last run"
        else:
            self.start_reason = f"bandit: start at {start} as configured"
        self._start = start

    # ---- Manager protocol ---------------------------------------------------------------------------------

    def initial(self) -> int:
        return self._start

    def decide(self, window: Window) -> Decision | None:
        self._windows += 1
        if self._ceiling is not None and self._windows >= self._ban_until:
            self._ceiling = None
        arm = self._arm_for(window.concurrency)
        transition = self._last_level is not None and self._last_level != window.concurrency
        self._last_level = window.concurrency
        if window.throttles > 0 or window.anomaly == "throttled":
            return self._throttled(arm, window)
        if not window.saturated:
            return None
        self._observe(arm, window.throughput, TRANSITION_WEIGHT if transition else 1.0)
        level, reason = self._choose()
        if level == window.concurrency:
            return None
        return Decision(level, reason)

    def close(self) -> None:
        if self._state_file is None or not any(arm.seen for arm in self._arms):
            return
        try:
            self._save(self._state_file)
        except OSError as exc:
            _log.warning("could not save the adaptive concurrency state to %s: %s", self._state_file, exc)

    # ---- statistics -----------------------------------------------------------------------------------------

    def arms(self) -> dict[int, tuple[int, float]]:
        """Level -> (observations this run, mean reward relative to the best arm, 0..1; learned prior included)."""
        ref = self._reference()
        return {arm.level: (arm.pulls, arm.mean / ref if ref > 0 else 0.0) for arm in self._arms}

    @property
    def best(self) -> int | None:
        """The level the bandit currently considers best (None before any evidence)."""
        leader = self._leader(self._allowed())
        return None if leader is None else leader.level

    # ---- internals ------------------------------------------------------------------------------------------

    def _clamp(self, level: int) -> int:
        return max(self._lo, min(self._hi, level))

    def _arm_for(self, level: int) -> _Arm:
        return min(self._arms, key=lambda arm: (abs(arm.level - level), arm.level))

    def _reference(self) -> float:
        return max((arm.mean for arm in self._arms if arm.weight > 0), default=0.0)

    def _discount(self) -> None:
        for arm in self._arms:
            arm.decay(DISCOUNT)

    def _observe(self, arm: _Arm, throughput: float, weight: float) -> None:
        if self._scale is None:
            # The first clean observation anchors the reward unit; with a learned prior it is matched to the
            # prior's relative mean at that level, so last run's shape carries over whatever the absolute rate.
            prior = arm.mean if arm.weight > 0 else 0.0
            self._scale = throughput / prior if prior >= 0.2 else throughput
            if self._scale <= 0:
                self._scale = None
        reward = throughput / self._scale if self._scale else 0.0
        self._discount()
        arm.add(max(0.0, reward), weight)

    def _sigma(self, ref: float) -> float:
        """Pooled relative noise of one window's throughput (arms with throttle penalties left out)."""
        spread = 0.0
        dof = 0.0
        for arm in self._arms:
            if arm.weight <= 0 or arm.penalties > 0.01 * arm.weight:
                continue
            spread += max(0.0, arm.squares - arm.total * arm.total / arm.weight)
            dof += max(0.0, arm.weight - 1.0)
        relative = spread / (ref * ref) if ref > 0 else 0.0
        variance = (relative + SIGMA_PRIOR_WEIGHT * SIGMA_PRIOR**2) / (dof + SIGMA_PRIOR_WEIGHT)
        return max(SIGMA_FLOOR, math.sqrt(variance))

    def _allowed(self) -> list[_Arm]:
        if self._ceiling is None:
            return self._arms
        allowed = [arm for arm in self._arms if arm.level < self._ceiling]
        return allowed or self._arms[:1]

    def _leader(self, allowed: list[_Arm]) -> _Arm | None:
        """The lowest allowed level whose mean is within the tolerance of the best allowed mean."""
        tried = [arm for arm in allowed if arm.weight > 0]
        if not tried:
            return None
        best = max(arm.mean for arm in tried)
        return next(arm for arm in tried if arm.mean >= best * (1 - self._tolerance))

    def _choose(self) -> tuple[int, str]:
        allowed = self._allowed()
        leader = self._leader(allowed)
        if leader is None:
            top = allowed[-1]
            return top.level, f"bandit: no evidence below {self._ceiling}, try {top.level}"
        ref = self._reference()
        position = allowed.index(leader)
        neighbours = [allowed[i] for i in (position + 1, position - 1) if 0 <= i < len(allowed)]
        for arm in neighbours:  # the upper one first: a cold start climbs
            if not arm.seen:
                return arm.level, f"bandit: explore {arm.level} (untried)"
        leads = self._leads[leader.level] = self._leads.get(leader.level, 0) + 1
        share = leader.mean / ref if ref > 0 else 0.0
        leader_reason = f"bandit: leader {leader.level} (mean {share:.0%} of best)"
        if (leads - 1) % LEADER_PERIOD == 0:
            return leader.level, leader_reason
        sigma = self._sigma(ref)
        total = sum(arm.weight for arm in self._arms)
        log_n = math.log(max(total, math.e))
        best_index = -math.inf
        choices: list[_Arm] = []
        for arm in [leader, *neighbours]:
            if arm.weight <= 1e-9:
                index = math.inf
            else:
                mean = arm.mean / ref if ref > 0 else 0.0
                index = mean + sigma * math.sqrt(2.0 * log_n / arm.weight)
            if index > best_index:
                best_index, choices = index, [arm]
            elif index == best_index:
                choices.append(arm)
        chosen = leader if leader in choices else self._rng.choice(choices)
        if chosen is leader:
            return leader.level, leader_reason
        shown = "inf" if math.isinf(best_index) else f"{best_index:.2f}"
        return chosen.level, f"bandit: explore {chosen.level} (UCB {shown})"

    def _throttled(self, arm: _Arm, window: Window) -> Decision | None:
        self._discount()
        arm.add(0.0, 1.0, penalty=True)
        lowest = self._arms[0]
        if arm is not lowest:
            if self._ceiling is None or arm.level < self._ceiling:
                if self._ceiling is not None or self._ban_until > 0:
                    self._ban_windows *= 2  # throttled again: keep away longer
                self._ceiling = arm.level
            self._ban_until = self._windows + self._ban_windows
        limit = max(self._lo, math.floor(arm.level * self._backoff))
        below = [a for a in self._allowed() if a.level <= limit and a.level < arm.level]
        target = below[-1].level if below else lowest.level
        what = f"{window.throttles} throttled" if window.throttles else "throttled"
        if target == window.concurrency:
            return None
        return Decision(target, f"bandit: {what} at {window.concurrency}, back to {target}")

    # ---- persistence ------------------------------------------------------------------------------------------

    def _save(self, path: pathlib.Path) -> None:
        ref = self._reference()
        leader = self._leader(self._allowed())
        state: dict[str, Any] = {
            "schema": STATE_SCHEMA,
            "version": STATE_VERSION,
            "best": None if leader is None else leader.level,
            "throttle_ceiling": self._ceiling,
            "sigma": round(self._sigma(ref), 4),
            "arms": [
                {
                    "level": arm.level,
                    "pulls": arm.lifetime,
                    "weight": round(arm.weight, 4),
                    "mean": round(arm.mean / ref, 4) if ref > 0 else 0.0,
                }
                for arm in self._arms
                if arm.seen and arm.weight > 0
            ],
        }
        from ..cache import new_temp  # the file lives in the cache: it gets the modes the run's umask gives

        out, tmp = new_temp(path.parent, f".{path.name}.")
        try:
            with out:
                out.write(json.dumps(state, indent=1).encode("utf-8") + b"\n")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _load(self, path: pathlib.Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            _log.warning("ignoring the adaptive concurrency state %s: %s", path, exc)
            return
        try:
            state = _parse_state(text)
        except ValueError as exc:
            _log.warning("ignoring the adaptive concurrency state %s: %s", path, exc)
            return
        by_level = {arm.level: arm for arm in self._arms}
        for level, pulls, weight, mean in state.arms:
            arm = by_level.get(level)
            if arm is None:
                continue
            prior = min(weight, SEED_WEIGHT_CAP) * SEED_WEIGHT_FACTOR
            arm.weight = prior
            arm.total = mean * prior
            arm.squares = (mean * mean + state.sigma * state.sigma) * prior
            arm.lifetime = pulls
            arm.seen = prior > 0
        if state.ceiling is not None and state.ceiling > self._lo:
            self._ceiling = state.ceiling
            self._ban_until = self._ban_windows
        if state.best is not None:
            best = self._arm_for(self._clamp(state.best))
            if self._ceiling is not None and best.level >= self._ceiling:
                best = self._allowed()[-1]
            self._learned = best.level


@dataclass(frozen=True)
class _State:
    best: int | None
    ceiling: int | None
    sigma: float
    arms: list[tuple[int, int, float, float]]  # level, pulls, weight, mean


def _parse_state(text: str) -> _State:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("schema") != STATE_SCHEMA:
        raise ValueError("not an adaptive concurrency state file")
    if raw.get("version") != STATE_VERSION:
        raise ValueError(f"unsupported version {raw.get('version')!r}")

    def number(value: object, what: str, lo: float, hi: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ValueError(f"bad {what} {value!r}")
        return float(value)

    best = _optional_level(raw.get("best"), "best")
    ceiling = _optional_level(raw.get("throttle_ceiling"), "throttle_ceiling")
    sigma = number(raw.get("sigma", SIGMA_PRIOR), "sigma", 0.0, 10.0)
    entries = raw.get("arms")
    if not isinstance(entries, list):
        raise ValueError("no arms")
    arms: list[tuple[int, int, float, float]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError(f"bad arm {entry!r}")
        pulls = entry.get("pulls")
        if type(pulls) is not int or pulls < 0:
            raise ValueError(f"bad pulls {pulls!r}")
        arm_level = _level(entry.get("level"), "level")
        weight = number(entry.get("weight"), "weight", 0.0, 1e6)
        mean = number(entry.get("mean"), "mean", 0.0, 1.0)
        arms.append((arm_level, pulls, weight, mean))
    return _State(best, ceiling, sigma, arms)


def _level(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"bad {what} {value!r}")
    return value


def _optional_level(value: object, what: str) -> int | None:
    return None if value is None else _level(value, what)

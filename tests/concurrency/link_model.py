"""Small seeded link models for driving concurrency managers without a network.

``Link.window`` makes one synthetic measuring window at a level; ``drive`` feeds a manager a sequence of them
through a real ``PerformanceMonitor`` (so confidence and anomalies are computed as in a run); ``simulate``
runs a whole transfer (N blobs through a fluid model of the link, with permits, a queue and 429 retries that
give their permit up while they sleep) and reports how long it took.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from docker_image_pusher.concurrency import DynamicManager, Manager, PerformanceMonitor, Window

MiB = 2**20


@dataclass(frozen=True)
class Link:
    """throughput(c) = min(c x per_conn, cap) x (1 - slope x c), with lognormal noise per window.

    Above ``throttle_above`` transfers at once the registry answers 429 to the extra ones.
    """

    per_conn: float
    cap: float
    slope: float = 0.0
    noise: float = 0.0
    throttle_above: int | None = None

    def mean(self, c: int) -> float:
        return min(c * self.per_conn, self.cap) * max(0.05, 1 - self.slope * c)

    def window(self, index: int, c: int, rng: random.Random, *, interval: float = 0.25, waiting: int = 8) -> Window:
        served = c if self.throttle_above is None else min(c, self.throttle_above)
        throughput = self.mean(served) * (rng.lognormvariate(0, self.noise) if self.noise else 1.0)
        throttles = 0 if self.throttle_above is None else max(0, c - self.throttle_above)
        start = index * interval
        return Window(
            start=start,
            end=start + interval,
            concurrency=c,
            active=c,
            waiting=waiting,
            bytes=int(throughput * interval),
            throughput=throughput,
            errors=throttles,
            throttles=throttles,
            statuses=(429,) * throttles,
            streaming=served,
            peak_active=c,
        )


CAPPED = Link(per_conn=20 * MiB, cap=120 * MiB)  # the benchmark's shaped link: best fixed level 6
LOOPBACK = Link(per_conn=300 * MiB, cap=500 * MiB, slope=0.04, noise=0.05)  # CPU-bound: 2: 460, 3: 440 MiB/s
LIMITED = Link(per_conn=20 * MiB, cap=400 * MiB, throttle_above=4)  # 429 above 4 transfers at once


@dataclass
class Drive:
    levels: list[int] = field(default_factory=list)  # the level in force in each window
    reasons: list[str] = field(default_factory=list)


def drive(
    manager: Manager, link: Link, windows: int, *, seed: int = 0, size: int = 8, waiting: int = 8, start: int = 0
) -> Drive:
    rng = random.Random(seed)
    monitor = PerformanceMonitor(size)
    level = manager.initial() if start == 0 else start
    run = Drive()
    for i in range(windows):
        window = monitor.observe(link.window(i, level, rng, waiting=waiting))
        run.levels.append(level)
        decision = manager.decide(window)
        if decision is not None:
            assert decision.concurrency != level, f"a decision must change the level: {decision}"
            run.reasons.append(decision.reason)
            level = decision.concurrency
    return run


@dataclass
class Simulation:
    elapsed: float
    total: float  # bytes moved
    levels: list[int]  # the level in force in each window
    throttled: int  # attempts answered with 429
    most_attempts: int  # the most attempts any one blob needed

    @property
    def throughput(self) -> float:
        return self.total / self.elapsed


def simulate(
    manager: Manager,
    link: Link,
    *,
    blobs: int = 40,
    size: int = 16 * MiB,
    dt: float = 0.005,
    seed: int = 0,
) -> Simulation:
    """Move ``blobs`` blobs of ``size`` bytes over ``link``, the manager sizing the pool every window.

    A fluid model in steps of ``dt``: active transfers share the link; a transfer the registry refuses (429)
    holds its slot for one step, then sleeps 1, 2, 4 ... s (+-50%) without a permit and queues again at the
    back, as the task runner's retries do. As in the controller, a throttle closes the window at once.
    """
    rng = random.Random(seed)
    monitor = PerformanceMonitor(manager.params.window if isinstance(manager, DynamicManager) else 8)
    queue: deque[int] = deque(range(blobs))
    active: dict[int, float] = {}
    sleeping: list[tuple[float, int]] = []
    attempts = [0] * blobs
    level = manager.initial()
    levels: list[int] = []
    throttled = 0
    t = 0.0
    window_start, window_bytes, window_throttles, peak, peak_permits = 0.0, 0.0, 0, 0, 0
    factor = 1.0
    while queue or active or sleeping:
        for wake, blob in sorted(s for s in sleeping if s[0] <= t):
            sleeping.remove((wake, blob))
            queue.append(blob)
        refused: list[int] = []
        while queue and len(active) + len(refused) < level:
            blob = queue.popleft()
            attempts[blob] += 1
            if link.throttle_above is not None and len(active) >= link.throttle_above:
                refused.append(blob)
                continue
            active[blob] = float(size)
        peak = max(peak, len(active))
        peak_permits = max(peak_permits, len(active) + len(refused))
        if active:
            share = link.mean(len(active)) / len(active) * factor
            for blob in list(active):
                moved = min(active[blob], share * dt)
                active[blob] -= moved
                window_bytes += moved
                if active[blob] <= 0:
                    del active[blob]
        for blob in refused:
            throttled += 1
            window_throttles += 1
            delay = min(30.0, 2.0 ** (attempts[blob] - 1)) * rng.uniform(0.5, 1.5)
            sleeping.append((t + delay, blob))
        t += dt
        if window_throttles or t - window_start >= _interval(manager) - 1e-9:
            window = monitor.observe(
                Window(
                    start=window_start,
                    end=t,
                    concurrency=level,
                    active=len(active),
                    waiting=len(queue),
                    bytes=int(window_bytes),
                    throughput=window_bytes / (t - window_start),
                    errors=window_throttles,
                    throttles=window_throttles,
                    statuses=(429,) * window_throttles,
                    streaming=peak,
                    peak_active=peak_permits,
                )
            )
            levels.append(level)
            decision = manager.decide(window)
            if decision is not None:
                level = decision.concurrency
            window_start, window_bytes, window_throttles = t, 0.0, 0
            peak = peak_permits = len(active)
            factor = rng.lognormvariate(0, link.noise) if link.noise else 1.0
    return Simulation(t, float(blobs * size), levels, throttled, max(attempts))


def _interval(manager: Manager) -> float:
    if isinstance(manager, DynamicManager):
        params = manager.params
        return params.ramp_interval if manager.in_slow_start else params.sample_interval
    return 0.4


def best_fixed(link: Link, levels: range = range(1, 13)) -> tuple[int, float]:
    """(level, seconds) of the fastest fixed level on ``link``."""
    from docker_image_pusher.concurrency import FixedManager

    results = [(level, simulate(FixedManager(level, level), link).elapsed) for level in levels]
    return min(results, key=lambda result: (result[1], result[0]))

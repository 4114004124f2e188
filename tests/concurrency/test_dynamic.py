"""The dynamic manager driven by synthetic windows from seeded link models, and whole simulated runs."""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections import Counter

import pytest
from concurrency.link_model import CAPPED, LIMITED, LOOPBACK, Link, MiB, best_fixed, drive, simulate

from docker_image_pusher.concurrency import DynamicManager, FixedManager, StrategyParams, Window, strategy_params


def manager(strategy: str = "adaptive", low: int = 1, high: int = 12, **kwargs: int) -> DynamicManager:
    """A manager starting from the minimum (as the benchmark's runs do), unless the test says otherwise or
    checks the strategy's own start (aggressive)."""
    if strategy != "aggressive":
        kwargs.setdefault("initial", low)
    return DynamicManager(low, high, params=strategy_params(strategy), **kwargs)


def test_the_default_strategy_starts_at_four_within_the_range() -> None:
    assert DynamicManager(1, 12, params=strategy_params("adaptive")).initial() == 4
    assert DynamicManager(1, 3, params=strategy_params("adaptive")).initial() == 3
    assert DynamicManager(6, 12, params=strategy_params("adaptive")).initial() == 6


def window(
    c: int,
    throughput: float,
    *,
    waiting: int = 4,
    confidence: float = 1.0,
    anomaly: str | None = None,
    throttles: int = 0,
    statuses: tuple[int, ...] = (),
    streaming: int = 0,
    end: float = 1.0,
) -> Window:
    return Window(
        start=end - 0.4,
        end=end,
        concurrency=c,
        active=c,
        waiting=waiting,
        bytes=int(throughput * 0.4),
        throughput=throughput,
        errors=throttles,
        throttles=throttles,
        confidence=confidence,
        anomaly=anomaly,
        statuses=statuses,
        streaming=streaming,
    )


# ---- ramp ------------------------------------------------------------------------------------------------------


def test_slow_start_reaches_five_within_four_windows_on_a_capped_link() -> None:
    run = drive(manager(), CAPPED, 12)
    assert run.levels[:4] == [1, 2, 4, 8]
    assert run.reasons[0] == "slow start: 1 -> 2, at 20.0 MiB/s"
    assert run.reasons[1] == "slow start: 2 -> 4, throughput +100%"


def test_slow_start_that_stops_paying_stays_where_it_is_when_it_did_not_hurt() -> None:
    m = manager(high=32)
    run = drive(m, CAPPED, 6)
    assert run.levels[:6] == [1, 2, 4, 8, 16, 16]  # 8 -> 16 gained nothing, lost nothing: one noisy window decides
    assert not m.in_slow_start  # nothing, so hill climbing takes over from 16


def test_then_hill_climbing_walks_down_to_the_knee_of_a_capped_link() -> None:
    run = drive(manager(), CAPPED, 80)
    assert Counter(run.levels[-30:]).most_common(1)[0][0] == 6  # 6 x 20 MiB/s fills the 120 MiB/s link
    assert min(run.levels[8:]) >= 5
    assert any(reason.startswith("fewer connections: +0% at 7, trying 6") for reason in run.reasons)


def test_linear_growth_of_the_conservative_strategy() -> None:
    run = drive(manager("conservative"), CAPPED, 14, size=10)
    # One more connection at a time, each level judged on two confident windows first.
    assert run.levels[:10] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert run.reasons[0] == "hill climb: probing 2 (1 steady at 20.0 MiB/s)"
    assert run.reasons[1] == "hill climb: +100% at 2, trying 3"


def test_aggressive_starts_higher_and_moves_in_bigger_steps() -> None:
    aggressive = manager("aggressive", high=32)
    assert aggressive.initial() == 4
    run = drive(aggressive, CAPPED, 40, size=4)
    assert run.levels[:4] == [4, 8, 16, 16]  # gains of 5% count; 16 brought none
    assert "fewer connections: probing 12 (16 steady at 120.0 MiB/s)" in run.reasons  # steps of 25%, not 1
    assert Counter(run.levels[-10:]).most_common(1)[0][0] in (6, 7)  # the knee, or one step of 25% above it


def test_network_optimized_jumps_to_what_the_bandwidth_calls_for() -> None:
    run = drive(manager("network-optimized", high=32), CAPPED, 6)
    assert run.levels[:5] == [1, 2, 4, 8, 6]  # per connection fell at 8 (15 < 20 MiB/s): 120 / 20 -> 6
    assert run.reasons[3].startswith("bandwidth: throughput stopped scaling at 8")
    assert run.reasons[3].endswith("120.0 MiB/s / 20.0 MiB/s -> 6")


def test_network_optimized_counts_finished_transfers_as_single_connection_evidence() -> None:
    m = manager("network-optimized", high=32, initial=4)
    # Started at 4 on a link already capped at 60: in-window 15 MiB/s per connection, but finished transfers
    # ran at 30 MiB/s alone, so 4 x 15 stops scaling at once and the target is 60 / 30 = 2.
    first = dataclasses.replace(window(4, 60 * MiB), per_connection=30 * MiB)
    assert m.decide(first) is not None  # 15 >= 0.9 x 15: still holds (nothing to compare with yet) -> 8
    decision = m.decide(dataclasses.replace(window(8, 60 * MiB), per_connection=30 * MiB))
    assert decision is not None and decision.concurrency == 2


def test_resource_aware_stays_under_the_machine_ceiling() -> None:
    readings: list[int] = []

    def ceiling(level: int) -> tuple[int, str]:
        readings.append(level)
        return 3, "resources: only 200 MiB of memory available"

    params = dataclasses.replace(strategy_params("resource-aware"), ceiling=ceiling)
    m = DynamicManager(1, 12, initial=1, params=params)
    levels = drive(m, CAPPED, 20).levels
    assert max(levels) == 3
    assert len(readings) <= 3  # the machine is read every 5 s, not every window
    over = DynamicManager(1, 12, initial=6, params=params)
    decision = over.decide(window(6, 100 * MiB, waiting=0))
    assert decision is not None and decision.concurrency == 3
    assert decision.reason == "resources: only 200 MiB of memory available: 6 -> 3"


def test_the_default_resource_ceiling_reads_the_machine() -> None:
    params = strategy_params("resource-aware")
    assert params.ceiling is not None
    bound = params.ceiling(4)
    assert bound is None or (bound[0] >= 1 and bound[1].startswith("resources: "))


# ---- push-back ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_settles_at_or_under_four_when_the_registry_throttles_above_four(seed: int) -> None:
    noisy = dataclasses.replace(LIMITED, noise=0.05)
    run = drive(manager(), noisy, 120, seed=seed)
    late = run.levels[20:]
    assert max(run.levels) == 8  # the one overshoot of slow start
    assert sum(level > 4 for level in late) <= 3  # ever rarer probes above the ceiling
    assert Counter(late)[4] >= 0.8 * len(late)


def test_throttle_with_the_served_count_goes_straight_to_the_registry_limit() -> None:
    m = manager(initial=8)
    decision = m.decide(window(8, 60 * MiB, anomaly="throttled", throttles=3, statuses=(429,) * 3, streaming=4))
    assert decision is not None and decision.concurrency == 4
    assert decision.reason == "throttled (3 x 429): back off 8 -> 4"
    assert m.ceiling == 4


def test_throttle_without_the_served_count_backs_off_multiplicatively_and_remembers_a_ceiling() -> None:
    m = manager(initial=8)
    decision = m.decide(window(8, 60 * MiB, anomaly="throttled", throttles=2, statuses=(503, 429)))
    assert decision is not None and decision.concurrency == 5  # floor(8 x 0.7)
    assert decision.reason == "throttled (1 x 429, 1 x 503): back off 8 -> 5"
    assert m.ceiling == 7  # TCP's ssthresh: the throttled level minus one


def test_the_ceiling_rises_after_quiet_windows_ever_more_slowly() -> None:
    m = manager(initial=5)
    m.decide(window(5, 50 * MiB, anomaly="throttled", throttles=1, streaming=4))
    assert m.ceiling == 4
    quiet = strategy_params("adaptive").quiet_windows
    for _ in range(quiet):
        m.decide(window(4, 80 * MiB, waiting=2, confidence=0.0))
    assert m.ceiling == 5
    m.decide(window(5, 50 * MiB, anomaly="throttled", throttles=1, streaming=4))
    assert m.ceiling == 4
    for _ in range(2 * quiet - 1):
        m.decide(window(4, 80 * MiB, confidence=0.0))
    assert m.ceiling == 4  # the second throttle doubles the wait
    m.decide(window(4, 80 * MiB, confidence=0.0))
    assert m.ceiling == 5


def test_anomalies_back_off_even_unsaturated_and_unconfident() -> None:
    for anomaly, reason in (
        ("error burst", "error burst (4 failures): back off 10 -> 7"),
        ("throughput drop", "throughput drop to 10.0 MiB/s: back off 10 -> 7"),
    ):
        m = manager(initial=10)
        w = dataclasses.replace(window(10, 10 * MiB, waiting=0, confidence=0.0, anomaly=anomaly), errors=4)
        decision = m.decide(w)
        assert decision is not None and (decision.concurrency, decision.reason) == (7, reason)
        assert m.ceiling is None  # only the registry's push-back sets a ceiling


def test_back_off_never_goes_below_min_and_always_makes_progress() -> None:
    m = manager("aggressive", low=2, initial=3)  # floor(3 x 0.75) = 2
    assert m.decide(window(3, 1.0, anomaly="error burst")) is not None
    assert m.decide(window(2, 1.0, anomaly="error burst")) is None  # already at the minimum
    m2 = manager("aggressive", initial=2)  # floor(2 x 0.75) = 1
    d = m2.decide(window(2, 1.0, anomaly="error burst"))
    assert d is not None and d.concurrency == 1


# ---- stability ------------------------------------------------------------------------------------------------


def test_windows_without_waiting_demand_change_nothing() -> None:
    m = manager()
    for throughput in (0.0, 5 * MiB, 500 * MiB, 1.0):
        assert m.decide(window(1, throughput, waiting=0)) is None
    assert m.initial() == 1


def test_windows_while_a_lowered_limit_drains_are_not_judged() -> None:
    m = manager("conservative", initial=4)
    draining = dataclasses.replace(window(4, 60 * MiB), active=6)
    assert draining.draining
    for _ in range(5):
        assert m.decide(draining) is None  # six transfers ran: that is not the throughput of four
    assert m.decide(window(4, 60 * MiB)) is not None


def test_no_probe_below_the_level_the_registry_served() -> None:
    m = manager(initial=8)
    m.decide(window(8, 60 * MiB, anomaly="throttled", throttles=4, streaming=4))
    levels = [4]
    for i in range(80):
        level = levels[-1]
        if level > 4:
            w = window(level, 60 * MiB, anomaly="throttled", throttles=level - 4, streaming=4, end=float(i))
        else:
            w = window(level, level * 20 * MiB, end=float(i))
        decision = m.decide(w)
        if decision is not None:
            levels.append(decision.concurrency)
    assert levels[:5] == [4, 5, 4, 5, 4]  # only the ceiling's rises probe, ever more rarely; never below 4


def test_hill_climbing_waits_for_confidence() -> None:
    m = manager("conservative", initial=3)
    for _ in range(10):
        assert m.decide(window(3, 60 * MiB, confidence=0.79)) is None
    assert m.decide(window(3, 60 * MiB, confidence=0.8)) is not None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_cpu_bound_loopback_settles_low_and_does_not_thrash(seed: int) -> None:
    run = drive(manager(), LOOPBACK, 150, seed=seed)
    late = run.levels[30:]
    assert Counter(late).most_common(1)[0][0] in (2, 3)
    assert all(level <= 4 for level in late)
    changes = sum(a != b for a, b in itertools.pairwise(late))
    assert changes <= 12  # a probe (out and back) every 20 windows at most, ~8 s of 0.4 s windows


def test_never_leaves_the_range_whatever_the_windows() -> None:
    rng = random.Random(5)
    for strategy in ("conservative", "aggressive", "adaptive", "network-optimized"):
        m = manager(strategy, low=2, high=9)
        level = m.initial()
        for i in range(400):
            anomaly = rng.choice((None, None, None, None, "throttled", "error burst", "throughput drop"))
            w = window(
                level,
                rng.uniform(0, 200 * MiB),
                waiting=rng.choice((0, 0, 1, 6)),
                confidence=rng.random(),
                anomaly=anomaly,
                throttles=1 if anomaly == "throttled" else 0,
                streaming=rng.choice((0, 1, 3, 12)),
                end=i * 0.4,
            )
            w = dataclasses.replace(w, per_connection=rng.uniform(0, 30 * MiB))
            decision = m.decide(w)
            if decision is not None:
                assert 2 <= decision.concurrency <= 9, (strategy, decision)
                assert decision.concurrency != level
                level = decision.concurrency


def test_a_level_changed_from_outside_is_adopted() -> None:
    m = manager()
    drive(m, CAPPED, 3)  # in slow start, at 8 next
    assert m.in_slow_start
    assert m.decide(window(3, 60 * MiB)) is None  # a hot update set 3: judged afresh, no slow start
    assert not m.in_slow_start
    m.set_bounds(1, 4)
    for i in range(20):
        decision = m.decide(window(3, 60 * MiB, end=float(i)))
        if decision is not None:
            assert decision.concurrency <= 4


def test_switching_params_keeps_what_was_learned() -> None:
    m = manager(initial=8)
    m.decide(window(8, 60 * MiB, anomaly="throttled", throttles=1, streaming=5))
    m.set_params(strategy_params("conservative"))
    assert m.params.name == "conservative"
    assert m.ceiling == 5
    assert not m.in_slow_start


def test_every_strategy_has_its_own_behaviour() -> None:
    params = {name: strategy_params(name) for name in ("conservative", "aggressive", "adaptive", "network-optimized")}
    shapes = {
        (p.initial, p.growth, p.step, p.backoff_factor, p.sample_interval, p.window, p.speed_threshold)
        for p in params.values()
    }
    assert len(shapes) == 4
    assert params["network-optimized"].growth == "bandwidth" and params["network-optimized"].rtt_multiple == 4.0
    assert strategy_params("resource-aware").ceiling is not None
    runs = {name: tuple(drive(manager(name, high=32), CAPPED, 12).levels) for name in params}
    assert len(set(runs.values())) == len(runs)


def test_strategy_params_accept_the_config_overrides() -> None:
    from docker_image_pusher.concurrency import ConcurrencyConfig

    config = ConcurrencyConfig(
        adjustment_factor=0.5, speed_threshold=0.2, sample_interval=2.0, confidence_threshold=0.9
    )
    p: StrategyParams = strategy_params("aggressive", config)
    assert (p.step, p.speed_threshold, p.sample_interval, p.ramp_interval, p.confidence_threshold) == (
        0.5,
        0.2,
        2.0,
        2.0,
        0.9,
    )
    assert p.move(10) == 5 and strategy_params("adaptive").move(10) == 1


# ---- whole runs (the benchmark's goals on a fluid model of the link) ------------------------------------------


def test_a_run_on_a_capped_link_gets_close_to_the_best_fixed_level() -> None:
    _, best = best_fixed(CAPPED)
    fixed6 = simulate(FixedManager(6, 6), CAPPED).elapsed
    run = simulate(manager(initial=1), CAPPED)
    assert run.elapsed <= best / 0.88  # the ramp from 1 costs ~0.4 s of a ~5.5 s run
    assert run.elapsed <= fixed6 / 0.9


def test_a_run_on_a_cpu_bound_loopback_gets_close_to_the_best_fixed_level() -> None:
    _, best = best_fixed(LOOPBACK)
    assert simulate(manager(initial=1), LOOPBACK).elapsed <= best / 0.9


def test_a_run_against_a_registry_limited_to_four_fails_no_transfer() -> None:
    level, best = best_fixed(LIMITED)
    assert level == 4
    run = simulate(manager(initial=1), LIMITED)
    assert run.most_attempts <= 2  # one 429 at most for any blob (three retries are allowed)
    assert run.throttled <= 8
    assert run.elapsed <= best / 0.85
    assert sum(level > 4 for level in run.levels[6:]) <= 1  # one probe above the ceiling, answered at once


def test_a_link_model_sanity_check() -> None:
    link = Link(per_conn=10 * MiB, cap=25 * MiB)
    assert [round(link.mean(c) / MiB) for c in (1, 2, 3, 4)] == [10, 20, 25, 25]

"""The adaptive manager driven by synthetic windows from small seeded link models."""

from __future__ import annotations

import itertools
import json
import logging
import os
import pathlib
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from docker_image_pusher.concurrency._adaptive import BAN_WINDOWS, STATE_SCHEMA, STATE_VERSION, AdaptiveManager
from docker_image_pusher.concurrency._types import Decision, Window

MB = 1_000_000.0
WINDOW = 0.3


@dataclass(frozen=True)
class Link:
    """throughput(c) = min(c * per_conn, cap) * (1 - slope * c), with lognormal noise; 429s above throttle_above."""

    per_conn: float
    cap: float
    slope: float
    noise: float = 0.05
    throttle_above: int | None = None

    def mean(self, c: int) -> float:
        return min(c * self.per_conn, self.cap) * max(0.05, 1 - self.slope * c)

    def window(self, index: int, c: int, rng: random.Random) -> Window:
        throughput = self.mean(c) * rng.lognormvariate(0, self.noise)
        throttles = 0
        if self.throttle_above is not None and c > self.throttle_above:
            throttles = 1 + c - self.throttle_above
            throughput *= 0.3
        start = index * WINDOW
        return Window(
            start=start,
            end=start + WINDOW,
            concurrency=c,
            active=c,
            waiting=4,
            bytes=int(throughput * WINDOW),
            throughput=throughput,
            errors=throttles,
            throttles=throttles,
        )


SIX = Link(per_conn=10 * MB, cap=60 * MB, slope=0.03)  # 4: 35, 6: 49, 8: 45, 10: 42 MB/s
LOOPBACK = Link(per_conn=500 * MB, cap=1200 * MB, slope=0.04)  # 2: 912, 3: 1046, 4: 999, 6: 904 MB/s
TWELVE = Link(per_conn=10 * MB, cap=120 * MB, slope=0.02)  # 10: 79, 12: 90, 16: 81 MB/s
TWO = Link(per_conn=30 * MB, cap=60 * MB, slope=0.08)  # 1: 27, 2: 50, 3: 45, 4: 40 MB/s
LIMITED = Link(per_conn=10 * MB, cap=100 * MB, slope=0.01, throttle_above=4)

Model = Link | Callable[[int, int, random.Random], Window]


@dataclass
class Run:
    levels: list[int]  # the limit in force in each window
    decisions: list[Decision | None]


def drive(manager: AdaptiveManager, model: Model, windows: int, seed: int = 0, *, start_index: int = 0) -> Run:
    rng = random.Random(seed)
    level = manager.initial()
    run = Run([], [])
    for i in range(start_index, start_index + windows):
        window = model.window(i, level, rng) if isinstance(model, Link) else model(i, level, rng)
        run.levels.append(level)
        decision = manager.decide(window)
        run.decisions.append(decision)
        if decision is not None:
            assert decision.concurrency != level, "a decision must change the level"
            level = decision.concurrency
    return run


def window(c: int, throughput: float, *, waiting: int = 3, throttles: int = 0, anomaly: str | None = None) -> Window:
    return Window(
        start=0.0,
        end=WINDOW,
        concurrency=c,
        active=c,
        waiting=waiting,
        bytes=int(throughput * WINDOW),
        throughput=throughput,
        throttles=throttles,
        errors=throttles,
        anomaly=anomaly,
    )


# ---- grid and range ----------------------------------------------------------------------------------------


def test_arm_grid_covers_the_range_and_includes_an_explicit_start() -> None:
    assert list(AdaptiveManager(1, 16).arms()) == [1, 2, 3, 4, 6, 8, 10, 12, 16]
    assert list(AdaptiveManager(3, 9).arms()) == [3, 4, 6, 8, 9]
    assert 5 in AdaptiveManager(1, 16, initial=5).arms()
    big = list(AdaptiveManager(100, 400).arms())
    assert big[0] == 100 and big[-1] == 400 and big == sorted(big)
    assert all(b / a <= 1.3 for a, b in itertools.pairwise(big))
    assert list(AdaptiveManager(4, 4).arms()) == [4]
    with pytest.raises(ValueError):
        AdaptiveManager(5, 4)


def test_initial_is_clamped_and_defaults_to_min() -> None:
    assert AdaptiveManager(2, 10).initial() == 2
    assert AdaptiveManager(2, 10, initial=50).initial() == 10
    assert AdaptiveManager(2, 10, initial=0).initial() == 2


def test_never_leaves_the_range_whatever_the_windows() -> None:
    rng = random.Random(7)
    manager = AdaptiveManager(2, 10, seed=1)
    level = manager.initial()
    for _ in range(400):
        w = window(
            level,
            rng.uniform(0, 100 * MB),
            waiting=rng.choice((0, 0, 1, 5)),
            throttles=rng.choice((0, 0, 0, 0, 0, 0, 2)),
            anomaly=rng.choice((None, None, None, "throughput drop", "error burst")),
        )
        decision = manager.decide(w)
        if decision is not None:
            assert 2 <= decision.concurrency <= 10
            level = decision.concurrency
    assert all(2 <= level <= 10 for level in manager.arms())


def test_single_level_range_never_decides() -> None:
    manager = AdaptiveManager(3, 3)
    assert all(d is None for d in drive(manager, SIX, 30).decisions)


# ---- learning within a run ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cold_start_climbs_to_the_optimum_quickly_and_stays_near_it(seed: int) -> None:
    manager = AdaptiveManager(1, 32, seed=seed)
    run = drive(manager, SIX, 100, seed)
    assert run.levels[:5] == [1, 2, 3, 4, 6]  # one grid step per window while neighbours are untried
    settled = Counter(run.levels[20:])
    assert settled.most_common(1)[0][0] == 6
    assert settled[6] >= 0.5 * 80
    assert settled[4] + settled[6] + settled[8] >= 0.9 * 80
    assert manager.best == 6
    pulls, mean = manager.arms()[6]
    assert pulls > 40 and mean == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("seed", [0, 1])
def test_loopback_like_link_settles_at_two_or_three(seed: int) -> None:
    manager = AdaptiveManager(1, 32, seed=seed)
    run = drive(manager, LOOPBACK, 100, seed)
    settled = Counter(run.levels[20:])
    assert settled.most_common(1)[0][0] in (2, 3)
    assert settled[2] + settled[3] + settled[4] >= 0.9 * 80
    assert max(run.levels) <= 6  # never climbs past the first level that is worse


def test_noisy_link_still_centres_on_the_optimum() -> None:
    noisy = Link(per_conn=10 * MB, cap=60 * MB, slope=0.03, noise=0.25)
    manager = AdaptiveManager(1, 32, seed=3)
    settled = Counter(drive(manager, noisy, 200, 3).levels[30:])
    assert settled[4] + settled[6] + settled[8] >= 0.8 * 170
    assert settled[6] + settled[8] >= 0.6 * 170


def test_non_saturated_windows_change_nothing() -> None:
    manager = AdaptiveManager(1, 32, seed=0)
    drive(manager, SIX, 30)
    before = manager.arms()
    for throughput in (0.0, 1.0, 500 * MB, 5 * MB):
        assert manager.decide(window(6, throughput, waiting=0)) is None
        assert manager.decide(window(12, throughput, waiting=0, anomaly="throughput drop")) is None
    assert manager.arms() == before


def test_cold_start_ignores_non_saturated_windows() -> None:
    manager = AdaptiveManager(1, 16)
    for _ in range(5):
        assert manager.decide(window(1, 10 * MB, waiting=0)) is None
    assert manager.arms()[1] == (0, 0.0)
    assert manager.decide(window(1, 10 * MB)) == Decision(2, "bandit: explore 2 (untried)")


def test_decision_reasons() -> None:
    manager = AdaptiveManager(1, 32, seed=0)
    reasons = [d.reason for d in drive(manager, SIX, 60).decisions if d is not None]
    assert reasons[0] == "bandit: explore 2 (untried)"
    assert any(r.startswith("bandit: leader 6 (mean ") and r.endswith("% of best)") for r in reasons)
    assert any(r.startswith("bandit: explore 8 (UCB ") for r in reasons)


# ---- throttling --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_registry_throttling_above_four_keeps_play_at_or_below_four(seed: int) -> None:
    manager = AdaptiveManager(1, 32, seed=seed)
    run = drive(manager, LIMITED, 200, seed)
    first = next(i for i, level in enumerate(run.levels) if level > 4)
    decision = run.decisions[first]
    assert decision is not None and decision.concurrency == 4
    assert "throttled at" in decision.reason and decision.reason.endswith("back to 4")
    after = run.levels[first + 1 :]
    assert all(level <= 4 for level in after[:BAN_WINDOWS])  # banned: no probing above the throttling level
    probes = [i for i, level in enumerate(after) if level > 4]
    assert len(probes) <= 2  # the ban doubles after each repeat, so later re-probes are rare
    for i in probes:  # and a re-probe that is throttled again is left at once
        assert after[i + 1] <= 4 if i + 1 < len(after) else True
    assert Counter(after).most_common(1)[0][0] == 4
    assert manager.best == 4


def test_throttled_window_backs_off_by_the_backoff_factor_and_bans_above() -> None:
    manager = AdaptiveManager(1, 32)
    assert manager.decide(window(10, 80 * MB)) is not None
    decision = manager.decide(window(16, 10 * MB, throttles=3))
    assert decision == Decision(10, "bandit: 3 throttled at 16, back to 10")  # 16 * 0.7 = 11.2 -> 10
    assert manager.arms()[16] == (1, 0.0)  # the penalty reward
    for _ in range(20):
        decision = manager.decide(window(10, 80 * MB))
        assert decision is None or decision.concurrency < 16


def test_backoff_factor_comes_from_params() -> None:
    manager = AdaptiveManager(1, 32, params=SimpleNamespace(backoff_factor=0.5, speed_threshold=0.1))
    decision = manager.decide(window(16, 10 * MB, throttles=1))
    assert decision is not None and decision.concurrency == 8
    odd = AdaptiveManager(1, 32, params=object())  # a params object without the attributes: defaults
    decision = odd.decide(window(8, 10 * MB, anomaly="throttled"))
    assert decision == Decision(4, "bandit: throttled at 8, back to 4")


def test_throttled_even_when_not_saturated() -> None:
    manager = AdaptiveManager(1, 32)
    decision = manager.decide(window(8, 10 * MB, waiting=0, throttles=2))
    assert decision is not None and decision.concurrency == 4


def test_throttled_at_the_minimum_stays_there() -> None:
    manager = AdaptiveManager(2, 8)
    assert manager.decide(window(2, 1 * MB, throttles=5)) is None
    decision = manager.decide(window(2, 10 * MB))
    assert decision is not None and decision.concurrency == 3  # no ban below the minimum


# ---- tracking a changing link -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("after", "near"), [(TWELVE, {10, 12, 16}), (TWO, {1, 2, 3})])
def test_discounting_tracks_a_link_that_changes_mid_run(after: Link, near: set[int]) -> None:
    def changing(i: int, c: int, rng: random.Random) -> Window:
        return (SIX if i < 60 else after).window(i, c, rng)

    for seed in (0, 1):
        manager = AdaptiveManager(1, 32, seed=seed)
        run = drive(manager, changing, 140, seed)
        assert Counter(run.levels[40:60]).most_common(1)[0][0] == 6
        late = Counter(run.levels[100:])
        assert sum(late[level] for level in near) >= 0.85 * 40
        assert manager.best in near


# ---- persistence -----------------------------------------------------------------------------------------------


def test_state_round_trip_starts_the_next_run_at_the_learned_level(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state" / "registry.example.json"
    first = AdaptiveManager(1, 32, state_file=state, seed=0)
    assert first.start_reason == "bandit: cold start at 1"
    drive(first, SIX, 80)
    first.close()
    saved = json.loads(state.read_text())
    assert saved["schema"] == STATE_SCHEMA and saved["version"] == STATE_VERSION
    assert saved["best"] == 6
    arms = {arm["level"]: arm for arm in saved["arms"]}
    assert arms[6]["mean"] == pytest.approx(1.0, abs=0.05) and arms[6]["pulls"] > 30
    assert arms[1]["mean"] < 0.3
    assert os.listdir(state.parent) == [state.name]  # no temp file left behind

    second = AdaptiveManager(1, 32, state_file=state, seed=0)
    assert second.initial() == 6
    assert second.start_reason == "learned: start at 6 from last run"
    seeded = second.arms()
    assert seeded[6][0] == 0 and seeded[6][1] == pytest.approx(1.0, abs=0.05)  # a prior, no pulls this run
    run = drive(second, SIX, 30, seed=5)
    assert min(run.levels) >= 4  # no re-climb from 1
    assert Counter(run.levels).most_common(1)[0][0] == 6

    explicit = AdaptiveManager(1, 32, state_file=state, initial=2)
    assert explicit.initial() == 2
    narrow = AdaptiveManager(1, 4, state_file=state)
    assert narrow.initial() == 4  # the learned level clamped to the range


def test_the_learned_state_gets_the_modes_of_the_runs_umask(tmp_path: pathlib.Path) -> None:
    from docker_image_pusher.cache import creating_with_umask

    state = tmp_path / "learned" / "registry.example.json"
    with creating_with_umask(0o027):
        manager = AdaptiveManager(1, 32, state_file=state, seed=0)
        drive(manager, SIX, 20)
        manager.close()
    assert state.stat().st_mode & 0o777 == 0o640
    assert state.parent.stat().st_mode & 0o777 == 0o750


def test_learned_prior_gives_way_to_new_evidence(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "s.json"
    first = AdaptiveManager(1, 32, state_file=state, seed=0)
    drive(first, SIX, 80)
    first.close()
    second = AdaptiveManager(1, 32, state_file=state, seed=0)
    assert second.initial() == 6
    run = drive(second, TWO, 40, seed=1)
    assert Counter(run.levels[20:]).most_common(1)[0][0] in (2, 3)
    assert second.best in (2, 3)


def test_learned_throttle_ceiling_carries_over(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "s.json"
    first = AdaptiveManager(1, 32, state_file=state, seed=0)
    drive(first, LIMITED, 40)
    first.close()
    assert json.loads(state.read_text())["throttle_ceiling"] in (6, 8)
    second = AdaptiveManager(1, 32, state_file=state, seed=0)
    assert second.initial() == 4
    run = drive(second, LIMITED, BAN_WINDOWS - 5)
    assert max(run.levels) <= 4


def test_close_without_evidence_or_state_file_writes_nothing(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "s.json"
    manager = AdaptiveManager(1, 8, state_file=state)
    manager.decide(window(1, 1 * MB, waiting=0))
    manager.close()
    assert not state.exists()
    AdaptiveManager(1, 8).close()  # no state file at all: fine


@pytest.mark.parametrize(
    "content",
    [
        "not json {",
        "[1, 2]",
        json.dumps({"schema": "something-else", "version": 1, "arms": []}),
        json.dumps({"schema": STATE_SCHEMA, "version": 99, "best": 6, "arms": []}),
        json.dumps({"schema": STATE_SCHEMA, "version": STATE_VERSION, "best": "six", "arms": []}),
        json.dumps(
            {
                "schema": STATE_SCHEMA,
                "version": STATE_VERSION,
                "best": 6,
                "arms": [{"level": 6, "pulls": 3, "weight": 2.0, "mean": "high"}],
            }
        ),
        json.dumps({"schema": STATE_SCHEMA, "version": STATE_VERSION, "best": 6, "arms": {"6": 1}}),
    ],
)
def test_corrupt_or_foreign_state_file_warns_once_and_cold_starts(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    state = tmp_path / "s.json"
    state.write_text(content)
    with caplog.at_level(logging.WARNING, logger="docker_image_pusher.concurrency"):
        manager = AdaptiveManager(1, 32, state_file=state)
    warnings = [r for r in caplog.records if r.name == "docker_image_pusher.concurrency"]
    assert len(warnings) == 1 and "ignoring" in warnings[0].getMessage()
    assert manager.initial() == 1
    assert all(pulls == 0 and mean == 0.0 for pulls, mean in manager.arms().values())
    assert drive(manager, SIX, 5).levels == [1, 2, 3, 4, 6]
    manager.close()  # replaces the bad file with a good one
    assert json.loads(state.read_text())["schema"] == STATE_SCHEMA


def test_missing_state_file_is_a_silent_cold_start(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="docker_image_pusher.concurrency"):
        manager = AdaptiveManager(1, 32, state_file=tmp_path / "absent.json")
    assert manager.initial() == 1 and not caplog.records


def test_failed_save_keeps_the_old_file_and_warns(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "s.json"
    state.write_text("old")
    manager = AdaptiveManager(1, 8, state_file=state, initial=2)
    drive(manager, SIX, 10)

    def broken(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with caplog.at_level(logging.WARNING, logger="docker_image_pusher.concurrency"):
        manager.close()
    assert state.read_text() == "old"
    assert os.listdir(tmp_path) == ["s.json"]
    assert any("could not save" in r.getMessage() for r in caplog.records)

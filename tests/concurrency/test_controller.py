"""The controller end to end: events into windows, decisions into permits, with fake transfers on real threads."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from concurrency.link_model import CAPPED, Link, MiB
from concurrency.threads import Gauge

from docker_image_pusher.concurrency import (
    Adjustment,
    ConcurrencyConfig,
    ConcurrencyController,
    Decision,
    DynamicManager,
    Window,
)
from docker_image_pusher.errors import UsageError
from docker_image_pusher.progress.events import (
    ConcurrencyAdjusted,
    ProgressBus,
    TransferFailed,
    TransferFinished,
    TransferProgress,
    TransferStarted,
)


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class Recorder:
    """A manager that remembers the windows it is shown and answers from a script."""

    name = "recorder"

    def __init__(self, initial: int = 2, script: list[Decision | None] | None = None) -> None:
        self._initial = initial
        self.script = deque(script or [])
        self.windows: list[Window] = []
        self.closed = 0

    def initial(self) -> int:
        return self._initial

    def decide(self, window: Window) -> Decision | None:
        self.windows.append(window)
        return self.script.popleft() if self.script else None

    def close(self) -> None:
        self.closed += 1


@contextlib.contextmanager
def saturated(controller: ConcurrencyController, workers: int = 30) -> Iterator[None]:
    """Worker threads that take a permit, hold it for a moment and queue again: demand beyond any limit."""
    done = threading.Event()

    def work() -> None:
        while not done.is_set():
            if controller.acquire(timeout=0.05):
                time.sleep(0.0005)
                controller.release()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        done.set()
        for thread in threads:
            thread.join(2)


def settle(controller: ConcurrencyController) -> None:
    """Wait until the limit is in force (no more holders than it allows) with demand queued beyond it."""
    deadline = time.monotonic() + 2
    while not (controller.active <= controller.current and controller.waiting) and time.monotonic() < deadline:
        time.sleep(0.0005)


def run_windows(
    controller: ConcurrencyController,
    clock: FakeClock,
    link: Link,
    windows: int,
    interval: float = 0.25,
    *,
    throttle: Callable[[int], int] = lambda level: 0,
) -> list[int]:
    """Feed the controller what ``link`` would move at the current level, one fake-clock window at a time."""
    levels = []
    for _ in range(windows):
        settle(controller)
        level = controller.current
        levels.append(level)
        controller.record_sample(int(link.mean(level) * interval), interval)
        for _ in range(throttle(level)):
            controller.record_error(429)
        clock.advance(interval)
        controller.tick()
    return levels


# ---- windows from events ---------------------------------------------------------------------------------------


def test_events_become_one_window() -> None:
    clock = FakeClock()
    recorder = Recorder(initial=3)
    controller = ConcurrencyController(ConcurrencyConfig(), clock=clock, manager=recorder)
    assert not controller.should_adjust()
    assert controller.tick() is None  # nothing happened yet: no window
    t0 = clock.now
    controller.observe(TransferStarted("sha256:a", 2 * MiB, at=t0))
    controller.observe(TransferStarted("sha256:b", 2 * MiB, at=t0))
    controller.observe(TransferProgress("sha256:a", MiB, at=t0 + 0.02))
    controller.observe(TransferProgress("sha256:b", MiB, at=t0 + 0.04))
    controller.observe(TransferProgress("sha256:a", MiB, at=t0 + 0.3))
    controller.observe(TransferFinished("sha256:a", 2 * MiB, "uploaded", at=t0 + 0.4))
    controller.observe(TransferFailed("sha256:b", "slow down", temporary=True, status=429, at=t0 + 0.45))
    controller.observe(TransferFailed("sha256:c", "reset", temporary=True, at=t0 + 0.45))
    clock.advance(0.5)
    assert controller.should_adjust()
    controller.tick()
    (window,) = recorder.windows
    assert (window.start, window.end, window.concurrency) == (t0, t0 + 0.5, 3)
    assert window.bytes == 3 * MiB and window.throughput == pytest.approx(6 * MiB)
    assert (window.errors, window.throttles, window.statuses, window.finished) == (2, 1, (429,), 1)
    assert window.per_connection == pytest.approx(2 * MiB / 0.4)
    assert window.rtt == pytest.approx(0.03)
    assert window.streaming == 2  # a and b moved bytes at the same time
    assert window.anomaly == "throttled"
    assert (window.active, window.waiting) == (0, 0)


def test_a_transfer_whose_end_was_never_reported_does_not_inflate_the_served_count() -> None:
    clock = FakeClock()
    recorder = Recorder(initial=2)
    controller = ConcurrencyController(clock=clock, manager=recorder)
    controller.observe(TransferStarted("sha256:lost", MiB))
    controller.observe(TransferProgress("sha256:lost", MiB))  # its permit was returned, its end never told
    for digest in ("sha256:a", "sha256:b"):
        controller.acquire()
        controller.observe(TransferStarted(digest, MiB))
        controller.observe(TransferProgress(digest, MiB))
    clock.advance(1)
    controller.tick()
    window = recorder.windows[-1]
    assert (window.streaming, window.peak_active, window.draining) == (2, 2, False)
    controller.release()
    controller.release()


def test_the_first_window_opens_with_the_first_permit() -> None:
    clock = FakeClock()
    controller = ConcurrencyController(ConcurrencyConfig(sample_interval=0.5), clock=clock, manager=Recorder())
    clock.advance(10)  # planning, before any transfer: not a window
    assert not controller.should_adjust()
    assert controller.acquire()
    assert not controller.should_adjust(clock.now + 0.4)
    assert controller.should_adjust(clock.now + 0.5)
    controller.release()


def test_a_throttle_closes_the_window_early() -> None:
    clock = FakeClock()
    controller = ConcurrencyController(ConcurrencyConfig(sample_interval=1.0), clock=clock, manager=Recorder())
    controller.record_sample(MiB, 0.1)
    clock.advance(0.1)
    assert not controller.should_adjust()
    controller.record_error(503)
    assert controller.should_adjust()


def test_a_decision_changes_the_limit_and_is_recorded_and_announced() -> None:
    clock = FakeClock()
    seen: list[ConcurrencyAdjusted] = []
    recorder = Recorder(initial=2, script=[Decision(5, "more"), Decision(50, "far too many"), Decision(8, "same")])
    config = ConcurrencyConfig(max_concurrent=8, strategy="aggressive")
    controller = ConcurrencyController(
        config, clock=clock, wall_clock=lambda: 1234.5, on_adjust=seen.append, manager=recorder
    )
    controller.record_sample(4 * MiB, 1.0)
    clock.advance(1.0)
    assert controller.tick() == Adjustment(at=1234.5, old=2, new=5, reason="more", throughput=4 * MiB)
    assert controller.current == 5
    controller.record_sample(MiB, 1.0)
    clock.advance(1.0)
    adjustment = controller.tick()
    assert adjustment is not None and adjustment.new == 8  # clamped to max
    controller.record_sample(MiB, 1.0)
    clock.advance(1.0)
    assert controller.tick() is None  # already at 8: nothing to do
    assert len(controller.statistics().adjustments) == 2
    assert [(e.old, e.new, e.manager, e.strategy) for e in seen] == [
        (2, 5, "recorder", "aggressive"),
        (5, 8, "recorder", "aggressive"),
    ]
    assert seen[0].throughput == 4 * MiB and seen[0].at == 101.0


def test_without_monitoring_only_throttles_are_anomalies_and_every_window_is_trusted() -> None:
    clock = FakeClock()
    recorder = Recorder()
    controller = ConcurrencyController(ConcurrencyConfig(enable_monitoring=False), clock=clock, manager=recorder)
    for _ in range(3):
        controller.record_error(None)  # a burst of plain failures
    controller.record_sample(MiB, 1)
    clock.advance(1)
    controller.tick()
    controller.record_error(429)
    clock.advance(1)
    controller.tick()
    assert [(w.anomaly, w.confidence) for w in recorder.windows] == [(None, 1.0), ("throttled", 1.0)]


def test_a_listener_that_fails_does_not_stop_the_controller() -> None:
    clock = FakeClock()

    def broken(event: ConcurrencyAdjusted) -> None:
        raise RuntimeError("display gone")

    controller = ConcurrencyController(
        clock=clock, on_adjust=broken, manager=Recorder(script=[Decision(3, "up"), Decision(4, "up")])
    )
    for _ in range(2):
        controller.record_sample(MiB, 1)
        clock.advance(1)
        controller.tick()
    assert controller.current == 4


def test_throttles_of_attempts_started_before_a_back_off_are_old_news() -> None:
    clock = FakeClock()
    recorder = Recorder(initial=8, script=[Decision(4, "back off")])
    controller = ConcurrencyController(clock=clock, manager=recorder)
    controller.observe(TransferStarted("sha256:old", MiB, at=clock.now))
    controller.observe(TransferFailed("sha256:first", "429", temporary=True, status=429))
    clock.advance(0.01)
    controller.tick()  # back off 8 -> 4
    controller.observe(TransferFailed("sha256:old", "429", temporary=True, status=429))
    controller.observe(TransferStarted("sha256:new", MiB, at=clock.now))
    controller.observe(TransferFailed("sha256:new", "429", temporary=True, status=429))
    clock.advance(0.5)
    controller.tick()
    window = recorder.windows[-1]
    assert (window.errors, window.throttles) == (1, 1)  # the old attempt's 429 is old news: not even an error


# ---- the controller with the dynamic manager on a fake link ------------------------------------------------------


def test_from_one_to_five_within_four_windows_on_a_capped_link() -> None:
    clock = FakeClock()
    controller = ConcurrencyController(ConcurrencyConfig(initial_concurrent=1), clock=clock)
    assert isinstance(controller.manager, DynamicManager)
    with saturated(controller):
        levels = run_windows(controller, clock, CAPPED, 5, interval=controller.interval())
    assert levels[:5] == [1, 2, 4, 8, 12]
    assert controller.statistics().adjustments[0].reason == "slow start: 1 -> 2, at 20.0 MiB/s"


def test_settles_at_or_under_four_when_the_registry_throttles_above_four() -> None:
    clock = FakeClock()
    controller = ConcurrencyController(ConcurrencyConfig(initial_concurrent=1), clock=clock)
    link = Link(per_conn=20 * MiB, cap=400 * MiB)
    with saturated(controller):
        levels = run_windows(controller, clock, link, 40, throttle=lambda level: max(0, level - 4))
    assert levels[:7] == [1, 2, 4, 8, 5, 3, 3]  # without the served count: 8 -> 5 -> 3, ceiling 4
    assert levels[7] == 4  # additive increase up to the ceiling, and no further
    assert sum(level > 4 for level in levels[5:]) <= 1  # a probe above the ceiling, only after many windows
    assert controller.current <= 4
    reasons = [a.reason for a in controller.statistics().adjustments]
    assert "throttled (4 x 429): back off 8 -> 5" in reasons


def test_statistics_serialise_to_json() -> None:
    clock = FakeClock()
    controller = ConcurrencyController(ConcurrencyConfig(initial_concurrent=1), clock=clock)
    with saturated(controller):
        run_windows(controller, clock, CAPPED, 6)
    stats = controller.statistics()
    data = json.loads(stats.to_json())
    assert data["manager"] == "dynamic" and data["strategy"] == "adaptive"
    assert (data["min"], data["max"], data["current"]) == (1, 12, controller.current)
    assert len(data["windows"]) == 6 and data["windows"][0][:2] == [0.25, 1]
    assert data["adjustments"][0]["old"] == 1 and data["adjustments"][0]["new"] == 2
    assert stats.throughput > 0 and 0 <= stats.confidence <= 1


# ---- changes from outside ------------------------------------------------------------------------------------


def test_set_limits_from_another_thread_clamps_and_skips_the_disturbed_window() -> None:
    clock = FakeClock()
    recorder = Recorder(initial=6)
    controller = ConcurrencyController(clock=clock, manager=recorder)
    controller.record_sample(MiB, 1)
    thread = threading.Thread(target=lambda: controller.set_limits(max=4))
    thread.start()
    thread.join()
    assert controller.current == 4
    assert controller.statistics().adjustments[-1].reason == "hot update (max 4)"
    clock.advance(1)
    controller.tick()
    assert recorder.windows == []  # the window spanning the change is not judged
    controller.record_sample(MiB, 1)
    clock.advance(1)
    controller.tick()
    assert len(recorder.windows) == 1
    assert controller.set_limits(concurrency=9) is None  # 4 is the max
    assert controller.set_limits(min=2, max=10, concurrency=9, reason="operator") is not None
    assert controller.current == 9
    with pytest.raises(UsageError):
        controller.set_limits(min=5, max=3)


def test_auto_strategy_switching_follows_anomalies_and_steady_growth() -> None:
    clock = FakeClock()
    config = ConcurrencyConfig(
        strategy="aggressive", initial_concurrent=2, auto_strategy_switching=True, strategy_switch_confidence=0.7
    )
    controller = ConcurrencyController(config, clock=clock)
    link = Link(per_conn=10 * MiB, cap=1000 * MiB)
    throttling = {"on": False}
    with saturated(controller):
        run_windows(controller, clock, link, 6, throttle=lambda level: 1 if throttling["on"] else 0)
        throttling["on"] = True
        run_windows(controller, clock, link, 2, throttle=lambda level: 1)
        throttling["on"] = False
        run_windows(controller, clock, link, 8)
        assert controller.strategy == "conservative"
        run_windows(controller, clock, link, 40, interval=1.0)
    reasons = [a.reason for a in controller.statistics().adjustments if a.old == a.new]
    assert reasons[0].startswith("strategy aggressive -> conservative: 2 anomalous windows among the last 6")
    assert reasons[1].startswith("strategy conservative -> aggressive: ")
    assert controller.strategy == "aggressive"


def test_the_control_file_changes_limits_when_it_changes(tmp_path: object, caplog: pytest.LogCaptureFixture) -> None:
    import os
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    path = tmp_path / "concurrency.json"
    clock = FakeClock()
    recorder = Recorder(initial=6)
    controller = ConcurrencyController(ConcurrencyConfig(control_file=str(path)), clock=clock, manager=recorder)

    def write(text: str, mtime: int) -> None:
        path.write_text(text)
        os.utime(path, ns=(mtime, mtime))

    def window() -> None:
        controller.record_sample(MiB, 1)
        clock.advance(1)
        controller.tick()

    window()  # no file yet: nothing happens
    assert controller.current == 6
    write('{"min_concurrent": 2, "max_concurrent": 8, "concurrency": 3}', 1_000_000_000)
    window()
    assert controller.current == 3
    assert controller.statistics().adjustments[-1].reason == (
        "control file concurrency.json (min 2, max 8, concurrency 3)"
    )
    controller.set_limits(concurrency=5)
    window()  # same mtime: not read again, the hot update stands
    assert controller.current == 5
    with caplog.at_level("WARNING", logger="docker_image_pusher.concurrency"):
        write('{"concurrency": "lots"}', 2_000_000_000)
        window()
        window()
    assert controller.current == 5
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "concurrency must be a whole number from 1 to 64" in warnings[0].getMessage()
    write('{"max_concurrent": 4}', 3_000_000_000)
    window()
    assert controller.current == 4 and controller.statistics().max == 4


# ---- real threads --------------------------------------------------------------------------------------------


def test_a_thread_pool_of_transfers_ramps_up_under_the_ticker() -> None:
    bus = ProgressBus()
    config = ConcurrencyConfig(initial_concurrent=1, max_concurrent=8, sample_interval=0.05)
    controller = ConcurrencyController(config)
    bus.subscribe(controller.observe)
    gauge = Gauge()

    def transfer(i: int) -> None:
        digest = f"sha256:{i:064x}"
        with controller.permit(), gauge:
            bus.publish(TransferStarted(digest, 8 * MiB))
            for _ in range(8):
                time.sleep(0.004)  # one connection moves 1 MiB per 4 ms: more connections, more bytes
                bus.publish(TransferProgress(digest, MiB))
            bus.publish(TransferFinished(digest, 8 * MiB, "uploaded"))

    controller.start()
    try:
        with ThreadPoolExecutor(max_workers=24) as pool:
            list(pool.map(transfer, range(48)))
    finally:
        controller.stop()
    stats = controller.statistics()
    assert stats.adjustments[0].reason.startswith("slow start: 1 -> 2")
    assert max(a.new for a in stats.adjustments) >= 4
    assert gauge.peak <= max(a.new for a in stats.adjustments)
    assert controller.active == 0 and controller.waiting == 0


def test_retries_that_wait_out_a_429_without_their_permit_settle_under_the_registry_limit() -> None:
    bus = ProgressBus()
    config = ConcurrencyConfig(initial_concurrent=8, max_concurrent=8, sample_interval=0.05)
    controller = ConcurrencyController(config)
    bus.subscribe(controller.observe)
    lock = threading.Lock()
    on_wire = [0]
    refused = [0]
    gave_up: list[str] = []

    def transfer(i: int) -> None:
        digest = f"sha256:{i:064x}"
        with controller.permit():
            for _attempt in range(4):  # three retries, as the task runner allows
                bus.publish(TransferStarted(digest, 4 * MiB))
                with lock:
                    accepted = on_wire[0] < 4
                    on_wire[0] += accepted
                    refused[0] += not accepted
                if not accepted:
                    bus.publish(TransferFailed(digest, "too many requests", temporary=True, status=429))
                    with controller.released():
                        time.sleep(0.03)
                    continue
                try:
                    for _ in range(4):
                        time.sleep(0.004)
                        bus.publish(TransferProgress(digest, MiB))
                finally:
                    with lock:
                        on_wire[0] -= 1
                bus.publish(TransferFinished(digest, 4 * MiB, "uploaded"))
                return
            gave_up.append(digest)

    controller.start()
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(transfer, range(40)))
    finally:
        controller.stop()
    assert gave_up == []
    assert controller.current <= 4
    assert refused[0] <= 24  # the first throttle closes the window at once: few requests are refused (~12)
    first = controller.statistics().adjustments[0]
    assert first.old == 8 and first.reason.startswith("throttled (")
    # Straight to 4 when the accepted transfers had moved bytes by then, else 8 -> 5 -> 4 (or 3).


def test_stop_closes_the_manager_once_and_ends_the_ticker() -> None:
    recorder = Recorder()
    controller = ConcurrencyController(ConcurrencyConfig(sample_interval=0.05), manager=recorder)
    controller.start()
    controller.start()  # idempotent
    controller.record_sample(MiB, 0.01)
    time.sleep(0.12)
    controller.stop()
    controller.stop()
    assert recorder.closed == 1
    assert len(recorder.windows) >= 1
    assert not any(t.name == "concurrency-controller" for t in threading.enumerate())


def test_observe_is_cheap() -> None:
    controller = ConcurrencyController(manager=Recorder())
    controller.observe(TransferStarted("sha256:x", 10**9))
    event = TransferProgress("sha256:x", MiB)
    started = time.perf_counter()
    for _ in range(50_000):
        controller.observe(event)
    assert time.perf_counter() - started < 0.5


def test_a_throttle_counts_as_served_only_the_transfers_moving_bytes_when_it_came() -> None:
    clock = FakeClock()
    recorder = Recorder(initial=8)
    controller = ConcurrencyController(ConcurrencyConfig(max_concurrent=12), clock=clock, manager=recorder)
    for n in range(5):
        digest = f"sha256:{n}"
        controller.observe(TransferStarted(digest, 4 * MiB, at=clock()))
        controller.observe(TransferProgress(digest, MiB, at=clock()))
    controller.observe(TransferFinished("sha256:0", MiB, "downloaded", at=clock()))  # 5 moved, 4 move now
    controller.observe(TransferStarted("sha256:9", 4 * MiB, at=clock()))
    controller.observe(TransferFailed("sha256:9", "429", temporary=True, status=429, at=clock()))
    clock.advance(0.5)
    controller.tick()
    window = recorder.windows[-1]
    assert window.throttles == 1
    assert window.streaming == 4  # the window's peak was 5; the registry let 4 through when it refused

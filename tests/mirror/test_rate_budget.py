"""RateBudget: pause before a source's pull limit runs out, from the RateLimit reading its client last saw.

A fake client (``rate_limit`` and ``base_url`` only) and a fake clock that ``sleep`` advances; the test of
threads uses real ones, and a real (short) sleep that records its calls.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import pytest

from docker_image_pusher.errors import TransferError
from docker_image_pusher.mirror import RateBudget, RateLimitExhausted
from docker_image_pusher.registry import RateLimit

if TYPE_CHECKING:
    from docker_image_pusher.registry import RegistryClient

SECRET = "s3cr3t-password-never-shown"
NOW = 1_000_000.0  # the fake clock's start (a small epoch: RateLimit readings are client-clock times)


@dataclass
class FakeClient:
    rate_limit: RateLimit | None
    base_url: str = "https://registry.example:5000"
    password: str = SECRET  # something a careless message could show


@dataclass
class FakeTime:
    now: float = NOW
    slept: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def reading(
    remaining: int,
    *,
    age: float = 0.0,
    reset: float | None = None,
    window: float | None = 21600.0,
    at: float = NOW,
    limit: int = 100,
) -> RateLimit:
    """A reading taken ``age`` seconds before ``at``."""
    return RateLimit(limit=limit, remaining=remaining, window_seconds=window, reset_seconds=reset, observed_at=at - age)


def client(rate_limit: RateLimit | None) -> RegistryClient:
    return cast("RegistryClient", FakeClient(rate_limit))


def budget(fake: FakeTime, reserve: int = 2, max_wait_seconds: float = 3600.0) -> RateBudget:
    return RateBudget(reserve, max_wait_seconds, sleep=fake.sleep, clock=fake.clock)


@pytest.mark.parametrize("seen", [None, reading(3), reading(100, reset=5.0)], ids=["no-reading", "3-left", "100-left"])
def test_goes_on_with_no_reading_or_more_than_the_reserve_left(seen: RateLimit | None) -> None:
    fake = FakeTime()
    b = budget(fake, reserve=2)
    b.before_pull(client(seen), "r/a:1")
    assert fake.slept == [] and b.paused_seconds == 0.0


def test_a_reserve_of_zero_goes_on_until_nothing_is_left() -> None:
    fake = FakeTime()
    b = budget(fake, reserve=0)
    b.before_pull(client(reading(1, reset=30.0)), "r/a:1")
    assert fake.slept == []
    b.before_pull(client(reading(0, reset=30.0)), "r/a:2")
    assert fake.slept == [30.0]


@pytest.mark.parametrize("remaining", [2, 1, 0])
def test_at_or_below_the_reserve_sleeps_until_the_reset_less_the_readings_age(remaining: int) -> None:
    fake = FakeTime()
    b = budget(fake, reserve=2)
    b.before_pull(client(reading(remaining, age=10.0, reset=30.0)), "r/a:1")
    assert fake.slept == [pytest.approx(20.0)]
    assert b.paused_seconds == pytest.approx(20.0)
    assert fake.now == pytest.approx(NOW + 20.0)


def test_a_reset_already_past_costs_no_wait() -> None:
    fake = FakeTime()
    budget(fake).before_pull(client(reading(0, age=40.0, reset=30.0)), "r/a:1")
    assert sum(fake.slept) == 0.0


def test_without_a_reset_it_waits_for_the_whole_window() -> None:
    fake = FakeTime()
    b = budget(fake, max_wait_seconds=100.0)
    b.before_pull(client(reading(1, age=5.0, reset=None, window=60.0)), "r/a:1")
    assert fake.slept == [pytest.approx(55.0)]


def test_no_reset_and_no_window_is_exhausted_at_once() -> None:
    fake = FakeTime()
    with pytest.raises(RateLimitExhausted) as caught:
        budget(fake).before_pull(client(reading(1, reset=None, window=None)), "r/a:1")
    message = caught.value.message
    assert "\n" not in message
    assert "RateLimit-Remaining 1 of 100" in message and "does not say when" in message and "r/a:1" in message
    assert fake.slept == []


def test_a_reset_later_than_max_wait_seconds_is_exhausted_with_one_line() -> None:
    fake = FakeTime()
    b = budget(fake, max_wait_seconds=60.0)
    with pytest.raises(RateLimitExhausted) as caught:
        b.before_pull(client(reading(2, reset=None, window=21600.0)), "registry.example:5000/r/a:1")
    err = caught.value
    assert isinstance(err, TransferError) and err.exit_code == 5
    assert "\n" not in err.message
    assert "max_wait_seconds (60)" in err.message and "21600 s" in err.message
    assert "https://registry.example:5000" in err.message and "registry.example:5000/r/a:1" in err.message
    assert fake.slept == [] and b.paused_seconds == 0.0
    # Exactly max_wait_seconds is still a wait, not a failure.
    b.before_pull(client(reading(2, reset=60.0)), "r/a:2")
    assert fake.slept == [60.0]


def test_after_a_pause_the_same_reading_is_stale_but_a_newer_low_one_pauses_again() -> None:
    fake = FakeTime()
    b = budget(fake, reserve=2)
    low = client(reading(1, reset=30.0))
    b.before_pull(low, "r/a:1")
    b.before_pull(low, "r/a:2")  # nothing new was heard since the pause: no second pause for the same news
    assert fake.slept == [30.0]

    fake.now += 1.0
    newer = client(reading(0, reset=10.0, at=fake.now))  # an answer after the pause still says "low"
    b.before_pull(newer, "r/a:3")
    assert fake.slept == [30.0, 10.0]
    assert b.paused_seconds == pytest.approx(40.0)

    fake.now += 1.0
    b.before_pull(client(reading(50, at=fake.now)), "r/a:4")  # the window reset: plenty left
    assert fake.slept == [30.0, 10.0]


def test_threads_asking_at_once_pause_once_in_total() -> None:
    pause = 0.3
    calls: list[tuple[float, float]] = []  # (started, ended) of every sleep

    def sleep(seconds: float) -> None:
        started = time.monotonic()
        time.sleep(seconds)
        calls.append((started, time.monotonic()))

    b = RateBudget(2, 60.0, sleep=sleep, clock=time.time)
    shared = client(
        RateLimit(limit=100, remaining=1, window_seconds=None, reset_seconds=pause, observed_at=time.time())
    )
    threads_count = 4
    start = threading.Barrier(threads_count)
    returned: list[float] = []
    errors: list[BaseException] = []

    def pull(n: int) -> None:
        start.wait()
        try:
            b.before_pull(shared, f"r/a:{n}")
        except BaseException as err:
            errors.append(err)
        returned.append(time.monotonic())

    threads = [threading.Thread(target=pull, args=(n,)) for n in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not errors and len(returned) == threads_count
    assert len(calls) == 1, calls
    ((_, ended),) = calls
    assert all(r >= ended for r in returned)  # the others waited behind the pause, then went on without one
    assert b.paused_seconds <= pause


def test_the_log_gets_one_line_and_no_secret() -> None:
    fake = FakeTime()
    lines: list[str] = []
    b = budget(fake, reserve=2)
    b.before_pull(client(reading(2, age=3.0, reset=33.0)), "registry.example:5000/r/a:1", lines.append)
    assert len(lines) == 1
    (line,) = lines
    assert "\n" not in line and SECRET not in line
    assert line.startswith("pausing 30 s before registry.example:5000/r/a:1")
    assert "RateLimit-Remaining 2 of 100" in line and "https://registry.example:5000" in line

    # The budget's own log when the call gives none; nothing logged when there is no pause.
    own: list[str] = []
    b2 = RateBudget(2, 3600.0, sleep=fake.sleep, clock=fake.clock, log=own.append)
    b2.before_pull(client(reading(5, at=fake.now)), "r/a:2")
    assert own == []
    b2.before_pull(client(reading(0, reset=1.0, at=fake.now)), "r/a:3")
    assert len(own) == 1 and SECRET not in own[0]


def test_errors_show_no_secret() -> None:
    fake = FakeTime()
    for seen in (reading(0, reset=None, window=None), reading(0, reset=7200.0)):
        with pytest.raises(RateLimitExhausted) as caught:
            budget(fake).before_pull(client(seen), "r/a:1")
        assert SECRET not in str(caught.value) and "\n" not in str(caught.value)

"""The resizable FIFO limiter under real threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from concurrency.threads import Gauge

from docker_image_pusher.concurrency._limiter import Limiter


def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


def waiting(limiter: Limiter, n: int) -> Callable[[], bool]:
    return lambda: limiter.waiting == n


def test_waiters_are_served_in_arrival_order() -> None:
    limiter = Limiter(1)
    limiter.acquire()
    order: list[int] = []
    threads = []

    def take(i: int) -> None:
        with limiter.permit():
            order.append(i)

    for i in range(8):
        thread = threading.Thread(target=take, args=(i,))
        thread.start()
        threads.append(thread)
        wait_until(waiting(limiter, i + 1))  # each one queues before the next arrives
    limiter.release()
    for thread in threads:
        thread.join(2)
    assert order == list(range(8))
    assert limiter.active == 0 and limiter.waiting == 0


def test_peak_concurrency_follows_set_limit() -> None:
    limiter = Limiter(2)
    gauge = Gauge()
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            with limiter.permit(), gauge:
                time.sleep(0.002)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.1)
        assert gauge.peak == 2
        limiter.set_limit(6)
        time.sleep(0.1)
        assert gauge.peak == 6  # raising admits waiters at once
        limiter.set_limit(3)
        wait_until(lambda: limiter.active <= 3)  # running holders finish; no new permit until below the limit
        gauge.reset_peak()
        time.sleep(0.1)
        assert gauge.peak <= 3
        assert limiter.active <= 3
    finally:
        stop.set()
        for thread in threads:
            thread.join(2)
    assert limiter.active == 0


def test_lowering_the_limit_hands_out_no_permit_until_below_it() -> None:
    limiter = Limiter(3)
    for _ in range(3):
        assert limiter.acquire()
    limiter.set_limit(1)
    assert not limiter.acquire(timeout=0.02)
    limiter.release()
    assert not limiter.acquire(timeout=0.02)  # 2 active, limit 1
    limiter.release()
    assert not limiter.acquire(timeout=0.02)  # 1 active, limit 1
    limiter.release()
    assert limiter.acquire(timeout=0.02)


def test_acquire_times_out_and_leaves_the_queue() -> None:
    limiter = Limiter(1)
    limiter.acquire()
    started = time.monotonic()
    assert limiter.acquire(timeout=0.05) is False
    assert time.monotonic() - started >= 0.04
    assert limiter.waiting == 0
    assert limiter.acquire(timeout=0) is False
    limiter.release()
    assert limiter.acquire(timeout=0) is True


def test_released_lets_another_thread_in_and_takes_the_permit_back() -> None:
    limiter = Limiter(1)
    inside = threading.Event()
    done = threading.Event()
    entered_other = threading.Event()

    def holder() -> None:
        with limiter.permit():
            inside.set()
            with limiter.released():
                assert entered_other.wait(2)  # the other thread got the only permit while this one slept
                assert limiter.active == 1
            assert limiter.active == 1  # back in, after the other one left
        done.set()

    def other() -> None:
        assert inside.wait(2)
        with limiter.permit():
            entered_other.set()
            time.sleep(0.02)

    threads = [threading.Thread(target=holder), threading.Thread(target=other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2)
    assert done.is_set()
    assert limiter.active == 0


def test_a_returning_holder_goes_ahead_of_fresh_waiters() -> None:
    limiter = Limiter(1)
    order: list[str] = []
    stepped_aside = threading.Event()
    may_return = threading.Event()

    def holder() -> None:
        with limiter.permit():
            with limiter.released():
                stepped_aside.set()
                assert may_return.wait(2)
            order.append("returning")

    def fresh(name: str) -> None:
        with limiter.permit():
            order.append(name)

    limiter.acquire()  # a third party holds the only permit, so everyone queues
    first = threading.Thread(target=holder)
    limiter.release()
    first.start()
    assert stepped_aside.wait(2)
    limiter.acquire()
    fresh_threads = [threading.Thread(target=fresh, args=(f"fresh{i}",)) for i in range(3)]
    for i, thread in enumerate(fresh_threads):
        thread.start()
        wait_until(waiting(limiter, i + 1))
    may_return.set()
    wait_until(lambda: limiter.waiting == 4)
    limiter.release()
    for thread in [first, *fresh_threads]:
        thread.join(2)
    assert order == ["returning", "fresh0", "fresh1", "fresh2"]


def test_released_without_a_permit_on_this_thread_just_runs_the_block() -> None:
    limiter = Limiter(1)
    with limiter.released():
        assert limiter.active == 0
    assert limiter.active == 0


def test_take_peak_reports_the_most_permits_out_since_the_last_call() -> None:
    limiter = Limiter(5)
    for _ in range(3):
        limiter.acquire()
    limiter.release()
    limiter.release()
    assert limiter.take_peak() == 3
    assert limiter.take_peak() == 1  # counting starts again from the permits out now
    limiter.release()


def test_misuse_is_refused() -> None:
    limiter = Limiter(2)
    with pytest.raises(RuntimeError):
        limiter.release()
    with pytest.raises(ValueError):
        limiter.set_limit(0)
    with pytest.raises(ValueError):
        Limiter(0)

"""The performance monitor on known sequences: regression, confidence, anomalies, per-transfer figures."""

from __future__ import annotations

import pytest

from docker_image_pusher.concurrency import PerformanceMonitor, Window
from docker_image_pusher.concurrency._monitor import linear_fit

MiB = 2**20


def window(
    i: int,
    throughput: float,
    *,
    c: int = 4,
    waiting: int = 2,
    errors: int = 0,
    throttles: int = 0,
) -> Window:
    return Window(
        start=i * 0.5,
        end=(i + 1) * 0.5,
        concurrency=c,
        active=c,
        waiting=waiting,
        bytes=int(throughput * 0.5),
        throughput=throughput,
        errors=errors,
        throttles=throttles,
    )


def feed(monitor: PerformanceMonitor, values: list[float], **kwargs: int) -> Window:
    last = window(0, 0.0)
    for i, value in enumerate(values):
        last = monitor.observe(window(i, value, **kwargs))
    return last


def test_linear_fit_recovers_a_line_and_its_r_squared() -> None:
    slope, intercept, r2 = linear_fit([0, 1, 2, 3], [1, 3, 5, 7])
    assert (slope, intercept, r2) == pytest.approx((2.0, 1.0, 1.0))
    assert linear_fit([1, 1], [5, 7]) == (0.0, 6.0, 0.0)  # no spread in x: flat at the mean
    assert linear_fit([], []) == (0.0, 0.0, 0.0)
    assert linear_fit([0, 1, 2], [4, 4, 4])[2] == 0.0


def test_trend_is_the_slope_over_the_ring_only() -> None:
    monitor = PerformanceMonitor(4)
    last = feed(monitor, [100.0, 100.0, 100.0, 10.0, 20.0, 30.0, 40.0])  # the ring keeps the last 4
    assert last.trend == pytest.approx(20.0)  # +10 bytes/s per 0.5 s window
    assert monitor.r_squared() == pytest.approx(1.0)
    assert monitor.mean() == pytest.approx(25.0)
    assert monitor.relative_trend() == pytest.approx(20.0 * 1.5 / 25.0)


def test_confidence_grows_with_steady_samples_and_stays_low_when_noisy() -> None:
    monitor = PerformanceMonitor(8)
    assert monitor.observe(window(0, 100 * MiB)).confidence == 0.0  # one window proves nothing
    steady = [monitor.observe(window(i, v * MiB)).confidence for i, v in enumerate([101, 99, 100, 100], 1)]
    assert steady[0] > 0.9 and steady[-1] > 0.95
    noisy = PerformanceMonitor(8)
    assert feed(noisy, [100 * MiB, 30 * MiB, 160 * MiB, 50 * MiB]).confidence < 0.2


def test_confidence_counts_only_the_current_level_and_saturated_windows() -> None:
    monitor = PerformanceMonitor(8)
    feed(monitor, [100.0, 100.0, 100.0], c=4)
    assert monitor.observe(window(3, 150.0, c=5)).confidence == 0.0  # a new level starts from nothing
    monitor.observe(window(4, 5.0, c=5, waiting=0))  # a tail window does not count
    assert monitor.observe(window(5, 150.0, c=5)).confidence == pytest.approx(1.0)


def test_windows_that_drain_a_lowered_limit_do_not_count() -> None:
    import dataclasses

    monitor = PerformanceMonitor(8)
    feed(monitor, [100.0, 100.0], c=4)
    draining = dataclasses.replace(window(2, 300.0, c=4), active=6)
    assert monitor.observe(draining).confidence == pytest.approx(1.0)  # the 300 from six transfers is left out
    assert monitor.anomaly(dataclasses.replace(window(3, 10.0, c=4), active=7)) is None


def test_throttles_and_error_bursts_are_anomalies() -> None:
    monitor = PerformanceMonitor(8)
    assert monitor.observe(window(0, 50.0, errors=1, throttles=1)).anomaly == "throttled"
    assert monitor.observe(window(1, 50.0, errors=2)).anomaly is None
    assert monitor.observe(window(2, 50.0, errors=3)).anomaly == "error burst"
    assert monitor.observe(window(3, 50.0, c=10, errors=4)).anomaly is None  # 4 of 10 is no burst
    assert monitor.observe(window(4, 50.0, c=10, errors=5)).anomaly == "error burst"


def test_a_sudden_drop_is_an_anomaly_only_when_demand_saturated() -> None:
    monitor = PerformanceMonitor(8)
    feed(monitor, [100.0, 104.0, 96.0, 100.0])
    assert monitor.anomaly(window(5, 30.0, waiting=0)) is None  # the tail of a run: no demand
    assert monitor.anomaly(window(5, 70.0)) is None  # far below the mean in sigmas, but not below half
    assert monitor.anomaly(window(5, 30.0)) == "throughput drop"


def test_no_drop_when_we_lowered_the_level_ourselves() -> None:
    monitor = PerformanceMonitor(8)
    feed(monitor, [100.0, 100.0, 100.0], c=8)
    assert monitor.anomaly(window(4, 30.0, c=2)) is None  # nothing at or below 2 to compare with
    assert monitor.anomaly(window(4, 30.0, c=8)) == "throughput drop"


def test_anomalous_windows_are_no_reference() -> None:
    monitor = PerformanceMonitor(8)
    for i in range(3):
        monitor.observe(window(i, 1000.0, errors=1, throttles=1))
    feed(monitor, [100.0, 100.0, 100.0])
    assert monitor.anomaly(window(9, 60.0)) is None  # the mean is 100, not inflated by the throttled windows


def test_per_connection_and_rtt_come_from_transfers() -> None:
    monitor = PerformanceMonitor()
    assert monitor.per_connection == 0.0 and monitor.rtt == 0.0
    monitor.add_transfer(16 * MiB, 1.0)
    monitor.add_transfer(16 * MiB, 0.6)
    monitor.add_transfer(0, 0.1)  # nothing moved (a skipped blob): ignored
    assert monitor.per_connection == pytest.approx(32 * MiB / 1.6)
    monitor.add_rtt(0.01)
    monitor.add_rtt(0.03)
    monitor.add_rtt(-1.0)  # clock skew: ignored
    assert monitor.rtt == pytest.approx(0.02)
    judged = monitor.observe(window(0, 1.0))
    assert judged.per_connection == 0.0  # the monitor judges; the controller fills these fields


def test_resize_keeps_the_latest_samples() -> None:
    monitor = PerformanceMonitor(8)
    feed(monitor, [float(v) for v in range(8)])
    monitor.resize(3)
    assert [s.throughput for s in monitor.samples] == [5.0, 6.0, 7.0]
    with pytest.raises(ValueError):
        monitor.resize(1)

"""The controller: permits for blob transfers, measured in windows, sized by a manager.

Transfers take a permit around their work (``permit()``, or ``acquire()``/``release()``) and publish progress
events that ``observe`` turns into counters; every window (the strategy's ``sample_interval``; its
``ramp_interval`` during slow start; never shorter than ``rtt_multiple`` round trips) ``tick`` closes the
window, lets the monitor judge it, polls the control file, asks the manager and resizes the limiter. A
ticker thread (``start``/``stop``) does that in a real run; a test calls ``tick`` with a fake clock. Nothing
here knows Prefect.

* The first window opens with the first permit or event, so planning before any transfer starts is not
  measured as a window without throughput.
* The registry pushing back (429, 502, 503, 504) closes the window at once (5 ms at the earliest): a refused
  request frees its permit within milliseconds for the next waiter to be refused too, so waiting for the end
  of the window would spend the retries of every queued transfer. A push-back on an attempt that started
  before the limit last went down is counted as an error only (it is about the old limit: TCP's "one
  reduction per window of data").
* ``Window.streaming`` is the most transfers that moved bytes at once, which tells a manager how many the
  registry actually served while it refused the rest.
* With ``auto_strategy_switching`` a bold strategy gives way to "conservative" after 2 anomalous windows
  among the last 6, and "conservative" gives way to the configured strategy (or "aggressive") after 5 quiet
  saturated windows in a row with throughput rising by the strategy's speed threshold across the monitor's
  ring; either only when the monitor's confidence reaches ``strategy_switch_confidence``, at most every 5
  windows. Switches are in the history with their reason (old == new level).
* ``enable_monitoring=False`` leaves the monitor out of the decisions: only throttles are anomalies and every
  window counts as confident (the statistics still show the monitor's figures).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..progress.events import (
    ConcurrencyAdjusted,
    Event,
    TransferFailed,
    TransferFinished,
    TransferProgress,
    TransferStarted,
)
from ._config import MAX_LIMIT, ConcurrencyConfig, make_manager
from ._control_file import ControlFile
from ._limiter import Limiter
from ._monitor import PerformanceMonitor
from ._strategy import StrategyParams, strategy_params
from ._types import Adjustment, Manager, Window

__all__ = ["THROTTLE_STATUSES", "ConcurrencyController", "ControllerStats"]

_log = logging.getLogger("docker_image_pusher.concurrency")

THROTTLE_STATUSES = frozenset({429, 502, 503, 504})
TRACE_LIMIT = 20_000  # windows kept for the statistics trace
SWITCH_DWELL = 5  # windows a strategy stays before the next switch
SWITCH_ANOMALIES = 2  # anomalous windows among the last SWITCH_MEMORY that make a strategy too bold
SWITCH_MEMORY = 6
SWITCH_STEADY = 5  # quiet saturated windows in a row that make the conservative strategy too timid
EARLY_WINDOW = 0.005  # seconds: a throttle closes the window early, but not a window younger than this


@dataclass
class ControllerStats:
    current: int
    min: int
    max: int
    manager: str
    strategy: str
    adjustments: list[Adjustment]
    throughput: float  # mean bytes/s over the monitor's recent windows
    confidence: float
    windows: list[tuple[float, int, float]] = field(default_factory=list)  # (seconds since start, level, bytes/s)
    initial: int = 0
    started_at: float = 0.0  # wall-clock seconds when the controller was made: adjustments count from here

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def report(self) -> dict[str, Any]:
        """Plain values for a stats file: the adjustments and the trace on one time axis (seconds since start)."""
        return {
            "manager": self.manager,
            "strategy": self.strategy,
            "min": self.min,
            "max": self.max,
            "initial": self.initial,
            "final": self.current,
            "throughput": self.throughput,
            "confidence": self.confidence,
            "adjustments": [_adjustment_report(a, self.started_at) for a in self.adjustments],
            "trace": [list(w) for w in self.windows],
        }


def _adjustment_report(a: Adjustment, started_at: float) -> dict[str, Any]:
    return {
        "t": round(a.at - started_at, 3),
        "old": a.old,
        "new": a.new,
        "reason": a.reason,
        "throughput": a.throughput,
    }


@dataclass
class _Live:
    """A transfer in flight, as its events told us."""

    started: float
    epoch: int  # the controller's epoch when the attempt started
    bytes: int = 0
    first_byte: bool = False


class ConcurrencyController:
    def __init__(
        self,
        config: ConcurrencyConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        on_adjust: Callable[[ConcurrencyAdjusted], None] | None = None,
        manager: Manager | None = None,
    ) -> None:
        self._config = config if config is not None else ConcurrencyConfig()
        self._clock = clock
        self._wall_clock = wall_clock
        self._on_adjust = on_adjust
        self._strategy = self._config.strategy
        self._params = strategy_params(self._strategy, self._config)
        self._manager = manager if manager is not None else make_manager(self._config)
        self._min = self._config.min_concurrent
        self._max = self._config.max_concurrent
        self._limiter = Limiter(self._clamp(self._manager.initial()))
        self._initial = self._limiter.limit
        self._started_wall, self._started = wall_clock(), clock()
        self._monitor = PerformanceMonitor(max(2, self._params.window))
        self._control_file = ControlFile(Path(self._config.control_file)) if self._config.control_file else None

        self._lock = threading.Lock()  # the counters below: the hot path of observe()
        self._window_start: float | None = None
        self._bytes = 0
        self._errors = 0
        self._throttles = 0
        self._statuses: list[int] = []
        self._finished = 0
        self._live: dict[str, _Live] = {}
        self._moving = 0  # live transfers that have moved bytes
        self._peak = 0  # the most of them at once in this window
        self._served: int | None = None  # the fewest moving when the registry refused one (this window)
        self._epoch = 0  # +1 whenever the limit goes down: throttles of attempts started before are old news
        self._rtts: list[float] = []
        self._transfers: list[tuple[int, float]] = []

        self._control = threading.RLock()  # decisions, limits, history, the monitor
        self._t0: float | None = None
        self._history: list[Adjustment] = []
        self._trace: deque[tuple[float, int, float]] = deque(maxlen=TRACE_LIMIT)
        self._disturbed = False  # the limits changed from outside during the current window
        self._recent_anomalies: deque[bool] = deque(maxlen=SWITCH_MEMORY)
        self._steady = 0
        self._since_switch = 0

        self._stop = threading.Event()
        self._wake = threading.Event()  # a throttle: tick now rather than at the end of the window
        self._ticker: threading.Thread | None = None
        self._closed = False

    # ---- permits ------------------------------------------------------------------------------------------------

    @property
    def current(self) -> int:
        return self._limiter.limit

    @property
    def active(self) -> int:
        return self._limiter.active

    @property
    def waiting(self) -> int:
        return self._limiter.waiting

    @property
    def strategy(self) -> str:
        return self._strategy

    @property
    def manager(self) -> Manager:
        return self._manager

    def acquire(self, timeout: float | None = None) -> bool:
        self._open_window()
        return self._limiter.acquire(timeout)

    def release(self) -> None:
        self._limiter.release()

    @contextlib.contextmanager
    def permit(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def released(self) -> contextlib.AbstractContextManager[None]:
        """Give up this thread's permit during the block (a retry's back-off sleep); take one again after."""
        return self._limiter.released()

    # ---- measurements -------------------------------------------------------------------------------------------

    def observe(self, event: Event) -> None:
        """A progress-bus listener: cheap and thread-safe (it sees every chunk of every transfer).

        A throttle (429, 502, 503, 504) from an attempt that started before the limit last went down is
        counted as an error only: it says something about the old limit, which was already acted on.
        """
        if isinstance(event, TransferProgress):
            with self._lock:
                self._open_window_locked()
                self._bytes += event.delta
                live = self._live.get(event.digest)
                if live is not None:
                    live.bytes += event.delta
                    if not live.first_byte:
                        live.first_byte = True
                        self._rtts.append(event.at - live.started)
                        self._moving += 1
                        self._peak = max(self._peak, self._moving)
        elif isinstance(event, TransferStarted):
            with self._lock:
                self._open_window_locked()
                self._end_live(event.digest)
                self._live[event.digest] = _Live(event.at, self._epoch)
        elif isinstance(event, TransferFinished):
            with self._lock:
                self._finished += 1
                live = self._end_live(event.digest)
                if live is not None:
                    self._transfers.append((live.bytes, event.at - live.started))
        elif isinstance(event, TransferFailed):
            with self._lock:
                live = self._end_live(event.digest)
                stale = live is not None and live.epoch < self._epoch
                if event.status in THROTTLE_STATUSES and not stale and self._moving:
                    # What the registry let through when it refused this one: the transfers moving bytes now.
                    # The window's peak can count one transfer that had already ended at the registry.
                    self._served = min(self._served or self._moving, self._moving)
                self._count_error(event.status, stale=stale)

    def record_sample(self, nbytes: int, elapsed: float) -> None:
        """One transfer moved ``nbytes`` in ``elapsed`` seconds (for callers that publish no events)."""
        with self._lock:
            self._open_window_locked()
            self._bytes += nbytes
            self._finished += 1
            self._transfers.append((nbytes, elapsed))

    def record_error(self, status: int | None = None, temporary: bool = True) -> None:
        """One attempt failed; ``status`` 429, 502, 503 or 504 counts as the registry pushing back."""
        with self._lock:
            self._count_error(status, stale=False)

    def _count_error(self, status: int | None, *, stale: bool) -> None:
        self._open_window_locked()
        if status in THROTTLE_STATUSES and stale:
            return  # the push-back the last decrease already answered: neither a new throttle nor an error burst
        self._errors += 1
        if status in THROTTLE_STATUSES:
            self._throttles += 1
            self._statuses.append(status)
            self._wake.set()

    def _end_live(self, digest: str) -> _Live | None:
        live = self._live.pop(digest, None)
        if live is not None and live.first_byte:
            self._moving -= 1
        return live

    def _open_window(self) -> None:
        with self._lock:
            self._open_window_locked()

    def _open_window_locked(self) -> None:
        if self._window_start is None:
            self._window_start = self._clock()

    # ---- windows ------------------------------------------------------------------------------------------------

    def interval(self) -> float:
        """Seconds of the current window: the strategy's (shorter during slow start), at least rtt_multiple RTTs."""
        with self._control:
            params = self._params
            base = params.ramp_interval if getattr(self._manager, "in_slow_start", False) else params.sample_interval
            return max(base, params.rtt_multiple * self._monitor.rtt)

    def should_adjust(self, now: float | None = None) -> bool:
        """Whether the window is over: its interval has elapsed, or the registry pushed back during it."""
        with self._lock:
            start, throttled = self._window_start, self._throttles > 0
        if start is None:
            return False
        now = self._clock() if now is None else now
        interval = self.interval()
        return now - start >= (min(EARLY_WINDOW, interval) if throttled else interval)

    def tick(self, now: float | None = None) -> Adjustment | None:
        """Close the window, judge it and apply the manager's decision; the last adjustment made, if any."""
        with self._control:
            now = self._clock() if now is None else now
            with self._lock:
                start = self._window_start
                if start is None or now <= start:
                    return None
                self._window_start = now
                nbytes, self._bytes = self._bytes, 0
                errors, self._errors = self._errors, 0
                throttles, self._throttles = self._throttles, 0
                statuses, self._statuses = self._statuses, []
                finished, self._finished = self._finished, 0
                rtts, self._rtts = self._rtts, []
                transfers, self._transfers = self._transfers, []
                streaming, self._peak = self._peak, self._moving
                served, self._served = self._served, None
                if served is not None:
                    streaming = min(streaming, served)
            if self._t0 is None:
                self._t0 = start
            for seconds in rtts:
                self._monitor.add_rtt(seconds)
            for sample in transfers:
                self._monitor.add_transfer(*sample)
            before = len(self._history)
            level = self._limiter.limit
            peak_active = self._limiter.take_peak()
            if peak_active:  # transfers move bytes only under a permit: a lost "finished" event cannot inflate this
                streaming = min(streaming, peak_active)
            window = self._judge(
                Window(
                    start=start,
                    end=now,
                    concurrency=level,
                    active=self._limiter.active,
                    waiting=self._limiter.waiting,
                    bytes=nbytes,
                    throughput=nbytes / (now - start),
                    errors=errors,
                    throttles=throttles,
                    finished=finished,
                    per_connection=self._monitor.per_connection,
                    rtt=self._monitor.rtt,
                    statuses=tuple(statuses),
                    streaming=streaming,
                    peak_active=peak_active,
                )
            )
            self._trace.append((round(now - self._t0, 3), level, window.throughput))
            self._poll_control_file()
            disturbed, self._disturbed = self._disturbed, False
            if self._config.auto_strategy_switching:
                self._consider_switch(window)
            if not disturbed:
                decision = self._manager.decide(window)
                if decision is not None:
                    self._apply(decision.concurrency, decision.reason, window.throughput)
            return self._history[-1] if len(self._history) > before else None

    def _judge(self, window: Window) -> Window:
        """The monitor's verdict on the window; with monitoring off only throttles count, and every window is
        trusted (confidence 1), so the manager acts on raw throughput."""
        judged = self._monitor.observe(window)
        if self._config.enable_monitoring:
            return judged
        return dataclasses.replace(judged, confidence=1.0, anomaly="throttled" if window.throttles else None)

    def _apply(self, level: int, reason: str, throughput: float) -> Adjustment | None:
        old, new = self._limiter.limit, self._clamp(level)
        if new == old:
            return None
        if new < old:
            with self._lock:
                self._epoch += 1
        self._limiter.set_limit(new)
        return self._record(old, new, reason, throughput)

    def _record(self, old: int, new: int, reason: str, throughput: float) -> Adjustment:
        adjustment = Adjustment(at=self._wall_clock(), old=old, new=new, reason=reason, throughput=throughput)
        self._history.append(adjustment)
        _log.debug("concurrency %d -> %d: %s", old, new, reason)
        if self._on_adjust is not None:
            event = ConcurrencyAdjusted(
                old, new, reason, self._manager.name, self._strategy, throughput, at=self._clock()
            )
            try:
                self._on_adjust(event)
            except Exception:
                _log.warning("a concurrency listener failed", exc_info=True)
        return adjustment

    def _clamp(self, level: int) -> int:
        return max(self._min, min(self._max, level))

    # ---- changes from outside ---------------------------------------------------------------------------------

    def set_limits(
        self,
        min: int | None = None,
        max: int | None = None,
        concurrency: int | None = None,
        reason: str = "hot update",
    ) -> Adjustment | None:
        """Change the range and/or the level from any thread; the level is kept inside the new range."""
        with self._control:
            low = self._min if min is None else min
            high = self._max if max is None else max
            if not 1 <= low <= high <= MAX_LIMIT:
                raise UsageError(f"concurrency: bad limits min {low}, max {high} (need 1 <= min <= max <= {MAX_LIMIT})")
            if concurrency is not None and concurrency < 1:
                raise UsageError(f"concurrency: bad level {concurrency}")
            self._min, self._max = low, high
            set_bounds = getattr(self._manager, "set_bounds", None)
            if callable(set_bounds):
                set_bounds(low, high)
            settings = (("min", min), ("max", max), ("concurrency", concurrency))
            given = [f"{name} {value}" for name, value in settings if value is not None]
            what = f"{reason} ({', '.join(given)})" if given else reason
            self._disturbed = True
            target = self._limiter.limit if concurrency is None else concurrency
            return self._apply(target, what, self._monitor.samples[-1].throughput if self._monitor.samples else 0.0)

    def _poll_control_file(self) -> None:
        if self._control_file is None:
            return
        settings = self._control_file.poll()
        if not settings:
            return
        try:
            self.set_limits(
                settings.get("min_concurrent"),
                settings.get("max_concurrent"),
                settings.get("concurrency"),
                reason=f"control file {self._control_file.path.name}",
            )
        except UsageError as exc:
            _log.warning("ignoring the concurrency control file %s: %s", self._control_file.path, exc.message)

    # ---- strategy switching -----------------------------------------------------------------------------------

    def _consider_switch(self, window: Window) -> None:
        set_params = getattr(self._manager, "set_params", None)
        if not callable(set_params):
            return
        self._since_switch += 1
        self._recent_anomalies.append(window.anomaly is not None)
        if window.anomaly is not None:
            self._steady = 0
        elif window.saturated:
            self._steady += 1
        if self._since_switch < SWITCH_DWELL or window.confidence < self._config.strategy_switch_confidence:
            return
        anomalies = sum(self._recent_anomalies)
        if self._strategy != "conservative" and anomalies >= SWITCH_ANOMALIES:
            why = f"{anomalies} anomalous windows among the last {len(self._recent_anomalies)}"
            self._switch("conservative", why, set_params, window.throughput)
            return
        rise = self._monitor.relative_trend()
        if self._strategy == "conservative" and self._steady >= SWITCH_STEADY and rise >= self._params.speed_threshold:
            target = self._config.strategy if self._config.strategy != "conservative" else "aggressive"
            why = f"{self._steady} steady windows, throughput rising {rise:+.0%}"
            self._switch(target, why, set_params, window.throughput)

    def _switch(self, strategy: str, why: str, set_params: Callable[[StrategyParams], None], throughput: float) -> None:
        old = self._strategy
        params = strategy_params(strategy, self._config)
        set_params(params)
        self._params = params
        self._strategy = strategy
        self._monitor.resize(max(2, params.window))
        self._since_switch = 0
        self._steady = 0
        self._recent_anomalies.clear()
        level = self._limiter.limit
        self._record(level, level, f"strategy {old} -> {strategy}: {why}", throughput)

    # ---- the ticker -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Tick in a daemon thread every window until ``stop``."""
        if self._ticker is not None:
            return
        with self._control:
            self._poll_control_file()  # limits written before the run apply from its first transfer
        self._stop.clear()
        self._ticker = threading.Thread(target=self._run, name="concurrency-controller", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        """Stop the ticker (if any) and close the manager (it may persist what it learned). Idempotent."""
        self._stop.set()
        self._wake.set()
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.join()
        with self._control:
            if not self._closed:
                self._closed = True
                self._manager.close()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._until_next_tick())
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if self.should_adjust():
                    self.tick()  # reads the control file too
                else:
                    with self._control:  # also while no byte moves: a stalled run is when limits change
                        self._poll_control_file()
            except Exception:
                _log.warning("the concurrency controller failed to adjust", exc_info=True)

    def _until_next_tick(self) -> float:
        with self._lock:
            start, throttled = self._window_start, self._throttles > 0
        if start is None:
            return 0.05
        interval = self.interval()
        remaining = start + (min(EARLY_WINDOW, interval) if throttled else interval) - self._clock()
        return min(1.0, max(0.001, remaining))

    # ---- statistics -------------------------------------------------------------------------------------------

    def history(self) -> list[Adjustment]:
        with self._control:
            return list(self._history)

    def statistics(self) -> ControllerStats:
        with self._control:
            return ControllerStats(
                current=self._limiter.limit,
                min=self._min,
                max=self._max,
                manager=self._manager.name,
                strategy=self._strategy,
                adjustments=list(self._history),
                throughput=self._monitor.mean(),
                confidence=self._monitor.confidence(),
                windows=[(round(t + (self._t0 or self._started) - self._started, 3), c, b) for t, c, b in self._trace],
                initial=self._initial,
                started_at=self._started_wall,
            )

"""Progress as data: ``ProgressState`` folds the events of a run into totals, per-blob tasks and the
history of concurrency changes; views render its ``snapshot()``, the end of a run reads ``summary()``.

``apply`` is called for every chunk from many transfer threads, so it only updates counters under one
lock; everything derived (percent, speeds, ETA) is computed when a snapshot is taken.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from .events import (
    ConcurrencyAdjusted,
    Event,
    ImagePlanned,
    TransferFailed,
    TransferFinished,
    TransferProgress,
    TransferStarted,
)

__all__ = [
    "OUTCOMES",
    "ConcurrencyAdjustment",
    "ProgressSnapshot",
    "ProgressState",
    "TaskProgress",
    "TaskStatus",
]

TaskStatus = Literal["active", "done", "failed", "retrying"]
OUTCOMES = ("downloaded", "cached", "uploaded", "skipped", "mounted", "extracted")

_BUCKET = 0.25  # seconds per bucket of the current-speed window


@dataclass(frozen=True, slots=True)
class TaskProgress:
    """One blob (by digest, or archive member key). ``total`` is 0 and ``sized`` False for a blob that
    finished without a TransferStarted (skipped, mounted, cached): its size was never announced."""

    digest: str
    total: int
    done: int
    status: TaskStatus
    outcome: str | None
    started: float | None
    finished: float | None
    attempts: int
    sized: bool = True
    message: str | None = None

    @property
    def percent(self) -> float:
        if self.total <= 0:
            return 100.0 if self.status == "done" else 0.0
        return max(0.0, min(100.0, 100.0 * self.done / self.total))


@dataclass(frozen=True, slots=True)
class ConcurrencyAdjustment:
    at: float
    old: int
    new: int
    reason: str
    throughput: float = 0.0
    manager: str = ""
    strategy: str = ""


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """An immutable copy of a ``ProgressState`` at ``at`` (monotonic seconds), with derived values."""

    at: float
    started_at: float | None
    runtime: float
    finished: bool
    images: int
    image_names: tuple[str, ...]
    blobs_total: int
    blobs_completed: int
    blobs_failed: int
    blobs_active: int
    blobs_retrying: int
    bytes_total: int
    bytes_done: int  # position of the announced blobs (a resume counts its bytes on disk)
    bytes_transferred: int  # bytes that moved in this run (positive deltas)
    percent: float
    average_speed: float
    current_speed: float
    eta: float | None
    retries: int
    outcomes: Mapping[str, int]
    concurrency: int | None
    initial_concurrency: int | None
    adjustments: int
    last_adjustment: ConcurrencyAdjustment | None
    active: tuple[TaskProgress, ...]  # active and retrying blobs, oldest first


class _Task:
    __slots__ = ("attempts", "digest", "done", "finished", "message", "outcome", "sized", "started", "status", "total")

    def __init__(self, digest: str) -> None:
        self.digest = digest
        self.total = 0
        self.done = 0
        self.status: TaskStatus | None = None  # None: not counted yet
        self.outcome: str | None = None
        self.started: float | None = None
        self.finished: float | None = None
        self.attempts = 0
        self.sized = False
        self.message: str | None = None

    def freeze(self) -> TaskProgress:
        return TaskProgress(
            self.digest,
            self.total,
            self.done,
            self.status or "active",
            self.outcome,
            self.started,
            self.finished,
            self.attempts,
            self.sized,
            self.message,
        )


class ProgressState:
    """Thread-safe fold of progress events. ``concurrency``: the starting concurrency when the caller
    knows it (otherwise the first adjustment's ``old``). ``window``: seconds behind the current speed."""

    def __init__(self, concurrency: int | None = None, window: float = 3.0) -> None:
        self._lock = threading.Lock()
        self._window = window
        self._started_at: float | None = None
        self._moving_since: float | None = None
        self._finished_at: float | None = None
        self._images: list[str] = []
        self._planned_blobs = 0
        self._planned_bytes = 0
        self._tasks: dict[str, _Task] = {}
        self._status: dict[str, int] = {"active": 0, "done": 0, "failed": 0, "retrying": 0}
        self._known_total = 0  # sum of the sizes of the announced blobs
        self._sized = 0  # how many blobs announced their size
        self._unsized_done = 0  # finished blobs whose size was never announced
        self._bytes_done = 0
        self._transferred = 0
        self._completed = 0
        self._outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self._retries = 0
        self._initial_concurrency = concurrency
        self._concurrency = concurrency
        self._adjustments: list[ConcurrencyAdjustment] = []
        self._buckets: deque[list[int]] = deque()  # [bucket index, bytes]

    # -- folding ----------------------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        self.apply(event)

    def set_concurrency(self, concurrency: int) -> None:
        """The concurrency the run starts with (before any adjustment)."""
        with self._lock:
            if not self._adjustments:
                self._initial_concurrency = concurrency
                self._concurrency = concurrency

    def finish(self, at: float | None = None) -> None:
        """Freeze the clock: runtime and speeds stop moving (the end of the run)."""
        with self._lock:
            if self._finished_at is None:
                self._finished_at = time.monotonic() if at is None else at

    def apply(self, event: Event) -> None:
        at = event.at
        with self._lock:
            if self._started_at is None or at < self._started_at:
                self._started_at = at
            if isinstance(event, TransferProgress):  # the hot path
                task = self._tasks.get(event.digest)
                if task is None:
                    task = self._tasks[event.digest] = _Task(event.digest)
                    task.sized, task.status, task.started = True, "active", at
                    self._attach(task)
                task.done += event.delta
                if task.sized:
                    self._bytes_done += event.delta
                if event.delta > 0:
                    self._transferred += event.delta
                    self._count_bytes(at, event.delta)
            elif isinstance(event, TransferStarted):
                task = self._take(event.digest)
                task.total = event.total
                task.done = event.resumed_from
                task.sized = True
                task.status = "active"
                task.outcome = None
                task.finished = None
                task.attempts += 1
                if task.started is None:
                    task.started = at
                if self._moving_since is None or at < self._moving_since:
                    self._moving_since = at  # speeds count from the first transfer, not from start-up
                self._attach(task)
            elif isinstance(event, TransferFinished):
                task = self._take(event.digest)
                if task.sized:
                    task.total = max(task.total, task.done)
                    task.done = task.total
                task.status = "done"
                task.outcome = event.outcome
                task.finished = at
                self._attach(task)
                self._completed += 1
                self._outcomes[event.outcome] = self._outcomes.get(event.outcome, 0) + 1
            elif isinstance(event, TransferFailed):
                task = self._take(event.digest)
                task.message = event.message
                if event.temporary:
                    task.status = "retrying"
                    self._retries += 1
                else:
                    task.status = "failed"
                    task.finished = at
                self._attach(task)
            elif isinstance(event, ConcurrencyAdjusted):
                if self._initial_concurrency is None:
                    self._initial_concurrency = event.old
                self._concurrency = event.new
                if event.old != event.new:  # old == new: the controller announcing where it starts
                    self._adjustments.append(
                        ConcurrencyAdjustment(
                            at, event.old, event.new, event.reason, event.throughput, event.manager, event.strategy
                        )
                    )
            elif isinstance(event, ImagePlanned):
                self._images.append(event.image)
                self._planned_blobs += event.blobs
                self._planned_bytes += event.total_bytes

    def _take(self, digest: str) -> _Task:
        """The task of a digest, its contribution to the totals taken out (``_attach`` puts it back)."""
        task = self._tasks.get(digest)
        if task is None:
            task = self._tasks[digest] = _Task(digest)
            return task
        if task.status is not None:
            self._status[task.status] -= 1
        if task.sized:
            self._known_total -= task.total
            self._bytes_done -= task.done
            self._sized -= 1
        elif task.status == "done":
            self._unsized_done -= 1
        return task

    def _attach(self, task: _Task) -> None:
        if task.status is not None:
            self._status[task.status] += 1
        if task.sized:
            self._known_total += task.total
            self._bytes_done += task.done
            self._sized += 1
        elif task.status == "done":
            self._unsized_done += 1

    def _count_bytes(self, at: float, n: int) -> None:
        if self._moving_since is None:  # bytes of a transfer that never announced its start
            self._moving_since = at
        index = int(at / _BUCKET)
        buckets = self._buckets
        if buckets and buckets[-1][0] >= index:  # same bucket (or an event stamped a moment earlier)
            buckets[-1][1] += n
            return
        buckets.append([index, n])
        oldest = index - int(self._window / _BUCKET) - 1
        while buckets[0][0] < oldest:
            buckets.popleft()

    # -- reading ----------------------------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> ProgressSnapshot:
        with self._lock:
            if now is None:
                now = self._finished_at if self._finished_at is not None else time.monotonic()
            started = self._started_at
            runtime = max(now - started, 0.0) if started is not None else 0.0
            active = tuple(
                sorted(
                    (t.freeze() for t in self._tasks.values() if t.status in ("active", "retrying")),
                    key=lambda t: (t.started or 0.0, t.digest),
                )
            )
            counts = dict(self._status)
            in_flight = counts["active"] + counts["retrying"]
            blobs_total = max(self._planned_blobs, self._completed + counts["failed"] + in_flight)
            bytes_total = max(self._planned_bytes, self._known_total)
            # Blobs that finished without announcing a size (skipped, mounted, cached) count for the
            # average size of the planned bytes no announced blob accounts for.
            unknown_blobs = blobs_total - self._sized
            unknown_bytes = max(bytes_total - self._known_total, 0)
            estimate = unknown_bytes / unknown_blobs if unknown_blobs > 0 else 0.0
            position = min(self._bytes_done + self._unsized_done * estimate, float(bytes_total))
            all_done = blobs_total > 0 and self._completed >= blobs_total and in_flight == 0
            if all_done:
                percent = 100.0
            elif bytes_total > 0:
                percent = max(0.0, 100.0 * position / bytes_total)
            else:
                percent = 100.0 * self._completed / blobs_total if blobs_total else 0.0
            percent = min(percent, 100.0)
            moving = max(now - self._moving_since, 0.0) if self._moving_since is not None else 0.0
            average = self._transferred / moving if moving > 0 else 0.0
            current = self._current_speed(now)
            remaining = max(bytes_total - position, 0.0)
            if all_done or (remaining == 0 and bytes_total > 0):
                eta: float | None = 0.0
            else:
                speed = current or average
                eta = remaining / speed if speed > 0 and bytes_total > 0 else None
            return ProgressSnapshot(
                at=now,
                started_at=started,
                runtime=runtime,
                finished=self._finished_at is not None,
                images=len(self._images),
                image_names=tuple(self._images),
                blobs_total=blobs_total,
                blobs_completed=self._completed,
                blobs_failed=counts["failed"],
                blobs_active=counts["active"],
                blobs_retrying=counts["retrying"],
                bytes_total=bytes_total,
                bytes_done=self._bytes_done,
                bytes_transferred=self._transferred,
                percent=percent,
                average_speed=average,
                current_speed=current,
                eta=eta,
                retries=self._retries,
                outcomes=MappingProxyType(dict(self._outcomes)),
                concurrency=self._concurrency,
                initial_concurrency=self._initial_concurrency,
                adjustments=len(self._adjustments),
                last_adjustment=self._adjustments[-1] if self._adjustments else None,
                active=active,
            )

    def _current_speed(self, now: float) -> float:
        """Bytes per second over the last ``window`` seconds (less while the transfer is younger)."""
        if self._moving_since is None:
            return 0.0
        start = now - self._window
        clipped = start > self._moving_since  # older bytes exist: the oldest bucket may be cut by the window
        if not clipped:
            start = self._moving_since
        total = 0.0
        for index, n in reversed(self._buckets):
            begin, end = index * _BUCKET, (index + 1) * _BUCKET
            if end <= start:
                break
            if begin > now:
                continue
            if clipped and begin < start:  # count the part of this bucket inside the window
                total += n * (min(end, now) - start) / (min(end, now) - begin)
            else:
                total += n
        return total / max(now - start, _BUCKET)

    def adjustments(self) -> tuple[ConcurrencyAdjustment, ...]:
        with self._lock:
            return tuple(self._adjustments)

    def tasks(self) -> tuple[TaskProgress, ...]:
        """Every blob seen so far, in the order they first appeared."""
        with self._lock:
            return tuple(t.freeze() for t in self._tasks.values())

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """The end-of-run numbers: for the closing lines, the stats file and a Prefect table artifact."""
        snap = self.snapshot(now)
        return {
            "images": snap.images,
            "bytes": snap.bytes_transferred,
            "bytes_total": snap.bytes_total,
            "seconds": round(snap.runtime, 3),
            "speed": round(snap.average_speed, 1),
            "blobs": {
                "total": snap.blobs_total,
                "completed": snap.blobs_completed,
                **dict(snap.outcomes),
                "failed": snap.blobs_failed,
            },
            "failed": snap.blobs_failed,
            "retries": snap.retries,
            "adjustments": snap.adjustments,
            "concurrency": {"initial": snap.initial_concurrency, "final": snap.concurrency},
        }

    def stats_json(self, extra: Mapping[str, Any] | None = None, now: float | None = None) -> dict[str, Any]:
        """The ``--stats-file`` document; ``extra`` (e.g. ``operation``, ``image``) is merged over it, one
        level deep: ``{"concurrency": {...}}`` adds to the concurrency block instead of replacing it."""
        snap = self.snapshot(now)
        summary = self.summary(snap.at)
        origin = snap.started_at if snap.started_at is not None else snap.at
        stats: dict[str, Any] = {
            "operation": None,
            "image": ", ".join(snap.image_names) or None,
            "elapsed": summary["seconds"],
            "bytes": summary["bytes"],
            "speed": summary["speed"],
            "blobs": summary["blobs"],
            "retries": summary["retries"],
            "failed": summary["failed"],
            "concurrency": {
                **summary["concurrency"],
                "adjustments": [
                    {
                        "t": round(a.at - origin, 3),
                        "old": a.old,
                        "new": a.new,
                        "reason": a.reason,
                        "throughput": round(a.throughput, 1),
                    }
                    for a in self.adjustments()
                ],
            },
        }
        for key, value in (extra or {}).items():  # a dict over a dict merges (extra wins), anything else replaces
            mine = stats.get(key)
            stats[key] = {**mine, **value} if isinstance(mine, dict) and isinstance(value, Mapping) else value
        return stats

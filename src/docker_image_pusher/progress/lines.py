"""The view for a stderr that is not a terminal (CI logs, files): one plain timestamped line every
``interval`` seconds from a timer thread, so a stalled transfer still shows, plus one line for each
concurrency change. No control codes."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO

from .events import ConcurrencyAdjusted, Event
from .state import ProgressSnapshot, ProgressState
from .units import human_bytes, human_duration, human_speed, short_digest

__all__ = ["LinesView", "format_line"]


class LinesView:
    console = None  # no rich console: log handlers keep writing to stderr as usual

    def __init__(
        self,
        interval: float = 5.0,
        stream: TextIO | None = None,
        *,
        detail: str = "simple",
        state: ProgressState | None = None,
    ) -> None:
        if detail not in ("simple", "detailed"):
            raise ValueError(f"unknown progress detail {detail!r} (simple or detailed)")
        self.interval = max(interval, 0.01)
        self.stream = stream if stream is not None else sys.stderr
        self.detail = detail
        self.state = state if state is not None else ProgressState()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def __call__(self, event: Event) -> None:
        self.state.apply(event)
        if isinstance(event, ConcurrencyAdjusted):
            line = f"concurrency {event.old} -> {event.new}: {event.reason}"
            if event.throughput:
                line += f" (at {human_speed(event.throughput)})"
            self.write(line)

    def line(self, snap: ProgressSnapshot | None = None) -> str:
        return format_line(snap or self.state.snapshot(), self.detail)

    def write(self, text: str) -> None:
        stamped = time.strftime("%H:%M:%S ") + text.replace("\n", " ") + "\n"
        with self._write_lock:
            try:
                self.stream.write(stamped)
                self.stream.flush()
            except (ValueError, OSError):  # the stream went away; progress is not worth failing for
                pass

    def start(self) -> None:
        if self._thread is not None or self._closed:
            return
        self._thread = threading.Thread(target=self._run, name="progress-lines", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.write(self.line())

    def close(self) -> None:
        """Stop the timer and print the final line."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.state.finish()
        self.write(self.line())

    def __enter__(self) -> LinesView:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def format_line(snap: ProgressSnapshot, detail: str = "simple") -> str:
    parts = [
        f"{snap.percent:5.1f}%",
        f"blobs {snap.blobs_completed}/{snap.blobs_total}",
        f"{human_bytes(snap.bytes_done)} of {human_bytes(snap.bytes_total)}",
    ]
    if detail == "detailed":
        parts.append(f"avg {human_speed(snap.average_speed)} cur {human_speed(snap.current_speed)}")
    else:
        parts.append(human_speed(snap.current_speed or snap.average_speed))
    parts.append(f"ETA {human_duration(snap.eta)}")
    parts.append(f"active {snap.blobs_active}")
    if snap.blobs_failed:
        parts.append(f"failed {snap.blobs_failed}")
    if snap.retries:
        parts.append(f"retries {snap.retries}")
    if snap.concurrency is not None:
        parts.append(f"concurrency {snap.concurrency}")
    if detail == "detailed":
        parts.append(f"adjustments {snap.adjustments}")
        parts.append(f"runtime {human_duration(snap.runtime)}")
        if snap.active:
            shown = " ".join(
                f"{short_digest(t.digest)}:{'retrying' if t.status == 'retrying' else f'{t.percent:.0f}%'}"
                for t in snap.active[:8]
            )
            more = f" +{len(snap.active) - 8}" if len(snap.active) > 8 else ""
            parts.append(f"[{shown}{more}]")
    return "  ".join(parts)

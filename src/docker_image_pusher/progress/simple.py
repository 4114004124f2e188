"""A one-line progress display: overall bytes, blobs done, speed. A terminal gets one line rewritten in
place; anything else gets a plain timestamped line every few seconds, with no control codes."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from .events import Event, ImagePlanned, TransferFailed, TransferFinished, TransferProgress, TransferStarted

__all__ = ["SimpleProgress", "human_bytes"]


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class SimpleProgress:
    def __init__(self, stream: TextIO | None = None, interval: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval if interval is not None else (0.2 if self.tty else 5.0)
        self.total_bytes = 0
        self.total_blobs = 0
        self.done_bytes = 0
        self.done_blobs = 0
        self.failed = 0
        self.started: float | None = None
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if self.started is None and isinstance(event, (TransferStarted, TransferProgress)):
                self.started = event.at  # speed counts from the first byte, not from start-up
            if isinstance(event, ImagePlanned):
                self.total_bytes += event.total_bytes
                self.total_blobs += event.blobs
            elif isinstance(event, TransferStarted):
                self.done_bytes += event.resumed_from
            elif isinstance(event, TransferProgress):
                self.done_bytes += event.delta
            elif isinstance(event, TransferFinished):
                self.done_blobs += 1
            elif isinstance(event, TransferFailed):
                self.failed += 1
            now = time.monotonic()
            if now - self._last >= self.interval:
                self._last = now
                self._render(now)

    def line(self, now: float | None = None) -> str:
        now = now or time.monotonic()
        elapsed = max(now - (self.started or now), 1e-6)
        speed = self.done_bytes / elapsed
        pct = 100.0 * self.done_blobs / self.total_blobs if self.total_blobs else 0.0
        text = (
            f"{pct:5.1f}%  blobs {self.done_blobs}/{self.total_blobs}  "
            f"{human_bytes(self.done_bytes)} of {human_bytes(self.total_bytes)}  {human_bytes(speed)}/s"
        )
        return text + (f"  failed {self.failed}" if self.failed else "")

    def _render(self, now: float) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line(now))
        else:
            self.stream.write(time.strftime("%H:%M:%S ") + self.line(now) + "\n")
        self.stream.flush()

    def close(self) -> None:
        with self._lock:
            self._render(time.monotonic())
            if self.tty:
                self.stream.write("\n")
            self.stream.flush()

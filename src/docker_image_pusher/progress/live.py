"""The terminal view: a rich ``Live`` display on stderr, redrawn from ``ProgressState.snapshot()`` every
``interval`` seconds (events only update the state; drawing never happens on a transfer thread)."""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Literal

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .events import Event
from .state import ProgressSnapshot, ProgressState, TaskProgress
from .units import human_bytes, human_duration, human_speed, short_digest

__all__ = ["Detail", "LiveView", "render_frame"]

Detail = Literal["simple", "detailed"]

_BAR_WIDTH = 30
_ROW_BAR_WIDTH = 20


class LiveView:
    """A rich Live display. ``console`` (stderr unless given) is where log handlers should write while
    the display runs, so their lines appear above it instead of tearing it."""

    def __init__(
        self,
        detail: Detail = "simple",
        interval: float = 0.2,
        *,
        console: Console | None = None,
        state: ProgressState | None = None,
        max_rows: int = 12,
    ) -> None:
        if detail not in ("simple", "detailed"):
            raise ValueError(f"unknown progress detail {detail!r} (simple or detailed)")
        self.detail: Detail = detail
        self.interval = max(interval, 0.05)
        self.console = console if console is not None else Console(stderr=True)
        self.state = state if state is not None else ProgressState()
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._live = Live(
            console=self.console,
            auto_refresh=True,
            refresh_per_second=1.0 / self.interval,
            transient=False,
            # stdout stays untouched when it is a pipe (a command's output must not end up on stderr)
            redirect_stdout=_isatty(sys.stdout),
            redirect_stderr=True,
            get_renderable=self.renderable,
        )

    def __call__(self, event: Event) -> None:
        self.state.apply(event)

    def renderable(self) -> RenderableType:
        return render_frame(self.state.snapshot(), self.detail, self.max_rows)

    def start(self) -> None:
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
            self._live.start(refresh=True)

    def close(self) -> None:
        """Draw the last frame and leave it on screen."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.state.finish()
            if self._started:
                self._live.stop()  # refreshes once more, then keeps the frame
            else:
                self.console.print(self.renderable())

    def __enter__(self) -> LiveView:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # a closed stream
        return False


def render_frame(snap: ProgressSnapshot, detail: Detail = "simple", max_rows: int = 12) -> RenderableType:
    return _detailed(snap, max_rows) if detail == "detailed" else _simple(snap, max_rows)


def _overall(snap: ProgressSnapshot, *extra: Text | str) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    line = Text(f"{snap.percent:5.1f}%", style="bold")
    for part in extra:
        line.append("  ")
        line.append(part)
    grid.add_row(ProgressBar(total=100.0, completed=snap.percent, width=_BAR_WIDTH), line)
    return grid


def _task_label(task: TaskProgress) -> Text:
    label = Text(short_digest(task.digest), style="cyan")
    label.append(" retrying" if task.status == "retrying" else f" {task.percent:.0f}%", style="dim")
    return label


def _simple(snap: ProgressSnapshot, max_rows: int) -> RenderableType:
    counts = Text(f"blobs {snap.blobs_completed}/{snap.blobs_total}")
    if snap.blobs_failed:
        counts.append(f" ({snap.blobs_failed} failed)", style="red")
    overall = _overall(snap, counts, human_speed(snap.current_speed or snap.average_speed), f"ETA {_eta(snap)}")
    active = Text("active: ", style="dim")
    if snap.active:
        for i, task in enumerate(snap.active[:max_rows]):
            if i:
                active.append("  ")
            active.append(_task_label(task))
        if len(snap.active) > max_rows:
            active.append(f"  +{len(snap.active) - max_rows} more", style="dim")
    else:
        active.append("none", style="dim")
    if snap.concurrency is not None:
        active.append(f"  · concurrency {snap.concurrency}")
    return Group(overall, active)


def _detailed(snap: ProgressSnapshot, max_rows: int) -> RenderableType:
    totals = Text(
        f"blobs: {snap.blobs_total} total · {snap.blobs_completed} completed · "
        f"{snap.blobs_failed} failed · {snap.blobs_active} active"
    )
    if snap.blobs_retrying:
        totals.append(f" · {snap.blobs_retrying} retrying", style="yellow")
    if snap.images:
        totals.append(f" · {snap.images} image{'s' if snap.images != 1 else ''}", style="dim")
    overall = _overall(
        snap,
        f"{human_bytes(snap.bytes_done)} of {human_bytes(snap.bytes_total)}",
        f"runtime {human_duration(snap.runtime)}",
    )
    parts: list[RenderableType] = [totals, overall]
    if snap.active:
        rows = Table.grid(padding=(0, 2))
        rows.add_column(no_wrap=True)
        rows.add_column(justify="right", no_wrap=True)
        rows.add_column(justify="right", no_wrap=True)
        rows.add_column(no_wrap=True)
        for task in snap.active[:max_rows]:
            percent = "retrying" if task.status == "retrying" else f"{task.percent:.0f}%"
            rows.add_row(
                Text(short_digest(task.digest), style="cyan"),
                f"{human_bytes(task.done)} / {human_bytes(task.total)}",
                percent,
                ProgressBar(total=float(task.total or 1), completed=float(task.done), width=_ROW_BAR_WIDTH),
            )
        if len(snap.active) > max_rows:
            rows.add_row(Text(f"+{len(snap.active) - max_rows} more", style="dim"), "", "", "")
        parts.append(rows)
    concurrency = Text(f"concurrency {snap.concurrency if snap.concurrency is not None else '-'}")
    concurrency.append(f" · {snap.adjustments} adjustment{'s' if snap.adjustments != 1 else ''}")
    if snap.last_adjustment is not None:
        last = snap.last_adjustment
        concurrency.append(f" · last {last.old} → {last.new}: {last.reason}", style="dim")
    if snap.retries:
        concurrency.append(f" · {snap.retries} retr{'ies' if snap.retries != 1 else 'y'}", style="yellow")
    parts.append(concurrency)
    parts.append(
        Text(
            f"speed: average {human_speed(snap.average_speed)} · current {human_speed(snap.current_speed)}"
            f" · ETA {_eta(snap)}"
        )
    )
    return Group(*parts)


def _eta(snap: ProgressSnapshot) -> str:
    return human_duration(snap.eta)

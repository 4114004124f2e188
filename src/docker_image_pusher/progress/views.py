"""Choosing a progress view, and the end-of-run summary as text and as table rows."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol, TextIO

from rich.console import Console

from .events import Event
from .state import OUTCOMES, ProgressState
from .units import human_bytes, human_duration, human_speed

__all__ = ["View", "make_view", "render_summary", "summary_table"]


class View(Protocol):
    """A progress listener with a lifetime: subscribe it to a bus, ``start()`` it, ``close()`` it."""

    def __call__(self, event: Event) -> None: ...

    def start(self) -> None: ...

    def close(self) -> None: ...

    @property
    def state(self) -> ProgressState: ...

    @property
    def console(self) -> Console | None: ...

    def __enter__(self) -> View: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


LIVE_INTERVAL_MS = 200
LINES_INTERVAL_MS = 5000  # a log file or CI output needs a line every few seconds, not five a second


def make_view(detail: str, interval_ms: int | None, disabled: bool, stream: TextIO | None = None) -> View | None:
    """A rich Live view when ``stream`` (stderr by default) is a terminal rich can redraw, plain lines
    otherwise, None when progress is disabled. ``interval_ms`` None: 200 ms live, 5 s for lines."""
    if detail not in ("simple", "detailed"):
        raise ValueError(f"unknown progress detail {detail!r} (simple or detailed)")
    if disabled:
        return None
    console = Console(file=stream) if stream is not None else Console(stderr=True)
    live = console.is_terminal and not console.is_dumb_terminal
    interval = max(interval_ms or (LIVE_INTERVAL_MS if live else LINES_INTERVAL_MS), 1) / 1000.0
    if live:
        from .live import LiveView

        return LiveView("detailed" if detail == "detailed" else "simple", interval, console=console)
    from .lines import LinesView

    return LinesView(interval, stream if stream is not None else sys.stderr, detail=detail)


def _outcome_counts(summary: Mapping[str, Any]) -> list[tuple[str, int]]:
    blobs: Mapping[str, Any] = summary.get("blobs") or {}
    names = [*OUTCOMES, *(k for k in blobs if k not in OUTCOMES and k not in ("total", "completed", "failed"))]
    return [(name, int(blobs[name])) for name in names if blobs.get(name)]


def _concurrency(summary: Mapping[str, Any]) -> str | None:
    conc: Mapping[str, Any] = summary.get("concurrency") or {}
    initial, final = conc.get("initial"), conc.get("final")
    if initial is None and final is None:
        return None
    return str(final) if initial == final else f"{initial} -> {final}"


def render_summary(summary: Mapping[str, Any]) -> str:
    """Plain lines for the end of a run (no markup, no control codes)."""
    seconds = float(summary.get("seconds") or 0.0)
    lines = [
        f"transferred {human_bytes(int(summary.get('bytes') or 0))} in {human_duration(seconds)}"
        f" ({human_speed(float(summary.get('speed') or 0.0))})"
    ]
    outcomes = _outcome_counts(summary)
    blobs = ", ".join(f"{n} {name}" for name, n in outcomes) or "none"
    failed = int(summary.get("failed") or 0)
    lines.append(f"blobs: {blobs}" + (f"; {failed} failed" if failed else ""))
    adjustments = int(summary.get("adjustments") or 0)
    tail = f"retries: {int(summary.get('retries') or 0)}, concurrency adjustments: {adjustments}"
    concurrency = _concurrency(summary)
    if concurrency is not None:
        tail += f" (concurrency {concurrency})"
    lines.append(tail)
    return "\n".join(lines)


def summary_table(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    """Rows ``{"metric", "value"}`` for a Prefect table artifact."""
    rows = [
        ("bytes transferred", human_bytes(int(summary.get("bytes") or 0))),
        ("time", human_duration(float(summary.get("seconds") or 0.0))),
        ("average speed", human_speed(float(summary.get("speed") or 0.0))),
    ]
    blobs: Mapping[str, Any] = summary.get("blobs") or {}
    if "total" in blobs:
        rows.append(("blobs", f"{blobs.get('completed', 0)}/{blobs['total']}"))
    rows.extend((f"blobs {name}", str(n)) for name, n in _outcome_counts(summary))
    rows.append(("blobs failed", str(int(summary.get("failed") or 0))))
    rows.append(("retries", str(int(summary.get("retries") or 0))))
    rows.append(("concurrency adjustments", str(int(summary.get("adjustments") or 0))))
    concurrency = _concurrency(summary)
    if concurrency is not None:
        rows.append(("concurrency", concurrency))
    return [{"metric": metric, "value": value} for metric, value in rows]

"""This process's memory figures from /proc, for the in-process micro-benchmarks."""

from __future__ import annotations

import contextlib
from pathlib import Path

__all__ = ["reset_peak_rss", "status_kib"]


def status_kib(field: str) -> int:
    """A kB field of /proc/self/status, e.g. VmHWM (peak RSS) or VmRSS; 0 if missing."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)

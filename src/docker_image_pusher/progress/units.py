"""Small formatting helpers shared by the progress views and the CLI's reports."""

from __future__ import annotations

import math

__all__ = ["human_bytes", "human_duration", "human_speed", "short_digest"]


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def human_speed(bytes_per_second: float) -> str:
    return human_bytes(bytes_per_second) + "/s"


def human_duration(seconds: float | None) -> str:
    """``0:07``, ``12:03``, ``1:02:03``; ``--:--`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    total = max(round(seconds), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def short_digest(digest: str, length: int = 12) -> str:
    """``sha256:0123456789abcdef…`` -> ``0123456789ab``; other keys (archive members) keep their tail."""
    _, sep, hexpart = digest.partition(":")
    text = hexpart if sep else digest
    return text[:length] if sep else (text if len(text) <= length else "…" + text[-(length - 1) :])

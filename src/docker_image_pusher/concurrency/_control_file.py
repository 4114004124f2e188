"""A control file: change the concurrency of a running transfer from outside, by editing a small JSON file.

    {"min_concurrent": 2, "max_concurrent": 8, "concurrency": 4}

Any subset of the keys; whole numbers from 1 to 64. The file is read again only when its modification time
changes; a missing file is not an error (it may be created later); invalid content is ignored with one
warning per version of the file.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ._config import MAX_LIMIT

__all__ = ["KEYS", "ControlFile"]

_log = logging.getLogger("docker_image_pusher.concurrency")

KEYS = ("min_concurrent", "max_concurrent", "concurrency")


class ControlFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the version last read

    def poll(self) -> dict[str, int] | None:
        """The settings of a new version of the file; None when it did not change, is missing or is invalid."""
        try:
            info = self.path.stat()
        except OSError:
            return None
        version = (info.st_mtime_ns, info.st_size)
        if version == self._seen:
            return None
        self._seen = version
        try:
            return parse(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            _log.warning("ignoring the concurrency control file %s: %s", os.fspath(self.path), exc)
            return None


def parse(text: str) -> dict[str, int]:
    """The settings in ``text``; ValueError with a short reason when it is not a valid control file."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (use {', '.join(KEYS)})")
    settings: dict[str, int] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
            raise ValueError(f"{key} must be a whole number from 1 to {MAX_LIMIT}, not {value!r}")
        settings[key] = value
    low = settings.get("min_concurrent")
    high = settings.get("max_concurrent")
    if low is not None and high is not None and low > high:
        raise ValueError(f"min_concurrent ({low}) is above max_concurrent ({high})")
    return settings

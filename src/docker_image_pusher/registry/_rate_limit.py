"""The pull quota a registry announces in its answers.

Docker Hub (and registries copying it) sends, on manifest answers::

    RateLimit-Limit: 100;w=21600
    RateLimit-Remaining: 76;w=21600
    docker-ratelimit-source: 192.0.2.1

The IETF draft (draft-ietf-httpapi-ratelimit-headers, early versions) uses the same two headers, possibly with
quota policies after the first item (``RateLimit-Limit: 100, 100;w=60, 1000;w=3600``), and adds
``RateLimit-Reset: <seconds>``. A 429 answer may carry ``Retry-After`` instead. ``docker-ratelimit-source``
(the address or account being counted) is deliberately not kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from ._errors import parse_retry_after

__all__ = ["RateLimit", "parse_rate_limit"]

_COUNT = re.compile(r"[0-9]{1,18}")
_SECONDS = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,9})?")
# A RateLimit-Reset this large is a Unix timestamp (some servers send one), not seconds from now.
_EPOCH_THRESHOLD = 1_000_000_000.0


@dataclass(frozen=True)
class RateLimit:
    """What the registry last said about its rate limit.

    ``limit`` requests per window of ``window_seconds`` (None if not said), of which ``remaining`` are left;
    the window resets ``reset_seconds`` after ``observed_at`` (None if not said); ``observed_at`` is the
    client clock's time (``time.time()`` by default) when the answer arrived.
    """

    limit: int
    remaining: int
    window_seconds: float | None
    reset_seconds: float | None
    observed_at: float


def _seconds(text: str) -> float | None:
    text = text.strip().strip('"').strip()
    return float(text) if _SECONDS.fullmatch(text) else None


def _items(value: str) -> list[tuple[int, dict[str, str]]]:
    """``"100;w=21600, 50;w=60"`` -> ``[(100, {"w": "21600"}), (50, {"w": "60"})]``; an item that is not a
    count ends the list."""
    out: list[tuple[int, dict[str, str]]] = []
    for item in value.split(","):
        head, *rest = item.split(";")
        head = head.strip()
        if not _COUNT.fullmatch(head):
            break
        params: dict[str, str] = {}
        for param in rest:
            name, _, text = param.partition("=")
            params.setdefault(name.strip().lower(), text.strip())
        out.append((int(head), params))
    return out


def _window(items: list[tuple[int, dict[str, str]]]) -> float | None:
    """The ``w`` of the first item; failing that, of a quota policy with the same limit."""
    limit, params = items[0]
    if "w" in params:
        return _seconds(params["w"])
    for quota, policy in items[1:]:
        if quota == limit and "w" in policy:
            return _seconds(policy["w"])
    return None


def _reset(headers: httpx.Headers, now: float) -> float | None:
    value = headers.get("RateLimit-Reset")
    if value is not None:
        seconds = _seconds(value.split(",")[0])
        if seconds is not None:
            return max(0.0, seconds - now) if seconds >= _EPOCH_THRESHOLD else seconds
    return parse_retry_after(headers.get("Retry-After"), now=now)


def parse_rate_limit(headers: httpx.Headers, now: float) -> RateLimit | None:
    """The rate limit in ``headers`` (names are case-insensitive), observed at ``now``; None unless both
    ``RateLimit-Limit`` and ``RateLimit-Remaining`` are there and readable. A garbled window or reset only
    leaves that field None."""
    limit_value = headers.get("RateLimit-Limit")
    remaining_value = headers.get("RateLimit-Remaining")
    if limit_value is None or remaining_value is None:
        return None
    limits = _items(limit_value)
    remaining = _items(remaining_value)
    if not limits or not remaining:
        return None
    window = _window(limits)
    if window is None:
        window = _window(remaining)
    return RateLimit(
        limit=limits[0][0],
        remaining=remaining[0][0],
        window_seconds=window,
        reset_seconds=_reset(headers, now),
        observed_at=now,
    )

"""The fixed manager: one level for the whole run, never a decision (the baseline the others must beat)."""

from __future__ import annotations

from ._types import Decision, Window

__all__ = ["FixedManager"]


class FixedManager:
    name = "fixed"

    def __init__(self, min_concurrent: int, max_concurrent: int, *, initial: int | None = None) -> None:
        if min_concurrent < 1 or max_concurrent < min_concurrent:
            raise ValueError(f"bad concurrency range [{min_concurrent}, {max_concurrent}]")
        self._level = max_concurrent if initial is None else max(min_concurrent, min(max_concurrent, initial))

    def initial(self) -> int:
        return self._level

    def decide(self, window: Window) -> Decision | None:
        return None

    def close(self) -> None:
        pass

"""Task retries from --retry-attempts, with exponential backoff that honours the registry's Retry-After.

Prefect expands ``exponential_backoff`` when the decorator runs, with the decorator's own ``retries``;
``with_options(retries=n)`` alone then retries with no delay at all. So the delays are always spelled out
here, together with the count.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import PusherError

__all__ = ["DEFAULT_RETRY", "retry_delays", "retry_options", "should_retry"]

_MAX_RETRY_AFTER = 300.0


def retry_delays(attempts: int, base: float = 1.0, cap: float = 30.0) -> list[float]:
    return [min(cap, base * 2**i) for i in range(attempts)]


def should_retry(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may succeed next time; wait out a Retry-After first (on top of the backoff)."""
    try:
        state.result()
    except PusherError as err:
        if not err.temporary:
            return False
        if err.retry_after:
            time.sleep(min(err.retry_after, _MAX_RETRY_AFTER))
        return True
    except Exception:
        return True  # an unexpected failure (e.g. a bug in a dependency) gets the benefit of the doubt
    return False


def retry_options(attempts: int, base_delay: float = 1.0) -> dict[str, Any]:
    return {
        "retries": attempts,
        "retry_delay_seconds": retry_delays(attempts, base_delay),
        "retry_jitter_factor": 0.5,
        "retry_condition_fn": should_retry,
    }


# What a task declares; every flow run replaces it with --retry-attempts through with_options(**retry_options(n)).
DEFAULT_RETRY = retry_options(3)

"""Task retries from --retry-attempts: exponential backoff with jitter that honours the registry's Retry-After.

The back-off is slept here, in the retry condition, not by Prefect (its delay is set to 0): that way a
blob transfer gives its concurrency permit back while it waits (see _permit), and the delay can be the
larger of the backoff and the registry's Retry-After. Prefect's own ``exponential_backoff`` would also be
expanded with the decorator's ``retries``, so the options are always spelled out together here.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from ..errors import PusherError
from ._permit import sleep_without_permit

__all__ = ["DEFAULT_RETRY", "retry_delay", "retry_delays", "retry_options", "should_retry"]

_MAX_RETRY_AFTER = 300.0
_BASE_DELAY = 1.0
_JITTER = 0.5
log = logging.getLogger("docker_image_pusher.retry")


def retry_delays(attempts: int, base: float = _BASE_DELAY, cap: float = 30.0) -> list[float]:
    return [min(cap, base * 2**i) for i in range(attempts)]


def retry_delay(attempt: int, retry_after: float | None = None, *, base: float = _BASE_DELAY) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): jittered backoff, at least Retry-After."""
    backoff = retry_delays(attempt, base)[-1] if attempt > 0 else 0.0
    backoff *= random.uniform(1 - _JITTER, 1 + _JITTER)
    return max(backoff, min(retry_after or 0.0, _MAX_RETRY_AFTER))


def should_retry(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may succeed next time, after the back-off (slept without the concurrency permit)."""
    try:
        state.result()
    except PusherError as err:
        if not err.temporary:
            return False
        _back_off(task_run, err.retry_after, err.message)
        return True
    except Exception as err:  # an unexpected failure (e.g. a bug in a dependency) gets the benefit of the doubt
        _back_off(task_run, None, f"{type(err).__name__}: {err}")
        return True
    return False


def _back_off(task_run: Any, retry_after: float | None, why: str) -> None:
    attempt = max(1, int(getattr(task_run, "run_count", 1) or 1))
    delay = retry_delay(attempt, retry_after)
    log.info("%s failed (%s); retrying in %.1f s", getattr(task_run, "name", "task"), why, delay)
    sleep_without_permit(delay)


def retry_options(attempts: int) -> dict[str, Any]:
    return {"retries": attempts, "retry_delay_seconds": 0, "retry_condition_fn": should_retry}


# What a task declares; every flow run replaces it with --retry-attempts through with_options(**retry_options(n)).
DEFAULT_RETRY = retry_options(3)

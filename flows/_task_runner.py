"""The custom task runner: Prefect's thread pool, with blob transfers gated by the concurrency controller.

Only the blob-transfer tasks (tasks/_permit.GATED_TASKS, by name) are gated. Each one waits for a permit in
its worker thread before its task run starts (so the Prefect UI shows it Pending, not Running, while it
queues), holds it while it runs, and gives it back during a retry back-off (tasks/_permit.py). The
controller changes the number of permits from the throughput it measures; lowering it lets running
transfers finish and starts no new one until the number running is under the new limit.

Prefect enters ``duplicate()`` of the runner for every flow run, and pickles runners for deployments, so the
runner carries no live state of its own: the controller comes from the ambient ``controlling`` block (the CLI
and the agent set one per run, shared by a flow and its subflows), or, with none (a deployment or a plain
flow call), each flow run builds one from the settings and stops it when the run ends.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner

from ..concurrency import ConcurrencyController
from ..tasks._permit import GATED_TASKS, holding

__all__ = ["ControlledTaskRunner", "controlling"]

# The highest --max-concurrent (a hot update may raise the limit past the starting one), plus threads for the
# tasks that are not gated; threads are made on demand.
_POOL_SIZE = 64 + 8

_ambient: contextvars.ContextVar[ConcurrencyController | None] = contextvars.ContextVar(
    "docker_image_pusher_controller", default=None
)


@contextlib.contextmanager
def controlling(controller: ConcurrencyController) -> Iterator[ConcurrencyController]:
    """Flow runs started in this block (and their subflows) gate their transfers with ``controller``."""
    token = _ambient.set(controller)
    try:
        yield controller
    finally:
        _ambient.reset(token)


class _GatedExecutor(Executor):
    """Hands gated task calls a permit first; everything else goes straight to the pool."""

    def __init__(self, pool: ThreadPoolExecutor, controller: ConcurrencyController) -> None:
        self._pool = pool
        self._controller = controller

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        task = kwargs.get("task")
        if task is None or task.name not in GATED_TASKS:
            return self._pool.submit(fn, *args, **kwargs)
        controller = self._controller

        def gated() -> Any:
            with holding(controller):
                return fn(*args, **kwargs)

        return self._pool.submit(gated)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


class ControlledTaskRunner(ThreadPoolTaskRunner[Any]):
    def __init__(self, controller: ConcurrencyController | None = None) -> None:
        self.controller = controller
        self._owned: tuple[ConcurrencyController, Callable[[], None]] | None = None
        super().__init__(max_workers=_POOL_SIZE)

    def duplicate(self) -> ControlledTaskRunner:
        return type(self)(self.controller)

    def __getstate__(self) -> dict[str, Any]:  # a deployment pickles the runner: never a live controller
        return {"controller": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def __enter__(self) -> ControlledTaskRunner:
        controller = self.controller or _ambient.get()
        if controller is None:
            self._owned = _controller_from_settings()
            controller = self._owned[0]
            controller.start()
        self.controller = controller
        super().__enter__()
        assert self._executor is not None
        self._executor = _GatedExecutor(self._executor, controller)  # type: ignore[assignment]
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            super().__exit__(*exc_info)
        finally:
            if self._owned is not None:
                controller, unsubscribe = self._owned
                controller.stop()
                unsubscribe()
                self._owned = None


def _controller_from_settings() -> tuple[ConcurrencyController, Callable[[], None]]:
    """For a flow run with no controller of the CLI's: the settings' (environment, config file) defaults, and
    how to stop it listening to the process-wide progress bus."""
    from ..concurrency import ConcurrencyConfig
    from ..progress.events import bus
    from ..settings import load_settings

    config = ConcurrencyConfig(**load_settings({}).concurrency_config())
    controller = ConcurrencyController(config, on_adjust=bus.publish)
    return controller, bus.subscribe(controller.observe)

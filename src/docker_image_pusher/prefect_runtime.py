"""Everything that must happen before ``import prefect``, and the one place that runs the flows.

Paths that run no flow (--help, list, server) never import this module; the agent imports it once.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["FLOWS", "FlowRunner", "prepare_prefect"]

_LEAN = {
    "PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED": "false",
    "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
    "PREFECT_TASKS_DEFAULT_NO_CACHE": "true",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
}


def prepare_prefect(*, console_logs: bool) -> None:
    """Point Prefect at a server (the user's, or our local background one) and keep its console quiet.

    Flow and task logs always reach the API; on the console they would tear our progress display, so
    they are shown only with --debug.
    """
    if not os.environ.get("PREFECT_API_URL"):
        from .server import ensure_server

        os.environ["PREFECT_API_URL"] = ensure_server()
    for key, value in _LEAN.items():
        os.environ.setdefault(key, value)
    # A failed flow run always keeps its pickled error as a result (write_result=True in Prefect's flow engine,
    # whatever PERSIST_BY_DEFAULT says), by default in ~/.prefect/storage: keep it with our server's state.
    if not os.environ.get("PREFECT_RESULTS_LOCAL_STORAGE_PATH") and not os.environ.get("PREFECT_LOCAL_STORAGE_PATH"):
        from .server import state_dir

        os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(state_dir() / "results")
    if not console_logs:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL", "CRITICAL")
    logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass(frozen=True)
class FlowRunner:
    """How to run one flow by name: import it lazily, run it with a task runner sized for the run."""

    module: str
    attribute: str

    def preload(self) -> Any:
        import importlib

        return getattr(importlib.import_module(self.module, __package__), self.attribute)

    def run(self, concurrency: dict[str, Any], params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Run for the CLI, with a concurrency controller of its own; returns the flow's result and the
        controller's statistics.

        The controller listens to the run's progress channel (bytes moved, failures) and publishes its
        adjustments there; the flows' ControlledTaskRunner finds it through ``controlling``, subflows too.

        Flow-run heartbeats are off: Prefect 3.9's heartbeat thread sleeps in whole seconds and is joined when
        the flow ends, so every flow run lasted a whole number of seconds: ~0.7 s lost per run (three runs for a
        push from a tar). Heartbeats let the server mark crashed runs; a CLI run's crash is reported by the CLI
        itself. Deployments run the flows directly and keep them.
        """
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        from .concurrency import ConcurrencyConfig, ConcurrencyController
        from .flows._task_runner import controlling
        from .progress.events import ConcurrencyAdjusted, channel

        flow = self.preload()
        events = channel(params.get("progress"))
        controller = ConcurrencyController(ConcurrencyConfig(**concurrency), on_adjust=events.publish)
        unsubscribe = events.subscribe(controller.observe)
        start = controller.current  # announced as old == new: where it starts, not an adjustment
        events.publish(ConcurrencyAdjusted(start, start, "start", controller.manager.name, controller.strategy))
        controller.start()
        try:
            with controlling(controller), temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                result = flow(**params)
        finally:
            controller.stop()
            unsubscribe()
        return result, controller.statistics().report()


FLOWS: dict[str, FlowRunner] = {
    "pull": FlowRunner(".flows.pull", "pull_flow"),
    "push": FlowRunner(".flows.push", "push_flow"),
    "push-tar": FlowRunner(".flows.push_tar", "push_tar_flow"),
    "extract": FlowRunner(".flows.extract", "extract_flow"),
    "save": FlowRunner(".flows.save", "save_flow"),
    "mirror": FlowRunner(".flows.mirror", "mirror_flow"),
}

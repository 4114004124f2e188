"""Progress and concurrency adjustments of a flow run, in Prefect: run log lines, Prefect events, artifacts.

One more listener on the run's progress channel. Per event it only folds the event into a ProgressState
(cheap: it runs for every chunk) and, for a concurrency adjustment, logs it and emits a Prefect event. A
watcher thread turns progress into milestones (every 10% of the bytes): a log line, a Prefect event, and an
update of the run's progress artifact. At the end, the summary goes to the log and to a table artifact.
API calls are therefore bounded (about a dozen per run), whatever the number of blobs.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.context import FlowRunContext
from prefect.events import emit_event

from ..progress.events import ConcurrencyAdjusted, Event, ImagePlanned, channel
from ..progress.state import ProgressState
from ..progress.units import human_bytes
from ..progress.views import render_summary, summary_table

__all__ = ["reporting"]

_MILESTONE = 10  # percent
_WATCH_INTERVAL = 0.5  # seconds
EVENT_PREFIX = "docker-image-pusher"


class _FlowReporter:
    def __init__(self, operation: str, subject: str) -> None:
        self.operation = operation
        self.subject = subject
        self.logger = get_run_logger()
        context = FlowRunContext.get()
        run_id = context.flow_run.id if context and context.flow_run else None
        self.resource = {"prefect.resource.id": f"prefect.flow-run.{run_id}", "prefect.resource.name": subject}
        self.state = ProgressState()
        self.next_milestone = _MILESTONE
        self.artifact_id: Any = None
        self.stopping = threading.Event()
        context_copy = contextvars.copy_context()  # the flow run's context: artifacts and events name the run
        self.thread = threading.Thread(
            target=context_copy.run, args=(self._watch,), name="progress-reporter", daemon=True
        )

    def __call__(self, event: Event) -> None:
        self.state.apply(event)
        if isinstance(event, ConcurrencyAdjusted):
            self.logger.info("concurrency %d -> %d: %s", event.old, event.new, event.reason)
            self._emit("concurrency.adjusted", {"old": event.old, "new": event.new, "reason": event.reason,
                                                "throughput": event.throughput, "manager": event.manager})  # fmt: skip

    def _emit(self, name: str, payload: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # reporting never fails a transfer
            emit_event(f"{EVENT_PREFIX}.{name}", resource=self.resource, payload=payload)

    def _watch(self) -> None:
        with contextlib.suppress(Exception):
            self.artifact_id = create_progress_artifact(0.0, description=f"{self.operation} {self.subject}")
        while not self.stopping.wait(_WATCH_INTERVAL):
            self._milestones()

    def _milestones(self) -> None:
        snap = self.state.snapshot()
        if not snap.bytes_total or snap.percent < self.next_milestone:
            return
        reached = int(snap.percent // _MILESTONE) * _MILESTONE
        self.next_milestone = reached + _MILESTONE
        self.logger.info("%s %d%%: %d/%d blobs, %s of %s, %s/s", self.operation, reached, snap.blobs_completed,
                         snap.blobs_total, human_bytes(snap.bytes_done), human_bytes(snap.bytes_total),
                         human_bytes(snap.current_speed))  # fmt: skip
        self._emit("progress", {"percent": reached, "blobs_completed": snap.blobs_completed,
                                "blobs_total": snap.blobs_total, "bytes_done": snap.bytes_done})  # fmt: skip
        if self.artifact_id is not None:
            with contextlib.suppress(Exception):
                update_progress_artifact(self.artifact_id, float(reached))

    def finish(self, succeeded: bool) -> None:
        self.stopping.set()
        self.thread.join()
        if succeeded:
            self._milestones()  # the last one (100%) may have come after the watcher's last look
        self.state.finish()
        summary = self.state.summary()
        if succeeded and self.artifact_id is not None:
            with contextlib.suppress(Exception):
                update_progress_artifact(self.artifact_id, 100.0)
        self.logger.info("%s summary: %s", self.operation, render_summary(summary))
        with contextlib.suppress(Exception):
            create_table_artifact(summary_table(summary), key=f"{self.operation}-summary",
                                  description=f"{self.operation} {self.subject}")  # fmt: skip


@contextlib.contextmanager
def reporting(
    operation: str, subject: str, progress: str | None, *, blobs: int, total_bytes: int
) -> Iterator[ProgressState]:
    """Report the transfers of ``blobs`` blobs (``total_bytes``) published on channel ``progress`` to this flow
    run while the block runs."""
    reporter = _FlowReporter(operation, subject)
    reporter.state.apply(ImagePlanned(subject, blobs, total_bytes))
    unsubscribe = channel(progress).subscribe(reporter)
    reporter.thread.start()
    succeeded = False
    try:
        yield reporter.state
        succeeded = True
    finally:
        unsubscribe()
        reporter.finish(succeeded)

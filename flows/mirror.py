"""Mirror: check every image of a spec with HEAD requests, copy what differs, one child flow run per image.

    load the spec -> check-image (one task per image: list tags if needed, select, compare digests)
                  -> for each tag to copy: the mirror-image flow, as a child run here (images_at_once at a
                     time) or, with image_deployment, as a deployment run on the work pool's workers
                  -> a summary table artifact; the run fails if any image failed

Destination uploads can be capped across every worker by a Prefect global concurrency limit named
``docker-image-pusher-push-<host>`` (``upload_slots`` creates or resizes it; ``prefect gcl create`` works too).
"""

from __future__ import annotations

import contextvars
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from ..cache import Cache, gc_lock
from ..endpoint import ANONYMOUS
from ..errors import NotFoundError, PusherError, TransferError, UsageError
from ..mirror import MirrorSpec, TagCheck, is_immutable, load_spec, spec_from_dict
from ..progress.events import ImageMirrored, channel
from ..progress.units import human_bytes
from ..tasks._retry import retry_options
from ..tasks.mirror import check_mirror_image
from ._child_runs import starting
from ._logins import login
from ._task_runner import ControlledTaskRunner
from .mirror_image import mirror_image_flow, read_outcome

__all__ = ["MirrorResult", "mirror_flow", "upload_limit_name"]


@dataclass(frozen=True)
class MirrorResult:
    images: list[dict[str, Any]] = field(default_factory=list)  # source, target, action, reason, digest, bytes
    copied: int = 0
    unchanged: int = 0
    failed: int = 0
    bytes_transferred: int = 0
    dry_run: bool = False


def upload_limit_name(host: str) -> str:
    return "docker-image-pusher-push-" + re.sub(r"[^a-z0-9-]+", "-", host.lower())


@flow(name="mirror", persist_result=False, validate_parameters=False, task_runner=ControlledTaskRunner())  # type: ignore[arg-type]
def mirror_flow(
    spec: dict[str, Any] | str,
    dry_run: bool = False,
    cache_dir: str = ".cache",
    retry_attempts: int = 3,
    images_at_once: int = 2,
    image_deployment: str | None = None,
    upload_slots: int | None = None,
    source_auth_ref: str | None = None,
    destination_auth_ref: str | None = None,
    progress: str | None = None,
) -> MirrorResult:
    """spec: the mirror spec as a mapping, or the path of its YAML file; image_deployment: e.g.
    "mirror-image/mirror-image" to run each image on the work pool instead of in this process."""
    loaded = load_spec(spec) if isinstance(spec, str) else spec_from_dict(spec)
    logger = get_run_logger()
    src, dst = loaded.source, loaded.destination
    with (
        gc_lock(Cache(cache_dir), exclusive=False),
        login(src.host, source_auth_ref, src.credentials_secret, "DOCKER_IMAGE_PUSHER_SOURCE_") as src_ref,
        login(dst.host, destination_auth_ref, dst.credentials_secret, "DOCKER_IMAGE_PUSHER_DESTINATION_") as dst_ref,
    ):
        images = list(loaded.images_resolved())
        check = check_mirror_image.with_options(**retry_options(retry_attempts))  # --retry-attempts, as the copies
        checks = [check.submit(src.endpoint(src_ref), dst.endpoint(dst_ref), image, cache_dir) for image in images]
        rows: list[dict[str, Any]] = []
        failures: list[BaseException] = []
        todo: list[dict[str, Any]] = []
        events = channel(progress)
        for image, future in zip(images, checks, strict=True):
            try:
                tag_checks: list[TagCheck] = future.result()
            except Exception as err:  # the whole image: its tags could not be listed or compared
                failed = ImageMirrored(f"{src.host}/{image.repository}", f"{dst.host}/{image.destination}", "failed",
                                       _message(err))  # fmt: skip
                events.publish(failed)
                rows.append(_row(failed))
                failures.append(err)
                continue
            for c in tag_checks:
                shown = (f"{src.host}/{image.repository}:{c.tag}", f"{dst.host}/{image.destination}:{c.tag}")
                if c.action == "copy" and not dry_run:
                    todo.append(dict(source_repository=image.repository, destination_repository=image.destination,
                                     tag=c.tag, platforms=list(image.platforms),
                                     immutable=is_immutable(image, c.tag)))  # fmt: skip
                    continue
                action = "would copy" if c.action == "copy" else c.action
                event = ImageMirrored(*shown, action, c.reason, c.destination_digest if c.action != "copy" else None)
                events.publish(event)
                rows.append(_row(event))
                if c.action == "failed":
                    failures.append(NotFoundError(f"{shown[0]}: {c.reason}"))
        common = dict(source=src.model_dump(mode="json"), destination=dst.model_dump(mode="json"),
                      cache_dir=str(Path(cache_dir).absolute()), retry_attempts=retry_attempts,
                      rate_limit=loaded.rate_limit.model_dump(mode="json"),
                      upload_limit=_upload_limit(dst.host, upload_slots) if todo else None)  # fmt: skip
        if image_deployment:
            copied = _on_workers(image_deployment, todo, common, images_at_once)
            for row, _ in copied:  # those runs published their outcome in their own process
                events.publish(ImageMirrored(**row))
        else:
            # The lookup was made once, here: a child must not look again (in an agent, its environment is
            # that of whichever command started the agent).
            refs = dict(source_auth_ref=src_ref or ANONYMOUS, destination_auth_ref=dst_ref or ANONYMOUS,
                        progress=progress)  # fmt: skip
            copied = _here(todo, common | refs, images_at_once)
            for row, error in copied:  # a run that completed published its outcome; one that raised could not
                if error is not None:
                    events.publish(ImageMirrored(**row))
        for row, error in copied:
            rows.append(row)
            if error is not None:
                failures.append(error)
    result = _summarize(rows, dry_run)
    _report(loaded, result)
    if failures:
        first = failures[0]
        cls = type(first) if isinstance(first, PusherError) else TransferError
        raise cls(f"{result.failed} of {len(rows)} images failed; the first: {_message(first)}")
    logger.info("%d copied, %d unchanged, %s sent", result.copied, result.unchanged,
                human_bytes(result.bytes_transferred))  # fmt: skip
    return result


Outcome = tuple[dict[str, Any], BaseException | None]


def _here(todo: list[dict[str, Any]], common: dict[str, Any], at_once: int) -> list[Outcome]:
    """Child flow runs in this process, ``at_once`` at a time; they share the run's concurrency controller
    (the context is copied into each thread), so blob transfers stay under one limit."""

    events = channel(common.get("progress"))

    def one(item: dict[str, Any]) -> Outcome:
        try:
            events.raise_if_cancelled()  # the CLI went away: start no more images
            with starting():
                copy = mirror_image_flow(**item, **common)
        except Exception as err:
            return _failed_row(item, common, err), err
        return _row(copy.event()), None

    with ThreadPoolExecutor(max(1, at_once), thread_name_prefix="mirror-image") as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, item) for item in todo]
        return [f.result() for f in futures]


def _on_workers(deployment: str, todo: list[dict[str, Any]], common: dict[str, Any], at_once: int) -> list[Outcome]:
    """Deployment runs of mirror-image on the work pool, linked as child runs; up to ``at_once`` waited for
    at a time here (the workers and the upload limit decide how many really run). No auth_ref crosses a
    process: each run finds its credentials where it runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise UsageError(
                f"no deployment named {deployment!r} (expected FLOW/DEPLOYMENT, e.g. mirror-image/mirror-image)"
            ) from None

    def one(item: dict[str, Any]) -> Outcome:
        try:
            with starting():  # created one at a time (flows/_child_runs.py), then waited for side by side
                run: FlowRun = run_deployment(deployment, parameters=item | common, timeout=0)  # type: ignore[assignment]
            state = _wait_until_final(run)
        except Exception as err:
            return _failed_row(item, common, err), err
        if state is not None and state.is_completed():
            copy = read_outcome(state.message)
            if copy is None:
                return _row(ImageMirrored(_shown(common, item, "source"), _shown(common, item, "destination"),
                                          "copied", f"by run {run.name}")), None  # fmt: skip
            return _row(copy.event()), None
        message = (state.message if state else None) or "the run did not complete"
        failed = TransferError(f"{_shown(common, item, 'source')}: run {run.name}: {message}")
        return _failed_row(item, common, failed), failed

    with ThreadPoolExecutor(max(1, at_once), thread_name_prefix="mirror-image-run") as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, item) for item in todo]
        return [f.result() for f in futures]


def _wait_until_final(run: Any, poll_seconds: float = 2.0) -> Any:
    """The final state of a flow run started elsewhere (a worker's), polled."""
    import time

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(run.id).state
            if state is not None and state.is_final():
                return state
            time.sleep(poll_seconds)


def _shown(common: dict[str, Any], item: dict[str, Any], side: str) -> str:
    from ..endpoint import parse_registry_url

    host, _ = parse_registry_url(common[side]["registry"])
    return f"{host}/{item[f'{side}_repository']}:{item['tag']}"


def _failed_row(item: dict[str, Any], common: dict[str, Any], err: BaseException) -> dict[str, Any]:
    return _row(ImageMirrored(_shown(common, item, "source"), _shown(common, item, "destination"), "failed",
                              _message(err)))  # fmt: skip


def _row(event: ImageMirrored) -> dict[str, Any]:
    row = asdict(event)
    row.pop("at")
    return row


def _message(err: BaseException) -> str:
    return err.message if isinstance(err, PusherError) else f"{type(err).__name__}: {err}"


def _upload_limit(host: str, slots: int | None) -> str | None:
    """The global concurrency limit for uploads to ``host``: set to ``slots`` if given; else used only if
    someone created it (acquiring a limit that does not exist would cost an API call per image for nothing)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    name = upload_limit_name(host)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            exists = True
        except ObjectNotFound:
            exists = False
        if slots is None:
            return name if exists else None
        if exists:
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=slots))
        else:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
    return name


def _summarize(rows: list[dict[str, Any]], dry_run: bool) -> MirrorResult:
    count = {a: sum(r["action"] == a for r in rows) for a in ("copied", "unchanged", "failed")}
    return MirrorResult(images=rows, copied=count["copied"], unchanged=count["unchanged"], failed=count["failed"],
                        bytes_transferred=sum(r["bytes_transferred"] for r in rows), dry_run=dry_run)  # fmt: skip


def _report(spec: MirrorSpec, result: MirrorResult) -> None:
    table = [
        {"source": r["source"], "target": r["target"], "action": r["action"], "reason": r["reason"],
         "digest": r["digest"] or "", "bytes": human_bytes(r["bytes_transferred"])}
        for r in result.images
    ]  # fmt: skip
    title = "dry run: " if result.dry_run else ""
    create_table_artifact(
        table,
        key="mirror-summary",
        description=f"{title}{spec.source.host} -> {spec.destination.host}: {result.copied} copied, "
        f"{result.unchanged} unchanged, {result.failed} failed, {human_bytes(result.bytes_transferred)} sent",
    )

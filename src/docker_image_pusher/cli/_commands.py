"""What each command does once its flags are parsed. Prefect is imported only by commands that run a flow."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CacheError, NotFoundError, UsageError
from ..reference import Reference, parse_reference, reference_from_parts

if TYPE_CHECKING:  # pydantic-settings costs ~0.3 s to import: only commands that need settings pay it
    from collections.abc import Callable

    from ..progress.events import ImageMirrored
    from ..settings import Settings

__all__ = [
    "clean",
    "extract",
    "list_images",
    "mirror",
    "pull",
    "push",
    "save",
    "server_status",
    "server_stop",
    "verify",
]


def _read_password(password_stdin: bool, settings: Settings | None) -> str | None:
    if password_stdin:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("--password-stdin needs the password on standard input")
        password = sys.stdin.read().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin read an empty password")
        return password
    return settings.password.get_secret_value() if settings and settings.password else None


def _resolve_reference(
    image: str | None, repository: str | None, reference: str | None, registry: str | None
) -> tuple[Reference, str | None]:
    """IMAGE or -r/-t, plus --registry -> (reference, scheme)."""
    from ..endpoint import parse_registry_url

    host, scheme = parse_registry_url(registry)
    if image and repository:
        raise UsageError("give either IMAGE or --repository, not both")
    if image:
        if reference:
            raise UsageError("--reference goes with --repository; put the tag in IMAGE (name:tag or name@digest)")
        ref = parse_reference(image, default_registry=host)
        if registry and ref.registry != host:
            raise UsageError(f"IMAGE names registry {ref.registry} but --registry says {host}")
        return ref, scheme if ref.registry == host else None
    if not repository:
        raise UsageError("missing IMAGE (or --repository)")
    return reference_from_parts(repository, reference, host), scheme


def _setup_debug_logging(debug: bool, console: Any = None) -> None:
    """--debug: our protocol traces (and, in this process, Prefect's logs) on stderr, through the live view's
    console when there is one so that no line tears it. Installed on the root logger before Prefect is
    imported, so Prefect adds no console handler of its own."""
    if not debug:
        return
    handler: logging.Handler
    if console is not None:
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger("docker_image_pusher").setLevel(logging.DEBUG)


# flow parameter ("auth_ref", "source_auth_ref", ...) -> (username, password), or None: looked, found none
Logins = dict[str, tuple[str, str] | None]


def _explicit_login(password_stdin: bool, settings: Settings) -> tuple[str, str] | None:
    password = _read_password(password_stdin, settings)
    if password is not None and not settings.username:
        raise UsageError("a password needs a --username")
    if settings.username and password is None:
        raise UsageError("--username needs a password (--password-stdin, -p, or DOCKER_IMAGE_PUSHER_PASSWORD)")
    return (settings.username, password) if settings.username and password is not None else None


def _credentials(password_stdin: bool, settings: Settings, host: str, param: str = "auth_ref") -> Logins:
    """The login for one registry: the flags or environment, else docker's config for that host (looked up
    here, in the user's environment, not in the agent's)."""
    login = _explicit_login(password_stdin, settings)
    if login is None:
        from ..credentials import resolve_credentials

        found = resolve_credentials(host)
        login = (found.username, found.password) if found else None
    return {param: login}


def _connection(settings: Settings, scheme: str | None) -> dict[str, Any]:
    return dict(
        scheme=scheme,
        skip_tls=settings.skip_tls,
        ca_file=str(Path(settings.ca_file).absolute()) if settings.ca_file else None,
        retry_attempts=settings.retry_attempts,
        read_timeout=settings.read_timeout,
    )


def pull(
    *,
    image: str | None,
    repository: str | None,
    reference: str | None,
    password_stdin: bool,
    config: Path | None,
    flags: dict[str, Any],
) -> None:
    from ..settings import load_settings

    settings = load_settings(flags, config)
    ref, scheme = _resolve_reference(image, repository, reference, settings.registry)
    from ..manifest import parse_platform

    for p in settings.platforms:
        parse_platform(p)
    credentials = _credentials(password_stdin, settings, ref.registry)
    from ..cache import Cache

    cache = Cache(settings.cache_dir)
    cache.ensure_layout()
    params = dict(
        registry=ref.registry,
        repository=ref.repository,
        reference=ref.reference,
        platforms=settings.platforms,
        cache_dir=str(cache.root),
        **_connection(settings, scheme),
    )
    result, elapsed = _run_flow("pull", params, settings, credentials)
    from ..progress.units import human_bytes

    print(
        f"cached {result['key']} {result['manifest_digest']}: {result['blobs']} blobs "
        f"({result['downloaded']} downloaded, {result['cached']} already cached), "
        f"{human_bytes(result['bytes_transferred'])} in {elapsed:.1f} s"
    )


def _cached_image(source: str) -> Reference:
    """A cached image as the user names it: repo:tag, repo@digest, or a full reference (its host is ignored)."""
    from ..reference import DOCKER_HUB_API_HOST

    return parse_reference(source, default_registry=DOCKER_HUB_API_HOST)


def _cache_key(source: str) -> str:
    """The index.json key of a cached image as the user names it."""
    from ..cache import entry_key

    ref = _cached_image(source)
    return entry_key(ref.repository, ref.reference)


def push(
    *,
    source: str,
    target: str | None,
    repository: str | None,
    tag: str | None,
    image: str | None,
    password_stdin: bool,
    force_upload: bool,
    chunk_size: str | None,
    config: Path | None,
    flags: dict[str, Any],
) -> None:
    from ..settings import load_settings

    settings = load_settings(flags, config)
    from ..push import parse_size

    chunk = parse_size(chunk_size) if chunk_size else None
    if Path(source).exists():
        return _push_tar(Path(source), target, repository, tag, password_stdin, image, chunk, force_upload, settings)
    cached = _cached_image(source)
    key = _cache_key(source)
    if target:
        ref, scheme = _resolve_reference(target, None, None, settings.registry)
    else:
        ref, scheme = _resolve_reference(
            None, repository or cached.repository, tag or cached.reference, settings.registry
        )
    credentials = _credentials(password_stdin, settings, ref.registry)
    from ..cache import Cache

    cache = Cache(settings.cache_dir)
    params = dict(
        source=key,
        registry=ref.registry,
        repository=ref.repository,
        tag=ref.reference,
        cache_dir=str(cache.root),
        force_upload=force_upload,
        chunk_size=chunk,
        **_connection(settings, scheme),
    )
    from ..push import find_entry

    find_entry(cache, key)  # a clear error before any flow runs
    _print_push(*_run_flow("push", params, settings, credentials))


def _print_push(result: dict[str, Any], elapsed: float) -> None:
    from ..progress.units import human_bytes

    print(
        f"pushed {result['target']} {result['manifest_digest']}: {result['blobs']} blobs "
        f"({result['uploaded']} uploaded, {result['skipped']} already there, {result['mounted']} mounted), "
        f"{human_bytes(result['bytes_transferred'])} in {elapsed:.1f} s"
    )


def _push_tar(
    path: Path,
    target: str | None,
    repository: str | None,
    tag: str | None,
    password_stdin: bool,
    image: str | None,
    chunk: int | None,
    force_upload: bool,
    settings: Settings,
) -> None:
    """Mode 4: the tar is extracted into the cache, then pushed by the same push flow as a cached image."""
    if target:
        ref, scheme = _resolve_reference(target, None, None, settings.registry)
        repository, tag = ref.repository, ref.reference
        registry = ref.registry
    else:
        from ..endpoint import parse_registry_url

        registry, scheme = parse_registry_url(settings.registry)
        if repository:
            from ..reference import check_repository

            check_repository(repository)
    credentials = _credentials(password_stdin, settings, registry)
    from ..cache import Cache

    cache = Cache(settings.cache_dir)
    cache.ensure_layout()
    params = dict(
        path=str(path.absolute()),
        registry=registry,
        repository=repository,
        tag=tag,
        image=image,
        cache_dir=str(cache.root),
        force_upload=force_upload,
        chunk_size=chunk,
        **_connection(settings, scheme),
    )
    _print_push(*_run_flow("push-tar", params, settings, credentials))


def extract(
    *,
    file: Path,
    image: str | None,
    repository: str | None,
    reference: str | None,
    config: Path | None,
    flags: dict[str, Any],
) -> None:
    from ..settings import load_settings

    settings = load_settings(flags, config)
    if not file.exists():
        from ..errors import NotFoundError

        raise NotFoundError(f"{file} does not exist")
    if repository:
        from ..reference import check_repository

        check_repository(repository)
    from ..cache import Cache

    cache = Cache(settings.cache_dir)
    cache.ensure_layout()
    params = dict(
        path=str(file.absolute()),
        cache_dir=str(cache.root),
        image=image,
        repository=repository,
        reference=reference,
    )
    result, elapsed = _run_flow("extract", params, settings, {})
    from ..progress.units import human_bytes

    print(
        f"cached {', '.join(result['keys'])} from {file}: {result['blobs']} blobs "
        f"({result['extracted']} extracted, {result['cached']} already cached), "
        f"{human_bytes(result['bytes_extracted'])} in {elapsed:.1f} s"
    )


def _run_flow(
    flow: str,
    params: dict[str, Any],
    settings: Settings,
    credentials: Logins,
    on_image: Callable[[ImageMirrored], None] | None = None,
) -> tuple[dict[str, Any], float]:
    """Run a flow in the agent (the default) or in this process (--no-agent, --debug), show its progress, its
    notes and its summary, write --stats-file; returns the flow's result and how long it took. ``on_image``
    gets a mirror's per-image outcomes."""
    from ..progress.events import ImageMirrored as Mirrored
    from ..progress.state import ProgressState
    from ..progress.views import make_view, render_summary

    started = time.monotonic()
    view = make_view(settings.progress_detail, settings.progress_interval, settings.disable_progress)
    state = view.state if view else ProgressState()  # the summary and --stats-file need it even with no view
    _setup_debug_logging(settings.debug, view.console if view else None)
    concurrency = settings.concurrency_config(_learned_state_file(params))
    if view:
        view.start()
    sink = view or state.apply

    def on_event(event: Any) -> None:
        if isinstance(event, Mirrored):
            if on_image:
                on_image(event)
        else:
            sink(event)

    try:
        result, stats = _dispatch(flow, params, concurrency, settings, credentials, on_event)
    finally:
        if view:
            view.close()
    elapsed = time.monotonic() - started
    notes = result.get("notes") or ([result["note"]] if result.get("note") else [])
    for note in notes:
        sys.stderr.write(f"note: {note}\n")
    if view:
        sys.stderr.write(render_summary(state.summary()) + "\n")
    if settings.stats_file:
        _write_stats(settings.stats_file, state.stats_json({"operation": flow, "elapsed": elapsed, "result": result,
                                                            "concurrency": stats}))  # fmt: skip
    return result, elapsed


def _learned_state_file(params: dict[str, Any]) -> Path | None:
    """Where the adaptive manager keeps what it learned about this registry: in the cache folder."""
    registry, cache_dir = params.get("registry"), params.get("cache_dir")
    if not registry or not cache_dir:
        return None
    safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in str(registry))
    return Path(cache_dir) / "learned" / f"concurrency-{safe}.json"


def _write_stats(path: Path, stats: dict[str, Any]) -> None:
    from ..cache._atomic import atomic_write_bytes

    try:
        dest = path.absolute()
        atomic_write_bytes(dest, json.dumps(stats, indent=2, default=str).encode() + b"\n", dest.parent)
    except OSError as err:
        from ..errors import from_os_error

        raise from_os_error(err) from None


def _dispatch(
    flow: str,
    params: dict[str, Any],
    concurrency: dict[str, Any],
    settings: Settings,
    credentials: Logins,
    on_event: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    if settings.agent and not settings.debug:
        from ..agent import AgentUnavailable, run_in_agent

        try:
            return run_in_agent(flow, params, concurrency=concurrency, credentials=credentials, on_event=on_event)
        except AgentUnavailable as err:  # nothing was sent to it: run here instead
            sys.stderr.write(f"note: {err.message}; running in this process\n")
    return _run_in_process(flow, params, concurrency, settings, credentials, on_event)


def _run_in_process(
    flow: str,
    params: dict[str, Any],
    concurrency: dict[str, Any],
    settings: Settings,
    credentials: Logins,
    on_event: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    import dataclasses

    from ..endpoint import ANONYMOUS, forget_credentials, register_credentials
    from ..prefect_runtime import FLOWS, prepare_prefect
    from ..progress.events import bus
    from ..registry import Credentials

    prepare_prefect(console_logs=settings.debug)
    refs = {param: register_credentials(Credentials(*login)) if login else ANONYMOUS
            for param, login in credentials.items()}  # fmt: skip
    unsubscribe = bus.subscribe(on_event)
    try:
        result, stats = FLOWS[flow].run(concurrency, params | refs)
        return dataclasses.asdict(result), stats
    finally:
        unsubscribe()
        for ref in refs.values():
            if ref != ANONYMOUS:
                forget_credentials(ref)


def mirror(
    *,
    spec: Path,
    dry_run: bool,
    logins: dict[str, tuple[str | None, bool]],
    images_at_once: int,
    deployment: str | None,
    upload_slots: int | None,
    config: Path | None,
    flags: dict[str, Any],
) -> None:
    import os

    from ..mirror import load_spec
    from ..settings import load_settings

    settings = load_settings(flags, config)
    loaded = load_spec(spec)  # a bad spec is a usage error before anything runs
    if sum(stdin for _, stdin in logins.values()) > 1:
        raise UsageError("--src-password-stdin and --dest-password-stdin: only one password fits on stdin")
    credentials: Logins = {}
    for side, registry in (("source", loaded.source), ("destination", loaded.destination)):
        username, stdin = logins[side]
        if deployment and (username or stdin or os.environ.get(f"DOCKER_IMAGE_PUSHER_{side.upper()}_USERNAME")):
            raise UsageError(
                "--deployment: the workers cannot use credentials given here; name a Secret block in the "
                "spec (credentials_secret) or give the workers docker's config.json or their environment"
            )
        if not deployment:  # the workers look for their own (a login found here stays here)
            credentials |= _mirror_login(side, username, stdin, registry.host, registry.credentials_secret)
    from ..cache import Cache

    cache = Cache(settings.cache_dir)
    cache.ensure_layout()
    document = loaded.to_dict()
    for side in ("source", "destination"):  # the agent (or a worker) runs elsewhere: a relative path would break
        if document[side].get("ca_file"):
            document[side]["ca_file"] = str(Path(document[side]["ca_file"]).absolute())
        if document[side].get("read_timeout") is None:  # the spec's own value wins over --read-timeout
            document[side]["read_timeout"] = settings.read_timeout
    params = dict(
        spec=document,
        dry_run=dry_run,
        cache_dir=str(cache.root),
        retry_attempts=settings.retry_attempts,
        images_at_once=images_at_once,
        image_deployment=deployment,
        upload_slots=upload_slots,
    )
    rows: list[Any] = []
    try:
        result, elapsed = _run_flow("mirror", params, settings, credentials, rows.append)
    finally:
        _print_mirror(rows)
    from ..progress.units import human_bytes

    verb = "would copy" if dry_run else "copied"
    would = sum(r.action == "would copy" for r in rows)
    print(
        f"mirrored {loaded.source.host} -> {loaded.destination.host}: {would if dry_run else result['copied']} "
        f"{verb}, {result['unchanged']} unchanged, {result['failed']} failed, "
        f"{human_bytes(result['bytes_transferred'])} sent in {elapsed:.1f} s"
    )


def _mirror_login(side: str, username: str | None, stdin: bool, host: str, secret: str | None) -> Logins:
    """One side's login: flags or DOCKER_IMAGE_PUSHER_{SOURCE,DESTINATION}_USERNAME/PASSWORD, else (without a
    secret named in the spec, which the flow reads) docker's config.json for the host."""
    import os

    from ..credentials import credentials_from_env, resolve_credentials

    param = f"{side}_auth_ref"
    prefix = f"DOCKER_IMAGE_PUSHER_{side.upper()}_"
    flag = "--src" if side == "source" else "--dest"
    password = None
    if stdin:
        password = _read_password(True, None)
    elif username:
        password = os.environ.get(f"{prefix}PASSWORD") or None
    if username or password:
        if not username or not password:
            raise UsageError(f"{flag}-username needs {flag}-password-stdin or {prefix}PASSWORD, and the reverse")
        return {param: (username, password)}
    found = credentials_from_env(prefix)
    if found is None and secret:
        return {}  # the flow reads the Secret block
    found = found or resolve_credentials(host)
    return {param: (found.username, found.password) if found else None}


def _print_mirror(rows: list[Any]) -> None:
    from ..progress.units import human_bytes

    for r in rows:
        size = f" {human_bytes(r.bytes_transferred)}" if r.bytes_transferred else ""
        digest = f" {r.digest}" if r.digest else ""
        print(f"{r.action:<10} {r.source} -> {r.target} ({r.reason}){digest}{size}", flush=True)


def list_images(*, json_output: bool, config: Path | None, flags: dict[str, Any]) -> None:
    from ..settings import load_settings

    settings = load_settings(flags, config)
    from ..cache import Cache

    entries = Cache(settings.cache_dir).entries()
    if json_output:
        print(json.dumps([e.to_json() | {"key": k, "size": e.size} for k, e in sorted(entries.items())], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    from ..progress.units import human_bytes

    table = Table(title=f"{len(entries)} image(s) in {Path(settings.cache_dir).absolute()}")
    for col in ("repository", "reference", "digest", "platforms", "size", "blobs"):
        table.add_column(col, justify="right" if col in ("size", "blobs") else "left")
    for _, e in sorted(entries.items()):
        platforms = ", ".join(e.platforms) or "-"
        table.add_row(
            e.repository, e.reference, e.manifest_digest[:19], platforms, human_bytes(e.size), str(len(e.blobs))
        )
    Console().print(table)


def save(*, images: list[str], output: Path, format: str, config: Path | None, flags: dict[str, Any]) -> None:
    from ..settings import load_settings

    settings = load_settings(flags, config)
    if format not in ("docker", "oci"):
        raise UsageError(f"invalid --format {format!r}: docker or oci")
    if not images:
        raise UsageError("name at least one cached image to save")
    from ..cache import Cache
    from ..push import find_entry

    cache = Cache(settings.cache_dir)
    keys = [_cache_key(image) for image in images]
    for key in keys:
        find_entry(cache, key)  # a clear error before any flow runs
    if not output.absolute().parent.is_dir():
        raise UsageError(f"cannot write {output}: folder {output.absolute().parent} does not exist")
    params = dict(keys=keys, out=str(output.absolute()), cache_dir=str(cache.root), format=format)
    result, elapsed = _run_flow("save", params, settings, {})
    from ..progress.units import human_bytes

    print(
        f"saved {', '.join(result['names'])} to {output} ({format}): {result['blobs']} blobs, "
        f"{human_bytes(result['archive_bytes'])} in {elapsed:.1f} s"
    )


def clean(*, images: list[str], everything: bool, dry_run: bool, config: Path | None, flags: dict[str, Any]) -> None:
    from ..settings import load_settings

    settings = load_settings(flags, config)
    if everything and images:
        raise UsageError("give image names or --all, not both")
    from ..cache import Cache, execute_clean, gc_lock, plan_clean
    from ..progress.units import human_bytes

    cache = Cache(settings.cache_dir)
    keys = [_cache_key(image) for image in images]
    if not cache.root.exists():
        raise UsageError(f"no cache at {cache.root}")
    with gc_lock(cache, exclusive=True, blocking=False) as exclusive:
        plan = plan_clean(cache, keys, everything=everything, can_collect=exclusive)
        verb = "would remove" if dry_run else "removed"
        for key in plan.remove_keys:
            print(f"{verb} image {key}")
        if plan.collect:
            print(f"{'would delete' if dry_run else 'deleted'} {len(plan.delete_blobs)} unreferenced blob(s), "
                  f"{human_bytes(plan.bytes_freed)}, and {len(plan.delete_files)} other file(s)")  # fmt: skip
        else:
            print("an operation is running on this cache: no file deleted now; the next clean collects them")
        if not dry_run:
            execute_clean(cache, plan)


def verify(*, repair: bool, json_output: bool, config: Path | None, flags: dict[str, Any]) -> None:
    """One line per problem, then a summary. Exit 0 when the cache is sound (or repair fixed everything),
    8 (CacheError) when problems remain or repair is refused because an operation is using the cache, 4
    (NotFoundError) when there is no cache folder: nothing to vouch for, and not a damaged cache either."""
    from ..settings import load_settings

    settings = load_settings(flags, config)
    from ..cache import Cache, verify_cache
    from ..progress.units import human_bytes

    cache = Cache(settings.cache_dir)
    if not cache.root.is_dir():
        raise NotFoundError(f"no cache at {cache.root}")
    report = verify_cache(cache, repair=repair)
    if json_output:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for p in report.problems:
            print(f"{p.kind} {p.path}: {p.detail}" + (f" -> {p.repaired}" if p.repaired else ""))
        count = len(report.problems)
        fixed = ", repaired" if report.problems and not report.remaining else ""
        print(f"verified {report.blobs_checked} blobs ({report.bytes_hashed / (1 << 20):.1f} MiB) and "
              f"{report.images_checked} images: {count} problem{'' if count == 1 else 's'}{fixed}")  # fmt: skip
        if report.partial_downloads:
            print(f"kept {len(report.partial_downloads)} partial download(s), {human_bytes(report.partial_bytes)}, "
                  "for the next pull to resume (clean --all deletes them)")  # fmt: skip
    if report.remaining:
        hint = "" if repair else "; verify --repair fixes them"
        raise CacheError(f"{len(report.remaining)} problem(s) in the cache at {cache.root}{hint}")


def server_status() -> None:
    from ..server import server_status as status
    from ..server import state_dir

    state, info = status()
    where = f" at {info.api_url} (pid {info.pid})" if info else ""
    print(f"local Prefect server: {state}{where}; state in {state_dir()}")


def server_stop() -> None:
    from ..agent import stop_agents
    from ..server import stop_server

    agents = stop_agents()
    print(f"stopped {agents} agent(s)" if agents else "no agent was running")
    print("stopped the local Prefect server" if stop_server() else "no local Prefect server was running")

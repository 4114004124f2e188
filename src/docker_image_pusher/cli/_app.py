"""The Typer app: commands and their flags. Each command hands its flags to _commands, which builds Settings.

A flag left out is passed on as None, so that settings from the environment or the config file apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from . import _commands
from ._options import (
    AdjustmentFactor,
    AutoStrategySwitching,
    ConcurrencyControlFile,
    ConcurrencyManager,
    ConcurrencyPreset,
    ConcurrencyStrategy,
    ConfidenceThreshold,
    EnableDynamic,
    EnableMonitoring,
    InitialConcurrent,
    MaxConcurrent,
    MinConcurrent,
    ProgressDetail,
    ProgressInterval,
    ReadTimeout,
    SampleInterval,
    SpeedThreshold,
    StatsFile,
    StrategySwitchConfidence,
    concurrency_flags,
    progress_flags,
)

__all__ = ["app"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Move container images between registries, tar files and a local cache, as Prefect flows.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
server_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="The local background Prefect server used by CLI runs."
)
app.add_typer(server_app, name="server")

CacheDir = Annotated[Path | None, typer.Option("--cache-dir", help="cache folder [default: .cache]")]
Config = Annotated[Path | None, typer.Option("--config", help="TOML config file")]
NoAgent = Annotated[bool, typer.Option("--no-agent", help="run the flow in this process, not in the warm agent")]
Debug = Annotated[bool, typer.Option("--debug", help="full tracebacks and protocol traces (secrets redacted)")]
DisableProgress = Annotated[bool | None, typer.Option("--disable-progress", help="no progress display")]
Registry = Annotated[
    str | None, typer.Option("--registry", help="registry URL [default: https://registry-1.docker.io]")
]
Username = Annotated[str | None, typer.Option("-u", "--username")]
Password = Annotated[str | None, typer.Option("-p", "--password", help="prefer --password-stdin")]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")]
SkipTls = Annotated[bool | None, typer.Option("--skip-tls", help="do not verify TLS certificates")]
CaFile = Annotated[Path | None, typer.Option("--ca-file", help="CA bundle to verify the registry with")]
RetryAttempts = Annotated[int | None, typer.Option("--retry-attempts", help="retries per task [default: 3]")]


def _run_flags(cache_dir: Path | None, disable_progress: bool | None, no_agent: bool, debug: bool) -> dict[str, Any]:
    return dict(
        cache_dir=cache_dir, disable_progress=disable_progress, debug=debug or None, agent=False if no_agent else None
    )


def _registry_flags(
    registry: str | None,
    username: str | None,
    password: str | None,
    skip_tls: bool | None,
    ca_file: Path | None,
    retry_attempts: int | None,
) -> dict[str, Any]:
    return dict(
        registry=registry,
        username=username,
        password=password,
        skip_tls=skip_tls,
        ca_file=ca_file,
        retry_attempts=retry_attempts,
    )


@app.command()
def pull(
    image: Annotated[
        str | None, typer.Argument(help="nginx:1.27, ghcr.io/org/app@sha256:..., host:5000/a/b:v1")
    ] = None,
    repository: Annotated[str | None, typer.Option("-r", "--repository", help="e.g. library/ubuntu")] = None,
    reference: Annotated[str | None, typer.Option("-t", "--reference", help="tag or digest [default: latest]")] = None,
    registry: Registry = None,
    username: Username = None,
    password: Password = None,
    password_stdin: PasswordStdin = False,
    skip_tls: SkipTls = None,
    ca_file: CaFile = None,
    platform: Annotated[
        list[str] | None, typer.Option("--platform", help="OS/ARCH[/VARIANT], repeatable [default: all]")
    ] = None,
    cache_dir: CacheDir = None,
    retry_attempts: RetryAttempts = None,
    read_timeout: ReadTimeout = None,
    max_concurrent: MaxConcurrent = None,
    concurrency_manager: ConcurrencyManager = None,
    enable_dynamic_concurrency: EnableDynamic = None,
    concurrency_strategy: ConcurrencyStrategy = None,
    concurrency_preset: ConcurrencyPreset = None,
    min_concurrent: MinConcurrent = None,
    initial_concurrent: InitialConcurrent = None,
    adjustment_factor: AdjustmentFactor = None,
    speed_threshold: SpeedThreshold = None,
    sample_interval: SampleInterval = None,
    confidence_threshold: ConfidenceThreshold = None,
    enable_monitoring: EnableMonitoring = None,
    auto_strategy_switching: AutoStrategySwitching = None,
    strategy_switch_confidence: StrategySwitchConfidence = None,
    concurrency_control_file: ConcurrencyControlFile = None,
    disable_progress: DisableProgress = None,
    progress_detail: ProgressDetail = None,
    progress_interval: ProgressInterval = None,
    stats_file: StatsFile = None,
    no_agent: NoAgent = False,
    debug: Debug = False,
    config: Config = None,
) -> None:
    """Pull an image (manifest or index, config, every layer) from a registry into the cache."""
    _commands.pull(
        image=image,
        repository=repository,
        reference=reference,
        password_stdin=password_stdin,
        config=config,
        flags=dict(
            **_registry_flags(registry, username, password, skip_tls, ca_file, retry_attempts),
            read_timeout=read_timeout,
            **_run_flags(cache_dir, disable_progress, no_agent, debug),
            **concurrency_flags(locals()),
            **progress_flags(progress_detail, progress_interval, stats_file),
            platforms=platform or None,
        ),
    )


@app.command()
def push(
    source: Annotated[str, typer.Option("-s", "--source", help="a cached image (repo:tag, repo@digest) or a tar file")],
    target: Annotated[str | None, typer.Argument(help="full target reference host/repo:tag (instead of -r/-t)")] = None,
    repository: Annotated[str | None, typer.Option("-r", "--repository", help="target repository")] = None,
    tag: Annotated[str | None, typer.Option("-t", "--tag", help="target tag [default: the source's]")] = None,
    image: Annotated[str | None, typer.Option("--image", help="with a tar source: which image of several")] = None,
    registry: Registry = None,
    username: Username = None,
    password: Password = None,
    password_stdin: PasswordStdin = False,
    skip_tls: SkipTls = None,
    ca_file: CaFile = None,
    cache_dir: CacheDir = None,
    retry_attempts: RetryAttempts = None,
    read_timeout: ReadTimeout = None,
    max_concurrent: MaxConcurrent = None,
    concurrency_manager: ConcurrencyManager = None,
    enable_dynamic_concurrency: EnableDynamic = None,
    concurrency_strategy: ConcurrencyStrategy = None,
    concurrency_preset: ConcurrencyPreset = None,
    min_concurrent: MinConcurrent = None,
    initial_concurrent: InitialConcurrent = None,
    adjustment_factor: AdjustmentFactor = None,
    speed_threshold: SpeedThreshold = None,
    sample_interval: SampleInterval = None,
    confidence_threshold: ConfidenceThreshold = None,
    enable_monitoring: EnableMonitoring = None,
    auto_strategy_switching: AutoStrategySwitching = None,
    strategy_switch_confidence: StrategySwitchConfidence = None,
    concurrency_control_file: ConcurrencyControlFile = None,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", help="skip blobs the registry has (the default; kept for the seed)")
    ] = False,
    force_upload: Annotated[bool, typer.Option("--force-upload", help="send every blob even if it is there")] = False,
    chunk_size: Annotated[
        str | None, typer.Option("--chunk-size", help="upload in chunks of SIZE (e.g. 8MiB) instead of one PUT")
    ] = None,
    disable_progress: DisableProgress = None,
    progress_detail: ProgressDetail = None,
    progress_interval: ProgressInterval = None,
    stats_file: StatsFile = None,
    no_agent: NoAgent = False,
    debug: Debug = False,
    config: Config = None,
) -> None:
    """Push an image from the cache (or from a tar file, extracted first) to a registry."""
    if skip_existing and force_upload:
        raise typer.BadParameter("--skip-existing and --force-upload contradict each other")
    _commands.push(
        source=source,
        target=target,
        repository=repository,
        tag=tag,
        image=image,
        password_stdin=password_stdin,
        force_upload=force_upload,
        chunk_size=chunk_size,
        config=config,
        flags=dict(
            **_registry_flags(registry, username, password, skip_tls, ca_file, retry_attempts),
            read_timeout=read_timeout,
            **_run_flags(cache_dir, disable_progress, no_agent, debug),
            **concurrency_flags(locals()),
            **progress_flags(progress_detail, progress_interval, stats_file),
        ),
    )


@app.command()
def extract(
    file: Annotated[Path, typer.Option("-f", "--file", help="docker save / OCI archive (.tar, .tar.gz) or OCI layout")],
    image: Annotated[str | None, typer.Option("--image", help="pick one image by name, tag or digest")] = None,
    repository: Annotated[str | None, typer.Option("-r", "--repository", help="name for an untagged image")] = None,
    reference: Annotated[str | None, typer.Option("-t", "--reference", help="tag for an untagged image")] = None,
    cache_dir: CacheDir = None,
    disable_progress: DisableProgress = None,
    progress_detail: ProgressDetail = None,
    progress_interval: ProgressInterval = None,
    stats_file: StatsFile = None,
    no_agent: NoAgent = False,
    debug: Debug = False,
    config: Config = None,
) -> None:
    """Extract the images of a docker save or OCI archive (or OCI layout folder) into the cache."""
    _commands.extract(
        file=file,
        image=image,
        repository=repository,
        reference=reference,
        config=config,
        flags=dict(
            **_run_flags(cache_dir, disable_progress, no_agent, debug),
            **progress_flags(progress_detail, progress_interval, stats_file),
        ),
    )


@app.command()
def save(
    images: Annotated[list[str], typer.Argument(help="cached images (repo:tag, repo@digest)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the tar file to write")],
    format: Annotated[str, typer.Option("--format", help="docker (docker load) or oci (oci-archive)")] = "docker",
    cache_dir: CacheDir = None,
    disable_progress: DisableProgress = None,
    progress_detail: ProgressDetail = None,
    progress_interval: ProgressInterval = None,
    stats_file: StatsFile = None,
    no_agent: NoAgent = False,
    debug: Debug = False,
    config: Config = None,
) -> None:
    """Write cached images to a tar: a docker load compatible docker-archive, or an OCI archive."""
    _commands.save(
        images=images,
        output=output,
        format=format,
        config=config,
        flags=dict(
            **_run_flags(cache_dir, disable_progress, no_agent, debug),
            **progress_flags(progress_detail, progress_interval, stats_file),
        ),
    )


@app.command()
def mirror(
    spec: Annotated[Path, typer.Argument(help="the mirror spec, a YAML file (see the README)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="compare digests and say what would be copied")] = False,
    src_username: Annotated[str | None, typer.Option("--src-username", help="source registry user")] = None,
    src_password_stdin: Annotated[bool, typer.Option("--src-password-stdin", help="source password on stdin")] = False,
    dest_username: Annotated[str | None, typer.Option("--dest-username", help="destination registry user")] = None,
    dest_password_stdin: Annotated[
        bool, typer.Option("--dest-password-stdin", help="destination password on stdin")
    ] = False,
    images_at_once: Annotated[int, typer.Option("--images-at-once", min=1, help="images copied at once")] = 2,
    deployment: Annotated[
        str | None, typer.Option("--deployment", help="run each image as this deployment on the work pool")
    ] = None,
    upload_slots: Annotated[
        int | None, typer.Option("--upload-slots", min=1, help="images pushed at once to the destination, all workers")
    ] = None,
    cache_dir: CacheDir = None,
    retry_attempts: RetryAttempts = None,
    read_timeout: ReadTimeout = None,
    max_concurrent: MaxConcurrent = None,
    concurrency_manager: ConcurrencyManager = None,
    enable_dynamic_concurrency: EnableDynamic = None,
    concurrency_strategy: ConcurrencyStrategy = None,
    concurrency_preset: ConcurrencyPreset = None,
    min_concurrent: MinConcurrent = None,
    initial_concurrent: InitialConcurrent = None,
    adjustment_factor: AdjustmentFactor = None,
    speed_threshold: SpeedThreshold = None,
    sample_interval: SampleInterval = None,
    confidence_threshold: ConfidenceThreshold = None,
    enable_monitoring: EnableMonitoring = None,
    auto_strategy_switching: AutoStrategySwitching = None,
    strategy_switch_confidence: StrategySwitchConfidence = None,
    concurrency_control_file: ConcurrencyControlFile = None,
    disable_progress: DisableProgress = None,
    progress_detail: ProgressDetail = None,
    progress_interval: ProgressInterval = None,
    stats_file: StatsFile = None,
    no_agent: NoAgent = False,
    debug: Debug = False,
    config: Config = None,
) -> None:
    """Copy the images a spec names from one registry to another, only those whose digests differ."""
    _commands.mirror(
        spec=spec,
        dry_run=dry_run,
        logins=dict(source=(src_username, src_password_stdin), destination=(dest_username, dest_password_stdin)),
        images_at_once=images_at_once,
        deployment=deployment,
        upload_slots=upload_slots,
        config=config,
        flags=dict(
            retry_attempts=retry_attempts,
            read_timeout=read_timeout,
            **_run_flags(cache_dir, disable_progress, no_agent, debug),
            **concurrency_flags(locals()),
            **progress_flags(progress_detail, progress_interval, stats_file),
        ),
    )


@app.command("list")
def list_images(
    json_output: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    cache_dir: CacheDir = None,
    config: Config = None,
) -> None:
    """List the images in the cache."""
    _commands.list_images(json_output=json_output, config=config, flags=dict(cache_dir=cache_dir))


@app.command()
def clean(
    images: Annotated[list[str] | None, typer.Argument(help="cached images to remove (repo:tag, repo@digest)")] = None,
    everything: Annotated[bool, typer.Option("--all", help="remove every image and partial download")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan, change nothing")] = False,
    cache_dir: CacheDir = None,
    config: Config = None,
) -> None:
    """Remove images from the cache and delete the blobs no image references any more."""
    _commands.clean(
        images=images or [], everything=everything, dry_run=dry_run, config=config, flags=dict(cache_dir=cache_dir)
    )


@app.command()
def verify(
    repair: Annotated[
        bool, typer.Option("--repair", help="delete bad blobs and tmp/ leftovers, drop the images that needed them")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
    cache_dir: CacheDir = None,
    config: Config = None,
) -> None:
    """Check every blob, image entry and temp file of the cache; exit 8 if problems remain."""
    _commands.verify(repair=repair, json_output=json_output, config=config, flags=dict(cache_dir=cache_dir))


@server_app.command("status")
def server_status() -> None:
    """Show whether the local Prefect server is running, and where."""
    _commands.server_status()


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local agent and the local Prefect server."""
    _commands.server_stop()

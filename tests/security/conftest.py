"""The security tests' runner and search: the CLI run as a user runs it (its own HOME, TMPDIR and working
folder, optionally a umask, credentials only on stdin, in the environment or in config.json), and a search of
everything a run could have shown, written or reported to Prefect for the secrets it held.

A hit is reported by the secret's name and where it was found, never by its value.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from rig.registry import RunningRegistry

TOOL = [sys.executable, "-m", "docker_image_pusher"]


def new_password() -> str:
    """A password no other test uses, so that a hit can only come from this test's runs."""
    return f"Pw-{uuid.uuid4().hex[:16]}-x"


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass(frozen=True)
class Login:
    """A registry and a login that works on it."""

    registry: RunningRegistry
    user: str
    password: str

    @property
    def ref(self) -> str:
        return self.registry.host

    def config_json(self) -> dict[str, Any]:
        return {"auths": {self.registry.host: {"auth": basic(self.user, self.password)}}}


class Secrets:
    """Named secret strings: passwords, base64(user:password), issued tokens."""

    def __init__(self) -> None:
        self.named: dict[str, str] = {}

    def add_login(self, user: str, password: str, what: str = "") -> None:
        self.named[f"password {what or user}"] = password
        self.named[f"base64 login {what or user}"] = basic(user, password)

    def add_tokens(self, tokens: Iterable[str | None]) -> int:
        added = 0
        for token in tokens:
            if token and token not in self.named.values():
                self.named[f"token #{len(self.named)}"] = token
                added += 1
        return added

    def found_in(self, where: str, data: bytes) -> list[str]:
        """Secrets in ``data`` as it is or inside any base64 text in it (Prefect keeps a failed run's error as
        base64 of a pickle; a config.json holds base64 of user:password)."""
        views = [data, *_base64_decoded(data)]
        return [f"{name} in {where}" for name, secret in self.named.items() if any(secret.encode() in v for v in views)]


_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{16,}={0,2}")
_MAX_DECODED_FILE = 8 * 1024 * 1024  # the caches' layers are binary: nothing a secret could hide in as base64


def _base64_decoded(data: bytes) -> list[bytes]:
    """Every run of base64 text in ``data``, decoded (line breaks inside a run, as base64 tools write them, are
    joined first)."""
    if len(data) > _MAX_DECODED_FILE:
        return []
    joined = re.sub(rb"(?<=[A-Za-z0-9+/])\r?\n(?=[A-Za-z0-9+/=])", b"", data)
    decoded = []
    for run in _BASE64_RUN.findall(joined):
        run = run[: len(run) - len(run) % 4] if not run.endswith(b"=") else run
        with contextlib.suppress(ValueError):
            decoded.append(base64.b64decode(run))
    return decoded


@dataclass
class Runner:
    """Runs the CLI in ``root/work`` with HOME ``root/home``, TMPDIR ``root/tmp`` and the session's state folder
    (where the Prefect server, its database and the agent live). Keeps every run for the search."""

    root: Path
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for folder in (self.home, self.tmp, self.work):
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def state(self) -> Path:
        return Path(os.environ["DOCKER_IMAGE_PUSHER_STATE_DIR"])  # set by the prefect_api fixture

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DOCKER_IMAGE_PUSHER_"))}
        env.pop("DOCKER_CONFIG", None)
        env.update(DOCKER_IMAGE_PUSHER_STATE_DIR=str(self.state), HOME=str(self.home), TMPDIR=str(self.tmp))
        return env | dict(extra or {})

    def write_docker_config(self, *logins: Login) -> Path:
        """~/.docker/config.json with ``auths`` for the logins."""
        auths: dict[str, Any] = {}
        for login in logins:
            auths.update(login.config_json()["auths"])
        folder = self.home / ".docker"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "config.json"
        path.write_text(json.dumps({"auths": auths}))
        return path

    def popen_args(self, args: Iterable[str]) -> list[str]:
        return [*TOOL, *args]

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        umask: int | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        def set_umask() -> None:
            if umask is not None:
                os.umask(umask)

        done = subprocess.run(
            self.popen_args(args), cwd=self.work, env=self.env(env), input=input, capture_output=True, text=True,
            timeout=timeout, preexec_fn=set_umask if umask is not None else None,
        )  # fmt: skip
        self.runs.append(done)
        return done


@pytest.fixture
def runner(tmp_path: Path, prefect_api: str) -> Runner:
    return Runner(tmp_path / "user")


def files_under(root: Path, skip: Iterable[Path] = ()) -> Iterator[Path]:
    skipped = {p.resolve() for p in skip}
    if not root.exists():
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.resolve() not in skipped:
            yield path


def search_files(secrets: Secrets, roots: Iterable[Path], skip: Iterable[Path] = ()) -> tuple[list[str], int]:
    """Hits in every regular file under ``roots`` (raw bytes: SQLite databases, logs, caches); and how many
    files were read."""
    hits: list[str] = []
    count = 0
    for root in roots:
        for path in files_under(root, skip):
            try:
                data = path.read_bytes()
            except (FileNotFoundError, PermissionError):
                continue  # a temp file gone meanwhile, a socket
            count += 1
            hits += secrets.found_in(str(path), data)
    return hits, count


def search_runs(secrets: Secrets, runs: Iterable[subprocess.CompletedProcess[str]]) -> list[str]:
    hits: list[str] = []
    for number, run in enumerate(runs):
        hits += secrets.found_in(f"stdout of run {number}", run.stdout.encode())
        hits += secrets.found_in(f"stderr of run {number}", run.stderr.encode())
    return hits


@dataclass
class PrefectRecords:
    """What the Prefect API holds about the runs since a moment: one text per record, named."""

    flow_runs: int = 0
    task_runs: int = 0
    logs: int = 0
    artifacts: int = 0
    texts: dict[str, str] = field(default_factory=dict)


def _paged(read: Any, **kwargs: Any) -> list[Any]:
    out: list[Any] = []
    while True:
        page = read(**kwargs, limit=200, offset=len(out))
        out += page
        if len(page) < 200:
            return out


def prefect_records(api_url: str, since: datetime, settle: float = 3.0) -> PrefectRecords:
    """Every flow run created since ``since``, its task runs, their parameters, states (with messages), logs
    and artifacts. Waits ``settle`` seconds first: run logs are shipped in batches every 2 s."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )
    from prefect.settings import PREFECT_API_URL, temporary_settings

    time.sleep(settle)
    records = PrefectRecords()
    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        flow_runs = [
            run
            for run in _paged(client.read_flow_runs)
            if run.created is not None and run.created.timestamp() >= since.timestamp() - 1
        ]
        ids = [run.id for run in flow_runs]
        records.flow_runs = len(flow_runs)
        if not ids:
            return records
        for run in flow_runs:
            records.texts[f"flow run {run.name}"] = run.model_dump_json()
            states = client.read_flow_run_states(run.id)
            records.texts[f"states of flow run {run.name}"] = json.dumps([s.model_dump(mode="json") for s in states])
        task_runs = _paged(
            client.read_task_runs, task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=ids))
        )
        records.task_runs = len(task_runs)
        for task in task_runs:
            records.texts[f"task run {task.name}"] = task.model_dump_json()
        logs = _paged(client.read_logs, log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        records.logs = len(logs)
        records.texts["logs"] = "\n".join(log.model_dump_json() for log in logs)
        artifacts = _paged(
            client.read_artifacts, artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))
        )
        records.artifacts = len(artifacts)
        for artifact in artifacts:
            records.texts[f"artifact {artifact.key or artifact.id}"] = artifact.model_dump_json()
    return records


def search_prefect(secrets: Secrets, records: PrefectRecords) -> list[str]:
    hits: list[str] = []
    for where, text in records.texts.items():
        hits += secrets.found_in(f"Prefect API: {where}", text.encode())
    return hits


@dataclass(frozen=True)
class Searched:
    """How much the search covered, so that a test can check it meant something."""

    files: int
    records: PrefectRecords
    home: list[str]  # every file under HOME after the runs, relative
    tmp: list[str]  # every file under TMPDIR after the runs, relative


def assert_nothing_leaked(
    runner: Runner, secrets: Secrets, api_url: str, since: datetime, *, skip: Iterable[Path] = ()
) -> Searched:
    """No secret in any run's stdout or stderr, in any file under the runner's folders (HOME, TMPDIR, the
    working folder with the caches and stats files) or the state folder (Prefect's database, server and agent
    logs), nor in anything the Prefect API holds about the runs since ``since``. ``skip``: files the test wrote
    itself (a config.json)."""
    records = prefect_records(api_url, since)
    hits = search_runs(secrets, runner.runs) + search_prefect(secrets, records)
    file_hits, files = search_files(secrets, [runner.root, runner.state], skip)
    hits += file_hits
    assert not hits, hits
    home = [str(p.relative_to(runner.home)) for p in files_under(runner.home)]
    tmp = [str(p.relative_to(runner.tmp)) for p in files_under(runner.tmp)]
    return Searched(files, records, home, tmp)

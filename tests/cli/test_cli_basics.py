"""The CLI's own behaviour: no Prefect on paths that run no flow, usage errors, server commands, --debug redaction."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from rig.skopeo import copy_layout_to_registry


def _imported_modules(*args: str, cwd, env=None) -> set[str]:
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "docker_image_pusher", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "HOME": str(cwd), **(env or {})},
    )
    assert r.returncode == 0, r.stderr
    return {
        line.split("|")[-1].strip().split(".")[0] for line in r.stderr.splitlines() if line.startswith("import time:")
    }


@pytest.mark.parametrize("args", [("--help",), ("list",), ("list", "--json"), ("pull", "--help"), ("server", "status")])
def test_paths_that_run_no_flow_never_import_prefect(args, tmp_path):
    modules = _imported_modules(*args, cwd=tmp_path)
    assert "docker_image_pusher" in modules
    assert "prefect" not in modules


def test_a_pull_and_a_push_through_the_agent_import_neither_prefect_nor_httpx_in_the_cli(
    cli_with_server, plain_registry, token_registry, sample_image, unique_repo, tmp_path
):
    """The agent does the work; the CLI only resolves the login (from docker's config.json when none is given,
    from the environment here for the push) and renders progress. httpx alone costs about 0.4 s and 20 MiB."""
    copy_layout_to_registry(sample_image([100, 200]), plain_registry, f"{unique_repo}:v1")
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text('{"auths": {}}')
    pulled = _imported_modules("pull", plain_registry.ref(f"{unique_repo}:v1"), "--cache-dir", "c", cwd=tmp_path)
    login = {"DOCKER_IMAGE_PUSHER_USERNAME": "user", "DOCKER_IMAGE_PUSHER_PASSWORD": "secret-pass"}
    pushed = _imported_modules("push", "-s", f"{unique_repo}:v1", token_registry.ref(f"{unique_repo}/copy:v1"),
                               "--cache-dir", "c", cwd=tmp_path, env=login)  # fmt: skip
    for modules in (pulled, pushed):
        assert "docker_image_pusher" in modules and "typer" in modules
        assert "prefect" not in modules and "httpx" not in modules and "httpcore" not in modules


def test_list_of_an_empty_cache_as_json(cli, tmp_path):
    r = cli("list", "--json", "--cache-dir", str(tmp_path / "none"))
    assert r.returncode == 0 and json.loads(r.stdout) == []


@pytest.mark.parametrize(
    "args",
    [("pull", "--no-such-flag"), ("pull",), ("pull", "a:b", "-r", "x"), ("pull", "a", "--platform", "linux"),
     ("pull", "a", "--retry-attempts", "-3"), ("pull", "a", "-p", "x"), ("nope",)],
)  # fmt: skip
def test_usage_errors_exit_2_with_one_line(cli, args):
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr


def test_password_stdin_without_input_is_a_usage_error(cli):
    r = cli("pull", "127.0.0.1:9/a:b", "-u", "me", "--password-stdin", input="")
    assert r.returncode in (2, 3)
    assert "Traceback" not in r.stderr


def test_debug_traces_the_protocol_but_never_the_secrets(
    cli_with_server, token_registry, token_server, sample_image, unique_repo
):
    image = sample_image([100])
    copy_layout_to_registry(image, token_registry, f"{unique_repo}:v1")
    token_server.reset()
    r = cli_with_server(
        "pull", token_registry.ref(f"{unique_repo}:v1"), "-u", "user", "--password-stdin", "--cache-dir", "c",
        "--debug", input="secret-pass",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    output = r.stdout + r.stderr
    assert "/v2/" in output  # the protocol trace is there
    assert "secret-pass" not in output
    issued = [req.token for req in token_server.requests if req.status == 200]
    assert issued and all(issued)
    for token in issued:
        assert token is not None and token not in output
        assert token[:40] not in output  # not even a prefix of it


def test_server_status_and_stop(cli_with_server, prefect_api):
    r = cli_with_server("server", "status")
    assert r.returncode == 0 and "running" in r.stdout and prefect_api in r.stdout


def test_clean_plans_then_removes_and_runs_without_prefect(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([100, 200])
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    cache = tmp_path / "cache"
    assert cli_with_server("pull", plain_registry.ref(f"{unique_repo}:v1"), "--cache-dir", str(cache)).returncode == 0
    dry = cli_with_server("clean", f"{unique_repo}:v1", "--dry-run", "--cache-dir", str(cache))
    assert dry.returncode == 0, dry.stderr
    assert f"would remove image {unique_repo}/v1" in dry.stdout and "would delete 4 unreferenced blob(s)" in dry.stdout
    assert json.loads(cli_with_server("list", "--json", "--cache-dir", str(cache)).stdout) != []
    assert "prefect" not in _imported_modules("clean", f"{unique_repo}:v1", "--cache-dir", str(cache), cwd=tmp_path)
    assert json.loads(cli_with_server("list", "--json", "--cache-dir", str(cache)).stdout) == []
    assert not any((cache / "blobs" / "sha256").iterdir())
    missing = cli_with_server("clean", f"{unique_repo}:v1", "--cache-dir", str(cache))
    assert missing.returncode == 4 and "not in the cache" in missing.stderr


@pytest.mark.parametrize(
    "flags",
    [
        ["--min-concurrent", "5", "--max-concurrent", "2"],
        ["--initial-concurrent", "9", "--max-concurrent", "4"],
        ["--concurrency-manager", "sometimes"],
        ["--progress-detail", "verbose"],
    ],
)
def test_bad_concurrency_or_progress_flags_fail_before_the_cache_is_touched(cli, tmp_path, flags):
    cache = tmp_path / "new-cache"
    r = cli("pull", "127.0.0.1:1/team/app:v1", "--cache-dir", str(cache), *flags)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")
    assert not cache.exists()

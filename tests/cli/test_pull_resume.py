"""Interrupted pulls resume from the bytes on disk: after SIGKILL, and across task retries."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from rig.proxy import start_proxy
from rig.skopeo import copy_layout_to_registry

MIB = 1 << 20


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _partial_size(cache: Path, digest: str) -> int:
    path = cache / "tmp" / "partial" / digest.removeprefix("sha256:")
    return path.stat().st_size if path.exists() else 0


def _start_cli(cli, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DOCKER_IMAGE_PUSHER_"))}
    env["DOCKER_IMAGE_PUSHER_STATE_DIR"] = os.environ["DOCKER_IMAGE_PUSHER_STATE_DIR"]
    env["HOME"] = str(cli.cwd)
    from cli.conftest import TOOL

    return subprocess.Popen(
        [*TOOL, *args], cwd=cli.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("mode", ["agent", "in-process"])
def test_pull_killed_mid_blob_resumes_on_the_next_run(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path, mode
):
    image = sample_image([12 * MIB], compresslevel=0, random_source="urandom")
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:big")
    layer = image.layer_digests[0]
    size = image.layer_sizes[0]
    cache = tmp_path / "cache"
    extra = ["--no-agent"] if mode == "in-process" else []
    with start_proxy(plain_registry, rate_limit=2 * MIB) as proxy:
        args = ["pull", proxy.ref(f"{unique_repo}:big"), "--registry", proxy.url, "--cache-dir", str(cache), *extra]
        proc = _start_cli(cli_with_server, *args)
        _wait_for(lambda: _partial_size(cache, layer) > 2 * MIB, timeout=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        time.sleep(1.5)  # an agent notices the closed socket and stops between two chunks
        kept = _partial_size(cache, layer)
        time.sleep(1.0)
        assert _partial_size(cache, layer) == kept, "the transfer went on after its client was killed"
        assert 0 < kept < size
        proxy.rate_limit = None
        proxy.reset_counters()
        r = cli_with_server(*args)
        assert r.returncode == 0, r.stderr
        sent_again = proxy.bytes_to_client
    blob = cache / "blobs" / "sha256" / layer.removeprefix("sha256:")
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == layer.removeprefix("sha256:")
    assert sent_again < size - kept + MIB, f"resumed run moved {sent_again} bytes; {size - kept} were missing"
    assert not (cache / "tmp" / "partial" / layer.removeprefix("sha256:")).exists()


def test_connection_reset_mid_blob_is_retried_from_where_it_broke(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([8 * MIB], compresslevel=0, random_source="urandom")
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    size = image.layer_sizes[0]
    cache = tmp_path / "cache"
    with start_proxy(plain_registry) as proxy:
        proxy.cut_after_bytes(3 * MIB, connections=None)  # every connection dies after 3 MiB
        r = cli_with_server("pull", proxy.ref(f"{unique_repo}:v1"), "--registry", proxy.url,
                            "--cache-dir", str(cache), "--retry-attempts", "5", "--max-concurrent", "1")  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert proxy.cuts >= 2
        moved = proxy.bytes_to_client
    layer = image.layer_digests[0].removeprefix("sha256:")
    assert hashlib.sha256((cache / "blobs" / "sha256" / layer).read_bytes()).hexdigest() == layer
    assert moved < size + proxy.cuts * 64 * 1024 + MIB, f"{moved} bytes moved for a {size}-byte blob"


def test_a_second_pull_is_served_by_the_same_warm_agent(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([100])
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    state = Path(os.environ["DOCKER_IMAGE_PUSHER_STATE_DIR"]) / "agent"
    args = ("pull", plain_registry.ref(f"{unique_repo}:v1"), "--cache-dir", str(tmp_path / "c"))
    assert cli_with_server(*args).returncode == 0
    pids = {p.read_text() for p in state.glob("*.pid")}
    assert cli_with_server(*args).returncode == 0
    assert {p.read_text() for p in state.glob("*.pid")} == pids
    for pid in pids:
        os.kill(int(pid), 0)  # still alive, waiting for the next run


def test_when_the_agent_cannot_be_used_the_run_goes_in_process(
    prefect_api, plain_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([100])
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    from cli.conftest import TOOL

    state = tmp_path / ("a-very-long-state-folder-name-" * 4)  # too long for a Unix socket path
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DOCKER_IMAGE_PUSHER_"))}
    env.update(PREFECT_API_URL=prefect_api, DOCKER_IMAGE_PUSHER_STATE_DIR=str(state), HOME=str(tmp_path))
    r = subprocess.run([*TOOL, "pull", plain_registry.ref(f"{unique_repo}:v1"), "--cache-dir", str(tmp_path / "c")],
                       env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "running in this process" in r.stderr and "cached " in r.stdout

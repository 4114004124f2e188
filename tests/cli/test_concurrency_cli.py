"""The controlled task runner as the registry sees it: how many blob transfers run at once, end to end.

The CLI pulls through the suite's HTTP proxy, which counts the blob transfers in progress, can hold them open
(so a test can look at a steady state), and answers 429 above a limit, as a rate-limiting registry does.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from typing import Any

from rig.skopeo import copy_layout_to_registry
from rig.throttle_http import ThrottlingHttpProxy

MIB = 1 << 20


def _start_cli(cli, *args: str) -> subprocess.Popen[str]:
    from cli.conftest import TOOL

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DOCKER_IMAGE_PUSHER_"))}
    env["DOCKER_IMAGE_PUSHER_STATE_DIR"] = os.environ["DOCKER_IMAGE_PUSHER_STATE_DIR"]
    env["HOME"] = str(cli.cwd)
    return subprocess.Popen(
        [*TOOL, *args], cwd=cli.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _steady(proxy: ThrottlingHttpProxy, count: int, hold_for: float = 1.0) -> bool:
    """`count` transfers in progress, and still exactly that many after `hold_for` seconds."""
    if not proxy.wait_transfers(count, timeout=60):
        return False
    time.sleep(hold_for)
    return proxy.active_transfers == count


def test_a_fixed_limit_holds_exactly_that_many_blob_transfers_open(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([256 * 1024] * 9)
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    with ThrottlingHttpProxy(plain_registry, max_transfers=None) as proxy:
        proxy.hold()
        proc = _start_cli(cli_with_server, "pull", proxy.ref(f"{unique_repo}:v1"), "--registry", proxy.url,
                          "--cache-dir", str(tmp_path / "c"), "--concurrency-manager", "fixed",
                          "--max-concurrent", "3", "--disable-progress")  # fmt: skip
        try:
            assert _steady(proxy, 3), f"{proxy.active_transfers} transfers in progress, not 3"
        finally:
            proxy.release()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert proxy.stats().peak_transfers == 3
    assert "10 blobs (10 downloaded" in out  # 9 layers and the config


def test_a_control_file_changes_the_limit_while_the_run_goes_on(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([256 * 1024] * 12)
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    control = tmp_path / "limits.json"
    control.write_text('{"concurrency": 2}')
    with ThrottlingHttpProxy(plain_registry, max_transfers=None) as proxy:
        proxy.hold()
        proc = _start_cli(cli_with_server, "pull", proxy.ref(f"{unique_repo}:v1"), "--registry", proxy.url,
                          "--cache-dir", str(tmp_path / "c"), "--concurrency-manager", "fixed", "--max-concurrent",
                          "8", "--concurrency-control-file", str(control), "--disable-progress",
                          "--stats-file", str(tmp_path / "stats.json"))  # fmt: skip
        try:
            assert _steady(proxy, 2), f"{proxy.active_transfers} transfers in progress, not 2"
            control.write_text('{"concurrency": 5}')
            assert _steady(proxy, 5), f"{proxy.active_transfers} transfers in progress after the update, not 5"
        finally:
            proxy.release()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    stats = json.loads((tmp_path / "stats.json").read_text())
    reasons = [a["reason"] for a in stats["concurrency"]["adjustments"]]
    assert any("control file" in r or "hot update" in r for r in reasons), reasons


def test_transfers_refused_with_429_wait_without_their_permit_and_all_arrive(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([2 * MIB] * 10, compresslevel=0, random_source="urandom")
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    stats_file = tmp_path / "stats.json"
    with ThrottlingHttpProxy(plain_registry, max_transfers=4, retry_after=1) as proxy:
        proxy.hold()  # the first four stay open: the next ones are refused
        proc = _start_cli(cli_with_server, "pull", proxy.ref(f"{unique_repo}:v1"), "--registry", proxy.url,
                          "--cache-dir", str(tmp_path / "c"), "--concurrency-manager", "fixed", "--max-concurrent",
                          "8", "--retry-attempts", "6", "--stats-file", str(stats_file))  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while proxy.stats().throttled < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert proxy.stats().throttled >= 4  # the registry did push back
        finally:
            proxy.release()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    stats = json.loads(stats_file.read_text())
    assert stats["retries"] > 0 and stats["failed"] == 0
    assert stats["blobs"]["downloaded"] == 11
    for digest in image.layer_digests:
        blob = tmp_path / "c" / "blobs" / "sha256" / digest.removeprefix("sha256:")
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == digest


def test_dynamic_concurrency_backs_off_to_what_a_rate_limiting_registry_allows(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([4 * MIB] * 24, compresslevel=0, random_source="urandom")
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    stats_file = tmp_path / "stats.json"
    with ThrottlingHttpProxy(plain_registry, max_transfers=4, retry_after=1) as proxy:
        proxy.hold()  # four transfers stay open, so the other four of the starting eight are surely refused
        proc = _start_cli(cli_with_server, "pull", proxy.ref(f"{unique_repo}:v1"), "--registry", proxy.url,
                          "--cache-dir", str(tmp_path / "c"), "--concurrency-manager", "dynamic",
                          "--initial-concurrent", "8", "--max-concurrent", "12",
                          "--stats-file", str(stats_file))  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while proxy.stats().throttled < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(1.0)  # a few controller windows with the refusals in them
        finally:
            proxy.release()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    stats = json.loads(stats_file.read_text())
    concurrency = stats["concurrency"]
    assert stats["failed"] == 0
    assert concurrency["final"] <= 4, concurrency
    assert any("throttl" in a["reason"] or "429" in a["reason"] for a in concurrency["adjustments"]), concurrency
    assert "concurrency adjustments:" in err  # the printed summary


def test_every_adjustment_and_milestone_reaches_the_flow_run_log_and_artifacts(
    cli_with_server, prefect_api, plain_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([1 * MIB] * 6, compresslevel=0, random_source="urandom")
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    control = tmp_path / "limits.json"
    control.write_text('{"concurrency": 1}')
    with ThrottlingHttpProxy(plain_registry, max_transfers=None) as proxy:
        proxy.hold()
        proc = _start_cli(cli_with_server, "pull", proxy.ref(f"{unique_repo}:v1"), "--registry", proxy.url,
                          "--cache-dir", str(tmp_path / "c"), "--concurrency-manager", "fixed", "--max-concurrent",
                          "4", "--concurrency-control-file", str(control), "--disable-progress")  # fmt: skip
        try:
            assert _steady(proxy, 1, hold_for=0.5)
            control.write_text('{"concurrency": 3}')
            assert _steady(proxy, 3, hold_for=0.2)
        finally:
            proxy.release()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    logs, artifacts = _flow_run_records(prefect_api, unique_repo)
    assert any("concurrency 1 -> 3" in line for line in logs), logs
    assert any("pull 100%" in line for line in logs), logs
    assert any("summary" in line for line in logs), logs
    kinds = {a.type for a in artifacts}
    assert {"progress", "table"} <= kinds, kinds
    progress = [a for a in artifacts if a.type == "progress"]
    assert progress[0].data == 100.0


def _flow_run_records(api_url: str, repository: str) -> tuple[list[str], list[Any]]:
    """The log lines and artifacts of the latest pull flow run of ``repository`` on the session server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=50)
                if r.parameters.get("repository") == repository]  # fmt: skip
        assert runs, "no flow run of this pull on the server"
        run_id = runs[0].id
        deadline = time.monotonic() + 15
        while True:  # logs are shipped in batches every 2 s
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            lines = [log.message for log in logs]
            if any("summary" in line for line in lines) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return lines, list(artifacts)

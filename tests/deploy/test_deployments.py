"""prefect.yaml as a user runs it: deploy everything, trigger the mirror, let process workers run it.

The source registry uses token auth, its login in a Prefect Secret block named by the spec; the
destination uses Basic auth, its login in the workers' environment. skopeo checks what arrived, and every
output of the runs (worker output, flow-run logs, artifacts, parameters) is searched for the secrets.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import yaml
from rig import skopeo
from rig.proxy import TcpProxy

from .conftest import Project, wait_for_run


def _save_secret(api_url: str, name: str, value: dict[str, str]) -> None:
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        Secret(value=value).save(name, overwrite=True)  # type: ignore[arg-type]


def _setup(project: Project, source, destination, images: list[dict[str, Any]], destination_url: str = "") -> None:
    user, password = source.creds
    _save_secret(project.api_url, "mirror-source-login", {"username": user, "password": password})
    destination_registry = destination_url or destination.url
    spec = {
        "source": {"registry": source.url, "credentials_secret": "mirror-source-login"},
        "destination": {"registry": destination_registry},
        "images": images,
    }
    (project.folder / "mirror.yaml").write_text(yaml.safe_dump(spec))
    dest_user, dest_password = destination.creds
    project.env.update(
        DOCKER_IMAGE_PUSHER_DESTINATION_REGISTRY=destination_registry,  # these credentials are for it only
        DOCKER_IMAGE_PUSHER_DESTINATION_USERNAME=dest_user,
        DOCKER_IMAGE_PUSHER_DESTINATION_PASSWORD=dest_password,
    )


def _runs_and_records(api_url: str, parent_id: str) -> tuple[list[Any], list[Any], list[Any]]:
    """The parent run and its child runs, their log records and their artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        parent = client.read_flow_run(parent_id)  # type: ignore[arg-type]
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id]))
        )
        runs = [parent, *children]
        ids = [r.id for r in runs]
        time.sleep(3)  # run logs are shipped in batches every 2 s
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids)))
    return runs, list(logs), list(artifacts)


def _assert_no_secret(texts: list[str], secrets: list[str]) -> None:
    assert len(secrets) >= 2
    blob = "\n".join(texts)
    for secret in secrets:
        assert secret not in blob


def test_deploy_all_then_a_worker_run_once_mirrors_into_the_destination(
    project: Project, token_registry, token_server, basic_registry, sample_image, unique_repo
):
    app, multi = f"{unique_repo}-app", f"{unique_repo}-multi"
    for tag in ("1.0", "1.1"):
        skopeo.copy_layout_to_registry(sample_image([200, 100]), token_registry, f"{app}:{tag}")
    skopeo.copy_layout_to_registry(sample_image.multi_arch([300]), token_registry, f"{multi}:v1")
    _setup(
        project,
        token_registry,
        basic_registry,
        [{"repository": app, "newest": 2}, {"repository": multi, "tags": ["v1"]}],
    )
    out = project.deploy()
    for name in ("pull/pull", "push/push", "mirror/nightly-mirror", "mirror-image/mirror-image"):
        assert f"'{name}'" in out

    run_id = project.trigger("mirror/nightly-mirror", {"image_deployment": None, "upload_slots": None})
    worker = project.start_worker("once", "--run-once")
    worker.wait(timeout=300)
    run = wait_for_run(project.api_url, run_id, timeout=60)
    assert run.state.is_completed(), (run.state, project.worker_output()[-3000:])
    for ref in (f"{app}:1.0", f"{app}:1.1", f"{multi}:v1"):
        assert skopeo.inspect_raw(basic_registry, ref) == skopeo.inspect_raw(token_registry, ref)

    runs, logs, artifacts = _runs_and_records(project.api_url, run_id)
    assert len(runs) == 4  # the mirror and one mirror-image child run per image
    summary = [a for a in artifacts if a.key == "mirror-summary"]
    assert summary and "3 copied" in (summary[0].description or "")
    secrets = [token_registry.creds[1], basic_registry.creds[1], *(r.token for r in token_server.requests if r.token)]
    _assert_no_secret(
        [project.worker_output(), *(log.message for log in logs), *(json.dumps(a.data, default=str) for a in artifacts),
         *(json.dumps(r.parameters, default=str) for r in runs)],
        secrets,
    )  # fmt: skip


def test_two_workers_share_a_mirror_and_the_upload_limit_holds(
    project: Project, token_registry, basic_registry, sample_image, unique_repo, request
):
    repos = [f"{unique_repo}-{i}" for i in range(4)]
    for repo in repos:
        skopeo.copy_layout_to_registry(sample_image([2_000_000, 1_000_000]), token_registry, f"{repo}:v1")
    # Each push takes seconds behind a 1 MB/s-per-connection link, so without the limit they would overlap.
    slow = TcpProxy(basic_registry, rate_limit=1_000_000).start()
    request.addfinalizer(slow.stop)
    images = [{"repository": r, "tags": ["v1"]} for r in repos]
    _setup(project, token_registry, basic_registry, images, destination_url=f"http://{slow.host}")
    project.deploy()
    for name in ("w1", "w2"):  # two runs at most each: the mirror's own run and the four images need both
        project.start_worker(name, "--limit", "2")
    run_id = project.trigger("mirror/nightly-mirror", {"upload_slots": 1, "images_at_once": 4})
    run = wait_for_run(project.api_url, run_id, timeout=400)
    assert run.state.is_completed(), (run.state, project.worker_output()[-3000:])
    for repo in repos:
        assert skopeo.inspect_raw(basic_registry, f"{repo}:v1") == skopeo.inspect_raw(token_registry, f"{repo}:v1")

    runs, logs, artifacts = _runs_and_records(project.api_url, run_id)
    summary = next(a for a in artifacts if a.key == "mirror-summary")
    assert "4 copied" in (summary.description or "") and " 0 B sent" not in (summary.description or "")
    children = {str(r.id) for r in runs[1:]}
    assert len(children) == len(repos)
    output = project.worker_output()
    took = {
        name: {c for c in children if f"Worker '{name}' submitting flow run '{c}'" in output} for name in ("w1", "w2")
    }
    assert took["w1"] and took["w2"], took  # both workers ran images
    # The upload slot (global concurrency limit 1): no two images pushed at the same time, across workers.
    spans: dict[str, list[float]] = {}
    for log in logs:
        if log.message.startswith("upload slot "):
            spans.setdefault(str(log.flow_run_id), []).append(log.timestamp.timestamp())
    assert set(spans) == children and all(len(s) == 2 for s in spans.values()), spans
    ordered = sorted(sorted(s) for s in spans.values())
    for (_, end), (start, _) in itertools.pairwise(ordered):
        assert end <= start, ordered

"""A flow called as an ordinary Prefect flow (as a deployment or a script runs it): no CLI, no agent, no
controller handed in. The controlled task runner then builds one from the settings for the run and lets go of
it afterwards."""

from __future__ import annotations

from rig.skopeo import copy_layout_to_registry


def test_a_plain_flow_call_gates_its_blobs_with_a_controller_of_its_own(
    prefect_api, plain_registry, sample_image, unique_repo, tmp_path, monkeypatch
):
    image = sample_image([64 * 1024] * 3)
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    monkeypatch.setenv("DOCKER_IMAGE_PUSHER_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DOCKER_IMAGE_PUSHER_MAX_CONCURRENT", "2")
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from docker_image_pusher.flows.pull import pull_flow
    from docker_image_pusher.progress.events import ConcurrencyAdjusted, bus

    seen: list[object] = []
    unsubscribe = bus.subscribe(seen.append)
    listeners_before = len(bus._listeners)
    try:
        with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
            result = pull_flow(
                registry=plain_registry.host,
                repository=unique_repo,
                reference="v1",
                scheme="http",
                cache_dir=str(tmp_path / "cache"),
            )
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all()  # ship the run's logs while the server is still the one configured
    finally:
        unsubscribe()
    assert result.downloaded == 4  # three layers and the config
    assert len(bus._listeners) == listeners_before - 1  # the run's controller stopped listening (and ours left)
    assert not [e for e in seen if isinstance(e, ConcurrencyAdjusted) and e.new > 2]  # the settings' ceiling held


def test_the_mirror_flow_runs_from_python_with_a_spec_file(
    prefect_api, plain_registry, registry_factory, sample_image, unique_repo, tmp_path, monkeypatch
):
    """The README's "local flow run": import the flow, call it with a spec path; no CLI, no agent."""
    import yaml
    from rig.skopeo import inspect_raw

    destination = registry_factory()
    copy_layout_to_registry(sample_image([1000, 2000]), plain_registry, f"{unique_repo}:v1")
    spec = tmp_path / "mirror.yaml"
    spec.write_text(yaml.safe_dump({
        "source": {"registry": plain_registry.url},
        "destination": {"registry": destination.url},
        "images": [{"repository": unique_repo, "tags": ["v1"]}],
    }))  # fmt: skip
    monkeypatch.setenv("HOME", str(tmp_path))  # no docker config of the user's
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from docker_image_pusher.flows.mirror import mirror_flow

    with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
        result = mirror_flow(spec=str(spec), cache_dir=str(tmp_path / "cache"))
        again = mirror_flow(spec=str(spec), cache_dir=str(tmp_path / "cache"))
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all()  # ship the runs' logs while the server is still the one configured
    assert (result.copied, result.unchanged, result.failed) == (1, 0, 0)
    assert result.bytes_transferred > 3000
    assert (again.copied, again.unchanged) == (0, 1)
    assert inspect_raw(destination, f"{unique_repo}:v1") == inspect_raw(plain_registry, f"{unique_repo}:v1")

"""Which login a flow run uses for a registry when its caller gave none (flows/_logins.py), without Prefect:
the environment's credentials only for the host DOCKER_IMAGE_PUSHER_..._REGISTRY names."""

from __future__ import annotations

import pytest

from docker_image_pusher.endpoint import ANONYMOUS, _credentials
from docker_image_pusher.flows._logins import login

PREFIX = "DOCKER_IMAGE_PUSHER_DESTINATION_"


@pytest.fixture(autouse=True)
def no_docker_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty"))
    monkeypatch.setenv(f"{PREFIX}USERNAME", "worker")
    monkeypatch.setenv(f"{PREFIX}PASSWORD", "worker-secret")


def _login_for(host):
    with login(host, None, None, PREFIX) as ref:
        return _credentials.get(ref) if ref else None


def test_environment_credentials_go_only_to_the_registry_they_name(monkeypatch):
    monkeypatch.setenv(f"{PREFIX}REGISTRY", "https://harbor.example.com")
    found = _login_for("harbor.example.com")
    assert found is not None and found.password == "worker-secret"
    assert _login_for("attacker.example") is None


def test_environment_credentials_without_a_registry_named_are_not_used():
    assert _login_for("harbor.example.com") is None


def test_anonymous_from_the_caller_means_no_lookup(monkeypatch):
    monkeypatch.setenv(f"{PREFIX}REGISTRY", "harbor.example.com")
    with login("harbor.example.com", ANONYMOUS, None, PREFIX) as ref:
        assert ref is None


def test_a_registered_login_is_forgotten_when_the_run_ends(monkeypatch):
    monkeypatch.setenv(f"{PREFIX}REGISTRY", "harbor.example.com")
    with login("harbor.example.com", None, None, PREFIX) as ref:
        assert ref in _credentials
    assert ref not in _credentials

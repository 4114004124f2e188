"""Credentials go to the registry's own host only, end to end: not to the host a blob GET is redirected to,
not to an upload Location on another host, and not over plain HTTP to a token realm on another host."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rig import skopeo
from rig.fixtures import SampleImages
from rig.registry import RunningRegistry
from rig.registry_config import BasicAuth, TokenAuth
from rig.token_server import TokenServer

from .conftest import Runner, basic, new_password
from .recording_server import RecordingRelay

USER = "relay-user"
OTHER_HOST = "127.0.0.2"  # loopback too, but another host than 127.0.0.1 for the client


@pytest.fixture
def login_registry(registry_factory: Any) -> RunningRegistry:
    registry: RunningRegistry = registry_factory(auth=BasicAuth(USER, new_password()))
    return registry


@pytest.fixture
def relays() -> Iterator[list[RecordingRelay]]:
    started: list[RecordingRelay] = []
    yield started
    for relay in started:
        relay.stop()


def _relay(relays: list[RecordingRelay], bind: str, upstream: str | None, **kwargs: Any) -> RecordingRelay:
    relay = RecordingRelay(bind, upstream, **kwargs).start()
    relays.append(relay)
    return relay


def test_a_blob_redirected_to_another_host_is_fetched_without_the_login(
    runner: Runner, login_registry: RunningRegistry, relays: list[RecordingRelay], sample_image: SampleImages,
    unique_repo: str,
) -> None:  # fmt: skip
    image = sample_image([5000, 60_000])
    skopeo.copy_layout_to_registry(image, login_registry, f"{unique_repo}:v1")
    assert login_registry.password is not None
    own_login = "Basic " + basic(USER, login_registry.password)  # the blob host's, not the client's
    blob_host = _relay(relays, OTHER_HOST, login_registry.host, authorization=own_login)
    front = _relay(relays, "127.0.0.1", login_registry.host, redirect_blobs_to=blob_host.url)
    done = runner("pull", f"{front.host}/{unique_repo}:v1", "-u", USER, "--password-stdin", "--cache-dir", "c",
                  input=login_registry.password + "\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert any(r.authorization for r in front.requests)  # the login was used, on the registry's host
    fetched = [r for r in blob_host.requests if r.method == "GET"]
    assert {r.path.rsplit("/", 1)[1] for r in fetched} >= set(image.layer_digests)
    assert [r.path for r in blob_host.requests if r.authorization] == []


def test_an_upload_location_on_another_host_gets_no_login(
    runner: Runner, login_registry: RunningRegistry, plain_registry: RunningRegistry, relays: list[RecordingRelay],
    sample_image: SampleImages, unique_repo: str,
) -> None:  # fmt: skip
    image = sample_image([4000, 80_000])
    skopeo.copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    pulled = runner("pull", plain_registry.ref(f"{unique_repo}:v1"), "--cache-dir", "c")
    assert pulled.returncode == 0, pulled.stderr
    assert login_registry.password is not None
    own_login = "Basic " + basic(USER, login_registry.password)
    upload_host = _relay(relays, OTHER_HOST, login_registry.host, authorization=own_login)
    front = _relay(relays, "127.0.0.1", login_registry.host, uploads_to=upload_host.url)
    done = runner("push", "-s", f"{unique_repo}:v1", f"{front.host}/{unique_repo}:v1", "-u", USER,
                  "--password-stdin", "--cache-dir", "c", input=login_registry.password + "\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert skopeo.inspect_raw(login_registry, f"{unique_repo}:v1") == image.manifest_bytes
    assert any(r.method == "POST" and r.authorization for r in front.requests)
    uploads = [r for r in upload_host.requests if r.method in ("PUT", "PATCH")]
    assert len(uploads) >= len(image.layer_digests)  # every blob's bytes went to the other host
    assert [f"{r.method} {r.path}" for r in upload_host.requests if r.authorization] == []


def test_a_token_realm_on_another_host_over_plain_http_gets_no_login(
    runner: Runner, token_server: TokenServer, registry_factory: Any, relays: list[RecordingRelay],
    unique_repo: str,
) -> None:  # fmt: skip
    from cli.conftest import one_line_error

    address = "127.0.0.2"  # another host to the client (only the usual names of 127.0.0.1 count as the same)
    realm = _relay(relays, address, None)  # answers 401 to anything: it must get nothing
    auth = TokenAuth(realm=f"{realm.url}/token", service=token_server.service, issuer=token_server.issuer,
                     rootcertbundle=token_server.signing.cert_path)  # fmt: skip
    registry: RunningRegistry = registry_factory(auth=auth)
    password = new_password()
    done = runner("pull", registry.ref(f"{unique_repo}:v1"), "-u", USER, "--password-stdin", "--cache-dir", "c",
                  "--retry-attempts", "0", input=password + "\n")  # fmt: skip
    assert done.returncode == 3, done.stderr
    error = one_line_error(done.stderr)
    assert "refusing" in error and address in error and "https" in error
    assert password not in done.stderr + done.stdout
    assert [r for r in realm.requests if r.authorization] == []
    assert realm.requests == []  # not even asked anonymously: the login was held back, the run stopped
    assert not (runner.work / "c" / "index.json").exists()

"""Credentials go to a plain-http token realm only on the registry's own host: 127.0.0.2 is another host
(a loopback address, but not the registry's), while localhost, 127.0.0.1 and ::1 name the same one."""

from __future__ import annotations

import httpx
import pytest

from docker_image_pusher.errors import AuthError
from docker_image_pusher.registry import Credentials, RegistryClient


def _client(registry: str, realm: str, seen: list[httpx.Request]) -> RegistryClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": "t0k3n-value"})
        if request.headers.get("Authorization") == "Bearer t0k3n-value":
            return httpx.Response(200, json={})
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'})

    return RegistryClient(
        registry, credentials=Credentials("alice", "pw-123456"), transport=httpx.MockTransport(handle)
    )


@pytest.mark.parametrize("realm", ["http://127.0.0.2:9000/token", "http://auth.example/token", "http://[::2]/token"])
def test_a_plain_http_realm_on_another_host_gets_no_credentials(realm: str) -> None:
    seen: list[httpx.Request] = []
    with _client("http://127.0.0.1:5000", realm, seen) as client, pytest.raises(AuthError, match="plain HTTP"):
        client.authenticate("team/app")
    assert not [r for r in seen if r.url.path == "/token"]


@pytest.mark.parametrize(
    ("registry", "realm"),
    [
        ("http://127.0.0.1:5000", "http://127.0.0.1:9000/token"),  # same host, another port
        ("http://localhost:5000", "http://127.0.0.1:9000/token"),
        ("http://127.0.0.1:5000", "http://[::1]:9000/token"),
        ("http://127.0.0.1:5000", "https://127.0.0.2:9000/token"),  # https: fine on any host
    ],
)
def test_a_realm_on_the_same_host_or_over_https_gets_them(registry: str, realm: str) -> None:
    seen: list[httpx.Request] = []
    with _client(registry, realm, seen) as client:
        client.authenticate("team/app")
    (token,) = [r for r in seen if r.url.path == "/token"]
    assert token.headers["Authorization"].startswith("Basic ")

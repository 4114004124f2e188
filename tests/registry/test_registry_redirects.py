"""The redirect policy (registry/_redirects.py) on an httpx.MockTransport: the public/private rule cannot be
staged on loopback, so the registries here are IP literals (no DNS), or names given to a fake resolver."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from docker_image_pusher.errors import RegistryError
from docker_image_pusher.registry import RegistryClient
from docker_image_pusher.registry._redirects import MAX_REDIRECTS, RedirectPolicy

BODY = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {}, "layers": []}'
PUBLIC = "93.184.216.34"
PRIVATE = "10.1.2.3"


def _client(registry: str, location: str, hops: int = 1) -> tuple[RegistryClient, list[str]]:
    """A registry whose manifest GET redirects ``hops`` times (/hop/N), the last one to ``location``."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        path = request.url.path
        if path == "/v2/":
            return httpx.Response(200, json={})
        if path.endswith("/manifests/v1") or path.startswith("/hop/"):
            n = int(path.rsplit("/", 1)[1]) if path.startswith("/hop/") else 0
            target = location if n + 1 >= hops else f"/hop/{n + 1}"
            return httpx.Response(302, headers={"Location": target})
        return httpx.Response(200, content=BODY, headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})

    return RegistryClient(registry, transport=httpx.MockTransport(handle)), seen


@pytest.mark.parametrize(
    ("registry", "location", "refusal"),
    [
        (f"https://{PUBLIC}", f"https://{PRIVATE}/blob", "the private address https://10.1.2.3/blob"),
        (f"https://{PUBLIC}", "https://127.0.0.1:5000/blob", "the private address"),
        (f"https://{PUBLIC}", "https://[::ffff:192.168.0.1]/blob", "the private address"),
        (f"https://{PRIVATE}", "http://169.254.169.254/latest/meta-data/", "link-local address"),
        (f"https://{PRIVATE}", "http://[::ffff:169.254.169.254]/", "link-local address"),
        (f"https://{PUBLIC}", "http://93.184.216.35/blob", "an https to http downgrade"),
        (f"http://{PRIVATE}", "gopher://10.1.2.3:70/x", "a non-http(s) location 'gopher://10.1.2.3:70/x'"),
    ],
)
def test_a_redirect_the_policy_forbids_is_refused_before_it_is_followed(
    registry: str, location: str, refusal: str
) -> None:
    client, seen = _client(registry, location)
    with client, pytest.raises(RegistryError) as caught:
        client.get_manifest("team/app", "v1")
    assert refusal in caught.value.message and "refusing a redirect from" in caught.value.message
    assert not caught.value.temporary
    assert all(not url.startswith(location) for url in seen)


@pytest.mark.parametrize(
    ("registry", "location"),
    [
        (f"https://{PRIVATE}", "https://10.9.9.9/storage/blob"),  # enterprise registry -> internal storage
        (f"http://{PRIVATE}", "http://127.0.0.1:9000/blob"),
        (f"https://{PUBLIC}", "https://93.184.216.35/cdn/blob"),  # public -> public (a CDN)
        (f"http://{PUBLIC}", "http://93.184.216.35/cdn/blob"),  # http -> http is no downgrade
    ],
)
def test_an_allowed_redirect_is_followed(registry: str, location: str) -> None:
    client, seen = _client(registry, location)
    with client:
        assert client.get_manifest("team/app", "v1").raw == BODY
    assert seen[-1] == location


def test_ten_hops_are_followed_and_the_eleventh_is_too_many() -> None:
    client, _ = _client(f"http://{PRIVATE}", "http://10.9.9.9/blob", hops=MAX_REDIRECTS)
    with client:
        client.get_manifest("team/app", "v1")
    client, seen = _client(f"http://{PRIVATE}", "http://10.9.9.9/blob", hops=MAX_REDIRECTS + 1)
    with client, pytest.raises(RegistryError, match="too many redirects"):
        client.get_manifest("team/app", "v1")
    assert sum("/hop/" in url for url in seen) == MAX_REDIRECTS


def test_names_are_classified_by_what_they_resolve_to() -> None:
    table = {"registry.example": "93.184.216.34", "storage.internal": "10.0.0.9", "metadata.cloud": "169.254.169.254"}

    def resolver(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [ipaddress.ip_address(table[host])] if host in table else []

    policy = RedirectPolicy(lambda: httpx.URL("https://registry.example/"), resolver)

    def redirect(location: str) -> httpx.Response:
        request = httpx.Request("GET", "https://registry.example/v2/a/blobs/x")
        return httpx.Response(307, headers={"Location": location}, request=request)

    with pytest.raises(RegistryError, match="private address"):
        policy(redirect("https://storage.internal/blob"))
    with pytest.raises(RegistryError, match="link-local"):
        policy(redirect("https://metadata.cloud/"))
    policy(redirect("https://unresolvable.example/blob"))  # left to the connection to fail
    policy(httpx.Response(200, request=httpx.Request("GET", "https://registry.example/v2/")))  # not a redirect

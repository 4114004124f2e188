"""The rig's throttling HTTP proxy: relays to a real registry, and answers 429 above max_transfers blob transfers."""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from rig import skopeo
from rig.fixtures import SampleImages
from rig.images import BuiltImage
from rig.registry import RunningRegistry
from rig.throttle_http import RateLimitHeaders, ThrottlingHttpProxy, is_blob_transfer, is_manifest_request

from docker_image_pusher.registry._rate_limit import parse_rate_limit

MIB = 1 << 20
OCTET = {"Content-Type": "application/octet-stream"}


@pytest.fixture
def proxy(plain_registry: RunningRegistry) -> Iterator[ThrottlingHttpProxy]:
    with ThrottlingHttpProxy(plain_registry) as running:
        yield running


@pytest.fixture
def pushed(plain_registry: RunningRegistry, sample_image: SampleImages, unique_repo: str) -> tuple[BuiltImage, str]:
    """An image with one 2 MiB layer in the plain registry (pushed directly): (image, repository)."""
    image = sample_image([2 * MIB], random_source="urandom", compresslevel=0)
    skopeo.copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    return image, unique_repo


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _conn(proxy: ThrottlingHttpProxy) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)


def _call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | Iterator[bytes] | None = None,
    headers: dict[str, str] | None = None,
    *,
    chunked: bool = False,
) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
    response = conn.getresponse()
    return response, response.read()


def _assert_throttled(response: http.client.HTTPResponse, body: bytes, retry_after: int = 1) -> None:
    assert response.status == 429
    assert response.getheader("Retry-After") == str(retry_after)
    assert response.getheader("Content-Type", "").startswith("application/json")
    errors = json.loads(body)["errors"]
    assert errors[0]["code"] == "TOOMANYREQUESTS" and errors[0]["message"]


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v2/a/b/blobs/sha256:" + "0" * 64, True),
        ("GET", "/v2/a/blobs/sha256:" + "0" * 64 + "?x=1", True),
        ("HEAD", "/v2/a/blobs/sha256:" + "0" * 64, False),
        ("GET", "/v2/a/manifests/v1", False),
        ("GET", "/v2/a/manifests/sha256:" + "0" * 64, False),
        ("GET", "/v2/", False),
        ("GET", "/v2/a/blobs/uploads/1234-uuid", False),  # upload status
        ("POST", "/v2/a/blobs/uploads/", True),
        ("POST", "/v2/a/blobs/uploads/?mount=sha256:00&from=b", True),
        ("PATCH", "/v2/a/blobs/uploads/1234?_state=x", True),
        ("PUT", "/v2/a/blobs/uploads/1234?digest=sha256:00", True),
        ("DELETE", "/v2/a/blobs/uploads/1234", False),
        ("PUT", "/v2/a/manifests/v1", False),
    ],
)
def test_what_counts_as_a_blob_transfer(method: str, path: str, expected: bool) -> None:
    assert is_blob_transfer(method, path) is expected


def test_skopeo_copy_through_the_proxy(
    proxy: ThrottlingHttpProxy, plain_registry: RunningRegistry, sample_image: SampleImages, unique_repo: str, tmp_path
) -> None:
    # 3 layers + config: at most 4 blob transfers at once, so nothing is throttled.
    image = sample_image([300_000, 200_000, 100_000], random_source="urandom", compresslevel=0)
    skopeo.copy(image.source, f"docker://{proxy.ref(unique_repo)}:v1", dest_registry=plain_registry)
    assert proxy.requests > 0 and proxy.transfers >= 4
    assert skopeo.inspect_digest(plain_registry, f"{unique_repo}:v1") == image.manifest_digest

    proxy.reset_counters()
    layout = tmp_path / "pulled"
    skopeo.copy(f"docker://{proxy.ref(unique_repo)}:v1", f"oci:{layout}:v1", src_registry=plain_registry)
    for layer in image.layers:
        assert _sha256((layout / "blobs" / "sha256" / layer.digest.removeprefix("sha256:")).read_bytes()) == (
            layer.digest
        )
    stats = proxy.stats()
    assert stats.throttled == 0 and stats.upstream_errors == 0
    assert stats.transfers == 4 and 1 <= stats.peak_transfers <= 4 and stats.active_transfers == 0


def test_uploads_relay_bodies_and_locations(proxy: ThrottlingHttpProxy, plain_registry: RunningRegistry, unique_repo):
    conn = _conn(proxy)
    # The client's Host names the upstream: the registry's Location does too, and the proxy rewrites it.
    started, _ = _call(conn, "POST", f"/v2/{unique_repo}/blobs/uploads/", headers={"Host": plain_registry.host})
    assert started.status == 202
    location = started.getheader("Location", "")
    assert location.startswith(proxy.url + "/v2/"), location

    # A chunked PATCH (64 KiB pieces), then a PUT with Content-Length, on the same keep-alive connection.
    first = bytes(range(256)) * 1024 * 3  # 768 KiB
    last = b"tail" * 1000
    patched, _ = _call(
        conn,
        "PATCH",
        location.removeprefix(proxy.url),
        iter([first[i : i + 65536] for i in range(0, len(first), 65536)]),
        OCTET,
        chunked=True,
    )
    assert patched.status == 202, patched.status
    after_patch = patched.getheader("Location", "").removeprefix(proxy.url)
    digest = _sha256(first + last)
    put, _ = _call(conn, "PUT", f"{after_patch}&digest={digest}", last, OCTET)
    assert put.status == 201
    got, body = _call(conn, "GET", f"/v2/{unique_repo}/blobs/{digest}")
    assert got.status == 200 and _sha256(body) == digest
    stats = proxy.stats()
    assert (stats.requests, stats.transfers, stats.throttled, stats.peak_transfers) == (4, 4, 0, 1)


def test_six_concurrent_blob_gets_four_admitted(proxy: ThrottlingHttpProxy, pushed: tuple[BuiltImage, str]) -> None:
    image, repo = pushed
    layer = image.layers[0]
    blob = f"/v2/{repo}/blobs/{layer.digest}"
    proxy.hold()  # admitted transfers stay open (headers sent, body held) until release()

    def get(_: int) -> tuple[int, str | None, bytes]:
        conn = _conn(proxy)
        response, body = _call(conn, "GET", blob)
        conn.close()
        return response.status, response.getheader("Retry-After"), body

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(get, n) for n in range(6)]
        deadline = time.monotonic() + 10
        while sum(f.done() for f in futures) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.active_transfers == 4
        assert sum(f.done() for f in futures) == 2  # the two above 4 were answered at once

        # Meanwhile HEAD and manifests pass; another blob GET is throttled.
        side = _conn(proxy)
        head, _ = _call(side, "HEAD", blob)
        assert head.status == 200 and head.getheader("Content-Length") == str(layer.size)
        manifest, raw = _call(side, "GET", f"/v2/{repo}/manifests/v1", headers={"Accept": image.manifest.media_type})
        assert manifest.status == 200 and raw == image.manifest_bytes
        throttled, body = _call(side, "GET", blob)
        _assert_throttled(throttled, body)
        head_again, _ = _call(side, "HEAD", blob)  # the throttled connection is still usable
        assert head_again.status == 200

        proxy.release()
        results = [f.result(timeout=30) for f in futures]

    assert sorted(status for status, _, _ in results) == [200] * 4 + [429] * 2
    for status, retry_after, body in results:
        if status == 200:
            assert _sha256(body) == layer.digest
        else:
            assert retry_after == "1"
            assert json.loads(body)["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert proxy.wait_transfers(0)
    stats = proxy.stats()
    assert (stats.throttled, stats.transfers, stats.peak_transfers, stats.active_transfers) == (3, 4, 4, 0)
    assert stats.requests == 6 + 4


def test_throttled_uploads_and_knobs(proxy: ThrottlingHttpProxy, pushed: tuple[BuiltImage, str]) -> None:
    image, repo = pushed
    blob = f"/v2/{repo}/blobs/{image.layers[0].digest}"
    proxy.max_transfers = 1
    proxy.retry_after = 7
    proxy.hold()
    holder = _conn(proxy)
    holder.request("GET", blob)
    held = holder.getresponse()
    assert held.status == 200 and proxy.active_transfers == 1

    conn = _conn(proxy)
    post, body = _call(conn, "POST", f"/v2/{repo}/blobs/uploads/")
    _assert_throttled(post, body, retry_after=7)
    # A throttled PUT with a body: the body is read and dropped, the connection stays usable.
    put, body = _call(conn, "PUT", f"/v2/{repo}/blobs/uploads/x?digest=sha256:00", b"x" * 300_000, OCTET)
    _assert_throttled(put, body, retry_after=7)
    patch, body = _call(conn, "PATCH", f"/v2/{repo}/blobs/uploads/x", iter([b"y" * 100_000]), OCTET, chunked=True)
    _assert_throttled(patch, body, retry_after=7)
    # Expect: 100-continue: the 429 comes at once, before any body, and the connection closes.
    expect = _conn(proxy)
    expect.putrequest("PUT", f"/v2/{repo}/blobs/uploads/x?digest=sha256:00")
    expect.putheader("Content-Length", "1000")
    expect.putheader("Expect", "100-continue")
    expect.endheaders()
    early = expect.getresponse()
    _assert_throttled(early, early.read(), retry_after=7)
    assert early.getheader("Connection") == "close"
    expect.close()

    proxy.max_transfers = None  # knobs apply to requests that arrive from now on
    post, _ = _call(conn, "POST", f"/v2/{repo}/blobs/uploads/")
    assert post.status == 202
    proxy.release()
    assert _sha256(held.read()) == image.layers[0].digest
    holder.close()
    conn.close()
    assert proxy.wait_transfers(0)
    assert (proxy.throttled, proxy.peak_transfers) == (4, 2)


def test_stop_with_a_held_transfer(plain_registry: RunningRegistry, pushed: tuple[BuiltImage, str]) -> None:
    image, repo = pushed
    proxy = ThrottlingHttpProxy(plain_registry).start()
    proxy.hold()
    conn = _conn(proxy)
    conn.request("GET", f"/v2/{repo}/blobs/{image.layers[0].digest}")
    response = conn.getresponse()
    assert response.status == 200
    started = time.monotonic()
    stopper = threading.Thread(target=proxy.stop)
    stopper.start()
    stopper.join(timeout=15)
    assert not stopper.is_alive() and time.monotonic() - started < 10
    with pytest.raises((http.client.IncompleteRead, OSError)):
        response.read()
    conn.close()
    proxy.stop()  # twice is fine


def test_large_blob_streams(
    proxy: ThrottlingHttpProxy, plain_registry: RunningRegistry, sample_image: SampleImages, unique_repo: str
) -> None:
    image = sample_image([24 * MIB], random_source="urandom", compresslevel=0)
    skopeo.copy(image.source, f"docker://{proxy.ref(unique_repo)}:v1", dest_registry=plain_registry)
    conn = _conn(proxy)
    conn.request("GET", f"/v2/{unique_repo}/blobs/{image.layers[0].digest}")
    response = conn.getresponse()
    digest = hashlib.sha256()
    while piece := response.read(MIB):
        digest.update(piece)
    assert f"sha256:{digest.hexdigest()}" == image.layers[0].digest


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v2/a/b/manifests/v1", True),
        ("HEAD", "/v2/a/manifests/sha256:" + "0" * 64, True),
        ("GET", "/v2/a/manifests/v1?x=1", True),
        ("PUT", "/v2/a/manifests/v1", False),
        ("DELETE", "/v2/a/manifests/v1", False),
        ("GET", "/v2/a/blobs/sha256:" + "0" * 64, False),
        ("GET", "/v2/a/tags/list", False),
        ("GET", "/v2/", False),
    ],
)
def test_what_counts_as_a_manifest_request(method: str, path: str, expected: bool) -> None:
    assert is_manifest_request(method, path) is expected


def _rate_headers(response: http.client.HTTPResponse) -> dict[str, str]:
    return {k: v for k, v in response.getheaders() if k.lower().startswith("ratelimit-")}


def test_rate_limit_knob_off_sends_no_headers_but_counts(proxy: ThrottlingHttpProxy, pushed: tuple[BuiltImage, str]):
    image, repo = pushed
    conn = _conn(proxy)
    accept = {"Accept": image.manifest.media_type}
    head, _ = _call(conn, "HEAD", f"/v2/{repo}/manifests/v1", headers=accept)
    get, raw = _call(conn, "GET", f"/v2/{repo}/manifests/v1", headers=accept)
    assert head.status == get.status == 200 and raw == image.manifest_bytes
    assert _rate_headers(head) == _rate_headers(get) == {}
    assert (proxy.manifest_gets, proxy.manifest_heads) == (1, 1)
    assert [(r.method, r.status, r.remaining) for r in proxy.manifest_requests()] == [("HEAD", 200, None),
                                                                                      ("GET", 200, None)]  # fmt: skip
    proxy.reset_counters()
    assert proxy.manifest_requests() == [] and proxy.manifest_gets == 0


def test_rate_limit_knob_gets_count_heads_do_not(proxy: ThrottlingHttpProxy, pushed: tuple[BuiltImage, str]) -> None:
    image, repo = pushed
    proxy.rate_limit = RateLimitHeaders(limit=100, remaining=2, window=21600, reset=7)
    conn = _conn(proxy)
    accept = {"Accept": image.manifest.media_type}
    manifest, digest_path = f"/v2/{repo}/manifests/v1", f"/v2/{repo}/manifests/{image.manifest_digest}"

    head, _ = _call(conn, "HEAD", manifest, headers=accept)
    assert _rate_headers(head) == {"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "2;w=21600",
                                   "RateLimit-Reset": "7"}  # fmt: skip
    seen = []
    for path in (manifest, digest_path, manifest):  # 2 -> 1 -> 0 -> 0: never below 0, and nothing is refused
        get, raw = _call(conn, "GET", path, headers=accept)
        assert get.status == 200 and raw == image.manifest_bytes
        seen.append(get.getheader("RateLimit-Remaining"))
    assert seen == ["1;w=21600", "0;w=21600", "0;w=21600"]
    missing, _ = _call(conn, "GET", f"/v2/{repo}/manifests/nope", headers=accept)  # a 404 counts too
    assert missing.status == 404 and missing.getheader("RateLimit-Remaining") == "0;w=21600"
    head, _ = _call(conn, "HEAD", manifest, headers=accept)
    assert head.getheader("RateLimit-Remaining") == "0;w=21600"
    assert (proxy.manifest_gets, proxy.manifest_heads, proxy.rate_limit.remaining) == (4, 2, 0)
    times = [r.at for r in proxy.manifest_requests()]
    assert times == sorted(times)

    # Not on blobs, tags or /v2/, and the tool's parser reads what is sent.
    blob, _ = _call(conn, "GET", f"/v2/{repo}/blobs/{image.layers[0].digest}")
    tags, _ = _call(conn, "GET", f"/v2/{repo}/tags/list")
    assert _rate_headers(blob) == _rate_headers(tags) == {} and proxy.manifest_gets == 4
    proxy.rate_limit.remaining = 50
    proxy.rate_limit.reset = None
    head, _ = _call(conn, "HEAD", manifest, headers=accept)
    assert "RateLimit-Reset" not in _rate_headers(head)
    parsed = parse_rate_limit(httpx.Headers(head.getheaders()), now=123.0)
    assert parsed is not None
    assert (parsed.limit, parsed.remaining, parsed.window_seconds, parsed.reset_seconds) == (100, 50, 21600.0, None)

    proxy.rate_limit = RateLimitHeaders(limit=10, remaining=10, window=None, reset=3)
    get, _ = _call(conn, "GET", manifest, headers=accept)
    assert _rate_headers(get) == {"RateLimit-Limit": "10", "RateLimit-Remaining": "9", "RateLimit-Reset": "3"}
    conn.close()
    with pytest.raises(ValueError):
        RateLimitHeaders(remaining=-1)

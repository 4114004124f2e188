# mypy: allow-untyped-defs, allow-untyped-calls, allow-incomplete-defs
"""Rate-limit headers (Docker Hub's and the IETF draft's) and what the client remembers of them."""

import dataclasses
from email.utils import formatdate

import httpx
import pytest

from docker_image_pusher.errors import RegistryError
from docker_image_pusher.media_types import OCI_MANIFEST
from docker_image_pusher.registry import RateLimit, RegistryClient
from docker_image_pusher.registry._rate_limit import parse_rate_limit

NOW = 1_700_000_000.0
OCI_BODY = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}
HUB = {"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "76;w=21600", "docker-ratelimit-source": "192.0.2.7"}


def parse(headers):
    return parse_rate_limit(httpx.Headers(headers), NOW)


# -- parsing --------------------------------------------------------------------------------------------------


def test_docker_hub_headers():
    assert parse(HUB) == RateLimit(limit=100, remaining=76, window_seconds=21600.0, reset_seconds=None, observed_at=NOW)


def test_header_names_are_case_insensitive_and_the_window_is_optional():
    got = parse({"ratelimit-limit": "200", "RATELIMIT-REMAINING": " 3 "})
    assert got == RateLimit(limit=200, remaining=3, window_seconds=None, reset_seconds=None, observed_at=NOW)


def test_the_window_may_come_from_the_remaining_header_or_a_quota_policy():
    got = parse({"RateLimit-Limit": "10", "RateLimit-Remaining": "5;w=60"})
    assert got is not None and got.window_seconds == 60
    got = parse({"RateLimit-Limit": "100, 10;w=1, 100;w=3600", "RateLimit-Remaining": "40"})
    assert got is not None and (got.limit, got.remaining, got.window_seconds) == (100, 40, 3600)


@pytest.mark.parametrize(
    ("reset", "retry_after", "expected"),
    [
        ("30", None, 30.0),
        ("2.5", "99", 2.5),  # RateLimit-Reset wins
        (str(int(NOW) + 120), None, 120.0),  # a Unix timestamp, as some servers send
        (None, "45", 45.0),  # a 429's Retry-After
        (None, formatdate(NOW + 600, usegmt=True), 600.0),
        ("soon", None, None),
        (None, None, None),
    ],
)
def test_reset_from_ratelimit_reset_or_retry_after(reset, retry_after, expected):
    headers = dict(HUB)
    if reset is not None:
        headers["RateLimit-Reset"] = reset
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    got = parse(headers)
    assert got is not None and got.reset_seconds == expected


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"RateLimit-Limit": "100;w=21600"},
        {"RateLimit-Remaining": "76;w=21600"},
        {"RateLimit-Limit": "lots", "RateLimit-Remaining": "76"},
        {"RateLimit-Limit": "100", "RateLimit-Remaining": "-1"},
        {"RateLimit-Limit": "1e3", "RateLimit-Remaining": "5"},
        {"RateLimit-Limit": b"\xb2", "RateLimit-Remaining": "5"},  # a digit (latin-1 "²"), but not an ASCII one
        {"RateLimit-Limit": "9" * 400, "RateLimit-Remaining": "5"},
        {"RateLimit-Limit": "", "RateLimit-Remaining": ""},
        {"RateLimit-Limit": ";w=60", "RateLimit-Remaining": "5;w=60"},
    ],
)
def test_missing_or_garbled_headers_give_none(headers):
    assert parse(headers) is None


def test_a_garbled_window_only_loses_the_window():
    got = parse({"RateLimit-Limit": "100;w=six hours", "RateLimit-Remaining": "7"})
    assert got == RateLimit(limit=100, remaining=7, window_seconds=None, reset_seconds=None, observed_at=NOW)


def test_a_rate_limit_is_frozen_and_keeps_no_source_address():
    got = parse(HUB)
    assert got is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.remaining = 0
    assert "192.0.2.7" not in repr(got)


# -- what the client remembers ----------------------------------------------------------------------------------


def test_no_rate_limit_is_known_before_a_manifest_answer(fake):
    fake.manifest_headers.update(HUB)
    with fake.client() as client:
        client.ping()
        assert client.rate_limit is None


def test_get_manifest_records_the_rate_limit(fake, clock):
    fake.add_manifest("team/app", "v1", OCI_BODY, OCI_MANIFEST)
    fake.manifest_headers.update(HUB)
    with fake.client(clock=clock) as client:
        client.get_manifest("team/app", "v1")
        assert client.rate_limit == RateLimit(
            limit=100, remaining=76, window_seconds=21600.0, reset_seconds=None, observed_at=clock.now
        )


def test_head_manifest_records_the_rate_limit_and_still_answers_none_for_404(clock):
    remaining = iter(["199", "198"])

    def handler(request):
        if request.url.path == "/v2/":
            return httpx.Response(200)
        headers = {"ratelimit-limit": "200;w=21600", "ratelimit-remaining": f"{next(remaining)};w=21600"}
        if request.url.path.endswith("/nope"):
            return httpx.Response(404, headers=headers)
        return httpx.Response(200, headers={"Content-Type": OCI_MANIFEST, "Content-Length": "10", **headers})

    with RegistryClient("https://r.example", transport=httpx.MockTransport(handler), clock=clock) as client:
        assert client.head_manifest("team/app", "v1") is not None
        assert client.rate_limit is not None and client.rate_limit.remaining == 199
        clock.advance(1)
        assert client.head_manifest("team/app", "nope") is None
        assert client.rate_limit == RateLimit(
            limit=200, remaining=198, window_seconds=21600.0, reset_seconds=None, observed_at=clock.now
        )


def limited(request):
    if request.url.path == "/v2/":
        return httpx.Response(200)
    headers = {"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "0;w=21600", "Retry-After": "3600"}
    body = {"errors": [{"code": "TOOMANYREQUESTS", "message": "You have reached your pull rate limit."}]}
    return httpx.Response(429, headers=headers, json=body)


@pytest.mark.parametrize("method", ["get_manifest", "head_manifest"])
def test_a_429_raises_a_temporary_error_and_records_the_exhausted_limit(method, clock):
    with RegistryClient("https://r.example", transport=httpx.MockTransport(limited), clock=clock) as client:
        with pytest.raises(RegistryError) as caught:
            getattr(client, method)("library/nginx", "latest")
        assert client.rate_limit == RateLimit(
            limit=100, remaining=0, window_seconds=21600.0, reset_seconds=3600.0, observed_at=clock.now
        )
    assert caught.value.temporary and caught.value.status == 429 and caught.value.retry_after == 3600


def test_an_answer_without_rate_limit_headers_keeps_the_last_one(fake):
    fake.add_manifest("team/app", "v1", OCI_BODY, OCI_MANIFEST)
    fake.manifest_headers.update(HUB)
    with fake.client() as client:
        client.head_manifest("team/app", "v1")
        seen = client.rate_limit
        fake.manifest_headers.clear()
        client.get_manifest("team/app", "v1")
        assert seen is not None and client.rate_limit == seen


def test_an_older_observation_does_not_replace_a_newer_one(fake, clock):
    fake.add_manifest("team/app", "v1", OCI_BODY, OCI_MANIFEST)
    fake.manifest_headers.update({"RateLimit-Limit": "100", "RateLimit-Remaining": "50"})
    with fake.client(clock=clock) as client:
        client.head_manifest("team/app", "v1")
        fake.manifest_headers["RateLimit-Remaining"] = "60"
        clock.advance(-5)  # a thread whose answer is reported late
        client.head_manifest("team/app", "v1")
        assert client.rate_limit is not None and client.rate_limit.remaining == 50


def test_blob_answers_do_not_touch_the_rate_limit():
    def handler(request):
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(200, headers={"Content-Length": "3", **HUB})

    with RegistryClient("https://r.example", transport=httpx.MockTransport(handler)) as client:
        assert client.head_blob("a/b", "sha256:" + "0" * 64) == 3
        assert client.rate_limit is None

# mypy: allow-untyped-defs, allow-untyped-calls, allow-incomplete-defs
import ssl

import httpx
import pytest

from docker_image_pusher.errors import RegistryError, TransferError, UsageError
from docker_image_pusher.registry import RegistryClient


def test_http_client_configuration():
    with RegistryClient("https://r.example") as client:
        http = client._http
        assert http.timeout == httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=None)
        assert http.follow_redirects is True
        assert http.headers["User-Agent"] == "docker-image-pusher"
        pool = http._transport._pool  # type: ignore[attr-defined]
        assert pool._max_connections >= 16 and pool._max_keepalive_connections >= 16
        assert pool._http1 is True and pool._http2 is False


@pytest.mark.parametrize(
    "url", ["ftp://r.example", "r.example", "https://r.example/v2/", "https://u:p@r.example", "https://r.example?x=1"]
)
def test_bad_base_urls_are_usage_errors(url):
    with pytest.raises(UsageError):
        RegistryClient(url)


def test_verify_with_a_missing_ca_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        RegistryClient("https://r.example", verify=str(tmp_path / "nope.pem"))


def fallback_transport(https_error):
    seen = []

    def handler(request):
        seen.append(str(request.url))
        if request.url.scheme == "https":
            raise https_error
        return httpx.Response(200, headers={"Content-Length": "0"})

    return seen, httpx.MockTransport(handler)


@pytest.mark.parametrize("host", ["localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000"])
def test_loopback_hosts_fall_back_to_plain_http(host):
    seen, transport = fallback_transport(httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number"))
    with RegistryClient.for_host(host, scheme=None, transport=transport) as client:
        client.ping()
        assert client.base_url == f"http://{host}"
        assert client.head_blob("a/b", "sha256:" + "0" * 64) == 0
    assert seen[0].startswith("https://") and all(s.startswith("http://") for s in seen[1:])


def test_other_hosts_do_not_fall_back():
    seen, transport = fallback_transport(httpx.ConnectError("connection refused"))
    with (
        RegistryClient.for_host("r.example", scheme=None, transport=transport) as client,
        pytest.raises(TransferError) as info,
    ):
        client.ping()
    assert info.value.temporary and len(seen) == 1


def test_an_explicit_scheme_does_not_fall_back():
    seen, transport = fallback_transport(httpx.ConnectError("connection refused"))
    with (
        RegistryClient.for_host("localhost:5000", scheme="https", transport=transport) as client,
        pytest.raises(TransferError),
    ):
        client.ping()
    assert len(seen) == 1


def test_when_both_fail_the_certificate_problem_is_reported():
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    error = httpx.ConnectError(str(cause))
    error.__cause__ = cause

    def handler(request):
        if request.url.scheme == "https":
            raise error
        raise httpx.RemoteProtocolError("Server disconnected")

    with (
        RegistryClient.for_host("localhost:5000", transport=httpx.MockTransport(handler)) as client,
        pytest.raises(TransferError, match="--skip-tls") as info,
    ):
        client.ping()
    assert not info.value.temporary
    assert client.base_url == "https://localhost:5000"


def test_ping_records_the_challenge_without_authenticating(fake):
    fake.auth = "bearer"
    with fake.client_with_credentials() as client:
        client.ping()
        assert client._auth.challenge is not None and client._auth.challenge.scheme == "bearer"
    assert fake.token_requests == []


def test_ping_of_something_that_is_not_a_registry():
    with (
        RegistryClient("https://r.example", transport=httpx.MockTransport(lambda r: httpx.Response(404))) as client,
        pytest.raises(RegistryError, match="does not serve the registry API"),
    ):
        client.ping()


def test_requests_ping_first_once(fake):
    fake.add_blob(b"x")
    with fake.client() as client:
        for _ in range(3):
            client.head_blob("a/b", fake.sha256(b"x"))
    assert [r.url.path for r in fake.requests].count("/v2/") == 1


def test_invalid_scheme_is_a_usage_error():
    with pytest.raises(UsageError):
        RegistryClient.for_host("r.example", scheme="ftp")

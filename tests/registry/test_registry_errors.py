# mypy: allow-untyped-defs, allow-untyped-calls, allow-incomplete-defs
import errno
import ssl
import time
from email.utils import formatdate

import httpx
import pytest

from docker_image_pusher.errors import RegistryAuthError, RegistryError, RegistryNotFoundError, TransferError
from docker_image_pusher.registry import RegistryClient
from docker_image_pusher.registry._errors import (
    error_from_response,
    error_from_transport,
    parse_diagnostics,
    parse_retry_after,
)


def client_answering(handler):
    return RegistryClient("https://r.example", transport=httpx.MockTransport(handler))


def answer(status, **kwargs):
    def handler(request):
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(status, **kwargs)

    return handler


def test_manifest_unknown_is_not_found_with_the_code():
    body = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown", "detail": {"Tag": "v9"}}]}
    with client_answering(answer(404, json=body)) as client, pytest.raises(RegistryNotFoundError) as info:
        client.get_manifest("team/app", "v9")
    error = info.value
    assert error.exit_code == 4 and error.status == 404 and error.codes == ("MANIFEST_UNKNOWN",)
    assert "team/app:v9" in error.message and "no such manifest" in error.message
    assert not error.temporary


def test_name_unknown_and_blob_unknown_are_named():
    body = {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}]}
    with client_answering(answer(404, json=body)) as client, pytest.raises(RegistryNotFoundError, match="no such repo"):
        client.get_manifest("team/app", "v1")
    body = {"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]}
    with client_answering(answer(404, json=body)) as client, pytest.raises(RegistryNotFoundError, match="no such blob"):
        client.download_blob(
            "team/app", "sha256:" + "a" * 64, __import__("pathlib").Path("/nonexistent/x"), expected_size=None
        )


def test_head_manifest_and_head_blob_return_none_on_404():
    with client_answering(answer(404)) as client:
        assert client.head_manifest("team/app", "v1") is None
        assert client.head_blob("team/app", "sha256:" + "a" * 64) is None


def test_denied_names_the_repository_and_the_action():
    body = {"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]}
    with client_answering(answer(403, json=body)) as client, pytest.raises(RegistryAuthError) as info:
        client.put_manifest("team/app", "v1", b"{}", "application/vnd.oci.image.manifest.v1+json")
    assert "push manifest team/app:v1" in info.value.message
    assert "DENIED" in info.value.message and info.value.exit_code == 3


def test_429_with_retry_after_seconds_is_temporary():
    body = {"errors": [{"code": "TOOMANYREQUESTS", "message": "You have reached your pull rate limit."}]}
    with (
        client_answering(answer(429, json=body, headers={"Retry-After": "3600"})) as client,
        pytest.raises(RegistryError) as info,
    ):
        client.get_manifest("library/nginx", "latest")
    error = info.value
    assert error.temporary and error.retry_after == 3600.0  # no small cap
    assert "rate limited" in error.message and "3600" in error.message


def test_503_with_retry_after_http_date():
    when = formatdate(time.time() + 120, usegmt=True)
    with client_answering(answer(503, headers={"Retry-After": when})) as client, pytest.raises(RegistryError) as info:
        client.head_blob("team/app", "sha256:" + "b" * 64)
    assert info.value.temporary
    assert info.value.retry_after is not None and 110 <= info.value.retry_after <= 121


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_temporary_statuses(status):
    with client_answering(answer(status, text="<html>oops</html>")) as client, pytest.raises(RegistryError) as info:
        client.get_manifest("a/b", "v1")
    assert info.value.temporary and info.value.status == status and info.value.diagnostics == ()


@pytest.mark.parametrize("status", [400, 405, 409, 418])
def test_other_statuses_are_permanent(status):
    with client_answering(answer(status)) as client, pytest.raises(RegistryError) as info:
        client.get_manifest("a/b", "v1")
    assert not info.value.temporary


def test_parse_retry_after():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("86400") == 86400.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    for junk in (None, "", "soon", "nan", "inf", "Wed, 99 Foo"):
        assert parse_retry_after(junk) is None


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"errors": "x"}', b'{"errors": [1, null, {"code": 5}]}', b"\xff\xfe", b"[" * 100000],
)
def test_garbage_error_bodies_are_tolerated(body):
    diagnostics = parse_diagnostics(body)
    assert isinstance(diagnostics, tuple)


def test_diagnostic_messages_are_one_line_and_bounded():
    body = b'{"errors": [{"code": "X", "message": "line one\\nline two ' + b"y" * 1000 + b'"}]}'
    [diag] = parse_diagnostics(body)
    assert "\n" not in diag.message and len(diag.message) <= 300


def test_token_service_error_shapes_are_read():
    assert parse_diagnostics(b'{"details": "incorrect username or password"}')[0].message == (
        "incorrect username or password"
    )


def test_connection_errors_are_temporary_transfer_errors():
    def handler(request):
        raise httpx.ConnectError("[Errno 111] Connection refused")

    with client_answering(handler) as client, pytest.raises(TransferError) as info:
        client.get_manifest("a/b", "v1")
    assert info.value.temporary and info.value.exit_code == 5
    assert "r.example" in info.value.message


def test_timeouts_are_temporary():
    error = error_from_transport(httpx.ReadTimeout("timed out"), action="pull x", url="https://r.example/v2/")
    assert error.temporary and "read timeout" in error.message


def test_a_connection_cut_off_is_named_as_closed_or_reset():
    for text in ("Server disconnected without sending a response.", "peer closed connection without sending "
                 "complete message body"):  # fmt: skip
        error = error_from_transport(httpx.RemoteProtocolError(text), action="push x", url="http://r.example/v2/")
        assert error.temporary and "network error talking to r.example" in error.message
        assert "closed or reset" in error.message, error.message


def test_a_reset_or_broken_pipe_from_the_socket_is_named_as_closed_or_reset():
    for wrapped in (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
                    BrokenPipeError(errno.EPIPE, "Broken pipe")):  # fmt: skip
        for exc in (httpx.WriteError(str(wrapped)), httpx.ReadError(str(wrapped))):
            exc.__cause__ = wrapped
            error = error_from_transport(exc, action="push x", url="http://r.example/v2/")
            assert error.temporary and "closed or reset" in error.message, error.message
            assert "Errno" not in error.message
        bare = httpx.ReadError(str(wrapped))  # httpx may keep only the text
        assert "closed or reset" in error_from_transport(bare, action="push x", url="http://r.example/v2/").message


def test_other_network_errors_keep_their_own_words():
    error = error_from_transport(httpx.ConnectError("[Errno 111] Connection refused"), action="pull x",
                                 url="http://r.example/v2/")  # fmt: skip
    assert "Connection refused" in error.message and "reset" not in error.message


def test_tls_verification_failure_is_permanent_and_suggests_a_fix():
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    try:
        try:
            raise cause
        except ssl.SSLError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as exc:
        error = error_from_transport(exc, action="reach the registry", url="https://r.example/v2/")
    assert not error.temporary
    assert "--skip-tls" in error.message and "CA" in error.message


def test_error_from_response_reads_a_streamed_body_partially():
    big = b'{"errors": [{"code": "X", "message": "m"}]}' + b" " * (1 << 20)
    request = httpx.Request("GET", "https://r.example/v2/a/manifests/b")
    response = httpx.Response(500, stream=httpx.ByteStream(big), request=request)
    error = error_from_response(response, action="pull a:b")
    assert error.codes == ("X",)

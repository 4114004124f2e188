# mypy: allow-untyped-defs, allow-untyped-calls, allow-incomplete-defs
import base64
import io
import logging

import httpx
import pytest

from docker_image_pusher.errors import PusherError
from docker_image_pusher.registry import Credentials, RegistryClient
from docker_image_pusher.registry._redact import LOGGER_NAME, redact_headers, redact_text, redact_url


def test_redact_url_hides_secrets_in_the_query_and_user_info():
    url = "https://bob:pw@r.example/v2/a/blobs/uploads/1?_state=SECRETSTATE&digest=sha256:ab&X-Amz-Signature=SIG#frag"
    shown = redact_url(url)
    assert "SECRETSTATE" not in shown and "SIG" not in shown and "pw" not in shown and "frag" not in shown
    assert "digest=sha256:ab" in shown and "/v2/a/blobs/uploads/1" in shown


def test_redact_headers():
    shown = redact_headers(httpx.Headers({"Authorization": "Bearer abc.def.ghi", "Accept": "x", "Cookie": "c=1"}))
    assert shown == {"authorization": "REDACTED", "accept": "x", "cookie": "REDACTED"}


def test_redact_text_masks_auth_values_jwts_and_token_pairs():
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJhY2Nlc3MiOltdfQ.c2ln"
    text = (
        f'Authorization: Bearer opaque-token-1234 {jwt} {{"token": "tok-xyz", "access_token":"a1b2"}} '
        "password=hunter22 Location: /v2/a/blobs/uploads/u?_state=S3CR3T"
    )
    shown = redact_text(text, secrets=["extra-secret"])
    for secret in ("opaque-token-1234", jwt, "tok-xyz", "a1b2", "hunter22", "S3CR3T"):
        assert secret not in shown
    assert redact_text("contains extra-secret here", ["extra-secret"]) == "contains REDACTED here"


def test_trace_hook_logs_method_redacted_url_and_status(fake, caplog):
    fake.add_manifest("team/app", "v1", b"{}", "application/json")
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME), fake.client() as client:
        client.get_manifest("team/app", "v1")
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]
    assert "-> GET https://registry.example/v2/team/app/manifests/v1" in lines
    assert "<- 200 GET https://registry.example/v2/team/app/manifests/v1" in lines


def test_secrets_never_appear_in_errors_or_logs(fake, caplog, tmp_path):
    """Drive a whole session (token auth, uploads with _state, a CDN redirect, failures) and grep everything."""
    fake.auth = "bearer"
    fake.redirect_blobs = True
    blob = b"layer" * 100_000
    digest = fake.add_blob(blob)
    errors: list[PusherError] = []
    with caplog.at_level(logging.DEBUG):  # every logger: ours, httpx's, httpcore's
        with fake.client_with_credentials() as client:
            client.authenticate("team/app", push=True)
            client.download_blob("team/app", digest, tmp_path / "blob", expected_size=len(blob))
            data = b"new layer" * 1000
            client.upload_blob(
                "team/app", fake.sha256(data), len(data), lambda o: io.BytesIO(data[o:]), chunk_size=4000
            )
            for call in (
                lambda: client.get_manifest("team/app", "missing"),
                lambda: client.upload_blob("team/app", fake.sha256(b"x"), 2, lambda o: io.BytesIO(b"xy"[o:])),
            ):
                try:
                    call()
                except PusherError as exc:
                    errors.append(exc)
        with fake.client(credentials=Credentials(fake.user, "wrong-" + fake.password)) as client:
            try:
                client.authenticate("team/app")
            except PusherError as exc:
                errors.append(exc)
    assert len(errors) == 3
    secrets = [fake.password, base64.b64encode(f"{fake.user}:{fake.password}".encode()).decode(), "CDNSECRET"]
    secrets += list(fake.tokens)
    secrets += [u.state for u in fake.uploads.values()] + [
        r.url.params["_state"] for r in fake.requests if "_state" in r.url.params
    ]
    haystack = "\n".join(
        [r.getMessage() for r in caplog.records]
        + [str(e) for e in errors]
        + [repr(e) for e in errors]
        + [repr(e.args) for e in errors]
    )
    assert "_state=REDACTED" in haystack and "HTTP Request: PATCH" in haystack  # the logs were captured
    for secret in secrets:
        assert secret not in haystack, secret


def test_client_repr_has_no_credentials():
    client = RegistryClient(
        "https://r.example",
        credentials=Credentials("u", "pw-123456"),
        transport=httpx.MockTransport(lambda r: httpx.Response(200)),
    )
    assert "pw-123456" not in repr(client) and "pw-123456" not in repr(client._auth.__dict__.get("_credentials"))


@pytest.mark.parametrize("value", ["", "no secrets here", "https://r.example/v2/?"])
def test_redact_text_leaves_plain_text_alone(value):
    assert redact_text(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "cannot pull manifest smoke/token:nope",
        "repository:team/token:pull,push",
        'Www-Authenticate: Basic realm="basic-realm"',
        'Bearer realm="https://auth.example/token",service="r"',
    ],
)
def test_redact_text_does_not_mangle_names_or_challenges(value):
    assert redact_text(value) == value

"""Hostile registry answers (redirects, challenges, headers, error bodies) from a scripted registry: one
error line with the status or the refused target, a distinct exit code, no credentials where they do not
belong, and the cache as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cli.conftest import Cli
from rig.hostile_registry import Answer, HostileRegistry, SeenRequest, json_answer

from .conftest import pull_args, refused, run_and_check_cache

REPO = "team/app"
MANIFEST = f"/v2/{REPO}/manifests/v1"


def _redirect(location: str, status: int = 302) -> Answer:
    return Answer(status, [("Location", location)])


def _endless_redirects(fake: HostileRegistry) -> None:
    fake.route(MANIFEST, _redirect("/hop/1"))
    fake.route_prefix("/hop/", lambda r: _redirect(f"/hop/{int(r.path.rsplit('/', 1)[1]) + 1}", 307))


def _redirect_to_itself(fake: HostileRegistry) -> None:
    fake.route(MANIFEST, _redirect(MANIFEST, 301))


def _redirect_to_cloud_metadata(fake: HostileRegistry) -> None:
    fake.route(MANIFEST, _redirect("http://169.254.169.254/latest/meta-data/iam/security-credentials/"))


def _redirect_to_link_local_ipv6(fake: HostileRegistry) -> None:
    fake.route(MANIFEST, _redirect("http://[fe80::1]:8080/blob"))


def _redirect_to_a_file(fake: HostileRegistry) -> None:
    fake.route(MANIFEST, _redirect("file:///etc/passwd"))


def _challenge(value: str) -> Callable[[HostileRegistry], None]:
    def script(fake: HostileRegistry) -> None:
        fake.route("/v2/", Answer(401, [("WWW-Authenticate", value)], b'{"errors":[]}'))

    return script


def _enormous_header(fake: HostileRegistry) -> None:
    fake.route(MANIFEST, Answer(200, [("Content-Type", "application/json"), ("X-Padding", "x" * (1 << 20))], b"{}"))


def _error(status: int, body: bytes | None = None, fill: int = 0) -> Callable[[HostileRegistry], None]:
    def script(fake: HostileRegistry) -> None:
        fake.route(
            MANIFEST,
            Answer(status, [("Content-Type", "application/json")], body or b"", (b"<", fill) if fill else None),
        )

    return script


def _token_service_garbage(fake: HostileRegistry) -> None:
    fake.route("/v2/", Answer(401, [("WWW-Authenticate", f'Bearer realm="{fake.url}/token",service="fake"')]))
    fake.route_prefix("/token", Answer(200, [("Content-Type", "application/json")], b"<html>login</html>"))


# id -> (script, exit code, what the one error line must say)
CASES: dict[str, tuple[Callable[[HostileRegistry], None], int, str]] = {
    "endless-redirects": (_endless_redirects, 5, "too many redirects"),
    "redirect-to-itself": (_redirect_to_itself, 5, "too many redirects"),
    "redirect-to-cloud-metadata": (_redirect_to_cloud_metadata, 5, "to the link-local address http://169.254.169.254"),
    "redirect-to-link-local-ipv6": (_redirect_to_link_local_ipv6, 5, "to the link-local address http://[fe80::1]"),
    "redirect-to-a-file": (_redirect_to_a_file, 5, "to a non-http(s) location 'file:///etc/passwd'"),
    "challenge-unterminated-quote": (_challenge('Bearer realm="https://auth'), 5, "unterminated quoted string"),
    "challenge-binary-garbage": (_challenge("\x01\x02=,,=;;"), 5, "cannot parse the registry's WWW-Authenticate"),
    "challenge-bearer-without-realm": (_challenge('Bearer service="x"'), 5, "named no token service (no realm)"),
    "challenge-realm-not-http": (_challenge('Bearer realm="ftp://auth.example/token"'), 5, "unusable token service"),
    "token-service-answers-html": (_token_service_garbage, 5, "answered without a token"),
    "enormous-header": (_enormous_header, 5, "network error talking to 127.0.0.1"),
    "500-html-body": (_error(500, b"<html>oops</html>"), 5, "HTTP 500 Internal Server Error"),
    "404-html-body": (_error(404, b"<h1>Not Found</h1>"), 4, "HTTP 404 Not Found"),
    "403-not-json": (_error(403, b"\xff\xfe garbage"), 3, "HTTP 403 Forbidden"),
    "400-errors-not-a-list": (_error(400, b'{"errors": "nope"}'), 5, "HTTP 400 Bad Request"),
    "418-50-mb-error-body": (_error(418, fill=50 << 20), 5, "HTTP 418"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_registry_answer_is_one_clear_error(
    case: str, cli_with_server: Cli, fake: HostileRegistry, seeded_cache: Path
) -> None:
    script, exit_code, fragment = CASES[case]
    script(fake)
    r = run_and_check_cache(cli_with_server, seeded_cache, *pull_args(fake, REPO, "v1", seeded_cache))
    refused(r, exit_code, fragment)
    assert len(fake.requests_to("/hop/")) <= 10  # the endless redirect: at most 10 hops were followed


def _basic_auth(answer: Answer) -> Callable[[SeenRequest], Answer]:
    def route(request: SeenRequest) -> Answer:
        if request.headers.get("authorization", "").startswith("Basic "):
            return answer
        return Answer(401, [("WWW-Authenticate", 'Basic realm="fake"')])

    return route


def test_a_bearer_realm_on_another_host_over_plain_http_never_gets_the_credentials(
    cli_with_server: Cli, fake: HostileRegistry, other_host: HostileRegistry, seeded_cache: Path
) -> None:
    fake.route("/v2/", Answer(401, [("WWW-Authenticate", f'Bearer realm="{other_host.url}/token",service="x"')]))
    other_host.route("/token", json_answer({"token": "stolen"}))
    args = [*pull_args(fake, REPO, "v1", seeded_cache), "-u", "alice", "--password-stdin"]
    r = run_and_check_cache(cli_with_server, seeded_cache, *args, input="hunter2-secret\n")
    line = refused(r, 3, f"refusing to send credentials over plain HTTP to the token service {other_host.address}")
    assert "hunter2-secret" not in r.stderr + r.stdout and "hunter2" not in line
    assert other_host.requests == []  # not even a request without the header: nothing reached the realm


def test_a_redirect_to_another_host_is_followed_without_the_credentials(
    cli_with_server: Cli, fake: HostileRegistry, other_host: HostileRegistry, seeded_cache: Path
) -> None:
    wanted = "sha256:" + "1" * 64
    fake.route("/v2/", _basic_auth(json_answer({})))
    fake.route(f"/v2/{REPO}/manifests/{wanted}", _basic_auth(_redirect(f"{other_host.url}/storage/manifest")))
    other_host.route("/storage/manifest", json_answer({"schemaVersion": 2}, content_type="application/json"))
    args = [*pull_args(fake, REPO, wanted, seeded_cache), "-u", "alice", "--password-stdin"]
    r = run_and_check_cache(cli_with_server, seeded_cache, *args, input="hunter2-secret\n")
    refused(r, 6, "the registry served content with digest")  # followed: the other host's body was checked
    assert any("authorization" in seen.headers for seen in fake.requests)  # we did hold credentials
    assert other_host.requests and all("authorization" not in seen.headers for seen in other_host.requests)

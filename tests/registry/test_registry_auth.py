# mypy: allow-untyped-defs, allow-untyped-calls, allow-incomplete-defs
import base64
import json
import threading

import httpx
import pytest

from docker_image_pusher.errors import AuthError, RegistryAuthError, RegistryError
from docker_image_pusher.registry import Credentials, RegistryClient
from docker_image_pusher.registry._auth import RegistryAuth, repository_from_path


def scopes_of(request):
    return sorted(request.url.params.get_list("scope"))


def manifest(fake, repo="team/app", tag="v1"):
    return fake.add_manifest(
        repo,
        tag,
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"},
        "application/vnd.oci.image.manifest.v1+json",
    )


def test_anonymous_bearer_token_request_carries_no_authorization(fake):
    fake.auth = "bearer"
    manifest(fake)
    with fake.client() as client:
        client.get_manifest("team/app", "v1")
    [token_request] = fake.token_requests
    assert "Authorization" not in token_request.headers
    assert token_request.url.params["service"] == fake.host
    assert scopes_of(token_request) == ["repository:team/app:pull"]


def test_bearer_token_request_carries_basic_credentials(fake):
    fake.auth = "bearer"
    fake.allow_anonymous = False
    manifest(fake)
    with fake.client_with_credentials() as client:
        client.get_manifest("team/app", "v1")
    [token_request] = fake.token_requests
    expected = base64.b64encode(f"{fake.user}:{fake.password}".encode()).decode()
    assert token_request.headers["Authorization"] == f"Basic {expected}"
    assert token_request.headers["User-Agent"] == "docker-image-pusher"


def test_bearer_token_is_reused_until_expiry(fake, clock):
    fake.auth = "bearer"
    fake.expires_in = 300
    manifest(fake)
    with fake.client(clock=clock) as client:
        for _ in range(3):
            client.get_manifest("team/app", "v1")
        assert len(fake.token_requests) == 1
        clock.advance(250)  # inside the lifetime, outside the refresh margin (30 s before expiry)
        client.get_manifest("team/app", "v1")
        assert len(fake.token_requests) == 1
        clock.advance(25)  # 275 s: within 30 s of expiry -> refreshed before use
        client.get_manifest("team/app", "v1")
        assert len(fake.token_requests) == 2
    # no request was ever refused: the refresh happened before expiry
    assert all(r.headers.get("Authorization", "").startswith("Bearer ") for r in fake.registry_requests("GET")[1:])


def test_expires_in_defaults_to_60_seconds(fake, clock):
    fake.auth = "bearer"
    fake.expires_in = None
    manifest(fake)
    with fake.client(clock=clock) as client:
        client.get_manifest("team/app", "v1")
        clock.advance(40)
        client.get_manifest("team/app", "v1")
        assert len(fake.token_requests) == 1
        clock.advance(6)  # 46 s > 60 - 15 s margin
        client.get_manifest("team/app", "v1")
        assert len(fake.token_requests) == 2


def test_issued_at_in_the_past_shortens_the_lifetime(fake, clock):
    fake.auth = "bearer"
    fake.expires_in = 300
    fake.issued_at = "2023-11-14T22:09:20Z"  # 200 s before the fake clock's "now" (1700000000 = 22:13:20)
    manifest(fake)
    with fake.client(clock=clock) as client:
        client.get_manifest("team/app", "v1")
        clock.advance(75)  # 275 s after issue: inside the 30 s refresh margin
        client.get_manifest("team/app", "v1")
        assert len(fake.token_requests) == 2


def test_issued_at_from_a_skewed_clock_is_ignored(fake, clock):
    fake.auth = "bearer"
    fake.issued_at = "2030-01-01T00:00:00Z"
    manifest(fake)
    with fake.client(clock=clock) as client:
        client.get_manifest("team/app", "v1")
        clock.advance(100)
        client.get_manifest("team/app", "v1")
        assert len(fake.token_requests) == 1


def test_token_cache_is_per_scope(fake):
    fake.auth = "bearer"
    manifest(fake, "team/a")
    manifest(fake, "team/b")
    with fake.client() as client:
        client.get_manifest("team/a", "v1")
        client.get_manifest("team/b", "v1")
        client.get_manifest("team/a", "v1")
    assert [scopes_of(r) for r in fake.token_requests] == [["repository:team/a:pull"], ["repository:team/b:pull"]]


@pytest.mark.parametrize("field", ["token", "access_token"])
def test_token_or_access_token_field_is_accepted(fake, field):
    fake.auth = "bearer"
    fake.token_field = field
    manifest(fake)
    with fake.client() as client:
        assert client.get_manifest("team/app", "v1").raw


def test_push_registration_asks_for_pull_push_and_mount_sources(fake):
    fake.auth = "bearer"
    with fake.client() as client:
        client.authenticate("team/app", push=True, mount_from=["base/img"])
    [token_request] = fake.token_requests
    assert scopes_of(token_request) == ["repository:base/img:pull", "repository:team/app:pull,push"]


def test_mount_adds_pull_on_the_source_repository(fake):
    fake.auth = "bearer"
    digest = fake.add_blob(b"layer")
    with fake.client() as client:
        assert client.mount_blob("team/app", digest, "base/img") is True
    assert scopes_of(fake.token_requests[-1]) == ["repository:base/img:pull", "repository:team/app:pull,push"]


def test_reauthenticates_once_on_401_then_raises(fake):
    fake.auth = "bearer"
    manifest(fake)
    with fake.client() as client:
        client.get_manifest("team/app", "v1")
        fake.revoked.update(fake.tokens)  # the registry forgets the token: one re-auth fixes it
        client.get_manifest("team/app", "v1")
        assert len(fake.token_requests) == 2

        original = fake.make_token
        fake.make_token = lambda scopes: (fake.revoked.add(t := original(scopes)), t)[1]  # every token is bad
        fake.revoked.update(fake.tokens)
        before = len(fake.registry_requests("GET"))
        with pytest.raises(RegistryAuthError) as info:
            client.get_manifest("team/app", "v1")
        assert len(fake.registry_requests("GET")) - before == 2  # the request, then one retry
    assert "team/app:v1" in info.value.message
    assert info.value.status == 401
    assert info.value.codes == ("UNAUTHORIZED",)


def test_basic_challenge_sends_credentials(fake):
    fake.auth = "basic"
    manifest(fake)
    with fake.client_with_credentials() as client:
        client.get_manifest("team/app", "v1")
    assert fake.registry_requests("GET")[-1].headers["Authorization"].startswith("Basic ")
    assert fake.token_requests == []


def test_basic_challenge_without_credentials_is_an_auth_error(fake):
    fake.auth = "basic"
    manifest(fake)
    with fake.client() as client, pytest.raises(RegistryAuthError) as info:
        client.get_manifest("team/app", "v1")
    assert info.value.exit_code == 3
    assert "pull manifest team/app:v1" in info.value.message


def test_wrong_credentials_refused_by_the_token_service(fake):
    fake.auth = "bearer"
    with fake.client(credentials=Credentials(fake.user, "wrong")) as client, pytest.raises(RegistryAuthError) as info:
        client.authenticate("team/app")
    message = info.value.message
    assert "token" in message and "repository:team/app:pull" in message and "incorrect username" in message
    assert "wrong" not in message


def test_credentials_are_never_sent_over_http_to_a_realm_on_another_host(fake):
    fake.auth = "bearer"
    fake.realm = "http://auth.example/token"
    with fake.client_with_credentials() as client, pytest.raises(AuthError) as info:
        client.authenticate("team/app")
    assert "plain HTTP" in info.value.message
    assert fake.token_requests == []


def test_anonymous_token_over_http_is_fine(fake):
    fake.auth = "bearer"
    fake.realm = "http://auth.example/token"
    with fake.client() as client:
        client.authenticate("team/app")
    assert len(fake.token_requests) == 1


def test_relative_realm_is_resolved_against_the_registry(fake):
    fake.auth = "bearer"
    fake.realm = "/token"
    seen = []
    original = fake.handle

    def handle(request):
        if request.url.path == "/token":
            seen.append(request.url.host)
            return fake.token(request)
        return original(request)

    with RegistryClient(f"https://{fake.host}", transport=httpx.MockTransport(handle)) as client:
        client.authenticate("team/app")
    assert seen == [fake.host]


def test_bearer_challenge_without_realm_is_a_clear_error(fake):
    def handle(request):
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer service="x"'})

    with (
        RegistryClient("https://r.example", transport=httpx.MockTransport(handle)) as client,
        pytest.raises(RegistryError, match="no realm"),
    ):
        client.get_manifest("a/b", "v1")


def test_garbage_challenge_is_a_clear_error(fake):
    def handle(request):
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="unterminated'})

    with (
        RegistryClient("https://r.example", transport=httpx.MockTransport(handle)) as client,
        pytest.raises(RegistryError, match="WWW-Authenticate") as info,
    ):
        client.get_manifest("a/b", "v1")
    assert info.value.status == 401


def test_authorization_goes_only_to_the_registry_host(fake):
    fake.auth = "bearer"
    seen = []
    original = fake.handle

    def handle(request):
        if request.url.host == "uploads.example":
            seen.append(request)
            return httpx.Response(201, headers={"Docker-Content-Digest": request.url.params["digest"]})
        response = original(request)
        if request.method == "POST" and response.status_code == 202:
            response.headers["Location"] = "https://uploads.example/session/1?_state=abc"
        return response

    data = b"blob-bytes"
    with RegistryClient(f"https://{fake.host}", transport=httpx.MockTransport(handle)) as client:
        client.upload_blob("team/app", fake.sha256(data), len(data), lambda offset: _bytes_at(data, offset))
    assert len(seen) == 1 and "Authorization" not in seen[0].headers


def _bytes_at(data, offset):
    import io

    stream = io.BytesIO(data)
    stream.seek(offset)
    return stream


def jwt_with(access):
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part({'access': access})}.sig"


def test_authenticate_reports_a_missing_push_right_before_any_transfer(fake):
    fake.auth = "bearer"
    fake.jwt_access = [{"type": "repository", "name": "team/app", "actions": ["pull"]}]
    with fake.client_with_credentials() as client:
        client.authenticate("team/app")  # pull is granted
        with pytest.raises(RegistryAuthError) as info:
            client.authenticate("team/app", push=True)
    assert "push" in info.value.message and "team/app" in info.value.message


def test_authenticate_accepts_a_wildcard_grant(fake):
    fake.auth = "bearer"
    fake.jwt_access = [{"type": "repository", "name": "team/app", "actions": ["*"]}]
    with fake.client_with_credentials() as client:
        client.authenticate("team/app", push=True)


def test_threads_share_one_token_cache(fake):
    fake.auth = "bearer"
    manifest(fake)
    errors = []
    with fake.client() as client:
        client.authenticate("team/app")

        def work():
            try:
                for _ in range(20):
                    client.get_manifest("team/app", "v1")
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert len(fake.token_requests) == 1


def test_lazy_challenge_without_ping(fake):
    """A request made before any ping learns the challenge from its 401 and is retried once."""
    fake.auth = "bearer"
    manifest(fake)
    auth = RegistryAuth(f"https://{fake.host}")
    with httpx.Client(auth=auth, transport=fake.transport()) as http:
        response = http.get(f"https://{fake.host}/v2/team/app/manifests/v1")
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401, 200]  # the 401, then the token response


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v2/library/nginx/manifests/latest", "library/nginx"),
        ("/v2/a/blobs/sha256:abc", "a"),
        ("/v2/a/b/c/blobs/uploads/", "a/b/c"),
        ("/v2/a/blobs/uploads/uuid-1", "a"),
        ("/v2/x/blobs/y/manifests/v1", "x/blobs/y"),
        ("/v2/a/tags/list", "a"),
        ("/v2/", None),
        ("/v2/_catalog", None),
        ("/token", None),
    ],
)
def test_repository_from_path(path, name):
    assert repository_from_path(path) == name

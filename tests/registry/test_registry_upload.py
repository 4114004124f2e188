# mypy: allow-untyped-defs, allow-untyped-calls, allow-incomplete-defs
import io
import os

import httpx
import pytest

from docker_image_pusher.errors import IntegrityError, RegistryError
from docker_image_pusher.registry import RegistryClient
from docker_image_pusher.registry._upload import with_digest

DATA = os.urandom(10 * 1024 * 1024 + 77)


class Source:
    """open_at for an in-memory blob, recording where it was opened."""

    def __init__(self, data):
        self.data = data
        self.opened = []

    def __call__(self, offset):
        self.opened.append(offset)
        stream = io.BytesIO(self.data)
        stream.seek(offset)
        return stream


class Progress(list[int]):
    def __call__(self, delta):
        self.append(delta)


def upload(fake, data=DATA, **kwargs):
    source = Source(data)
    progress = Progress()
    with fake.client() as client:
        client.upload_blob("team/app", fake.sha256(data), len(data), source, on_progress=progress, **kwargs)
    assert fake.blobs[fake.sha256(data)] == data
    assert sum(progress) == len(data) and all(d > 0 for d in progress)
    return source


def test_monolithic_upload_appends_digest_to_the_location_query(fake):
    upload(fake)
    [post] = fake.registry_requests("POST")
    [put] = fake.registry_requests("PUT")
    assert post.url.path == "/v2/team/app/blobs/uploads/"
    assert put.url.params["_state"] and put.url.params["digest"] == fake.sha256(DATA)
    assert put.url.query.decode().startswith("_state=")  # the registry's query is kept as it was, digest appended
    assert put.headers["Content-Length"] == str(len(DATA))
    assert fake.registry_requests("PATCH") == []


def test_relative_location_is_resolved_against_the_request(fake):
    fake.location_style = "relative"
    upload(fake)
    assert fake.registry_requests("PUT")[0].url.host == fake.host


def test_with_digest_keeps_the_query_byte_for_byte():
    url = httpx.URL("https://r/v2/a/blobs/uploads/1?_state=ab%2Bc%3D%3D&x=a+b")
    assert (
        str(with_digest(url, "sha256:00"))
        == "https://r/v2/a/blobs/uploads/1?_state=ab%2Bc%3D%3D&x=a+b&digest=sha256%3A00"
    )
    assert str(with_digest(httpx.URL("https://r/u"), "sha256:00")) == "https://r/u?digest=sha256%3A00"


@pytest.mark.parametrize("status", [413, 400, 405])
def test_falls_back_to_chunks_when_the_registry_refuses_a_monolithic_put(fake, status):
    fake.refuse_monolithic = status
    upload(fake)
    assert len(fake.registry_requests("POST")) == 2  # a fresh session for the chunked attempt
    assert fake.patch_sizes == [4 * 1024 * 1024, 4 * 1024 * 1024, 2 * 1024 * 1024 + 77]


def test_chunked_upload_follows_the_newest_location_and_sends_content_ranges(fake):
    upload(fake, chunk_size=3 * 1024 * 1024)
    patches = fake.registry_requests("PATCH")
    mib = 1024 * 1024
    assert [p.headers["Content-Range"] for p in patches] == [
        f"0-{3 * mib - 1}",
        f"{3 * mib}-{6 * mib - 1}",
        f"{6 * mib}-{9 * mib - 1}",
        f"{9 * mib}-{len(DATA) - 1}",
    ]
    assert all(p.headers["Content-Length"] == str(len(p.content)) for p in patches)
    states = [p.url.params["_state"] for p in patches]
    assert len(set(states)) == len(states)  # each PATCH went to the Location of the previous answer
    [put] = fake.registry_requests("PUT")
    assert put.content == b"" and put.url.params["digest"] == fake.sha256(DATA)


def test_oci_chunk_min_length_is_honoured(fake):
    fake.chunk_min_length = 5 * 1024 * 1024
    upload(fake, chunk_size=1024 * 1024)
    assert fake.patch_sizes == [5 * 1024 * 1024, 5 * 1024 * 1024, 77]
    assert fake.short_chunks == [77]  # only the last one


@pytest.mark.parametrize("status", [201, 204])
def test_patch_accepts_any_2xx(fake, status):
    fake.patch_status = status
    upload(fake, chunk_size=4 * 1024 * 1024)


def test_an_interrupted_patch_resumes_from_the_offset_the_registry_reports(fake):
    fake.interrupt_patch_after = 1_000_000  # the first PATCH breaks after 1 MB reached the registry
    source = upload(fake, chunk_size=4 * 1024 * 1024)
    gets = [r for r in fake.registry_requests("GET") if "/blobs/uploads/" in r.url.path]
    assert len(gets) == 1
    assert source.opened == [0, 1_000_000]
    assert fake.registry_requests("PATCH")[1].headers["Content-Range"].startswith("1000000-")


def test_a_416_on_patch_recovers_via_the_upload_status(fake):
    fake.patch_416_once = True
    upload(fake, chunk_size=4 * 1024 * 1024)
    gets = [r for r in fake.registry_requests("GET") if "/blobs/uploads/" in r.url.path]
    assert len(gets) == 1


def test_an_interrupted_patch_on_a_strict_registry_restarts_in_a_new_session(fake):
    fake.strict_state_offset = True  # distribution cancels a session resumed at another offset than its state
    fake.interrupt_patch_after = 1_000_000
    progress = Progress()
    source = Source(DATA)
    with fake.client() as client:
        client.upload_blob(
            "team/app", fake.sha256(DATA), len(DATA), source, chunk_size=4 * 1024 * 1024, on_progress=progress
        )
    assert fake.blobs[fake.sha256(DATA)] == DATA
    assert len(fake.registry_requests("POST")) == 2
    assert source.opened == [0, 0]
    assert sum(progress) == len(DATA)


def test_a_session_the_registry_dropped_is_restarted_once(fake):
    fake.lose_sessions = 1
    source = upload(fake, chunk_size=4 * 1024 * 1024)
    assert len(fake.registry_requests("POST")) == 2 and source.opened == [0, 0]


def test_a_session_dropped_twice_is_an_error(fake):
    fake.lose_sessions = 2
    with fake.client() as client, pytest.raises(RegistryError, match="BLOB_UPLOAD_UNKNOWN"):
        client.upload_blob("team/app", fake.sha256(DATA), len(DATA), Source(DATA), chunk_size=4 * 1024 * 1024)


def test_persistent_failures_give_up(fake):
    original = fake.patch

    def patch(request, name, upload_id, upload):
        fake.patch_416_once = True
        return original(request, name, upload_id, upload)

    fake.patch = patch
    with fake.client() as client, pytest.raises(RegistryError) as info:
        client.upload_blob("team/app", fake.sha256(DATA), len(DATA), Source(DATA), chunk_size=4 * 1024 * 1024)
    assert info.value.status == 416
    assert len(fake.registry_requests("PATCH")) == 4


def test_mount_returns_true_on_201(fake):
    digest = fake.add_blob(b"shared layer")
    with fake.client() as client:
        assert client.mount_blob("team/app", digest, "base/img") is True
    [post] = fake.registry_requests("POST")
    assert post.url.params["mount"] == digest and post.url.params["from"] == "base/img"


def test_a_refused_mount_leaves_a_session_that_the_upload_uses(fake):
    fake.mount_enabled = False
    data = b"layer bytes" * 1000
    digest = fake.sha256(data)
    with fake.client() as client:
        assert client.mount_blob("team/app", digest, "base/img") is False
        client.upload_blob("team/app", digest, len(data), Source(data))
    assert len(fake.registry_requests("POST")) == 1  # no second POST
    assert fake.blobs[digest] == data


def test_the_token_is_obtained_before_the_body_is_sent(fake):
    fake.auth = "bearer"
    upload(fake)
    [put] = fake.registry_requests("PUT")
    assert put.headers["Authorization"].startswith("Bearer ")
    scopes = [r.url.params.get_list("scope") for r in fake.token_requests]
    assert ["repository:team/app:pull,push"] in scopes
    assert all(r.method != "PUT" for r in fake.registry_requests() if r is not put)  # the PUT was sent once


def test_an_expired_token_during_a_monolithic_put_is_renewed_and_the_body_resent(fake):
    fake.auth = "bearer"
    source = Source(DATA)
    with fake.client() as client:
        client.authenticate("team/app", push=True)
        original = fake.upload

        def upload_then_revoke(request, name, upload_id):
            response = original(request, name, upload_id)
            if request.method == "POST":
                fake.revoked.update(fake.tokens)  # the token dies between POST and PUT
            return response

        fake.upload = upload_then_revoke
        client.upload_blob("team/app", fake.sha256(DATA), len(DATA), source)
    assert source.opened == [0, 0]
    assert fake.blobs[fake.sha256(DATA)] == DATA


def test_digest_invalid_is_an_integrity_error(fake):
    wrong = DATA[:-1] + b"!"
    with fake.client() as client, pytest.raises(IntegrityError, match="DIGEST_INVALID"):
        client.upload_blob("team/app", fake.sha256(DATA), len(wrong), Source(wrong))


def test_a_short_source_is_an_integrity_error(fake):
    with fake.client() as client, pytest.raises(IntegrityError, match="ended after"):
        client.upload_blob("team/app", fake.sha256(DATA), len(DATA) + 10, Source(DATA))


def test_a_missing_location_is_a_clear_error():
    def handler(request):
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(202)

    with (
        RegistryClient("https://r.example", transport=httpx.MockTransport(handler)) as client,
        pytest.raises(RegistryError, match="without an upload Location"),
    ):
        client.upload_blob("a/b", "sha256:" + "0" * 64, 1, Source(b"x"))


def test_empty_blob(fake):
    upload(fake, data=b"")

# mypy: allow-untyped-defs, allow-untyped-calls, allow-incomplete-defs
import json

import httpx
import pytest

from docker_image_pusher.errors import IntegrityError, RegistryError, UsageError
from docker_image_pusher.media_types import DOCKER_MANIFEST, MANIFEST_ACCEPT, OCI_INDEX, OCI_MANIFEST
from docker_image_pusher.registry import FetchedManifest, ManifestHead, RegistryClient

OCI_BODY = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}


def client_answering(handler):
    def wrapped(request):
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return handler(request)

    return RegistryClient("https://r.example", transport=httpx.MockTransport(wrapped))


def test_get_manifest_sends_the_full_accept_list_and_keeps_raw_bytes(fake):
    raw = b'{\n  "schemaVersion": 2,   "mediaType": "' + OCI_MANIFEST.encode() + b'"}\n'
    digest = fake.add_manifest("team/app", "v1", raw, "application/octet-stream")
    with fake.client() as client:
        got = client.get_manifest("team/app", "v1")
    assert got == FetchedManifest(raw=raw, media_type=OCI_MANIFEST, digest=digest)
    request = fake.registry_requests("GET")[-1]
    assert request.headers["Accept"] == MANIFEST_ACCEPT
    for media_type in (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST, "manifest.list.v2+json"):
        assert media_type in request.headers["Accept"]


def test_media_type_falls_back_to_content_type(fake):
    raw = json.dumps({"schemaVersion": 2, "config": {}}).encode()
    fake.add_manifest("team/app", "v1", raw, DOCKER_MANIFEST + "; charset=utf-8")
    with fake.client() as client:
        assert client.get_manifest("team/app", "v1").media_type == DOCKER_MANIFEST


def test_get_by_digest_checks_the_digest(fake):
    digest = fake.add_manifest("team/app", "v1", OCI_BODY, OCI_MANIFEST)
    with fake.client() as client:
        assert client.get_manifest("team/app", digest).digest == digest
        fake.manifests[("team/app", digest)] = (b'{"tampered": true}', OCI_MANIFEST)
        fake.manifest_headers = {"Docker-Content-Digest": digest}
        with pytest.raises(IntegrityError) as info:
            client.get_manifest("team/app", digest)
    assert info.value.temporary


def test_docker_content_digest_mismatch_is_refused(fake):
    fake.add_manifest("team/app", "v1", OCI_BODY, OCI_MANIFEST)
    fake.manifest_headers = {"Docker-Content-Digest": "sha256:" + "0" * 64}
    with fake.client() as client, pytest.raises(IntegrityError, match="registry says its digest"):
        client.get_manifest("team/app", "v1")


def test_manifest_over_the_limit_is_refused_by_content_length():
    def handler(request):
        return httpx.Response(200, headers={"Content-Length": str(5 * 1024 * 1024)}, content=b"{}")

    with client_answering(handler) as client, pytest.raises(IntegrityError, match="5242880 bytes"):
        client.get_manifest("team/app", "v1")


def test_manifest_over_the_limit_is_refused_while_streaming(fake):
    stream = fake.CountingStream(b" " * (8 * 1024 * 1024))

    def handler(request):
        return httpx.Response(200, stream=stream)  # no Content-Length

    with client_answering(handler) as client, pytest.raises(IntegrityError, match="larger than"):
        client.get_manifest("team/app", "v1")
    assert stream.pulled < 70  # stopped soon after 4 MiB (64 KiB pieces), not after 8 MiB


def test_a_custom_limit_applies(fake):
    fake.add_manifest("team/app", "v1", b"x" * 100, OCI_MANIFEST)
    with fake.client() as client:
        assert len(client.get_manifest("team/app", "v1", max_bytes=100).raw) == 100
        with pytest.raises(IntegrityError):
            client.get_manifest("team/app", "v1", max_bytes=99)


def test_schema1_manifests_are_refused_clearly(fake):
    fake.add_manifest(
        "team/app", "v1", b'{"schemaVersion": 1}', "application/vnd.docker.distribution.manifest.v1+prettyjws"
    )
    with fake.client() as client, pytest.raises(RegistryError, match="schema 1"):
        client.get_manifest("team/app", "v1")


def test_head_manifest(fake):
    digest = fake.add_manifest("team/app", "v1", OCI_BODY, OCI_MANIFEST)
    with fake.client() as client:
        head = client.head_manifest("team/app", "v1")
        assert head == ManifestHead(digest=digest, media_type=OCI_MANIFEST, size=len(json.dumps(OCI_BODY)))
        assert client.head_manifest("team/app", "v2") is None
    assert fake.registry_requests("HEAD")[0].headers["Accept"] == MANIFEST_ACCEPT


def test_head_manifest_without_digest_header():
    def handler(request):
        return httpx.Response(200, headers={"Content-Type": OCI_INDEX, "Content-Length": "10"})

    with client_answering(handler) as client:
        assert client.head_manifest("a/b", "v1") == ManifestHead(digest=None, media_type=OCI_INDEX, size=10)
        digest = "sha256:" + "c" * 64
        assert client.head_manifest("a/b", digest) == ManifestHead(digest=digest, media_type=OCI_INDEX, size=10)


def test_put_manifest_sends_raw_bytes_with_their_media_type(fake):
    raw = json.dumps(OCI_BODY, indent=3).encode()
    with fake.client() as client:
        digest = client.put_manifest("team/app", "v1", raw, OCI_MANIFEST)
    put = fake.registry_requests("PUT")[0]
    assert put.content == raw and put.headers["Content-Type"] == OCI_MANIFEST
    assert digest == fake.sha256(raw)
    assert fake.manifests[("team/app", "v1")] == (raw, OCI_MANIFEST)


def test_put_manifest_checks_the_stored_digest(fake):
    fake.manifest_headers = {"Docker-Content-Digest": "sha256:" + "1" * 64}
    with fake.client() as client, pytest.raises(IntegrityError, match="stored it as"):
        client.put_manifest("team/app", "v1", b"{}", OCI_MANIFEST)


def test_put_manifest_by_digest_must_match_the_bytes(fake):
    with fake.client() as client, pytest.raises(IntegrityError):
        client.put_manifest("team/app", "sha256:" + "2" * 64, b"{}", OCI_MANIFEST)
    assert fake.registry_requests("PUT") == []


def test_head_blob(fake):
    digest = fake.add_blob(b"12345")
    with fake.client() as client:
        assert client.head_blob("team/app", digest) == 5
        assert client.head_blob("team/app", "sha256:" + "9" * 64) is None


@pytest.mark.parametrize(
    ("repository", "reference"),
    [("Team/App", "v1"), ("../etc", "v1"), ("a//b", "v1"), ("a/b", "../v1"), ("a/b", "sha256:xyz"), ("a/b", "")],
)
def test_bad_names_never_reach_the_network(repository, reference):
    def handler(request):
        raise AssertionError("no request expected")

    with (
        RegistryClient("https://r.example", transport=httpx.MockTransport(handler)) as client,
        pytest.raises(UsageError),
    ):
        client.get_manifest(repository, reference)

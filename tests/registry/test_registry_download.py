# mypy: allow-untyped-defs, allow-untyped-calls, allow-incomplete-defs
import gzip
import os

import httpx
import pytest

from docker_image_pusher.errors import IntegrityError, RegistryNotFoundError, TransferError
from docker_image_pusher.registry import RegistryClient

DATA = os.urandom(3 * 1024 * 1024 + 123)


class Progress:
    def __init__(self):
        self.deltas = []

    def __call__(self, delta):
        self.deltas.append(delta)

    @property
    def total(self):
        return sum(self.deltas)


def test_fresh_download_streams_verifies_and_reports_progress(fake, tmp_path):
    digest = fake.add_blob(DATA)
    path = tmp_path / "blob"
    progress = Progress()
    with fake.client() as client:
        assert client.download_blob("team/app", digest, path, expected_size=len(DATA), on_progress=progress) == len(
            DATA
        )
    assert path.read_bytes() == DATA
    assert progress.total == len(DATA) and all(d > 0 for d in progress.deltas) and len(progress.deltas) >= 4
    request = fake.registry_requests("GET")[-1]
    assert "Range" not in request.headers
    assert request.headers["Accept-Encoding"] == "identity"


def test_resume_from_a_partial_file_with_206(fake, tmp_path):
    digest = fake.add_blob(DATA)
    path = tmp_path / "blob"
    path.write_bytes(DATA[:1_000_000])
    progress = Progress()
    with fake.client() as client:
        client.download_blob("team/app", digest, path, expected_size=len(DATA), on_progress=progress)
    assert path.read_bytes() == DATA
    assert fake.registry_requests("GET")[-1].headers["Range"] == "bytes=1000000-"
    assert progress.total == len(DATA) - 1_000_000  # only new bytes


def test_a_server_answering_200_to_a_range_request_restarts_from_zero(fake, tmp_path):
    fake.ignore_range = True
    digest = fake.add_blob(DATA)
    path = tmp_path / "blob"
    path.write_bytes(DATA[:500_000])
    progress = Progress()
    with fake.client() as client:
        assert client.download_blob("team/app", digest, path, expected_size=len(DATA), on_progress=progress) == len(
            DATA
        )
    assert path.read_bytes() == DATA
    assert progress.deltas[0] == -500_000  # the resumed bytes are taken back
    assert 500_000 + progress.total == len(DATA)


def test_416_with_a_complete_file_verifies_it(fake, tmp_path):
    digest = fake.add_blob(DATA)
    path = tmp_path / "blob"
    path.write_bytes(DATA)
    with fake.client() as client:
        assert client.download_blob("team/app", digest, path, expected_size=None) == len(DATA)
    assert fake.registry_requests("GET")[-1].headers["Range"] == f"bytes={len(DATA)}-"
    assert path.read_bytes() == DATA


def test_a_complete_verified_file_needs_no_request(fake, tmp_path):
    digest = fake.add_blob(DATA)
    path = tmp_path / "blob"
    path.write_bytes(DATA)
    with fake.client() as client:
        assert client.download_blob("team/app", digest, path, expected_size=len(DATA)) == len(DATA)
    assert fake.registry_requests("GET") == [fake.registry_requests("GET")[0]]  # only the ping


def test_a_bad_complete_file_is_downloaded_again(fake, tmp_path):
    digest = fake.add_blob(DATA)
    path = tmp_path / "blob"
    path.write_bytes(b"x" * len(DATA))
    with fake.client() as client:
        client.download_blob("team/app", digest, path, expected_size=len(DATA))
    assert path.read_bytes() == DATA


def test_digest_mismatch_deletes_the_partial_and_raises_a_temporary_integrity_error(fake, tmp_path):
    digest = fake.add_blob(DATA)
    path = tmp_path / "blob"
    path.write_bytes(b"\0" * 1000)  # wrong bytes: the ranged rest cannot fix them
    with fake.client() as client, pytest.raises(IntegrityError) as info:
        client.download_blob("team/app", digest, path, expected_size=len(DATA))
    assert info.value.temporary and digest in info.value.message
    assert not path.exists()
    with fake.client() as client:  # the retry starts afresh
        client.download_blob("team/app", digest, path, expected_size=len(DATA))
    assert path.read_bytes() == DATA


def test_more_bytes_than_expected_stops_early(fake, tmp_path):
    digest = fake.sha256(DATA)
    big = DATA + os.urandom(20 * 1024 * 1024)
    stream = fake.CountingStream(big)
    fake.blob_overrides[digest] = lambda request: httpx.Response(200, stream=stream)
    path = tmp_path / "blob"
    with fake.client() as client, pytest.raises(IntegrityError, match="more than") as info:
        client.download_blob("team/app", digest, path, expected_size=len(DATA))
    assert info.value.temporary
    assert stream.pulled * stream.piece < len(DATA) + 2 * 1024 * 1024  # did not read the 20 MiB
    assert not path.exists()


def test_content_length_beyond_the_expected_size_is_refused_at_once(fake, tmp_path):
    digest = fake.sha256(DATA)
    fake.blob_overrides[digest] = lambda request: fake.streamed(200, DATA + b"extra")
    with fake.client() as client, pytest.raises(IntegrityError, match="announces"):
        client.download_blob("team/app", digest, tmp_path / "blob", expected_size=len(DATA))


def test_a_dropped_connection_keeps_the_bytes_and_a_retry_resumes(fake, tmp_path):
    digest = fake.add_blob(DATA)
    fake.blob_overrides[digest] = lambda request: httpx.Response(
        200, stream=fake.BrokenStream(DATA[:1_500_000], 100_000)
    )
    path = tmp_path / "blob"
    progress = Progress()
    with fake.client() as client:
        with pytest.raises(TransferError) as info:
            client.download_blob("team/app", digest, path, expected_size=len(DATA), on_progress=progress)
        assert info.value.temporary
        assert path.read_bytes() == DATA[:1_500_000]  # everything that arrived before the drop
        assert progress.total == 1_500_000
        del fake.blob_overrides[digest]
        client.download_blob("team/app", digest, path, expected_size=len(DATA), on_progress=progress)
    assert path.read_bytes() == DATA
    assert fake.registry_requests("GET")[-1].headers["Range"] == "bytes=1500000-"
    assert progress.total == len(DATA)


def test_a_short_body_without_error_keeps_the_bytes_for_a_resume(fake, tmp_path):
    digest = fake.sha256(DATA)
    fake.blob_overrides[digest] = lambda request: httpx.Response(200, stream=fake.CountingStream(DATA[:10]))
    path = tmp_path / "blob"
    with fake.client() as client, pytest.raises(TransferError) as info:
        client.download_blob("team/app", digest, path, expected_size=len(DATA))
    assert info.value.temporary and not isinstance(info.value, IntegrityError)
    assert path.read_bytes() == DATA[:10]


def test_content_encoding_is_not_decoded(fake, tmp_path):
    layer = gzip.compress(b"tar bytes" * 1000)
    digest = fake.sha256(layer)
    fake.blob_overrides[digest] = lambda request: fake.streamed(
        200, layer, {"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"}
    )
    path = tmp_path / "blob"
    with fake.client() as client:
        assert client.download_blob("team/app", digest, path, expected_size=len(layer)) == len(layer)
    assert path.read_bytes() == layer


def test_a_redirect_to_another_host_does_not_carry_authorization(fake, tmp_path):
    fake.auth = "bearer"
    fake.redirect_blobs = True
    digest = fake.add_blob(DATA)
    with fake.client_with_credentials() as client:
        client.download_blob("team/app", digest, tmp_path / "blob", expected_size=len(DATA))
    [cdn] = fake.cdn_requests
    assert "Authorization" not in cdn.headers
    assert cdn.url.params["sig"] == "CDNSECRET"
    [registry_get] = [r for r in fake.registry_requests("GET") if "/blobs/" in r.url.path]
    assert registry_get.headers["Authorization"].startswith("Bearer ")
    assert (tmp_path / "blob").read_bytes() == DATA


def test_a_missing_blob_is_not_found(fake, tmp_path):
    with fake.client() as client, pytest.raises(RegistryNotFoundError, match="no such blob"):
        client.download_blob("team/app", "sha256:" + "e" * 64, tmp_path / "blob", expected_size=1)
    assert not (tmp_path / "blob").exists()


def test_a_partial_larger_than_expected_is_discarded(fake, tmp_path):
    digest = fake.add_blob(DATA)
    path = tmp_path / "blob"
    path.write_bytes(DATA + b"junk")
    progress = Progress()
    with fake.client() as client:
        client.download_blob("team/app", digest, path, expected_size=len(DATA), on_progress=progress)
    assert path.read_bytes() == DATA
    assert len(DATA) + progress.total == len(DATA)  # the caller counted min(N, size) as resumed


def test_a_206_for_another_offset_restarts(fake, tmp_path):
    digest = fake.sha256(DATA)

    def odd(request):
        if "Range" in request.headers:
            return fake.streamed(206, DATA, {"Content-Range": f"bytes 0-{len(DATA) - 1}/{len(DATA)}"})
        return fake.streamed(200, DATA)

    fake.blob_overrides[digest] = odd
    path = tmp_path / "blob"
    path.write_bytes(DATA[:100])
    with fake.client() as client:
        client.download_blob("team/app", digest, path, expected_size=len(DATA))
    assert path.read_bytes() == DATA


def test_download_does_not_hold_the_blob_in_memory(fake, tmp_path):
    """The response is consumed as a stream, piece by piece; progress comes per ~1 MiB."""
    big = os.urandom(9 * 1024 * 1024)
    digest = fake.sha256(big)
    stream = fake.CountingStream(big, piece=256 * 1024)
    fake.blob_overrides[digest] = lambda request: httpx.Response(200, stream=stream)
    sizes: list[int] = []
    with fake.client() as client:
        client.download_blob("team/app", digest, tmp_path / "blob", expected_size=len(big), on_progress=sizes.append)
    assert stream.pulled == 36
    assert sum(sizes) == len(big) and len(sizes) == 9 and max(sizes) <= 1024 * 1024 + 256 * 1024


def test_client_with_a_plain_mock_transport():
    def handler(request):
        return httpx.Response(200, content=b"") if request.url.path == "/v2/" else httpx.Response(500)

    with RegistryClient("http://127.0.0.1:5000", transport=httpx.MockTransport(handler)) as client:
        client.ping()

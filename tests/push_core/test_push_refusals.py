"""What the real registry says when it refuses a manifest, and how the client reports it."""

from __future__ import annotations

import pytest

from docker_image_pusher.errors import RegistryError
from docker_image_pusher.registry import RegistryClient


def test_a_manifest_whose_blobs_are_missing_is_refused_with_the_registry_code(
    plain_registry, sample_image, unique_repo
):
    image = sample_image([100])  # built locally, never uploaded
    with RegistryClient(plain_registry.url) as client, pytest.raises(RegistryError) as caught:
        client.put_manifest(unique_repo, "v1", image.manifest_bytes, image.manifest.media_type)
    err = caught.value
    assert "MANIFEST_BLOB_UNKNOWN" in err.codes and "MANIFEST_BLOB_UNKNOWN" in err.message
    assert err.exit_code == 5 and not err.temporary and "\n" not in err.message


def test_an_invalid_manifest_is_refused_with_the_registry_code(plain_registry, unique_repo):
    raw = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": 5}'
    with RegistryClient(plain_registry.url) as client, pytest.raises(RegistryError) as caught:
        client.put_manifest(unique_repo, "v1", raw, "application/vnd.oci.image.manifest.v1+json")
    assert caught.value.codes and caught.value.codes[0].startswith("MANIFEST")
    assert caught.value.exit_code == 5

import json

import pytest

from docker_image_pusher import media_types as mt
from docker_image_pusher.errors import IntegrityError, UsageError
from docker_image_pusher.manifest import ImageIndex, ImageManifest, parse_manifest, parse_platform

D = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def _manifest(media_type=mt.OCI_MANIFEST):
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": D, "size": 10},
            "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": 20}],
        }
    ).encode()


def _index(platforms):
    items = [
        {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + f"{i:064x}", "size": 5, "platform": p}
        for i, p in enumerate(platforms)
    ]
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": items}).encode()


def test_image_manifest_lists_config_then_layers():
    m = parse_manifest(_manifest())
    assert isinstance(m, ImageManifest)
    assert [b.digest for b in m.blobs] == [D, D2]


def test_media_type_comes_from_header_when_body_has_none():
    body = json.loads(_manifest())
    del body["mediaType"]
    m = parse_manifest(json.dumps(body).encode(), mt.DOCKER_MANIFEST)
    assert m.media_type == mt.DOCKER_MANIFEST


def test_index_selects_requested_platforms_and_variants():
    raw = _index(
        [
            {"os": "linux", "architecture": "amd64"},
            {"os": "linux", "architecture": "arm64", "variant": "v8"},
            {"os": "linux", "architecture": "arm", "variant": "v7"},
        ]
    )
    index = parse_manifest(raw)
    assert isinstance(index, ImageIndex)
    assert len(index.select([])) == 3
    chosen = index.select([parse_platform("linux/arm64")])
    assert [str(d.platform) for d in chosen] == ["linux/arm64/v8"]
    with pytest.raises(UsageError, match="linux/s390x"):
        index.select([parse_platform("linux/s390x")])
    with pytest.raises(UsageError):
        index.select([parse_platform("linux/arm64/v9")])


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b'{"schemaVersion": 1, "fsLayers": []}',
        json.dumps({"mediaType": mt.OCI_MANIFEST, "config": {"digest": "md5:x", "size": 1}, "layers": []}).encode(),
        json.dumps({"mediaType": mt.OCI_MANIFEST, "config": {"digest": D, "size": -1}, "layers": []}).encode(),
        json.dumps({"mediaType": mt.OCI_MANIFEST, "config": {"digest": D, "size": 1}, "layers": "x"}).encode(),
        json.dumps({"mediaType": "application/x-unknown"}).encode(),
        json.dumps({"mediaType": mt.OCI_INDEX, "manifests": {"a": 1}}).encode(),
        json.dumps({"mediaType": mt.OCI_INDEX, "manifests": [{"digest": D3, "size": True}]}).encode(),
    ],
)
def test_malformed_manifests_are_integrity_errors(raw):
    with pytest.raises(IntegrityError):
        parse_manifest(raw)


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "a/b/c/d"])
def test_bad_platforms_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_platform(text)

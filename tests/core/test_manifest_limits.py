"""Manifest limits: a cap on layers per manifest, and JSON nested too deep for the parser."""

from __future__ import annotations

import json

import pytest

from docker_image_pusher import media_types as mt
from docker_image_pusher.errors import IntegrityError
from docker_image_pusher.manifest import MAX_LAYERS, ImageManifest, parse_manifest

D = "sha256:" + "1" * 64


def _manifest(layers: int) -> bytes:
    layer = {"mediaType": mt.OCI_LAYER_GZIP, "digest": D, "size": 1}
    config = {"mediaType": mt.OCI_CONFIG, "digest": D, "size": 1}
    return json.dumps(
        {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config, "layers": [layer] * layers}
    ).encode()


def test_a_manifest_at_the_layer_cap_parses_and_one_more_is_refused() -> None:
    parsed = parse_manifest(_manifest(MAX_LAYERS))
    assert isinstance(parsed, ImageManifest) and len(parsed.layers) == MAX_LAYERS
    with pytest.raises(IntegrityError, match=f"manifest has {MAX_LAYERS + 1} layers, more than the {MAX_LAYERS}"):
        parse_manifest(_manifest(MAX_LAYERS + 1))


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000])
def test_json_nested_too_deep_is_not_valid_json_rather_than_a_crash(raw: bytes) -> None:
    with pytest.raises(IntegrityError, match="manifest is not valid JSON"):
        parse_manifest(raw)

"""Hostile manifests from a scripted registry: each pull fails with one line naming the problem, an integrity
exit code, and leaves the cache (seeded with a good image whose blobs the hostile manifests reuse) as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli.conftest import Cli
from rig.hostile_registry import Answer, HostileRegistry
from rig.images import BuiltImage

from docker_image_pusher import media_types as mt
from docker_image_pusher.manifest import sha256_digest

from .conftest import pull_args, refused, run_and_check_cache

REPO = "team/app"
ZERO = "sha256:" + "0" * 64
BAD_CONFIG = b"this is not an image config"
BAD_CONFIG_DIGEST = sha256_digest(BAD_CONFIG)


def _manifest(image: BuiltImage) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(image.manifest_bytes)
    return loaded


def _serve(
    fake: HostileRegistry, body: bytes | dict[str, Any], media_type: str = mt.OCI_MANIFEST, **headers: str
) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    fake.serve_manifest(REPO, "v1", raw, media_type, **headers)
    return "v1"


def _with(image: BuiltImage, **changes: Any) -> dict[str, Any]:
    return {**_manifest(image), **changes}


def _layers(image: BuiltImage, edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    manifest = _manifest(image)
    edit(manifest["layers"][0])
    return manifest


def _not_json(fake: HostileRegistry, image: BuiltImage) -> str:
    return _serve(fake, b"<html><body>502 Bad Gateway</body></html>")


def _nested(fake: HostileRegistry, image: BuiltImage) -> str:
    return _serve(fake, b"[" * 200_000 + b"]" * 200_000)


def _unknown_media_type(fake: HostileRegistry, image: BuiltImage) -> str:
    return _serve(fake, _with(image, mediaType="application/vnd.example.unknown+json"))


def _wrong_content_type(fake: HostileRegistry, image: BuiltImage) -> str:
    body = {k: v for k, v in _manifest(image).items() if k != "mediaType"}
    return _serve(fake, body, media_type="text/html")


def _served_digest_differs(fake: HostileRegistry, image: BuiltImage) -> str:
    return _serve(fake, image.manifest_bytes, Docker_Content_Digest=ZERO)


def _by_digest_content_differs(fake: HostileRegistry, image: BuiltImage) -> str:
    wanted = sha256_digest(b"what the user asked for")
    fake.serve_manifest(REPO, wanted, image.manifest_bytes, mt.OCI_MANIFEST)
    return wanted


def _child_of_another_platform(fake: HostileRegistry, image: BuiltImage) -> str:
    child = {**image.manifest.descriptor(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
    fake.serve_manifest(REPO, image.manifest_digest, image.manifest_bytes, mt.OCI_MANIFEST)
    return _serve(fake, {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [child]}, mt.OCI_INDEX)


def _over_size_limit(fake: HostileRegistry, image: BuiltImage) -> str:
    fake.route(f"/v2/{REPO}/manifests/v1", Answer(200, [("Content-Type", mt.OCI_MANIFEST)], fill=(b" ", 5 << 20)))
    return "v1"


def _ten_thousand_layers(fake: HostileRegistry, image: BuiltImage) -> str:
    layer = image.layers[0].descriptor()
    return _serve(fake, _with(image, layers=[layer] * 10_000))


def _layer_bad_digest(fake: HostileRegistry, image: BuiltImage) -> str:
    return _serve(fake, _layers(image, lambda d: d.update(digest="sha256:../../etc/passwd")))


def _layer_negative_size(fake: HostileRegistry, image: BuiltImage) -> str:
    return _serve(fake, _layers(image, lambda d: d.update(size=-1)))


def _missing_config(fake: HostileRegistry, image: BuiltImage) -> str:
    return _serve(fake, {k: v for k, v in _manifest(image).items() if k != "config"})


def _config_not_json(fake: HostileRegistry, image: BuiltImage) -> str:
    fake.serve_blob(REPO, BAD_CONFIG_DIGEST, BAD_CONFIG)
    config = {"mediaType": mt.OCI_CONFIG, "digest": BAD_CONFIG_DIGEST, "size": len(BAD_CONFIG)}
    return _serve(fake, _with(image, config=config))


def _schema1(fake: HostileRegistry, image: BuiltImage) -> str:
    return _serve(fake, {"schemaVersion": 1, "name": REPO, "tag": "v1", "fsLayers": []}, "application/json")


# id -> (scripts the fake and returns the reference to pull, exit code, what the error line must say)
CASES: dict[str, tuple[Callable[[HostileRegistry, BuiltImage], str], int, str]] = {
    "not-json": (_not_json, 6, "manifest is not valid JSON"),
    "nested-200000-deep": (_nested, 6, "manifest is not valid JSON"),
    "unknown-media-type": (_unknown_media_type, 6, "unsupported manifest media type 'application/vnd.example"),
    "wrong-content-type": (_wrong_content_type, 6, "unsupported manifest media type 'text/html'"),
    "body-not-docker-content-digest": (_served_digest_differs, 6, f"the registry says its digest is {ZERO}"),
    "by-digest-body-hashes-elsewhere": (_by_digest_content_differs, 6, "the registry served content with digest"),
    "index-child-of-another-platform": (
        _child_of_another_platform,
        6,
        "is for linux/amd64, but the index lists this image as linux/arm64/v8",
    ),
    "over-size-limit": (_over_size_limit, 6, "more than the 4194304 allowed"),
    "ten-thousand-layers": (_ten_thousand_layers, 6, "manifest has 10000 layers, more than the 1000 allowed"),
    "layer-bad-digest": (_layer_bad_digest, 6, "unsupported or malformed digest 'sha256:../../etc/passwd'"),
    "layer-negative-size": (_layer_negative_size, 6, "has an invalid size"),
    "missing-config": (_missing_config, 6, "manifest config: descriptor is not an object"),
    "config-not-json": (_config_not_json, 6, f"team/app: image config {BAD_CONFIG_DIGEST} is not valid JSON"),
    "schema-1": (_schema1, 6, "schema 1 manifests are not supported"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_manifest_is_refused_and_the_cache_is_left_as_it_was(
    case: str, cli_with_server: Cli, fake: HostileRegistry, seed_image: BuiltImage, seeded_cache: Path
) -> None:
    script, exit_code, fragment = CASES[case]
    reference = script(fake, seed_image)
    r = run_and_check_cache(cli_with_server, seeded_cache, *pull_args(fake, REPO, reference, seeded_cache))
    refused(r, exit_code, fragment)

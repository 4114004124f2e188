"""What config_check finds wrong with an image config: not JSON, not an object, or another platform than
the index declares (a variant counts only when both sides name one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docker_image_pusher import media_types as mt
from docker_image_pusher.config_check import check_config, config_problem
from docker_image_pusher.errors import IntegrityError
from docker_image_pusher.manifest import Platform

ARM64 = Platform("linux", "arm64", "v8")


def _config(**fields: str) -> bytes:
    return json.dumps({"rootfs": {"type": "layers", "diff_ids": []}, **fields}).encode()


@pytest.mark.parametrize(
    ("data", "declared", "problem"),
    [
        (b"not json", None, "is not valid JSON"),
        (b"[" * 100_000, None, "is not valid JSON"),
        (b"[1, 2]", None, "is not a JSON object"),
        (
            _config(os="linux", architecture="amd64"),
            ARM64,
            "is for linux/amd64, but the index lists this image as linux/arm64/v8",
        ),
        (_config(os="windows", architecture="arm64"), ARM64, "is for windows/arm64"),
        (_config(os="linux", architecture="arm64", variant="v7"), ARM64, "is for linux/arm64/v7"),
    ],
)
def test_a_bad_config_is_named(data: bytes, declared: Platform | None, problem: str) -> None:
    found = config_problem(data, declared)
    assert found is not None and problem in found


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (_config(os="linux", architecture="arm64", variant="v8"), ARM64),
        (_config(os="linux", architecture="arm64"), ARM64),  # no variant in the config: not a contradiction
        (_config(os="linux", architecture="arm64", variant="v8"), Platform("linux", "arm64")),
        (_config(os="linux", architecture="amd64"), None),  # not from an index: nothing declared
        (_config(), ARM64),  # a config that names no platform is not checked against one
    ],
)
def test_a_good_config_passes(data: bytes, declared: Platform | None) -> None:
    assert config_problem(data, declared) is None


def test_a_refused_download_is_deleted_and_a_cached_copy_is_not(tmp_path: Path) -> None:
    bad = tmp_path / "config"
    for delete in (False, True):
        bad.write_bytes(b"<html>")
        with pytest.raises(IntegrityError, match="team/app: image config sha256:x is not valid JSON"):
            check_config("sha256:x", mt.OCI_CONFIG, bad, None, where="team/app", delete=delete)
        assert bad.exists() is not delete


def test_an_artifact_config_is_not_checked(tmp_path: Path) -> None:
    blob = tmp_path / "config"
    blob.write_bytes(b"anything at all")
    check_config(
        "sha256:x", "application/vnd.example.artifact.config+text", blob, "linux/arm64", where="a", delete=True
    )
    assert blob.exists()

"""The rig itself: real registries accept skopeo pushes of our sample images, byte for byte."""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from rig import skopeo
from rig.fixtures import SampleImages
from rig.images import build_image
from rig.layers import FileSpec, LayerSpec
from rig.net import http_status
from rig.registry import RunningRegistry
from rig.skopeo import SkopeoError
from rig.token_server import TokenServer


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_push_and_inspect_each_registry(
    any_registry: RunningRegistry, sample_image: SampleImages, unique_repo: str
) -> None:
    image = sample_image([512, 4096])
    skopeo.copy_layout_to_registry(image, any_registry, f"{unique_repo}:v1")

    raw = skopeo.inspect_raw(any_registry, f"{unique_repo}:v1")
    assert raw == image.manifest_bytes
    assert _sha256(raw) == image.manifest_digest
    assert skopeo.inspect_digest(any_registry, f"{unique_repo}@{image.manifest_digest}") == image.manifest_digest
    assert skopeo.list_tags(any_registry, unique_repo) == ["v1"]

    skopeo.delete(any_registry, f"{unique_repo}@{image.manifest_digest}")
    with pytest.raises(SkopeoError, match="manifest unknown"):
        skopeo.inspect_raw(any_registry, f"{unique_repo}:v1")


def test_v2_endpoint_status(any_registry: RunningRegistry) -> None:
    expected = 200 if any_registry.kind in ("plain", "tls") else 401
    assert http_status(f"{any_registry.url}/v2/", ca_cert=any_registry.ca_cert) == expected


def test_token_registry_refuses_anonymous_pull(
    token_registry: RunningRegistry, token_server: TokenServer, sample_image: SampleImages, unique_repo: str
) -> None:
    image = sample_image()
    skopeo.copy_layout_to_registry(image, token_registry, f"{unique_repo}:v1")
    assert token_server.request_count >= 1
    assert {r.user for r in token_server.requests if r.status == 200} == {"user"}

    with pytest.raises(SkopeoError, match="unauthorized"):
        skopeo.inspect_raw(token_registry, f"{unique_repo}:v1", creds="anonymous")
    with pytest.raises(SkopeoError, match="unauthorized"):
        skopeo.inspect_raw(token_registry, f"{unique_repo}:v1", creds=("user", "wrong-password"))
    assert any(r.status == 401 and r.user is None for r in token_server.requests)

    token_server.allow_anonymous = True
    assert skopeo.inspect_digest(token_registry, f"{unique_repo}:v1", creds="anonymous") == image.manifest_digest


def test_token_grants_and_expiry(
    token_registry: RunningRegistry, token_server: TokenServer, sample_image: SampleImages, unique_repo: str
) -> None:
    token_server.set_user("reader", "reader-pass", actions=("pull",))
    image = sample_image()
    skopeo.copy_layout_to_registry(image, token_registry, f"{unique_repo}:v1")
    assert skopeo.inspect_digest(token_registry, f"{unique_repo}:v1", creds=("reader", "reader-pass"))
    with pytest.raises(SkopeoError, match="denied"):
        skopeo.copy_layout_to_registry(image, token_registry, f"{unique_repo}:v2", creds=("reader", "reader-pass"))
    pushes = [r for r in token_server.requests if r.user == "reader" and any("push" in s.actions for s in r.scopes)]
    assert pushes and all("push" not in g.actions for r in pushes for g in r.granted)

    token_server.claim_lifetime = -120  # the registry allows 60 s of clock leeway
    with pytest.raises(SkopeoError, match="unauthorized"):
        skopeo.inspect_raw(token_registry, f"{unique_repo}:v1")


def test_multi_arch_round_trip_keeps_digests(
    plain_registry: RunningRegistry, sample_image: SampleImages, unique_repo: str, tmp_path: Path
) -> None:
    index = sample_image.multi_arch([300, 700])
    assert len({i.manifest_digest for i in index.images}) == 2
    skopeo.copy_layout_to_registry(index, plain_registry, f"{unique_repo}:multi")
    assert skopeo.inspect_raw(plain_registry, f"{unique_repo}:multi") == index.index_bytes
    for image in index.images:
        assert skopeo.inspect_raw(plain_registry, f"{unique_repo}@{image.manifest_digest}") == image.manifest_bytes

    pulled = tmp_path / "pulled"
    skopeo.copy_registry_to_oci(plain_registry, f"{unique_repo}:multi", pulled, "back")
    entries = json.loads((pulled / "index.json").read_text())["manifests"]
    assert [e["digest"] for e in entries] == [index.index_digest]
    skopeo.copy_layout_to_registry(pulled, plain_registry, f"{unique_repo}-again:multi", layout_tag="back")
    assert skopeo.inspect_digest(plain_registry, f"{unique_repo}-again:multi") == index.index_digest


def test_docker_media_types(basic_registry: RunningRegistry, sample_image: SampleImages, unique_repo: str) -> None:
    single = sample_image([100], docker=True)
    listed = sample_image.multi_arch([100], docker=True)
    skopeo.copy_layout_to_registry(single, basic_registry, f"{unique_repo}:single")
    skopeo.copy_layout_to_registry(listed, basic_registry, f"{unique_repo}:list")
    single_raw = json.loads(skopeo.inspect_raw(basic_registry, f"{unique_repo}:single"))
    assert single_raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert skopeo.inspect_digest(basic_registry, f"{unique_repo}:list") == listed.index_digest


def test_restart_keeps_port_and_storage(
    registry_factory: Callable[..., RunningRegistry], sample_image: SampleImages
) -> None:
    registry = registry_factory(extra_config={"log": {"level": "info"}})
    assert registry.kind == "custom"
    image = sample_image()
    skopeo.copy_layout_to_registry(image, registry, "r/img:1")
    host = registry.host
    registry.restart()
    assert registry.host == host
    assert skopeo.inspect_digest(registry, "r/img:1") == image.manifest_digest
    registry.stop()
    assert not registry.is_running()


def test_layers_are_what_the_config_says(tmp_path: Path) -> None:
    spec = LayerSpec((FileSpec("etc/hello.txt", data=b"hello\n"), FileSpec("data/a/b.bin", size=70_000)))
    image = build_image(tmp_path / "gz", [spec, 10, 0], seed="fixed")
    again = build_image(tmp_path / "again", [spec, 10, 0], seed="fixed")
    assert again.manifest_bytes == image.manifest_bytes  # reproducible
    plain = build_image(tmp_path / "tar", [spec], seed="fixed", compress=False)
    assert plain.layers[0].digest == plain.layers[0].diff_id == image.layers[0].diff_id

    config = json.loads(image.config_bytes)
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    for layer in image.layers:
        blob = layer.path.read_bytes()
        assert (_sha256(blob), len(blob)) == (layer.digest, layer.size)
        assert _sha256(gzip.decompress(blob)) == layer.diff_id
    with tarfile.open(image.layers[0].path) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["data/a/b.bin"].size == 70_000
        hello = tar.extractfile(members["etc/hello.txt"])
        assert hello is not None and hello.read() == b"hello\n"


def test_many_small_layers(plain_registry: RunningRegistry, sample_image: SampleImages, unique_repo: str) -> None:
    image = sample_image([64] * 40)
    assert len(set(image.layer_digests)) == 40
    skopeo.copy_layout_to_registry(image, plain_registry, f"{unique_repo}:40")
    assert skopeo.inspect_digest(plain_registry, f"{unique_repo}:40") == image.manifest_digest

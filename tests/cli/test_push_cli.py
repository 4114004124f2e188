"""`docker-image-pusher push` from the cache: what lands in the registry is exactly what the cache holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rig.proxy import start_proxy
from rig.skopeo import copy_layout_to_registry, copy_registry_to_oci, inspect_digest, inspect_raw

from .conftest import one_line_error

MIB = 1 << 20


def _pull(cli, registry, ref: str, cache: Path) -> None:
    r = cli("pull", registry.ref(ref), "--registry", registry.url, "--cache-dir", str(cache), "--disable-progress")
    assert r.returncode == 0, r.stderr


def _creds(registry) -> tuple[str, ...]:
    return ("-u", registry.username, "--password-stdin") if registry.username else ()


def _push(cli, cache: Path, source: str, registry, target: str, *extra: str):
    return cli(
        "push", "-s", source, registry.ref(target), "--registry", registry.url, "--cache-dir", str(cache),
        "--disable-progress", *_creds(registry), *extra, input=registry.password,
    )  # fmt: skip


@pytest.mark.parametrize("multi_arch", [False, True])
def test_pushed_image_has_the_cached_digests_and_skopeo_reads_it(
    cli_with_server, plain_registry, basic_registry, sample_image, unique_repo, tmp_path, multi_arch
):
    image = sample_image.multi_arch([3000, 200_000]) if multi_arch else sample_image([3000, 200_000], docker=True)
    digest = image.index_digest if multi_arch else image.manifest_digest
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    cache = tmp_path / "cache"
    _pull(cli_with_server, plain_registry, f"{unique_repo}:v1", cache)
    r = _push(cli_with_server, cache, f"{unique_repo}:v1", basic_registry, f"{unique_repo}/copy:v2")
    assert r.returncode == 0, r.stderr
    assert digest in r.stdout
    assert inspect_digest(basic_registry, f"{unique_repo}/copy:v2") == digest
    raw = inspect_raw(basic_registry, f"{unique_repo}/copy:v2")
    assert raw == (cache / "manifests" / unique_repo / "v1").read_bytes()
    oci = tmp_path / "oci"
    copy_registry_to_oci(basic_registry, f"{unique_repo}/copy:v2", oci, multi_arch=multi_arch)
    assert {p.name for p in (oci / "blobs" / "sha256").iterdir()} <= {
        p.name for p in (cache / "blobs" / "sha256").iterdir()
    }


def test_repush_sends_no_blob_body_only_heads_and_the_manifest(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([2 * MIB, 1 * MIB], compresslevel=0, random_source="urandom")
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    cache = tmp_path / "cache"
    _pull(cli_with_server, plain_registry, f"{unique_repo}:v1", cache)
    with start_proxy(plain_registry) as proxy:
        r = cli_with_server("push", "-s", f"{unique_repo}:v1", proxy.ref(f"{unique_repo}:v1"), "--registry", proxy.url,
                            "--cache-dir", str(cache))  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "0 uploaded, 3 already there" in r.stdout
        assert proxy.bytes_to_server < 64 * 1024, proxy.bytes_to_server  # HEADs and one small manifest PUT
    log = plain_registry.log_text()
    assert '"PUT /v2/' in log or "PUT /v2/" in log


def test_push_to_another_repository_of_the_same_registry_mounts_blobs(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([5000, 6000])
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}/a:v1")
    cache = tmp_path / "cache"
    _pull(cli_with_server, plain_registry, f"{unique_repo}/a:v1", cache)
    r = _push(cli_with_server, cache, f"{unique_repo}/a:v1", plain_registry, f"{unique_repo}/b:v1")
    assert r.returncode == 0, r.stderr
    assert "0 uploaded, 0 already there, 3 mounted" in r.stdout
    assert inspect_digest(plain_registry, f"{unique_repo}/b:v1") == image.manifest_digest


@pytest.mark.parametrize("extra", [("--force-upload",), ("--force-upload", "--chunk-size", "1MiB")])
def test_forced_and_chunked_uploads_store_the_same_bytes(
    cli_with_server, plain_registry, basic_registry, sample_image, unique_repo, tmp_path, extra
):
    image = sample_image([3 * MIB + 123], compresslevel=0, random_source="urandom")
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    copy_layout_to_registry(image, basic_registry, f"{unique_repo}:v1")  # already there: force sends it anyway
    cache = tmp_path / "cache"
    _pull(cli_with_server, plain_registry, f"{unique_repo}:v1", cache)
    r = _push(cli_with_server, cache, f"{unique_repo}:v1", basic_registry, f"{unique_repo}:v1", *extra)
    assert r.returncode == 0, r.stderr
    assert "(2 uploaded" in r.stdout
    assert inspect_digest(basic_registry, f"{unique_repo}:v1") == image.manifest_digest
    if "--chunk-size" in extra:
        assert "PATCH /v2/" in basic_registry.log_text()


def test_push_of_an_image_not_in_the_cache_exits_4(cli, tmp_path):
    r = cli("push", "-s", "team/nothing:v1", "127.0.0.1:9/x:y", "--registry", "http://127.0.0.1:9",
            "--cache-dir", str(tmp_path / "c"))  # fmt: skip
    assert r.returncode == 4, r.stderr
    assert "not in the cache" in r.stderr and "Traceback" not in r.stderr


def test_push_without_push_rights_exits_3(
    cli_with_server, plain_registry, token_registry, token_server, sample_image, unique_repo, tmp_path
):
    image = sample_image([100])
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    cache = tmp_path / "cache"
    _pull(cli_with_server, plain_registry, f"{unique_repo}:v1", cache)
    token_server.set_user("reader", "reader-pass-1", actions=("pull",))
    r = cli_with_server(
        "push", "-s", f"{unique_repo}:v1", token_registry.ref(f"{unique_repo}:v1"), "--registry", token_registry.url,
        "--cache-dir", str(cache), "-u", "reader", "--password-stdin", "--retry-attempts", "0", input="reader-pass-1",
    )  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert "reader-pass-1" not in r.stderr + r.stdout
    assert "push" in one_line_error(r.stderr)


def test_list_json_describes_what_was_pulled(cli_with_server, plain_registry, sample_image, unique_repo, tmp_path):
    index = sample_image.multi_arch([100])
    copy_layout_to_registry(index, plain_registry, f"{unique_repo}:v1")
    cache = tmp_path / "cache"
    _pull(cli_with_server, plain_registry, f"{unique_repo}:v1", cache)
    (item,) = json.loads(cli_with_server("list", "--json", "--cache-dir", str(cache)).stdout)
    assert item["key"] == f"{unique_repo}/v1" and item["manifest_digest"] == index.index_digest
    assert len(item["platforms"]) == 2 and item["size"] > 0


@pytest.mark.parametrize("chunked", [False, True])
def test_a_connection_dropped_mid_upload_is_recovered(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path, chunked
):
    image = sample_image([4 * MIB], compresslevel=0, random_source="urandom")
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:src")
    cache = tmp_path / "cache"
    _pull(cli_with_server, plain_registry, f"{unique_repo}:src", cache)
    extra = ("--chunk-size", "1MiB") if chunked else ()
    with start_proxy(plain_registry) as proxy:
        # The upload's body breaks once, part-way (1 MiB chunks may spread over pooled connections: cut early).
        proxy.cut_after_bytes(int(1.5 * MIB if chunked else 2.5 * MIB), to_server=True)
        r = cli_with_server("push", "-s", f"{unique_repo}:src", proxy.ref(f"{unique_repo}/dst:v1"), "--registry",
                            proxy.url, "--cache-dir", str(cache), "--retry-attempts", "2", *extra)  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert proxy.cuts == 1
        sent = proxy.bytes_to_server
    assert inspect_digest(plain_registry, f"{unique_repo}/dst:v1") == image.manifest_digest
    # distribution cancels an upload session whose size no longer matches its state after a broken PATCH,
    # so the blob is sent again in full once: never more than that.
    assert sent < 2 * image.layer_sizes[0] + 512 * 1024

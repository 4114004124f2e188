"""Bad input and failures: one clear line on stderr, a distinct exit code, no secret, the cache as it was."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest
from rig.skopeo import copy_layout_to_registry

from .conftest import one_line_error


def _snapshot(cache: Path) -> dict[str, str]:
    """Everything that is cache content: index, manifests, blobs, and any leftover data in tmp/."""
    if not cache.exists():
        return {}
    return {
        str(p.relative_to(cache)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(cache.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


@pytest.fixture
def seeded_cache(cli_with_server, plain_registry, sample_image, unique_repo, tmp_path):
    """A cache that already holds one image, so that we can check failures leave it untouched."""
    image = sample_image([1000])
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}-seed:v1")
    cache = tmp_path / "cache"
    r = cli_with_server("pull", plain_registry.ref(f"{unique_repo}-seed:v1"), "--cache-dir", str(cache))
    assert r.returncode == 0, r.stderr
    return cache


@pytest.mark.parametrize("image", ["UPPER/case:v1", "a//b", "repo:tag:extra", "x@sha256:123", "team/../etc:v1"])
def test_invalid_references_exit_2(cli, image, tmp_path):
    r = cli("pull", image, "--cache-dir", str(tmp_path / "c"))
    assert r.returncode == 2
    assert "invalid" in one_line_error(r.stderr)
    assert not (tmp_path / "c").exists()


def test_repository_name_with_dot_dot_is_refused_before_touching_anything(cli, tmp_path):
    r = cli("pull", "-r", "a/../../etc", "-t", "v1", "--registry", "http://127.0.0.1:9", "--cache-dir", "c")
    assert r.returncode == 2
    assert "invalid repository name" in one_line_error(r.stderr)
    assert not (tmp_path / "c").exists()


def test_unknown_repository_and_tag_exit_4(cli_with_server, plain_registry, seeded_cache, unique_repo):
    before = _snapshot(seeded_cache)
    for ref in (f"{unique_repo}-nothing:v1", f"{unique_repo}-seed:nope"):
        r = cli_with_server("pull", plain_registry.ref(ref), "--cache-dir", str(seeded_cache), "--retry-attempts", "0")
        assert r.returncode == 4, r.stderr
        assert "not found" in one_line_error(r.stderr).lower()
    assert _snapshot(seeded_cache) == before


def test_wrong_credentials_exit_3_and_never_echo_the_password(
    cli_with_server, basic_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([100])
    copy_layout_to_registry(image, basic_registry, f"{unique_repo}:v1")
    ref = basic_registry.ref(f"{unique_repo}:v1")
    wrong = "wrong-password-123"
    r = cli_with_server("pull", ref, "-u", "user", "--password-stdin", "--cache-dir", "c", input=wrong + "\n")
    assert r.returncode == 3, r.stderr
    one_line_error(r.stderr)
    assert wrong not in r.stderr + r.stdout
    ok = cli_with_server("pull", ref, "-u", "user", "--password-stdin", "--cache-dir", "c", input="secret-pass\n")
    assert ok.returncode == 0, ok.stderr
    assert "secret-pass" not in ok.stderr + ok.stdout


def test_anonymous_pull_from_a_registry_that_needs_login_exits_3(
    cli_with_server, basic_registry, sample_image, unique_repo
):
    image = sample_image([100])
    copy_layout_to_registry(image, basic_registry, f"{unique_repo}:v1")
    r = cli_with_server("pull", basic_registry.ref(f"{unique_repo}:v1"), "--cache-dir", "c", "--retry-attempts", "0")
    assert r.returncode == 3, r.stderr
    one_line_error(r.stderr)


def test_token_auth_pull_with_credentials(cli_with_server, token_registry, token_server, sample_image, unique_repo):
    image = sample_image([100, 200])
    copy_layout_to_registry(image, token_registry, f"{unique_repo}:v1")
    token_server.reset()
    r = cli_with_server(
        "pull", token_registry.ref(f"{unique_repo}:v1"), "-u", "user", "--password-stdin", "--cache-dir", "c",
        input="secret-pass",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert token_server.request_count >= 1
    for req in token_server.requests:  # every token asked for exactly the pull scope of this repository
        assert [(s.type, s.name, s.actions) for s in req.scopes] == [("repository", unique_repo, ("pull",))]
        assert req.user == "user"


def test_registry_down_exits_5(cli_with_server, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = cli_with_server("pull", f"127.0.0.1:{port}/a/b:v1", "--registry", f"http://127.0.0.1:{port}",
                        "--cache-dir", "c", "--retry-attempts", "0")  # fmt: skip
    assert r.returncode == 5, r.stderr
    one_line_error(r.stderr)


def test_tls_certificate_is_verified_unless_told_otherwise(
    cli_with_server, tls_registry, sample_image, unique_repo, tmp_path
):
    image = sample_image([100])
    copy_layout_to_registry(image, tls_registry, f"{unique_repo}:v1")
    ref = tls_registry.ref(f"{unique_repo}:v1")
    r = cli_with_server("pull", ref, "--registry", tls_registry.url, "--cache-dir", "c", "--retry-attempts", "0")
    assert r.returncode == 5, r.stderr
    assert "certificate" in one_line_error(r.stderr).lower()
    r = cli_with_server(
        "pull", ref, "--registry", tls_registry.url, "--cache-dir", "c", "--ca-file", str(tls_registry.ca_cert)
    )
    assert r.returncode == 0, r.stderr
    r = cli_with_server("pull", ref, "--registry", tls_registry.url, "--cache-dir", "c2", "--skip-tls")
    assert r.returncode == 0, r.stderr


def test_a_blob_that_does_not_match_its_digest_is_discarded(
    cli_with_server, plain_registry, sample_image, unique_repo, seeded_cache
):
    image = sample_image([50_000])
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:bad")
    layer = image.layer_digests[0].removeprefix("sha256:")
    data = next(plain_registry.storage_dir.rglob(f"blobs/sha256/{layer[:2]}/{layer}/data"))
    content = bytearray(data.read_bytes())
    content[100] ^= 0xFF  # same size, wrong bytes
    data.write_bytes(bytes(content))
    before = _snapshot(seeded_cache)
    r = cli_with_server("pull", plain_registry.ref(f"{unique_repo}:bad"), "--cache-dir", str(seeded_cache),
                        "--retry-attempts", "1")  # fmt: skip
    assert r.returncode == 6, r.stderr
    assert image.layer_digests[0] in one_line_error(r.stderr)
    after = _snapshot(seeded_cache)
    assert not any(layer in k for k in after)
    # Only content-addressed manifest/config blobs (verified, harmless, reusable) may have been added.
    added = set(after) - set(before)
    assert added <= {f"blobs/sha256/{d.removeprefix('sha256:')}" for d in (image.manifest_digest, image.config_digest)}
    assert {k: v for k, v in after.items() if k in before} == before

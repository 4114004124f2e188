"""`docker-image-pusher mirror SPEC.yaml`: a token-auth source, a Basic-auth destination, skopeo as the judge.

Credentials come from docker's config.json in the CLI's home, as they would for a user of docker or skopeo.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from rig import skopeo

from .conftest import Cli, one_line_error


def _docker_config(home: Path, *registries) -> None:
    auths = {}
    for registry in registries:
        user, password = registry.creds
        auths[registry.host] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    (home / ".docker").mkdir(exist_ok=True)
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": auths}))


def _spec(path: Path, source, destination, images: list[dict[str, Any]]) -> Path:
    import yaml

    body = {
        "source": {"registry": source.url},
        "destination": {"registry": destination.url},
        "images": images,
    }
    path.write_text(yaml.safe_dump(body))
    return path


_ROW = re.compile(r"^(copied|unchanged|failed|would copy) +[^/ ]+/(\S+) -> ")


def _actions(stdout: str) -> dict[str, str]:
    """'copied     host/a:1 -> host/b:1 (new) ...' lines -> {"a:1": "copied"}"""
    return {m[2]: m[1] for m in map(_ROW.match, stdout.splitlines()) if m}


def test_mirror_copies_what_differs_and_nothing_twice(
    cli_with_server: Cli, token_registry, token_server, basic_registry, sample_image, unique_repo, tmp_path
):
    app, multi = f"{unique_repo}-app", f"{unique_repo}-multi"
    for tag in ("v1", "v2", "v3-rc1", "old"):
        skopeo.copy_layout_to_registry(sample_image([300, 200]), token_registry, f"{app}:{tag}")
    index = sample_image.multi_arch([400])
    skopeo.copy_layout_to_registry(index, token_registry, f"{multi}:1.0")
    _docker_config(tmp_path, token_registry, basic_registry)
    spec = _spec(
        tmp_path / "mirror.yaml",
        token_registry,
        basic_registry,
        [
            {"repository": app, "include": [r"v\d+.*"], "exclude": ["-rc"]},
            {"repository": multi, "tags": ["1.0"]},
        ],
    )
    wanted = {f"{app}:v1", f"{app}:v2", f"{multi}:1.0"}

    first = cli_with_server("mirror", str(spec), "--cache-dir", "c")
    assert first.returncode == 0, first.stderr
    assert _actions(first.stdout) == dict.fromkeys(wanted, "copied")
    for ref in wanted:  # byte-identical manifests (and so the same digests), the index with both platforms
        assert skopeo.inspect_raw(basic_registry, ref) == skopeo.inspect_raw(token_registry, ref)
    assert sorted(skopeo.list_tags(basic_registry, app)) == ["v1", "v2"]
    for platform_child in json.loads(skopeo.inspect_raw(basic_registry, f"{multi}:1.0"))["manifests"]:
        skopeo.inspect_raw(basic_registry, f"{multi}@{platform_child['digest']}")

    again = cli_with_server("mirror", str(spec), "--cache-dir", "c")
    assert again.returncode == 0, again.stderr
    assert _actions(again.stdout) == dict.fromkeys(wanted, "unchanged")
    assert "0 copied, 3 unchanged" in again.stdout

    # A retag at the source: only that image is copied again.
    skopeo.copy_layout_to_registry(sample_image([123]), token_registry, f"{app}:v2")
    dry = cli_with_server("mirror", str(spec), "--cache-dir", "c", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert _actions(dry.stdout)[f"{app}:v2"] == "would copy"
    assert skopeo.inspect_raw(basic_registry, f"{app}:v2") != skopeo.inspect_raw(token_registry, f"{app}:v2")
    retag = cli_with_server("mirror", str(spec), "--cache-dir", "c")
    assert retag.returncode == 0, retag.stderr
    assert _actions(retag.stdout) == {f"{app}:v1": "unchanged", f"{app}:v2": "copied", f"{multi}:1.0": "unchanged"}
    assert skopeo.inspect_raw(basic_registry, f"{app}:v2") == skopeo.inspect_raw(token_registry, f"{app}:v2")

    # Deleted at the destination: copied again.
    skopeo.delete(basic_registry, f"{app}:v1")
    restore = cli_with_server("mirror", str(spec), "--cache-dir", "c")
    assert restore.returncode == 0, restore.stderr
    assert _actions(restore.stdout)[f"{app}:v1"] == "copied"
    assert skopeo.inspect_raw(basic_registry, f"{app}:v1") == skopeo.inspect_raw(token_registry, f"{app}:v1")

    outputs = "".join(r.stdout + r.stderr for r in (first, again, dry, retag, restore))
    secrets = [p for _, p in (token_registry.creds, basic_registry.creds)]
    secrets += [r.token for r in token_server.requests if r.token]
    assert len(secrets) > 2  # tokens were issued, so the check below means something
    for secret in secrets:
        assert secret not in outputs


def test_a_tag_missing_at_the_source_fails_the_mirror_with_one_line_and_copies_the_rest(
    cli_with_server: Cli, plain_registry, registry_factory, sample_image, unique_repo, tmp_path
):
    destination = registry_factory()
    skopeo.copy_layout_to_registry(sample_image([100]), plain_registry, f"{unique_repo}:here")
    spec = _spec(
        tmp_path / "m.yaml", plain_registry, destination, [{"repository": unique_repo, "tags": ["here", "gone"]}]
    )
    r = cli_with_server("mirror", str(spec), "--cache-dir", "c", "--retry-attempts", "0")
    assert r.returncode == 4, r.stderr
    assert _actions(r.stdout) == {f"{unique_repo}:here": "copied", f"{unique_repo}:gone": "failed"}
    error = one_line_error(r.stderr)
    assert "gone" in error and "not found" in error
    assert skopeo.list_tags(destination, unique_repo) == ["here"]


def test_a_bad_spec_is_a_usage_error_before_anything_runs(cli: Cli, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("source: {registry: 'http://127.0.0.1:1'}\ndestination: {registry: 'http://127.0.0.1:2'}\n"
                    "images: [{repository: a, include: ['(']}]\n")  # fmt: skip
    r = cli("mirror", str(spec), "--cache-dir", "c")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "bad regex" in r.stderr
    assert not (tmp_path / "c").exists()


def test_a_platform_subset_is_compared_without_a_manifest_get_once_its_index_is_cached(
    cli_with_server: Cli, plain_registry, registry_factory, sample_image, unique_repo, tmp_path
):
    destination = registry_factory()
    index = sample_image.multi_arch([300])
    skopeo.copy_layout_to_registry(index, plain_registry, f"{unique_repo}:v1")
    children = json.loads(skopeo.inspect_raw(plain_registry, f"{unique_repo}:v1"))["manifests"]
    amd64 = next(c["digest"] for c in children if c["platform"]["architecture"] == "amd64")
    images = [{"repository": unique_repo, "tags": ["v1"], "platforms": ["linux/amd64"]}]
    spec = _spec(tmp_path / "m.yaml", plain_registry, destination, images)

    first = cli_with_server("mirror", str(spec), "--cache-dir", "c")
    assert first.returncode == 0, first.stderr
    assert _actions(first.stdout) == {f"{unique_repo}:v1": "copied"}
    assert skopeo.inspect_digest(destination, f"{unique_repo}:v1") == amd64  # the one platform's own manifest

    again = cli_with_server("mirror", str(spec), "--cache-dir", "c")
    assert again.returncode == 0, again.stderr
    assert _actions(again.stdout) == {f"{unique_repo}:v1": "unchanged"}
    assert "same digest" in again.stdout
    # With a fresh cache the index is unknown: the GET tells, and still nothing is pushed.
    fresh = cli_with_server("mirror", str(spec), "--cache-dir", "fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert _actions(fresh.stdout) == {f"{unique_repo}:v1": "unchanged"}
    assert "0 B sent" in fresh.stdout


def test_an_immutable_tag_at_the_destination_is_never_copied_again(
    cli_with_server: Cli, plain_registry, registry_factory, sample_image, unique_repo, tmp_path
):
    destination = registry_factory()
    for tag in ("1.0.0", "latest"):
        skopeo.copy_layout_to_registry(sample_image([100]), plain_registry, f"{unique_repo}:{tag}")
    images = [{"repository": unique_repo, "tags": ["1.0.0", "latest"], "immutable": [r"\d+\.\d+\.\d+"]}]
    spec = _spec(tmp_path / "m.yaml", plain_registry, destination, images)
    assert cli_with_server("mirror", str(spec), "--cache-dir", "c").returncode == 0
    before = skopeo.inspect_raw(destination, f"{unique_repo}:1.0.0")
    for tag in ("1.0.0", "latest"):  # both retagged at the source
        skopeo.copy_layout_to_registry(sample_image([200]), plain_registry, f"{unique_repo}:{tag}")
    r = cli_with_server("mirror", str(spec), "--cache-dir", "c")
    assert r.returncode == 0, r.stderr
    assert _actions(r.stdout) == {f"{unique_repo}:1.0.0": "unchanged", f"{unique_repo}:latest": "copied"}
    assert skopeo.inspect_raw(destination, f"{unique_repo}:1.0.0") == before


def test_a_repository_the_source_does_not_have_is_listed_as_failed(
    cli_with_server: Cli, plain_registry, registry_factory, sample_image, unique_repo, tmp_path
):
    destination = registry_factory()
    skopeo.copy_layout_to_registry(sample_image([100]), plain_registry, f"{unique_repo}:v1")
    images = [{"repository": f"{unique_repo}-absent", "include": [".*"]}, {"repository": unique_repo, "tags": ["v1"]}]
    r = cli_with_server("mirror", str(_spec(tmp_path / "m.yaml", plain_registry, destination, images)),
                        "--cache-dir", "c", "--retry-attempts", "0")  # fmt: skip
    assert r.returncode == 4, r.stderr
    assert _actions(r.stdout) == {f"{unique_repo}-absent": "failed", f"{unique_repo}:v1": "copied"}
    assert skopeo.list_tags(destination, unique_repo) == ["v1"]


def test_one_source_tag_mirrored_twice_with_different_platforms_lands_right_at_both(
    cli_with_server: Cli, plain_registry, registry_factory, sample_image, unique_repo, tmp_path
):
    """Both copies pull the same tag into one cache at once; each pushes what it pulled (recorded by digest)."""
    destination = registry_factory()
    skopeo.copy_layout_to_registry(sample_image.multi_arch([300, 200]), plain_registry, f"{unique_repo}:v1")
    children = json.loads(skopeo.inspect_raw(plain_registry, f"{unique_repo}:v1"))["manifests"]
    by_arch = {c["platform"]["architecture"]: c["digest"] for c in children}
    images = [
        {
            "repository": unique_repo,
            "destination": f"{unique_repo}-{arch}",
            "tags": ["v1"],
            "platforms": [f"linux/{arch}"],
        }
        for arch in ("amd64", "arm64")
    ]
    r = cli_with_server("mirror", str(_spec(tmp_path / "m.yaml", plain_registry, destination, images)),
                        "--cache-dir", "c", "--images-at-once", "2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    for arch, digest in by_arch.items():
        assert skopeo.inspect_digest(destination, f"{unique_repo}-{arch}:v1") == digest

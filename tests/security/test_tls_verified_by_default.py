"""TLS certificates are verified by default for push and mirror too (pull: tests/cli/test_pull_errors.py): a
registry whose certificate no trusted CA signed fails with one line naming the certificate problem and how
to go on; with the registry's CA (--ca-file, or ca_file in a mirror spec) the same run works."""

from __future__ import annotations

from pathlib import Path

import yaml
from rig import skopeo
from rig.fixtures import SampleImages
from rig.registry import RunningRegistry

from .conftest import Runner

EXIT_NETWORK = 5


def _assert_certificate_error(stderr: str) -> None:
    from cli.conftest import one_line_error

    error = one_line_error(stderr).lower()
    assert "certificate" in error and "--ca-file" in error, error


def test_push_verifies_the_registry_certificate_unless_given_its_ca(
    runner: Runner, plain_registry: RunningRegistry, tls_registry: RunningRegistry, sample_image: SampleImages,
    unique_repo: str,
) -> None:  # fmt: skip
    skopeo.copy_layout_to_registry(sample_image([700, 9000]), plain_registry, f"{unique_repo}:v1")
    assert runner("pull", plain_registry.ref(f"{unique_repo}:v1"), "--cache-dir", "c").returncode == 0
    args = ("push", "-s", f"{unique_repo}:v1", tls_registry.ref(f"{unique_repo}:v1"), "--registry", tls_registry.url,
            "--cache-dir", "c", "--retry-attempts", "0")  # fmt: skip
    refused = runner(*args)
    assert refused.returncode == EXIT_NETWORK, refused.stderr
    _assert_certificate_error(refused.stderr)
    assert not _has_repo(tls_registry, unique_repo)
    done = runner(*args, "--ca-file", str(tls_registry.ca_cert))
    assert done.returncode == 0, done.stderr
    assert skopeo.inspect_raw(tls_registry, f"{unique_repo}:v1") == skopeo.inspect_raw(
        plain_registry, f"{unique_repo}:v1"
    )


def _has_repo(registry: RunningRegistry, repo: str) -> bool:
    return (registry.storage_dir / "docker" / "registry" / "v2" / "repositories" / repo).exists()


def _spec(path: Path, source: RunningRegistry, destination: RunningRegistry, repo: str, ca: Path | None) -> Path:
    side: dict[str, object] = {"registry": destination.url}
    if ca is not None:
        side["ca_file"] = str(ca)
    path.write_text(yaml.safe_dump({
        "source": {"registry": source.url}, "destination": side, "images": [{"repository": repo, "tags": ["v1"]}],
    }))  # fmt: skip
    return path


def test_mirror_verifies_the_destination_certificate_unless_the_spec_names_its_ca(
    runner: Runner, plain_registry: RunningRegistry, tls_registry: RunningRegistry, sample_image: SampleImages,
    unique_repo: str,
) -> None:  # fmt: skip
    skopeo.copy_layout_to_registry(sample_image([800, 7000]), plain_registry, f"{unique_repo}:v1")
    trusting = _spec(runner.work / "m.yaml", plain_registry, tls_registry, unique_repo, None)
    refused = runner("mirror", str(trusting), "--cache-dir", "c", "--retry-attempts", "0")
    assert refused.returncode == EXIT_NETWORK, refused.stderr
    _assert_certificate_error(refused.stderr)
    assert not _has_repo(tls_registry, unique_repo)
    with_ca = _spec(runner.work / "m2.yaml", plain_registry, tls_registry, unique_repo, tls_registry.ca_cert)
    done = runner("mirror", str(with_ca), "--cache-dir", "c")
    assert done.returncode == 0, done.stderr
    assert skopeo.inspect_raw(tls_registry, f"{unique_repo}:v1") == skopeo.inspect_raw(
        plain_registry, f"{unique_repo}:v1"
    )

"""How saved images are named: the full name, docker's short RepoTag, the OCI ref.name."""

from __future__ import annotations

import pytest

from docker_image_pusher.saving import ImageName, image_name

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("registry", "repository", "reference", "expected"),
    [
        ("registry-1.docker.io", "library/nginx", "1.27",
         ImageName("docker.io/library/nginx:1.27", "nginx:1.27", "1.27", "nginx")),
        ("docker.io", "nginx", "latest",
         ImageName("docker.io/library/nginx:latest", "nginx:latest", "latest", "nginx")),
        ("registry-1.docker.io", "me/app", "v1", ImageName("docker.io/me/app:v1", "me/app:v1", "v1", "me/app")),
        ("registry-1.docker.io", "library/a/b", "v1",
         ImageName("docker.io/library/a/b:v1", "library/a/b:v1", "v1", "library/a/b")),
        ("127.0.0.1:5000", "team/app", "v1",
         ImageName("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app:v1", "v1", "127.0.0.1:5000/team/app")),
        ("ghcr.io", "org/app", DIGEST, ImageName(f"ghcr.io/org/app@{DIGEST}", None, None, "ghcr.io/org/app")),
        (None, "library/nginx", "1.27", ImageName("docker.io/library/nginx:1.27", "nginx:1.27", "1.27", "nginx")),
        (None, "busybox", "1", ImageName("docker.io/library/busybox:1", "busybox:1", "1", "busybox")),
        (None, "quay.io/org/app", "v1",
         ImageName("quay.io/org/app:v1", "quay.io/org/app:v1", "v1", "quay.io/org/app")),
        (None, "localhost/app", DIGEST, ImageName(f"localhost/app@{DIGEST}", None, None, "localhost/app")),
    ],
)  # fmt: skip
def test_image_names(registry: str | None, repository: str, reference: str, expected: ImageName) -> None:
    assert image_name(registry, repository, reference) == expected

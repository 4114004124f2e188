import pytest

from docker_image_pusher.errors import UsageError
from docker_image_pusher.reference import parse_reference, reference_from_parts

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "registry-1.docker.io", "library/nginx", "latest", None),
        ("nginx:1.27", "registry-1.docker.io", "library/nginx", "1.27", None),
        ("docker.io/nginx", "registry-1.docker.io", "library/nginx", "latest", None),
        ("index.docker.io/org/app:v1", "registry-1.docker.io", "org/app", "v1", None),
        (f"ghcr.io/org/app@{DIGEST}", "ghcr.io", "org/app", None, DIGEST),
        (f"ghcr.io/org/app:v2@{DIGEST}", "ghcr.io", "org/app", "v2", DIGEST),
        ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000", "team/app", "v1", None),
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/app", "localhost:5000", "app", "latest", None),
        ("[::1]:5000/a/b:c", "[::1]:5000", "a/b", "c", None),
        ("library/ubuntu", "registry-1.docker.io", "library/ubuntu", "latest", None),
        ("a.b-c/d__e/f--g.h:T_1.2-x", "a.b-c", "d__e/f--g.h", "T_1.2-x", None),
    ],
)
def test_references_normalise_like_docker(text, registry, repository, tag, digest):
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " nginx",
        "UPPER/case",
        "a//b",
        "../etc/passwd",
        "127.0.0.1:5000/../x",
        "repo/..",
        "/abs",
        "trailing/",
        "a:b:c",
        "name@sha256:short",
        "name@md5:" + "a" * 32,
        "name:" + "t" * 129,
        "name:-bad",
        "a/" + "b" * 260,
        "host:port/app",
        "name@",
    ],
)
def test_malformed_references_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_reference(text)


def test_names_without_host_go_to_the_given_default_registry():
    ref = parse_reference("team/app:v1", default_registry="127.0.0.1:5000")
    assert (ref.registry, ref.repository) == ("127.0.0.1:5000", "team/app")
    assert parse_reference("app", default_registry="127.0.0.1:5000").repository == "app"


def test_repository_and_reference_form():
    assert reference_from_parts("ubuntu", None, "docker.io").repository == "library/ubuntu"
    ref = reference_from_parts("team/app", DIGEST, "127.0.0.1:5000")
    assert ref.digest == DIGEST and ref.tag is None and ref.reference == DIGEST
    with pytest.raises(UsageError):
        reference_from_parts("team/../app", "v1", "127.0.0.1:5000")

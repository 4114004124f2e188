import copy
import json
import textwrap
from typing import Any

import pytest
import yaml

from docker_image_pusher.endpoint import Endpoint
from docker_image_pusher.errors import UsageError
from docker_image_pusher.mirror import MirrorSpec, load_spec, spec_from_dict

FULL = r"""
source:
  registry: https://registry-1.docker.io
  credentials_secret: docker-hub
destination:
  registry: http://127.0.0.1:5000
  repository_prefix: mirror/
  ca_file: /etc/ssl/local-ca.pem
defaults:
  platforms: [linux/amd64, linux/arm64/v8]
  immutable: ['^v?\d+\.\d+\.\d+$']
images:
  - repository: alpine
    tags: ["3.19", "3.20"]
    include: ['^3\.\d+$']
    exclude: ['-rc\d*$']
    newest: 3
  - repository: library/nginx
    destination: tools/nginx
    include: ['.*']
    platforms: []
    immutable: []
rate_limit:
  reserve: 5
  max_wait_seconds: 600
"""

MINIMAL: dict[str, Any] = {
    "source": {"registry": "ghcr.io"},
    "destination": {"registry": "127.0.0.1:5000"},
    "images": [{"repository": "org/app", "tags": ["v1"]}],
}


def write(tmp_path, text, name="mirror.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_error(path):
    with pytest.raises(UsageError) as caught:
        load_spec(path)
    message = caught.value.message
    assert "\n" not in message
    assert message.startswith(f"mirror spec {path}")
    return message


def test_a_full_spec_loads_with_every_key(tmp_path):
    spec = load_spec(write(tmp_path, FULL))
    assert spec.source.host == "registry-1.docker.io" and spec.source.scheme == "https"
    assert spec.source.credentials_secret == "docker-hub"
    assert spec.destination.endpoint("ref") == Endpoint(
        host="127.0.0.1:5000", scheme="http", verify_tls=True, ca_file="/etc/ssl/local-ca.pem", auth_ref="ref"
    )
    assert spec.destination.repository_prefix == "mirror"  # a trailing '/' is optional
    alpine, _ = spec.images
    assert alpine.tags == ("3.19", "3.20") and alpine.newest == 3 and alpine.platforms is None
    assert (spec.rate_limit.reserve, spec.rate_limit.max_wait_seconds) == (5, 600)


def test_resolved_images_apply_defaults_prefix_and_docker_hub_names(tmp_path):
    alpine, nginx = load_spec(write(tmp_path, FULL)).images_resolved()
    assert (alpine.index, alpine.repository, alpine.destination) == (0, "library/alpine", "mirror/library/alpine")
    assert alpine.platforms == ("linux/amd64", "linux/arm64/v8")
    assert alpine.immutable == (r"^v?\d+\.\d+\.\d+$",)
    assert (nginx.repository, nginx.destination) == ("library/nginx", "tools/nginx")  # no prefix on an explicit one
    assert nginx.platforms == () and nginx.immutable == ()  # [] overrides the defaults: all platforms, none immutable


def test_a_minimal_spec_gets_the_documented_defaults(tmp_path):
    spec = load_spec(write(tmp_path, yaml.safe_dump(MINIMAL)))
    assert spec.source.skip_tls is False and spec.source.ca_file is None
    assert spec.source.scheme is None  # bare host: https, with docker's plain-http fallback on loopback
    assert spec.destination.repository_prefix == ""
    assert (spec.rate_limit.reserve, spec.rate_limit.max_wait_seconds) == (2, 3600)
    (image,) = spec.images_resolved()
    assert (image.repository, image.destination, image.platforms, image.immutable) == ("org/app", "org/app", (), ())
    assert not image.needs_listing


def test_empty_optional_sections_mean_their_defaults(tmp_path):
    text = yaml.safe_dump(MINIMAL) + "defaults:\nrate_limit:\n"
    spec = load_spec(write(tmp_path, text))
    assert spec.rate_limit.reserve == 2 and spec.defaults.platforms == ()


def test_to_dict_is_plain_json_and_round_trips(tmp_path):
    spec = load_spec(write(tmp_path, FULL))
    data = json.loads(json.dumps(spec.to_dict()))
    assert data["images"][0]["tags"] == ["3.19", "3.20"]
    again = spec_from_dict(data)
    assert again == spec
    assert isinstance(again, MirrorSpec) and list(again.images_resolved()) == list(spec.images_resolved())


def test_spec_from_dict_names_its_source_in_errors():
    data = copy.deepcopy(MINIMAL)
    data["images"][0]["newest"] = 0
    with pytest.raises(UsageError, match=r"^mirror spec deployment 'nightly': images\[0\]\.newest \(org/app\): "):
        spec_from_dict(data, "deployment 'nightly'")
    with pytest.raises(UsageError, match=r"^mirror spec <parameters>: expected a mapping"):
        spec_from_dict(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_errors_name_the_line_in_the_file(tmp_path):
    path = write(
        tmp_path,
        """\
        source: {registry: ghcr.io}
        destination: {registry: "127.0.0.1:5000"}
        images:
          - repository: org/app
            tags: [v1]
          - repository: org/tool
            include:
              - '^v\\d+$'
              - '(unclosed'
        """,
    )
    assert load_error(path) == (
        f"mirror spec {path}, line 9: images[1].include[1] (org/tool): bad regex '(unclosed': "
        "missing ), unterminated subpattern at position 0"
    )


def _set(path, value):
    def change(data):
        *parents, last = path
        node = data
        for key in parents:
            node = node[key]
        node[last] = value

    return change


def _delete(path):
    def change(data):
        *parents, last = path
        node = data
        for key in parents:
            node = node[key]
        del node[last]

    return change


def _add_image(**image):
    def change(data):
        data["images"].append(image)

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_set(["images", 0, "include"], ["ok", "[a-"]), "images[0].include[1] (org/app): bad regex '[a-': "),
        (_set(["images", 0, "exclude"], ["*x"]), "images[0].exclude[0] (org/app): bad regex '*x': nothing to repeat"),
        (_set(["defaults"], {"immutable": ["(?P<"]}), "defaults.immutable[0]: bad regex"),
        (_set(["images", 0, "tagz"], ["v1"]), "images[0].tagz (org/app): unknown key (did you mean 'tags'?)"),
        (_set(["imagse"], []), "imagse: unknown key (did you mean 'images'?)"),
        (_set(["rate_limit"], {"wait": 1}), "rate_limit.wait: unknown key (expected one of: reserve, max_wait"),
        (_delete(["images", 0, "repository"]), "images[0].repository: required, but missing"),
        (_delete(["destination"]), "destination: required, but missing"),
        (_set(["images", 0, "repository"], "Org/App"), "images[0].repository (Org/App): invalid repository name"),
        (_set(["images", 0, "repository"], "../etc"), "images[0].repository (../etc): invalid repository name"),
        (_set(["images", 0, "destination"], "a//b"), "images[0].destination (org/app): invalid repository name"),
        (_set(["destination", "repository_prefix"], "Bad/"), "destination.repository_prefix: invalid repository"),
        (_set(["images", 0, "tags"], ["v1", "-x"]), "images[0].tags[1] (org/app): invalid tag '-x'"),
        (_set(["images", 0, "tags"], [3.2]), "images[0].tags[0] (org/app): expected a string, got the number 3.2"),
        (_set(["images", 0, "tags"], "v1"), "images[0].tags (org/app): expected a list, got the string 'v1'"),
        (_set(["images"], {"repository": "x"}), "images: expected a list, got a mapping"),
        (_set(["images", 0, "platforms"], ["linux"]), "images[0].platforms[0] (org/app): invalid platform 'linux'"),
        (_set(["defaults"], {"platforms": ["linux/"]}), "defaults.platforms[0]: invalid platform"),
        (_set(["source", "registry"], "ftp://host"), "source.registry: invalid registry URL 'ftp://host'"),
        (_set(["source", "registry"], "https://ghcr.io/v2"), "source.registry: invalid registry URL"),
        (_set(["source", "registry"], "not a host"), "source.registry: invalid registry 'not a host'"),
        (_set(["source", "registry"], ""), "source.registry: invalid registry ''"),
        (_set(["source", "skip_tls"], "yes please"), "source.skip_tls: expected true or false, got the string"),
        (_set(["source", "credentials_secret"], "Hub_Creds"), "source.credentials_secret: invalid block name"),
        (
            _set(["destination"], {"registry": "127.0.0.1:5000", "skip_tls": True, "ca_file": "ca.pem"}),
            "destination: skip_tls and ca_file contradict each other",
        ),
        (_set(["images", 0, "newest"], 0), "images[0].newest (org/app): must be at least 1, got the number 0"),
        (_set(["images", 0, "newest"], True), "images[0].newest (org/app): expected a whole number, got the boolean"),
        (_set(["rate_limit"], {"reserve": -1}), "rate_limit.reserve: must be at least 0"),
        (_set(["rate_limit"], {"max_wait_seconds": -0.5}), "rate_limit.max_wait_seconds: must be at least 0"),
        (_set(["rate_limit"], {"max_wait_seconds": float("inf")}), "rate_limit.max_wait_seconds: must be a finite"),
        (_set(["images", 0], {"repository": "org/app"}), "images[0] (org/app): no tags selected: set tags, include"),
        (_set(["images", 0], {"repository": "org/app", "tags": []}), "images[0] (org/app): no tags selected"),
        (_set(["images"], []), "images: the spec lists no images"),
        (
            _add_image(repository="other/app", destination="org/app", tags=["v1"]),
            "images[1].destination (other/app): destination repository 'org/app' is already that of images[0] "
            "(org/app)",
        ),
        (
            _set(["destination"], {"registry": "https://ghcr.io"}),
            "images[0].repository (org/app): copies org/app onto itself",
        ),
    ],
)
def test_each_kind_of_problem_is_one_line_with_its_path(tmp_path, change, expected):
    data = copy.deepcopy(MINIMAL)
    change(data)
    path = write(tmp_path, yaml.safe_dump(data))
    message = load_error(path)
    assert expected in message


def test_credentials_in_a_registry_url_are_refused_without_being_echoed(tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["source"]["registry"] = "https://me:s3cret@ghcr.io"
    message = load_error(write(tmp_path, yaml.safe_dump(data)))
    assert "source.registry: a registry URL cannot carry credentials" in message
    assert "s3cret" not in message


def test_docker_hub_repositories_collide_after_library_is_added(tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["source"]["registry"] = "docker.io"
    data["images"] = [{"repository": "alpine", "tags": ["3"]}, {"repository": "library/alpine", "include": ["3.*"]}]
    message = load_error(write(tmp_path, yaml.safe_dump(data)))
    assert "images[1].repository (library/alpine): destination repository 'library/alpine' is already" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("source: [unclosed\n", ", line 2, column 1: not valid YAML: "),
        ("images:\n  - repository: a\n    tags: [x]\n    tags: [y]\n", ", line 4: images[0]: key 'tags' appears twice"),
        ("", ": the file is empty"),
        ("- just\n- a list\n", ": expected a mapping of source, destination, images, got a list"),
        ("--- {}\n--- {}\n", "not valid YAML"),
        (b"\xff\xfe", ": not UTF-8 text"),
    ],
)
def test_files_that_are_not_a_spec_are_one_line_errors(tmp_path, text, expected):
    path = tmp_path / "mirror.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    assert expected in load_error(path)


def test_a_missing_file_is_a_usage_error(tmp_path):
    message = load_error(tmp_path / "nope.yaml")
    assert "cannot read it: No such file or directory" in message


def test_a_read_timeout_in_the_spec_reaches_that_side_s_endpoint(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(
        "source: {registry: 'http://127.0.0.1:1', read_timeout: 5}\n"
        "destination: {registry: 'http://127.0.0.1:2'}\n"
        "images: [{repository: a, tags: [v1]}]\n"
    )
    spec = load_spec(path)
    assert spec.source.endpoint().read_timeout == 5
    assert spec.destination.endpoint().read_timeout == 60  # unset: the default
    assert spec_from_dict(spec.to_dict()) == spec

"""config.json: where it is, how it is read, and how its ``auths`` keys match a registry host."""

import logging
import traceback

import pytest
from credentials.fakes import SECRET, basic

from docker_image_pusher.credentials import DockerConfig, docker_config_dir, load_docker_config, resolve_credentials
from docker_image_pusher.errors import UsageError
from docker_image_pusher.registry import Credentials


def test_config_dir_is_docker_config_else_home_dot_docker(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "elsewhere"))
    assert docker_config_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("DOCKER_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert docker_config_dir() == tmp_path / ".docker"


def test_missing_config_file_means_anonymous():
    assert load_docker_config() == DockerConfig(path=docker_config_dir() / "config.json")
    assert resolve_credentials("ghcr.io") is None


@pytest.mark.parametrize("content", ['{"auths": {"ghcr.io": {"password": "' + SECRET + '"', f'["{SECRET}"]'])
def test_invalid_config_is_a_usage_error_naming_the_file_not_its_content(write_config, content):
    file = write_config({})
    file.write_text(content)
    with pytest.raises(UsageError) as caught:
        load_docker_config()
    assert str(file) in caught.value.message
    assert SECRET not in caught.value.message
    shown = "".join(traceback.format_exception(caught.value))
    assert SECRET not in shown and "JSONDecodeError" not in shown  # the decoding error (it holds the text) is hidden


def test_unreadable_config_is_a_usage_error_naming_the_file(docker_config_folder):
    (docker_config_folder / "config.json").mkdir()
    with pytest.raises(UsageError, match=r"cannot read docker config .*config\.json: Is a directory"):
        load_docker_config()


def test_auth_field_is_base64_of_user_colon_password_split_at_the_first_colon(write_config):
    write_config({"auths": {"ghcr.io": {"auth": basic("robot", f"{SECRET}:with:colons")}}})
    assert resolve_credentials("ghcr.io") == Credentials("robot", f"{SECRET}:with:colons")


def test_username_and_password_fields(write_config):
    write_config({"auths": {"ghcr.io": {"username": "robot", "password": SECRET}}})
    assert resolve_credentials("ghcr.io") == Credentials("robot", SECRET)


@pytest.mark.parametrize(
    "key", ["quay.io", "https://quay.io", "http://quay.io/v1/", "https://Quay.IO/v2/", "quay.io/", " quay.io "]
)
def test_scheme_prefixed_and_path_suffixed_keys_match_the_host(write_config, key):
    write_config({"auths": {key: {"auth": basic("robot", SECRET)}}})
    assert resolve_credentials("quay.io") == Credentials("robot", SECRET)


def test_host_port_keys_match_only_that_port(write_config):
    write_config({"auths": {"https://localhost:5000": {"auth": basic("robot", SECRET)}}})
    assert resolve_credentials("localhost:5000") == Credentials("robot", SECRET)
    assert resolve_credentials("localhost:5001") is None
    assert resolve_credentials("localhost") is None


@pytest.mark.parametrize(
    "key", ["https://index.docker.io/v1/", "docker.io", "index.docker.io", "registry-1.docker.io", "https://docker.io"]
)
@pytest.mark.parametrize("host", ["registry-1.docker.io", "docker.io", "index.docker.io"])
def test_docker_hub_keys_match_every_docker_hub_host(write_config, key, host):
    write_config({"auths": {key: {"auth": basic("hubuser", SECRET)}}})
    assert resolve_credentials(host) == Credentials("hubuser", SECRET)


def test_the_exact_spelling_wins_over_an_alias(write_config):
    write_config(
        {
            "auths": {
                "docker.io": {"auth": basic("alias", "x")},
                "https://index.docker.io/v1/": {"auth": basic("hub", "y")},
            }
        }
    )
    assert resolve_credentials("registry-1.docker.io") == Credentials("hub", "y")


@pytest.mark.parametrize("entry", [{"auth": ""}, {}, {"email": "me@example.com"}])
def test_empty_placeholders_are_no_credentials(write_config, entry):
    write_config({"auths": {"ghcr.io": entry}})
    assert resolve_credentials("ghcr.io") is None


# not base64; base64 of "nocolon"; base64 of bytes that are not UTF-8
@pytest.mark.parametrize("auth", ["!!not base64!!", "bm9jb2xvbg==", "//79"])
def test_malformed_auth_is_a_usage_error_naming_the_entry_not_the_value(write_config, auth):
    write_config({"auths": {"ghcr.io": {"auth": auth}}})
    with pytest.raises(UsageError) as caught:
        resolve_credentials("ghcr.io")
    assert "'ghcr.io'" in caught.value.message and "config.json" in caught.value.message
    assert auth not in caught.value.message


def test_an_identity_token_is_ignored_with_a_warning_that_does_not_show_it(write_config, caplog):
    write_config({"auths": {"ghcr.io": {"auth": basic("robot", ""), "identitytoken": SECRET}}})
    with caplog.at_level(logging.DEBUG):
        assert resolve_credentials("ghcr.io") is None
    [record] = [r for r in caplog.records if r.name == "docker_image_pusher.credentials"]
    assert record.levelno == logging.WARNING
    assert "identity token" in record.getMessage() and "'ghcr.io'" in record.getMessage()
    assert SECRET not in caplog.text


def test_the_repr_of_a_config_hides_the_auths(write_config):
    write_config({"auths": {"ghcr.io": {"auth": basic("robot", SECRET)}}})
    config = load_docker_config()
    assert basic("robot", SECRET) not in repr(config)
    assert resolve_credentials("ghcr.io", config=config) == Credentials("robot", SECRET)

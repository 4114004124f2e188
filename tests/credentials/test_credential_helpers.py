"""docker-credential-NAME helpers, run for real: what they are asked, what they answer, how they fail."""

import logging

import pytest
from credentials.fakes import SECRET

from docker_image_pusher.credentials import resolve_credentials
from docker_image_pusher.credentials._helper import helper_get
from docker_image_pusher.errors import AuthError, UsageError
from docker_image_pusher.registry import Credentials


def test_cred_helper_gets_the_key_as_written_and_its_answer_is_used(write_config, helpers):
    helpers.answer("fake", username="robot")
    write_config({"credHelpers": {"https://registry.example.com:5000": "fake"}})
    assert resolve_credentials("registry.example.com:5000") == Credentials("robot", SECRET)
    assert helpers.calls("fake") == ["https://registry.example.com:5000"]


@pytest.mark.parametrize("key", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_hub_helpers_are_asked_for_the_index_url(write_config, helpers, key):
    helpers.answer("hub")
    write_config({"credHelpers": {key: "hub"}})
    assert resolve_credentials("registry-1.docker.io") == Credentials("helper-user", SECRET)
    assert helpers.calls("hub") == ["https://index.docker.io/v1/"]


def test_creds_store_gets_the_auths_key_as_written_else_the_bare_host(write_config, helpers):
    helpers.answer("store")
    write_config({"credsStore": "store", "auths": {"https://ghcr.io": {}}})
    resolve_credentials("ghcr.io")
    resolve_credentials("quay.io")
    assert helpers.calls("store") == ["https://ghcr.io", "quay.io"]


def test_credentials_not_found_means_none(write_config, helpers):
    helpers.not_found("store")
    write_config({"credsStore": "store"})
    assert resolve_credentials("ghcr.io") is None
    assert helpers.calls("store") == ["ghcr.io"]


def test_a_missing_helper_is_an_auth_error(write_config, helpers):
    write_config({"credsStore": "nowhere"})
    with pytest.raises(AuthError) as caught:
        resolve_credentials("ghcr.io")
    assert caught.value.message == "credential helper docker-credential-nowhere not found on PATH"
    assert caught.value.exit_code == 3


def test_a_failing_helper_shows_its_exit_code_and_first_stderr_line_never_its_stdout(write_config, helpers):
    long_line = "keychain locked " + "x" * 300
    helpers.script(
        "locked", f"print({SECRET!r}); print({long_line!r} + '\\nsecond line', file=sys.stderr); sys.exit(3)"
    )
    write_config({"credsStore": "locked"})
    with pytest.raises(AuthError) as caught:
        resolve_credentials("ghcr.io")
    assert caught.value.message == f"credential helper docker-credential-locked failed (exit 3): {long_line[:200]}"
    assert SECRET not in caught.value.message


@pytest.mark.parametrize("stdout", [SECRET, '{"Username": "robot"}', f'{{"Username": 1, "Secret": "{SECRET}"}}'])
def test_an_unusable_answer_is_an_auth_error_that_does_not_quote_it(write_config, helpers, stdout):
    helpers.script("odd", f"print({stdout!r})")
    write_config({"credsStore": "odd"})
    with pytest.raises(AuthError) as caught:
        resolve_credentials("ghcr.io")
    assert caught.value.message == "credential helper docker-credential-odd answered without a Username and a Secret"


def test_an_identity_token_answer_is_ignored_with_a_warning_that_does_not_show_it(write_config, helpers, caplog):
    helpers.answer("oauth", username="<token>")
    write_config({"credsStore": "oauth"})
    with caplog.at_level(logging.DEBUG):
        assert resolve_credentials("ghcr.io") is None
    [record] = [r for r in caplog.records if r.name == "docker_image_pusher.credentials"]
    assert record.levelno == logging.WARNING
    assert "identity token" in record.getMessage() and "docker-credential-oauth" in record.getMessage()
    assert SECRET not in caplog.text


def test_a_helper_that_hangs_is_stopped(helpers):
    helpers.script("slow", "import time; time.sleep(30)")
    with pytest.raises(AuthError, match=r"docker-credential-slow did not answer within 0\.5 s"):
        helper_get("slow", "ghcr.io", timeout=0.5)


@pytest.mark.parametrize("name", ["../../bin/sh", "/", "a b"])
def test_a_helper_name_is_never_a_path(write_config, name):
    write_config({"credHelpers": {"ghcr.io": name}})
    with pytest.raises(UsageError, match="invalid credential helper name"):
        resolve_credentials("ghcr.io")

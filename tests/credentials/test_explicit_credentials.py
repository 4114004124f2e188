"""Explicit credentials: {prefix}USERNAME/{prefix}PASSWORD, and a secret's value (a dict, JSON, or user:password)."""

import pytest
from credentials.fakes import SECRET
from pydantic import SecretStr

from docker_image_pusher.credentials import credentials_from_env, parse_secret_value
from docker_image_pusher.errors import UsageError
from docker_image_pusher.registry import Credentials

PREFIX = "DOCKER_IMAGE_PUSHER_SOURCE_"


def test_env_username_and_password(monkeypatch):
    monkeypatch.setenv(f"{PREFIX}USERNAME", "robot")
    monkeypatch.setenv(f"{PREFIX}PASSWORD", SECRET)
    assert credentials_from_env(PREFIX) == Credentials("robot", SECRET)


def test_env_without_either_is_none(monkeypatch):
    monkeypatch.delenv(f"{PREFIX}USERNAME", raising=False)
    monkeypatch.setenv(f"{PREFIX}PASSWORD", "")
    assert credentials_from_env(PREFIX) is None


@pytest.mark.parametrize(("present", "missing"), [("USERNAME", "PASSWORD"), ("PASSWORD", "USERNAME")])
def test_env_with_only_one_names_the_missing_variable(monkeypatch, present, missing):
    monkeypatch.setenv(f"{PREFIX}{present}", SECRET)
    monkeypatch.delenv(f"{PREFIX}{missing}", raising=False)
    with pytest.raises(UsageError) as caught:
        credentials_from_env(PREFIX)
    assert caught.value.message == f"{PREFIX}{present} is set but {PREFIX}{missing} is not"


@pytest.mark.parametrize(
    "value",
    [
        {"username": "robot", "password": SECRET},
        f'{{"username": "robot", "password": "{SECRET}"}}',
        f"robot:{SECRET}",
        f"robot:{SECRET}\n",
        SecretStr(f"robot:{SECRET}"),
    ],
)
def test_secret_values(value):
    assert parse_secret_value(value, "registry-login") == Credentials("robot", SECRET)


def test_a_secret_password_may_contain_colons():
    assert parse_secret_value(f"robot:{SECRET}:x", "s") == Credentials("robot", f"{SECRET}:x")


@pytest.mark.parametrize(
    "value",
    [
        SECRET,
        f":{SECRET}",
        "robot:",
        f'{{"password": "{SECRET}"}}',
        f'{{"username": "robot", {SECRET}',
        {"pw": SECRET},
        42,
    ],
)
def test_a_bad_secret_names_the_secret_never_the_value(value):
    with pytest.raises(UsageError) as caught:
        parse_secret_value(value, "registry-login")
    assert caught.value.message == "secret registry-login: expected {username, password} or 'user:password'"

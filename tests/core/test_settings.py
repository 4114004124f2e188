import pytest

from docker_image_pusher.errors import UsageError
from docker_image_pusher.settings import load_settings


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("DOCKER_IMAGE_PUSHER_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def test_flag_beats_environment_beats_file_beats_default(monkeypatch, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('retry_attempts = 7\nmax_concurrent = 9\ncache_dir = "/from/file"\n')
    monkeypatch.setenv("DOCKER_IMAGE_PUSHER_MAX_CONCURRENT", "11")
    monkeypatch.setenv("DOCKER_IMAGE_PUSHER_CACHE_DIR", "/from/env")
    s = load_settings({"cache_dir": "/from/flag", "retry_attempts": None}, config)
    assert str(s.cache_dir) == "/from/flag"  # flag
    assert s.max_concurrent == 11  # env over file
    assert s.retry_attempts == 7  # file over default
    assert s.skip_tls is False  # default


def test_default_config_file_location_is_used(monkeypatch, tmp_path):
    path = tmp_path / "xdg" / "docker-image-pusher" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("retry_attempts = 4\n")
    assert load_settings({}).retry_attempts == 4


def test_password_from_environment_is_a_secret(monkeypatch):
    monkeypatch.setenv("DOCKER_IMAGE_PUSHER_PASSWORD", "hunter2-secret")
    s = load_settings({})
    assert s.password is not None and s.password.get_secret_value() == "hunter2-secret"
    assert "hunter2-secret" not in repr(s) and "hunter2-secret" not in str(s)


@pytest.mark.parametrize(
    ("flags", "text"),
    [({"retry_attempts": -1}, None), ({"max_concurrent": 0}, None), ({}, "retry_attempts = 'x'\n"), ({}, "not toml [")],
)
def test_invalid_settings_are_usage_errors(tmp_path, flags, text):
    config = None
    if text is not None:
        config = tmp_path / "c.toml"
        config.write_text(text)
    with pytest.raises(UsageError):
        load_settings(flags, config)


def test_a_missing_explicit_config_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_settings({}, tmp_path / "nope.toml")


def test_read_timeout_comes_from_a_flag_the_environment_or_the_file(monkeypatch, tmp_path):
    assert load_settings({}).read_timeout == 60
    config = tmp_path / "c.toml"
    config.write_text("read_timeout = 7.5\n")
    assert load_settings({}, config).read_timeout == 7.5
    monkeypatch.setenv("DOCKER_IMAGE_PUSHER_READ_TIMEOUT", "9")
    assert load_settings({}, config).read_timeout == 9
    assert load_settings({"read_timeout": 2.0}, config).read_timeout == 2
    with pytest.raises(UsageError, match="read_timeout"):
        load_settings({"read_timeout": 0})

"""Which source wins: explicit credentials, then credHelpers[host], then credsStore, then auths, else anonymous."""

from credentials.fakes import SECRET, basic

from docker_image_pusher.credentials import resolve_credentials
from docker_image_pusher.registry import Credentials

EVERYTHING = {
    "credHelpers": {"ghcr.io": "per-host"},
    "credsStore": "store",
    "auths": {"ghcr.io": {"auth": basic("from-auths", SECRET)}},
}


def test_explicit_credentials_win_and_the_config_is_not_even_read(write_config):
    write_config(EVERYTHING).write_text("{ not json")
    explicit = Credentials("cli-user", "cli-password")
    assert resolve_credentials("ghcr.io", explicit=explicit) is explicit


def test_cred_helpers_win_over_creds_store_and_auths(write_config, helpers):
    helpers.answer("per-host", username="from-cred-helpers")
    helpers.answer("store", username="from-creds-store")
    write_config(EVERYTHING)
    assert resolve_credentials("ghcr.io") == Credentials("from-cred-helpers", SECRET)
    assert helpers.calls("store") == []


def test_creds_store_wins_over_auths(write_config, helpers):
    helpers.answer("store", username="from-creds-store")
    write_config({**EVERYTHING, "credHelpers": {}})
    assert resolve_credentials("ghcr.io") == Credentials("from-creds-store", SECRET)


def test_a_helper_for_another_host_is_not_asked(write_config, helpers):
    helpers.answer("per-host", username="from-cred-helpers")
    helpers.answer("store", username="from-creds-store")
    write_config({**EVERYTHING, "credHelpers": {"quay.io": "per-host"}})
    assert resolve_credentials("ghcr.io") == Credentials("from-creds-store", SECRET)
    assert helpers.calls("per-host") == []


def test_helpers_without_credentials_pass_on_to_the_next_source(write_config, helpers):
    helpers.not_found("per-host")
    helpers.not_found("store")
    write_config(EVERYTHING)
    assert resolve_credentials("ghcr.io") == Credentials("from-auths", SECRET)
    assert helpers.calls("per-host") == helpers.calls("store") == ["ghcr.io"]


def test_nothing_configured_for_the_host_is_anonymous(write_config, helpers):
    write_config({"auths": {"quay.io": {"auth": basic("robot", SECRET)}}, "credHelpers": {"quay.io": "absent"}})
    assert resolve_credentials("ghcr.io") is None

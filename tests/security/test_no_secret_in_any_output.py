"""Pull, push, mirror and a failed login, against the token-auth and the Basic-auth registry, with the
credentials given the ways a user gives them (stdin, environment, config.json), with --debug, detailed
progress and --stats-file: no password, base64(user:password) or issued token in any output, file, log,
database or Prefect record. The search covers every file the tool could have written (the caches, the state
folder with the Prefect database and the server and agent logs, HOME, the TMPDIR the runs had), so these
tests also check that credentials are never written to disk: HOME holds only the config.json the test
wrote, unchanged, and TMPDIR nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rig import skopeo
from rig.archives import write_docker_save
from rig.fixtures import SampleImages
from rig.registry import RunningRegistry
from rig.registry_config import BasicAuth
from rig.token_server import TokenServer

from .conftest import Login, Runner, Secrets, assert_nothing_leaked, new_password

USER = "sec-user"
DETAILED = ("--progress-detail", "detailed", "--progress-interval", "100")


@pytest.fixture(params=["token", "basic"])
def login(request: pytest.FixtureRequest, token_server: TokenServer, registry_factory: Any) -> Login:
    """A login of its own (a fresh password) on the token-auth registry, or on a Basic-auth registry."""
    password = new_password()
    if request.param == "token":
        token_server.set_user(USER, password)
        registry: RunningRegistry = request.getfixturevalue("token_registry")
        return Login(registry, USER, password)
    return Login(registry_factory(auth=BasicAuth(USER, password)), USER, password)


def _secrets(token_server: TokenServer, *logins: Login, wrong: str | None = None) -> Secrets:
    secrets = Secrets()
    for login in logins:
        secrets.add_login(login.user, login.password, f"{login.user}@{login.registry.kind}")
    if wrong:
        secrets.add_login(USER, wrong, "wrong")
    secrets.add_tokens(r.token for r in token_server.requests)
    return secrets


def _env(login: Login, prefix: str = "DOCKER_IMAGE_PUSHER_") -> dict[str, str]:
    return {f"{prefix}USERNAME": login.user, f"{prefix}PASSWORD": login.password}


def _tokens_issued(login: Login, token_server: TokenServer) -> None:
    if login.registry.kind == "token":  # the search looked for tokens that exist
        assert any(r.token and r.user == USER for r in token_server.requests)


def test_pulls_with_a_wrong_and_a_right_login_leave_no_secret_anywhere(
    login: Login, runner: Runner, prefect_api: str, token_server: TokenServer, sample_image: SampleImages,
    unique_repo: str,
) -> None:  # fmt: skip
    skopeo.copy_layout_to_registry(sample_image([3000, 70_000]), login.registry, f"{unique_repo}:v1")
    ref = login.registry.ref(f"{unique_repo}:v1")
    wrong = new_password()
    since = datetime.now(UTC)
    refused = runner(
        "pull",
        ref,
        "--cache-dir",
        "c",
        "--retry-attempts",
        "0",
        "--debug",
        "--stats-file",
        "refused.json",
        env={"DOCKER_IMAGE_PUSHER_USERNAME": USER, "DOCKER_IMAGE_PUSHER_PASSWORD": wrong},
    )
    assert refused.returncode == 3, refused.stderr  # fmt: skip
    done = runner("pull", ref, "-u", USER, "--password-stdin", "--cache-dir", "c", *DETAILED,
                  "--stats-file", "stats.json", input=login.password + "\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (runner.work / "stats.json").exists()
    _tokens_issued(login, token_server)
    secrets = _secrets(token_server, login, wrong=wrong)
    searched = assert_nothing_leaked(runner, secrets, prefect_api, since)
    assert searched.records.flow_runs >= 2 and searched.records.logs > 0 and searched.files > 10
    # The refused run's error as Prefect keeps it: in the state folder (searched, decoded), not in HOME.
    assert searched.home == [] and searched.tmp == []
    assert any(p.stat().st_mtime >= since.timestamp() for p in (runner.state / "results").iterdir())


def test_pushes_with_a_login_leave_no_secret_anywhere(
    login: Login, runner: Runner, prefect_api: str, token_server: TokenServer, sample_image: SampleImages,
    unique_repo: str, tmp_path: Path,
) -> None:  # fmt: skip
    tar = write_docker_save(tmp_path / "image.tar", [(sample_image([2000, 90_000]), [f"{unique_repo}:v1"])])
    since = datetime.now(UTC)
    target = login.registry.ref(f"{unique_repo}/copy")
    stdin = runner("push", "-s", str(tar), f"{target}:a", "-u", USER, "--password-stdin", "--cache-dir", "c",
                   *DETAILED, "--stats-file", "stats.json", input=login.password + "\n")  # fmt: skip
    config = runner.write_docker_config(login)
    written = config.read_bytes()
    from_config = runner("push", "-s", f"{unique_repo}:v1", f"{target}:b", "--cache-dir", "c", "--debug",
                         "--force-upload", "--chunk-size", "32KiB")  # fmt: skip
    for done in (stdin, from_config):
        assert done.returncode == 0, done.stderr
    assert sorted(skopeo.list_tags(login.registry, f"{unique_repo}/copy")) == ["a", "b"]
    _tokens_issued(login, token_server)
    searched = assert_nothing_leaked(runner, _secrets(token_server, login), prefect_api, since, skip=[config])
    assert searched.records.flow_runs >= 2 and searched.records.logs > 0
    assert searched.home == [".docker/config.json"] and config.read_bytes() == written
    assert searched.tmp == []


def test_mirrors_with_logins_on_both_sides_leave_no_secret_anywhere(
    runner: Runner, prefect_api: str, token_registry: RunningRegistry, token_server: TokenServer,
    registry_factory: Any, sample_image: SampleImages, unique_repo: str, tmp_path: Path,
) -> None:  # fmt: skip
    import yaml

    source = Login(token_registry, USER, new_password())
    token_server.set_user(source.user, source.password)
    destination_password = new_password()
    destination = Login(registry_factory(auth=BasicAuth("dest-user", destination_password)), "dest-user",
                        destination_password)  # fmt: skip
    skopeo.copy_layout_to_registry(sample_image([1000, 50_000]), token_registry, f"{unique_repo}:v1")
    skopeo.copy_layout_to_registry(sample_image([2000]), token_registry, f"{unique_repo}:v2")
    spec = runner.work / "mirror.yaml"
    spec.write_text(yaml.safe_dump({
        "source": {"registry": token_registry.url},
        "destination": {"registry": destination.registry.url},
        "images": [{"repository": unique_repo, "tags": ["v1", "v2"]}],
    }))  # fmt: skip
    since = datetime.now(UTC)
    first = runner("mirror", str(spec), "--cache-dir", "c", "--src-username", source.user, "--src-password-stdin",
                   *DETAILED, "--stats-file", "stats.json", env=_env(destination, "DOCKER_IMAGE_PUSHER_DESTINATION_"),
                   input=source.password + "\n")  # fmt: skip
    assert first.returncode == 0, first.stderr
    skopeo.delete(destination.registry, f"{unique_repo}:v2")
    config = runner.write_docker_config(source, destination)
    written = config.read_bytes()
    again = runner("mirror", str(spec), "--cache-dir", "c", "--debug")
    assert again.returncode == 0, again.stderr
    assert sorted(skopeo.list_tags(destination.registry, unique_repo)) == ["v1", "v2"]
    _tokens_issued(source, token_server)
    secrets = _secrets(token_server, source, destination)
    searched = assert_nothing_leaked(runner, secrets, prefect_api, since, skip=[config])
    assert searched.records.flow_runs >= 4 and searched.records.logs > 0
    assert searched.home == [".docker/config.json"] and config.read_bytes() == written
    assert searched.tmp == []

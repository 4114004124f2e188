"""Where the CLI finds registry credentials, end to end: docker's config.json (auths, credHelpers, credsStore,
$DOCKER_CONFIG), the flags and the environment, against the rig's Basic-auth and token-auth registries.

Every run is also checked for leaks: no password, no issued token, no base64 of user:password in its output.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from credentials.fakes import Helpers, basic
from rig import skopeo

from .conftest import TOOL, Cli, one_line_error

WRONG = "wrong-Pa55word-from-config"


def _run(
    cli: Cli, *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """What ``cli(*args)`` runs, plus ``env``; an outer $DOCKER_CONFIG never leaks in (only HOME's config counts)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DOCKER_IMAGE_PUSHER_"))}
    base.pop("DOCKER_CONFIG", None)
    base["DOCKER_IMAGE_PUSHER_STATE_DIR"] = os.environ.get("DOCKER_IMAGE_PUSHER_STATE_DIR", str(cli.cwd / "state"))
    base["HOME"] = str(cli.cwd)
    return subprocess.run(
        [*TOOL, *args], cwd=cli.cwd, env=base | (env or {}), input=input, capture_output=True, text=True, timeout=300
    )


def _write_config(folder: Path, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "config.json"
    file.write_text(json.dumps(data))
    return file


def _auths(registry, password: str | None = None) -> dict[str, Any]:
    """An ``auths`` config for the registry: its own login, or its user with ``password``."""
    user, right = registry.creds
    return {"auths": {registry.host: {"auth": basic(user, password or right)}}}


def _secrets(*logins: tuple[str, str], tokens: Iterable[str | None] = ()) -> list[str]:
    """What must never be shown: each password, each user:password in base64, each issued token."""
    found = [s for user, password in logins for s in (password, basic(user, password))]
    return found + [t for t in tokens if t]


def _assert_nothing_leaked(secrets: list[str], *runs: subprocess.CompletedProcess[str]) -> None:
    output = "".join(r.stdout + r.stderr for r in runs)
    leaked = [i for i, secret in enumerate(secrets) if secret in output]
    assert not leaked, f"secrets #{leaked} appear in the output"  # the indexes, never the secrets


@pytest.fixture
def basic_image(basic_registry, sample_image, unique_repo) -> str:
    """An image in the Basic-auth registry: its reference."""
    skopeo.copy_layout_to_registry(sample_image([100, 2000]), basic_registry, f"{unique_repo}:v1")
    return str(basic_registry.ref(f"{unique_repo}:v1"))


@pytest.fixture
def helpers(tmp_path: Path) -> Helpers:
    folder = tmp_path / "bin"
    folder.mkdir()
    return Helpers(folder)


def _path_with(helpers: Helpers) -> dict[str, str]:
    return {"PATH": f"{helpers.folder}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_pull_uses_the_auths_of_the_config_in_home(cli_with_server, basic_registry, basic_image, tmp_path):
    _write_config(tmp_path / ".docker", _auths(basic_registry))
    r = _run(cli_with_server, "pull", basic_image, "--cache-dir", "c")
    assert r.returncode == 0, r.stderr
    assert "cached " in r.stdout
    _assert_nothing_leaked(_secrets(basic_registry.creds), r)


@pytest.mark.parametrize("right_in", ["docker_config", "home"])
def test_docker_config_names_the_only_config_folder_read(
    cli_with_server, basic_registry, basic_image, tmp_path, right_in
):
    """$DOCKER_CONFIG's config.json is used and ~/.docker's ignored: the wrong password is in one of them."""
    home, elsewhere = tmp_path / ".docker", tmp_path / "elsewhere"
    right, wrong = (elsewhere, home) if right_in == "docker_config" else (home, elsewhere)
    _write_config(right, _auths(basic_registry))
    _write_config(wrong, _auths(basic_registry, WRONG))
    r = _run(cli_with_server, "pull", basic_image, "--cache-dir", "c", "--retry-attempts", "0",
             env={"DOCKER_CONFIG": str(elsewhere)})  # fmt: skip
    if right_in == "docker_config":
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode == 3, r.stderr
        one_line_error(r.stderr)
    _assert_nothing_leaked(_secrets(basic_registry.creds, (basic_registry.username, WRONG)), r)


def test_pull_asks_the_cred_helper_named_for_the_host(cli_with_server, basic_registry, basic_image, helpers, tmp_path):
    user, password = basic_registry.creds
    helpers.answer("rig", username=user, secret=password)
    _write_config(tmp_path / ".docker", {"credHelpers": {basic_registry.host: "rig"}, **_auths(basic_registry, WRONG)})
    r = _run(cli_with_server, "pull", basic_image, "--cache-dir", "c", env=_path_with(helpers))
    assert r.returncode == 0, r.stderr
    assert helpers.calls("rig") == [basic_registry.host]
    _assert_nothing_leaked(_secrets(basic_registry.creds, (user, WRONG)), r)


def test_pull_asks_the_creds_store_for_the_host(cli_with_server, basic_registry, basic_image, helpers, tmp_path):
    user, password = basic_registry.creds
    helpers.answer("store", username=user, secret=password)
    _write_config(tmp_path / ".docker", {"credsStore": "store"})
    r = _run(cli_with_server, "pull", basic_image, "--cache-dir", "c", env=_path_with(helpers))
    assert r.returncode == 0, r.stderr
    assert helpers.calls("store") == [basic_registry.host]
    _assert_nothing_leaked(_secrets(basic_registry.creds), r)


def test_a_cred_helper_missing_from_path_exits_3_naming_it(cli, basic_registry, basic_image, helpers, tmp_path):
    _write_config(tmp_path / ".docker", {"credHelpers": {basic_registry.host: "absent"}})
    r = _run(cli, "pull", basic_image, "--cache-dir", "c", "--retry-attempts", "0", env=_path_with(helpers))
    assert r.returncode == 3, r.stderr
    assert "docker-credential-absent" in one_line_error(r.stderr)


def test_username_and_password_stdin_win_over_a_wrong_config(cli_with_server, basic_registry, basic_image, tmp_path):
    user, password = basic_registry.creds
    _write_config(tmp_path / ".docker", _auths(basic_registry, WRONG))
    r = _run(cli_with_server, "pull", basic_image, "--cache-dir", "c", "-u", user, "--password-stdin",
             input=password + "\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    _assert_nothing_leaked(_secrets(basic_registry.creds, (user, WRONG)), r)


def test_push_from_the_cache_with_the_config_credentials(
    cli_with_server, plain_registry, basic_registry, sample_image, unique_repo, tmp_path
):
    skopeo.copy_layout_to_registry(sample_image([300, 5000]), plain_registry, f"{unique_repo}:v1")
    pulled = _run(cli_with_server, "pull", plain_registry.ref(f"{unique_repo}:v1"), "--cache-dir", "c")
    assert pulled.returncode == 0, pulled.stderr
    _write_config(tmp_path / ".docker", _auths(basic_registry))
    pushed = _run(cli_with_server, "push", "-s", f"{unique_repo}:v1", basic_registry.ref(f"{unique_repo}/copy:v2"),
                  "--cache-dir", "c")  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    want = skopeo.inspect_raw(plain_registry, f"{unique_repo}:v1")
    assert skopeo.inspect_raw(basic_registry, f"{unique_repo}/copy:v2") == want
    _assert_nothing_leaked(_secrets(basic_registry.creds), pulled, pushed)


def test_mirror_takes_the_source_login_from_flags_and_the_destination_from_the_environment(
    cli_with_server, token_registry, token_server, basic_registry, sample_image, unique_repo, tmp_path
):
    import yaml

    source_login = ("mirror-reader", "token-side-Pa55")  # not the destination's login: a mix-up would show
    token_server.set_user(*source_login)
    skopeo.copy_layout_to_registry(sample_image([400, 3000]), token_registry, f"{unique_repo}:v1")
    token_server.reset()  # forget skopeo's requests
    token_server.set_user(*source_login)
    spec = tmp_path / "mirror.yaml"
    spec.write_text(yaml.safe_dump({
        "source": {"registry": token_registry.url},
        "destination": {"registry": basic_registry.url},
        "images": [{"repository": unique_repo, "tags": ["v1"]}],
    }))  # fmt: skip
    user, password = basic_registry.creds
    env = {"DOCKER_IMAGE_PUSHER_DESTINATION_USERNAME": user, "DOCKER_IMAGE_PUSHER_DESTINATION_PASSWORD": password}
    r = _run(cli_with_server, "mirror", str(spec), "--cache-dir", "c", "--src-username", source_login[0],
             "--src-password-stdin", env=env, input=source_login[1] + "\n")  # fmt: skip
    ours = token_server.requests  # before skopeo asks for tokens of its own
    assert r.returncode == 0, r.stderr
    assert ours and {(req.user, req.status) for req in ours} == {(source_login[0], 200)}
    assert skopeo.inspect_raw(basic_registry, f"{unique_repo}:v1") == skopeo.inspect_raw(
        token_registry, f"{unique_repo}:v1"
    )
    tokens = [req.token for req in ours]
    assert any(tokens)  # tokens were issued, so the leak check means something
    _assert_nothing_leaked(_secrets(source_login, basic_registry.creds, tokens=tokens), r)


def _spec(tmp_path: Path) -> Path:
    spec = tmp_path / "m.yaml"
    spec.write_text("source: {registry: 'http://127.0.0.1:1'}\ndestination: {registry: 'http://127.0.0.1:2'}\n"
                    "images: [{repository: a, tags: [v1]}]\n")  # fmt: skip
    return spec


def test_mirror_refuses_two_passwords_on_stdin(cli, tmp_path):
    r = _run(cli, "mirror", str(_spec(tmp_path)), "--cache-dir", "c", "--src-username", "a", "--src-password-stdin",
             "--dest-username", "b", "--dest-password-stdin", input="pw-one-Secret\n")  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "c").exists()
    _assert_nothing_leaked(_secrets(("a", "pw-one-Secret")), r)


def test_mirror_deployment_with_command_line_credentials_is_a_usage_error(cli, tmp_path):
    r = _run(cli, "mirror", str(_spec(tmp_path)), "--cache-dir", "c", "--deployment", "x/y", "--src-username", "a",
             "--src-password-stdin", input="pw-two-Secret\n")  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "--deployment" in one_line_error(r.stderr)
    assert not (tmp_path / "c").exists()
    _assert_nothing_leaked(_secrets(("a", "pw-two-Secret")), r)

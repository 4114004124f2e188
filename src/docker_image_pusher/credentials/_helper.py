"""The docker-credential-helpers protocol: ``docker-credential-NAME get`` with the server URL on stdin.

A helper answers ``{"ServerURL", "Username", "Secret"}`` on stdout, or exits non-zero and prints
``credentials not found in native keychain``. Its stdout may hold the secret, so no message ever quotes it:
a failure shows the helper's name, its exit code and the first line of its stderr.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

from ..errors import AuthError, UsageError
from ..registry import Credentials
from ._docker_config import warn_identity_token

__all__ = ["HELPER_TIMEOUT", "helper_get"]

HELPER_TIMEOUT = 30.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a name, never a path
_NOT_FOUND = "credentials not found"
_MAX_STDERR = 200


def helper_get(name: str, server_url: str, *, timeout: float = HELPER_TIMEOUT) -> Credentials | None:
    """Ask ``docker-credential-NAME`` for ``server_url``; None if it has no credentials for it."""
    program = f"docker-credential-{name}"
    if not _NAME.fullmatch(name):
        raise UsageError(f"invalid credential helper name {name!r} in the docker config")
    executable = shutil.which(program)
    if executable is None:
        raise AuthError(f"credential helper {program} not found on PATH")
    try:
        done = subprocess.run(
            [executable, "get"],
            input=server_url,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:  # from None here and below: the exceptions carry the output
        raise AuthError(f"credential helper {program} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise AuthError(f"cannot run credential helper {program}: {exc.strerror or type(exc).__name__}") from None
    if done.returncode != 0:
        if _NOT_FOUND in done.stdout.lower():
            return None
        raise AuthError(f"credential helper {program} failed (exit {done.returncode}){_first_line(done.stderr)}")
    return _answer(program, server_url, done.stdout)


def _answer(program: str, server_url: str, stdout: str) -> Credentials | None:
    try:
        data = json.loads(stdout)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("Username", "Secret")):
        raise AuthError(f"credential helper {program} answered without a Username and a Secret")
    if data["Username"] == "<token>":
        warn_identity_token(f"the answer of {program} for {server_url}")
        return None
    return Credentials(data["Username"], data["Secret"]) if data["Secret"] else None


def _first_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    return f": {lines[0].strip()[:_MAX_STDERR]}" if lines else ""

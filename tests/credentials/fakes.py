"""Test doubles that are real: docker-credential-* scripts speaking the helper protocol, and docker's auth field."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

SECRET = "s3cret-Pa55word-do-not-print"


def basic(username: str, password: str) -> str:
    """The ``auth`` field docker writes: base64 of user:password."""
    return base64.b64encode(f"{username}:{password}".encode()).decode()


class Helpers:
    """Executable ``docker-credential-NAME`` scripts in a folder on PATH; each logs the server URLs it is asked for."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def script(self, name: str, body: str) -> None:
        """A helper running ``body`` (Python) after reading the server URL into ``server``."""
        path = self.folder / f"docker-credential-{name}"
        path.write_text(
            f"#!{sys.executable}\n"
            "import json, sys\n"
            "server = sys.stdin.read()\n"
            f"with open({str(self._log(name))!r}, 'a') as log:\n"
            "    log.write(server + '\\n')\n"
            f"{body}\n"
        )
        path.chmod(0o755)

    def answer(self, name: str, username: str = "helper-user", secret: str = SECRET) -> None:
        fields = {"Username": username, "Secret": secret}
        self.script(name, f"print(json.dumps({{'ServerURL': server, **{fields!r}}}))")

    def not_found(self, name: str) -> None:
        self.script(name, "print('credentials not found in native keychain'); sys.exit(1)")

    def calls(self, name: str) -> list[str]:
        """The server URLs the helper was asked for, in order."""
        log = self._log(name)
        return log.read_text().splitlines() if log.exists() else []

    def _log(self, name: str) -> Path:
        return self.folder / f"{name}.calls"

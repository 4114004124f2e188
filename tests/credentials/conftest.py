"""Fixtures: a real config.json in a fresh $DOCKER_CONFIG, and a folder of credential helpers first on PATH."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from credentials.fakes import Helpers

WriteConfig = Callable[[dict[str, Any]], Path]


@pytest.fixture(autouse=True)
def docker_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty $DOCKER_CONFIG: the user's own ~/.docker never leaks in."""
    folder = tmp_path / "docker-config"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder


@pytest.fixture
def write_config(docker_config_folder: Path) -> WriteConfig:
    """Write ``config.json`` into $DOCKER_CONFIG; returns the file."""
    folder = docker_config_folder

    def write(data: dict[str, Any]) -> Path:
        file = folder / "config.json"
        file.write_text(json.dumps(data))
        return file

    return write


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Helpers:
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return Helpers(folder)

"""pytest fixtures of the rig; tests/conftest.py star-imports this module.

Registries and the token server are session-scoped and start only when a test asks for them.
Session registries are shared: give each test its own repository names (the `unique_repo` fixture).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from rig.images import AMD64, ARM64, BuiltImage, BuiltIndex, Platform, build_image, build_multi_arch
from rig.layers import LayerSpec
from rig.registry import (
    RunningRegistry,
    start_basic_registry,
    start_plain_registry,
    start_registry,
    start_tls_registry,
    start_token_registry,
)
from rig.token_server import TokenServer

__all__ = [
    "REGISTRY_KINDS",
    "SampleImages",
    "any_registry",
    "basic_registry",
    "plain_registry",
    "prefect_api",
    "registry_factory",
    "rig_dir",
    "sample_image",
    "tls_registry",
    "token_registry",
    "token_server",
    "token_server_session",
    "unique_repo",
]

REGISTRY_KINDS = ("plain", "basic", "tls", "token")


class SampleImages:
    """Factory of sample images, each in its own OCI layout under `base`.

    Default seeds are unique per test and call, so blobs never collide across tests in shared registries;
    pass `seed=` to get the same bytes again.
    """

    def __init__(self, base: Path, name: str) -> None:
        self.base = base
        self.name = name
        self.count = 0

    def _next(self, seed: str | int | None) -> tuple[Path, str]:
        self.count += 1
        layout = self.base / f"image-{self.count}"
        return layout, str(seed) if seed is not None else f"{self.name}:{self.count}"

    def __call__(
        self,
        layers: Sequence[LayerSpec | int] = (1024,),
        *,
        tag: str = "latest",
        seed: str | int | None = None,
        **kwargs: Any,
    ) -> BuiltImage:
        """build_image(...) in a fresh layout; kwargs: platform, compress, compresslevel, docker, random_source."""
        layout, chosen = self._next(seed)
        return build_image(layout, layers, tag=tag, seed=chosen, **kwargs)

    def multi_arch(
        self,
        layers: Sequence[LayerSpec | int] = (1024,),
        *,
        tag: str = "latest",
        platforms: Sequence[Platform] = (AMD64, ARM64),
        seed: str | int | None = None,
        **kwargs: Any,
    ) -> BuiltIndex:
        """build_multi_arch(...) in a fresh layout; kwargs: compress, compresslevel, docker, random_source."""
        layout, chosen = self._next(seed)
        return build_multi_arch(layout, layers, tag=tag, platforms=platforms, seed=chosen, **kwargs)


@pytest.fixture(scope="session")
def rig_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session folder holding the session registries' storage, logs and certificates."""
    return tmp_path_factory.mktemp("rig")


@pytest.fixture(scope="session")
def plain_registry(rig_dir: Path) -> Iterator[RunningRegistry]:
    """HTTP, no auth."""
    with start_plain_registry(rig_dir / "plain") as registry:
        yield registry


@pytest.fixture(scope="session")
def basic_registry(rig_dir: Path) -> Iterator[RunningRegistry]:
    """HTTP with htpasswd Basic auth: registry.username / registry.password."""
    with start_basic_registry(rig_dir / "basic") as registry:
        yield registry


@pytest.fixture(scope="session")
def tls_registry(rig_dir: Path) -> Iterator[RunningRegistry]:
    """HTTPS with a test CA (registry.ca_cert, registry.cert_dir), no auth."""
    with start_tls_registry(rig_dir / "tls") as registry:
        yield registry


@pytest.fixture(scope="session")
def token_server_session(rig_dir: Path) -> Iterator[TokenServer]:
    """The token server behind `token_registry` (users: user/secret-pass with all actions)."""
    with TokenServer(rig_dir / "token-server") as server:
        yield server


@pytest.fixture
def token_server(token_server_session: TokenServer) -> Iterator[TokenServer]:
    """The session token server, reset (settings and request log) before and after the test."""
    token_server_session.reset()
    yield token_server_session
    token_server_session.reset()


@pytest.fixture(scope="session")
def token_registry(rig_dir: Path, token_server_session: TokenServer) -> Iterator[RunningRegistry]:
    """HTTP with token auth by `token_server`; registry.username/password are the token server's user."""
    with start_token_registry(rig_dir / "token", token_server_session.registry_auth()) as registry:
        yield registry


@pytest.fixture(params=REGISTRY_KINDS)
def any_registry(request: pytest.FixtureRequest) -> RunningRegistry:
    """Each of the four session registries in turn (parametrized: plain, basic, tls, token)."""
    registry: RunningRegistry = request.getfixturevalue(f"{request.param}_registry")
    return registry


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[Callable[..., RunningRegistry]]:
    """start_registry(**kwargs) in the test's tmp dir (tls=, auth=, extra_config=, ...); all stopped after the test."""
    started: list[RunningRegistry] = []

    def start(**kwargs: Any) -> RunningRegistry:
        registry = start_registry(tmp_path / f"registry-{len(started) + 1}", **kwargs)
        started.append(registry)
        return registry

    yield start
    for registry in started:
        registry.stop()


@pytest.fixture
def sample_image(tmp_path: Path, request: pytest.FixtureRequest) -> SampleImages:
    """Factory: sample_image(layers=(1024,), tag=...) -> BuiltImage; sample_image.multi_arch(...) -> BuiltIndex."""
    return SampleImages(tmp_path / "images", request.node.nodeid)


@pytest.fixture
def unique_repo(request: pytest.FixtureRequest) -> str:
    """A repository name no other test uses, e.g. "rig/test-push-basic-3f2a1c"."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40] or "test"
    return f"rig/{slug}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Our own background server management, started once in a session state folder."""
    state = tmp_path_factory.mktemp("state")
    old = os.environ.get("DOCKER_IMAGE_PUSHER_STATE_DIR")
    os.environ["DOCKER_IMAGE_PUSHER_STATE_DIR"] = str(state)
    from docker_image_pusher.agent import stop_agents
    from docker_image_pusher.server import ensure_server, stop_server

    try:
        yield ensure_server()
    finally:
        stop_agents()
        stop_server()
        if old is None:
            os.environ.pop("DOCKER_IMAGE_PUSHER_STATE_DIR", None)
        else:
            os.environ["DOCKER_IMAGE_PUSHER_STATE_DIR"] = old

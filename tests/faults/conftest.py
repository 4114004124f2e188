"""Fault-injection tests of pull, push and mirror against real registries behind rig.fault_proxy.FaultProxy.

The registries here are this folder's own (a test may kill and restart one, or stop its token server), each
fronted by a fresh FaultProxy per test. Every test ends by checking the cache blob by blob (`assert_cache_sound`):
each file under blobs/ hashes to its name. Figures (bytes sent twice, retries, wall time) are appended as JSON
lines to $FAULT_FIGURES when it is set.

What "one chunk" means (the bound on bytes sent twice per fault):
- pull: a download resumes with Range from the bytes on disk, so a fault costs at most what was in flight
  and lost with the connection: RESEND_PER_DOWNLOAD_FAULT.
- push: distribution 2.8 cancels an upload session whose PATCH/PUT body broke off, so a broken body cannot be
  resumed; the blob starts again in a new session (blobs already pushed are skipped after a HEAD). A fault
  that breaks a body therefore costs at most the blob in flight: the bound is the largest blob per fault.
  A fault that refuses a request before its body is taken (a 401 from an expired token on one PATCH of
  --chunk-size uploads) costs at most that chunk: the session lives on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli.conftest import Cli
from rig.registry import RunningRegistry, start_plain_registry, start_token_registry
from rig.token_server import TokenServer


@pytest.fixture
def cli(tmp_path: Path, prefect_api: str) -> Cli:
    """The CLI, run in tmp_path (its HOME), with the session's Prefect server and agent."""
    return Cli(tmp_path)


@pytest.fixture(scope="session")
def fault_registry(rig_dir: Path) -> Iterator[RunningRegistry]:
    """A plain registry of this folder's own: tests kill and restart it."""
    with start_plain_registry(rig_dir / "faults-plain") as registry:
        yield registry


@pytest.fixture(scope="session")
def fault_destination(rig_dir: Path) -> Iterator[RunningRegistry]:
    """A second plain registry, the mirror's destination (a blob is never mounted from the source there)."""
    with start_plain_registry(rig_dir / "faults-destination") as registry:
        yield registry


@pytest.fixture(scope="session")
def fault_token_server(rig_dir: Path) -> Iterator[TokenServer]:
    with TokenServer(rig_dir / "faults-token-server") as server:
        yield server


@pytest.fixture(scope="session")
def fault_token_registry(rig_dir: Path, fault_token_server: TokenServer) -> Iterator[RunningRegistry]:
    with start_token_registry(rig_dir / "faults-token", fault_token_server.registry_auth()) as registry:
        yield registry


@pytest.fixture
def tokens(fault_token_server: TokenServer) -> Iterator[TokenServer]:
    """The token server, reset and running before and after the test (a test may stop it)."""
    fault_token_server.reset()
    fault_token_server.start()
    yield fault_token_server
    fault_token_server.start()
    fault_token_server.reset()


@pytest.fixture
def running(fault_registry: RunningRegistry, fault_token_registry: RunningRegistry) -> Iterator[None]:
    """Every registry of the folder up again after the test, whatever it did to them."""
    yield
    for registry in (fault_registry, fault_token_registry):
        registry.start()

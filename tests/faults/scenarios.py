"""The faults of issue #6, each as what to arm on the proxy before a run and what to do while it goes on.

A fault acts on the transfers of one direction (`Setting.kind`: "blob-get" for a pull, "upload-put" for a
push; the mirror's pull side and push side each have their own proxy). `run_with` starts the CLI in a thread,
does the fault's `during` step in this one (kill the registry, stop the token server, ...) and returns the
finished run with the number of faults that step caused (those of the proxy's rules are `proxy.faults`).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cli.conftest import Cli
from faults.helpers import MIB, wait_for
from rig.fault_proxy import Direction, FaultProxy
from rig.registry import RunningRegistry
from rig.token_server import TokenServer

__all__ = ["FAULTS", "Fault", "Setting", "answered_401", "run_with"]


@dataclass
class Setting:
    proxy: FaultProxy
    registry: RunningRegistry  # the one behind `proxy`
    tokens: TokenServer
    kind: str  # the transfer requests a fault hits: "blob-get" or "upload-put"
    direction: Direction  # of those transfers' bodies: "down" or "up"
    target: str  # the digest of the blob whose transfers the proxy's rules hit (the biggest layer)
    run_ended: Callable[[], bool] = lambda: False

    def wait(self, predicate: Callable[[], bool], what: str) -> None:
        """Until `predicate()`; fails if the run ends first (the fault would come too late to matter)."""
        wait_for(lambda: predicate() or self.run_ended(), what=what)
        assert predicate(), f"the run ended before {what}"


@dataclass(frozen=True)
class Fault:
    name: str
    arm: Callable[[Setting], None]
    during: Callable[[Setting], int] | None = None
    token: bool = False  # needs the token registry
    expected: int = 1  # faults the proxy's rules inject (0: the `during` step makes them)
    # The image's layers: the first is the one the rules hit. A registry killed mid-download must still have
    # most of its blob to send: what it wrote before dying (megabytes of socket buffers) is still delivered.
    layers: tuple[int, ...] = (3 * MIB, 2 * MIB)

    def __str__(self) -> str:
        return self.name


def _reset(s: Setting) -> None:
    s.proxy.reset(s.kind, after=MIB, path_contains=s.target)


def _burst(s: Setting) -> None:
    for status in (500, 502, 503):  # one after the other: each rule takes the next request
        s.proxy.fail(s.kind, status, path_contains=s.target)


def _too_many(as_date: bool) -> Callable[[Setting], None]:
    def arm(s: Setting) -> None:
        s.proxy.fail(s.kind, 429, retry_after=3 if as_date else 2, retry_after_date=as_date, path_contains=s.target)

    return arm


def _stall(s: Setting) -> None:
    # A download gets its status and headers, then nothing; an upload's body is taken and never answered.
    s.proxy.stall(s.kind, 60, headers=s.direction == "down", path_contains=s.target)


def _slow(s: Setting) -> None:
    s.proxy.rate = 4 * MIB


def _kill_registry(s: Setting) -> int:
    s.wait(lambda: s.proxy.total(s.direction) > MIB, "a transfer under way")
    s.registry.kill()
    time.sleep(1.0)  # down for a while: the client's attempts meanwhile get 502 from the proxy
    s.registry.start()
    s.proxy.rate = None
    return 1


def _token_server_down(s: Setting) -> None:
    s.tokens.stop()


def _token_server_back(s: Setting) -> int:
    s.wait(lambda: any(r.kind == "ping" for r in s.proxy.log), "the run's first request")
    time.sleep(3.0)  # the run's token requests meanwhile are refused
    s.tokens.start()
    return 1


def _token_expires(s: Setting) -> None:
    s.tokens.reject_tokens_after(2)
    s.proxy.rate = MIB


def answered_401(proxy: FaultProxy) -> int:
    """Requests (the ping aside) the registry refused with 401 because their token had expired."""
    return sum(r.outcome.startswith("relayed 401") and r.kind != "ping" for r in proxy.log)


def _token_renewed(s: Setting) -> int:
    s.wait(lambda: answered_401(s.proxy) > 0, "a request refused with an expired token")
    s.tokens.claim_lifetime = None  # tokens issued from now on are good
    s.proxy.rate = None
    return 0  # counted from the proxy's log: answered_401


FAULTS: Sequence[Fault] = (
    Fault("reset", _reset),
    Fault("500-502-503", _burst, expected=3),
    Fault("429-seconds", _too_many(as_date=False)),
    Fault("429-date", _too_many(as_date=True)),
    Fault("stall", _stall),
    Fault("registry-killed", _slow, _kill_registry, expected=0, layers=(10 * MIB, 2 * MIB)),
    Fault("token-server-down", _token_server_down, _token_server_back, token=True, expected=0),
    Fault("token-expires", _token_expires, _token_renewed, token=True, expected=0),
)


def run_with(
    cli: Cli, args: Sequence[str], fault: Fault, setting: Setting
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run the CLI with `fault` armed; (the finished run, faults caused by the fault's `during` step)."""
    fault.arm(setting)
    if fault.during is None:
        return cli(*args), 0
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(cli, *args)
        setting.run_ended = future.done
        try:
            caused = fault.during(setting)
        finally:
            setting.tokens.start()
            setting.registry.start()
        return future.result(), caused

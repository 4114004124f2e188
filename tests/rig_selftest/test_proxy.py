"""The rig's TCP proxy: relays to a real registry, counts, throttles, cuts, stalls and stops cleanly."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rig import skopeo
from rig.fixtures import SampleImages
from rig.images import BuiltImage
from rig.proxy import TcpProxy
from rig.registry import RunningRegistry
from rig.skopeo import SkopeoError

MIB = 1 << 20


@dataclass(frozen=True)
class Curl:
    returncode: int
    status: int
    header_bytes: int
    body_bytes: int
    seconds: float
    stderr: str
    headers: str = ""


def _curl(url: str, *args: str, timeout: float = 30.0) -> Curl:
    write_out = "\n%{http_code} %{size_header} %{size_download}"
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-D", "-", "-w", write_out, *args, url],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    headers, _, tail = out.stdout.rpartition("\n")
    code, header_bytes, body_bytes = (int(x) for x in tail.split())
    return Curl(out.returncode, code, header_bytes, body_bytes, 0.0, out.stderr, headers)


def _timed_curl(url: str, *args: str) -> Curl:
    started = time.monotonic()
    result = _curl(url, *args)
    return dataclasses.replace(result, seconds=time.monotonic() - started)


@pytest.fixture
def proxy(plain_registry: RunningRegistry) -> Iterator[TcpProxy]:
    with TcpProxy(plain_registry) as running:
        yield running


@pytest.fixture
def pushed(plain_registry: RunningRegistry, sample_image: SampleImages, unique_repo: str) -> tuple[BuiltImage, str]:
    """An image with one ~1 MiB layer in the plain registry: (image, "repo:tag")."""
    image = sample_image([MIB], random_source="urandom", compresslevel=0)
    skopeo.copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    return image, f"{unique_repo}:v1"


def _blob_url(proxy: TcpProxy, repo_tag: str, digest: str) -> str:
    return f"{proxy.url}/v2/{repo_tag.partition(':')[0]}/blobs/{digest}"


def test_relays_and_counts(proxy: TcpProxy, pushed: tuple[BuiltImage, str]) -> None:
    image, repo_tag = pushed
    layer = image.layers[0]
    got = _curl(_blob_url(proxy, repo_tag, layer.digest))
    assert (got.returncode, got.status, got.body_bytes) == (0, 200, layer.size)
    assert proxy.wait_idle()
    assert proxy.connections_accepted == 1
    assert proxy.bytes_to_client == got.header_bytes + got.body_bytes
    assert 50 < proxy.bytes_to_server < 1000  # one GET request

    got = _curl(f"{proxy.url}/v2/")
    assert got.status == 200
    assert proxy.wait_idle()
    stats = proxy.stats()
    assert (stats.connections_accepted, stats.active_connections, stats.cuts) == (2, 0, 0)
    proxy.reset_counters()
    assert proxy.stats().bytes_to_client == 0


def test_per_connection_rate_limit_both_directions(
    proxy: TcpProxy, pushed: tuple[BuiltImage, str], tmp_path: Path
) -> None:
    image, repo_tag = pushed
    proxy.rate_limit = 4 * MIB  # ~1 MiB blob: ~0.25 s
    got = _timed_curl(_blob_url(proxy, repo_tag, image.layers[0].digest))
    assert got.body_bytes == image.layers[0].size
    assert 0.12 < got.seconds < 0.8, got.seconds

    # Upload: POST starts an upload session (its Location names the proxy), PUT sends 512 KiB at 2 MiB/s.
    repo = repo_tag.partition(":")[0]
    data = tmp_path / "upload.bin"
    data.write_bytes(bytes(range(256)) * 2048)
    digest = f"sha256:{hashlib.sha256(data.read_bytes()).hexdigest()}"
    started = _curl(f"{proxy.url}/v2/{repo}/blobs/uploads/", "-X", "POST")
    assert started.status == 202
    match = re.search(r"^Location: (\S+)", started.headers, re.MULTILINE | re.IGNORECASE)
    assert match and match.group(1).startswith(proxy.url)
    proxy.rate_limit = 2 * MIB
    before = proxy.bytes_to_server
    # (Without an octet-stream type, the registry's form parsing eats the body: DIGEST_INVALID.)
    octet = "Content-Type: application/octet-stream"
    put = _timed_curl(f"{match.group(1)}&digest={digest}", "-X", "PUT", "-H", octet, "--data-binary", f"@{data}")
    assert put.status == 201
    assert proxy.bytes_to_server - before > 512 * 1024
    assert 0.12 < put.seconds < 0.8, put.seconds


def test_total_rate_limit_is_shared(proxy: TcpProxy, pushed: tuple[BuiltImage, str]) -> None:
    image, repo_tag = pushed
    url = _blob_url(proxy, repo_tag, image.layers[0].digest)
    proxy.total_rate_limit = 8 * MIB  # two ~1 MiB downloads at once: ~0.25 s, not ~0.125
    results: list[Curl] = []
    started = time.monotonic()
    threads = [threading.Thread(target=lambda: results.append(_curl(url))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert [r.body_bytes for r in results] == [image.layers[0].size] * 2
    assert 0.15 < elapsed < 1.0, elapsed


def test_rate_limit_can_be_lifted_mid_transfer(proxy: TcpProxy, pushed: tuple[BuiltImage, str]) -> None:
    image, repo_tag = pushed
    proxy.rate_limit = 64 * 1024  # ~16 s for the whole blob
    timer = threading.Timer(0.3, setattr, (proxy, "rate_limit", None))
    timer.start()
    got = _timed_curl(_blob_url(proxy, repo_tag, image.layers[0].digest))
    timer.join()
    assert got.body_bytes == image.layers[0].size
    assert 0.3 <= got.seconds < 2.0, got.seconds


def test_cut_after_bytes_truncates_curl(proxy: TcpProxy, pushed: tuple[BuiltImage, str]) -> None:
    image, repo_tag = pushed
    url = _blob_url(proxy, repo_tag, image.layers[0].digest)
    proxy.cut_after_bytes(100_000)  # once, with a TCP reset
    got = _curl(url)
    assert got.returncode == 56 and "reset" in got.stderr.lower(), got
    assert got.header_bytes + got.body_bytes == 100_000
    assert proxy.cuts == 1 and proxy.cuts_pending == 0
    assert _curl(url).body_bytes == image.layers[0].size  # only the next connection was cut

    proxy.cut_after_bytes(50_000, connections=2, mode="close")  # premature EOF, twice
    first, second, third = _curl(url), _curl(url), _curl(url)
    assert first.returncode == second.returncode == 18  # "transfer closed with N bytes remaining"
    assert first.header_bytes + first.body_bytes == 50_000
    assert third.returncode == 0 and third.body_bytes == image.layers[0].size
    assert proxy.cuts == 3


def test_cut_after_bytes_fails_skopeo_copy(
    proxy: TcpProxy, plain_registry: RunningRegistry, pushed: tuple[BuiltImage, str], tmp_path: Path
) -> None:
    _image, repo_tag = pushed
    proxy.cut_after_bytes(200_000, connections=None)  # every connection: retries cannot help
    with pytest.raises(SkopeoError, match="connection reset by peer"):
        skopeo.copy(f"docker://{proxy.ref(repo_tag)}", f"oci:{tmp_path / 'out'}:v1", src_registry=plain_registry)
    assert proxy.cuts >= 1 and proxy.cuts_pending == float("inf")

    proxy.clear_cut()
    skopeo.copy(f"docker://{proxy.ref(repo_tag)}", f"oci:{tmp_path / 'out2'}:v1", src_registry=plain_registry)


def test_stall_and_latency(proxy: TcpProxy) -> None:
    proxy.stall(0.4)
    got = _timed_curl(f"{proxy.url}/v2/")
    assert got.status == 200 and got.seconds >= 0.35, got

    proxy.stall(None)
    threading.Timer(0.3, proxy.resume).start()
    got = _timed_curl(f"{proxy.url}/v2/")
    assert got.status == 200 and got.seconds >= 0.25, got

    proxy.latency = 0.3
    got = _timed_curl(f"{proxy.url}/v2/")
    assert got.status == 200 and got.seconds >= 0.25, got
    proxy.clear_faults()
    assert _timed_curl(f"{proxy.url}/v2/").seconds < 0.25


def test_drop_connections_and_clean_stop(plain_registry: RunningRegistry) -> None:
    before = set(threading.enumerate())
    proxy = TcpProxy(plain_registry).start()
    assert proxy.url == f"http://{proxy.host}" and proxy.host == f"127.0.0.1:{proxy.port}"
    with socket.create_connection(("127.0.0.1", proxy.port)) as held:
        deadline = time.monotonic() + 2
        while proxy.active_connections == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.drop_connections() == 1
        held.settimeout(2)
        with pytest.raises(ConnectionResetError):
            held.recv(1)
    proxy.stop()
    proxy.stop()
    assert set(threading.enumerate()) == before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()


def test_upstream_down_is_counted() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{placeholder.getsockname()[1]}"  # bound, not listening: connections are refused
        with TcpProxy(dead) as proxy:
            got = _curl(f"{proxy.url}/v2/")
            assert got.returncode != 0
            assert proxy.wait_idle()
            assert proxy.upstream_failures == 1

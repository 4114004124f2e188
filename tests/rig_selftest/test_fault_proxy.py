"""rig.fault_proxy.FaultProxy against a real registry: each kind of fault, the byte accounting, the kinds."""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import os
import time

import pytest
from rig.fault_proxy import FaultProxy, request_kind

MIB = 1 << 20


def _connect(proxy: FaultProxy, timeout: float = 10.0) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=timeout)


def _push_blob(port: int, repo: str, data: bytes) -> str:
    """Upload `data` as a blob straight to the registry (monolithic PUT); returns its digest."""
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    answer = conn.getresponse()
    answer.read()
    location = answer.getheader("Location", "").split(f":{port}", 1)[-1]
    conn.request("PUT", f"{location}&digest={digest}", body=data)
    done = conn.getresponse()
    done.read()
    assert done.status == 201, done.status
    conn.close()
    return digest


@pytest.fixture
def blob(plain_registry, unique_repo):
    data = os.urandom(3 * MIB)
    return unique_repo, _push_blob(plain_registry.port, unique_repo, data), data


def test_requests_are_sorted_into_kinds():
    assert request_kind("GET", "/v2/") == "ping"
    assert request_kind("GET", "/v2/a/b/blobs/sha256:" + "0" * 64) == "blob-get"
    assert request_kind("HEAD", "/v2/a/b/blobs/sha256:" + "0" * 64) == "blob-head"
    assert request_kind("POST", "/v2/a/blobs/uploads/") == "upload-post"
    assert request_kind("PUT", "/v2/a/blobs/uploads/u-1?_state=x&digest=sha256%3A00") == "upload-put"
    assert request_kind("PATCH", "/v2/a/blobs/uploads/u-1?_state=x") == "upload-patch"
    assert request_kind("HEAD", "/v2/a/manifests/v1") == "manifest-head"
    assert request_kind("GET", "/v2/a/tags/list") == "other"


def test_a_failure_is_answered_by_the_proxy_for_the_next_requests_only(plain_registry, blob):
    repo, digest, data = blob
    with FaultProxy(plain_registry) as proxy:
        proxy.fail("blob-get", 429, retry_after=3, retry_after_date=True)
        proxy.fail("blob-get", 503, retry_after=2)
        conn = _connect(proxy)
        statuses = []
        for _ in range(3):
            conn.request("GET", f"/v2/{repo}/blobs/{digest}")
            answer = conn.getresponse()
            body = answer.read()
            statuses.append((answer.status, answer.getheader("Retry-After")))
        assert statuses[1] == (503, "2") and statuses[2] == (200, None)
        assert statuses[0][0] == 429
        when = email.utils.parsedate_to_datetime(statuses[0][1] or "").timestamp()
        assert 0 < when - time.time() <= 4
        assert body == data  # the same keep-alive connection went on working
        assert proxy.faults == 2 and proxy.sent("down", digest) == len(data)  # error bodies are not the blob
    conn.request("GET", "/v2/")  # closed with the proxy
    with pytest.raises(OSError):
        conn.getresponse()


def test_a_failure_body_is_a_registry_error():
    # checked without a registry: the body the proxy itself writes
    with FaultProxy("127.0.0.1:9") as proxy:
        proxy.fail("ping", 500)
        conn = _connect(proxy)
        conn.request("GET", "/v2/")
        answer = conn.getresponse()
        assert answer.status == 500
        errors = json.loads(answer.read())["errors"]
        assert errors[0]["code"] == "UNKNOWN" and "500" in errors[0]["message"]
        conn.request("GET", "/v2/")
        assert conn.getresponse().status == 502  # nothing listens upstream: a load balancer's answer


def test_a_download_reset_cuts_after_the_given_bytes_and_counts_them(plain_registry, blob):
    repo, digest, data = blob
    with FaultProxy(plain_registry) as proxy:
        proxy.reset("blob-get", after=MIB)
        conn = _connect(proxy)
        conn.request("GET", f"/v2/{repo}/blobs/{digest}")
        answer = conn.getresponse()
        received = b""
        with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
            while piece := answer.read1(65536):
                received += piece
        assert len(received) <= MIB and data.startswith(received)
        assert proxy.sent("down", digest) == MIB and proxy.faults == 1


def test_an_upload_reset_leaves_the_registry_without_the_blob(plain_registry, unique_repo):
    data = os.urandom(2 * MIB)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    with FaultProxy(plain_registry) as proxy:
        proxy.reset("upload-put", after=MIB, path_contains=digest)
        conn = _connect(proxy)
        conn.request("POST", f"/v2/{unique_repo}/blobs/uploads/", headers={"Content-Length": "0"})
        answer = conn.getresponse()
        answer.read()
        location = answer.getheader("Location", "").split(f":{proxy.port}", 1)[-1]
        with pytest.raises(OSError):
            conn.request("PUT", f"{location}&digest={digest}", body=data)
            conn.getresponse()
        assert MIB <= proxy.sent("up", digest) <= 2 * MIB and proxy.faults == 1
        check = _connect(proxy)
        check.request("HEAD", f"/v2/{unique_repo}/blobs/{digest}")
        assert check.getresponse().status == 404


def test_a_stall_sends_headers_then_nothing_until_the_client_gives_up(plain_registry, blob):
    repo, digest, _ = blob
    with FaultProxy(plain_registry) as proxy:
        proxy.stall("blob-get", 30, headers=True)
        conn = _connect(proxy, timeout=1.0)
        conn.request("GET", f"/v2/{repo}/blobs/{digest}")
        answer = conn.getresponse()
        assert answer.status == 200
        with pytest.raises(TimeoutError):
            answer.read(1)
        assert proxy.faults == 1 and proxy.sent("down", digest) == 0


def test_a_paced_body_arrives_whole_and_the_rate_can_change_while_it_flows(plain_registry, blob):
    repo, digest, data = blob
    with FaultProxy(plain_registry, rate=2 * MIB) as proxy:
        conn = _connect(proxy)
        conn.request("GET", f"/v2/{repo}/blobs/{digest}")
        answer = conn.getresponse()
        first = answer.read(MIB)
        proxy.rate = None
        assert first + answer.read() == data
        assert proxy.sent("down", digest) == len(data) and proxy.faults == 0
        deadline = time.monotonic() + 10  # the proxy notes a request once its answer is out: the client may be first
        while not proxy.log and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [q.outcome for q in proxy.log] == ["relayed 200"]

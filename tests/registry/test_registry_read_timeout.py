"""--read-timeout reaches the registry client through the Endpoint: a stalled registry fails a request in time."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest

from docker_image_pusher.endpoint import Endpoint, client_for
from docker_image_pusher.errors import TransferError, UsageError
from docker_image_pusher.registry import RegistryClient


def test_each_read_timeout_gets_a_client_of_its_own():
    quick, default = Endpoint("r.example:5000", "http", read_timeout=2.5), Endpoint("r.example:5000", "http")
    assert client_for(quick) is not client_for(default)
    assert client_for(quick)._http.timeout.read == 2.5
    assert client_for(default)._http.timeout.read == 60
    assert client_for(quick)._http.timeout.connect == client_for(default)._http.timeout.connect


def test_a_read_timeout_must_be_positive():
    with pytest.raises(UsageError):
        RegistryClient("http://r.example", read_timeout=0)


def test_a_registry_that_answers_nothing_fails_the_request_as_a_temporary_timeout():
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    host = f"127.0.0.1:{listener.getsockname()[1]}"
    try:
        with (
            RegistryClient.for_host(host, scheme="http", read_timeout=0.3) as client,
            pytest.raises(TransferError) as caught,
        ):
            client.ping()
        assert caught.value.temporary and "read timeout" in caught.value.message
    finally:
        for sock in accepted:
            sock.close()
        listener.close()


def test_the_timeout_applies_to_requests_the_client_builds():
    client = RegistryClient(
        "http://r.example", read_timeout=4, transport=httpx.MockTransport(lambda r: httpx.Response(200))
    )
    request = client._session.build("GET", "http://r.example/v2/")
    assert request.extensions["timeout"]["read"] == 4

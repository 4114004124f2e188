"""A registry port in a reference is 1 to 65535."""

from __future__ import annotations

import pytest

from docker_image_pusher.errors import UsageError
from docker_image_pusher.reference import parse_reference


@pytest.mark.parametrize(
    "text", ["127.0.0.1:0/app", "127.0.0.1:65536/app", "host.example:99999/a/b:v1", "[::1]:70000/a"]
)
def test_a_port_out_of_range_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="bad registry port"):
        parse_reference(text)


@pytest.mark.parametrize(
    ("text", "registry"),
    [
        ("127.0.0.1:1/app", "127.0.0.1:1"),
        ("host.example:65535/a/b:v1", "host.example:65535"),
        ("[::1]:5000/a", "[::1]:5000"),
    ],
)
def test_a_port_in_range_is_kept(text: str, registry: str) -> None:
    assert parse_reference(text).registry == registry

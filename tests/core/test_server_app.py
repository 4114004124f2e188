"""The local Prefect server's app: Prefect's own, its SQLite transactions IMMEDIATE, and a 503 that says
when to retry. Exercised in-process through ASGI, with a fake app for the 503 (a real lock conflict cannot
be produced on demand)."""

from __future__ import annotations

import asyncio
from typing import Any

from docker_image_pusher.server_app import RETRY_AFTER, RetrySoon, _immediate_transactions


def _call(app: Any, status: int, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(RetrySoon(inner)({"type": "http"}, receive, send))
    return sent


def test_a_503_without_retry_after_gets_one():
    start = _call(None, 503, [(b"content-type", b"application/json")])[0]
    assert (b"retry-after", RETRY_AFTER) in start["headers"]
    assert (b"content-type", b"application/json") in start["headers"]


def test_a_503_with_its_own_retry_after_and_other_answers_are_left_alone():
    assert _call(None, 503, [(b"Retry-After", b"7")])[0]["headers"] == [(b"Retry-After", b"7")]
    assert _call(None, 200, [])[0]["headers"] == []


def test_sqlite_transactions_begin_immediate():
    from prefect.server.database import configurations as c

    _immediate_transactions()
    _immediate_transactions()  # twice is harmless
    modes: list[str | None] = []

    class Session:
        def begin(self) -> Any:
            modes.append(c.SQLITE_BEGIN_MODE.get())
            return _Nothing()

    async def run() -> None:
        config = c.AioSqliteConfiguration.__new__(c.AioSqliteConfiguration)
        async with config.begin_transaction(Session()):  # type: ignore[arg-type]
            pass

    asyncio.run(run())
    assert modes == ["IMMEDIATE"]


class _Nothing:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None

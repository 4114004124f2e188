"""The ASGI app our local Prefect server runs: Prefect's own, without its SQLite lock-conflict back-offs.

On SQLite, Prefect's server opens its transactions DEFERRED: one that reads, then writes, while another
writer committed in between fails at once with SQLITE_BUSY_SNAPSHOT (SQLite cannot wait for it: the busy
timeout does not apply), the server answers 503 without Retry-After, and Prefect's client sleeps 2**n
seconds (2, 4, 8 ...) before trying again. A mirror creating its per-image child runs while the server
records the task runs of the others hit this on most runs: in a copy of 20 small images, 25 of 38 s went by
in those back-offs (bench/mirror_bench.py), and answering Retry-After: 0.2 alone only made the conflicts
exhaust the client's 5 retries.

So the server's transactions begin IMMEDIATE: a writer takes the write lock at BEGIN and waits its turn
(busy timeout 60 s) instead of failing on the upgrade. SQLite has one writer at a time anyway; reads outside
a transaction are unaffected. As a backstop, a 503 still gets ``Retry-After: 0.2``.

Imported only by the server process (uvicorn --factory), never by the CLI.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["RETRY_AFTER", "RetrySoon", "create_app"]

RETRY_AFTER = b"0.2"

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class RetrySoon:
    """ASGI middleware: a 503 without Retry-After gets ``Retry-After: 0.2``."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_retry_after(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 503:
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"retry-after" for name, _ in headers):
                    message = {**message, "headers": [*headers, (b"retry-after", RETRY_AFTER)]}
            await send(message)

        await self.app(scope, receive, send_with_retry_after)


def create_app() -> RetrySoon:
    from prefect.server.api.server import create_app as prefect_app

    _immediate_transactions()
    return RetrySoon(prefect_app())


def _immediate_transactions() -> None:
    from prefect.server.database.configurations import AioSqliteConfiguration

    deferred = AioSqliteConfiguration.begin_transaction
    if getattr(deferred, "_always_immediate", False):
        return

    @contextlib.asynccontextmanager
    async def begin_transaction(
        self: AioSqliteConfiguration, session: Any, with_for_update: bool = False
    ) -> AsyncIterator[Any]:
        async with deferred(self, session, with_for_update=True) as transaction:  # IMMEDIATE on SQLite
            yield transaction

    begin_transaction._always_immediate = True  # type: ignore[attr-defined]
    AioSqliteConfiguration.begin_transaction = begin_transaction  # type: ignore[method-assign]

"""The agent's wire format: one JSON object per line over a Unix socket.

client -> agent   {"op": "run", "flow": "pull", "params": {...}, "concurrency": {...}, "umask": 18,
                   "credentials": {"auth_ref": {"username": ..., "password": ...}}}
                  (credentials: per flow parameter; the agent keeps them in memory and passes an opaque ref;
                   null: there are none, the flow must not look for any. umask: the command's; the files and
                   folders the run creates in the cache get the modes it gives, whatever the agent's own)
                  {"op": "ping"} | {"op": "stop"}
agent -> client   {"type": "event", "kind": "TransferProgress", ...}   (any number)
                  {"type": "result", "result": {...}, "concurrency": {controller statistics}}
                  | {"type": "error", "message": ..., "exit_code": ...}
                  {"type": "pong", "pid": ...}
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Protocol

from ..progress import events as ev

__all__ = ["event_from_json", "event_to_json", "read_message", "write_message"]


class Reader(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...
    def flush(self) -> None: ...


_EVENT_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        ev.ImagePlanned,
        ev.TransferStarted,
        ev.TransferProgress,
        ev.TransferFinished,
        ev.TransferFailed,
        ev.ConcurrencyAdjusted,
        ev.ImageMirrored,
    )
}


def write_message(stream: Writer, message: dict[str, Any]) -> None:
    stream.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    stream.flush()


def read_message(stream: Reader, limit: int = 1 << 20) -> dict[str, Any] | None:
    line = stream.readline(limit)
    if not line:
        return None
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("agent message is not a JSON object")
    return obj


def event_to_json(event: ev.Event) -> dict[str, Any]:
    return {"type": "event", "kind": type(event).__name__, **dataclasses.asdict(event)}


def event_from_json(message: dict[str, Any]) -> ev.Event | None:
    cls = _EVENT_TYPES.get(str(message.get("kind")))
    if cls is None:
        return None
    fields = {f.name for f in dataclasses.fields(cls)} - {"at"}
    event: ev.Event = cls(**{k: v for k, v in message.items() if k in fields})
    return event

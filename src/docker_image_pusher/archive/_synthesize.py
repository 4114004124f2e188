"""Manifests the archive does not have, serialized in one fixed form so the same image always gets one digest.

The form is docker distribution's own for schema 2 (Go's ``json.MarshalIndent`` with three spaces, fields in
the struct's order: schemaVersion, mediaType, config, layers; a descriptor as mediaType, size, digest),
i.e. ``json.dumps(value, indent=3)`` over dicts in that order, no trailing newline. The same form serves an
OCI manifest (zstd layers) and an index cut down to the platforms an archive actually holds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Described", "serialize", "sub_index", "synthesize_manifest"]


@dataclass(frozen=True)
class Described:
    media_type: str
    size: int
    digest: str

    def as_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}


def serialize(value: Any) -> bytes:
    return json.dumps(value, indent=3).encode()


def synthesize_manifest(media_type: str, config: Described, layers: Sequence[Described]) -> bytes:
    return serialize(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": config.as_json(),
            "layers": [layer.as_json() for layer in layers],
        }
    )


def sub_index(index: dict[str, Any], media_type: str, keep: set[str]) -> bytes:
    """``index`` with only the child manifests in ``keep``; each kept entry exactly as it was."""
    manifests = [m for m in index.get("manifests", []) if isinstance(m, dict) and m.get("digest") in keep]
    return serialize({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests})

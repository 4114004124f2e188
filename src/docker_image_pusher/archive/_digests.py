"""Member names that carry their content's digest: ``blobs/sha256/<hex>`` (OCI, docker >= 25), and docker's and
skopeo's ``<hex>.json`` configs and ``<hex>.tar`` uncompressed layers (hex of the diff_id)."""

from __future__ import annotations

import re

__all__ = ["blob_path", "blob_path_digest", "named_digest"]

_BLOB_PATH = re.compile(r"blobs/sha256/([0-9a-f]{64})")
_HEX_FILE = re.compile(r"([0-9a-f]{64})\.(?:tar|json)")


def blob_path(digest: str) -> str:
    algorithm, _, hex_digest = digest.partition(":")
    return f"blobs/{algorithm}/{hex_digest}"


def blob_path_digest(name: str) -> str | None:
    match = _BLOB_PATH.fullmatch(name)
    return f"sha256:{match.group(1)}" if match else None


def named_digest(name: str) -> str | None:
    """The digest a name claims for its content, if it is a content-addressed name."""
    match = _HEX_FILE.fullmatch(name)
    return f"sha256:{match.group(1)}" if match else blob_path_digest(name)

"""A gzip-compressed archive (.tar.gz, whatever its name) decompressed once into a temp file.

A gzip stream cannot seek, and the JSON members that say what the layers are may come last. Rather than
decompressing twice (once for the headers, once for the layers) or keeping every member that might be a
blob, the tar is decompressed once into the cache's tmp/ folder; from there it is an ordinary seekable tar
that goes through the same checks, and whose layers stream into the cache by offset, one task per blob.

Costs: disk for the uncompressed tar while the extract runs, and one more write and read of it (mostly in
the page cache). Measured on the 2-core dev machine (bench/extract_bench.py --gzip, and a 568 MiB layer of
/usr/share at gzip -6): inflating alone runs 140-300 MiB/s and dominates; the whole .tar.gz extract runs at
about half of that (75-140 MiB/s; 180-250 MiB/s for incompressible data), where a single streaming pass
that hashes each member into its own temp file measured 145-210 MiB/s. So streaming would gain up to ~1.5x
on a .tar.gz; this design was kept because every later step (checks before copying, one task per blob,
retries) is then the same as for a plain tar.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import zlib
from pathlib import Path

from ..cache import new_temp  # the run's file modes: an agent serves commands with other umasks
from ..errors import ArchiveError

__all__ = ["MAX_RATIO", "MIN_INFLATE_LIMIT", "gunzip_to_temp", "is_gzip"]

_CHUNK = 1 << 20
# A gzip bomb (a small file that inflates to terabytes) would fill the cache's disk. Real archives inflate
# 2-10x (layers already gzipped inside: ~1x); DEFLATE's own maximum is ~1030x, reached only by runs of zeros.
# So inflating stops past MAX_RATIO times the file's size, and never below MIN_INFLATE_LIMIT (small archives).
MAX_RATIO = 200
MIN_INFLATE_LIMIT = 256 * 1024 * 1024


def is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == b"\x1f\x8b"


def gunzip_to_temp(path: Path, work_dir: Path) -> Path:
    """Decompress ``path`` (one or more concatenated gzip members) into a new file in ``work_dir``."""
    out, dest = new_temp(work_dir, ".extract-", ".tar")
    try:
        limit = max(MIN_INFLATE_LIMIT, MAX_RATIO * path.stat().st_size)
        written = 0
        with gzip.open(path, "rb") as src, out:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise ArchiveError(
                        f"{path}: decompresses to more than {limit} bytes, over {MAX_RATIO} times its size "
                        "(a gzip bomb?); decompress it yourself if it is a real image"
                    )
                out.write(chunk)
    except BaseException as err:
        _remove(dest)
        if isinstance(err, EOFError):
            raise ArchiveError(f"{path}: the gzip stream ends early (truncated file)") from None
        if isinstance(err, gzip.BadGzipFile | zlib.error):
            raise ArchiveError(f"{path}: not a valid gzip stream ({err})") from None
        raise
    return dest


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)

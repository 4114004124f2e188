"""One error tree for the whole tool.

    PusherError                 exit 1   anything we raise on purpose
    ├── UsageError              exit 2   bad flags, bad reference, bad repository name
    ├── AuthError               exit 3   wrong credentials, missing rights
    ├── NotFoundError           exit 4   unknown repository, tag, blob, or image not in the cache
    ├── TransferError           exit 5   network failures and registry refusals
    │   └── RegistryError                an HTTP answer we cannot use; carries the registry's diagnostics
    │       ├── RegistryAuthError    exit 3
    │       └── RegistryNotFoundError exit 4
    ├── IntegrityError          exit 6   digest or size mismatch, oversized manifest
    ├── ArchiveError            exit 7   a tar or layout that is not a valid image
    └── CacheError              exit 8   the cache is damaged, incomplete, or its disk is full

Every error has a one-line ``message`` for the user and a ``temporary`` flag: retries look only at
``temporary``; the CLI looks only at ``message`` and ``exit_code``. Messages never contain secrets.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ArchiveError",
    "AuthError",
    "CacheError",
    "Diagnostic",
    "IntegrityError",
    "NotFoundError",
    "PusherError",
    "RegistryAuthError",
    "RegistryError",
    "RegistryNotFoundError",
    "TransferError",
    "UsageError",
    "from_os_error",
]


class PusherError(Exception):
    """Base of every error the tool raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, temporary: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.temporary = temporary
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default exception pickling (Prefect pickles states).
        return (_rebuild, (type(self), self.__dict__.copy()))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[PusherError], state: dict[str, Any]) -> PusherError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("message", ""))
    err.__dict__.update(state)
    return err


class UsageError(PusherError):
    exit_code = 2


class AuthError(PusherError):
    exit_code = 3


class NotFoundError(PusherError):
    exit_code = 4


class TransferError(PusherError):
    """The network or the registry failed us. ``temporary`` says whether trying again may help."""

    exit_code = 5


class IntegrityError(PusherError):
    """Bytes that do not match their digest or size. Retrying a download may help (a bad proxy)."""

    exit_code = 6


class ArchiveError(PusherError):
    exit_code = 7


class CacheError(PusherError):
    exit_code = 8


def from_os_error(err: OSError) -> PusherError:
    """A file-system failure as one line: a full disk is a cache problem, the rest names the file and the cause."""
    where = f" ({err.filename})" if err.filename else ""
    if err.errno == errno.ENOSPC:
        return CacheError(f"no space left on device{where}; free some space or use another --cache-dir")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return CacheError(f"cannot write{where}: {err.strerror}")
    return PusherError(f"{err.strerror or err}{where}")


@dataclass(frozen=True)
class Diagnostic:
    """One entry of the distribution spec's error body: ``{"errors": [{"code", "message", "detail"}]}``."""

    code: str
    message: str = ""


class RegistryError(TransferError):
    """An HTTP answer from a registry that we cannot use."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        diagnostics: tuple[Diagnostic, ...] = (),
        temporary: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, temporary=temporary, retry_after=retry_after)
        self.status = status
        self.diagnostics = diagnostics

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(d.code for d in self.diagnostics)


class RegistryAuthError(RegistryError, AuthError):
    exit_code = 3


class RegistryNotFoundError(RegistryError, NotFoundError):
    exit_code = 4

"""Turn HTTP answers and network failures into the tool's error tree, with one-line, secret-free messages."""

from __future__ import annotations

import errno
import json
import ssl
import time
from email.utils import parsedate_to_datetime

import httpx

from ..errors import (
    Diagnostic,
    RegistryAuthError,
    RegistryError,
    RegistryNotFoundError,
    TransferError,
)
from ._redact import redact_text, redact_url

__all__ = [
    "TEMPORARY_STATUSES",
    "error_from_response",
    "error_from_transport",
    "parse_diagnostics",
    "parse_retry_after",
]

TEMPORARY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_MAX_ERROR_BODY = 64 * 1024
# httpcore's words for a connection that ended early, in the user's: a reset while the request was being sent
# is suppressed by httpcore, which then reads an end of stream, so "disconnected" may well have been a reset.
_CUT_OFF = {
    "server disconnected without sending a response": "the connection was closed or reset before an answer",
    "peer closed connection without sending complete message body": "the connection was closed or reset mid-body",
}
# The same event seen by the socket: a reset (ECONNRESET) or a write after the peer closed (EPIPE).
_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})
_RESET_TEXTS = ("connection reset by peer", "broken pipe", "connection aborted")
_MAX_TEXT = 300

_NOT_FOUND_HINTS = {
    "MANIFEST_UNKNOWN": "no such manifest (tag or digest)",
    "NAME_UNKNOWN": "no such repository",
    "BLOB_UNKNOWN": "no such blob in this repository",
    "BLOB_UPLOAD_UNKNOWN": "the upload session is unknown or has expired",
}


def _one_line(text: str, limit: int = _MAX_TEXT) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def parse_diagnostics(body: bytes) -> tuple[Diagnostic, ...]:
    """The spec's ``{"errors": [{"code", "message", "detail"}]}``; anything else gives ``()``."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ()
    if not isinstance(data, dict):
        return ()
    entries = data.get("errors")
    if not isinstance(entries, list):
        # Some token services answer {"details": "..."} or {"error": "...", "error_description": "..."}.
        for key in ("details", "error_description", "error", "message"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return (Diagnostic(code="", message=_one_line(redact_text(value))),)
        return ()
    out: list[Diagnostic] = []
    for entry in entries[:10]:
        if not isinstance(entry, dict):
            continue
        code = entry.get("code")
        message = entry.get("message")
        out.append(
            Diagnostic(
                code=_one_line(code, 64) if isinstance(code, str) else "",
                message=_one_line(redact_text(message)) if isinstance(message, str) else "",
            )
        )
    return tuple(out)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: either delta-seconds or an HTTP date. No cap."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _read_error_body(response: httpx.Response) -> bytes:
    """Up to 64 KiB of the body, whether or not the response was streamed; never raises."""
    if response.is_stream_consumed or response.is_closed:
        try:
            return response.content[:_MAX_ERROR_BODY]
        except httpx.ResponseNotRead:
            return b""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= _MAX_ERROR_BODY:
                break
    except (httpx.HTTPError, httpx.StreamError):
        pass
    finally:
        response.close()
    return b"".join(chunks)[:_MAX_ERROR_BODY]


def _summary(status: int, reason: str, diagnostics: tuple[Diagnostic, ...]) -> str:
    parts = [f"HTTP {status}" + (f" {reason}" if reason else "")]
    for diag in diagnostics[:3]:
        text = ": ".join(p for p in (diag.code, diag.message) if p)
        if text:
            parts.append(text)
    return "; ".join(parts)


def _where(url: httpx.URL) -> str:
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{url.port}" if url.port else host


def error_from_response(response: httpx.Response, *, action: str, hint: str | None = None) -> RegistryError:
    """The error for an unusable answer. ``action`` says what was attempted, e.g. ``"pull manifest x:1"``.

    401/403 -> RegistryAuthError, 404 -> RegistryNotFoundError, 408/429/5xx -> temporary RegistryError
    carrying ``retry_after``; anything else -> permanent RegistryError.
    """
    status = response.status_code
    diagnostics = parse_diagnostics(_read_error_body(response)) if response.request.method != "HEAD" else ()
    summary = _summary(status, _one_line(response.reason_phrase, 60), diagnostics)
    codes = {d.code for d in diagnostics}
    if status in (401, 403):
        if hint is None:
            hint = (
                "the credentials lack the rights, or the repository does not exist"
                if status == 403 or "DENIED" in codes
                else "check the credentials (a repository that does not exist may also answer this)"
            )
        message = f"not authorized to {action} ({summary}); {hint}"
        return RegistryAuthError(redact_text(message), status=status, diagnostics=diagnostics)
    if status == 404:
        hints = [_NOT_FOUND_HINTS[c] for c in _NOT_FOUND_HINTS if c in codes]
        what = hints[0] if hints else "not found"
        message = f"cannot {action}: {what} ({summary})"
        return RegistryNotFoundError(redact_text(message), status=status, diagnostics=diagnostics)
    if status in TEMPORARY_STATUSES:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        label = "rate limited by the registry" if status == 429 else "the registry failed temporarily"
        later = f"; retry after {retry_after:.0f} s" if retry_after is not None else ""
        message = f"cannot {action}: {label} ({summary}){later}"
        return RegistryError(
            redact_text(message), status=status, diagnostics=diagnostics, temporary=True, retry_after=retry_after
        )
    message = f"cannot {action}: unexpected answer from the registry ({summary})"
    return RegistryError(redact_text(message), status=status, diagnostics=diagnostics)


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_tls_verification_failure(exc: BaseException) -> bool:
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(cause):
            return True
    return False


def _is_reset(exc: BaseException) -> bool:
    """httpx keeps only the text of the socket error (``[Errno 104] Connection reset by peer``), so look at both."""
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.errno in _RESET_ERRNOS:
            return True
        if any(text in str(cause).lower() for text in _RESET_TEXTS):
            return True
    return False


def is_plain_http_answer_to_tls(exc: BaseException) -> bool:
    """An https request to a server that speaks plain HTTP (typical for a local registry)."""
    return any("WRONG_VERSION_NUMBER" in str(c) or "record layer failure" in str(c) for c in _causes(exc))


def error_from_transport(exc: httpx.HTTPError | OSError, *, action: str, url: httpx.URL | str) -> TransferError:
    """A network failure. Connection problems and timeouts are temporary; TLS verification is not."""
    where = redact_url(url)
    host = _where(httpx.URL(str(url)))
    if isinstance(exc, httpx.TooManyRedirects):
        return RegistryError(f"cannot {action}: too many redirects from {where}")
    if is_tls_verification_failure(exc):
        return TransferError(
            f"cannot {action}: the TLS certificate of {host} could not be verified; pass the registry's CA "
            "certificate (--ca-file) or, for a registry you trust, skip verification (--skip-tls)",
            temporary=False,
        )
    if is_plain_http_answer_to_tls(exc):
        return TransferError(
            f"cannot {action}: {host} does not speak TLS; use an http:// registry URL if it is a plain-HTTP registry",
            temporary=False,
        )
    if isinstance(exc, httpx.TimeoutException):
        kind = type(exc).__name__.replace("Timeout", " timeout").strip().lower()
        return TransferError(f"cannot {action}: {kind} talking to {host}", temporary=True)
    detail = _one_line(redact_text(str(exc) or type(exc).__name__), 160)
    detail = _CUT_OFF.get(detail.rstrip(".").lower(), detail)
    if _is_reset(exc):
        detail = "the connection was closed or reset"
    return TransferError(f"cannot {action}: network error talking to {host} ({detail})", temporary=True)

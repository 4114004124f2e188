"""Keep secrets out of logs and messages, and a debug trace of every HTTP exchange.

What counts as a secret: ``Authorization``-like headers, bearer tokens and JWTs, passwords, and every
query value that is not known to be harmless (upload ``_state``, S3/CDN signatures, tokens in URLs).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx

__all__ = [
    "LOGGER_NAME",
    "REDACTED",
    "RedactingFilter",
    "install_log_redaction",
    "redact_headers",
    "redact_text",
    "redact_url",
    "trace_hooks",
]

LOGGER_NAME = "docker_image_pusher.registry"
REDACTED = "REDACTED"

_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-registry-auth", "x-amz-security-token"}
)
# Query parameters whose values are safe (and useful) to show. Everything else is redacted.
_SAFE_QUERY_KEYS = frozenset({"digest", "mount", "from", "service", "scope", "n", "last"})

_URL_WITH_QUERY = re.compile(
    r"(?P<base>(?:[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>?#]*|/[^\s'\"<>?#]*))\?(?P<q>[^\s'\"<>#]*)"
)
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s'\"<>@]+@")
# "Bearer <token>" / "Basic <base64>", but not a challenge such as 'Basic realm="..."'.
_AUTH_VALUE = re.compile(
    r"(?i)\b(?P<scheme>bearer|basic)(?P<sep>\s+)(?!(?:realm|service|scope|error|charset)\s*=)[A-Za-z0-9._~+/=-]{4,}"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# "token": "...", 'password': '...' (JSON, repr) or token=... (forms, queries); not a bare "token:" (a repository
# may be called that).
_SECRET_KEYS = r"(?:access_token|refresh_token|id_token|identitytoken|token|password|passwd|secret)"
_KEYED_SECRET = re.compile(
    rf"(?i)(?P<key>(?:[\"']{_SECRET_KEYS}[\"']\s*:\s*[\"']?|\b{_SECRET_KEYS}\s*=\s*[\"']?))(?P<value>[^\"'&\s,}}]+)"
)


def _redact_query(query: str) -> str:
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(
        f"{quote(k, safe='')}={quote(v, safe=':') if k in _SAFE_QUERY_KEYS else REDACTED}" for k, v in pairs
    )


def redact_url(url: httpx.URL | str) -> str:
    """The URL without user info, fragment, or the values of query parameters not known to be harmless."""
    try:
        parsed = httpx.URL(str(url))
    except (httpx.InvalidURL, TypeError, ValueError):
        return redact_text(str(url))
    parsed = parsed.copy_with(username=None, password=None, fragment=None, query=None)
    text = str(parsed)
    query = httpx.URL(str(url)).query.decode("ascii", "replace")
    return f"{text}?{_redact_query(query)}" if query else text


def redact_headers(headers: Mapping[str, str] | httpx.Headers) -> dict[str, str]:
    items = headers.multi_items() if isinstance(headers, httpx.Headers) else list(headers.items())
    out: dict[str, str] = {}
    for key, value in items:
        shown = REDACTED if key.lower() in _SECRET_HEADERS else redact_text(value)
        out[key] = f"{out[key]}, {shown}" if key in out else shown
    return out


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask known secrets, auth header values, JWTs, ``token=...``-style pairs and URL query secrets."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, REDACTED)
    text = _AUTH_VALUE.sub(lambda m: f"{m['scheme']}{m['sep']}{REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _KEYED_SECRET.sub(lambda m: f"{m['key']}{REDACTED}", text)
    text = _USERINFO.sub(lambda m: m["scheme"], text)
    return _URL_WITH_QUERY.sub(lambda m: f"{m['base']}?{_redact_query(m['q'])}", text)


class RedactingFilter(logging.Filter):
    """Rewrites records of third-party loggers (httpx logs full URLs, httpcore logs response headers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's business, not ours
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg = redacted
            record.args = ()
        return True


# httpx logs each request at INFO; httpcore logs headers at DEBUG. Logger filters do not apply to records that
# propagate from child loggers, so every emitting logger gets its own filter.
_THIRD_PARTY_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.connection",
    "httpcore.proxy",
)


def install_log_redaction() -> None:
    """Attach :class:`RedactingFilter` to httpx's and httpcore's loggers (idempotent)."""
    for name in _THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


def trace_hooks(logger: logging.Logger | None = None) -> dict[str, list[Callable[[Any], None]]]:
    """httpx ``event_hooks`` that log every request and response (method, redacted URL, status) at DEBUG."""
    log = logger or logging.getLogger(LOGGER_NAME)

    def on_request(request: httpx.Request) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("-> %s %s", request.method, redact_url(request.url))

    def on_response(response: httpx.Response) -> None:
        if log.isEnabledFor(logging.DEBUG):
            request = response.request
            log.debug("<- %s %s %s", response.status_code, request.method, redact_url(request.url))

    return {"request": [on_request], "response": [on_response]}

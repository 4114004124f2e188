"""``WWW-Authenticate`` parsing (RFC 9110 §11.6.1), strict enough to be right, tolerant enough for registries.

    challenge   = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
    auth-param  = token BWS "=" BWS ( token / quoted-string )

A header may carry several challenges separated by commas, and a quoted value may itself contain commas
(``scope="repository:x:pull,push"``), so splitting on commas is wrong: after a comma, ``name=`` continues the
current challenge and anything else starts a new one. Garbage raises :class:`RegistryError`, never anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import RegistryError

__all__ = ["Challenge", "parse_challenges", "pick_challenge"]

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TOKEN68 = frozenset("-._~+/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WS = " \t"


@dataclass(frozen=True, eq=True)
class Challenge:
    """One challenge. ``scheme`` and parameter names are lower-cased; values are kept as sent."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)
    token68: str | None = None

    __hash__ = None  # type: ignore[assignment]  # params is a dict

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The ``scope`` parameter: space-separated scopes (the token spec allows several)."""
        return tuple(self.params.get("scope", "").split())


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> RegistryError:
        shown = self.text if len(self.text) <= 200 else self.text[:200] + "..."
        return RegistryError(
            f"cannot parse the registry's WWW-Authenticate header {shown!r}: {what} at character {self.pos}"
        )

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.peek() and self.peek() in _WS:
            self.pos += 1

    def skip_separators(self) -> None:
        while self.peek() and self.peek() in _WS + ",":
            self.pos += 1

    def token(self) -> str:
        start = self.pos
        while self.peek() and self.peek() in _TCHAR:
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        assert self.peek() == '"'
        self.pos += 1
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise self.fail("unterminated quoted string")
            self.pos += 1
            if ch == '"':
                return "".join(out)
            if ch == "\\":
                escaped = self.peek()
                if not escaped:
                    raise self.fail("unterminated quoted string")
                self.pos += 1
                out.append(escaped)
            else:
                out.append(ch)

    def token68(self) -> str | None:
        """A token68 here that is not the start of ``name=value``, or None (position unchanged)."""
        start = self.pos
        while self.peek() and self.peek() in _TOKEN68:
            self.pos += 1
        if self.pos == start:
            return None
        while self.peek() == "=":
            self.pos += 1
        value = self.text[start : self.pos]
        self.skip_ws()
        if self.at_end() or self.peek() == ",":
            return value
        self.pos = start
        return None

    def starts_param(self) -> bool:
        """Whether ``name =`` follows (after separators), without moving."""
        saved = self.pos
        try:
            self.skip_separators()
            if not self.token():
                return False
            self.skip_ws()
            return self.peek() == "="
        finally:
            self.pos = saved

    def challenges(self) -> list[Challenge]:
        found: list[Challenge] = []
        while True:
            self.skip_separators()
            if self.at_end():
                return found
            scheme = self.token()
            if not scheme:
                raise self.fail(f"expected an authentication scheme, found {self.peek()!r}")
            if not self.at_end() and self.peek() not in _WS + ",":
                raise self.fail(f"unexpected {self.peek()!r} after the scheme {scheme!r}")
            self.skip_ws()
            params: dict[str, str] = {}
            token68 = self.token68()
            if token68 is None:
                self.params(params)
            found.append(Challenge(scheme.lower(), params, token68))

    def params(self, params: dict[str, str]) -> None:
        first = True
        while True:
            self.skip_ws()
            if self.at_end():
                return
            if self.peek() == ",":
                if not self.starts_param():
                    return  # the next challenge (or trailing commas) starts here
                self.skip_separators()
            elif not first:
                raise self.fail(f"expected ',' between parameters, found {self.peek()!r}")
            first = False
            name = self.token()
            if not name:
                raise self.fail(f"expected a parameter name, found {self.peek()!r}")
            self.skip_ws()
            if self.peek() != "=":
                raise self.fail(f"expected '=' after {name!r}")
            self.pos += 1
            self.skip_ws()
            if self.peek() == '"':
                value = self.quoted()
            else:
                value = self.token()
                if not value:
                    raise self.fail(f"expected a value for {name!r}")
            params.setdefault(name.lower(), value)


def parse_challenges(header: str | Iterable[str]) -> list[Challenge]:
    """All challenges of one or several ``WWW-Authenticate`` header values, in order.

    >>> parse_challenges('Bearer realm="https://a/token",scope="repository:x:pull,push"')[0].scopes
    ('repository:x:pull,push',)
    """
    values = [header] if isinstance(header, str) else list(header)
    found: list[Challenge] = []
    for value in values:
        found.extend(_Parser(value).challenges())
    return found


def pick_challenge(challenges: Iterable[Challenge]) -> Challenge | None:
    """The challenge we answer: Bearer if offered (it scopes access per repository), else Basic."""
    by_scheme: dict[str, Challenge] = {}
    for challenge in challenges:
        by_scheme.setdefault(challenge.scheme, challenge)
    return by_scheme.get("bearer") or by_scheme.get("basic")

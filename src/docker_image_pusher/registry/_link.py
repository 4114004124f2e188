"""The ``Link`` header (RFC 8288) as registries use it to page through tag lists.

    Link: </v2/library/nginx/tags/list?last=1.25&n=100>; rel="next"

Parsing is tolerant: a link-value that does not parse is skipped (up to the next comma outside ``<...>`` and
quotes), so garbage never raises; with nothing usable the answer is ``[]`` or None.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Link", "next_link", "parse_link_header"]

_SPACE = " \t"


@dataclass(frozen=True)
class Link:
    """One link-value: the target as written (maybe relative) and its parameters (names lower-cased; the first
    occurrence of a name wins, as RFC 8288 says for ``rel``)."""

    target: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def rels(self) -> frozenset[str]:
        """The relation types: ``rel="prev next"`` is two of them; relation types are case-insensitive."""
        return frozenset(self.params.get("rel", "").lower().split())


def _skip_to_next_value(text: str, i: int) -> int:
    """The index just after the next comma that is outside ``<...>`` and quoted strings (or the end)."""
    in_target = in_quotes = False
    while i < len(text):
        char = text[i]
        if in_quotes:
            if char == "\\":
                i += 1
            elif char == '"':
                in_quotes = False
        elif in_target:
            in_target = char != ">"
        elif char == '"':
            in_quotes = True
        elif char == "<":
            in_target = True
        elif char == ",":
            return i + 1
        i += 1
    return i


def _quoted(text: str, i: int) -> tuple[str, int] | None:
    """The quoted-string starting at ``text[i] == '"'``, unescaped, and the index after it; None if unterminated."""
    out: list[str] = []
    i += 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    return None


def _link_value(text: str, i: int) -> tuple[Link, int] | None:
    """The link-value starting at ``text[i] == '<'`` and the index where it ends (at a comma or the end)."""
    end = text.find(">", i + 1)
    if end < 0:
        return None
    target = text[i + 1 : end].strip()
    params: dict[str, str] = {}
    i = end + 1
    while True:
        while i < len(text) and text[i] in _SPACE:
            i += 1
        if i >= len(text) or text[i] == ",":
            return Link(target, params), i
        if text[i] != ";":
            return None
        i += 1
        while i < len(text) and text[i] in _SPACE:
            i += 1
        start = i
        while i < len(text) and text[i] not in '=;,"<>' + _SPACE:
            i += 1
        name = text[start:i].lower()
        while i < len(text) and text[i] in _SPACE:
            i += 1
        value = ""
        if i < len(text) and text[i] == "=":
            i += 1
            while i < len(text) and text[i] in _SPACE:
                i += 1
            if i < len(text) and text[i] == '"':
                quoted = _quoted(text, i)
                if quoted is None:
                    return None
                value, i = quoted
            else:
                start = i
                while i < len(text) and text[i] not in ';,"<>' + _SPACE:
                    i += 1
                value = text[start:i]
        if name:
            params.setdefault(name, value)


def parse_link_header(value: str) -> list[Link]:
    """Every link-value in one ``Link`` header value that parses, in order."""
    links: list[Link] = []
    i = 0
    while i < len(value):
        while i < len(value) and value[i] in _SPACE + ",":
            i += 1
        if i >= len(value):
            break
        parsed = _link_value(value, i) if value[i] == "<" else None
        if parsed is None:
            i = _skip_to_next_value(value, i)
            continue
        link, i = parsed
        links.append(link)
    return links


def next_link(values: str | Iterable[str]) -> str | None:
    """The target of the first link with relation type ``next`` among one or several ``Link`` header values."""
    for value in [values] if isinstance(values, str) else values:
        for link in parse_link_header(value):
            if "next" in link.rels and link.target:
                return link.target
    return None

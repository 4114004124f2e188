"""Which redirects a registry client follows: a response hook on the shared ``httpx.Client``.

Registries redirect blob (and sometimes manifest) requests to storage: S3, a CDN, an internal object store.
The client follows them (httpx, ``follow_redirects=True``), with these rules, checked before each hop:

- at most ``MAX_REDIRECTS`` (10) hops per request; more is "too many redirects" (a loop, or a registry
  bouncing us around). Real registries use one hop (registry -> storage), two with a CDN in between.
- only ``http`` and ``https`` targets; ``file:``, ``ftp:``, ``gopher:``... are refused.
- no downgrade: a redirect from ``https`` to ``http`` is refused (it would expose the signed storage URL,
  and the bytes, to anyone on the path).
- never to a link-local address (169.254.0.0/16, fe80::/10): that is where cloud metadata services live
  (169.254.169.254), and no registry stores blobs there.
- a registry on a public address may not send us to a private, loopback or otherwise non-global address
  (SSRF: a hostile public registry using the puller to reach the internal network). A registry on a private
  address may: enterprise registries redirect to internal storage all the time.

Host names are resolved (getaddrinfo) to classify them; a name that does not resolve is left to the
connection to fail. This is a policy on where the client is told to go, not a defence against DNS
rebinding between this check and the connection. Credentials never follow a redirect to another host:
httpx drops Authorization across origins and RegistryAuth only signs requests to the registry itself.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import httpx

from ..errors import RegistryError
from ._redact import redact_text, redact_url

__all__ = ["MAX_REDIRECTS", "RedirectPolicy", "install_redirect_policy"]

MAX_REDIRECTS = 10

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], list[Address]]


def resolve(host: str) -> list[Address]:
    """The addresses of ``host`` (an IP literal is itself); [] if it does not resolve."""
    host = host.strip("[]").lower()
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1")]
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    found: list[Address] = []
    for info in infos:
        try:
            found.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
        except ValueError:
            continue
    return found


def _unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_link_local(address: Address) -> bool:
    return _unmapped(address).is_link_local


def _is_global(address: Address) -> bool:
    return _unmapped(address).is_global


class RedirectPolicy:
    """The response hook: raises RegistryError for a redirect it will not let the client follow."""

    def __init__(self, registry: Callable[[], httpx.URL], resolver: Resolver = resolve) -> None:
        self._registry = registry
        self._resolve = resolver
        self._seen: dict[str, list[Address]] = {}

    def _addresses(self, host: str) -> list[Address]:
        if host not in self._seen:
            self._seen[host] = self._resolve(host)
        return self._seen[host]

    def __call__(self, response: httpx.Response) -> None:
        if not response.has_redirect_location:
            return
        source = response.url
        location = response.headers["Location"]
        try:
            target = source.join(location)
        except httpx.InvalidURL:
            raise self._refuse(source, "an invalid Location header") from None
        if target.scheme not in ("http", "https") or not target.host:
            shown = redact_text(location if len(location) <= 80 else location[:77] + "...")
            raise self._refuse(source, f"a non-http(s) location {shown!r}")
        where = redact_url(target.copy_with(query=None, fragment=None))
        addresses = self._addresses(target.host)
        if any(_is_link_local(a) for a in addresses):
            raise self._refuse(source, f"the link-local address {where} (cloud metadata lives there)")
        if source.scheme == "https" and target.scheme == "http":
            raise self._refuse(source, f"plain http ({where}): an https to http downgrade")
        registry = self._registry()
        registry_public = bool(self._addresses(registry.host)) and all(
            _is_global(a) for a in self._addresses(registry.host)
        )
        if registry_public and any(not _is_global(a) for a in addresses):
            raise self._refuse(
                source, f"the private address {where}, from the registry {registry.host} on a public address"
            )

    @staticmethod
    def _refuse(source: httpx.URL, what: str) -> RegistryError:
        return RegistryError(f"refusing a redirect from {redact_url(source.copy_with(query=None))} to {what}")


def install_redirect_policy(http: httpx.Client, registry: Callable[[], httpx.URL]) -> None:
    """Cap the hops of ``http`` at MAX_REDIRECTS and check each one with a RedirectPolicy for ``registry()``
    (the registry's current base URL: it changes when a loopback registry falls back to plain http)."""
    http.max_redirects = MAX_REDIRECTS
    hooks = http.event_hooks
    hooks["response"] = [*hooks.get("response", []), RedirectPolicy(registry)]
    http.event_hooks = hooks

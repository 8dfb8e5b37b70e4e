"""Which addresses a fetch may connect to, enforced when the connection is opened.

With `fetch.allow_private_networks: false`, a fetch may not reach loopback, private (RFC 1918,
IPv6 ULA), link-local (including the cloud metadata address 169.254.169.254), CGNAT, NAT64,
unspecified, multicast or reserved addresses. The check runs where the connection is made, in
the resolver of the fetcher's aiohttp connector (`PolicyResolver`): the host is resolved once,
*every* address it resolves to is checked, and aiohttp connects only to the addresses it was
given, never to a second resolution. An IP-literal host, which aiohttp does not resolve, is
checked by `NetworkPolicy.check_literal` before each request. Each redirect hop opens its own
connection, so it is checked too, and DNS rebinding (a name that resolves differently the second
time) cannot get around it. Hosts in `fetch.allow_hosts` (as written in URLs) are exempt. A
refusal raises `BlockedAddressError` (a `FetchError`, see `monitor.core.errors`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from monitor.core.errors import BlockedAddressError

__all__ = ["BLOCKED_NETWORKS", "BlockedAddressError", "NetworkPolicy", "PolicyResolver",
           "blocked_reason"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Blocked networks and why (more specific first; checked after IPv4-mapped/NAT64 unwrapping).
BLOCKED_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(net), why) for net, why in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b::/96", "NAT64"),
        ("64:ff9b:1::/48", "NAT64"),
        ("100::/64", "discard-only"),
        ("2001:db8::/32", "documentation"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    ))


def blocked_reason(address: str | IPAddress) -> str | None:
    """Why `address` is not a public unicast address ("loopback", "private", …), else None.

    IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible, 6to4, Teredo and NAT64 addresses are judged
    by the IPv4 addresses they carry as well.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    for net, why in BLOCKED_NETWORKS:
        if ip.version == net.version and ip in net:
            return why
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.teredo is not None:  # 2001::/32: judged by the server and (client) it carries
            server, client = ip.teredo
            return blocked_reason(client) or blocked_reason(server)
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and int(ip) >> 32 == 0 and int(ip) > 1:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)  # IPv4-compatible ::a.b.c.d
        if embedded is not None:
            return blocked_reason(embedded)
    return None


@dataclass(frozen=True)
class NetworkPolicy:
    """`allow_private`: no checks at all. `allow_hosts`: host names or IP literals, as written
    in URLs, that may resolve to anything."""

    allow_private: bool = True
    allow_hosts: frozenset[str] = frozenset()

    @classmethod
    def of(cls, allow_private: bool, allow_hosts: Iterable[str] = ()) -> NetworkPolicy:
        """A policy with host names normalised (lower case, no brackets, no trailing dot)."""
        return cls(allow_private, frozenset(_norm_host(h) for h in allow_hosts))

    def check(self, host: str, addresses: Iterable[str]) -> None:
        """Raise BlockedAddressError unless every address `host` resolved to is allowed."""
        if self.allow_private or _norm_host(host) in self.allow_hosts:
            return
        for address in addresses:
            why = blocked_reason(address.split("%", 1)[0])  # drop an IPv6 zone id
            if why is not None:
                raise BlockedAddressError(host, address, why)

    def check_literal(self, host: str) -> None:
        """`check` for a URL host that is an IP literal (aiohttp connects to it unresolved)."""
        try:
            address = str(ipaddress.ip_address(_norm_host(host).split("%", 1)[0]))
        except ValueError:
            return
        self.check(host.strip("[]"), [address])


class PolicyResolver(AbstractResolver):
    """An aiohttp resolver that refuses a host when any address it resolves to is blocked;
    aiohttp then connects only to the addresses it returned (cached ones were checked too)."""

    def __init__(self, policy: NetworkPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        self._policy.check(host, [str(r["host"]) for r in results])
        return results

    async def close(self) -> None:
        await self._inner.close()


def _norm_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()

"""Where webhooks may go. An endpoint URL makes the server send requests wherever it points,
so by default it must be https:// and its host must resolve to public addresses only: not
loopback, private, link-local (cloud metadata services live there), shared, multicast or
reserved. This is checked when an endpoint is saved, for a clear userError, and again on every
connection the sender opens (``PublicOnlyBackend``): DNS can change between the two, and the
connection goes to the very address that was checked. WEBHOOK_ALLOW_PRIVATE_URLS=true lifts
both checks, for tests and private networks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services, named for the message (all of them fail the public test anyway).
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")
ALLOW_HINT = "WEBHOOK_ALLOW_PRIVATE_URLS=true allows it on a private network."


class RefusedAddress(Exception):
    """A webhook request that would reach a non-public address, or that could not be resolved."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _embedded(ip: IPAddress) -> IPAddress | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def kind_of(ip: IPAddress) -> str | None:
    """What makes ``ip`` non-public ("loopback", "private", ...), or None for a public one."""
    inner = _embedded(ip)
    if inner is not None and (found := kind_of(inner)) is not None:
        return found
    if ip in _METADATA:
        return "cloud metadata"
    for kind, test in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("unspecified", ip.is_unspecified),
        ("multicast", ip.is_multicast),
        ("shared (carrier-grade NAT)", ip in _SHARED),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if test:
            return kind
    return None if ip.is_global else "non-public"


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal: itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RefusedAddress(f"The host {host} could not be resolved ({exc}).") from None
    # The scope of a link-local IPv6 address (fe80::1%eth0) is not part of the address. In a
    # fixed order, IPv4 first: the one connected to, and the one a refusal names.
    addresses = {ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in found}
    return sorted(addresses, key=lambda ip: (ip.version, int(ip)))


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def first_public(host: str, addresses: Iterable[IPAddress]) -> IPAddress:
    """The address to connect to, when every one ``host`` resolves to is public."""
    chosen: IPAddress | None = None
    for ip in addresses:
        kind = kind_of(ip)
        if kind is not None:
            named = host if _literal(host) else f"{host} resolves to {ip}, which"
            article = "an" if kind[0] in "aeiou" else "a"
            raise RefusedAddress(
                f"{named} is {article} {kind} address: webhooks go to public addresses only. "
                + ALLOW_HINT
            )
        chosen = chosen or ip
    if chosen is None:
        raise RefusedAddress(f"The host {host} resolves to no address.")
    return chosen


async def url_problem(url: str, allow_private: bool) -> str | None:
    """Why an endpoint may not have this URL, or None."""
    invalid = "This is not a valid URL: use https://host/path."
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return invalid
    if parsed.scheme not in ("https", "http") or not parsed.host:
        return invalid
    if allow_private:
        return None
    if parsed.scheme != "https":
        return "Use an https:// URL: webhooks are not sent over plain HTTP. " + ALLOW_HINT
    try:
        first_public(parsed.host, await resolve(parsed.host, parsed.port or 443))
    except RefusedAddress as refused:
        return refused.message
    return None


class PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving each host itself and connecting only to a
    public address it checked: no other code resolves the name in between (DNS rebinding).
    TLS still verifies the certificate for the host name."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        ip = first_public(host, await resolve(host, port))
        return await self._inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("Webhooks are not sent to Unix sockets.")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)

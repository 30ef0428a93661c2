"""Where a workspace may make the server connect: the public internet, not the networks
around the deployment.

Webhook URLs, the SMS provider's URL and IMAP hosts are set by workspace admins, and
anyone can make a workspace. Left unchecked, they would have the server reach its own
loopback, the cloud's metadata address or the private network behind it, and report back
what answered. A host is refused when it resolves to anything but global addresses,
checked when it is saved and again before each connection (a name may change what it
resolves to). An IPv6 address that stands for an IPv4 one (NAT64, IPv4-mapped, 6to4) is
judged by the IPv4 address inside it. The deployment's operator may allow private
targets (``RELAYDESK_ALLOW_PRIVATE_TARGETS``: one company with an internal mail server);
only then does a webhook's own ``allow_private`` let that endpoint reach one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


_HINT = "; use a publicly reachable host, or ask the operator to set RELAYDESK_ALLOW_PRIVATE_TARGETS"
# IPv6 addresses with an IPv4 address in their last 32 bits that lead to it: NAT64's
# well-known prefix (RFC 6052) and the deprecated IPv4-compatible form.
_IPV4_IN_LOW_BITS = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::/96"))
# NAT64 for a network's own use (RFC 8215): it translates to whatever that network chooses.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


class UnsafeTarget(Exception):
    """A target the server must not connect to; the message says why."""


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in _LOCAL_NAT64:
            return False
        inside = address.ipv4_mapped or address.sixtofour
        if inside is None and any(address in network for network in _IPV4_IN_LOW_BITS):
            inside = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
        if inside is not None:
            return _public(inside)
    return True


async def check_host(host: str, port: int, *, hint: str = _HINT) -> None:
    """Raises ``UnsafeTarget`` unless every address ``host`` resolves to is public."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeTarget(f"The host name does not resolve: {exc.strerror}.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not _public(address):
            raise UnsafeTarget(f"{host} resolves to {address}, a loopback or private address{hint}.")


async def check_target(url: str, *, allow_private: bool, hint: str = _HINT) -> None:
    """Refuse URLs that are not http(s) or that point into private networks."""
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        # urlsplit drops CR, LF and tab without a word, so the URL would pass here, but the
        # HTTP client refuses it at every send.
        raise UnsafeTarget("A URL cannot contain spaces or control characters; percent-encode them.")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number or out of range
    except ValueError as exc:
        raise UnsafeTarget(f"Not a usable URL: {exc}.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget("Use an http:// or https:// URL with a host name.")
    if allow_private:
        return
    await check_host(parts.hostname, port or (443 if parts.scheme == "https" else 80), hint=hint)

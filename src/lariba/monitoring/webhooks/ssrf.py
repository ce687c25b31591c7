"""The SSRF guard of webhooks: a receiver URL may only lead to public addresses (or to
networks the operator allows), checked when the webhook is saved and again at every send,
where the connection goes to the very address that was checked."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048

# Prefixes that carry an IPv4 address inside an IPv6 one (NAT64): the embedded address
# is the one that matters.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class UnsafeWebhookUrl(Exception):
    """The URL is not one Lariba may send to; ``str()`` says why, for the user, and
    ``code`` is the problem's stable code."""

    def __init__(self, reason: str, *, code: str = "invalid_webhook_url") -> None:
        super().__init__(reason)
        self.code = code


def allowed_networks(spec: str) -> tuple[IPNetwork, ...]:
    """``LARIBA_WEBHOOK_ALLOWED_NETWORKS`` (comma-separated CIDRs) as networks."""
    return tuple(ipaddress.ip_network(part.strip()) for part in spec.split(",") if part.strip())


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_public(address: IPAddress) -> bool:
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
        or not address.is_global
    )


def refusal(address: IPAddress, allowed: Sequence[IPNetwork]) -> str | None:
    """Why ``address`` may not be reached, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            # ::ffff:127.0.0.1 is 127.0.0.1 to the kernel: judge the IPv4 address.
            return refusal(embedded, allowed)
    if any(address.version == network.version and address in network for network in allowed):
        return None
    if _is_public(address):
        return None
    return (
        f"resolves to {address}, a private, loopback, link-local or reserved address; "
        "webhooks only reach public addresses unless the operator allows the network "
        "(LARIBA_WEBHOOK_ALLOWED_NETWORKS)"
    )


def check_url(url: str, *, allow_http: bool) -> SplitResult:
    """Checks the URL's form (not where it leads); raises UnsafeWebhookUrl."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeWebhookUrl(f"must be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeWebhookUrl(f"is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UnsafeWebhookUrl("must be an https:// URL")
    if scheme == "http" and not allow_http:
        raise UnsafeWebhookUrl("must use https:// (plain http is not allowed on this server)")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeWebhookUrl("must not contain credentials (user:password@); sign-check instead")
    if not parts.hostname:
        raise UnsafeWebhookUrl("must name a host")
    if parts.fragment:
        raise UnsafeWebhookUrl("must not contain a #fragment")
    if port == 0:
        raise UnsafeWebhookUrl("must not use port 0")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise UnsafeWebhookUrl("must not contain spaces or control characters")
    return parts


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, the way the system resolver reads it (so
    2130706433 and 0177.0.0.1 come back as the 127.0.0.1 they are)."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeWebhookUrl(
            f"host {host!r} does not resolve ({exc})", code="webhook_host_unresolvable"
        ) from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # Scoped IPv6 addresses come back as "fe80::1%eth0".
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeWebhookUrl(f"host {host!r} does not resolve", code="webhook_host_unresolvable")
    return addresses


async def vetted_addresses(
    host: str, port: int, *, allowed: Sequence[IPNetwork]
) -> list[IPAddress]:
    """The addresses of ``host``, all of them allowed; raises UnsafeWebhookUrl when any
    is not (a name with one private address among public ones is refused whole)."""
    addresses = await resolve(host, port)
    for address in addresses:
        reason = refusal(address, allowed)
        if reason is not None:
            raise UnsafeWebhookUrl(reason, code="webhook_address_not_allowed")
    return addresses


async def check_destination(url: str, *, allow_http: bool, allowed: Sequence[IPNetwork]) -> None:
    """The form and the destination of the URL, as at creation."""
    parts = check_url(url, allow_http=allow_http)
    assert parts.hostname is not None
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    await vetted_addresses(parts.hostname, port, allowed=allowed)


class PinnedTransport(httpx.AsyncBaseTransport):
    """Resolves the request's host, vets every address, then connects to a vetted one
    (keeping the Host header and the TLS server name of the URL), so a DNS answer that
    changes between the check and the connection (DNS rebinding) cannot redirect it."""

    def __init__(self, *, allowed: Sequence[IPNetwork]) -> None:
        self._allowed = tuple(allowed)
        self._inner = httpx.AsyncHTTPTransport(retries=0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        addresses = await vetted_addresses(host, port, allowed=self._allowed)
        last_error: httpx.ConnectError | None = None
        for address in addresses:
            pinned = request.url.copy_with(host=str(address))
            extensions = dict(request.extensions)
            if request.url.scheme == "https":
                # Certificate checked against the name in the URL, not the address.
                extensions["sni_hostname"] = host
            attempt = httpx.Request(
                request.method,
                pinned,
                headers=request.headers,  # Host: still the URL's host
                stream=request.stream,
                extensions=extensions,
            )
            try:
                return await self._inner.handle_async_request(attempt)
            except httpx.ConnectError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def aclose(self) -> None:
        await self._inner.aclose()

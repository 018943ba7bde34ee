"""SSRF guard for webhook targets: only global addresses, checked where we connect.

A webhook URL is chosen by a customer, so without a guard it is a way to make
our workers POST into our own network (databases, admin ports, the cloud
metadata service). The check runs at send time, not only at registration: a
host can resolve to something else tomorrow. And it runs inside the HTTP
client's connect step (`GuardedBackend`), which resolves the host once, checks
every address, and connects to a checked address; there is no second lookup an
attacker could answer differently (DNS rebinding). TLS still verifies the
certificate and sends SNI for the host name, because httpcore takes those from
the URL, not from the address we connected to.

The same rules also run when a customer sets a URL (`check_target`, called by
`indexer.subscriptions`), so an unreachable target is refused with a 422 before
any credit is spent on matches that could never be delivered. That check is
advice, not the guard: DNS answers change, so the send-time check stays.

`LOGFILL_WEBHOOK_ALLOW_PRIVATE=true` (local development, the demo, tests) lets
loopback and private targets and plain http through; cloud metadata addresses,
multicast and unspecified addresses stay refused even then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from urllib.parse import urlsplit

import httpcore

from indexer.errors import LogfillError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Addresses answering as a cloud's instance metadata service, beyond 169.254.0.0/16
# (link-local, refused anyway): AWS's IPv6 endpoint, Azure's wire server (a
# public-looking address that only exists inside Azure) and Alibaba Cloud's.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "168.63.129.16", "100.100.100.200")
)

# Shared address space (RFC 6598, carrier-grade NAT): not global, yet neither
# private nor reserved for `ipaddress`, so it needs its own name in a refusal.
_SHARED = ipaddress.ip_network("100.64.0.0/10")

# IPv6 ranges that carry an IPv4 address in their last 32 bits: IPv4-mapped,
# the deprecated IPv4-compatible, and NAT64's well-known prefix.
_EMBEDS_IPV4_LOW = tuple(
    ipaddress.ip_network(n) for n in ("::ffff:0:0/96", "::/96", "64:ff9b::/96")
)

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

# How long a URL being set may take to resolve: the customer is waiting for the answer.
SET_TIME_DNS_TIMEOUT_SECONDS = 2.0

# Hosts the system resolver reads as an IPv4 number rather than a name (inet_aton):
# dotted parts in decimal, octal (leading 0) or hex (0x), and fewer than 4 parts.
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)


class WebhookRefused(LogfillError):
    """The webhook target is not one we send to; the delivery fails without being sent."""


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the known wrappings."""
    if isinstance(address, ipaddress.IPv4Address) or address.is_loopback or address.is_unspecified:
        return None
    if address.sixtofour is not None:
        return address.sixtofour
    for network in _EMBEDS_IPV4_LOW:
        if address in network:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _category(address: IPAddress) -> str | None:
    """Why an address is not a public destination (None: it is one)."""
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if address in _SHARED:
        return "shared"
    if not address.is_global:
        return "non-global"
    return None


def refusal_reason(address: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why we do not send to `address` ("private address 10.0.0.5"), or None.

    An IPv4 address wrapped in IPv6 (::ffff:127.0.0.1) is judged as the IPv4 address.
    """
    inner = embedded_ipv4(address)
    if inner is not None:
        reason = refusal_reason(inner, allow_private=allow_private)
        return f"{reason} (as {address})" if reason else None
    category = _category(address)
    if category is None:
        return None
    if allow_private and category not in ("cloud metadata", "unspecified", "multicast"):
        return None
    return f"{category} address {address}"


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host names literally ([::1] or 127.0.0.1), else None.

    Also the IPv4 spellings the system resolver takes as numbers: `0177.0.0.1`
    (octal), `0x7f.1` (hex, short form), `2130706433` (one number), `127.1`. They
    go through `inet_aton`, the routine getaddrinfo itself uses, so the address
    checked is the one a connection would reach; `ipaddress` alone refuses them, and
    they would pass for host names.
    """
    text = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if not _NUMERIC_HOST.match(text):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None  # not a number after all (08.1, 1.2.3.4.5): a name


def check_url(url: str, *, allow_private: bool = False) -> None:
    """Refuse what can be refused before any network: the scheme and a literal address."""
    parts = urlsplit(url)
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        raise WebhookRefused(f"refused: webhook URL must use {' or '.join(allowed)}")
    if not parts.hostname:
        raise WebhookRefused("refused: webhook URL has no host")
    literal = literal_address(parts.hostname)
    if literal is not None:
        reason = refusal_reason(literal, allow_private=allow_private)
        if reason:
            raise WebhookRefused(f"refused: webhook URL names {reason}")


def check_addresses(host: str, addresses: Iterable[str], *, allow_private: bool) -> list[str]:
    """The addresses to connect to, if every one of them is allowed.

    All of them, not just the first: a host answering one public and one private
    address could otherwise be steered to the private one on a retry.
    """
    checked = []
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        reason = refusal_reason(address, allow_private=allow_private)
        if reason:
            raise WebhookRefused(f"refused: webhook host {host} resolves to {reason}")
        checked.append(text)
    if not checked:
        raise WebhookRefused(f"refused: webhook host {host} has no address")
    return checked


async def check_target(
    url: str,
    *,
    allow_private: bool,
    resolve: Resolver,
    dns_timeout: float = SET_TIME_DNS_TIMEOUT_SECONDS,
) -> None:
    """Refuse a webhook URL the send-time guard would refuse, when it is set.

    The same rules as at send time: the scheme and a literal address
    (`check_url`), then every address the host resolves to (`check_addresses`).
    One difference: a host that does not resolve (or not within `dns_timeout`) is
    refused here, whereas at send time it is a network failure that is retried. A
    customer setting a URL is told at once that nothing can reach it, rather than
    finding out from dead deliveries after the matches were charged.
    """
    check_url(url, allow_private=allow_private)
    parts = urlsplit(url)
    host = parts.hostname or ""
    if literal_address(host) is not None:
        return  # checked by check_url
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused("refused: webhook URL has an invalid port") from None
    try:
        async with asyncio.timeout(dns_timeout):
            addresses = await resolve(host, port)
    except TimeoutError:
        raise WebhookRefused(
            f"refused: webhook host {host} did not resolve within {dns_timeout:g} s"
        ) from None
    except OSError as exc:  # socket.gaierror: no such host, no address, resolver down
        why = exc.strerror or str(exc) or type(exc).__name__
        raise WebhookRefused(f"refused: webhook host {host} does not resolve ({why})") from None
    check_addresses(host, addresses, allow_private=allow_private)


async def system_resolve(host: str, port: int) -> list[str]:
    """The host's addresses from the event loop's getaddrinfo (the system resolver)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that resolves, checks and connects to a checked address."""

    def __init__(self, *, allow_private: bool, resolve: Resolver = system_resolve) -> None:
        self._allow_private = allow_private
        self._resolve = resolve
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, port)
        error: Exception | None = None
        for address in addresses:  # in resolver order, as the system would
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def _addresses(self, host: str, port: int) -> list[str]:
        literal = literal_address(host)
        if literal is not None:
            return check_addresses(host, [str(literal)], allow_private=self._allow_private)
        try:
            resolved = await self._resolve(host, port)
        except OSError as exc:  # socket.gaierror: no such host, resolver down
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        return check_addresses(host, resolved, allow_private=self._allow_private)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise WebhookRefused("refused: webhooks are not sent over unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)

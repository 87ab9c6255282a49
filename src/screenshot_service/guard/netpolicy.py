"""Where the browser may go (SSRF policy): strict raw-URL syntax, the host allowlist, and address checks
after DNS resolution, applied to the first URL and again, in the browser, to every request it makes.

Rules, in the order they are applied to a request the browser is about to make:

1. Only ``http``/``https`` (and ``ws``/``wss``) leave the browser; ``data:``/``blob:``/``about:`` do not
   touch the network and pass; everything else (``file:``, ``chrome:``, ``ftp:`` ...) is blocked.
2. A configured dashboard's own origin (scheme, host *and port*) is trusted: the operator chose it.
3. For a raw URL render, main-frame navigations (the first URL, redirects, ``location = ...``) must
   stay on hosts of the URL allowlist.
4. Every other request's host is resolved, and *every* address it resolves to must be public: no
   loopback, private, link-local, CGNAT, multicast, unspecified, reserved or cloud-metadata address,
   including IPv4 hidden in IPv6 (``::ffff:127.0.0.1``, 6to4, Teredo, NAT64), unless the operator
   allowed private networks or listed a CIDR.

Rules 1 and 3 are applied by request interception in the browser (which gives clear errors for the
main navigation and its redirects); rules 2 and 4 by the egress proxy (``egress.py``), through which
every connection the browser makes goes, and which connects to the very address it checked, so DNS
rebinding cannot swap in another one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import structlog

from .. import metrics
from ..errors import ForbiddenUrl
from ..settings import Settings

log = structlog.get_logger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "fd00:ec2::254",  # AWS over IPv6
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server (a public address!)
    )
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

# Reasons SCREENSHOT_ALLOW_PRIVATE_NETWORKS lifts; metadata, multicast, unspecified and reserved stay.
PRIVATE_REASONS = frozenset({"loopback", "private", "link-local", "cgnat"})
NO_NETWORK_SCHEMES = frozenset({"data", "blob", "about"})
WEB_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
DEFAULT_PORTS = {"http": 80, "https": 443}

_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port)`` to the addresses it resolves to (a test can stand in for DNS)."""

_AUTHORITY = re.compile(r"(?P<host>\[[0-9a-f:.]+\]|[^:\[\]]*)(:(?P<port>[0-9]{1,5}))?")


def address_problem(ip: IPAddress) -> str | None:
    """Why the browser may not connect to ``ip`` by default (``"loopback"``, ``"metadata"``...), or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        for embedded in _embedded_ipv4(ip):
            if reason := address_problem(embedded):
                return reason
    if ip in METADATA_ADDRESSES:
        return "metadata"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "cgnat"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> Iterable[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries, which may route to them (mapped, 6to4, Teredo, NAT64)."""
    if ip.ipv4_mapped is not None:
        yield ip.ipv4_mapped
    if ip.sixtofour is not None:
        yield ip.sixtofour
    if ip.teredo is not None:
        yield from ip.teredo
    if ip in NAT64 or (ip in IPV4_COMPATIBLE and int(ip) > 1):
        yield ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


def origin_of(url: str) -> str | None:
    """``scheme://host:port`` of an http(s)/ws(s) URL, ports made explicit; None for other URLs."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = WEB_SCHEMES.get(parts.scheme)
    if scheme is None or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{scheme}://{host}:{port or DEFAULT_PORTS[scheme]}"


class NetPolicy:
    """The operator's network policy: which hosts raw URLs may name and which addresses may be reached."""

    def __init__(
        self,
        *,
        url_allowlist: Iterable[str] = (),
        allow_private_networks: bool = False,
        allowed_networks: Iterable[str] = (),
        resolve_timeout_s: float = 3.0,
        resolver: Resolver | None = None,
    ) -> None:
        self._exact: set[str] = set()
        self._ips: set[IPAddress] = set()
        self._suffixes: list[str] = []
        for entry in url_allowlist:
            if entry.startswith("*."):
                self._suffixes.append(entry[1:])  # ".example.com": subdomains only, not the domain
            elif ip := _parse_ip(entry.strip("[]")):
                self._ips.add(ip)
            else:
                self._exact.add(entry)
        self._allow_private = allow_private_networks
        self._networks: list[IPNetwork] = [ipaddress.ip_network(n) for n in allowed_networks]
        self._resolve_timeout_s = resolve_timeout_s
        self._resolver = resolver or _getaddrinfo

    @classmethod
    def from_settings(cls, settings: Settings) -> NetPolicy:
        return cls(
            url_allowlist=settings.url_allowlist,
            allow_private_networks=settings.allow_private_networks,
            allowed_networks=settings.allowed_networks,
        )

    def host_allowed(self, host: str) -> bool:
        """Whether raw URLs may name ``host`` (lower-case, IPv6 in brackets or not)."""
        if ip := _parse_ip(host.strip("[]")):
            return ip in self._ips
        return host in self._exact or any(host.endswith(suffix) for suffix in self._suffixes)

    def ip_problem(self, ip: IPAddress) -> str | None:
        """Why ``ip`` may not be reached under this policy, or None."""
        if any(ip in network for network in self._networks):
            return None
        reason = address_problem(ip)
        if reason in PRIVATE_REASONS and self._allow_private:
            return None
        return reason

    async def resolve(self, host: str, port: int) -> tuple[list[IPAddress], str | None]:
        """Resolve ``host`` once and check every address it has: (the addresses, why one of them may not
        be reached or None)."""
        if ip := _parse_ip(host.strip("[]")):
            return [ip], self.ip_problem(ip)
        try:
            async with asyncio.timeout(self._resolve_timeout_s):
                found = await self._resolver(host, port)
            addresses = sorted({ipaddress.ip_address(a.partition("%")[0]) for a in found}, key=str)
        except (OSError, TimeoutError, ValueError):
            return [], "unresolvable"
        for ip in addresses:
            if reason := self.ip_problem(ip):
                return addresses, reason
        return addresses, None if addresses else "unresolvable"

    async def host_problem(self, host: str, port: int) -> str | None:
        """Resolve ``host`` and check every address it has; why it may not be reached, or None."""
        return (await self.resolve(host, port))[1]

    def check_raw_url(self, url: str) -> tuple[str, int]:
        """Check a raw URL's syntax and its host against the allowlist: (host, port) or :class:`ForbiddenUrl`.

        Deliberately stricter than browsers: anything a browser would rewrite (upper-case schemes,
        backslashes, numeric host forms, trailing dots, Unicode hosts, user info) is refused, so what
        we check is what the browser loads.
        """
        host, port = _split_raw_url(url)
        if host.endswith("."):
            raise _refuse("Host names with a trailing dot are not accepted.")
        if host.startswith("["):
            if _parse_ip(host[1:-1]) is None:
                raise _refuse("The URL's IPv6 address is not well formed.")
        elif _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
            ip = _parse_ip(host)
            if ip is None or str(ip) != host:
                raise _refuse("Numeric hosts must be plain dotted-quad IPv4 addresses.")
        elif not _HOSTNAME.fullmatch(host):
            raise _refuse("The URL's host is not a valid host name.")
        if not self.host_allowed(host):
            raise _refuse(f"The host {host} is not on this service's URL allowlist.")
        return host, port

    async def check_raw_url_addresses(self, url: str) -> None:
        """The full request-time check of a raw URL: syntax, allowlist, then every resolved address."""
        host, port = self.check_raw_url(url)
        if reason := await self.host_problem(host, port):
            metrics.BLOCKED_REQUESTS.labels(reason).inc()
            raise _refuse(f"The host {host} resolves to an address this service may not reach ({reason}).")


class Gate:
    """The policy as one browser context applies it to each request its pages make."""

    def __init__(
        self, policy: NetPolicy, *, trusted_origin: str | None, allowlisted_navigation: bool
    ) -> None:
        self._policy = policy
        self._trusted_origin = trusted_origin
        self._allowlisted_navigation = allowlisted_navigation
        trusted = urlsplit(trusted_origin) if trusted_origin else None
        self._trusted_endpoint = (trusted.hostname, trusted.port) if trusted else None

    def trusted(self, url: str) -> bool:
        """Whether ``url`` is on the trusted origin: only such requests carry a dashboard's headers."""
        return self._trusted_origin is not None and origin_of(url) == self._trusted_origin

    async def destination(self, host: str, port: int) -> tuple[IPAddress | None, str | None]:
        """Where the egress proxy may connect for ``host:port``: (an address it checked, None), or
        (None, why not). The trusted origin's host and port pass whatever they resolve to."""
        addresses, reason = await self._policy.resolve(host, port)
        if not addresses:
            return None, reason or "unresolvable"
        if (host.strip("[]"), port) == self._trusted_endpoint:
            return addresses[0], None
        return (None, reason) if reason else (addresses[0], None)

    async def problem(self, url: str, *, main_frame_navigation: bool) -> str | None:
        """Why the browser must not make this request (it is logged and counted), or None to let it go."""
        reason, host = await self._problem(url, main_frame_navigation=main_frame_navigation)
        if reason is not None:
            metrics.BLOCKED_REQUESTS.labels(reason).inc()
            # The host, never the URL: query strings can carry tokens.
            log.warning("request blocked", host=host, reason=reason, navigation=main_frame_navigation)
        return reason

    async def _problem(self, url: str, *, main_frame_navigation: bool) -> tuple[str | None, str | None]:
        scheme = url.partition(":")[0].lower()
        if scheme in NO_NETWORK_SCHEMES:
            return None, None
        origin = origin_of(url)
        if origin is None:
            return "scheme", None
        if origin == self._trusted_origin:
            return None, None
        parts = urlsplit(url)
        host = parts.hostname or ""
        if main_frame_navigation and self._allowlisted_navigation and not self._policy.host_allowed(host):
            return "not-allowlisted", host
        port = parts.port or DEFAULT_PORTS[WEB_SCHEMES[scheme]]
        return await self._policy.host_problem(host, port), host


def _split_raw_url(url: str) -> tuple[str, int]:
    """(lower-case host, port) of an http(s) URL written the plain way; :class:`ForbiddenUrl` otherwise."""
    if not url.isascii() or not url.isprintable() or " " in url:
        raise _refuse("URLs must be ASCII without spaces; write IDN hosts in their xn-- form.")
    if "\\" in url:
        raise _refuse("Backslashes are not accepted in URLs.")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in DEFAULT_PORTS:
        raise _refuse("Only http:// and https:// URLs (scheme in lower case) can be rendered.")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        raise _refuse("URLs with user info (user@host) are not accepted.")
    match = _AUTHORITY.fullmatch(authority.lower())
    if match is None or not match.group("host"):
        raise _refuse("The URL's host and port are not well formed.")
    port = int(match.group("port") or DEFAULT_PORTS[scheme])
    if not 0 < port < 65536:
        raise _refuse("The URL's port is out of range.")
    return match.group("host"), port


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _refuse(detail: str) -> ForbiddenUrl:
    return ForbiddenUrl(detail, field="url")

"""The outbound policy: which addresses the server may connect to when a tenant chooses the URL.

Webhook deliveries, imports and every later feature that fetches a tenant's URL (task sources, base images,
cache rules, replication to a tenant's endpoint) connect through `EgressPolicy.transport()` or
`async_transport()`. By default they refuse every address that is not publicly routable: loopback,
link-local (and with it the cloud metadata services), private and unique-local ranges, shared (CGNAT),
unspecified, multicast and reserved addresses, including IPv4 addresses embedded in IPv6 ones.

The check happens where the connection is made: the host name is resolved, each address is checked, and the
socket is opened to that checked address (TLS still verifies and sends the host name). A name that resolves
differently a moment later (DNS rebinding) therefore cannot slip through, and a redirect is checked again,
because it opens a new connection. Environment proxies are not used: a proxy would resolve the name itself.

Operators allow internal targets by address range or by host name (`--egress-allow 10.1.0.0/16`,
`--egress-allow registry.internal`, `--egress-allow '*.corp.example'`). A name on the allow-list may resolve
to any address; an address range allows what falls in it whatever name led there.

How a feature uses it (the policy is `RegistryContext.egress`):
- httpx clients: `httpx.Client(transport=ctx.egress.transport(verify=…))`, or `async_transport()`; a refusal
  is raised as `EgressRefused` (an `httpx.ConnectError`) before anything is sent;
- when a tenant configures a URL: `ctx.egress.check_url(url)` answers statically, without DNS, what the URL
  alone decides (a literal refused address, `localhost`, a metadata host name), so the API can answer 400;
- a fetcher that is not httpx (a subprocess): `ctx.egress.resolve(host, port)` gives the allowed addresses
  to connect it to.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Union

import anyio
import httpcore
import httpx

log = logging.getLogger("cargohold.egress")

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

LOOPBACK_ALLOW = ("127.0.0.0/8", "::1")
"""What tests and single-machine setups allow so the registry may call services on the same host."""

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "169.254.169.123", "100.100.100.200", "fd00:ec2::254"))
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                            "instance-data.ec2.internal"})
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_COMPATIBLE = ipaddress.ip_network("::/96")
_TEREDO = ipaddress.ip_network("2001::/32")
_HOST_NAME = re.compile(r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
POLICY_HINT = "an operator can allow it with --egress-allow"


class EgressRefused(httpx.ConnectError):
    """The outbound policy refused the connection; nothing was sent. The message says why, for the tenant."""


def address_refusal(address: IPAddress) -> str | None:
    """Why the default policy refuses `address` (a short phrase), or None when it is publicly routable."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_refusal(embedded)
        if address in _NAT64_LOCAL or address in _TEREDO:
            return "a tunnelled address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_private:
        return "a private address"
    if not address.is_global or address.is_reserved:
        return "a reserved address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: mapped, compatible, 6to4 or NAT64."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """The default refuses every non-public address; `allowed_networks` and `allowed_hosts` make exceptions."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    """Lower-case host names; `*.example.com` allows every name below example.com (not example.com itself)."""

    @classmethod
    def from_allow_list(cls, entries: Iterable[str]) -> EgressPolicy:
        """Parse `--egress-allow` values: an address, a CIDR range, a host name or `*.domain`.

        Raises ValueError naming the first entry that is none of these."""
        networks: list[IPNetwork] = []
        hosts: list[str] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if not _HOST_NAME.match(entry) or len(entry) > 253 or "/" in entry:
                raise ValueError(f"{raw!r} is neither an address, a CIDR range nor a host name")
            hosts.append(entry)
        return cls(tuple(dict.fromkeys(networks)), tuple(dict.fromkeys(hosts)))

    @property
    def allow_list(self) -> list[str]:
        return [str(n) for n in self.allowed_networks] + list(self.allowed_hosts)

    def host_allowed(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return any(name == allowed or (allowed.startswith("*.") and name.endswith(allowed[1:]))
                   for allowed in self.allowed_hosts)

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why a connection to `address`, reached through `host`, is refused; None when it is allowed."""
        if self.host_allowed(host):
            return None
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(address)) is not None:
            candidates.append(embedded)
        if any(a in network for a in candidates for network in self.allowed_networks
               if a.version == network.version):
            return None
        return address_refusal(address)

    def check_url(self, url: str | httpx.URL) -> None:
        """Refuse what the URL alone shows to be refused: a literal address, `localhost` (and names below it)
        or a cloud metadata host name. Names are not resolved here; the connection checks them again.

        Raises EgressRefused; ValueError when the URL cannot be parsed (the caller's syntax check says more).
        """
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ValueError(str(exc)) from None
        host = parsed.host.lower().rstrip(".")
        if not host or self.host_allowed(host):
            return
        address = _literal_address(host)
        if address is None:
            loopback = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
            if (host == "localhost" or host.endswith(".localhost")) and all(
                    self.refusal(host, a) for a in loopback):
                raise EgressRefused(f"{host} is a loopback name, which the outbound policy refuses; "
                                    f"{POLICY_HINT}")
            if host in METADATA_HOSTS and self.refusal(host, ipaddress.ip_address("169.254.169.254")):
                raise EgressRefused(f"{host} is a cloud metadata service, which the outbound policy refuses; "
                                    f"{POLICY_HINT}")
            return
        reason = self.refusal(host, address)
        if reason is not None:
            raise EgressRefused(f"{address} is {reason}, which the outbound policy refuses; {POLICY_HINT}")

    def allowed_addresses(self, host: str, infos: Sequence[tuple[object, ...]]) -> list[str]:
        """The addresses of getaddrinfo's answer that may be connected to, in its order, without repeats.

        Raises EgressRefused when none may. The message does not name the addresses a name resolved to:
        a tenant should not learn the server's internal DNS from it; the log has them."""
        allowed: list[str] = []
        refused: list[tuple[str, str]] = []
        for info in infos:
            sockaddr = info[4]
            assert isinstance(sockaddr, tuple)
            text = str(sockaddr[0]).split("%", 1)[0]
            address = ipaddress.ip_address(text)
            reason = self.refusal(host, address)
            if reason is None:
                if text not in allowed:
                    allowed.append(text)
            else:
                refused.append((text, reason))
        if allowed:
            return allowed
        log.warning("outbound policy refused %s (%s)", host,
                    ", ".join(f"{text}: {reason}" for text, reason in refused) or "no address")
        if not refused:
            raise EgressRefused(f"{host} has no address")
        reason = refused[0][1]
        try:
            ipaddress.ip_address(host)
            what = f"{host} is {reason}"
        except ValueError:
            what = f"{host} resolves to {reason}"
        raise EgressRefused(f"{what}, which the outbound policy refuses; {POLICY_HINT}")

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of `host` this policy lets a connection go to (blocking DNS). For a fetcher that is
        not httpx (a subprocess), connect it to one of these rather than to the name, so the answer checked is
        the one used. Raises EgressRefused, or OSError when the name does not resolve."""
        return self.allowed_addresses(host, socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))

    def transport(self, *, verify: ssl.SSLContext | bool = True,
                  limits: httpx.Limits | None = None) -> httpx.BaseTransport:
        """An httpx transport (for `httpx.Client(transport=…)`) that connects only where the policy allows."""
        return _Transport(httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify), network_backend=_SyncBackend(self),
            **_pool_limits(limits)))

    def async_transport(self, *, verify: ssl.SSLContext | bool = True,
                        limits: httpx.Limits | None = None) -> httpx.AsyncBaseTransport:
        """The same for `httpx.AsyncClient(transport=…)`."""
        return _AsyncTransport(httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify), network_backend=_AsyncBackend(self),
            **_pool_limits(limits)))


def _literal_address(host: str) -> IPAddress | None:
    """The address a host names without DNS, including the legacy IPv4 forms the resolver accepts
    (`127.1`, `2130706433`, `0x7f.1`)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fx.]+", host) and not host.endswith("."):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _pool_limits(limits: httpx.Limits | None) -> dict[str, object]:
    limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
    return {"max_connections": limits.max_connections,
            "max_keepalive_connections": limits.max_keepalive_connections,
            "keepalive_expiry": limits.keepalive_expiry}


class _Transport(httpx.HTTPTransport):
    """httpx's own transport around a pool whose network backend applies the policy."""

    def __init__(self, pool: httpcore.ConnectionPool) -> None:  # noqa: D107 - the parent's pool is replaced
        self._pool = pool


class _AsyncTransport(httpx.AsyncHTTPTransport):
    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:
        self._pool = pool


class _SyncBackend(httpcore.NetworkBackend):
    """Resolves, checks, and connects to an address it checked (never to the name)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None) -> httpcore.NetworkStream:
        try:
            addresses = self.policy.resolve(host, port)
        except EgressRefused:
            raise
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                            ) -> httpcore.NetworkStream:
        raise EgressRefused("the outbound policy allows no Unix sockets")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        failure: Exception | None = None
        for address in self.policy.allowed_addresses(host, infos):
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("the outbound policy allows no Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)

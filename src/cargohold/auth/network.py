"""Network rules per registry: public access on/off, a default action, allowed address ranges, trusted proxies.

With public network access disabled only loopback clients get in: loopback stands in for ACR's private
endpoints, so an operator on the machine keeps access. The client address is the TCP peer, or, when the peer
is a trusted proxy, the right-most address in X-Forwarded-For that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.engine import Connection

from cargohold.auth.tables import network_rules
from cargohold.kernel.clock import utcnow

ALLOW, PROXY = "allow", "proxy"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class NetworkPolicy:
    public_access: bool
    default_action: str
    allowed: tuple[Network, ...]
    proxies: tuple[Network, ...]

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str:
        address = peer or ""
        if forwarded_for and self.proxies and _within(address, self.proxies):
            for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
                address = hop
                if not _within(hop, self.proxies):
                    break
        return address

    def admits(self, address: str) -> bool:
        ip = _parsed(address)
        if ip is None:
            return False
        if not self.public_access:
            return ip.is_loopback
        if self.default_action == "Allow":
            return True
        return any(ip in network for network in self.allowed)


OPEN = NetworkPolicy(True, "Allow", (), ())

_RULES = select(network_rules.c.kind, network_rules.c.cidr).where(network_rules.c.registry_id == bindparam("registry"))


def load_policy(conn: Connection, registry_id: int, public_access: bool, default_action: str) -> NetworkPolicy:
    rules = conn.execute(_RULES, {"registry": registry_id}).all()
    if public_access and default_action == "Allow" and not rules:
        return OPEN
    allowed = tuple(ipaddress.ip_network(r.cidr, strict=False) for r in rules if r.kind == ALLOW)
    proxies = tuple(ipaddress.ip_network(r.cidr, strict=False) for r in rules if r.kind == PROXY)
    return NetworkPolicy(public_access, default_action, allowed, proxies)


def normalize_cidr(value: str) -> str:
    return str(ipaddress.ip_network(value.strip(), strict=False))


def add_rule(conn: Connection, registry_id: int, kind: str, cidr: str) -> str:
    if kind not in (ALLOW, PROXY):
        raise ValueError("rule kinds are 'allow' and 'proxy'")
    normalized = normalize_cidr(cidr)
    conn.execute(insert(network_rules).values(registry_id=registry_id, kind=kind, cidr=normalized,
                                              created_at=utcnow()))
    return normalized


def remove_rule(conn: Connection, registry_id: int, kind: str, cidr: str) -> None:
    if not conn.execute(delete(network_rules).where(network_rules.c.registry_id == registry_id,
                                                    network_rules.c.kind == kind,
                                                    network_rules.c.cidr == normalize_cidr(cidr))).rowcount:
        raise LookupError(f"no {kind} rule for {cidr}")


def list_rules(conn: Connection, registry_id: int) -> list[dict[str, str]]:
    rows = conn.execute(select(network_rules.c.kind, network_rules.c.cidr)
                        .where(network_rules.c.registry_id == registry_id).order_by(network_rules.c.id))
    return [{"kind": r.kind, "cidr": r.cidr} for r in rows]


@lru_cache(maxsize=4096)
def _parsed(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A client's address, parsed once per distinct address (it is checked on every request)."""
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def _within(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)

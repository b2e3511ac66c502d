"""Network policy: who gets in, and which address counts as the client's."""

from __future__ import annotations

import ipaddress

from cargohold.auth.network import OPEN, NetworkPolicy


def policy(public: bool = True, default: str = "Allow", allowed: tuple[str, ...] = (),
           proxies: tuple[str, ...] = ()) -> NetworkPolicy:
    return NetworkPolicy(public, default, tuple(ipaddress.ip_network(a) for a in allowed),
                         tuple(ipaddress.ip_network(p) for p in proxies))


def test_open_by_default() -> None:
    assert OPEN.admits("203.0.113.7") and OPEN.admits("::1")


def test_deny_by_default_admits_only_allowed_ranges() -> None:
    rules = policy(default="Deny", allowed=("10.0.0.0/8",))
    assert rules.admits("10.1.2.3")
    assert not rules.admits("192.168.1.1")
    assert not rules.admits("not an address")


def test_public_access_off_keeps_only_loopback() -> None:
    rules = policy(public=False, allowed=("10.0.0.0/8",))
    assert rules.admits("127.0.0.1") and rules.admits("::1")
    assert not rules.admits("10.1.2.3")


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    rules = policy(default="Deny", proxies=("127.0.0.1/32", "10.9.0.0/16"))
    assert rules.client_address("127.0.0.1", "198.51.100.4, 10.9.1.1") == "198.51.100.4"
    assert rules.client_address("192.0.2.1", "10.0.0.1") == "192.0.2.1"
    assert rules.client_address("127.0.0.1", None) == "127.0.0.1"


def test_a_spoofed_leftmost_address_does_not_win() -> None:
    rules = policy(proxies=("127.0.0.1/32",))
    assert rules.client_address("127.0.0.1", "10.0.0.1, 203.0.113.9") == "203.0.113.9"

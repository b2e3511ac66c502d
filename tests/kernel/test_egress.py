"""The outbound policy on its own: which addresses it refuses, its allow-list, the static check of a URL, and
its transports against real listeners on loopback (a name resolving to loopback, a redirect from an allowed
address to a refused one, and a resolver that changes its answer between the check and the connection)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx
import pytest

from cargohold.kernel.egress import EgressPolicy, EgressRefused, address_refusal
from tests.support.listener import Listener

pytestmark = pytest.mark.backend_independent

STRICT = EgressPolicy()


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "a loopback address"), ("127.9.9.9", "a loopback address"), ("::1", "a loopback address"),
    ("169.254.169.254", "a cloud metadata address"), ("fd00:ec2::254", "a cloud metadata address"),
    ("169.254.1.1", "a link-local address"), ("fe80::1", "a link-local address"),
    ("10.1.2.3", "a private address"), ("172.16.0.1", "a private address"), ("192.168.1.1", "a private address"),
    ("fc00::1", "a private address"), ("100.64.0.1", "a shared (carrier-grade NAT) address"),
    ("0.0.0.0", "the unspecified address"), ("::", "the unspecified address"),
    ("224.0.0.1", "a multicast address"), ("ff02::1", "a multicast address"),
    ("240.0.0.1", "a private address"), ("255.255.255.255", "a private address"),
    ("::ffff:127.0.0.1", "a loopback address"), ("::ffff:10.0.0.1", "a private address"),
    ("2002:a9fe:a9fe::1", "a cloud metadata address"), ("64:ff9b::a00:1", "a private address"),
    ("8.8.8.8", None), ("2606:4700::1111", None), ("64:ff9b::808:808", None),
])
def test_addresses_the_default_refuses(address: str, reason: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == reason


def test_allow_list_entries() -> None:
    policy = EgressPolicy.from_allow_list(["10.1.0.0/16", "[::1]", "Registry.Internal.", "*.corp.example", " "])
    assert policy.allow_list == ["10.1.0.0/16", "::1/128", "registry.internal", "*.corp.example"]
    assert policy.refusal("x", ipaddress.ip_address("10.1.2.3")) is None
    assert policy.refusal("x", ipaddress.ip_address("::ffff:10.1.2.3")) is None
    assert policy.refusal("x", ipaddress.ip_address("10.2.0.1")) == "a private address"
    assert policy.refusal("registry.internal", ipaddress.ip_address("10.2.0.1")) is None
    assert policy.refusal("a.b.corp.example", ipaddress.ip_address("192.168.0.1")) is None
    assert policy.refusal("corp.example", ipaddress.ip_address("192.168.0.1")) == "a private address"
    for bad in ("http://10.0.0.1", "10.0.0.0/33", "a..b", "-x.example", "host/path"):
        with pytest.raises(ValueError, match="neither an address"):
            EgressPolicy.from_allow_list([bad])


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:5000/hook", "https://[::1]/", "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/", "http://10.0.0.7/", "http://127.1/", "http://2130706433/", "http://0x7f000001/",
    "http://localhost:8080/", "http://api.localhost/", "http://LOCALHOST./", "http://metadata.google.internal/",
    "http://[::ffff:169.254.169.254]/", "http://0.0.0.0:80/",
])
def test_urls_refused_without_resolving(url: str) -> None:
    with pytest.raises(EgressRefused, match="outbound policy refuses; an operator can allow it with --egress-allow"):
        STRICT.check_url(url)


def test_urls_left_to_the_connection_or_allowed() -> None:
    STRICT.check_url("https://registry.example.com/v2/")
    STRICT.check_url("http://93.184.215.14/")
    loopback = EgressPolicy.from_allow_list(["127.0.0.0/8", "::1"])
    for url in ("http://127.0.0.1:5000/", "http://localhost:5000/", "http://[::1]/"):
        loopback.check_url(url)
    EgressPolicy.from_allow_list(["metadata.google.internal"]).check_url("http://metadata.google.internal/")


def test_a_name_resolving_to_loopback_is_refused_before_anything_is_sent() -> None:
    with Listener() as target:
        with httpx.Client(transport=STRICT.transport()) as client, \
                pytest.raises(EgressRefused, match="localhost resolves to a loopback address"):
            client.post(f"http://localhost:{target.port}/", content=b"secret")
        assert target.connections == 0
        loopback = EgressPolicy.from_allow_list(["127.0.0.0/8", "::1"])
        with httpx.Client(transport=loopback.transport()) as client:
            assert client.get(f"http://localhost:{target.port}/").text == "ok"
        by_name = EgressPolicy.from_allow_list(["localhost"])
        with httpx.Client(transport=by_name.transport()) as client:
            assert client.get(f"http://localhost:{target.port}/").text == "ok"


def test_the_async_transport_refuses_the_same() -> None:
    async def attempt() -> None:
        async with httpx.AsyncClient(transport=STRICT.async_transport()) as client:
            with pytest.raises(EgressRefused, match=r"169\.254\.169\.254 is a cloud metadata address"):
                await client.get("http://169.254.169.254/latest/meta-data/")
            with pytest.raises(EgressRefused, match="::1 is a loopback address"):
                await client.get(f"http://[::1]:{target.port}/")
    with Listener() as target:
        asyncio.run(attempt())
        assert target.connections == 0


def test_a_redirect_to_a_refused_address_is_refused() -> None:
    """Only 127.0.0.2 is allowed; it redirects to 127.0.0.1, which is not."""
    policy = EgressPolicy.from_allow_list(["127.0.0.2"])
    with Listener("127.0.0.1") as inside, Listener("127.0.0.2", 307) as gate:
        gate.headers["Location"] = inside.url("/latest/meta-data/")
        with httpx.Client(transport=policy.transport(), follow_redirects=True) as client:
            with pytest.raises(EgressRefused, match=r"127\.0\.0\.1 is a loopback address"):
                client.get(gate.url("/start"))
        assert gate.requests == ["GET /start"]
        assert inside.connections == 0


def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name's first answer is an allowed address, later answers a refused one. The policy
    resolves once per connection and connects to the address it checked, never to the name again (here the
    first answer's port is open only on 127.0.0.2, so reaching it proves the checked address was used)."""
    policy = EgressPolicy.from_allow_list(["127.0.0.2"])
    real = socket.getaddrinfo
    answers = iter(["127.0.0.2"] + ["127.0.0.1"] * 10)

    def rebinding(host: str, *args: object, **kwargs: object) -> object:
        if host == "rebind.example":
            return real(next(answers), *args, **kwargs)  # type: ignore[arg-type]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with Listener("127.0.0.1", body=b"inside") as inside, Listener("127.0.0.2", body=b"outside") as outside:
        with httpx.Client(transport=policy.transport()) as client:
            assert client.get(f"http://rebind.example:{outside.port}/").text == "outside"
        with httpx.Client(transport=policy.transport()) as client, pytest.raises(EgressRefused):
            client.get(f"http://rebind.example:{inside.port}/")
        assert inside.connections == 0

"""`cargohold serve`: HTTPS with a self-signed CA, and no plain HTTP beyond loopback unless asked for."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.server import RunningServer


def test_self_signed_tls_serves_https_trusted_by_its_ca(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data", extra_args=["--tls", "self-signed"], scheme="https")
    ca = tmp_path / "data" / "tls" / "ca.pem"
    try:
        server.start(verify=False)
        assert ca.exists() and (ca.stat().st_mode & 0o777) != 0
        assert ((tmp_path / "data" / "tls" / "server-key.pem").stat().st_mode & 0o777) == 0o600
        response = httpx.get(f"{server.url}/v2/", verify=ssl.create_default_context(cafile=str(ca)),
                             auth=server.credentials)
        assert response.status_code == 200
        try:
            httpx.get(f"{server.url}/v2/", verify=True)
            raise AssertionError("a certificate from an unknown CA must not be trusted by default")
        except httpx.ConnectError:
            pass
    finally:
        server.stop()


def test_plain_http_beyond_loopback_needs_an_explicit_flag(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "cargohold", "serve", "--data-dir", str(tmp_path / "d"),
                             "--host", "0.0.0.0", "--port", "1"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--insecure-http" in result.stderr


def handshake(server: RunningServer, ca: Path, name: str) -> bool:
    """Whether a TLS client that trusts only `ca` accepts the server as `name`."""
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=name):
            return True
    except ssl.SSLCertVerificationError:
        return False


@pytest.mark.backend_independent
def test_a_one_label_domain_names_each_login_server(tmp_path: Path) -> None:
    """`*.localhost` is a wildcard no TLS client accepts, so the certificate names the login servers themselves:
    those present at start, and one created later once the server restarts."""
    server = RunningServer(tmp_path / "data", extra_args=["--tls", "self-signed"], scheme="https")
    ca = tmp_path / "data" / "tls" / "ca.pem"
    try:
        server.start(verify=False)
        assert handshake(server, ca, "cargohold.localhost") and handshake(server, ca, "localhost")
        client_id, secret = server.credentials
        verify = ssl.create_default_context(cafile=str(ca))
        token = httpx.post(f"{server.url}/cargohold/oauth2/v2.0/token", verify=verify, data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
            "scope": "https://management.azure.com/.default"}).json()["access_token"]
        created = httpx.put(f"{server.url}/subscriptions/default/resourceGroups/default/providers/"
                            "Microsoft.ContainerRegistry/registries/laterone", verify=verify, timeout=30,
                            params={"api-version": "2025-11-01"}, headers={"Authorization": f"Bearer {token}"},
                            json={"location": "local", "sku": {"name": "Basic"}})
        assert created.status_code in (200, 201), created.text
        assert not handshake(server, ca, "laterone.localhost")
        server.stop()
        server.start(timeout=90, verify=False, ready_host="cargohold.localhost")
        assert handshake(server, ca, "laterone.localhost") and handshake(server, ca, "cargohold.localhost")
        assert not handshake(server, ca, "nosuchone.localhost")
    finally:
        server.stop()


@pytest.mark.backend_independent
def test_a_malformed_egress_exception_stops_the_start(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "cargohold", "serve", "--data-dir", str(tmp_path / "d"),
                             "--egress-allow", "10.0.0.0/8", "--egress-allow", "http://10.1.2.3/"],
                            capture_output=True, text=True, timeout=60)
    said = " ".join(result.stderr.replace("│", " ").split())
    assert result.returncode == 2
    assert "--egress-allow" in said and "'http://10.1.2.3/' is neither an address, a CIDR range nor a host name" in said

"""`cargohold serve`: HTTPS with a self-signed CA, and no plain HTTP beyond loopback unless asked for."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import httpx

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

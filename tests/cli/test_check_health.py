"""`cargohold check-health` against a good server passes; against a wrong port, a wrong CA or plain HTTP it
fails and names the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import RunningServer, free_port


def check_health(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cargohold", "check-health", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def test_good_server_passes_with_a_full_round_trip(server: RunningServer) -> None:
    result = check_health("--data-dir", str(server.data_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pushed, read back and deleted cargohold-health-check@sha256:" in result.stdout
    assert "registry is healthy" in result.stdout
    with server.client() as client:
        tags = client.get("/v2/cargohold-health-check/tags/list")
    assert tags.status_code == 404 or tags.json().get("tags") in (None, []), "the check leaves nothing behind"


def test_saved_login_is_used(server: RunningServer, tmp_path: Path) -> None:
    auth_file = tmp_path / "auth.json"
    env = {"REGISTRY_AUTH_FILE": str(auth_file), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    client_id, secret = server.credentials
    login = subprocess.run([sys.executable, "-m", "cargohold", "login", server.host, "-u", client_id,
                            "--password-stdin"], input=secret, capture_output=True, text=True, env=env, timeout=60)
    assert login.returncode == 0, login.stderr
    result = check_health("-r", server.host, env=env)
    assert result.returncode == 0, result.stdout
    assert f"token issued as {client_id}" in result.stdout


@pytest.mark.backend_independent
def test_wrong_port_is_named(server: RunningServer) -> None:
    result = check_health("-r", f"127.0.0.1:{free_port()}", "-u", "x", "-p", "y")
    assert result.returncode == 1
    assert "connection refused" in result.stdout and "is the registry running, and on this port?" in result.stdout


@pytest.mark.backend_independent
def test_wrong_credentials_are_named(server: RunningServer) -> None:
    result = check_health("-r", server.host, "-u", "someone", "-p", "wrong")
    assert result.returncode == 1
    assert "FAIL  token" in result.stdout and "refused the credentials from --username" in result.stdout


@pytest.mark.backend_independent
def test_tls_needs_the_right_ca(tls_server: RunningServer) -> None:
    ca = tls_server.data_dir / "tls" / "ca.pem"
    client_id, secret = tls_server.credentials
    good = check_health("-r", f"https://{tls_server.host}", "--ca", str(ca), "-u", client_id, "-p", secret)
    assert good.returncode == 0, good.stdout
    assert "ok    tls" in good.stdout and "trusted with" in good.stdout

    wrong = check_health("-r", f"https://{tls_server.host}", "--ca", "/etc/ssl/certs/ca-certificates.crt",
                         "-u", client_id, "-p", secret)
    assert wrong.returncode == 1
    assert "FAIL  tls" in wrong.stdout and "is not signed by the CA file" in wrong.stdout
    assert "pass --ca with the registry's CA certificate" in wrong.stdout

    plain = check_health("-r", f"http://{tls_server.host}", "-u", client_id, "-p", secret)
    assert plain.returncode == 1 and "FAIL  api" in plain.stdout


@pytest.mark.backend_independent
def test_plain_http_server_addressed_with_https(server: RunningServer) -> None:
    result = check_health("-r", f"https://{server.host}", "-u", "x", "-p", "y")
    assert result.returncode == 1
    assert "it may be serving plain HTTP" in result.stdout


def test_without_push_right_the_check_is_read_only(fresh_server: RunningServer, tmp_path: Path) -> None:
    enabled = subprocess.run([sys.executable, "-m", "cargohold", "update", "--data-dir", str(fresh_server.data_dir),
                              "--anonymous-pull-enabled", "true"], capture_output=True, text=True, timeout=120)
    assert enabled.returncode == 0, enabled.stderr
    env = {"REGISTRY_AUTH_FILE": str(tmp_path / "none.json"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = check_health("-r", fresh_server.host, env=env)
    assert result.returncode == 0, result.stdout
    assert "warn  token     no login saved" in result.stdout
    assert "read-only check: cargohold-health-check can be read (no push right, nothing pushed)" in result.stdout

"""`cargohold login`: check credentials against a registry's token service, then store them where docker,
podman and skopeo look (`$REGISTRY_AUTH_FILE`, else `~/.docker/config.json`)."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import httpx
import typer

from cargohold.cli.common import fail


def login(
    server: Annotated[str, typer.Argument(help="Registry address, e.g. https://cargohold.example:5000 or "
                                               "127.0.0.1:5000 (http is assumed only for loopback).")],
    username: Annotated[str, typer.Option("--username", "-u", help="Client id, token name, or admin user.")],
    password: Annotated[str | None, typer.Option("--password", "-p", help="Secret; prefer --password-stdin.")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input.")] = False,
    ca_file: Annotated[Path | None, typer.Option(help="CA certificate to trust (e.g. <data-dir>/tls/ca.pem).")] = None,
) -> None:
    """Log in to a registry: verifies the credentials, then saves them for container tools."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        fail("give --password or --password-stdin")
    base = _base_url(server)
    verify: bool | str = str(ca_file) if ca_file else True
    try:
        response = httpx.get(f"{base}/oauth2/token", auth=(username, password), timeout=30, verify=verify)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {base}: {exc}")
    if response.status_code != 200:
        fail(f"login refused ({response.status_code}): {_message(response)}")
    host = urlsplit(base).netloc
    path = _auth_file()
    _store(path, host, username, password or "")
    typer.echo(f"Login Succeeded: credentials for {host} saved in {path}")


def _base_url(server: str) -> str:
    if "://" in server:
        return server.rstrip("/")
    host = server.split("/")[0]
    loopback = host.split(":")[0] in ("127.0.0.1", "localhost", "[::1]")
    return f"{'http' if loopback else 'https'}://{host}"


def _auth_file() -> Path:
    configured = os.environ.get("REGISTRY_AUTH_FILE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"


def _store(path: Path, host: str, username: str, password: str) -> None:
    document = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
    document.setdefault("auths", {})[host] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=2)
    os.replace(temporary, path)


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["errors"][0]["message"])
    except (ValueError, KeyError, IndexError, TypeError):
        return response.text[:200]

"""Helpers for authentication tests: the admin CLI, tokens from the token service, forged tokens."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from cargohold.auth import jwt_tokens, keys
from cargohold.db.engine import make_engine
from cargohold.security.master_key import load_sealer
from tests.support.server import RunningServer


def cli(server: RunningServer, *args: str) -> Any:
    """Run an admin command against the server's data directory; JSON output parsed."""
    done = subprocess.run([sys.executable, "-m", "cargohold", *args, "--data-dir", str(server.data_dir), "-o", "json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip().startswith(("{", "[")) else done.stdout


def cli_plain(server: RunningServer, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cargohold", *args, "--data-dir", str(server.data_dir)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def token(server: RunningServer, user: str | None, password: str | None, *scopes: str,
          **params: str) -> httpx.Response:
    auth = (user, password) if user is not None else None
    return httpx.get(f"{server.url}/oauth2/token", params={"service": "cargohold.localhost", "scope": list(scopes),
                                                           **params}, auth=auth)  # type: ignore[arg-type]


def access_token(server: RunningServer, user: str, password: str, *scopes: str) -> str:
    response = token(server, user, password, *scopes)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def bearer(server: RunningServer, jwt: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {jwt}"}, timeout=30)


def registry_keyset(server: RunningServer) -> keys.KeySet:
    engine = make_engine(server.database_url)
    try:
        with engine.connect() as conn:
            return keys.load_keyset(conn, load_sealer(server.data_dir), 1)
    finally:
        engine.dispose()


def mint(server: RunningServer, subject: str, access: list[dict[str, Any]], *, ttl: int = 300,
         audience: str = "cargohold.localhost", token_type: str = jwt_tokens.ACCESS) -> str:
    """A token signed with the registry's real key, for claims the token service would never issue."""
    return jwt_tokens.issue(registry_keyset(server), issuer="cargohold.localhost", audience=audience,
                            subject=subject, token_type=token_type, ttl=ttl,
                            claims={"name": "forged", "access": access})


def audit_entries(server: RunningServer, until: Callable[[list[dict[str, Any]]], bool] = bool,
                  **filters: str) -> list[dict[str, Any]]:
    """Audit records, polling (the server flushes them once a second) until `until` holds or 8 s pass."""
    args = [item for key, value in filters.items() for item in (f"--{key.replace('_', '-')}", value)]
    deadline = time.monotonic() + 8
    while True:
        entries = list(cli(server, "audit", "--top", "500", *args))
        if until(entries) or time.monotonic() > deadline:
            return entries
        time.sleep(0.3)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

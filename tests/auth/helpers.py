"""Helpers for the token-flow, permission, forgery and identity-provider tests: the admin CLI, the token
service, bearer clients, JWTs read without verification, challenges, and the audit log."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from cargohold.auth import keys
from cargohold.db.engine import make_engine
from cargohold.security.master_key import load_sealer
from tests.support.server import RunningServer

REFRESH_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
TENANT = "cargohold"
DATA_PLANE = "https://containerregistry.azure.net"


def login_server(server: RunningServer) -> str:
    return str(json.loads((server.data_dir / "initial-credentials").read_text())["loginServer"])


def registry_name(server: RunningServer) -> str:
    return str(json.loads((server.data_dir / "initial-credentials").read_text())["registry"])


def cli(server: RunningServer, *args: str, json_output: bool = True) -> Any:
    """Run `cargohold ARGS --data-dir D [-o json]`; the JSON output parsed, or the text."""
    command = [sys.executable, "-m", "cargohold", *args, "--data-dir", str(server.data_dir)]
    if json_output:
        command += ["-o", "json"]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout) if json_output else done.stdout


def cli_many(server: RunningServer, commands: Iterable[tuple[str, ...]], json_output: bool = True) -> list[Any]:
    """Several admin commands at once (each is a process of its own; SQLite serialises their writes)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: cli(server, *args, json_output=json_output), commands))


def identity(server: RunningServer, name: str, role: str | None = None) -> tuple[str, str]:
    args = ("identity", "create", "--display-name", name, *(("--role", role) if role else ()))
    created = cli(server, *args)
    return created["clientId"], created["clientSecret"]


def token_response(server: RunningServer, auth: tuple[str, str] | None, *scopes: str,
                   **params: str) -> httpx.Response:
    """GET /oauth2/token as docker does: service, one `scope` parameter per scope, HTTP Basic or nothing."""
    return httpx.get(f"{server.url}/oauth2/token", auth=auth, timeout=30, verify=False,
                     params={"service": login_server(server), "scope": list(scopes), **params})


def get_token(server: RunningServer, user: str, password: str, *scopes: str) -> str:
    response = token_response(server, (user, password), *scopes)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def post_form(server: RunningServer, path: str, form: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", data=form, timeout=30, **kwargs)


def bearer_client(server: RunningServer, jwt: str, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {jwt}"}, timeout=30, **kwargs)


def basic_client(server: RunningServer, user: str, password: str, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(user, password), timeout=30, **kwargs)


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_header(jwt: str) -> dict[str, Any]:
    return dict(json.loads(_b64decode(jwt.split(".")[0])))


def jwt_payload(jwt: str) -> dict[str, Any]:
    """The claims, read without verifying anything (as a client inspecting its own token would)."""
    return dict(json.loads(_b64decode(jwt.split(".")[1])))


def granted(jwt: str) -> dict[tuple[str, str], set[str]]:
    return {(a["type"], a["name"]): set(a["actions"]) for a in jwt_payload(jwt)["access"]}


_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    return scheme, dict(_PARAM.findall(rest))


def error_code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["code"])


def assert_insufficient_scope(response: httpx.Response) -> None:
    assert response.status_code == 401, (response.status_code, response.text)
    assert 'error="insufficient_scope"' in response.headers.get("WWW-Authenticate", ""), response.headers
    if response.request.method != "HEAD":
        assert error_code(response) == "UNAUTHORIZED"


def assert_denied(response: httpx.Response) -> None:
    assert response.status_code == 403, (response.status_code, response.text)
    if response.request.method != "HEAD":
        assert error_code(response) == "DENIED", response.text


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, (response.status_code, response.text)
    assert 'error="invalid_token"' in response.headers.get("WWW-Authenticate", ""), response.headers
    assert error_code(response) == "UNAUTHORIZED"


def audit(server: RunningServer, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 5.0,
          **filters: str) -> list[dict[str, Any]]:
    """Audit records, newest first, polled until `until` holds (the server flushes them about once a second)."""
    args = [item for key, value in filters.items() for item in (f"--{key.replace('_', '-')}", value)]
    deadline = time.monotonic() + timeout
    while True:
        entries = list(cli(server, "audit", "--top", "1000", *args))
        if until(entries) or time.monotonic() > deadline:
            return entries
        time.sleep(0.25)


def keyset(server: RunningServer, registry_id: int | None = 1) -> keys.KeySet:
    """A registry's signing keys (None: the identity provider's), unsealed with the server's master key."""
    engine = make_engine(server.database_url)
    try:
        with engine.connect() as conn:
            return keys.load_keyset(conn, load_sealer(server.data_dir), registry_id)
    finally:
        engine.dispose()

"""What a data directory tells a command on the same machine about the server that serves it: `serve` records
its address in `<data-dir>/server.json`, and the first start left the Owner's credentials in
`<data-dir>/initial-credentials`. Both files are 0600, so only the account running the server reads them."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cargohold.cli.errors import ConfigError

SERVER_FILE = "server.json"
CREDENTIALS_FILE = "initial-credentials"


@dataclass(frozen=True)
class LocalServer:
    url: str
    ca_file: str | None
    client_id: str
    client_secret: str
    tenant: str


def write_server_file(data_dir: Path, scheme: str, host: str, port: int, ca_file: Path | None) -> Path:
    """Record where `serve` listens, as a URL a client on this machine can use: a wildcard address becomes
    the loopback one of its family."""
    record = {"url": f"{scheme}://{_client_host(host)}:{port}", "caFile": str(ca_file) if ca_file else None}
    path = data_dir / SERVER_FILE
    temporary = path.with_name(f".{SERVER_FILE}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)
    return path


def read_local_server(data_dir: Path) -> LocalServer:
    """The server behind `data_dir` and the Owner's credentials. Raises ConfigError with what is missing."""
    data_dir = data_dir.resolve()
    server_file, credentials_file = data_dir / SERVER_FILE, data_dir / CREDENTIALS_FILE
    if not server_file.is_file():
        raise ConfigError(f"{server_file} does not exist: start the server with `cargohold serve --data-dir "
                          f"{data_dir}` (it records its address there), or use `cargohold account login`")
    if not credentials_file.is_file():
        raise ConfigError(f"{credentials_file} does not exist (the Owner's credentials were given to the server "
                          "or the file was removed): use `cargohold account login` or CARGOHOLD_SERVER with "
                          "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET")
    try:
        server = json.loads(server_file.read_text())
        owner = json.loads(credentials_file.read_text())
        return LocalServer(str(server["url"]), server.get("caFile"), str(owner["clientId"]),
                           str(owner["clientSecret"]), str(owner.get("tenantId") or "cargohold"))
    except PermissionError as exc:
        raise ConfigError(f"cannot read {exc.filename}: run as the account that runs the server") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{data_dir}: server.json or initial-credentials is damaged ({exc})") from None


def _client_host(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        return "[::1]" if address.version == 6 else "127.0.0.1"
    return f"[{host}]" if address.version == 6 else host

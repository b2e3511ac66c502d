"""Which server a management command talks to, and as whom.

In order: `--data-dir` on the command line (the server on this machine that serves that directory, as its
Owner); the environment (CARGOHOLD_SERVER with AZURE_CLIENT_ID and AZURE_CLIENT_SECRET); the profile
`cargohold account login` saved; and last the data directory in $CARGOHOLD_DATA_DIR or ./data, as the other
commands default. AZURE_CLIENT_ID alone does not count: people set it for Azure itself, and its secret must
never go to a server nobody named.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cargohold.cli.errors import ConfigError
from cargohold.cli.local_server import read_local_server
from cargohold.cli.profile import load_profile, profile_path

DEFAULT_TENANT = "cargohold"
DEFAULT_SUBSCRIPTION = "default"


@dataclass(frozen=True)
class Endpoint:
    server: str
    tenant: str
    client_id: str
    client_secret: str
    subscription: str
    ca_file: str | None
    source: str
    """Where this came from, for `account show` and for error messages."""
    insecure_http: bool = False


def resolve_endpoint(data_dir: Path | None, subscription: str | None = None) -> Endpoint:
    """Raises ConfigError when the chosen source is incomplete."""
    if data_dir is not None:
        found = _from_data_dir(data_dir)
    else:
        found = _from_environment() or _from_profile() or _from_data_dir(
            Path(os.environ.get("CARGOHOLD_DATA_DIR") or "./data"))
    if subscription:
        found = Endpoint(found.server, found.tenant, found.client_id, found.client_secret, subscription,
                         found.ca_file, found.source, found.insecure_http)
    return found


def server_url(server: str) -> str:
    """A base URL from what a person typed: a scheme is kept; without one, http for loopback, else https."""
    server = server.strip().rstrip("/")
    if "://" in server:
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{server!r} is not an http(s) URL")
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    host = server.split("/")[0]
    return f"{'http' if is_loopback(urlsplit(f'//{host}').hostname or '') else 'https'}://{host}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _from_data_dir(data_dir: Path) -> Endpoint:
    local = read_local_server(data_dir)
    return Endpoint(local.url, local.tenant, local.client_id, local.client_secret, DEFAULT_SUBSCRIPTION,
                    local.ca_file, f"data directory {data_dir.resolve()}", insecure_http=True)


def _from_environment() -> Endpoint | None:
    server = os.environ.get("CARGOHOLD_SERVER")
    if not server:
        return None
    client_id, secret = os.environ.get("AZURE_CLIENT_ID"), os.environ.get("AZURE_CLIENT_SECRET")
    if not client_id or not secret:
        raise ConfigError("CARGOHOLD_SERVER is set: set AZURE_CLIENT_ID and AZURE_CLIENT_SECRET too")
    return Endpoint(server_url(server), os.environ.get("AZURE_TENANT_ID") or DEFAULT_TENANT, client_id, secret,
                    os.environ.get("AZURE_SUBSCRIPTION_ID") or DEFAULT_SUBSCRIPTION,
                    os.environ.get("CARGOHOLD_CA_FILE") or None, "environment",
                    os.environ.get("CARGOHOLD_INSECURE_HTTP", "").lower() in ("1", "true", "yes"))


def _from_profile() -> Endpoint | None:
    profile = load_profile()
    if profile is None:
        return None
    return Endpoint(profile.server, profile.tenant, profile.client_id, profile.client_secret, profile.subscription,
                    profile.ca_file, f"profile {profile_path()}", profile.insecure_http)

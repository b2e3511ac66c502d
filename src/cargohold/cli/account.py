"""`cargohold account login | show | logout`: the server and service principal the management commands use
(as `az login --service-principal` and `az account show`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cargohold.cli.arm_client import connect
from cargohold.cli.common import OutputOption, QueryOption, emit, fail
from cargohold.cli.endpoint import (
    DEFAULT_SUBSCRIPTION,
    DEFAULT_TENANT,
    Endpoint,
    resolve_endpoint,
    server_url,
)
from cargohold.cli.errors import ArmFailure, ConfigError
from cargohold.cli.options import ServerDataDir
from cargohold.cli.profile import Profile, profile_path, remove_profile, save_profile

account_app = typer.Typer(help="The server and credentials management commands use.", no_args_is_help=True)


def _public(endpoint: Endpoint) -> dict[str, Any]:
    """What `account show` prints: everything but the secret."""
    return {"server": endpoint.server, "tenantId": endpoint.tenant, "clientId": endpoint.client_id,
            "subscription": endpoint.subscription, "caFile": endpoint.ca_file, "source": endpoint.source}


@account_app.command("login")
def login(
    server: Annotated[str, typer.Option(help="The server's address, e.g. https://registry.example:5000.")],
    client_id: Annotated[str, typer.Option(help="Service principal (or user) client id.")],
    client_secret: Annotated[str | None, typer.Option(help="Its secret; prefer --client-secret-stdin.")] = None,
    client_secret_stdin: Annotated[bool, typer.Option(help="Read the secret from standard input.")] = False,
    tenant: Annotated[str, typer.Option(help="Tenant of the identity provider.")] = DEFAULT_TENANT,
    ca_file: Annotated[Path | None, typer.Option(help="CA certificate to trust for the server.")] = None,
    subscription: Annotated[str, typer.Option(help="Subscription commands use.")] = DEFAULT_SUBSCRIPTION,
    insecure_http: Annotated[bool, typer.Option(help="Allow sending the secret over plain HTTP to a host "
                                                     "beyond loopback.")] = False,
    output: OutputOption = None, query: QueryOption = None,
) -> None:
    """Check the credentials against the server, then save them in the profile (mode 0600)."""
    if client_secret_stdin:
        client_secret = sys.stdin.readline().rstrip("\n")
    if not client_secret:
        fail("give --client-secret or --client-secret-stdin")
    try:
        profile = Profile(server_url(server), tenant, client_id, client_secret, subscription,
                          str(ca_file.resolve()) if ca_file else None, insecure_http)
        endpoint = Endpoint(profile.server, tenant, client_id, client_secret, subscription, profile.ca_file,
                            f"profile {profile_path()}", insecure_http)
        connect(endpoint).http.close()
    except (ArmFailure, ConfigError) as exc:
        fail(f"login failed: {exc}")
    save_profile(profile)
    emit(_public(endpoint), output, query=query)


@account_app.command("show")
def show(data_dir: ServerDataDir = None, output: OutputOption = None, query: QueryOption = None) -> None:
    """Show which server and identity commands would use, and where that comes from."""
    try:
        endpoint = resolve_endpoint(data_dir)
    except ConfigError as exc:
        fail(str(exc))
    emit(_public(endpoint), output, query=query)


@account_app.command("logout")
def logout(output: OutputOption = None, query: QueryOption = None) -> None:
    """Forget the saved profile. Prints nothing, as az does; -o and --query are accepted like everywhere."""
    path = profile_path()
    typer.echo(f"removed {path}" if remove_profile() else f"no profile at {path}", err=True)
